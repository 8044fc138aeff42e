// The metrics endpoint against a fake daemon: what a scrape shows, counters summed over monitors that never
// go backwards, and a socket that is removed only while it is still the endpoint's own.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { MetricsEndpoint, type IoCounts, type MetricsSource, type MonitorProbe } from '../../src/shim/metrics-endpoint.js';
import { Code } from '../../src/ttrpc/codes.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrt-metrics-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));
let seq = 0;
const log = pino({ level: 'silent' });
const SERVICE = 'containerd.task.v2.Task';
const SERVICE_V3 = 'containerd.task.v3.Task';

// A process to stand in for a monitor, so that pidusage has something real to read.
const stand = spawn('sleep', ['60'], { stdio: 'ignore' });
after(() => stand.kill());

interface FakeMonitor { key: string; io: IoCounts | 'fail' | 'hang'; connected?: boolean }

function fakeSource(monitors: FakeMonitor[]): MetricsSource & { containerCount: number; events: { queued: number; sent: number; failed: number } } {
  return {
    containerCount: 0,
    containers() { return this.containerCount; },
    monitors: () => monitors.map((m): MonitorProbe => ({
      key: m.key,
      pid: stand.pid!,
      connected: m.connected ?? true,
      ioStats: () => m.io === 'fail' ? Promise.reject(new Error('monitor went away'))
        : m.io === 'hang' ? new Promise(() => {}) : Promise.resolve({ ...m.io }),
    })),
    events: { queued: 0, sent: 0, failed: 0 },
  };
}

function get(socketPath: string, urlPath = '/metrics', method = 'GET'): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, path: urlPath, method }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => { body += d.toString(); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: res.headers['content-type'] ?? '', body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** The value of the sample line `name` (with its labels exactly as printed), or undefined. */
function sample(body: string, name: string): number | undefined {
  const line = body.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

/** Leaves a socket file at `p` that nobody listens on (closing a server would remove it: listen elsewhere, link). */
async function staleSocket(p: string): Promise<void> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(`${p}.tmp`, resolve));
  fs.linkSync(`${p}.tmp`, p);
  await new Promise<void>((resolve) => s.close(() => resolve()));
}

async function open(source: MetricsSource): Promise<{ endpoint: MetricsEndpoint; sock: string }> {
  const sock = path.join(dir, `m${++seq}.sock`);
  const endpoint = await MetricsEndpoint.open({ kind: 'unix', path: sock }, source, { log, services: new Set([SERVICE, SERVICE_V3]), methods: new Set(['Create', 'State']) });
  return { endpoint, sock };
}

test('a scrape: gauges, events, RPCs by method and code name, the daemon\'s own usage', async () => {
  const source = fakeSource([{ key: 'a:1', io: { stdinBytes: 3, stdoutBytes: 10 } }, { key: 'b:2', io: { stdinBytes: 0, stdoutBytes: 5 } }]);
  source.containerCount = 3;
  Object.assign(source.events, { queued: 7, sent: 6, failed: 1 });
  const { endpoint, sock } = await open(source);
  try {
    endpoint.recordRequest(SERVICE, 'Create', Code.OK, 0.02);
    endpoint.recordRequest(SERVICE_V3, 'State', Code.NotFound, 0.0002); // Task v3 counts by method too
    endpoint.recordRequest(SERVICE, 'Bogus', Code.Unimplemented, 0.0001);
    endpoint.recordRequest('other.Service', 'Create', Code.Unimplemented, 0.0001);
    const r = await get(sock);
    assert.equal(r.status, 200);
    assert.equal(r.type, 'text/plain; version=0.0.4; charset=utf-8');
    assert.equal(sample(r.body, 'tsrt_containers'), 3);
    assert.equal(sample(r.body, 'tsrt_monitors'), 2);
    assert.equal(sample(r.body, 'tsrt_events_queued_total'), 7);
    assert.equal(sample(r.body, 'tsrt_events_sent_total'), 6);
    assert.equal(sample(r.body, 'tsrt_events_failed_total'), 1);
    assert.equal(sample(r.body, 'tsrt_console_bytes_total{direction="stdin"}'), 3);
    assert.equal(sample(r.body, 'tsrt_console_bytes_total{direction="stdout"}'), 15);
    assert.equal(sample(r.body, 'tsrt_rpc_requests_total{method="Create",code="OK"}'), 1);
    assert.equal(sample(r.body, 'tsrt_rpc_requests_total{method="State",code="NOT_FOUND"}'), 1);
    assert.equal(sample(r.body, 'tsrt_rpc_requests_total{method="other",code="UNIMPLEMENTED"}'), 2);
    assert.equal(sample(r.body, 'tsrt_rpc_duration_seconds_bucket{le="0.025",method="Create"}'), 1);
    assert.equal(sample(r.body, 'tsrt_rpc_duration_seconds_bucket{le="0.01",method="Create"}'), 0);
    assert.ok(sample(r.body, 'tsrt_daemon_resident_memory_bytes')! > 1 << 20);
    assert.ok(sample(r.body, 'tsrt_daemon_cpu_seconds_total')! > 0);
    // Two monitors that are the same stand-in process: twice its memory.
    assert.ok(sample(r.body, 'tsrt_monitor_resident_memory_bytes')! > 0);
    // Numbers are read at every scrape.
    source.containerCount = 0;
    source.events.sent = 7;
    const r2 = await get(sock);
    assert.equal(sample(r2.body, 'tsrt_containers'), 0);
    assert.equal(sample(r2.body, 'tsrt_events_sent_total'), 7);
  } finally {
    endpoint.close();
  }
});

