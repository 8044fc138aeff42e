// The monitor's gRPC server (native/shim/grpc.c) driven by @grpc/grpc-js, the client containerd's own
// gRPC stack interoperates with, against the real shim binary and a stand-in daemon. start is given the
// runtime options containerd 1.7 sends (an options file with Transport = "grpc"), answers version 2 JSON
// with "protocol":"grpc", and the monitor turns each call into a ttrpc Request for the daemon and its
// ttrpc Response back into gRPC; a daemon that dies mid-call is handled as on ttrpc.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http2 from 'node:http2';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { runtimeoptions } from '../../src/gen/proto.js';
import { pidAlive, waitFor } from './lib/wait.js';
import { runBinary } from './lib/run-binary.js';
import { daemonCmd } from './lib/daemon-cmd.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const BIN = path.resolve(process.env.TSRT_SHIM_BIN ?? path.join(ROOT, 'native/build/containerd-shim-tsrt-v2'));
const IS_ROOT = process.getuid?.() === 0;

// The stand-in daemon: records every ttrpc Request of its proxy connections and answers by method:
// State and Wait "<method>:<payload> by <pid>", Stats echoes the payload, Kill is FailedPrecondition with
// a message that needs percent-encoding, anything else Unimplemented. While <out>/hold exists it answers
// nothing. test.sock: {"cmd":"state"} and {"cmd":"die"} (every connection and the process go at once).
const DAEMON_JS = String.raw`
import net from 'node:net';
import fs from 'node:fs';
import path from 'node:path';
const dir = process.env.TSRT_DAEMON_DIR;
const out = process.env.TSRT_TEST_OUT;
fs.writeFileSync(path.join(dir, 'daemon.pid'), String(process.pid));
const state = { pid: process.pid, monitors: [], rpcs: [] };
const conns = new Set();
function varint(b, p) {
  let v = 0;
  for (let s = 0; s < 63; s += 7) { const x = b[p.i++]; v += (x & 0x7f) * 2 ** s; if (!(x & 0x80)) return v; }
  throw new Error('bad varint');
}
function fields(b) {
  const r = []; const p = { i: 0 };
  while (p.i < b.length) {
    const key = varint(b, p); const f = Math.floor(key / 8); const w = key & 7;
    if (w === 0) r.push([f, varint(b, p)]);
    else if (w === 2) { const n = varint(b, p); r.push([f, b.subarray(p.i, p.i + n)]); p.i += n; }
    else throw new Error('wire type ' + w);
  }
  return r;
}
function uvar(n) { const o = []; while (n >= 0x80) { o.push((n % 0x80) | 0x80); n = Math.floor(n / 0x80); } o.push(n); return Buffer.from(o); }
function enc(list) {
  return Buffer.concat(list.map(([f, v]) => typeof v === 'number' ? Buffer.concat([uvar(f * 8), uvar(v)])
    : Buffer.concat([uvar(f * 8 + 2), uvar(Buffer.byteLength(v)), Buffer.from(v)])));
}
function answer(sock, id, body) {
  const head = Buffer.alloc(10); head.writeUInt32BE(body.length, 0); head.writeUInt32BE(id, 4); head[8] = 2;
  sock.write(Buffer.concat([head, body]));
}
function onRequest(sock, id, msg) {
  const rec = { id, metadata: [] }; let payload = Buffer.alloc(0);
  for (const [f, v] of fields(msg)) {
    if (f === 1) rec.service = v.toString(); else if (f === 2) rec.method = v.toString();
    else if (f === 3) payload = v; else if (f === 4) rec.timeoutNano = v;
    else if (f === 5) { const kv = fields(v); rec.metadata.push([kv[0][1].toString(), kv[1][1].toString()]); }
  }
  rec.payloadLength = payload.length;
  rec.payloadHead = payload.subarray(0, 32).toString();
  state.rpcs.push(rec);
  if (fs.existsSync(path.join(out, 'hold'))) return;
  const m = rec.method;
  if (m === 'State' || m === 'Wait') answer(sock, id, enc([[2, m + ':' + payload.toString() + ' by ' + process.pid]]));
  else if (m === 'Stats') answer(sock, id, enc([[2, payload]]));
  else if (m === 'Kill') answer(sock, id, enc([[1, enc([[1, 9], [2, 'kill refused: 100% sure \u2713\nbye']])]]));
  else answer(sock, id, enc([[1, enc([[1, 12], [2, 'method ' + m]])]]));
}
function takeHello(buf) {
  if (buf.length < 4 || buf.length < 4 + buf.readUInt32BE(0)) return null;
  const n = buf.readUInt32BE(0);
  return [buf.subarray(4, 4 + n).toString().split('\0').slice(0, -1), buf.subarray(4 + n)];
}
const server = net.createServer((sock) => {
  conns.add(sock); sock.on('close', () => conns.delete(sock)); sock.on('error', () => {});
  let buf = Buffer.alloc(0); let proxy = false; let hello = false;
  sock.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    if (!hello) {
      const h = takeHello(buf); if (!h) return;
      hello = true; buf = h[1];
      if (h[0][0] === 'control') { state.monitors.push(Number(h[0][2])); return; }
      proxy = h[0][0] === 'proxy';
    }
    if (!proxy) { buf = Buffer.alloc(0); return; }
    while (buf.length >= 10 && buf.length >= 10 + buf.readUInt32BE(0)) {
      const n = buf.readUInt32BE(0); const id = buf.readUInt32BE(4); const type = buf[8];
      const msg = buf.subarray(10, 10 + n); buf = buf.subarray(10 + n);
      if (type === 1) onRequest(sock, id, msg);
    }
  });
});
fs.rmSync(path.join(dir, 'daemon.sock'), { force: true });
fs.rmSync(path.join(dir, 'test.sock'), { force: true });
server.listen(path.join(dir, 'daemon.sock'));
const test = net.createServer((sock) => {
  sock.on('error', () => {});
  sock.on('data', (d) => {
    const cmd = JSON.parse(d.toString());
    if (cmd.cmd === 'state') sock.end(JSON.stringify(state));
    else if (cmd.cmd === 'die') {
      for (const c of conns) c.destroy();
      server.close(); test.close();
      sock.end('["dying"]', () => process.exit(1));
    }
  });
});
test.listen(path.join(dir, 'test.sock'));
process.on('SIGTERM', () => process.exit(0));
`;

