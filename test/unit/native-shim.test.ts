// Tests of the native shim binary (native/): start, the monitor (control + proxy channels to a
// fake daemon written below), delete, shutdown. Needs root (mounts, /run/containerd/s).
//
//   make -C native && node --import tsx --test test/unit/native-shim.test.ts
//   TSRT_SHIM_BIN=native/build-asan/containerd-shim-tsrt-v2 ... runs the same against the ASan build.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn as spawnChild } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
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
// The monitor's stderr is /dev/null: under ASan every shim process logs its reports to files instead.
const SANITIZED = process.env.TSRT_SHIM_BIN !== undefined;

// The fake daemon: listens on $TSRT_DAEMON_DIR/daemon.sock and speaks the monitor frame format.
// On the first control hello it runs a script of requests and records what it saw. A proxy
// connection answers each ttrpc frame with a response frame "echo:<payload>" (or closes on
// "close-me"); a payload that is a ttrpc Request is recorded and answered with a ttrpc Response
// instead (or left unanswered while the file hold-rpcs exists). A line-JSON socket test.sock lets
// the test read the state, ask for shutdown, or make the daemon die.
const DAEMON_JS = String.raw`
import net from 'node:net';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';

const dir = process.env.TSRT_DAEMON_DIR;
const out = process.env.TSRT_TEST_OUT;
fs.writeFileSync(path.join(dir, 'daemon.pid'), String(process.pid));
const state = {
  pid: process.pid,
  env: { TSRT_DAEMON_DIR: dir, TTRPC_ADDRESS: process.env.TTRPC_ADDRESS, cwd: process.cwd() },
  controls: [], proxyHellos: [], reaped: [], events: [], checks: {}, errors: [], done: false,
  rpcs: [], partialBytes: 0,
};
const sessions = new Map();
const conns = new Set();

function readVarint(b, pos) {
  let v = 0;
  for (let shift = 0; shift < 35; shift += 7) {
    const byte = b[pos.i++];
    if (byte === undefined) return -1;
    v += (byte & 0x7f) * 2 ** shift;
    if (!(byte & 0x80)) return v;
  }
  return -1;
}

// service and method of a ttrpc.Request (null if the bytes are not one)
function rpcName(b) {
  if (b[0] !== 0x0a) return null;
  const pos = { i: 0 };
  const r = {};
  while (pos.i < b.length) {
    const key = readVarint(b, pos);
    if (key < 0) return null;
    const wire = key & 7;
    let v;
    if (wire === 0) v = readVarint(b, pos);
    else if (wire === 2) {
      const n = readVarint(b, pos);
      if (n < 0 || pos.i + n > b.length) return null;
      v = b.subarray(pos.i, pos.i + n).toString('latin1');
      pos.i += n;
    } else return null;
    if (v < 0) return null;
    if (key >> 3 === 1) r.service = v;
    if (key >> 3 === 2) r.method = v;
  }
  return r.service && r.method ? r : null;
}

function encode(fields) {
  const body = Buffer.concat(fields.map((f) => Buffer.concat([Buffer.from(String(f)), Buffer.from([0])])));
  const head = Buffer.alloc(4);
  head.writeUInt32BE(body.length);
  return Buffer.concat([head, body]);
}

// Splits the byte stream into (at most max) frames; returns [frames, rest].
function takeFrames(buf, max = Infinity) {
  const frames = [];
  while (buf.length >= 4 && frames.length < max) {
    const n = buf.readUInt32BE(0);
    if (buf.length < 4 + n) break;
    const body = buf.subarray(4, 4 + n);
    const fields = [];
    let s = 0;
    for (let i = 0; i < body.length; i++) if (body[i] === 0) { fields.push(body.subarray(s, i).toString()); s = i + 1; }
    frames.push(fields);
    buf = buf.subarray(4 + n);
  }
  return [frames, buf];
}

// the topmost mount on target (the last one listed)
function mountinfo(target) {
  let found = null;
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ');
    if (f[4] === target) found = { opts: f[5], super: line.split(' - ')[1] };
  }
  return found;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function controlSession(sock) {
  const waiters = new Map();
  const reaped = new Map();
  const reapWaiters = new Map();
  const reapHooks = new Map();
  const order = [];
  const ooms = [];
  let seq = 0;
  return {
    order, reaped, ooms,
    onFrame(f) {
      if (f[0] === 'reaped' || f[0] === 'oom') {
        // every event is numbered; it is acknowledged at once, as a daemon that recorded it would,
        // unless the file hold-acks exists
        state.events.push([f[0], f[1], f[2]]);
        if (!fs.existsSync(path.join(out, 'hold-acks'))) sock.write(encode(['ack', f[1]]));
        f = [f[0], ...f.slice(2)];
      }
      if (f[0] === 'ok' || f[0] === 'error') {
        order.push(f[0] + ':' + f[1]);
        const w = waiters.get(f[1]);
        waiters.delete(f[1]);
        if (w) w(f);
      } else if (f[0] === 'reaped') {
        order.push('reaped:' + f[1]);
        state.reaped.push(f.slice(1, 3));
        reaped.set(Number(f[1]), f.slice(2));
        reapHooks.get(Number(f[1]))?.(); // synchronously, before any later byte is looked at
        const w = reapWaiters.get(Number(f[1]));
        if (w) w(f.slice(2));
      } else if (f[0] === 'oom') {
        order.push('oom:' + f[1]);
        ooms.push(f[1]);
      }
    },
    req(...fields) {
      const s = String(++seq);
      return new Promise((res) => {
        waiters.set(s, res);
        sock.write(encode([fields[0], s, ...fields.slice(1)]));
      });
    },
    onReaped(pid, fn) {
      reapHooks.set(pid, fn);
    },
    waitReaped(pid) {
      if (reaped.has(pid)) return Promise.resolve(reaped.get(pid));
      return new Promise((res) => reapWaiters.set(pid, res));
    },
  };
}

// Polls until fn() is truthy, 20 s at most: what the fake daemon waits for takes milliseconds on a quiet
// machine and seconds on a slow, busy one (an OOM hog, 300 kB through a pty); it returns as soon as it holds.
async function until(what, fn) {
  const end = Date.now() + 20000;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error('timed out waiting for ' + what);
    await sleep(10);
  }
}

function readIfExists(p) {
  try { return fs.readFileSync(p, 'utf8'); } catch { return ''; }
}

// Non-blocking reader of a FIFO the test holds open: read() appends what is there to text.
function fifoReader(p) {
  const fd = fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  const b = Buffer.alloc(65536);
  const r = {
    text: '',
    /** a read found no writer left (EOF); opened after the monitor's own end, so not before it closed */
    eof: false,
    read() {
      for (;;) {
        let n;
        try { n = fs.readSync(fd, b); } catch (e) { if (e.code === 'EAGAIN') return r.text; throw e; }
        if (n <= 0) { r.eof = true; return r.text; }
        r.text += b.subarray(0, n).toString('latin1');
      }
    },
    close() { fs.closeSync(fd); },
  };
  return r;
}

// utime + stime of a process, in clock ticks
function cpuTicks(pid) {
  const stat = fs.readFileSync('/proc/' + pid + '/stat', 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]);
}

// console, consolewait, resize: tsrt-console-peer (native/tests) plays runc's part
async function consoleChecks(ctl, c, monitorPid) {
  const peer = process.env.TSRT_TEST_PEER;
  const conIn = path.join(out, 'con-in.fifo');
  const conOut = path.join(out, 'con-out.fifo');
  execFileSync('mkfifo', [conIn, conOut]);
  c.console = await ctl.req('console', 'k6', 'fifo:' + conIn, 'fifo:' + conOut);
  const sock = c.console[2];
  c.consoleSockIsSocket = fs.statSync(sock).isSocket();
  c.consoleDirMode = fs.statSync(path.dirname(sock)).mode & 0o777;
  c.consoleAgain = await ctl.req('console', 'k6', '', '');
  c.resizeEarly = await ctl.req('resize', 'k6', 80, 24);
  // the client's ends: the monitor's own ends keep both FIFOs open
  const rd = fifoReader(conOut);
  const wfd = fs.openSync(conIn, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
  const waiting = ctl.req('consolewait', 'k6', 5000); // answered when the master arrives
  const sp = await ctl.req('spawn', 'k6', '', '', '', '', 2, peer, sock, 0);
  c.peerSpawn = sp;
  c.consoleWait = await waiting;
  c.consoleWaitAgain = await ctl.req('consolewait', 'k6', 0);
  c.consoleSockAfter = fs.existsSync(sock);
  c.monitorFdsWithMaster = fs.readdirSync('/proc/' + monitorPid + '/fd').map((fd) => {
    try { return fs.readlinkSync('/proc/' + monitorPid + '/fd/' + fd); } catch { return ''; }
  });
  await until('ready from the peer', () => rd.read().includes('ready\r\n'));
  fs.writeSync(wfd, 'echo ping\n');
  await until('the echo', () => rd.read().includes('got:ping\r\n'));
  c.resize = await ctl.req('resize', 'k6', 100, 40);
  fs.writeSync(wfd, 'size\n');
  await until('the window size', () => /size .*\r\n/.test(rd.read()));
  c.consoleOut = rd.text;
  rd.text = '';
  // backpressure: nobody reads stdout, so the FIFO, the monitor's buffer and the pty fill up and
  // the peer blocks; the monitor must sleep meanwhile, not spin
  fs.writeSync(wfd, 'flood 300000\n');
  await sleep(300);
  const ticks0 = cpuTicks(monitorPid);
  await sleep(500);
  c.floodIdleTicks = cpuTicks(monitorPid) - ticks0;
  await until('the flood', () => rd.read().endsWith('done\r\n'));
  c.floodLength = rd.text.length;
  c.floodIntact = rd.text === '0123456789'.repeat(30000) + 'done\r\n';
  rd.text = '';
  // what the peer wrote before exiting is in the FIFO when its reaped event arrives
  ctl.onReaped(Number(sp[2]), () => { c.byeBeforeReaped = rd.read().includes('bye\r\n'); });
  fs.writeSync(wfd, 'exit\n');
  c.peerReaped = await ctl.waitReaped(Number(sp[2]));
  c.consoleTail = rd.read();
  // with its process gone the console's output has ended: stdout is closed before any release
  await until('EOF on the console stdout', () => { rd.read(); return rd.eof; });
  c.consoleRelease = await ctl.req('release', 'k6');
  rd.close();
  fs.closeSync(wfd);

  // consolewait: no console, and a console nobody connects to
  c.waitNoConsole = await ctl.req('consolewait', 'k-none', 100);
  c.resizeNoConsole = await ctl.req('resize', 'k-none', 10, 10);
  c.console2 = await ctl.req('console', 'k7', '', '');
  const t0 = Date.now();
  c.waitTimeout = await ctl.req('consolewait', 'k7', 150);
  c.waitTimeoutMs = Date.now() - t0;
  c.console2SockBefore = fs.existsSync(c.console2[2]);
  c.console2Release = await ctl.req('release', 'k7');
  c.console2SockAfter = fs.existsSync(c.console2[2]);
  c.consoleBadSpec = await ctl.req('console', 'k7', '', 'pipe:x');
  c.consoleMissingFifo = await ctl.req('console', 'k7', 'fifo:' + path.join(out, 'no-such.fifo'), '');

  // stdin EOF (closeio, then the client closes) shuts the console down; stdout to a file
  const in3 = path.join(out, 'con3-in.fifo');
  const out3 = path.join(out, 'con3', 'out.txt');
  execFileSync('mkfifo', [in3]);
  c.console3 = await ctl.req('console', 'k8', 'fifo:' + in3, 'file:' + out3);
  const sp3 = await ctl.req('spawn', 'k8', '', '', '', '', 2, peer, c.console3[2], 0);
  c.console3Wait = await ctl.req('consolewait', 'k8', 5000);
  const w3 = fs.openSync(in3, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
  fs.writeSync(w3, 'echo last\n');
  await until('the echo in the file', () => readIfExists(out3).includes('got:last\r\n'));
  await sleep(100);
  c.peer3AliveBeforeCloseio = !ctl.reaped.has(Number(sp3[2]));
  c.closeio3 = await ctl.req('closeio', 'k8');
  await sleep(100);
  c.peer3AliveAfterCloseio = !ctl.reaped.has(Number(sp3[2]));
  fs.closeSync(w3);
  c.peer3Reaped = await ctl.waitReaped(Number(sp3[2]));
  c.resizeClosed = await ctl.req('resize', 'k8', 10, 10);
  c.console3Out = fs.readFileSync(out3, 'utf8');
  await ctl.req('release', 'k8');
}

// logger and the logger:1 / logger:2 stdio specs
async function loggerChecks(ctl, c) {
  const dir = path.join(out, 'logger');
  fs.mkdirSync(dir);
  // (the redirection to fd 5 in a subshell: dash saves an fd above 9 while it applies one itself)
  const script = 'cat <&3 > ' + dir + '/out.log & cat <&4 > ' + dir + '/err.log & ' +
    'trap "echo term > ' + dir + '/term.txt; exit 0" TERM; (printf r >&5); while :; do sleep 0.05; done';
  c.logger = await ctl.req('logger', 'k10', 'c1', 'tsrt-unit', 3, '/bin/sh', '-c', script);
  const lpid = Number(c.logger[2]);
  c.loggerEnv = fs.readFileSync('/proc/' + lpid + '/environ', 'latin1');
  c.loggerFds = Object.fromEntries(fs.readdirSync('/proc/' + lpid + '/fd').map((fd) => {
    try { return [fd, fs.readlinkSync('/proc/' + lpid + '/fd/' + fd).replace(/:\[\d+\]$/, '')]; } catch { return [fd, '']; }
  }));
  c.loggerAgain = await ctl.req('logger', 'k10', 'c1', 'tsrt-unit', 1, '/bin/true');
  c.loggerMissing = await ctl.req('logger', 'k11', 'c1', 'tsrt-unit', 1, '/nonexistent/tsrt-logger');
  c.loggerMalformed = await ctl.req('logger', 'k11', 'c1', 'tsrt-unit', 2, '/bin/true');
  c.spawnNoLogger = await ctl.req('spawn', 'k12', '', '', 'logger:1', '', 1, '/bin/true', 0);
  const sp = await ctl.req('spawn', 'k10', '', '', 'logger:1', 'logger:2', 3, '/bin/sh', '-c',
    'echo to-out; echo to-err >&2', 0);
  c.loggedSpawn = sp;
  c.loggedReaped = await ctl.waitReaped(Number(sp[2]));
  await sleep(50);
  c.loggerAliveBeforeRelease = !ctl.reaped.has(lpid);
  c.loggerRelease = await ctl.req('release', 'k10');
  c.loggerReaped = await ctl.waitReaped(lpid);
  c.loggerTerm = readIfExists(path.join(dir, 'term.txt'));
  await until('the logger output', () => readIfExists(path.join(dir, 'out.log')) && readIfExists(path.join(dir, 'err.log')));
  c.loggerOut = readIfExists(path.join(dir, 'out.log'));
  c.loggerErr = readIfExists(path.join(dir, 'err.log'));
}

// oomwatch: v2 on a plain directory whose memory.events the test writes (this host's cgroup2 has no
// memory controller), v1 on a real memory cgroup with a small limit and a shell that outgrows it
async function oomChecks(ctl, c) {
  const cg2 = path.join(out, 'cg2');
  fs.mkdirSync(cg2);
  const ev = path.join(cg2, 'memory.events');
  const events = (oom, kill) => 'low 0\nhigh 0\nmax 5\noom ' + oom + '\noom_kill ' + kill + '\noom_group_kill 0\n';
  fs.writeFileSync(ev, events(1, 1)); // kills before the watch are not reported
  c.oomWatch2 = await ctl.req('oomwatch', 'k20', 'v2', cg2);
  c.oomWatch2Again = await ctl.req('oomwatch', 'k20', 'v2', cg2);
  fs.writeFileSync(ev, events(2, 1)); // an OOM without a kill is not reported
  await sleep(100);
  c.oomsAfterNoKill = ctl.ooms.length;
  fs.writeFileSync(ev, events(3, 2));
  await until('the v2 oom event', () => ctl.ooms.length >= 1);
  // a kill written just before a child exits is reported ahead of that child's reaped event
  const sp = await ctl.req('spawn', 'k22', '', '', '', '', 3, '/bin/sh', '-c',
    "printf '" + events(4, 3) + "' > " + ev, 0);
  await ctl.waitReaped(Number(sp[2]));
  await until('the second v2 oom event', () => ctl.ooms.length >= 2);
  c.oom2BeforeReaped = ctl.order.lastIndexOf('oom:k20') < ctl.order.indexOf('reaped:' + sp[2]);
  // two kills counted between two looks are two events
  fs.writeFileSync(ev, events(5, 5));
  await until('the fourth v2 oom event', () => ctl.ooms.length >= 4);
  c.oomRelease2 = await ctl.req('release', 'k20');
  fs.writeFileSync(ev, events(6, 6));
  await sleep(100);
  c.ooms2 = ctl.ooms.slice();
  c.oomBadVersion = await ctl.req('oomwatch', 'k23', 'v3', cg2);
  c.oomRelative = await ctl.req('oomwatch', 'k23', 'v2', 'cg2');
  c.oomMissing = await ctl.req('oomwatch', 'k23', 'v2', path.join(out, 'missing'));
  c.oomNotV1 = await ctl.req('oomwatch', 'k23', 'v1', cg2);
  c.oomMalformed = await ctl.req('oomwatch', 'k23', 'v2');

  const mem = '/sys/fs/cgroup/memory';
  if (!fs.existsSync(path.join(mem, 'memory.oom_control'))) return;
  const cg1 = path.join(mem, 'tsrt-unit-oom-' + process.pid);
  fs.mkdirSync(cg1);
  try {
    fs.writeFileSync(path.join(cg1, 'memory.limit_in_bytes'), String(16 << 20));
    if (fs.existsSync(path.join(cg1, 'memory.memsw.limit_in_bytes'))) fs.writeFileSync(path.join(cg1, 'memory.memsw.limit_in_bytes'), String(16 << 20));
    c.oomWatch1 = await ctl.req('oomwatch', 'k21', 'v1', cg1);
    // dash keeps a command substitution's output in its own memory: 100 MB outgrow the 16 MB limit
    const hog = await ctl.req('spawn', 'k21', '', '', '', '', 3, '/bin/sh', '-c',
      'echo $$ > ' + cg1 + '/cgroup.procs && a=$(head -c 100000000 /dev/zero | tr "\\0" x); exit 0', 0);
    c.hogReaped = await ctl.waitReaped(Number(hog[2]));
    c.oom1BeforeReaped = ctl.order.indexOf('oom:k21') >= 0 && ctl.order.indexOf('oom:k21') < ctl.order.indexOf('reaped:' + hog[2]);
    await until('an empty memory cgroup', () => fs.readFileSync(path.join(cg1, 'cgroup.procs'), 'utf8').trim() === '');
    // The kernel's own count is the truth: it signals the eventfd many times for one kill, and under
    // load it sometimes kills the shell and then tr as well (two kills, seen in dmesg), so the monitor
    // must report exactly as many events as the cgroup counts kills.
    c.kernelKills1 = Number(/^oom_kill (\d+)$/m.exec(fs.readFileSync(path.join(cg1, 'memory.oom_control'), 'utf8'))?.[1]);
    // a kill of a process the monitor has not reaped yet is reported at that reap: wait for them all,
    // then leave a duplicate the time to show up
    await until('an event per kill', () => ctl.ooms.filter((k) => k === 'k21').length >= c.kernelKills1);
    await sleep(100);
    c.oomKills1 = ctl.ooms.filter((k) => k === 'k21').length;
    // with the OOM killer disabled the hog just waits: one event for the episode, however long it lasts
    fs.writeFileSync(path.join(cg1, 'memory.oom_control'), '1');
    const stuck = await ctl.req('spawn', 'k21', '', '', '', '', 3, '/bin/sh', '-c',
      'echo $$ > ' + cg1 + '/cgroup.procs && a=$(head -c 100000000 /dev/zero | tr "\\0" x); exit 0', 0);
    await until('the under_oom event', () => ctl.ooms.filter((k) => k === 'k21').length > c.oomKills1);
    await sleep(300);
    c.oomUnder1 = ctl.ooms.filter((k) => k === 'k21').length - c.oomKills1;
    for (const pid of fs.readFileSync(path.join(cg1, 'cgroup.procs'), 'utf8').trim().split('\n').filter(Boolean)) {
      try { process.kill(Number(pid), 'SIGKILL'); } catch { /* gone */ }
    }
    c.stuckReaped = await ctl.waitReaped(Number(stuck[2]));
    await until('an empty memory cgroup', () => fs.readFileSync(path.join(cg1, 'cgroup.procs'), 'utf8').trim() === '');
    const before = ctl.ooms.length;
    // removing the cgroup signals the eventfd once more: the monitor drops the watch without an event
    fs.rmdirSync(cg1);
    await sleep(150);
    c.oomsAfterRmdir = ctl.ooms.length - before;
    c.oomRelease1 = await ctl.req('release', 'k21');
  } finally {
    try { fs.rmdirSync(cg1); } catch { /* removed above */ }
  }
}

// An exec server (tsrt-launch serve, stdin a channel): processes handed off to it are the monitor's
// children, with the stdio the handoff named; errors come back as ENOEXEC with the launcher's line; its
// release ends it.
async function serveChecks(ctl, c, monitorPid) {
  const planFile = path.join(out, 'serve.plan');
  fs.writeFileSync(planFile, 'tsrt-plan 1\nerrfile ' + path.join(out, 'serve.err') + '\n');
  const s = await ctl.req('spawn', 'srv', '', 'channel:', '', '', 3, process.env.TSRT_TEST_LAUNCH, 'serve', planFile, 0);
  c.serveSpawn = s;
  c.serveAgain = await ctl.req('spawn', 'srv', '', 'channel:', '', '', 1, '/bin/true', 0);
  const proc = (...args) => ['tsrt-plan 1', 'groups', 'user 0 0', 'umask 0022', 'cwd /', 'env PATH=/usr/bin:/bin',
    ...args.map((a) => 'arg ' + a)].join('\n') + '\n';
  const servedOut = path.join(out, 'served.txt');
  // two at once: answered in order, each with its own pid
  const [h1, h2] = await Promise.all([
    ctl.req('handoff', 'h1', 'srv', '', 'file:' + servedOut, '', proc('/bin/sh', '-c', 'echo%20parent%20%24PPID')),
    ctl.req('handoff', 'h2', 'srv', '', '', '', proc('/bin/sh', '-c', 'exit%205')),
  ]);
  c.handoff1 = h1;
  c.handoff2 = h2;
  c.handoff1Reaped = await ctl.waitReaped(Number(h1[2]));
  c.handoff2Reaped = await ctl.waitReaped(Number(h2[2]));
  c.servedOut = fs.readFileSync(servedOut, 'utf8');
  c.monitorPid = monitorPid;
  c.handoffMissing = await ctl.req('handoff', 'h3', 'srv', '', '', '', proc('/nonexistent/tsrt-served'));
  c.handoffBadPlan = await ctl.req('handoff', 'h4', 'srv', '', '', '', 'tsrt-plan 1\nfrobnicate x\n');
  c.handoffNoServer = await ctl.req('handoff', 'h5', 'nosuch', '', '', '', proc('/bin/true'));
  c.handoffChannelStdin = await ctl.req('handoff', 'h6', 'srv', 'channel:', '', '', proc('/bin/true'));
  c.serveRelease = await ctl.req('release', 'srv');
  c.serveReaped = await ctl.waitReaped(Number(s[2]));
  c.handoffReleased = await ctl.req('handoff', 'h7', 'srv', '', '', '', proc('/bin/true'));
}

async function runChecks(ctl, monitorPid) {
  const c = state.checks;
  await serveChecks(ctl, c, monitorPid);
  // a plain child: reply first, then its reaped event with the exit code
  const r1 = await ctl.req('spawn', 'k1', '', '', '', '', 3, '/bin/sh', '-c', 'exit 3', 0);
  c.spawn = r1;
  c.reaped = await ctl.waitReaped(Number(r1[2]));
  c.replyBeforeReaped = ctl.order.indexOf('ok:' + r1[1]) < ctl.order.indexOf('reaped:' + r1[2]);
  // exec failure is an error reply with the errno
  c.spawnMissing = await ctl.req('spawn', 'k2', '', '', '', '', 1, '/nonexistent/tsrt-test-binary', 0);
  c.spawnBadStdio = await ctl.req('spawn', 'k2', '', 'pipe:x', '', '', 1, '/bin/true', 0);
  c.spawnMalformed = await ctl.req('spawn', 'k2', '', '', '', '', 5, '/bin/true', 0);
  // file: stdio (parents created), cwd, explicit environment
  const outFile = path.join(out, 'logs', 'sub', 'out.txt');
  const r3 = await ctl.req('spawn', 'k3', out, '', 'file:' + outFile, 'file:' + outFile, 3,
    '/bin/sh', '-c', 'echo "$FOO $(pwd)"; echo err >&2; for f in /proc/self/fd/*; do printf "%s " "$\{f##*/}"; done',
    1, 'FOO=bar');
  c.fileSpawn = r3;
  c.fileReaped = await ctl.waitReaped(Number(r3[2]));
  c.fileOut = fs.readFileSync(outFile, 'utf8');
  // fifo stdout: the keeper reader keeps the pipe open after the child is gone
  const fifoOut = path.join(out, 'stdout.fifo');
  execFileSync('mkfifo', [fifoOut]);
  const r4 = await ctl.req('spawn', 'k4', '', '', 'fifo:' + fifoOut, '', 3, '/bin/sh', '-c', 'echo fifo-ok', 0);
  c.fifoSpawn = r4;
  c.fifoReaped = await ctl.waitReaped(Number(r4[2]));
  const rfd = fs.openSync(fifoOut, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  const b = Buffer.alloc(64);
  c.fifoOut = b.subarray(0, fs.readSync(rfd, b)).toString();
  fs.closeSync(rfd);
  c.release = await ctl.req('release', 'k4');
  // fifo stdin: EOF only after closeio drops the keeper writer
  const fifoIn = path.join(out, 'stdin.fifo');
  const catOut = path.join(out, 'cat.txt');
  execFileSync('mkfifo', [fifoIn]);
  const r5 = await ctl.req('spawn', 'k5', '', 'fifo:' + fifoIn, 'file:' + catOut, '', 1, 'cat', 0);
  c.catSpawn = r5;
  const wfd = fs.openSync(fifoIn, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
  fs.writeSync(wfd, 'abc');
  fs.closeSync(wfd);
  await sleep(150);
  c.catAliveBeforeCloseio = !ctl.reaped.has(Number(r5[2]));
  c.closeio = await ctl.req('closeio', 'k5');
  c.catReaped = await ctl.waitReaped(Number(r5[2]));
  c.catOut = fs.readFileSync(catOut, 'utf8');
  await ctl.req('release', 'k5');
  // mount / umount: tmpfs with flags and data, a stacked second mount, a read-only bind
  const mnt = path.join(out, 'mnt');
  fs.mkdirSync(mnt);
  c.mount = await ctl.req('mount', 'tmpfs', 'tsrt-test-a', mnt, 'nosuid,nodev,size=1m,mode=711');
  c.mountInfo = mountinfo(mnt);
  c.mount2 = await ctl.req('mount', 'tmpfs', 'tsrt-test-b', mnt, 'ro,noexec');
  c.mountInfo2 = mountinfo(mnt);
  const bsrc = path.join(out, 'bind-src');
  const btgt = path.join(out, 'bind-tgt');
  fs.mkdirSync(bsrc);
  fs.mkdirSync(btgt);
  c.bind = await ctl.req('mount', '', bsrc, btgt, 'rbind,ro,rprivate');
  c.bindInfo = mountinfo(btgt);
  c.umount = await ctl.req('umount', mnt);
  c.unmounted = mountinfo(mnt) === null;
  c.umountAgain = await ctl.req('umount', mnt);
  c.umountBind = await ctl.req('umount', btgt);
  c.unmountedBind = mountinfo(btgt) === null;
  c.mountBad = await ctl.req('mount', 'tsrt-no-such-fs', 'x', mnt, '');
  c.unknown = await ctl.req('frobnicate');
  await consoleChecks(ctl, c, monitorPid);
  c.iostats = await ctl.req('iostats');
  await loggerChecks(ctl, c);
  await oomChecks(ctl, c);
  c.order = ctl.order;
}

function onControl(sock, hello, rest) {
  const ctl = controlSession(sock);
  state.controls.push(hello);
  sessions.set(hello[1], { sock, ctl });
  let buf = rest;
  const feed = () => {
    const [frames, left] = takeFrames(buf);
    buf = left;
    for (const f of frames) ctl.onFrame(f);
  };
  sock.on('data', (d) => { buf = Buffer.concat([buf, d]); feed(); });
  feed();
  // a daemon started again by the monitor must not repeat the script
  const marker = path.join(out, 'checks-started');
  if (state.controls.length === 1 && !fs.existsSync(marker)) {
    fs.writeFileSync(marker, '');
    runChecks(ctl, hello[2]).catch((e) => state.errors.push(String(e && e.stack || e))).finally(() => { state.done = true; });
  } else {
    state.done = true;
  }
}

function onProxy(sock, hello, rest) {
  state.proxyHellos.push(hello[1]);
  let buf = rest;
  const feed = () => {
    while (buf.length >= 10) {
      const n = buf.readUInt32BE(0);
      if (buf.length < 10 + n) break;
      const id = buf.readUInt32BE(4);
      const raw = buf.subarray(0, 10 + n);
      const payload = buf.subarray(10, 10 + n).toString();
      buf = buf.subarray(10 + n);
      const rpc = rpcName(raw.subarray(10));
      if (rpc) {
        const rec = { id, frame: raw.toString('hex'), service: rpc.service, method: rpc.method };
        state.rpcs.push(rec);
        if (fs.existsSync(path.join(out, 'hold-rpcs'))) continue;
        // Response{payload: "<method> <id> answered by <pid>"}
        const text = Buffer.from(rpc.method + ' ' + id + ' answered by ' + process.pid);
        const body = Buffer.concat([Buffer.from([0x12, text.length]), text]);
        const head = Buffer.alloc(10);
        head.writeUInt32BE(body.length, 0);
        head.writeUInt32BE(id, 4);
        head[8] = 2;
        rec.answer = body.toString('hex');
        sock.write(Buffer.concat([head, body]));
        continue;
      }
      if (payload === 'close-me') { sock.destroy(); return; }
      const body = Buffer.from('echo:' + payload);
      const head = Buffer.alloc(10);
      head.writeUInt32BE(body.length, 0);
      head.writeUInt32BE(id, 4);
      head[8] = 2;
      sock.write(Buffer.concat([head, body]));
      // like a Shutdown RPC: answer it, then tell the monitor to go
      if (payload === 'shutdown-rpc') {
        const s = sessions.get(hello[1]);
        s.ctl.req('shutdown').then((r) => { state.shutdownReply = r; });
      }
    }
    state.partialBytes = buf.length;
  };
  sock.on('data', (d) => { buf = Buffer.concat([buf, d]); feed(); });
  feed();
}

const server = net.createServer((sock) => {
  conns.add(sock);
  sock.on('close', () => conns.delete(sock));
  sock.on('error', () => {});
  let buf = Buffer.alloc(0);
  const first = (d) => {
    buf = Buffer.concat([buf, d]);
    const [frames, rest] = takeFrames(buf, 1);
    if (frames.length === 0) return;
    sock.off('data', first);
    const hello = frames[0];
    // frames after the hello on a control connection would be replies; none are expected yet
    if (hello[0] === 'control') onControl(sock, hello, rest);
    else if (hello[0] === 'proxy') onProxy(sock, hello, rest);
    else { state.errors.push('unknown hello ' + hello[0]); sock.destroy(); }
  };
  sock.on('data', first);
});
fs.rmSync(path.join(dir, 'daemon.sock'), { force: true });
fs.rmSync(path.join(dir, 'test.sock'), { force: true });
server.listen(path.join(dir, 'daemon.sock'));

const test = net.createServer((sock) => {
  sock.on('error', () => {});
  let buf = '';
  sock.on('data', async (d) => {
    buf += d;
    const nl = buf.indexOf('\n');
    if (nl < 0) return;
    const cmd = JSON.parse(buf.slice(0, nl));
    buf = buf.slice(nl + 1);
    if (cmd.cmd === 'state') sock.end(JSON.stringify(state) + '\n');
    else if (cmd.cmd === 'shutdown') {
      const s = sessions.get(cmd.monitor);
      const r = s ? await s.ctl.req('shutdown') : ['no-such-monitor'];
      sock.end(JSON.stringify(r) + '\n');
    } else if (cmd.cmd === 'dropcontrol') {
      // the control connection breaks; the daemon lives on and the monitor connects again
      const s = sessions.get(cmd.monitor);
      if (s) s.sock.destroy();
      sock.end(JSON.stringify([s ? 'dropped' : 'no-such-monitor']) + '\n');
    } else if (cmd.cmd === 'die') {
      // a crash without answers: every monitor connection and the listener go away at once
      for (const c of conns) c.destroy();
      server.close();
      test.close();
      sock.end(JSON.stringify(['dying']) + '\n', () => process.exit(1));
    } else if (cmd.cmd === 'spawn' || cmd.cmd === 'req') {
      const s = sessions.get(cmd.monitor);
      const args = cmd.cmd === 'spawn' ? ['spawn', ...cmd.args] : cmd.args;
      const r = s ? await s.ctl.req(...args) : ['no-such-monitor'];
      sock.end(JSON.stringify(r) + '\n');
    }
  });
});
test.listen(path.join(dir, 'test.sock'));
process.on('SIGTERM', () => process.exit(0));
`;

