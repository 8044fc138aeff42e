// The daemon's opt-in Prometheus endpoint (README, "Metrics endpoint"): plain HTTP on a unix socket or a
// loopback port named by a container's MetricsAddress option, serving GET /metrics. The daemon loads this
// module with import() only once a container asks for it, so that a daemon without the option never
// initialises prom-client. Everything is read when scraped, except the RPC counts and latencies, which the
// ttrpc servers report as requests are answered (recordRequest).
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import pidusage from 'pidusage';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { MetricsListen } from '../plugins/config.js';
import { codeName } from '../ttrpc/codes.js';
import type { Logger } from './log.js';
import { listenUnix, unlinkIfOurs, type SocketIdentity } from './unix-listen.js';

export interface IoCounts { stdinBytes: number; stdoutBytes: number }

/** One monitor process, as the daemon knows it. */
export interface MonitorProbe {
  /**
   * Names the monitor process, not just the monitor id: a re-created container gets a new monitor under
   * the same id, and its counters start again from zero.
   */
  key: string;
  pid: number;
  /** Only a connected monitor can be asked for its counters. */
  connected: boolean;
  /** The monitor's tty console byte counts since it started. */
  ioStats(): Promise<IoCounts>;
}

/** What the daemon shows of itself; read at every scrape. */
export interface MetricsSource {
  containers(): number;
  monitors(): MonitorProbe[];
  events: Readonly<{ queued: number; sent: number; failed: number }>;
}

export interface EndpointOptions {
  log: Logger;
  /** The ttrpc services (Task v2 and v3) and their methods: requests for anything else are counted as method="other". */
  services: ReadonlySet<string>;
  methods: ReadonlySet<string>;
}