interface Rpc { id: number; service: string; method: string; metadata: [string, string][]; timeoutNano?: number; payloadLength: number; payloadHead: string }
interface DaemonState { pid: number; monitors: number[]; rpcs: Rpc[] }

async function runStart(args: string[], stdin: Buffer, opts: { cwd: string; env: NodeJS.ProcessEnv }): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const r = await runBinary(BIN, args, { ...opts, stdin });
  return { ...r, stdout: r.stdout.toString() };
}

/** google.protobuf.Any{runtimeoptions.v1.Options}, what containerd puts on start's stdin. */
function optionsAny(o: { configPath?: string; configBody?: string }): Buffer {
  const value = Buffer.from(runtimeoptions.v1.Options.encode({ configPath: o.configPath ?? '',
    configBody: Buffer.from(o.configBody ?? '') }).finish());
  const url = Buffer.from('runtimeoptions.v1.Options');
  return Buffer.concat([Buffer.from([0x0a, url.length]), url, Buffer.from([0x12]), varint(value.length), value]);
}
function varint(n: number): Buffer {
  const o: number[] = [];
  while (n >= 0x80) { o.push((n & 0x7f) | 0x80); n >>>= 7; }
  o.push(n);
  return Buffer.from(o);
}

/** Processes of our binary (the monitors) whose cwd is under dir. */
function monitorsUnder(dir: string): number[] {
  const bin = fs.realpathSync(BIN);
  const pids: number[] = [];
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (fs.readlinkSync(`/proc/${e}/exe`) === bin && fs.readlinkSync(`/proc/${e}/cwd`).startsWith(dir)) pids.push(Number(e));
    } catch { /* gone, or not ours to read */ }
  }
  return pids;
}

