// The monitor's `copy` request (native/shim/copy.c) against the real binary: `start` forks a monitor, the
// monitor starts the fake daemon below, and the test sends requests through that daemon. The daemon only
// relays them: the agents (unix socket servers standing in for a VM agent's process streams), the FIFO
// ends containerd would hold and the log files all live in this test process, so that they outlive the
// daemon when the restart test kills it in the middle of a copy. Needs root (/run/containerd/s, /run/tsrt).
//
//   make -C native all tests && node --import tsx --test test/unit/native-copy.test.ts
//   TSRT_SHIM_BIN=native/build-asan/containerd-shim-tsrt-v2 ... runs the same against the ASan build.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pidAlive, sleep, waitFor } from './lib/wait.js';
import { runBinary, type RunResult } from './lib/run-binary.js';
import { daemonCmd } from './lib/daemon-cmd.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const BIN = path.resolve(process.env.TSRT_SHIM_BIN ?? path.join(ROOT, 'native/build/containerd-shim-tsrt-v2'));
const IS_ROOT = process.getuid?.() === 0;
const SANITIZED = process.env.TSRT_SHIM_BIN !== undefined;
// What takes milliseconds on a quiet machine, sized for one 3× slower and busy (and the ASan build).
const WAIT_MS = 60_000;
const MB = 1 << 20;

// The fake daemon: takes the monitors' control connections on $TSRT_DAEMON_DIR/daemon.sock and, on a
// line-JSON socket test.sock, relays the test's requests to one of them ({cmd: 'req', monitor: <pid>,
// args}) and reports its state.
// A daemon the monitor starts while the file hold-daemon exists leaves at once, so the test decides how
// long the monitor stays without one.
const DAEMON_JS = String.raw`
import net from 'node:net';
import fs from 'node:fs';
import path from 'node:path';

const dir = process.env.TSRT_DAEMON_DIR;
const out = process.env.TSRT_TEST_OUT;
if (fs.existsSync(path.join(out, 'hold-daemon'))) process.exit(0);
// One daemon at a time: both monitors start one when theirs is gone, perhaps at the same moment. A name in
// the abstract socket namespace is taken atomically and let go when its holder dies.
const lock = net.createServer();
await new Promise((res) => {
  lock.once('error', () => process.exit(0));
  lock.listen('\0tsrt-copy-test-' + path.basename(dir), res);
});
fs.writeFileSync(path.join(dir, 'daemon.pid'), String(process.pid));
const state = { pid: process.pid, controls: [] };
const sessions = new Map(); // monitor pid -> its control connection

function encode(fields) {
  const body = Buffer.concat(fields.map((f) => Buffer.from(String(f) + '\0')));
  const head = Buffer.alloc(4);
  head.writeUInt32BE(body.length);
  return Buffer.concat([head, body]);
}

function takeFrames(buf) {
  const frames = [];
  while (buf.length >= 4 && buf.length >= 4 + buf.readUInt32BE(0)) {
    const body = buf.subarray(4, 4 + buf.readUInt32BE(0));
    const fields = [];
    let s = 0;
    for (let i = 0; i < body.length; i++) if (body[i] === 0) { fields.push(body.subarray(s, i).toString()); s = i + 1; }
    frames.push(fields);
    buf = buf.subarray(4 + body.length);
  }
  return [frames, buf];
}

const server = net.createServer((sock) => {
  sock.on('error', () => {});
  let buf = Buffer.alloc(0);
  let s = null;
  sock.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    const [frames, rest] = takeFrames(buf);
    buf = rest;
    for (const f of frames) {
      if (!s) {
        // nothing connects to the shim socket here, so no proxy connections come
        if (f[0] !== 'control') { sock.destroy(); return; }
        s = { sock, pid: f[2], seq: 0, waiters: new Map() };
        sessions.set(f[2], s);
        state.controls.push(f);
      } else if ((f[0] === 'ok' || f[0] === 'error') && s.waiters.has(f[1])) {
        const w = s.waiters.get(f[1]);
        s.waiters.delete(f[1]);
        w(f);
      }
      // events (the reaped exits of daemons that left at once) are not looked at
    }
  });
  sock.on('close', () => { if (s && sessions.get(s.pid) === s) sessions.delete(s.pid); });
});

function req(monitor, fields) {
  const s = sessions.get(String(monitor));
  if (!s) return Promise.resolve(['no-control-connection']);
  const seq = String(++s.seq);
  return new Promise((res) => {
    s.waiters.set(seq, res);
    s.sock.write(encode([fields[0], seq, ...fields.slice(1)]));
  });
}

const test = net.createServer((sock) => {
  sock.on('error', () => {});
  let buf = '';
  sock.on('data', async (d) => {
    buf += d;
    const nl = buf.indexOf('\n');
    if (nl < 0) return;
    const cmd = JSON.parse(buf.slice(0, nl));
    if (cmd.cmd === 'state') sock.end(JSON.stringify(state) + '\n');
    else if (cmd.cmd === 'req') sock.end(JSON.stringify(await req(cmd.monitor, cmd.args)) + '\n');
  });
});
fs.rmSync(path.join(dir, 'daemon.sock'), { force: true });
fs.rmSync(path.join(dir, 'test.sock'), { force: true });
server.listen(path.join(dir, 'daemon.sock'));
test.listen(path.join(dir, 'test.sock'));
process.on('SIGTERM', () => process.exit(0));
`;

