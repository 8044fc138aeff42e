// The daemon's opt-in metrics endpoint (README, "Metrics endpoint"), turned on by a container's runtime
// options and scraped with a plain HTTP client, as Prometheus or curl would. The daemon (and so the
// endpoint) is shared by every test of a containerd, so the assertions compare scrapes taken before and
// after what a test does.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  CMD_MS,
  TSRT_V2,
  WAIT_MS,
  containerdForFile,
  ctrInTerminal,
  removeContainer,
  taskStatus,
  tsrtDaemonDir,
  uniqueId,
  waitFor,
  type Containerd,
} from './harness.js';

type Target = { socketPath: string } | { host: string; port: number };

interface Reply { status: number; headers: http.IncomingHttpHeaders; body: string }

function request(target: Target, path = '/metrics', method = 'GET'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ ...target, path, method, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (s: string) => { body += s; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('timeout', () => req.destroy(new Error('scrape timed out')));
    req.on('error', reject);
    req.end();
  });
}

interface Sample { name: string; labels: Record<string, string>; value: number }

/** The samples of a Prometheus text exposition. */
function parse(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([A-Za-z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

class Scrape {
  constructor(readonly samples: Sample[]) {}

  /** The sample with exactly these labels; 0 when absent (a counter never incremented is not printed). */
  value(name: string, labels: Record<string, string> = {}): number {
    const want = Object.entries(labels);
    const hit = this.samples.find((s) => s.name === name && Object.keys(s.labels).length === want.length &&
      want.every(([k, v]) => s.labels[k] === v));
    return hit?.value ?? 0;
  }

  has(name: string): boolean {
    return this.samples.some((s) => s.name === name);
  }
}

async function scrape(target: Target): Promise<Scrape> {
  const r = await request(target);
  assert.equal(r.status, 200, r.body);
  return new Scrape(parse(r.body));
}

/** A TCP port nobody listens on right now. */
async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const { port } = s.address() as net.AddressInfo;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

/** A runtime options file naming `address`; returns the ctr arguments that select tsrt with it. */
function tsrtWith(cd: Containerd, name: string, address: string): string[] {
  const cfg = join(cd.root, `${name}.toml`);
  writeFileSync(cfg, `MetricsAddress = ${JSON.stringify(address)}\n`);
  return ['--runtime', TSRT_V2, '--runtime-config-path', cfg];
}

describe('metrics endpoint on a unix socket', { timeout: 240_000 }, () => {
  const suite = containerdForFile({ before, after });
  const socketPath = (): string => join(suite.containerd().root, 'metrics.sock');
  const target = (): Target => ({ socketPath: socketPath() });
  const rt = (): string[] => tsrtWith(suite.containerd(), 'metrics-unix', `unix://${socketPath()}`);

  /** Runs a detached `sleep` under tsrt with the metrics option; the endpoint answers once this returns. */
  async function runDetached(id: string, runtimeArgs = rt()): Promise<void> {
    await suite.containerd().ctrOk(['run', '-d', ...runtimeArgs, suite.image(), id, 'sleep', '600']);
    await waitFor(() => scrape(target()), WAIT_MS, { what: 'metrics endpoint answering' });
  }

  test('a scrape shows containers, monitors, RPCs by method and code, events, CPU and memory', async () => {
    const cd = suite.containerd();
    const a = uniqueId('metrics-a');
    const b = uniqueId('metrics-b');
    try {
      await runDetached(a);
      const r = await request(target());
      assert.equal(r.status, 200);
      assert.match(r.headers['content-type'] ?? '', /^text\/plain; version=0\.0\.4; charset=utf-8$/);
      assert.match(r.body, /^# HELP tsrt_containers Containers the daemon serves\.$/m);
      assert.match(r.body, /^# TYPE tsrt_rpc_requests_total counter$/m);
      assert.match(r.body, /^# TYPE tsrt_rpc_duration_seconds histogram$/m);
      assert.doesNotMatch(r.body, /^nodejs_|^process_/m, 'a private registry: no default metrics');

      const s0 = await scrape(target());
      await cd.ctrOk(['run', '-d', ...rt(), suite.image(), b, 'sleep', '600']);
      // containerd asks the shim for the state of an exec that does not exist: NotFound.
      const kill = await cd.ctr(['task', 'kill', '--exec-id', 'no-such-exec', b]);
      assert.notEqual(kill.code, 0);
      assert.match(kill.stderr, /not found/);
      const s1 = await waitFor(async () => {
        const s = await scrape(target());
        return s.value('tsrt_events_sent_total') >= s0.value('tsrt_events_sent_total') + 2 ? s : null;
      }, WAIT_MS, { what: 'TaskCreate and TaskStart of b sent' });

      const delta = (name: string, labels: Record<string, string> = {}): number => s1.value(name, labels) - s0.value(name, labels);
      assert.ok(s1.value('tsrt_containers') >= 2, 'a and b are served');
      assert.ok(s1.value('tsrt_monitors') >= 2, 'each detached container has its monitor');
      assert.ok(delta('tsrt_rpc_requests_total', { method: 'Create', code: 'OK' }) >= 1);
      assert.ok(delta('tsrt_rpc_requests_total', { method: 'Start', code: 'OK' }) >= 1);
      assert.ok(delta('tsrt_rpc_requests_total', { method: 'State', code: 'NOT_FOUND' }) >= 1, 'the failed State is counted under its code');
      assert.ok(delta('tsrt_rpc_duration_seconds_count', { method: 'Create' }) >= 1);
      assert.ok(s1.value('tsrt_rpc_duration_seconds_sum', { method: 'Create' }) > 0);
      assert.ok(s1.value('tsrt_rpc_duration_seconds_bucket', { method: 'Create', le: '+Inf' }) >= 1);
      assert.ok(delta('tsrt_events_queued_total') >= 2);
      assert.equal(s1.value('tsrt_events_failed_total'), 0);
      assert.ok(s1.value('tsrt_daemon_resident_memory_bytes') > 10 << 20, 'the daemon is a Node process: more than 10 MiB');
      assert.ok(s1.value('tsrt_daemon_cpu_seconds_total') > 0);
      assert.ok(s1.value('tsrt_monitor_resident_memory_bytes') > 0);
      assert.ok(s1.has('tsrt_monitor_cpu_seconds_total'));
      assert.ok(s1.has('tsrt_console_bytes_total'));
    } finally {
      await removeContainer(cd, a);
      await removeContainer(cd, b);
    }
    // Gauges come down when the monitors are gone; a counter summed over monitors does not.
    const pre = await scrape(target());
    const gone = await waitFor(async () => {
      const s = await scrape(target());
      return s.value('tsrt_containers') === 0 && s.value('tsrt_monitors') === 0 ? s : null;
    }, WAIT_MS, { what: 'containers and monitors gone from the gauges' });
    assert.ok(gone.value('tsrt_monitor_cpu_seconds_total') >= pre.value('tsrt_monitor_cpu_seconds_total'));
  });

  test('tty console bytes: stdin and stdout, also of a container that is already gone', async () => {
    const cd = suite.containerd();
    const id = uniqueId('metrics-tty');
    try {
      await runDetached(id);
      const s0 = await scrape(target());
      const ex = await ctrInTerminal(cd, ['task', 'exec', '-t', '--exec-id', 'tty1', id, 'sh', '-c', 'read line; echo "got-$line"'],
        { type: ['hello\r'], typeDelayMs: 1200 });
      assert.equal(ex.code, 0, ex.stderr);
      assert.match(ex.stdout, /got-hello/);
      // This container's monitor exits with it: its bytes must still count.
      const run = await ctrInTerminal(cd, ['run', '-t', '--rm', ...rt(), suite.image(), uniqueId('metrics-tty-rm'),
        'sh', '-c', 'head -c 5000 /dev/zero | tr "\\000" x']);
      assert.equal(run.code, 0, run.stderr);
      assert.equal(run.stdout.replace(/[^x]/g, '').length, 5000);
      const stdout = (s: Scrape): number => s.value('tsrt_console_bytes_total', { direction: 'stdout' });
      const stdin = (s: Scrape): number => s.value('tsrt_console_bytes_total', { direction: 'stdin' });
      const s1 = await waitFor(async () => {
        const s = await scrape(target());
        return stdout(s) - stdout(s0) >= 5000 + 'got-hello'.length ? s : null;
      }, WAIT_MS, { what: 'console stdout bytes counted' });
      assert.ok(stdin(s1) - stdin(s0) >= 'hello\r'.length, `stdin bytes ${stdin(s0)} -> ${stdin(s1)}`);
    } finally {
      await removeContainer(cd, id);
    }
  });

  test('another address is ignored with one warning; a non-loopback one fails ctr run with the reason', async () => {
    const cd = suite.containerd();
    const first = uniqueId('metrics-first');
    const others = [uniqueId('metrics-other'), uniqueId('metrics-other')];
    const port = await freePort();
    try {
      await runDetached(first);
      for (const id of others) await cd.ctrOk(['run', '-d', ...tsrtWith(cd, 'metrics-tcp', `127.0.0.1:${port}`), suite.image(), id, 'sleep', '600']);
      assert.equal(await canConnect(port), false, 'the daemon keeps serving its first address only');
      assert.ok((await scrape(target())).value('tsrt_containers') >= 3);
      const log = readFileSync(join(tsrtDaemonDir(cd.ttrpcAddress), 'daemon.log'), 'utf8');
      assert.equal(log.split('\n').filter((l) => l.includes('names another MetricsAddress')).length, 1, 'warned once');
    } finally {
      for (const id of [first, ...others]) await removeContainer(cd, id);
    }

    const bad = uniqueId('metrics-bad');
    const r = await cd.ctr(['run', '--rm', ...tsrtWith(cd, 'metrics-bad', '10.0.0.1:9000'), suite.image(), bad, 'true'], { timeoutMs: CMD_MS });
    await cd.ctr(['containers', 'rm', bad]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /MetricsAddress "10\.0\.0\.1:9000": host 10\.0\.0\.1 is not allowed, the endpoint listens on loopback only/);
  });

  test('a daemon that replaces a crashed one serves the endpoint again, from the restored containers', async () => {
    const cd = suite.containerd();
    const id = uniqueId('metrics-crash');
    const pidFile = join(tsrtDaemonDir(cd.ttrpcAddress), 'daemon.pid');
    try {
      await runDetached(id);
      const old = Number(readFileSync(pidFile, 'utf8'));
      process.kill(old, 'SIGKILL');
      // the monitor starts a new daemon once the old one has been gone for 2 s; no Create is involved
      const s = await waitFor(async () => {
        const now = Number(readFileSync(pidFile, 'utf8'));
        return now !== old ? scrape(target()).catch(() => null) : null;
      }, WAIT_MS, { what: 'a new daemon serving metrics' });
      assert.ok(s.value('tsrt_containers') >= 1, 'the restored container is served');
      assert.equal(await taskStatus(cd, id), 'RUNNING');
    } finally {
      await removeContainer(cd, id);
    }
  });

  test('a daemon that stops removes its socket', async () => {
    const cd = suite.containerd();
    const id = uniqueId('metrics-stop');
    await runDetached(id);
    await removeContainer(cd, id);
    const pidFile = join(tsrtDaemonDir(cd.ttrpcAddress), 'daemon.pid');
    const pid = Number(readFileSync(pidFile, 'utf8'));
    await waitFor(async () => (await scrape(target())).value('tsrt_monitors') === 0, WAIT_MS, { what: 'no monitor left' });
    // The daemon this test's containerd started, with nothing left to serve.
    process.kill(pid, 'SIGTERM');
    await waitFor(() => !existsSync(`/proc/${pid}`), WAIT_MS, { what: 'daemon exit' });
    assert.equal(existsSync(socketPath()), false);
  });
});

describe('metrics endpoint on a loopback TCP port', { timeout: 240_000 }, () => {
  const suite = containerdForFile({ before, after });

  test('scraped over TCP; other paths are 404, other methods 405', async () => {
    const cd = suite.containerd();
    const port = await freePort();
    const target: Target = { host: '127.0.0.1', port };
    const id = uniqueId('metrics-tcp');
    try {
      await cd.ctrOk(['run', '-d', ...tsrtWith(cd, 'metrics-tcp', `127.0.0.1:${port}`), suite.image(), id, 'sleep', '600']);
      const s = await waitFor(() => scrape(target), WAIT_MS, { what: 'metrics endpoint answering on TCP' });
      assert.ok(s.value('tsrt_containers') >= 1);
      assert.ok(s.value('tsrt_daemon_resident_memory_bytes') > 0);
      const head = await request(target, '/metrics', 'HEAD');
      assert.deepEqual([head.status, head.body], [200, '']);
      assert.equal((await request(target, '/')).status, 404);
      assert.equal((await request(target, '/metrics/x')).status, 404);
      const post = await request(target, '/metrics', 'POST');
      assert.equal(post.status, 405);
      assert.equal(post.headers.allow, 'GET, HEAD');
    } finally {
      await removeContainer(cd, id);
    }
  });
});
