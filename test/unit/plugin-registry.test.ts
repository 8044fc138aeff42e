// The plugin host: backends loaded from a plugin directory, and every way a plugin can be unusable, each
// refused with a message that names its file, never taking the daemon down.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BACKEND_API_VERSION, backendApi, type BackendInit } from '../../src/plugins/api/index.js';
import { PluginError, backendNames, loadBackend } from '../../src/plugins/registry.js';
import { Code } from '../../src/ttrpc/codes.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrt-plugins-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A complete backend whose methods do nothing, as the source text of a plugin module. */
const backendObject = `{
  name: 'memory',
  create: async () => ({ pid: 1 }), adopt: () => {}, start: async () => {}, exec: async () => ({ pid: 2 }),
  deleteExec: async () => {}, signal: async () => {}, delete: async () => {}, pids: async () => [],
  pause: async () => {}, resume: async () => {}, update: async () => {},
  stats: async (id) => { throw new init.api.errors.NotFoundError('no stats for ' + id); },
  resizePty: async () => {}, closeIo: async () => {},
}`;
const plugin = (name: string, text: string): string => {
  const file = path.join(dir, name);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
  return file;
};
plugin('memory.mjs', `export const apiVersion = ${BACKEND_API_VERSION};\nexport function createBackend(init) { return ${backendObject}; }\n`);
plugin('nested/index.mjs', `export const apiVersion = ${BACKEND_API_VERSION};\nexport const createBackend = (init) => (${backendObject});\n`);
const syntax = plugin('syntax.mjs', 'export const apiVersion = 1;\nexport function createBackend( {\n');
const version = plugin('oldapi.mjs', `export const apiVersion = 0;\nexport function createBackend() { return {}; }\n`);
const nofactory = plugin('nofactory.mjs', `export const apiVersion = ${BACKEND_API_VERSION};\nexport const backend = {};\n`);
const throwing = plugin('throws.mjs', `export const apiVersion = ${BACKEND_API_VERSION};\nexport function createBackend() { throw new Error('no agent image configured'); }\n`);
const partial = plugin('partial.mjs', `export const apiVersion = ${BACKEND_API_VERSION};\nexport function createBackend() { return { name: 'partial', create: async () => ({ pid: 1 }) }; }\n`);
plugin('README.txt', 'not a plugin');
// installed as links: a directory plugin linked in, and a dangling link (not a plugin)
fs.symlinkSync(path.join(dir, 'nested'), path.join(dir, 'linked'));
fs.symlinkSync(path.join(dir, 'gone'), path.join(dir, 'dangling.mjs'));

const init = (): BackendInit => ({
  api: backendApi, group: { id: 'g', namespace: 'ns' }, log: { debug() {}, info() {}, warn() {}, error() {} },
  exited() {}, oom() {}, stateChanged() {},
  host: {} as BackendInit['host'],
});

test('plugins are found by file name (name.mjs, name/index.mjs, also through symbolic links) beside the built-ins', () => {
  assert.deepEqual(backendNames(dir), ['linked', 'memory', 'native', 'nested', 'nofactory', 'oldapi', 'partial', 'runc', 'syntax', 'throws']);
  assert.deepEqual(backendNames(path.join(dir, 'no-such-dir')), ['native', 'runc']);
});

test('a good plugin loads; its backend reaches the API it was given (error classes with their codes)', async () => {
  for (const name of ['memory', 'nested', 'linked']) {
    const backend = (await loadBackend(name, dir))(init());
    assert.equal(backend.name, 'memory');
    await assert.rejects(backend.stats('c1'), (e: { code?: number; message?: string }) =>
      e.code === Code.NotFound && e.message === 'no stats for c1: not found');
  }
});

/** What a refused plugin must say: FailedPrecondition, its file, and what is wrong with it. */
const refusedFor = (file: string, why: RegExp) => (e: unknown): boolean => {
  assert.ok(e instanceof PluginError, String(e));
  assert.equal(e.code, Code.FailedPrecondition);
  assert.equal(e.file, file);
  assert.match(e.message, why);
  assert.ok(e.message.includes(file), e.message);
  return true;
};

test('a plugin that does not load (syntax error) is refused, naming the file', async () => {
  await assert.rejects(loadBackend('syntax', dir), refusedFor(syntax, /cannot be loaded: .*(Unexpected|SyntaxError|token)/i));
});

test('a plugin of another API version is refused with both versions', async () => {
  await assert.rejects(loadBackend('oldapi', dir), refusedFor(version, new RegExp(`implements backend API version 0, this tsrt implements version ${BACKEND_API_VERSION}`)));
});

test('a plugin without a createBackend function is refused', async () => {
  await assert.rejects(loadBackend('nofactory', dir), refusedFor(nofactory, /exports no createBackend function/));
});

test('a factory that throws, and a backend that lacks methods, are refused when the backend is made', async () => {
  const f1 = await loadBackend('throws', dir);
  assert.throws(() => f1(init()), refusedFor(throwing, /createBackend threw: no agent image configured/));
  const f2 = await loadBackend('partial', dir);
  assert.throws(() => f2(init()), refusedFor(partial, /its backend lacks adopt, start, exec, deleteExec, signal, delete, pids, pause, resume, update, stats, resizePty, closeIo/));
});

test('an unknown backend is InvalidArgument, listing what is available', async () => {
  await assert.rejects(loadBackend('gvisorr', dir), (e: { code?: number; message?: string }) =>
    e.code === Code.InvalidArgument && /unknown backend "gvisorr" \(available: linked, memory, native, nested, .*runc.*\)/.test(e.message ?? ''));
});

test('writeCleanupCommand: one argument per line, written whole; empty arguments, newlines and NULs refused', async () => {
  const { writeCleanupCommand } = backendApi;
  const bundle = fs.mkdtempSync(path.join(dir, 'bundle-'));
  writeCleanupCommand(bundle, ['runsc', '--root', '/run/x y', 'delete', '--force', 'c1']);
  assert.equal(fs.readFileSync(path.join(bundle, 'tsrt-cleanup'), 'utf8'), 'runsc\n--root\n/run/x y\ndelete\n--force\nc1\n');
  assert.equal(fs.statSync(path.join(bundle, 'tsrt-cleanup')).mode & 0o777, 0o600);
  for (const argv of [[], ['a', ''], ['a\nb'], ['a\0b'], Array.from({ length: 65 }, () => 'x')]) {
    assert.throws(() => writeCleanupCommand(bundle, argv), (e: { code?: number }) => e.code === Code.InvalidArgument, JSON.stringify(argv));
  }
  assert.deepEqual(fs.readdirSync(bundle), ['tsrt-cleanup'], 'no temporary file left');
});