// containerd may pass an options Any on start's stdin; it is ignored
const runShim = (args: string[], opts: { cwd: string; env: NodeJS.ProcessEnv }): Promise<RunResult> =>
  runBinary(BIN, args, { ...opts, stdin: Buffer.from([0x0a, 0x00]) });


function ppidOf(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
}

// Processes running our binary whose cwd is inside dir.
function shimProcesses(dir: string): number[] {
  const real = fs.realpathSync(BIN);
  const found: number[] = [];
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (fs.readlinkSync(`/proc/${e}/exe`) === real && fs.readlinkSync(`/proc/${e}/cwd`).startsWith(dir)) {
        found.push(Number(e));
      }
    } catch { /* gone, or a kernel thread */ }
  }
  return found;
}

function childrenOf(pid: number): { pid: number; state: string }[] {
  const kids: { pid: number; state: string }[] = [];
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${e}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(f[1]) === pid) kids.push({ pid: Number(e), state: f[0]! });
    } catch { /* gone */ }
  }
  return kids;
}

// Inode of the listening unix socket bound at path, from /proc/net/unix.
function unixSocketInode(p: string): string | undefined {
  for (const line of fs.readFileSync('/proc/net/unix', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[7] === p) return f[6];
  }
  return undefined;
}

function isMounted(target: string): boolean {
  return fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === target);
}