const runShim = (args: string[], opts: { cwd: string; env: NodeJS.ProcessEnv }): Promise<RunResult> => runBinary(BIN, args, opts);

/** p, or a rejection naming what was awaited once WAIT_MS have passed. */
function within<T>(what: string, p: Promise<T>, ms = WAIT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
  });
  return Promise.race([p, limit]).finally(() => clearTimeout(timer));
}

function event(emitter: EventEmitter, name: string, what: string): Promise<void> {
  return within(what, new Promise<void>((res) => emitter.once(name, () => res())));
}

/** Everything a stream delivers, with waits for a byte count, its end and its close. */
class Sink {
  private chunks: Buffer[] = [];
  length = 0;
  ended = false;
  closed = false;
  private waits: { n: number; res: () => void }[] = [];
  private endP: Promise<void>;
  private closeP: Promise<void>;
  constructor(readonly stream: net.Socket, readonly name: string) {
    stream.on('error', () => { /* 'close' follows */ });
    stream.on('data', (d: Buffer) => {
      this.chunks.push(d);
      this.length += d.length;
      this.waits = this.waits.filter((w) => (w.n <= this.length ? (w.res(), false) : true));
    });
    this.endP = new Promise((res) => stream.once('end', () => { this.ended = true; res(); }));
    this.closeP = new Promise((res) => stream.once('close', () => { this.closed = true; res(); }));
  }
  data(): Buffer {
    return Buffer.concat(this.chunks);
  }
  bytes(n: number): Promise<void> {
    if (this.length >= n) return Promise.resolve();
    return within(`${n} bytes at ${this.name} (${this.length} so far)`, new Promise((res) => this.waits.push({ n, res })));
  }
  end(): Promise<void> {
    return within(`the end of ${this.name}`, this.endP);
  }
  close(): Promise<void> {
    return within(`the close of ${this.name}`, this.closeP);
  }
}

/** n bytes of a pattern that does not repeat at any power-of-two stride a lost or repeated chunk could have. */
function pattern(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 131 + Math.floor(i / 4093) * 7 + seed) & 0xff;
  return b;
}

function mkfifo(p: string): string {
  execFileSync('mkfifo', [p]);
  return p;
}

// containerd's ends of its FIFOs, non-blocking, as net.Sockets (opened once the monitor holds its own end:
// a reader opened with no writer would read EOF at once, a writer with no reader gets ENXIO)
function fifoReader(p: string): net.Socket {
  const fd = fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  return new net.Socket({ fd, readable: true, writable: false });
}

function fifoWriter(p: string): net.Socket {
  const fd = fs.openSync(p, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
  const s = new net.Socket({ fd, readable: false, writable: true });
  s.on('error', () => { /* EPIPE once the monitor's reader is gone */ });
  return s;
}

// utime + stime of a process, in clock ticks
function cpuTicks(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]);
}

/** A monitor started by `start` for its own group; moved counts the bytes its copies moved (iostats). */
interface Monitor { name: string; pid: number; bundle: string; sock: string; moved: { in: number; out: number } }