test('console bytes never go backwards: exited monitors keep their last count, a failing one its previous', async () => {
  const monitors: FakeMonitor[] = [{ key: 'a:1', io: { stdinBytes: 1, stdoutBytes: 100 } }, { key: 'b:2', io: { stdinBytes: 0, stdoutBytes: 50 } }];
  const { endpoint, sock } = await open(fakeSource(monitors));
  const stdout = async (): Promise<number | undefined> => sample((await get(sock)).body, 'tsrt_console_bytes_total{direction="stdout"}');
  try {
    assert.equal(await stdout(), 150);
    monitors[0]!.io = 'fail';
    assert.equal(await stdout(), 150, 'a monitor that does not answer keeps its last count');
    monitors[1]!.io = 'hang';
    const t0 = Date.now();
    assert.equal(await stdout(), 150);
    // the endpoint gives a monitor 500 ms; 10× that leaves room for a busy machine and still shows the
    // scrape does not wait for the hung monitor
    assert.ok(Date.now() - t0 < 5000, 'a monitor that hangs is given up on');
    monitors.splice(0, 2);
    assert.equal(await stdout(), 150, 'monitors that are gone keep their count');
    // The same monitor id again (a re-created container): a new process, counting from zero.
    monitors.push({ key: 'a:3', io: { stdinBytes: 0, stdoutBytes: 7 } });
    assert.equal(await stdout(), 157);
  } finally {
    endpoint.close();
  }
});

test('a retiring monitor is read one last time, and counted once', async () => {
  const monitors: FakeMonitor[] = [{ key: 'a:1', io: { stdinBytes: 0, stdoutBytes: 10 } }];
  const source = fakeSource(monitors);
  const { endpoint, sock } = await open(source);
  const stdout = async (): Promise<number | undefined> => sample((await get(sock)).body, 'tsrt_console_bytes_total{direction="stdout"}');
  try {
    assert.equal(await stdout(), 10);
    // The container wrote more, then the daemon retires the monitor before the next scrape; the monitor
    // takes a while to answer.
    const final: IoCounts = { stdinBytes: 0, stdoutBytes: 25 };
    const probe: MonitorProbe = {
      ...source.monitors()[0]!,
      ioStats: () => new Promise((resolve) => setTimeout(() => resolve(final), 150)),
    };
    monitors.splice(0, 1);
    const last = endpoint.monitorRetiring(probe);
    // A scrape meanwhile must not retire the monitor with its older count.
    assert.equal(await stdout(), 10);
    await last;
    assert.equal(await stdout(), 25);
    assert.equal(await stdout(), 25, 'retired once');
  } finally {
    endpoint.close();
  }
});

test('only GET and HEAD of /metrics', async () => {
  const { endpoint, sock } = await open(fakeSource([]));
  try {
    assert.equal((await get(sock, '/')).status, 404);
    assert.equal((await get(sock, '/metricsx')).status, 404);
    assert.equal((await get(sock, '/metrics?x=1')).status, 200);
    assert.equal((await get(sock, '/metrics', 'DELETE')).status, 405);
    const head = await get(sock, '/metrics', 'HEAD');
    assert.deepEqual([head.status, head.body], [200, '']);
  } finally {
    endpoint.close();
  }
});

test('the socket: a stale file is replaced, a live one refused; close removes only its own', async () => {
  const sock = path.join(dir, 'taken.sock');
  const other = net.createServer();
  await new Promise<void>((resolve) => other.listen(sock, resolve));
  const opts = { log, services: new Set([SERVICE]), methods: new Set<string>() };
  await assert.rejects(MetricsEndpoint.open({ kind: 'unix', path: sock }, fakeSource([]), opts), /in use by another process/);
  assert.ok(fs.existsSync(sock), 'the live socket is left alone');
  await new Promise<void>((resolve) => other.close(() => resolve()));

  // A socket file nobody listens on (a crashed daemon's) is replaced; a file of another kind never is.
  await staleSocket(sock);
  assert.ok(fs.lstatSync(sock).isSocket());
  const a = await MetricsEndpoint.open({ kind: 'unix', path: sock }, fakeSource([]), opts);
  assert.equal((await get(sock)).status, 200);
  a.close();
  assert.equal(fs.existsSync(sock), false, 'close removes the socket');

  const file = path.join(dir, 'not-a-socket');
  fs.writeFileSync(file, 'precious');
  await assert.rejects(MetricsEndpoint.open({ kind: 'unix', path: file }, fakeSource([]), opts), /exists and is not a socket/);
  assert.equal(fs.readFileSync(file, 'utf8'), 'precious');
  await assert.rejects(MetricsEndpoint.open({ kind: 'unix', path: dir }, fakeSource([]), opts), /exists and is not a socket/);

  const nested = path.join(dir, 'new', 'dir', 'm.sock');
  const b = await MetricsEndpoint.open({ kind: 'unix', path: nested }, fakeSource([]), opts);
  fs.rmSync(nested);
  fs.writeFileSync(nested, 'someone else');
  b.close();
  assert.equal(fs.readFileSync(nested, 'utf8'), 'someone else', 'a file that replaced the socket is not removed');
});