/** A client connection to a unix socket with a ttrpc frame reader on it. */
async function connectFramed(p: string): Promise<{ sock: net.Socket; reader: FrameReader }> {
  const sock = net.connect(p);
  await new Promise<void>((res, rej) => { sock.once('connect', res); sock.once('error', rej); });
  return { sock, reader: new FrameReader(sock) };
}

function ttrpcFrame(id: number, payload: string): Buffer {
  const body = Buffer.from(payload);
  const head = Buffer.alloc(10);
  head.writeUInt32BE(body.length, 0);
  head.writeUInt32BE(id, 4);
  head[8] = 1; // request
  return Buffer.concat([head, body]);
}

function pbVarint(v: number): Buffer {
  const out: number[] = [];
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
  return Buffer.from(out);
}

function pbBytes(field: number, v: Buffer | string): Buffer {
  const b = Buffer.from(v);
  return Buffer.concat([pbVarint((field << 3) | 2), pbVarint(b.length), b]);
}

// A ttrpc request frame carrying a hand-encoded ttrpc.Request{service, method, payload,
// timeout_nano, metadata}.
function ttrpcRequest(id: number, service: string, method: string, payload: Buffer): Buffer {
  const body = Buffer.concat([
    pbBytes(1, service),
    pbBytes(2, method),
    pbBytes(3, payload),
    pbVarint(4 << 3), pbVarint(5_000_000_000), // timeout_nano
    pbBytes(5, Buffer.concat([pbBytes(1, 'containerd-namespace'), pbBytes(2, 'tsrt-unit')])),
  ]);
  const head = Buffer.alloc(10);
  head.writeUInt32BE(body.length, 0);
  head.writeUInt32BE(id, 4);
  head[8] = 1; // request
  return Buffer.concat([head, body]);
}