/** A monitor that does not answer within this time is left out of one scrape. */
const MONITOR_TIMEOUT_MS = 500;
// pidusage keeps /proc/<pid>/stat open for 60 s after a pid was last asked for (its default maxage), and
// its expiry timer runs every 30 s. A monitor pid reused by a new monitor within that time would be read
// through the dead process's file and fail every time it is asked; so a pid that fails is not asked for
// until its stale entry has certainly expired.
const PIDUSAGE_RETRY_MS = 95_000;
/** Latencies from a State answered from memory (~0.1 ms) to a slow runtime command (seconds). */
const DURATION_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** ttrpc status codes as labels: OK, NOT_FOUND, ALREADY_EXISTS, … (gRPC's names). */
const CODE_LABELS = Array.from({ length: 17 }, (_, code) => codeName(code).replace(/([a-z])([A-Z])/g, '$1_$2').toUpperCase());

/**
 * A counter kept per monitor process and summed over them, which never goes backwards: when a monitor
 * is gone, the last value seen of it moves into `retired`.
 */
class MonitorTotals {
  private readonly last = new Map<string, number>();
  private retired = 0;

  see(key: string, value: number): void {
    if (!Number.isFinite(value) || value < 0) return;
    this.last.set(key, Math.max(this.last.get(key) ?? 0, value));
  }

  /** Retires every monitor not in `keep`. */
  keepOnly(keep: ReadonlySet<string>): void {
    for (const [key, value] of this.last) {
      if (keep.has(key)) continue;
      this.retired += value;
      this.last.delete(key);
    }
  }

  total(): number {
    let sum = this.retired;
    for (const v of this.last.values()) sum += v;
    return sum;
  }
}

interface Sample {
  io: Array<IoCounts | null>;
  usage: Map<number, pidusage.Status>;
}

export class MetricsEndpoint {
  private readonly registry = new Registry();
  private readonly containers = this.gauge('tsrt_containers', 'Containers the daemon serves.');
  private readonly monitors = this.gauge('tsrt_monitors', 'Monitor processes (what containerd knows as the shims) connected to the daemon.');
  private readonly requests = new Counter({
    name: 'tsrt_rpc_requests_total',
    help: 'Task API requests answered, by method and ttrpc status code. method="other": an unknown service or method, or an undecodable request.',
    labelNames: ['method', 'code'] as const,
    registers: [this.registry],
  });
  private readonly durations = new Histogram({
    name: 'tsrt_rpc_duration_seconds',
    help: 'Seconds from a Task API request\'s arrival in the daemon to its answer (a Wait lasts until the process exits).',
    labelNames: ['method'] as const,
    buckets: DURATION_BUCKETS,
    registers: [this.registry],
  });
  private readonly eventsQueued = this.counter('tsrt_events_queued_total', 'Task events queued for containerd.');
  private readonly eventsSent = this.counter('tsrt_events_sent_total', 'Task events delivered to containerd.');
  private readonly eventsFailed = this.counter('tsrt_events_failed_total', 'Task events dropped: undeliverable after retries, or pushed out of a full queue.');
  private readonly consoleBytes = new Counter({
    name: 'tsrt_console_bytes_total',
    help: 'Bytes the monitors copied for tty consoles: stdin = client to the container\'s terminal, stdout = terminal to the client. '
      + 'Non-tty stdio is handed to the container and never copied. A monitor that exits keeps the count last read from it.',
    labelNames: ['direction'] as const,
    registers: [this.registry],
  });
  private readonly daemonCpu = this.counter('tsrt_daemon_cpu_seconds_total', 'CPU time (user and system) of the daemon.');
  private readonly daemonRss = this.gauge('tsrt_daemon_resident_memory_bytes', 'Resident memory of the daemon.');
  private readonly monitorCpu = this.counter('tsrt_monitor_cpu_seconds_total',
    'CPU time (user and system) of the monitors, not of their containers. A monitor that exits keeps the time last read from it.');
  private readonly monitorRss = this.gauge('tsrt_monitor_resident_memory_bytes', 'Resident memory of the connected monitors, summed.');

  private readonly stdinTotals = new MonitorTotals();
  private readonly stdoutTotals = new MonitorTotals();
  private readonly cpuTotals = new MonitorTotals();
  /** Monitors shutting down whose last counts are still being read: not retired meanwhile. */
  private readonly closing = new Set<string>();
  private readonly pidRetryAt = new Map<number, number>();
  private sampling: Promise<void> | null = null;
  private socket: SocketIdentity | null = null;
  private readonly server = http.createServer((req, res) => void this.handle(req, res));

  private constructor(private readonly source: MetricsSource, private readonly opts: EndpointOptions) {}

  /** Listens at `listen`; rejects (with nothing left listening) when it cannot. */
  static async open(listen: MetricsListen, source: MetricsSource, opts: EndpointOptions): Promise<MetricsEndpoint> {
    const e = new MetricsEndpoint(source, opts);
    await e.listen(listen);
    return e;
  }

  /** A ttrpc request was answered (the TtrpcServer request observer). */
  recordRequest(service: string, method: string, code: number, seconds: number): void {
    const m = this.opts.services.has(service) && this.opts.methods.has(method) ? method : 'other';
    this.requests.inc({ method: m, code: CODE_LABELS[code] ?? 'UNKNOWN' });
    this.durations.observe({ method: m }, seconds);
  }

  /**
   * The daemon is about to tell this monitor to exit: read its counters one last time, so that a
   * container shorter than the scrape interval still counts. The caller sends its shutdown request
   * after this call; the monitor answers requests in order, so this one is answered first. Resolves
   * once the counts are filed (never rejects).
   */
  monitorRetiring(m: MonitorProbe): Promise<void> {
    if (!m.connected) return Promise.resolve();
    this.closing.add(m.key);
    const io = within(m.ioStats(), MONITOR_TIMEOUT_MS).catch(() => null);
    const usage = this.usage([m.pid]);
    return Promise.all([io, usage]).then(([counts, u]) => {
      this.record([m], { io: [counts], usage: u });
    }).finally(() => this.closing.delete(m.key));
  }

  close(): void {
    this.server.close();
    this.server.closeAllConnections();
    if (this.socket) unlinkIfOurs(this.socket);
    this.socket = null;
  }

  private gauge(name: string, help: string): Gauge {
    return new Gauge({ name, help, registers: [this.registry] });
  }

  private counter(name: string, help: string): Counter {
    return new Counter({ name, help, registers: [this.registry] });
  }

  private async listen(listen: MetricsListen): Promise<void> {
    if (listen.kind === 'unix') {
      fs.mkdirSync(path.dirname(listen.path), { recursive: true, mode: 0o755 });
      // Root only, like the daemon's own socket; a scraper that is not root uses the TCP form.
      this.socket = await listenUnix(this.server, listen.path, 0o600);
      return;
    }
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen({ host: listen.host, port: listen.port, ipv6Only: listen.host === '::1' }, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const pathname = (req.url ?? '/').split('?')[0];
    if (pathname !== '/metrics') {
      reply(res, 404, 'not found: the metrics are at /metrics\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      reply(res, 405, `method ${req.method ?? ''} not allowed: use GET\n`);
      return;
    }
    try {
      await this.sample();
      const body = await this.registry.metrics();
      res.writeHead(200, { 'Content-Type': this.registry.contentType, 'Content-Length': Buffer.byteLength(body) });
      res.end(req.method === 'HEAD' ? undefined : body);
    } catch (e) {
      this.opts.log.warn({ err: (e as Error).message }, 'metrics scrape failed');
      reply(res, 500, 'metrics collection failed\n');
    }
  }

  /** One sample serves every scrape that arrives while it is being taken. */
  private sample(): Promise<void> {
    this.sampling ??= this.takeSample().finally(() => { this.sampling = null; });
    return this.sampling;
  }

  private async takeSample(): Promise<void> {
    const all = this.source.monitors();
    const live = all.filter((m) => m.connected && m.pid > 0);
    const [io, usage] = await Promise.all([
      Promise.all(live.map((m) => within(m.ioStats(), MONITOR_TIMEOUT_MS).catch(() => null))),
      this.usage([process.pid, ...live.map((m) => m.pid)]),
    ]);
    this.monitorRss.set(this.record(live, { io, usage }));
    // Monitors the daemon no longer knows have exited: their last counts become part of the totals.
    const keep = new Set([...all.map((m) => m.key), ...this.closing]);
    for (const t of [this.stdinTotals, this.stdoutTotals, this.cpuTotals]) t.keepOnly(keep);

    const daemon = usage.get(process.pid);
    if (daemon) {
      setCounter(this.daemonCpu, daemon.ctime / 1000);
      this.daemonRss.set(daemon.memory);
    }
    this.containers.set(this.source.containers());
    this.monitors.set(live.length);
    const ev = this.source.events;
    setCounter(this.eventsQueued, ev.queued);
    setCounter(this.eventsSent, ev.sent);
    setCounter(this.eventsFailed, ev.failed);
    setCounter(this.consoleBytes, this.stdinTotals.total(), { direction: 'stdin' });
    setCounter(this.consoleBytes, this.stdoutTotals.total(), { direction: 'stdout' });
    setCounter(this.monitorCpu, this.cpuTotals.total());
  }

  /** Files what was read of `monitors` (same order as sample.io); returns their summed resident memory. */
  private record(monitors: MonitorProbe[], sample: Sample): number {
    let rss = 0;
    monitors.forEach((m, i) => {
      const io = sample.io[i];
      if (io) {
        this.stdinTotals.see(m.key, io.stdinBytes);
        this.stdoutTotals.see(m.key, io.stdoutBytes);
      }
      const u = sample.usage.get(m.pid);
      if (u) {
        this.cpuTotals.see(m.key, u.ctime / 1000);
        rss += u.memory;
      }
    });
    return rss;
  }

  /** CPU time and resident memory of `pids` (one pidusage call); pids it cannot read are left out. */
  private async usage(pids: number[]): Promise<Map<number, pidusage.Status>> {
    const now = Date.now();
    const ask = pids.filter((p) => (this.pidRetryAt.get(p) ?? 0) <= now);
    const out = new Map<number, pidusage.Status>();
    if (ask.length === 0) return out;
    let stats: Record<string, pidusage.Status | undefined> = {};
    try {
      stats = await pidusage(ask);
    } catch { /* a single pid that failed; handled below */ }
    for (const p of ask) {
      const s = stats[p];
      if (s) {
        out.set(p, s);
        this.pidRetryAt.delete(p);
      } else {
        this.pidRetryAt.set(p, now + PIDUSAGE_RETRY_MS);
      }
    }
    for (const [p, at] of this.pidRetryAt) if (at <= now) this.pidRetryAt.delete(p);
    return out;
  }
}

/** Sets a counter to a total kept elsewhere (counters only go up; the totals passed here do too). */
function setCounter<T extends string>(c: Counter<T>, value: number, labels?: Partial<Record<T, string>>): void {
  if (labels) {
    c.remove(labels);
    c.inc(labels, value);
  } else {
    c.reset();
    c.inc(value);
  }
}

function reply(res: http.ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

function within<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