describe('monitor copy request', { skip: IS_ROOT ? false : 'needs root' }, () => {
  const unique = randomBytes(6).toString('hex');
  const ns = 'tsrt-unit-copy';
  let tmp = '';
  let address = '';
  let daemonDir = '';
  let env: NodeJS.ProcessEnv = {};
  let daemonPid = 0;
  let log = '';
  let logSock: net.Socket | null = null;
  const servers: net.Server[] = [];
  const streams: net.Socket[] = [];
  // m: copies as they are made (splice where a side is a pipe); rw: a monitor with TSRT_COPY_SPLICE=0, whose
  // copies all read and write, so that path meets a FIFO that fills too
  const m: Monitor = { name: 'splice', pid: 0, bundle: '', sock: '', moved: { in: 0, out: 0 } };
  const rw: Monitor = { name: 'rw', pid: 0, bundle: '', sock: '', moved: { in: 0, out: 0 } };

  const req = async (mon: Monitor, ...args: (string | number)[]): Promise<string[]> =>
    daemonCmd(daemonDir, { cmd: 'req', monitor: mon.pid, args: args.map(String) });
  const assertOk = (r: string[]) => assert.deepEqual(r, ['ok', r[1]], JSON.stringify(r));
  const assertErr = (r: string[], errno: number) =>
    assert.deepEqual([r[0], r[2]], ['error', String(errno)], JSON.stringify(r));

  const fdsOf = (mon: Monitor): string[] => fs.readdirSync(`/proc/${mon.pid}/fd`).map((fd) => {
    try { return fs.readlinkSync(`/proc/${mon.pid}/fd/${fd}`); } catch { return ''; }
  }).sort();

  /** A unix socket server standing in for a VM agent's stream; accepted() is the monitor's connection. */
  async function agent(name: string) {
    const p = path.join(tmp, `${name}.sock`);
    const server = net.createServer();
    servers.push(server);
    const conn = new Promise<net.Socket>((res) => server.once('connection', (s: net.Socket) => { streams.push(s); res(s); }));
    await new Promise<void>((res, rej) => { server.once('error', rej); server.listen(p, () => res()); });
    return { path: p, endpoint: `unix:${p}`, accepted: () => within(`the monitor's connection to ${name}`, conn) };
  }

  // a FIFO end's 'close' may come before the test looks for it: its promise is made at once
  const closes = new Map<net.Socket, Promise<void>>();
  const track = (s: net.Socket) => {
    streams.push(s);
    closes.set(s, new Promise((res) => s.once('close', () => res())));
    return s;
  };
  const closed = (s: net.Socket, what: string) => within(what, closes.get(s)!);

  async function startMonitor(mon: Monitor, extraEnv: NodeJS.ProcessEnv): Promise<void> {
    mon.bundle = path.join(tmp, `bundle-${mon.name}`);
    fs.mkdirSync(path.join(mon.bundle, 'rootfs'), { recursive: true });
    fs.writeFileSync(path.join(mon.bundle, 'config.json'), JSON.stringify({ ociVersion: '1.0.2',
      annotations: { 'io.kubernetes.cri.sandbox-id': `grp-${mon.name}-${unique}` } }));
    const r = await runShim(['-namespace', ns, '-address', address, '-publish-binary', '/bin/true',
      '-id', `c-${mon.name}`, '-debug', 'start'], { cwd: mon.bundle, env: { ...env, ...extraEnv } });
    assert.equal(r.stderr, '');
    assert.equal(r.code, 0);
    mon.sock = r.stdout.toString().slice('unix://'.length);
    const state = await waitFor(`the control hello of the ${mon.name} monitor`, async () => {
      try {
        const s = await daemonCmd(daemonDir, { cmd: 'state' });
        return s.controls.find((c: string[]) => c[3] === mon.bundle) ? s : null;
      } catch { return null; }
    }, WAIT_MS);
    daemonPid = state.pid;
    mon.pid = Number(state.controls.find((c: string[]) => c[3] === mon.bundle)[2]);
    assert.ok(pidAlive(mon.pid));
  }

  before(async () => {
    if (!process.env.TSRT_SHIM_BIN) execFileSync('make', ['-s', '-C', path.join(ROOT, 'native')], { stdio: 'inherit' });
    tmp = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'tsrt-copy-')));
    address = path.join(tmp, 'containerd.sock');
    daemonDir = `/run/tsrt/${createHash('sha256').update(`${address}.ttrpc`).digest('hex').slice(0, 16)}`;
    const script = path.join(tmp, 'daemon.mjs');
    fs.writeFileSync(script, DAEMON_JS);
    env = { ...process.env, TSRT_NODE: process.execPath, TSRT_DAEMON: script, TSRT_TEST_OUT: tmp,
      ASAN_OPTIONS: [process.env.ASAN_OPTIONS, `log_path=${tmp}/sanitizer/asan`].filter(Boolean).join(':'),
      UBSAN_OPTIONS: [process.env.UBSAN_OPTIONS, `log_path=${tmp}/sanitizer/ubsan`].filter(Boolean).join(':') };
    delete env.TTRPC_ADDRESS;
    delete env.TSRT_DAEMON_DIR;
    delete env.TSRT_COPY_SPLICE;
    fs.mkdirSync(path.join(tmp, 'sanitizer'));
    // containerd creates <bundle>/log and holds it open O_RDWR|O_NONBLOCK; -debug logs the copies
    fs.mkdirSync(path.join(tmp, `bundle-${m.name}`));
    const logPath = mkfifo(path.join(tmp, `bundle-${m.name}`, 'log'));
    logSock = new net.Socket({ fd: fs.openSync(logPath, fs.constants.O_RDWR | fs.constants.O_NONBLOCK),
      readable: true, writable: false });
    logSock.on('data', (d: Buffer) => { log += d.toString(); });
    await startMonitor(m, {});
    await startMonitor(rw, { TSRT_COPY_SPLICE: '0' });
  });

  after(async () => {
    for (const s of streams) s.destroy();
    for (const s of servers) s.close();
    // every daemon this file's monitors started (after a failure, perhaps one the test never saw)
    const script = path.join(tmp, 'daemon.mjs');
    const daemons = tmp ? fs.readdirSync('/proc').filter((e) => /^\d+$/.test(e)).filter((e) => {
      try { return fs.readFileSync(`/proc/${e}/cmdline`, 'utf8').split('\0').includes(script); } catch { return false; }
    }).map(Number) : [];
    for (const sig of ['SIGTERM', 'SIGKILL'] as const) {
      for (const pid of [m.pid, rw.pid, daemonPid, ...daemons]) {
        if (pid && pidAlive(pid)) {
          try { process.kill(pid, sig); } catch { /* gone */ }
        }
      }
      await sleep(100);
    }
    logSock?.destroy();
    for (const mon of [m, rw]) if (mon.sock) fs.rmSync(mon.sock, { force: true });
    if (daemonDir) fs.rmSync(daemonDir, { recursive: true, force: true });
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  // 4 MB through a paused reader; the pause is a measuring window (two sleeps), not a wait for a result
  async function outThroughPausedReader(mon: Monitor, key: string) {
    const a = await agent(`${key}-out`);
    const fifo = mkfifo(path.join(tmp, `${key}-out.fifo`));
    assertOk(await req(mon, 'copy', key, 'out', a.endpoint, `fifo:${fifo}`));
    const conn = await a.accepted();
    const agentSide = new Sink(conn, 'the agent connection');
    // containerd's reader, opened after the monitor's end and paused before anything is read
    const reader = new Sink(track(fifoReader(fifo)), 'the stdout FIFO');
    reader.stream.pause();
    const data = pattern(4 * MB, 1);
    conn.end(data);
    // nothing flows: the FIFO is full, the monitor stops reading the agent, whose bytes stay with it; and
    // the monitor sleeps meanwhile
    await sleep(300);
    const ticks0 = cpuTicks(mon.pid);
    await sleep(500);
    const idleTicks = cpuTicks(mon.pid) - ticks0;
    assert.ok(idleTicks <= 5, `monitor CPU while the FIFO is full: ${idleTicks} ticks in 500 ms`);
    assert.ok(conn.writableLength >= 3 * MB, `the agent still holds ${conn.writableLength} bytes`);
    assert.ok(!reader.ended);
    reader.stream.resume();
    await reader.end();
    assert.equal(reader.length, data.length);
    assert.ok(reader.data().equals(data), 'every byte, in order');
    mon.moved.out += data.length;
    // the monitor closed its end of the agent's stream too
    await agentSide.close();
  }

  async function inUntilCloseio(mon: Monitor, key: string) {
    const a = await agent(`${key}-in`);
    const fifo = mkfifo(path.join(tmp, `${key}-in.fifo`));
    assertOk(await req(mon, 'copy', key, 'in', a.endpoint, `fifo:${fifo}`));
    const conn = await a.accepted();
    const sink = new Sink(conn, 'the agent connection');
    // bytes the monitor never reads: a close of its end would then be a reset for the agent, not the end of
    // stream a shut write side is
    conn.write('agent says hello');
    conn.pause(); // a slow process: containerd's writer is held back, nothing is lost
    const d1 = pattern(2 * MB, 5);
    const w1 = track(fifoWriter(fifo));
    w1.end(d1);
    // the agent's socket fills, the monitor stops reading the FIFO, containerd's writer keeps the rest; the
    // monitor sleeps meanwhile (a measuring window again)
    await sleep(300);
    const ticks0 = cpuTicks(mon.pid);
    await sleep(500);
    const idleTicks = cpuTicks(mon.pid) - ticks0;
    assert.ok(idleTicks <= 5, `monitor CPU while the agent reads nothing: ${idleTicks} ticks in 500 ms`);
    assert.ok(w1.writableLength >= MB, `the writer still holds ${w1.writableLength} bytes`);
    conn.resume();
    await sink.bytes(d1.length);
    await closed(w1, 'the first writer to close');
    // a second writer after the first one's close (containerd reopening): the keeper kept the stream open
    const d2 = pattern(100_000, 6);
    const w2 = track(fifoWriter(fifo));
    w2.end(d2);
    await sink.bytes(d1.length + d2.length);
    await closed(w2, 'the second writer to close');
    assert.ok(!sink.ended, 'no end of stream before closeio');
    assertOk(await req(mon, 'closeio', key));
    await sink.end();
    assert.ok(sink.data().equals(Buffer.concat([d1, d2])), 'every byte, in order, before the end');
    mon.moved.in += d1.length + d2.length;
    // the agent closes its side too (allowHalfOpen is off): the monitor lets the connection go
    await sink.close();
    await waitFor('the monitor to drop the in copy\'s FIFO', () => !fdsOf(mon).includes(fifo), WAIT_MS);
  }

  it('out: 4 MB from a unix socket reach the stdout FIFO whole and in order; a paused reader holds the agent back; EOF follows the agent\'s end', async () => {
    await outThroughPausedReader(m, 'k1');
  });

  it('out, read/write: the same through the buffer (TSRT_COPY_SPLICE=0)', async () => {
    await outThroughPausedReader(rw, 'r1');
  });

  it('out: a unix socket to a file: target, a FIFO endpoint to a FIFO target and a FIFO endpoint to a file:', async () => {
    // socket -> file: neither is a pipe: read/write
    const a = await agent('out2');
    const file = path.join(tmp, 'logs', 'sub', 'k2.log');
    assertOk(await req(m, 'copy', 'k2', 'out', a.endpoint, `file:${file}`));
    assert.equal(fs.statSync(file).mode & 0o777, 0o644, 'as spawn\'s and console\'s file: stdio');
    const conn = await a.accepted();
    const sink = new Sink(conn, 'the agent connection');
    const d1 = pattern(MB + 12345, 2);
    conn.end(d1);
    await sink.end(); // the monitor closes the endpoint once all is written
    assert.ok(fs.readFileSync(file).equals(d1));
    assert.ok(!fdsOf(m).includes(file), 'the file is closed');
    // appended, as containerd's file:// logs are
    const a2 = await agent('out2b');
    assertOk(await req(m, 'copy', 'k2', 'out', a2.endpoint, `file:${file}`));
    const conn2 = await a2.accepted();
    const sink2 = new Sink(conn2, 'the second agent connection');
    conn2.end('tail\n');
    await sink2.end();
    assert.ok(fs.readFileSync(file).equals(Buffer.concat([d1, Buffer.from('tail\n')])));

    // FIFO endpoint -> FIFO target: splice from pipe to pipe; the endpoint opened before any writer
    const ep = mkfifo(path.join(tmp, 'ep2.fifo'));
    const outFifo = mkfifo(path.join(tmp, 'out2.fifo'));
    assertOk(await req(m, 'copy', 'k2', 'out', ep, `fifo:${outFifo}`));
    const reader = new Sink(track(fifoReader(outFifo)), 'the FIFO target');
    const d2 = pattern(MB, 3);
    const w = track(fifoWriter(ep));
    w.end(d2);
    await reader.end(); // the writer's close is the end of stream
    assert.ok(reader.data().equals(d2));

    // FIFO endpoint -> file: (O_APPEND): splice refuses it, read/write takes over
    const ep3 = mkfifo(path.join(tmp, 'ep3.fifo'));
    const file3 = path.join(tmp, 'k2-3.log');
    assertOk(await req(m, 'copy', 'k2', 'out', ep3, `file:${file3}`));
    const d3 = pattern(MB, 4);
    const w3 = track(fifoWriter(ep3));
    w3.end(d3);
    await waitFor('the FIFO endpoint copied to the file and its copy ended', () =>
      fs.statSync(file3).size === d3.length && !fdsOf(m).some((l) => l === file3 || l === ep3), WAIT_MS);
    assert.ok(fs.readFileSync(file3).equals(d3));
    m.moved.out += d1.length + 5 + d2.length + d3.length;
    assertOk(await req(m, 'release', 'k2'));
  });

  it('in: the stdin FIFO reaches the agent, also across a writer\'s close; the agent sees its end only after closeio and every byte', async () => {
    await inUntilCloseio(m, 'k3');
  });

  it('in, read/write: the same through the buffer (TSRT_COPY_SPLICE=0)', async () => {
    await inUntilCloseio(rw, 'r3');
  });

  it('in: to a FIFO endpoint opened before its reader, and character devices (/dev/null) as endpoints', async () => {
    // the endpoint FIFO has no reader yet: the monitor's O_RDWR open neither blocks nor fails
    const ep = mkfifo(path.join(tmp, 'in-ep.fifo'));
    const stdin = mkfifo(path.join(tmp, 'in-ep-stdin.fifo'));
    assertOk(await req(m, 'copy', 'k9', 'in', ep, `fifo:${stdin}`));
    const w = track(fifoWriter(stdin));
    const data = pattern(300_000, 14); // more than the endpoint FIFO holds before its reader comes
    w.end(data);
    const reader = new Sink(track(fifoReader(ep)), 'the endpoint FIFO');
    await reader.bytes(data.length);
    await closed(w, 'the stdin writer to close');
    assert.ok(!reader.ended);
    assertOk(await req(m, 'closeio', 'k9'));
    await reader.end(); // the monitor closed the endpoint: the process's EOF
    assert.ok(reader.data().equals(data));
    m.moved.in += data.length;

    // /dev/null refuses splice (read/write takes over) and reads EOF at once: containerd sees EOF
    // (the reader first, as containerd opens it: the copy may be over before the reply is read)
    const out = mkfifo(path.join(tmp, 'null-out.fifo'));
    const r2 = new Sink(track(fifoReader(out)), 'the FIFO fed by /dev/null');
    assertOk(await req(m, 'copy', 'k10', 'out', '/dev/null', `fifo:${out}`));
    await r2.end();
    assert.equal(r2.length, 0);
    // into /dev/null everything is taken; closeio ends it and the monitor keeps its three stdio /dev/nulls
    const nullIn = mkfifo(path.join(tmp, 'null-in.fifo'));
    assertOk(await req(m, 'copy', 'k10', 'in', '/dev/null', `fifo:${nullIn}`));
    const w2 = track(fifoWriter(nullIn));
    w2.end(pattern(200_000, 15));
    await closed(w2, 'the writer into /dev/null to close');
    assertOk(await req(m, 'closeio', 'k10'));
    await waitFor('the copy into /dev/null to end', () =>
      !fdsOf(m).includes(nullIn) && fdsOf(m).filter((l) => l === '/dev/null').length === 3, WAIT_MS);
    m.moved.in += 200_000;
  });

  it('iostats adds the copies\' bytes to the consoles\' (there are none here)', async () => {
    for (const mon of [m, rw]) {
      const r = await req(mon, 'iostats');
      assert.deepEqual(r, ['ok', r[1], String(mon.moved.in), String(mon.moved.out)], mon.name);
    }
  });

  it('in: the agent going away ends the copy (no SIGPIPE), and a new in copy for the key is taken', async () => {
    const a = await agent('in2');
    const fifo = mkfifo(path.join(tmp, 'in2.fifo'));
    assertOk(await req(m, 'copy', 'k4', 'in', a.endpoint, `fifo:${fifo}`));
    const conn = await a.accepted();
    const w = track(fifoWriter(fifo));
    conn.destroy();
    // more than the FIFO holds: the writer closes once all is taken, or at the EPIPE after the monitor let go
    w.end(pattern(256 * 1024, 7));
    await closed(w, 'the writer to finish or fail');
    await waitFor('the monitor to close the FIFO and the socket', () => !fdsOf(m).includes(fifo), WAIT_MS);
    assert.ok(pidAlive(m.pid));
    const b = await agent('in2b');
    assertOk(await req(m, 'copy', 'k4', 'in', b.endpoint, `fifo:${fifo}`));
    const sink = new Sink(await b.accepted(), 'the second agent connection');
    const w2 = track(fifoWriter(fifo));
    w2.end('again');
    await sink.bytes(5);
    assert.equal(sink.data().toString(), 'again');
    assertOk(await req(m, 'release', 'k4'));
    await sink.close();
  });

  it('release ends every copy of the key: the agents see their connections close, the reader its EOF, the monitor keeps none of their fds', async () => {
    const before = fdsOf(m);
    const o1 = await agent('rel-out1');
    const o2 = await agent('rel-out2');
    const i1 = await agent('rel-in');
    const other = await agent('rel-other');
    const stdout = mkfifo(path.join(tmp, 'rel-stdout.fifo'));
    const stdin = mkfifo(path.join(tmp, 'rel-stdin.fifo'));
    const stderrFile = path.join(tmp, 'rel-stderr.log');
    const otherFifo = mkfifo(path.join(tmp, 'rel-other.fifo'));
    assertOk(await req(m, 'copy', 'k5', 'out', o1.endpoint, `fifo:${stdout}`));
    assertOk(await req(m, 'copy', 'k5', 'out', o2.endpoint, `file:${stderrFile}`));
    assertOk(await req(m, 'copy', 'k5', 'in', i1.endpoint, `fifo:${stdin}`));
    // another key's copy goes on
    assertOk(await req(m, 'copy', 'k5x', 'out', other.endpoint, `fifo:${otherFifo}`));
    const sinks = [new Sink(await o1.accepted(), 'rel-out1'), new Sink(await o2.accepted(), 'rel-out2'),
      new Sink(await i1.accepted(), 'rel-in')];
    const otherConn = await other.accepted();
    const reader = new Sink(track(fifoReader(stdout)), 'the stdout FIFO');
    const otherReader = new Sink(track(fifoReader(otherFifo)), 'the other key\'s FIFO');
    const w = track(fifoWriter(stdin));
    // the copies work before the release
    sinks[0]!.stream.write('out');
    w.write('in');
    await reader.bytes(3);
    await sinks[2]!.bytes(2);
    assert.ok(fdsOf(m).length >= before.length + 9, 'two fds per out copy, three per in copy');
    assertOk(await req(m, 'release', 'k5'));
    await Promise.all(sinks.map((s) => s.close()));
    await reader.end();
    assert.deepEqual(fdsOf(m).filter((l) => !before.includes(l) && !l.startsWith('socket:') && l !== otherFifo), []);
    otherConn.write('still');
    await otherReader.bytes(5);
    assertOk(await req(m, 'release', 'k5x'));
    await otherReader.end();
    assert.deepEqual(fdsOf(m), before, 'the fds of the released copies are all closed');
    m.moved.out += 3 + 5;
    m.moved.in += 2;
  });

  it('errors: ENOENT, ECONNREFUSED, EINVAL, EEXIST, with nothing left open; the monitor keeps serving', async () => {
    const before = fdsOf(m);
    const fifo = mkfifo(path.join(tmp, 'err.fifo'));
    // a socket file nobody listens on: its listener was killed
    const stale = path.join(tmp, 'stale.sock');
    const child = spawn(process.execPath, ['-e',
      `require('net').createServer().listen(${JSON.stringify(stale)}, () => console.log('listening'))`],
    { stdio: ['ignore', 'pipe', 'inherit'] });
    await event(child.stdout!, 'data', 'the stale socket\'s listener');
    child.kill('SIGKILL');
    await event(child, 'exit', 'the stale socket\'s listener to die');
    assert.ok(fs.statSync(stale).isSocket());
    const regular = path.join(tmp, 'regular');
    fs.writeFileSync(regular, '');

    assertErr(await req(m, 'copy', 'k6', 'out', `unix:${path.join(tmp, 'missing.sock')}`, `fifo:${fifo}`), 2);
    assertErr(await req(m, 'copy', 'k6', 'out', `unix:${stale}`, `fifo:${fifo}`), 111);
    assertErr(await req(m, 'copy', 'k6', 'out', path.join(tmp, 'missing.fifo'), `fifo:${fifo}`), 2);
    assertErr(await req(m, 'copy', 'k6', 'out', `unix:${stale}`, `fifo:${path.join(tmp, 'missing.fifo')}`), 2);
    assertErr(await req(m, 'copy', 'k6', 'sideways', `unix:${stale}`, `fifo:${fifo}`), 22);
    assertErr(await req(m, 'copy', 'k6', 'in', `unix:${stale}`, `file:${path.join(tmp, 'in.log')}`), 22);
    assertErr(await req(m, 'copy', 'k6', 'out', `unix:${stale}`, `pipe:${fifo}`), 22);
    assertErr(await req(m, 'copy', 'k6', 'out', `unix:${stale}`, 'fifo:'), 22);
    assertErr(await req(m, 'copy', 'k6', 'out', `unix:${stale}`, `fifo:${regular}`), 22); // not a FIFO
    assertErr(await req(m, 'copy', 'k6', 'out', 'unix:relative.sock', `fifo:${fifo}`), 22);
    assertErr(await req(m, 'copy', 'k6', 'out', 'relative.fifo', `fifo:${fifo}`), 22);
    assertErr(await req(m, 'copy', 'k6', 'out', regular, `fifo:${fifo}`), 22); // not a FIFO or device
    assertErr(await req(m, 'copy', 'k6', 'out', `unix:${stale}`), 22); // malformed
    assertErr(await req(m, 'copy', 'k6', 'out', `unix:${stale}`, `fifo:${fifo}`, 'extra'), 22);
    assertErr(await req(m, 'copy'), 22);
    assert.ok(!fs.existsSync(path.join(tmp, 'in.log')), 'a refused file: target is not created');
    // one in copy per key
    const a = await agent('err-in');
    assertOk(await req(m, 'copy', 'k6', 'in', a.endpoint, `fifo:${fifo}`));
    const conn = new Sink(await a.accepted(), 'the err-in connection');
    const b = await agent('err-in2');
    assertErr(await req(m, 'copy', 'k6', 'in', b.endpoint, `fifo:${fifo}`), 17);
    // the monitor goes on serving: the copy works, and so do other requests
    const w = track(fifoWriter(fifo));
    w.end('ok');
    await conn.bytes(2);
    assertOk(await req(m, 'release', 'k6'));
    await conn.close();
    assert.equal((await req(m, 'iostats'))[0], 'ok');
    assert.deepEqual(fdsOf(m), before, 'failed requests leave no fd behind');
    m.moved.in += 2;
  });

  it('copies keep flowing while the monitor has no daemon, and after a new daemon connects', async () => {
    const o = await agent('restart-out');
    const i = await agent('restart-in');
    const stdout = mkfifo(path.join(tmp, 'restart-stdout.fifo'));
    const stdin = mkfifo(path.join(tmp, 'restart-stdin.fifo'));
    assertOk(await req(m, 'copy', 'k7', 'out', o.endpoint, `fifo:${stdout}`));
    assertOk(await req(m, 'copy', 'k7', 'in', i.endpoint, `fifo:${stdin}`));
    const oconn = await o.accepted();
    const agentOut = new Sink(oconn, 'the out agent');
    const agentIn = new Sink(await i.accepted(), 'the in agent');
    const reader = new Sink(track(fifoReader(stdout)), 'the stdout FIFO');
    const writer = track(fifoWriter(stdin));
    const outData = [pattern(MB, 8), pattern(MB, 9), pattern(MB, 10)];
    const inData = [pattern(MB, 11), pattern(MB, 12), pattern(MB, 13)];
    let outLen = 0;
    let inLen = 0;
    const phase = async (n: number) => {
      oconn.write(outData[n]);
      writer.write(inData[n]);
      outLen += outData[n]!.length;
      inLen += inData[n]!.length;
      await Promise.all([reader.bytes(outLen), agentIn.bytes(inLen)]);
    };
    await phase(0);

    // the daemon dies, and the ones the monitor starts leave at once while hold-daemon exists
    const hold = path.join(tmp, 'hold-daemon');
    fs.writeFileSync(hold, '');
    const oldPid = daemonPid;
    process.kill(oldPid, 'SIGKILL');
    await waitFor('the daemon to die', () => !pidAlive(oldPid), WAIT_MS);
    await phase(1);
    // no daemon was listening the whole time
    await assert.rejects(daemonCmd(daemonDir, { cmd: 'state' }));
    assert.ok(!reader.ended && !agentIn.ended);

    fs.rmSync(hold);
    const state = await waitFor('a new daemon with the monitor connected', async () => {
      try {
        const s = await daemonCmd(daemonDir, { cmd: 'state' });
        return s.pid !== oldPid && s.controls.some((c: string[]) => Number(c[2]) === m.pid) ? s : null;
      } catch { return null; }
    }, WAIT_MS);
    daemonPid = state.pid;
    await phase(2);
    assert.ok(reader.data().equals(Buffer.concat(outData)), 'out: every byte, in order');
    assert.ok(agentIn.data().equals(Buffer.concat(inData)), 'in: every byte, in order');
    // the new daemon's requests reach the same copies
    assertOk(await req(m, 'release', 'k7'));
    await Promise.all([reader.end(), agentIn.close(), agentOut.close()]);
  });

  it('the monitor logged each copy\'s start and end at debug level', async () => {
    const lines = await waitFor('the last copy\'s end in the log', () => {
      const l = log.split('\n');
      return l.some((x) => x.includes('msg="copy k7 out ') && x.includes(' ended: released')) ? l : null;
    }, WAIT_MS);
    const has = (re: RegExp) => assert.ok(lines.some((l) => re.test(l)), `no log line matches ${re}`);
    const q = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    has(new RegExp(`level=debug msg="copy k1 out started: unix:${q(tmp)}/k1-out\\.sock -> fifo:${q(tmp)}/k1-out\\.fifo \\(splice\\)"`));
    has(new RegExp(`level=debug msg="copy k1 out unix:${q(tmp)}/k1-out\\.sock ended: end of stream \\(${4 * MB} bytes\\)"`));
    has(new RegExp(`level=debug msg="copy k2 out started: unix:${q(tmp)}/out2\\.sock -> file:.* \\(read/write\\)"`));
    has(new RegExp(`level=debug msg="copy k2 out ${q(tmp)}/ep3\\.fifo: splice refused \\(EINVAL\\), read/write from now on"`));
    has(new RegExp(`level=debug msg="copy k3 in started: unix:${q(tmp)}/k3-in\\.sock <- fifo:.* \\(splice\\)"`));
    has(/level=debug msg="copy k3 in unix:.*: input ended \(end of stream\), write side shut"/);
    has(/level=debug msg="copy k3 in unix:.* ended: input ended and the endpoint closed \(2197152 bytes\)"/);
    has(/level=debug msg="copy k4 in unix:.*in2\.sock ended: (the endpoint hung up|writing the endpoint: .*) \(\d+ bytes\)"/);
    has(/level=debug msg="copy k10 out \/dev\/null: splice refused \(EINVAL\), read\/write from now on"/);
    has(/level=warning msg="copy k6 out failed: connect .*stale\.sock: Connection refused"/);
  });

  it('shutdown: the monitors exit, holding only their own fds until then', async () => {
    for (const mon of [m, rw]) {
      const fds = fdsOf(mon);
      for (const l of fds) {
        assert.ok(l === '/dev/null' || /^socket:\[\d+\]$/.test(l) || l === 'anon_inode:[signalfd]' ||
          l === path.join(mon.bundle, 'log'), `unexpected ${mon.name} monitor fd ${l}`);
      }
      assert.ok(fds.length <= 8, fds.join(' '));
      // a copy still running when the monitor exits is closed with it
      const a = await agent(`exit-${mon.name}`);
      const fifo = mkfifo(path.join(tmp, `exit-${mon.name}.fifo`));
      assertOk(await req(mon, 'copy', 'k8', 'out', a.endpoint, `fifo:${fifo}`));
      const conn = new Sink(await a.accepted(), 'the exit agent connection');
      assertOk(await req(mon, 'shutdown'));
      await conn.close();
      await waitFor('the monitor to exit', () => !pidAlive(mon.pid), WAIT_MS);
    }
  });

  it('the sanitizers reported nothing (ASan build)', { skip: SANITIZED ? false : 'not the ASan build' }, () => {
    const dir = path.join(tmp, 'sanitizer');
    const reports = fs.readdirSync(dir).map((f) => fs.readFileSync(path.join(dir, f), 'utf8'));
    assert.deepEqual(reports, []);
  });
});