// Reads ttrpc frames from a socket as they come.
class FrameReader {
  private buf = Buffer.alloc(0);
  private waiting: (() => void) | null = null;
  constructor(sock: net.Socket) {
    sock.on('data', (d: Buffer) => { this.buf = Buffer.concat([this.buf, d]); this.waiting?.(); });
  }
  async next(timeoutMs = 20_000): Promise<{ id: number; type: number; payload: Buffer }> {
    const end = Date.now() + timeoutMs;
    while (this.buf.length < 10 || this.buf.length < 10 + this.buf.readUInt32BE(0)) {
      if (Date.now() > end) throw new Error('timed out waiting for a ttrpc frame');
      await new Promise<void>((r) => { this.waiting = r; setTimeout(r, 50); });
    }
    const n = this.buf.readUInt32BE(0);
    const f = { id: this.buf.readUInt32BE(4), type: this.buf[8]!, payload: this.buf.subarray(10, 10 + n) };
    this.buf = this.buf.subarray(10 + n);
    return f;
  }
  get buffered(): number {
    return this.buf.length;
  }
}

function readVarint(b: Buffer, pos: { i: number }): bigint {
  let v = 0n;
  let shift = 0n;
  for (;;) {
    const byte = b[pos.i++];
    if (byte === undefined) throw new Error('truncated varint');
    v |= BigInt(byte & 0x7f) << shift;
    if (!(byte & 0x80)) return v;
    shift += 7n;
  }
}

// Hand-decoded containerd.task.v2.DeleteResponse.
function decodeDeleteResponse(b: Buffer) {
  const r = { pid: 0, exitStatus: 0, seconds: 0n, nanos: 0 };
  const pos = { i: 0 };
  while (pos.i < b.length) {
    const key = Number(readVarint(b, pos));
    const field = key >> 3;
    const wire = key & 7;
    if (wire === 0) {
      const v = readVarint(b, pos);
      if (field === 1) r.pid = Number(v);
      else if (field === 2) r.exitStatus = Number(v);
    } else if (wire === 2) {
      const len = Number(readVarint(b, pos));
      const sub = b.subarray(pos.i, pos.i + len);
      pos.i += len;
      assert.equal(field, 3, 'only exited_at is length-delimited');
      const sp = { i: 0 };
      while (sp.i < sub.length) {
        const k = Number(readVarint(sub, sp));
        const v = readVarint(sub, sp);
        if (k === 0x08) r.seconds = v;
        else if (k === 0x10) r.nanos = Number(v);
        else throw new Error(`unexpected Timestamp key ${k}`);
      }
    } else {
      throw new Error(`unexpected wire type ${wire}`);
    }
  }
  return r;
}

