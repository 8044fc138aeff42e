import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { SocketInUse, canConnect, listenUnix, unlinkIfOurs } from '../../src/shim/unix-listen.js';

const tmpDir = (t: { after(fn: () => void): void }): string => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrt-ulisten-'));
  t.after(() => fs.rmSync(d, { recursive: true, force: true }));
  return d;
};

/** A socket file nobody listens on, as a process killed while listening leaves it. */
function deadSocket(p: string): void {
  const r = spawnSync('python3', ['-c', 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', p]);
  assert.equal(r.status, 0, r.stderr.toString());
  assert.ok(fs.lstatSync(p).isSocket());
}

const closeServer = (s: net.Server): Promise<void> => new Promise((resolve) => { if (s.listening) s.close(() => resolve()); else resolve(); });

test('publishes a listening socket under its name, with its mode, and no temporary name left', async (t) => {
  const dir = tmpDir(t);
  const p = path.join(dir, 'd.sock');
  const server = net.createServer((c) => c.destroy());
  t.after(() => closeServer(server));
  const id = await listenUnix(server, p, 0o600);
  const st = fs.statSync(p);
  assert.equal(st.mode & 0o777, 0o600);
  assert.deepEqual([id.dev, id.ino], [st.dev, st.ino]);
  assert.deepEqual(fs.readdirSync(dir), ['d.sock']);
  assert.equal(await canConnect(p), true);
});

test('a live listener keeps its name: SocketInUse, and the loser is closed', async (t) => {
  const dir = tmpDir(t);
  const p = path.join(dir, 'd.sock');
  const first = net.createServer();
  t.after(() => closeServer(first));
  const id = await listenUnix(first, p, 0o600);
  const second = net.createServer();
  await assert.rejects(listenUnix(second, p, 0o600), (e) => e instanceof SocketInUse && e.path === p);
  assert.equal(second.listening, false);
  assert.equal(fs.statSync(p).ino, id.ino);
  assert.deepEqual(fs.readdirSync(dir), ['d.sock']);
});

test('a dead socket is replaced', async (t) => {
  const dir = tmpDir(t);
  const p = path.join(dir, 'd.sock');
  deadSocket(p);
  const dead = fs.lstatSync(p).ino;
  const server = net.createServer();
  t.after(() => closeServer(server));
  const id = await listenUnix(server, p, 0o600);
  assert.notEqual(id.ino, dead);
  assert.equal(await canConnect(p), true);
});

test('a file that is not a socket is neither replaced nor removed', async (t) => {
  const dir = tmpDir(t);
  const p = path.join(dir, 'd.sock');
  fs.writeFileSync(p, 'keep');
  const server = net.createServer();
  await assert.rejects(listenUnix(server, p, 0o600), /exists and is not a socket/);
  assert.equal(server.listening, false);
  assert.equal(fs.readFileSync(p, 'utf8'), 'keep');
  assert.deepEqual(fs.readdirSync(dir), ['d.sock']);
});

test('unlinkIfOurs removes our socket, not a file that took its name since', async (t) => {
  const dir = tmpDir(t);
  const p = path.join(dir, 'd.sock');
  const server = net.createServer();
  t.after(() => closeServer(server));
  const id = await listenUnix(server, p, 0o600);
  fs.rmSync(p);
  fs.writeFileSync(p, 'other');
  unlinkIfOurs(id);
  assert.equal(fs.readFileSync(p, 'utf8'), 'other');
  const other = net.createServer();
  t.after(() => closeServer(other));
  const ours = await listenUnix(other, path.join(dir, 'e.sock'), 0o600);
  unlinkIfOurs(ours);
  assert.equal(fs.existsSync(ours.path), false);
});

test('processes racing for one dead socket: exactly one wins, and the name is the winner\'s socket', { timeout: 60_000 }, async (t) => {
  const dir = tmpDir(t);
  const p = path.join(dir, 'd.sock');
  deadSocket(p);
  const racer = path.join(import.meta.dirname, 'lib', 'listen-racer.ts');
  const kids = Array.from({ length: 5 }, () => spawn(process.execPath, ['--import', 'tsx', racer, p], { stdio: ['pipe', 'pipe', 'inherit'] }));
  t.after(() => { for (const k of kids) if (k.exitCode === null) k.kill('SIGKILL'); });
  const lineReader = (k: (typeof kids)[number]): (() => Promise<string>) => {
    let buf = '';
    let waiting: ((l: string) => void) | undefined;
    let failed: ((e: Error) => void) | undefined;
    const queue: string[] = [];
    k.stdout!.on('data', (b: Buffer) => {
      buf += b.toString();
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) { queue.push(buf.slice(0, i)); buf = buf.slice(i + 1); }
      if (waiting && queue.length) { const w = waiting; waiting = undefined; w(queue.shift()!); }
    });
    k.once('exit', (code) => failed?.(new Error(`racer exited (${code}) before answering`)));
    return () => new Promise<string>((resolve, reject) => {
      if (queue.length) resolve(queue.shift()!); else { waiting = resolve; failed = reject; }
    });
  };
  const next = kids.map(lineReader);
  // tsx takes a while to start: the go-bytes go out only once every racer is up, so they race at once
  assert.deepEqual(await Promise.all(next.map((n) => n())), kids.map(() => 'ready'));
  for (const k of kids) k.stdin!.write('g');
  const answers = await Promise.all(next.map((n) => n()));
  const winners = answers.filter((a) => a.startsWith('won '));
  assert.equal(winners.length, 1, answers.join('\n'));
  for (const a of answers.filter((x) => !x.startsWith('won '))) assert.match(a, /^lost SocketInUse:/);
  const [, dev, ino] = winners[0]!.split(' ');
  const st = fs.lstatSync(p);
  assert.deepEqual([String(st.dev), String(st.ino)], [dev, ino]);
  assert.equal(await canConnect(p), true);
  for (const k of kids) k.stdin!.end();
  await Promise.all(kids.map((k) => k.exitCode !== null ? undefined : new Promise((r) => k.once('exit', r))));
  // the losers removed their temporary names; the winner's published name stays until someone unlinks it
  assert.deepEqual(fs.readdirSync(dir), ['d.sock']);
});