const fdCount = (pid: number): number => fs.readdirSync(`/proc/${pid}/fd`).length;

type Unary = { err: grpc.ServiceError | null; value?: Buffer };
function call(client: grpc.Client, method: string, arg: Buffer, md: Record<string, string> = {}, deadlineMs = 30_000): Promise<Unary> {
  const meta = new grpc.Metadata();
  for (const [k, v] of Object.entries(md)) meta.set(k, v);
  return new Promise((resolve) => {
    client.makeUnaryRequest(method, (b: Buffer) => b, (b: Buffer) => b, arg, meta, { deadline: Date.now() + deadlineMs },
      (err, value) => resolve({ err, value }));
  });
}

/** One raw HTTP/2 request: the response headers (for a Trailers-Only answer, the status is in them). */
function rawRequest(sock: string, headers: http2.OutgoingHttpHeaders, body: Buffer): Promise<http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader> {
  return new Promise((resolve, reject) => {
    const session = http2.connect('http://localhost', { createConnection: () => net.connect(sock) });
    session.on('error', reject);
    const req = session.request(headers);
    req.on('response', (h) => { resolve(h); req.close(); session.close(); });
    req.on('error', reject);
    req.end(body);
  });
}

describe('monitor gRPC server', { skip: IS_ROOT ? false : 'needs root' }, () => {
  const ns = 'tsrt-unit';
  const id = `grpc-${randomBytes(4).toString('hex')}`;
  let tmp = '';
  let address = '';
  let daemonDir = '';
  let bundle = '';
  let env: NodeJS.ProcessEnv = {};
  let sock = '';
  let configFile = '';
  let logFd = -1;
  const clients: grpc.Client[] = [];
  const client = (): grpc.Client => {
    const c = new grpc.Client(`unix://${sock}`, grpc.credentials.createInsecure());
    clients.push(c);
    return c;
  };
  const state = () => daemonCmd(daemonDir, { cmd: 'state' }) as Promise<DaemonState>;
  const startArgs = (cid: string) => ['-namespace', ns, '-address', address, '-publish-binary', '/bin/true', '-id', cid, '-debug', 'start'];

  before(() => {
    if (!process.env.TSRT_SHIM_BIN) execFileSync('make', ['-s', '-C', path.join(ROOT, 'native')], { stdio: 'inherit' });
    tmp = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'tsrt-grpc-')));
    address = path.join(tmp, 'containerd.sock');
    daemonDir = `/run/tsrt/${createHash('sha256').update(`${address}.ttrpc`).digest('hex').slice(0, 16)}`;
    const script = path.join(tmp, 'daemon.mjs');
    fs.writeFileSync(script, DAEMON_JS);
    fs.mkdirSync(path.join(tmp, 'sanitizer'));
    env = { ...process.env, TSRT_NODE: process.execPath, TSRT_DAEMON: script, TSRT_TEST_OUT: tmp, MAX_SHIM_VERSION: '2',
      ASAN_OPTIONS: [process.env.ASAN_OPTIONS, `log_path=${tmp}/sanitizer/asan`].filter(Boolean).join(':'),
      UBSAN_OPTIONS: [process.env.UBSAN_OPTIONS, `log_path=${tmp}/sanitizer/ubsan`].filter(Boolean).join(':') };
    delete env.TTRPC_ADDRESS;
    delete env.TSRT_DAEMON_DIR;
    bundle = path.join(tmp, 'bundle');
    fs.mkdirSync(bundle);
    fs.writeFileSync(path.join(bundle, 'config.json'), '{"ociVersion":"1.0.2"}');
    execFileSync('mkfifo', [path.join(bundle, 'log')]);
    logFd = fs.openSync(path.join(bundle, 'log'), fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
    configFile = path.join(tmp, 'tsrt.toml');
    fs.writeFileSync(configFile, '# tsrt\nBinaryName = "runc"\nTransport = "grpc"   # containerd 1.7\n[other]\nx = 1\n');
  });

  after(async () => {
    for (const c of clients) c.close();
    const pids = monitorsUnder(tmp);
    try { pids.push(Number(fs.readFileSync(path.join(daemonDir, 'daemon.pid'), 'utf8'))); } catch { /* none */ }
    for (const pid of pids) if (pid && pidAlive(pid)) try { process.kill(pid, 'SIGTERM'); } catch { /* gone */ }
    await waitFor('the test processes to exit', () => pids.every((p) => !pidAlive(p)), 10_000).catch(() => {
      for (const pid of pids) if (pidAlive(pid)) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    });
    if (logFd >= 0) fs.closeSync(logFd);
    if (sock) fs.rmSync(sock, { force: true });
    fs.rmSync(daemonDir, { recursive: true, force: true });
    const sanitizer = tmp ? fs.readdirSync(path.join(tmp, 'sanitizer')) : [];
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    assert.deepEqual(sanitizer, [], 'no sanitizer reports');
  });

  it('start answers containerd 1.7 with "protocol":"grpc" when the options say Transport = "grpc"', async () => {
    const r = await runStart(startArgs(id), optionsAny({ configPath: configFile }), { cwd: bundle, env });
    assert.equal(r.stderr, '');
    assert.equal(r.code, 0);
    const hash = createHash('sha256').update(`${address}/${ns}/${id}#grpc`).digest('hex');
    sock = `/run/containerd/s/${hash}`;
    assert.equal(r.stdout, `{"version":2,"address":"${sock}","protocol":"grpc"}`);
    // what containerd 1.7 reads back on a restart
    assert.equal(fs.readFileSync(path.join(bundle, 'address'), 'utf8'), r.stdout);
    assert.ok(fs.statSync(sock).isSocket());
    await waitFor('the control hello', async () => (await state().catch(() => null))?.monitors.length);
  });

  it('a call goes to the daemon as a ttrpc Request (service, method, payload, namespace, deadline) and back', async () => {
    const c = client();
    const r = await call(c, '/containerd.task.v3.Task/State', Buffer.from('abc'), { 'containerd-namespace': 'ns-a' }, 20_000);
    const st = await state();
    assert.equal(r.err, null);
    assert.equal(r.value?.toString(), `State:abc by ${st.pid}`);
    const rec = st.rpcs.at(-1)!;
    assert.deepEqual([rec.service, rec.method, rec.payloadHead], ['containerd.task.v3.Task', 'State', 'abc']);
    assert.deepEqual(rec.metadata, [['containerd-namespace-ttrpc', 'ns-a']]);
    assert.ok(rec.timeoutNano! > 1e9 && rec.timeoutNano! <= 20e9, `timeout_nano ${rec.timeoutNano}`);
    const v2 = await call(c, '/containerd.task.v2.Task/Wait', Buffer.alloc(0));
    assert.equal(v2.value?.toString(), `Wait: by ${st.pid}`);
    assert.equal((await state()).rpcs.at(-1)!.service, 'containerd.task.v2.Task');
  });

  it('errors: the daemon\'s status and message (percent-encoded on the wire), unknown methods and services', async () => {
    const c = client();
    const kill = await call(c, '/containerd.task.v3.Task/Kill', Buffer.from('x'));
    assert.equal(kill.err?.code, grpc.status.FAILED_PRECONDITION);
    assert.equal(kill.err?.details, 'kill refused: 100% sure \u2713\nbye');
    const unknown = await call(c, '/containerd.task.v3.Task/Frobnicate', Buffer.alloc(0));
    assert.deepEqual([unknown.err?.code, unknown.err?.details], [grpc.status.UNIMPLEMENTED, 'method Frobnicate']);
    const before = (await state()).rpcs.length;
    const svc = await call(c, '/containerd.services.tasks.v1.Tasks/List', Buffer.alloc(0));
    assert.deepEqual([svc.err?.code, svc.err?.details], [grpc.status.UNIMPLEMENTED, 'unknown service containerd.services.tasks.v1.Tasks']);
    assert.equal((await state()).rpcs.length, before, 'an unknown service is answered by the monitor');
  });

  it('malformed requests are INTERNAL, answered Trailers-Only', async () => {
    const base = { ':method': 'POST', ':path': '/containerd.task.v3.Task/State', 'content-type': 'application/grpc', te: 'trailers' };
    const before = (await state()).rpcs.length;
    // a length prefix announcing 9 bytes, followed by 1
    let h = await rawRequest(sock, base, Buffer.from([0, 0, 0, 0, 9, 1]));
    assert.deepEqual([h[':status'], h['grpc-status']], [200, '13']);
    assert.match(String(h['grpc-message']), /malformed gRPC message framing/);
    h = await rawRequest(sock, { ...base, 'content-type': 'application/json' }, Buffer.from('{}'));
    assert.equal(h['grpc-status'], '13');
    h = await rawRequest(sock, { ...base, 'grpc-timeout': '12x' }, Buffer.from([0, 0, 0, 0, 0]));
    assert.deepEqual([h['grpc-status'], h['grpc-message']], ['13', 'tsrt: malformed grpc-timeout']);
    h = await rawRequest(sock, base, Buffer.from([1, 0, 0, 0, 0]));
    assert.equal(h['grpc-status'], '12', 'compressed messages');
    assert.equal((await state()).rpcs.length, before, 'none reached the daemon');
    // the connection can still carry calls after a bad one; a client that is not HTTP/2 is closed
    const c = client();
    assert.equal((await call(c, '/containerd.task.v3.Task/State', Buffer.from('ok'))).err, null);
    const s = net.connect(sock);
    s.on('error', () => {});
    s.on('data', () => {});
    s.write(Buffer.concat([Buffer.from([0, 0, 0, 20, 0, 0, 0, 1, 1, 0]), Buffer.alloc(20, 'h')])); // a ttrpc frame
    await new Promise((res) => s.on('close', res));
  });

  it('large messages both ways and concurrent calls on one connection', async () => {
    const c = client();
    const big = Buffer.alloc(3 << 20, 'x');
    big.write('head', 0);
    const r = await call(c, '/containerd.task.v3.Task/Stats', big);
    assert.equal(r.err, null);
    assert.ok(r.value?.equals(big), 'the 3 MiB answer came back whole');
    const many = await Promise.all(Array.from({ length: 40 }, (_, i) => call(c, '/containerd.task.v3.Task/State', Buffer.from(`n${i}`))));
    const pid = (await state()).pid;
    assert.deepEqual(many.map((m) => m.value?.toString()), many.map((_, i) => `State:n${i} by ${pid}`));
    const tooBig = await call(c, '/containerd.task.v3.Task/Stats', Buffer.alloc((4 << 20) + 1));
    assert.equal(tooBig.err?.code, grpc.status.RESOURCE_EXHAUSTED);
  });

  it('a closed connection leaves nothing behind in the monitor', async () => {
    const monitor = (await state()).monitors[0]!;
    const base = fdCount(monitor);
    // a connection of its own (grpc-js shares connections between clients of one target by default)
    const c = new grpc.Client(`unix://${sock}`, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
    assert.equal((await call(c, '/containerd.task.v3.Task/State', Buffer.from('a'))).err, null);
    assert.ok(fdCount(monitor) >= base + 2, 'containerd connection and its proxy connection');
    c.close();
    await waitFor('the monitor to close both connections', () => fdCount(monitor) === base);
  });

  it('daemon crash mid-call: Wait is replayed to the next daemon, Kill is answered UNAVAILABLE', async () => {
    const c = client();
    assert.equal((await call(c, '/containerd.task.v3.Task/State', Buffer.from('warm'))).err, null);
    const old = await state();
    fs.writeFileSync(path.join(tmp, 'hold'), '');
    const wait = call(c, '/containerd.task.v3.Task/Wait', Buffer.from('w'));
    const kill = call(c, '/containerd.task.v3.Task/Kill', Buffer.from('k'));
    await waitFor('both calls in the daemon', async () => (await state()).rpcs.slice(old.rpcs.length).length === 2);
    fs.rmSync(path.join(tmp, 'hold'));
    assert.deepEqual(await daemonCmd(daemonDir, { cmd: 'die' }), ['dying']);
    const [w, k] = await Promise.all([wait, kill]);
    assert.equal(k.err?.code, grpc.status.UNAVAILABLE);
    assert.equal(k.err?.details, 'tsrt: daemon connection lost, request not completed');
    assert.equal(w.err, null);
    const fresh = await state();
    assert.notEqual(fresh.pid, old.pid);
    assert.equal(w.value?.toString(), `Wait:w by ${fresh.pid}`);
    assert.deepEqual(fresh.rpcs.map((r) => r.method), ['Wait'], 'only the Wait ran again');
    // the same HTTP/2 connection goes on with the new daemon
    assert.equal((await call(c, '/containerd.task.v3.Task/State', Buffer.from('after'))).value?.toString(), `State:after by ${fresh.pid}`);
  });

  it('Transport elsewhere: ttrpc for containerd 1.6 and 2.x, not at the top level, an unknown value refused', async () => {
    const body = (b: string) => optionsAny({ configBody: b });
    const opt = `opt-${randomBytes(3).toString('hex')}`;
    const ttrpcAddr = `unix:///run/containerd/s/${createHash('sha256').update(`${address}/${ns}/${opt}`).digest('hex')}`;
    // containerd 1.6: no MAX_SHIM_VERSION, a bare (ttrpc) address
    const env16 = { ...env };
    delete env16.MAX_SHIM_VERSION;
    let r = await runStart(startArgs(opt), optionsAny({ configPath: configFile }), { cwd: bundle, env: env16 });
    assert.deepEqual([r.code, r.stdout, r.stderr], [0, ttrpcAddr, '']);
    // MAX_SHIM_VERSION=3 (containerd 2.x): version 3 JSON, ttrpc
    r = await runStart(startArgs(opt), optionsAny({ configPath: configFile }), { cwd: bundle, env: { ...env, MAX_SHIM_VERSION: '3' } });
    assert.equal(r.stdout, `{"version":3,"address":"${ttrpcAddr}","protocol":"ttrpc"}`);
    for (const b of ['[runtime]\nTransport = "grpc"\n', 'Note = """\nTransport = "grpc"\n"""\n', 'Transport.x = "grpc"\n', '# Transport = "grpc"\n']) {
      r = await runStart(startArgs(opt), body(b), { cwd: bundle, env });
      assert.equal(r.stdout, `{"version":2,"address":"${ttrpcAddr}","protocol":"ttrpc"}`, b);
    }
    r = await runStart(startArgs(opt), body('TypeUrl = ""\nConfigPath = ""\n"Transport" = \'grpc\'\n'), { cwd: bundle, env });
    assert.match(r.stdout, /"protocol":"grpc"\}$/);
    for (const [b, msg] of [['Transport = "GRPC"', 'runtime option Transport = "GRPC" is not known (expected "ttrpc" or "grpc")'],
      ['Transport = 1', 'runtime option Transport must be a plain string, "ttrpc" or "grpc"']]) {
      r = await runStart(startArgs(opt), body(b!), { cwd: bundle, env });
      assert.deepEqual([r.code, r.stdout, r.stderr], [1, '', `io.containerd.tsrt.v2: ${msg}\n`]);
    }
  });
});