describe('native shim binary', { skip: IS_ROOT ? false : 'needs root' }, () => {
  const unique = randomBytes(6).toString('hex');
  const ns = 'tsrt-unit';
  const group = `grp-${unique}`;
  let tmp = '';
  let address = '';
  let daemonDir = '';
  let env: NodeJS.ProcessEnv = {};
  let b1 = '';
  let b2 = '';
  let shimAddress = '';
  let sockPath = '';
  let monitorId = '';
  let monitorPid = 0;
  let daemonPid = 0;
  const mountsToClean: string[] = [];
  let logFd = -1;

  before(() => {
    if (!process.env.TSRT_SHIM_BIN) execFileSync('make', ['-s', '-C', path.join(ROOT, 'native')], { stdio: 'inherit' });
    execFileSync('make', ['-s', '-C', path.join(ROOT, 'native'), 'tests'], { stdio: 'inherit' });
    tmp = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'tsrt-native-')));
    address = path.join(tmp, 'containerd.sock');
    // TTRPC_ADDRESS is left unset: the shim falls back to <-address>.ttrpc
    const ttrpc = `${address}.ttrpc`;
    daemonDir = `/run/tsrt/${createHash('sha256').update(ttrpc).digest('hex').slice(0, 16)}`;
    const script = path.join(tmp, 'daemon.mjs');
    fs.writeFileSync(script, DAEMON_JS);
    env = { ...process.env, TSRT_NODE: process.execPath, TSRT_DAEMON: script, TSRT_TEST_OUT: tmp,
      ASAN_OPTIONS: [process.env.ASAN_OPTIONS, `log_path=${tmp}/sanitizer/asan`].filter(Boolean).join(':'),
      UBSAN_OPTIONS: [process.env.UBSAN_OPTIONS, `log_path=${tmp}/sanitizer/ubsan`].filter(Boolean).join(':'),
      TSRT_TEST_PEER: path.join(ROOT, 'native/build/tests/tsrt-console-peer'),
      TSRT_TEST_LAUNCH: path.resolve(process.env.TSRT_LAUNCH_BIN ?? path.join(ROOT, 'native/build/tsrt-launch')) };
    delete env.TTRPC_ADDRESS;
    delete env.TSRT_DAEMON_DIR;
    b1 = path.join(tmp, 'bundle1');
    b2 = path.join(tmp, 'bundle2');
    for (const b of [b1, b2]) fs.mkdirSync(path.join(b, 'rootfs'), { recursive: true });
    fs.mkdirSync(path.join(tmp, 'sanitizer'));
    // escapes everywhere; the group is spelt with \u002d; the runc group key wins over sandbox-id
    fs.writeFileSync(path.join(b1, 'config.json'), `{"ociVersion":"1.0.2","process":{"args":["sh","-c","echo \\"}\\""],
      "env":[]},"root":{"path":"rootfs"},"linux":{"namespaces":[{"type":"pid"}]},"x":[1.5e3,-0,true,null,{}],
      "annotations":{"a\\"b":"\\ud83d\\ude00\\u00e9\\n","io.kubernetes.cri.sandbox-id":"not-this",
      "io.containerd.runc.v2.group":"grp\\u002d${unique}"}}`);
    // containerd creates <bundle>/log and holds it open O_RDWR|O_NONBLOCK
    execFileSync('mkfifo', [path.join(b1, 'log')]);
    logFd = fs.openSync(path.join(b1, 'log'), fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
    fs.writeFileSync(path.join(b2, 'config.json'),
      JSON.stringify({ ociVersion: '1.0.2', annotations: { 'io.kubernetes.cri.sandbox-id': group } }));
  });

  after(async () => {
    let lastDaemonPid = 0;
    try {
      // after a failed test this may be a daemon the monitor started that the test did not see
      lastDaemonPid = Number(fs.readFileSync(path.join(daemonDir, 'daemon.pid'), 'utf8'));
    } catch { /* never started */ }
    for (const pid of [monitorPid, daemonPid, lastDaemonPid]) {
      if (pid && pidAlive(pid)) {
        try { process.kill(pid, 'SIGTERM'); } catch { /* gone */ }
      }
    }
    await sleep(100);
    for (const pid of [monitorPid, daemonPid, lastDaemonPid]) {
      if (pid && pidAlive(pid)) {
        try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
      }
    }
    for (const m of mountsToClean) {
      while (isMounted(m)) {
        try { execFileSync('umount', ['-l', m]); } catch { break; }
      }
    }
    if (logFd >= 0) fs.closeSync(logFd);
    if (sockPath) fs.rmSync(sockPath, { force: true });
    if (daemonDir) fs.rmSync(daemonDir, { recursive: true, force: true });
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('prints its version with -v', async () => {
    const r = await runShim(['-v'], { cwd: '/', env });
    assert.equal(r.code, 0);
    assert.equal(r.stdout.toString().trim(), 'containerd-shim-tsrt-v2 version 0.1.0');
  });

  it('rejects a missing namespace and unknown flags', async () => {
    let r = await runShim(['-id', 'x', 'start'], { cwd: tmp, env });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^io\.containerd\.tsrt\.v2: .*namespace/);
    r = await runShim(['-namespace', ns, '-bogus', 'start'], { cwd: tmp, env });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^io\.containerd\.tsrt\.v2: flag provided but not defined: -bogus\n$/);
  });

  it('start binds the group socket, starts the daemon and a monitor', async () => {
    const r = await runShim(['-namespace', ns, '-address', address, '-publish-binary', '/bin/true',
      '-id', 'c1', '-debug', 'start'], { cwd: b1, env });
    assert.equal(r.stderr, '');
    assert.equal(r.code, 0);
    shimAddress = r.stdout.toString();
    monitorId = createHash('sha256').update(`${address}/${ns}/${group}`).digest('hex');
    assert.match(shimAddress, /^unix:\/\/\/run\/containerd\/s\/[0-9a-f]{64}$/);
    assert.equal(shimAddress, `unix:///run/containerd/s/${monitorId}`);
    assert.equal(fs.readFileSync(path.join(b1, 'address'), 'utf8'), shimAddress);
    sockPath = shimAddress.slice('unix://'.length);
    const st = fs.statSync(sockPath);
    assert.ok(st.isSocket());
    assert.equal(st.mode & 0o777, 0o600);

    const state = await waitFor('the control hello', async () => {
      try {
        const s = await daemonCmd(daemonDir, { cmd: 'state' });
        return s.controls.length > 0 ? s : null;
      } catch { return null; }
    }, 30_000);
    daemonPid = state.pid;
    const hello = state.controls[0];
    monitorPid = Number(hello[2]);
    assert.deepEqual(hello, ['control', monitorId, String(monitorPid), b1, ns, 'c1', shimAddress]);
    assert.ok(pidAlive(monitorPid));
    assert.equal(fs.readlinkSync(`/proc/${monitorPid}/exe`), fs.realpathSync(BIN));
    assert.deepEqual(state.env, { TSRT_DAEMON_DIR: daemonDir, TTRPC_ADDRESS: `${address}.ttrpc`, cwd: daemonDir });
  });

  it('monitor serves spawn, closeio, release, mount and umount and reports reaped children', async () => {
    mountsToClean.push(path.join(tmp, 'mnt'), path.join(tmp, 'bind-tgt'));
    const state = await waitFor('the daemon script', async () => {
      const s = await daemonCmd(daemonDir, { cmd: 'state' });
      return s.done ? s : null;
    }, 120_000); // every check of the script in a row, the OOM hogs and the console flood among them
    assert.deepEqual(state.errors, []);
    const c = state.checks;
    assert.equal(c.spawn[0], 'ok');
    assert.equal(c.reaped[0], '3');
    const secs = Number(c.reaped[1]);
    assert.ok(Math.abs(secs - Date.now() / 1000) < 60, 'reaped timestamp is wall-clock time');
    assert.ok(Number(c.reaped[2]) >= 0 && Number(c.reaped[2]) < 1e9);
    assert.ok(c.replyBeforeReaped, 'spawn reply precedes the reaped event');

    // the exec server
    assert.equal(c.serveSpawn[0], 'ok');
    assert.deepEqual(c.serveAgain.slice(0, 3), ['error', c.serveAgain[1], '17'], 'a second server under one key: EEXIST');
    assert.deepEqual([c.handoff1[0], c.handoff2[0]], ['ok', 'ok'], JSON.stringify([c.handoff1, c.handoff2]));
    assert.notEqual(c.handoff1[2], c.handoff2[2]);
    assert.equal(c.handoff1Reaped[0], '0');
    assert.equal(c.handoff2Reaped[0], '5');
    assert.equal(c.servedOut, `parent ${c.monitorPid}\n`, 'a served process is the monitor\'s child, with the stdio the handoff named');
    assert.equal(c.handoffMissing[0], 'error');
    assert.equal(c.handoffMissing[2], '8'); // ENOEXEC: the server's line
    assert.match(c.handoffMissing[3], /unable to start container process: exec: "\/nonexistent\/tsrt-served"/);
    assert.equal(c.handoffBadPlan[2], '8');
    assert.match(c.handoffBadPlan[3], /frobnicate: line 2: unknown step/);
    assert.equal(c.handoffNoServer[2], '2'); // ENOENT
    assert.equal(c.handoffChannelStdin[2], '22');
    assert.equal(c.serveRelease[0], 'ok');
    assert.equal(c.serveReaped[0], '0', 'the server exits at the end of its channel');
    assert.equal(c.handoffReleased[2], '2');

    assert.equal(c.spawnMissing[0], 'error');
    assert.equal(c.spawnMissing[2], '2'); // ENOENT
    assert.match(c.spawnMissing[3], /nonexistent/);
    assert.equal(c.spawnBadStdio[0], 'error');
    assert.equal(c.spawnBadStdio[2], '22');
    assert.equal(c.spawnMalformed[0], 'error');
    assert.equal(c.spawnMalformed[2], '22');

    assert.equal(c.fileSpawn[0], 'ok');
    assert.equal(c.fileReaped[0], '0');
    // fd 3 is the directory the shell's glob reads; any inherited fd would push it up
    assert.equal(c.fileOut, `bar ${tmp}\nerr\n0 1 2 3 `, 'stdio set up, cwd and env applied, no other fds inherited');

    assert.equal(c.fifoSpawn[0], 'ok');
    assert.equal(c.fifoReaped[0], '0');
    assert.equal(c.fifoOut, 'fifo-ok\n');
    assert.equal(c.release[0], 'ok');

    assert.equal(c.catSpawn[0], 'ok');
    assert.ok(c.catAliveBeforeCloseio, 'the stdin keeper writer holds EOF back');
    assert.equal(c.closeio[0], 'ok');
    assert.equal(c.catReaped[0], '0');
    assert.equal(c.catOut, 'abc');

    assert.deepEqual(c.mount.slice(0, 1), ['ok']);
    assert.match(c.mountInfo.opts, /(^|,)nosuid(,|$)/);
    assert.match(c.mountInfo.opts, /(^|,)nodev(,|$)/);
    assert.match(c.mountInfo.super, /^tmpfs tsrt-test-a .*size=1024k/);
    assert.match(c.mountInfo.super, /mode=711/);
    assert.equal(c.mount2[0], 'ok');
    assert.match(c.mountInfo2.opts, /^ro,/);
    assert.match(c.mountInfo2.opts, /noexec/);
    assert.equal(c.bind[0], 'ok');
    assert.match(c.bindInfo.opts, /^ro,/);
    assert.equal(c.umount[0], 'ok');
    assert.ok(c.unmounted, 'both stacked mounts are gone');
    assert.equal(c.umountAgain[0], 'ok');
    assert.equal(c.umountBind[0], 'ok');
    assert.ok(c.unmountedBind);
    assert.equal(c.mountBad[0], 'error');
    assert.equal(c.mountBad[2], '19'); // ENODEV
    assert.equal(c.unknown[0], 'error');
    assert.equal(c.unknown[2], '22');

    // what the consoles above copied: the round trip's input and its output (flood included)
    assert.equal(c.iostats[0], 'ok');
    assert.ok(Number(c.iostats[2]) > 0 && Number(c.iostats[3]) > Number(c.iostats[2]), JSON.stringify(c.iostats));

    // OOM watches
    assert.deepEqual(c.oomWatch2.slice(0, 1), ['ok']);
    assert.deepEqual(c.oomWatch2Again.slice(0, 1), ['ok'], 'watching a key twice is not an error');
    assert.equal(c.oomsAfterNoKill, 0, 'oom without oom_kill is no event');
    assert.ok(c.oom2BeforeReaped, 'an OOM kill precedes the reaped event that follows it');
    assert.deepEqual(c.ooms2.filter((k: string) => k === 'k20'), ['k20', 'k20', 'k20', 'k20'], 'one event per kill counted in oom_kill, none after release');
    assert.equal(c.oomRelease2[0], 'ok');
    for (const [r, errno] of [[c.oomBadVersion, '22'], [c.oomRelative, '22'], [c.oomMissing, '2'], [c.oomNotV1, '2'], [c.oomMalformed, '22']]) {
      assert.deepEqual([r[0], r[2]], ['error', errno], JSON.stringify(r));
    }
    if (fs.existsSync('/sys/fs/cgroup/memory/memory.oom_control')) {
      assert.deepEqual(c.oomWatch1.slice(0, 1), ['ok']);
      assert.equal(c.hogReaped[0], '137', 'the OOM killer ended the shell');
      assert.ok(c.oom1BeforeReaped, 'v1: the oom event precedes the reaped event');
      assert.ok(c.kernelKills1 >= 1, `the kernel counted ${c.kernelKills1} kills`);
      assert.equal(c.oomKills1, c.kernelKills1, 'v1: one event per kill the cgroup counts, however often the eventfd fired');
      assert.equal(c.oomUnder1, 1, 'v1 with the OOM killer disabled: one event for the episode');
      assert.equal(c.stuckReaped[0], '137');
      assert.equal(c.oomsAfterRmdir, 0, 'removing the cgroup is not an OOM');
      assert.equal(c.oomRelease1[0], 'ok');
    }

    // every child was reaped: the monitor has no zombies (or other children) left
    assert.deepEqual(childrenOf(monitorPid), []);
    // the monitor holds only its own fds: stdio on /dev/null, sockets, the signalfd, the log FIFO
    const fds = fs.readdirSync(`/proc/${monitorPid}/fd`).map((fd) => fs.readlinkSync(`/proc/${monitorPid}/fd/${fd}`));
    assert.equal(fds.filter((l) => l === '/dev/null').length, 3, fds.join(' '));
    for (const l of fds) {
      assert.ok(l === '/dev/null' || /^socket:\[\d+\]$/.test(l) || l === 'anon_inode:[signalfd]' ||
        l === path.join(b1, 'log'), `unexpected monitor fd ${l}`);
    }
    assert.ok(fds.length <= 8, fds.join(' '));
    // the daemon (started by start) did not inherit the shim's listening socket
    const inode = unixSocketInode(sockPath);
    assert.ok(inode);
    const daemonFds = fs.readdirSync(`/proc/${daemonPid}/fd`).map((fd) => {
      try { return fs.readlinkSync(`/proc/${daemonPid}/fd/${fd}`); } catch { return ''; }
    });
    assert.ok(!daemonFds.includes(`socket:[${inode}]`));
    assert.equal(fds.filter((l) => l === `socket:[${inode}]`).length, 1, 'the monitor has it once');
  });

  it('monitor serves console, consolewait and resize (a pty master over the console socket)', async () => {
    const state = await daemonCmd(daemonDir, { cmd: 'state' });
    assert.ok(state.done);
    const c = state.checks;
    assert.equal(c.console[0], 'ok');
    assert.match(c.console[2], new RegExp(`^/run/tsrt/console/${monitorPid}-\\d+\\.sock$`));
    assert.ok(c.consoleSockIsSocket);
    assert.equal(c.consoleDirMode, 0o700);
    assert.deepEqual(c.consoleAgain.slice(0, 3), ['error', c.consoleAgain[1], '17']); // EEXIST
    assert.deepEqual(c.resizeEarly.slice(0, 3), ['error', c.resizeEarly[1], '2']); // no master yet
    assert.equal(c.peerSpawn[0], 'ok');
    assert.deepEqual(c.consoleWait, ['ok', c.consoleWait[1]]);
    assert.deepEqual(c.consoleWaitAgain, ['ok', c.consoleWaitAgain[1]]);
    assert.ok(!c.consoleSockAfter, 'the listener is unlinked once the master has arrived');
    // the master is kept, the extra fd sent along with it (the slave) is closed
    assert.equal(c.monitorFdsWithMaster.filter((l: string) => /^\/dev\/(pts\/)?ptmx$/.test(l)).length, 1,
      c.monitorFdsWithMaster.join(' '));
    assert.ok(!c.monitorFdsWithMaster.some((l: string) => /^\/dev\/pts\/\d+$/.test(l)), c.monitorFdsWithMaster.join(' '));
    assert.deepEqual(c.resize, ['ok', c.resize[1]]);
    // bytes pass unchanged both ways; \r\n is the pty's own ONLCR
    assert.equal(c.consoleOut, 'ready\r\ngot:ping\r\nsize 40 100\r\n');
    assert.ok(c.floodIdleTicks <= 5, `monitor CPU while stdout is full: ${c.floodIdleTicks} ticks in 500 ms`);
    assert.equal(c.floodLength, 300006);
    assert.ok(c.floodIntact, 'the flood arrived whole and in order');
    assert.equal(c.consoleTail, 'bye\r\n');
    assert.equal(c.peerReaped[0], '0');
    assert.ok(c.byeBeforeReaped, 'output is drained to the stdout FIFO before the reaped event');
    assert.equal(c.consoleRelease[0], 'ok');

    assert.deepEqual(c.waitNoConsole.slice(0, 3), ['error', c.waitNoConsole[1], '2']); // ENOENT
    assert.deepEqual(c.resizeNoConsole.slice(0, 3), ['error', c.resizeNoConsole[1], '2']);
    assert.equal(c.console2[0], 'ok');
    assert.notEqual(c.console2[2], c.console[2]);
    assert.deepEqual(c.waitTimeout.slice(0, 3), ['error', c.waitTimeout[1], '110']); // ETIMEDOUT
    assert.ok(c.waitTimeoutMs >= 140 && c.waitTimeoutMs < 2000, String(c.waitTimeoutMs));
    assert.ok(c.console2SockBefore);
    assert.equal(c.console2Release[0], 'ok');
    assert.ok(!c.console2SockAfter, 'release unlinks a socket still listening');
    assert.deepEqual(c.consoleBadSpec.slice(0, 3), ['error', c.consoleBadSpec[1], '22']);
    assert.deepEqual(c.consoleMissingFifo.slice(0, 3), ['error', c.consoleMissingFifo[1], '2']);

    assert.equal(c.console3[0], 'ok');
    assert.equal(c.console3Wait[0], 'ok');
    assert.ok(c.peer3AliveBeforeCloseio);
    assert.equal(c.closeio3[0], 'ok');
    assert.ok(c.peer3AliveAfterCloseio, 'the client still holds stdin open');
    assert.equal(c.peer3Reaped[0], '3', 'the console shut down at stdin EOF: the slave read EOF');
    assert.deepEqual(c.resizeClosed.slice(0, 3), ['error', c.resizeClosed[1], '2']);
    assert.equal(c.console3Out, 'ready\r\ngot:last\r\n');
    assert.deepEqual(fs.readdirSync('/run/tsrt/console').filter((f) => f.startsWith(`${monitorPid}-`)), []);
  });

  it('monitor runs binary:// loggers and hands their pipes to spawn (logger:1, logger:2)', async () => {
    const state = await daemonCmd(daemonDir, { cmd: 'state' });
    const c = state.checks;
    assert.equal(c.logger[0], 'ok');
    assert.equal(c.loggerEnv, 'CONTAINER_ID=c1\0CONTAINER_NAMESPACE=tsrt-unit\0');
    // the shell keeps what it got: /dev/null stdio, the two read ends and the ready write end
    assert.deepEqual(c.loggerFds, { 0: '/dev/null', 1: '/dev/null', 2: '/dev/null', 3: 'pipe', 4: 'pipe', 5: 'pipe' });
    assert.deepEqual(c.loggerAgain.slice(0, 3), ['error', c.loggerAgain[1], '17']); // EEXIST
    assert.deepEqual(c.loggerMissing.slice(0, 3), ['error', c.loggerMissing[1], '2']); // exec ENOENT
    assert.deepEqual(c.loggerMalformed.slice(0, 3), ['error', c.loggerMalformed[1], '22']);
    assert.deepEqual(c.spawnNoLogger.slice(0, 3), ['error', c.spawnNoLogger[1], '2']);
    assert.equal(c.loggedSpawn[0], 'ok');
    assert.equal(c.loggedReaped[0], '0');
    assert.ok(c.loggerAliveBeforeRelease);
    assert.equal(c.loggerRelease[0], 'ok');
    assert.equal(c.loggerReaped[0], '0', 'the logger exited through its SIGTERM trap');
    assert.equal(c.loggerTerm, 'term\n');
    assert.equal(c.loggerOut, 'to-out\n');
    assert.equal(c.loggerErr, 'to-err\n');
  });

  it('a second start in the same group reuses the monitor', async () => {
    const r = await runShim(['-namespace', ns, '-address', address, '-publish-binary', '/bin/true',
      '-id', 'c2', 'start'], { cwd: b2, env });
    assert.equal(r.stderr, '');
    assert.equal(r.code, 0);
    assert.equal(r.stdout.toString(), shimAddress);
    assert.equal(fs.readFileSync(path.join(b2, 'address'), 'utf8'), shimAddress);
    await sleep(200);
    const state = await daemonCmd(daemonDir, { cmd: 'state' });
    assert.equal(state.controls.length, 1, 'no second monitor connected');
    assert.deepEqual(shimProcesses(tmp), [monitorPid]);
  });

  it('relays containerd connections to daemon proxy connections and survives a proxy loss', async () => {
    // (the second start's liveness probe was a connection too, so count from here)
    const hellosBefore = (await daemonCmd(daemonDir, { cmd: 'state' })).proxyHellos.length;
    const { sock, reader } = await connectFramed(sockPath);
    try {
      sock.write(ttrpcFrame(1, 'ping'));
      let f = await reader.next();
      assert.deepEqual([f.id, f.type, f.payload.toString()], [1, 2, 'echo:ping']);
      // a big request in several writes
      const big = 'x'.repeat(300_000);
      const frame = ttrpcFrame(3, big);
      sock.write(frame.subarray(0, 7));
      await sleep(20);
      sock.write(frame.subarray(7));
      f = await reader.next();
      assert.equal(f.id, 3);
      assert.equal(f.payload.length, 5 + big.length);
      // the daemon drops the proxy connection without answering: the monitor answers UNAVAILABLE
      sock.write(ttrpcFrame(5, 'close-me'));
      f = await reader.next();
      assert.equal(f.id, 5);
      assert.equal(f.type, 2);
      assert.deepEqual([...f.payload.subarray(0, 1)], [0x0a]); // Response.status
      assert.deepEqual([...f.payload.subarray(2, 4)], [0x08, 14]); // Status.code = UNAVAILABLE
      // same containerd connection, new proxy connection
      sock.write(ttrpcFrame(7, 'again'));
      f = await reader.next();
      assert.deepEqual([f.id, f.type, f.payload.toString()], [7, 2, 'echo:again']);
    } finally {
      sock.destroy();
    }
    const state = await daemonCmd(daemonDir, { cmd: 'state' });
    assert.deepEqual(state.proxyHellos.slice(hellosBefore), [monitorId, monitorId]);
    assert.ok(state.proxyHellos.every((h: string) => h === monitorId));
  });

  it('keeps connections and exits across a daemon restart and starts a new daemon', async () => {
    const { sock, reader } = await connectFramed(sockPath);
    try {
      sock.write(ttrpcFrame(11, 'before'));
      let f = await reader.next();
      assert.equal(f.payload.toString(), 'echo:before');
      const r = await daemonCmd(daemonDir, { cmd: 'spawn', monitor: monitorId,
        args: ['k9', '', '', '', '', 3, '/bin/sh', '-c', 'sleep 0.3; exit 7', 0] });
      assert.equal(r[0], 'ok');
      const pid = r[2];
      const oldPid = daemonPid;
      process.kill(oldPid, 'SIGKILL');
      await waitFor('the old daemon to die', () => !pidAlive(oldPid));
      // the child exits while no daemon is connected; the monitor starts a daemon after ~2 s
      const state = await waitFor('a new daemon with the queued reaped event', async () => {
        try {
          const s = await daemonCmd(daemonDir, { cmd: 'state' });
          if (s.pid !== oldPid) daemonPid = s.pid;
          return s.pid !== oldPid && s.reaped.some((e: string[]) => e[0] === pid) ? s : null;
        } catch { return null; }
      }, 30_000);
      assert.deepEqual(state.controls, [['control', monitorId, String(monitorPid), b1, ns, 'c1', shimAddress]]);
      assert.deepEqual(state.reaped.find((e: string[]) => e[0] === pid), [pid, '7']);
      // the same containerd connection now reaches the new daemon
      sock.write(ttrpcFrame(13, 'after'));
      f = await reader.next();
      assert.deepEqual([f.id, f.type, f.payload.toString()], [13, 2, 'echo:after']);
    } finally {
      sock.destroy();
    }
  });

  it('sends an event again on the next connection until the daemon acknowledges it', async () => {
    const hold = path.join(tmp, 'hold-acks');
    const events = async (): Promise<string[][]> => (await daemonCmd(daemonDir, { cmd: 'state' })).events;
    const spawnExit = async (code: number): Promise<string> => {
      const r = await daemonCmd(daemonDir, { cmd: 'spawn', monitor: monitorId,
        args: [`ack${code}`, '', '', '', '', 3, '/bin/sh', '-c', `exit ${code}`, 0] });
      assert.equal(r[0], 'ok');
      return r[2];
    };
    const reapedOf = async (pid: string): Promise<string[][]> => (await events()).filter((e) => e[0] === 'reaped' && e[2] === pid);
    fs.writeFileSync(hold, '');
    let held: string;
    try {
      held = await spawnExit(5);
      await waitFor('the unacknowledged exit', async () => (await reapedOf(held)).length === 1);
    } finally {
      fs.rmSync(hold, { force: true });
    }
    const acked = await spawnExit(6);
    await waitFor('the acknowledged exit', async () => (await reapedOf(acked)).length === 1);
    const heldNo = (await reapedOf(held))[0]![1]!;
    const ackedNo = (await reapedOf(acked))[0]![1]!;
    assert.ok(Number(ackedNo) > Number(heldNo), 'events are numbered in order');

    // the daemon lives on, its control connection breaks: the monitor connects again and sends, ahead of
    // anything else, the event that was not acknowledged (same number), not the one that was
    assert.deepEqual(await daemonCmd(daemonDir, { cmd: 'dropcontrol', monitor: monitorId }), ['dropped']);
    await waitFor('the held exit sent again', async () => (await reapedOf(held)).length === 2);
    const again = (await reapedOf(held))[1]!;
    assert.equal(again[1], heldNo);
    // a request on the new connection is answered after the events sent again: by then nothing else came
    const later = await spawnExit(3);
    await waitFor('the later exit', async () => (await reapedOf(later)).length === 1);
    assert.equal((await reapedOf(acked)).length, 1, 'an acknowledged event is not sent again');

    // acknowledged on the second connection, it is not sent a third time
    const connections = (await daemonCmd(daemonDir, { cmd: 'state' })).controls.length;
    assert.deepEqual(await daemonCmd(daemonDir, { cmd: 'dropcontrol', monitor: monitorId }), ['dropped']);
    await waitFor('the third control connection', async () =>
      (await daemonCmd(daemonDir, { cmd: 'state' })).controls.length > connections);
    const last = await spawnExit(4);
    await waitFor('the last exit', async () => (await reapedOf(last)).length === 1);
    assert.equal((await reapedOf(held)).length, 2, 'an event acknowledged after a reconnect is not sent again');
  });

  it('signal reaches a child that has not exited, and never a process that took the pid of one that has', async () => {
    const req = async (...args: unknown[]): Promise<string[]> => {
      const f: string[] = await daemonCmd(daemonDir, { cmd: 'req', monitor: monitorId, args });
      return [f[0]!, ...f.slice(2)]; // without the sequence number
    };
    const r = await daemonCmd(daemonDir, { cmd: 'spawn', monitor: monitorId, args: ['sig1', '', '', '', '', 2, 'sleep', '1000', 0] });
    assert.equal(r[0], 'ok');
    const pid = Number(r[2]);
    assert.deepEqual(await req('signal', pid, 0), ['ok']);
    assert.deepEqual(await req('signal', pid, 9), ['ok']);
    await waitFor('the child reaped', async () => (await daemonCmd(daemonDir, { cmd: 'state' })).reaped.some((e: string[]) => e[0] === String(pid)));
    // another process gets the same pid (the kernel hands out ns_last_pid + 1 next, unless another fork
    // comes first: tried again then)
    let squatter: ReturnType<typeof spawnChild> | null = null;
    for (let i = 0; i < 100 && !squatter; i++) {
      fs.writeFileSync('/proc/sys/kernel/ns_last_pid', String(pid - 1));
      const c = spawnChild('sleep', ['1000'], { stdio: 'ignore' });
      if (c.pid === pid) squatter = c;
      else c.kill('SIGKILL');
    }
    assert.ok(squatter, `pid ${pid} taken again`);
    try {
      const [kind, errno] = await req('signal', pid, 9);
      assert.deepEqual([kind, errno], ['error', '3'], 'ESRCH: the exited child is not signalled through its recycled pid');
      assert.equal(pidAlive(pid), true, 'the process that took the pid is untouched');
      // a process that is not the monitor's child at all
      assert.deepEqual((await req('signal', process.pid, 0)).slice(0, 2), ['error', '3']);
      assert.deepEqual((await req('signal', 'x', 9)).slice(0, 2), ['error', '22']);
    } finally {
      squatter.kill('SIGKILL');
    }
  });

  it('replays requests safe to repeat (Wait, State) to the next daemon after a crash, answers others UNAVAILABLE', async () => {
    const TASK = 'containerd.task.v2.Task';
    const wait = ttrpcRequest(31, TASK, 'Wait', pbBytes(1, 'c1'));
    const kill = ttrpcRequest(33, TASK, 'Kill', Buffer.concat([pbBytes(1, 'c1'), pbVarint(2 << 3), pbVarint(9)]));
    const state = ttrpcRequest(35, 'containerd.task.v3.Task', 'State', pbBytes(1, 'c1'));
    const later = ttrpcRequest(37, TASK, 'State', pbBytes(1, 'c1'));
    const hold = path.join(tmp, 'hold-rpcs');
    fs.writeFileSync(hold, '');
    const { sock, reader } = await connectFramed(sockPath);
    try {
      const oldPid = daemonPid;
      // Wait and Kill whole, State only in part: the old daemon has them all, answers none
      sock.write(Buffer.concat([wait, kill, state.subarray(0, 12)]));
      const seen = await waitFor('the old daemon to get Wait, Kill and part of State', async () => {
        const s = await daemonCmd(daemonDir, { cmd: 'state' });
        return s.pid === oldPid && s.rpcs.length >= 2 && s.partialBytes === 12 ? s : null;
      });
      assert.deepEqual(seen.rpcs.slice(-2).map((r: any) => [r.id, r.method, r.frame]),
        [[31, 'Wait', wait.toString('hex')], [33, 'Kill', kill.toString('hex')]]);
      fs.rmSync(hold);
      assert.deepEqual(await daemonCmd(daemonDir, { cmd: 'die' }), ['dying']);
      // the monitor answers Kill at once; Wait and State wait for the next daemon
      let f = await reader.next();
      assert.deepEqual([f.id, f.type], [33, 2]);
      assert.deepEqual([...f.payload.subarray(0, 1)], [0x0a]); // Response.status
      assert.deepEqual([...f.payload.subarray(2, 4)], [0x08, 14]); // Status.code = UNAVAILABLE
      assert.match(f.payload.toString(), /daemon connection lost/);
      // the rest of State, written while no daemon is there
      sock.write(state.subarray(12));
      const fresh = await waitFor('a new daemon with the replayed requests', async () => {
        try {
          const s = await daemonCmd(daemonDir, { cmd: 'state' });
          return s.pid !== oldPid && s.rpcs.length >= 2 ? s : null;
        } catch { return null; }
      }, 30_000);
      daemonPid = fresh.pid;
      // the same frames, byte for byte, same stream ids, original order, nothing else
      assert.deepEqual(fresh.rpcs.map((r: any) => [r.id, r.method, r.frame]),
        [[31, 'Wait', wait.toString('hex')], [35, 'State', state.toString('hex')]]);
      const got = new Map<number, string>();
      for (let i = 0; i < 2; i++) {
        f = await reader.next();
        assert.equal(f.type, 2);
        assert.ok(!got.has(f.id), `one response for stream ${f.id}`);
        got.set(f.id, f.payload.toString('hex'));
      }
      assert.deepEqual([...got.keys()].sort(), [31, 35]);
      assert.equal(got.get(31), fresh.rpcs[0].answer);
      assert.equal(got.get(35), fresh.rpcs[1].answer);
      assert.match(Buffer.from(got.get(31)!, 'hex').toString(), new RegExp(`Wait 31 answered by ${fresh.pid}$`));
      // later stream ids go on over the same new proxy connection
      sock.write(later);
      f = await reader.next();
      assert.equal(f.id, 37);
      assert.match(f.payload.toString(), new RegExp(`State 37 answered by ${fresh.pid}$`));
      await sleep(200);
      assert.equal(reader.buffered, 0, 'no second response for any stream');
    } finally {
      fs.rmSync(hold, { force: true });
      sock.destroy();
    }
  });

  it('delete runs the runtime, unmounts rootfs and prints a DeleteResponse', async () => {
    const fake = path.join(tmp, 'fake-runc');
    fs.writeFileSync(fake, `#!/bin/sh\necho "$@" > ${tmp}/runc-args\npwd >> ${tmp}/runc-args\nexit 1\n`, { mode: 0o755 });
    fs.writeFileSync(path.join(b2, 'tsrt-runtime'), `binary=${fake}\nroot=/run/tsrt-test-root/${ns}\n`);
    fs.writeFileSync(path.join(b2, 'init.pid'), '4242');
    const rootfs = path.join(b2, 'rootfs');
    mountsToClean.push(rootfs);
    execFileSync('mount', ['-t', 'tmpfs', 'tsrt-rootfs-1', rootfs]);
    execFileSync('mount', ['-t', 'tmpfs', 'tsrt-rootfs-2', rootfs]);
    const args = ['-namespace', ns, '-address', address, '-publish-binary', '/bin/true', '-id', 'c2',
      '-bundle', b2, 'delete'];
    const before = Date.now() / 1000;
    const r = await runShim(args, { cwd: b2, env });
    assert.equal(r.code, 0);
    assert.match(r.stderr, new RegExp(`fake-runc --root /run/tsrt-test-root/${ns} delete --force c2 failed \\(status 1\\)`)); // a cleanup warning
    const resp = decodeDeleteResponse(r.stdout);
    assert.equal(resp.pid, 4242);
    assert.equal(resp.exitStatus, 137);
    assert.ok(Number(resp.seconds) >= Math.floor(before) && Number(resp.seconds) <= Date.now() / 1000 + 1);
    assert.ok(resp.nanos >= 0 && resp.nanos < 1e9);
    assert.equal(fs.readFileSync(path.join(tmp, 'runc-args'), 'utf8'),
      `--root /run/tsrt-test-root/${ns} delete --force c2\n${b2}\n`);
    assert.ok(!isMounted(rootfs), 'rootfs unmounted');

    // the backend's own cleanup command (tsrt-cleanup) comes first, whatever tsrt-runtime says
    fs.writeFileSync(path.join(b2, 'tsrt-cleanup'), `${fake}\nstop-vm\n--id=c2\nwith space\n`);
    const own = await runShim(args, { cwd: b2, env });
    assert.equal(own.code, 0);
    assert.equal(fs.readFileSync(path.join(tmp, 'runc-args'), 'utf8'), `stop-vm --id=c2 with space\n${b2}\n`);
    assert.match(own.stderr, /fake-runc stop-vm --id=c2 with space failed \(status 1\)/);
    assert.ok(!isMounted(rootfs));
    // a malformed one (an empty argument) is not run: a warning, and tsrt-runtime is used instead
    fs.writeFileSync(path.join(b2, 'tsrt-cleanup'), `${fake}\n\ndelete\n`);
    const bad = await runShim(args, { cwd: b2, env });
    assert.equal(bad.code, 0);
    assert.match(bad.stderr, /tsrt-cleanup: an empty argument; ignored/);
    assert.equal(fs.readFileSync(path.join(tmp, 'runc-args'), 'utf8'), `--root /run/tsrt-test-root/${ns} delete --force c2\n${b2}\n`);
    fs.rmSync(path.join(b2, 'tsrt-cleanup'));

    // idempotent, and fine with an empty bundle
    fs.rmSync(path.join(b2, 'tsrt-runtime'));
    const again = await runShim(args, { cwd: b2, env });
    assert.equal(again.code, 0);
    assert.equal(again.stderr, '');
    assert.equal(decodeDeleteResponse(again.stdout).pid, 4242);
    const empty = path.join(tmp, 'empty-bundle');
    fs.mkdirSync(empty);
    const r3 = await runShim(['-namespace', ns, '-address', address, '-id', 'gone', '-bundle', empty, 'delete'],
      { cwd: empty, env });
    assert.equal(r3.code, 0);
    assert.equal(r3.stderr, '');
    const resp3 = decodeDeleteResponse(r3.stdout);
    assert.equal(resp3.pid, 0);
    assert.equal(resp3.exitStatus, 137);
    assert.equal(r3.stdout[0], 0x10, 'pid 0 is omitted');

    // delete never touches the shared monitor
    assert.ok(pidAlive(monitorPid));
    assert.ok(fs.statSync(sockPath).isSocket());
  });

  it('shutdown makes the monitor remove its socket and exit', async () => {
    // a console socket nobody connected to goes away with the monitor
    const con = await daemonCmd(daemonDir, { cmd: 'req', monitor: monitorId, args: ['console', 'k-exit', '', ''] });
    assert.equal(con[0], 'ok');
    assert.ok(fs.statSync(con[2]).isSocket());
    const { sock, reader } = await connectFramed(sockPath);
    const ended = new Promise<void>((res) => sock.once('close', () => res()));
    sock.write(ttrpcFrame(21, 'shutdown-rpc'));
    const f = await reader.next();
    assert.deepEqual([f.id, f.type, f.payload.toString()], [21, 2, 'echo:shutdown-rpc'],
      'the response written just before the shutdown frame reaches containerd');
    await ended; // the monitor closes containerd's connection on its way out
    await waitFor('the monitor to exit', () => !pidAlive(monitorPid));
    const state = await daemonCmd(daemonDir, { cmd: 'state' });
    assert.deepEqual(state.shutdownReply, ['ok', state.shutdownReply[1]]);
    assert.ok(!fs.existsSync(sockPath), 'socket removed');
    assert.ok(!fs.existsSync(con[2]), 'console socket removed');
    assert.deepEqual(shimProcesses(tmp), []);
    // the daemon was started detached: it is not a child of this test process
    assert.notEqual(ppidOf(daemonPid), process.pid);

    // the monitor logged to the bundle's log FIFO in logrus text format
    const buf = Buffer.alloc(65536);
    const n = fs.readSync(logFd, buf);
    const lines = buf.subarray(0, n).toString().trimEnd().split('\n');
    for (const l of lines) {
      assert.match(l, /^time="\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z" level=(debug|info|warning|error) msg=".*" runtime=io\.containerd\.tsrt\.v2 id=c1$/);
    }
    assert.ok(lines.some((l) => l.includes('msg="monitor started on unix:///run/containerd/s/')));
    assert.ok(lines.some((l) => l.includes('level=debug msg="reaped pid ')), '-debug enables debug lines');
    assert.ok(lines.some((l) => l.includes('msg="monitor exiting"')));
  });

  it('the sanitizers reported nothing (ASan build)', { skip: SANITIZED ? false : 'not the ASan build' }, () => {
    const dir = path.join(tmp, 'sanitizer');
    const reports = fs.readdirSync(dir).map((f) => fs.readFileSync(path.join(dir, f), 'utf8'));
    assert.deepEqual(reports, []);
  });
});
