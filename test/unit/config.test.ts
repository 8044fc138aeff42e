import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { configFromOptions, DEFAULT_CONFIG } from '../../src/plugins/config.js';
import { containerd, runtimeoptions } from '../../src/gen/proto.js';
import { Code } from '../../src/ttrpc/codes.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrt-config-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

function runtimeOptions(configPath: string) {
  return { typeUrl: 'runtimeoptions.v1.Options', value: runtimeoptions.v1.Options.encode({ configPath }).finish() };
}

test('no options: runc with the defaults', () => {
  assert.deepEqual(configFromOptions(undefined), DEFAULT_CONFIG);
});

test('runtimeoptions config_path: a TOML file with runc-v2 keys', () => {
  const f = path.join(tmp, 'crun.toml');
  fs.writeFileSync(f, 'BinaryName = "crun"\nRoot = "/run/tsrt/crun"\nSystemdCgroup = false\n');
  const c = configFromOptions(runtimeOptions(f));
  assert.equal(c.binaryName, 'crun');
  assert.equal(c.root, '/run/tsrt/crun');
});

test('runc-v2 Options are understood too', () => {
  const value = containerd.runc.v1.Options.encode({ binaryName: '/usr/bin/crun', noPivotRoot: true }).finish();
  const c = configFromOptions({ typeUrl: 'type.googleapis.com/containerd.runc.v1.Options', value });
  assert.equal(c.binaryName, '/usr/bin/crun');
  assert.equal(c.noPivotRoot, true);
});

test('bad files and unknown keys or types are InvalidArgument with the reason', () => {
  const bad = path.join(tmp, 'bad.toml');
  fs.writeFileSync(bad, 'BinaryNmae = "crun"\n');
  const isInvalid = (re: RegExp) => (e: { code: number; message: string }) => e.code === Code.InvalidArgument && re.test(e.message);
  assert.throws(() => configFromOptions(runtimeOptions(bad)), isInvalid(/unknown key BinaryNmae/));
  assert.throws(() => configFromOptions(runtimeOptions(path.join(tmp, 'missing.toml'))), isInvalid(/cannot read/));
  fs.writeFileSync(bad, 'BinaryName = [\n');
  assert.throws(() => configFromOptions(runtimeOptions(bad)), isInvalid(/not valid TOML/));
  assert.throws(() => configFromOptions({ typeUrl: 'example.Other', value: new Uint8Array() }), isInvalid(/unsupported runtime options type/));
});
