// The tsrt daemon: one long-lived Node process per containerd (keyed by TTRPC_ADDRESS) that serves the
// Task API for every container through the containers' monitors (docs/architecture.md). It is spawned
// by `containerd-shim-tsrt-v2 start` (or by a monitor) only when none is running.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { ControlFrameReader } from './control-frame.js';
import { MonitorLink, parseHello, type MonitorHello } from './monitor-link.js';
import { ExitRouter } from './exit-router.js';
import { TaskService } from './task-service.js';
import { StateStore } from './state-store.js';
import { EventAcks } from './event-acks.js';
import { EventPublisher } from './events.js';
import { diagnosticReport, type GroupSummary } from './diagnostics.js';
import { daemonLogger, logLevel, setLogLevel, type Logger } from './log.js';
import { TtrpcServer, type Handler, type RequestObserver } from '../ttrpc/server.js';
import { listenUnix, SocketInUse } from './unix-listen.js';
import { parseMetricsAddress, type DaemonOptions } from '../plugins/config.js';
// Only the type: the module (and prom-client with it) is loaded when a container asks for metrics.
import type { MetricsEndpoint, MetricsSource, MonitorProbe } from './metrics-endpoint.js';

// containerd 1.6 and 1.7 call Task v2; 2.x calls Task v3 when `start` answered with bootstrap version 3
// (native/shim/bootstrap.c). The messages are byte-identical, only the service name differs, so both
// names are served by the same handlers.
const TASK_SERVICES: ReadonlySet<string> = new Set(['containerd.task.v2.Task', 'containerd.task.v3.Task']);
const IDLE_EXIT_MS = Number(process.env.TSRT_DAEMON_IDLE_MS ?? 300_000);
/** The first frame of a connection must arrive within this time. */
const HELLO_TIMEOUT_MS = 5000;

interface Group {
  store: StateStore;
  link: MonitorLink;
  router: ExitRouter;
  acks: EventAcks;
  service: TaskService;
  server: TtrpcServer;
}

class Daemon {
  private groups = new Map<string, Group>();
  private idleTimer: NodeJS.Timeout | null = null;
  private server: net.Server | null = null;
  private stopping = false;
  /** The Task API's method names (the same for every group), for the metrics' method label. */
  private taskMethods: ReadonlySet<string> = new Set();
  /** Task API service names that have had a request, each logged once at its first (which API containerd speaks). */
  private servicesSeen = new Set<string>();
  /** The MetricsAddress served, or being set up; '' while there is no endpoint. */
  private metricsAddress = '';
  private metrics: MetricsEndpoint | null = null;
  private warnedMetricsAddress = false;
  /** The LogLevel a Create set ('' while none has); the first one decides. */
  private logLevelSet = '';
  /** Set on every group's ttrpc server once the endpoint runs; without it requests are not timed. */
  private readonly observeRequest: RequestObserver = (service, method, code, seconds) =>
    this.metrics?.recordRequest(service, method, code, seconds);

  constructor(private readonly dir: string, private readonly log: Logger, private readonly events: EventPublisher) {}

  /** The daemon's tables for the SIGUSR1 report. */
  summary(): GroupSummary[] {
    return [...this.groups].map(([monitorId, g]) => ({
      monitor: monitorId, pid: g.link.hello.pid, connected: g.link.connected, containers: g.service.ids,
      exitsUnacknowledged: g.acks.pending,
    }));
  }

  private group(monitorId: string, hello?: MonitorHello): Group {
    let g = this.groups.get(monitorId);
    if (g) return g;
    const link = new MonitorLink(hello ?? { monitorId, pid: 0, bundle: '', namespace: '', containerId: '', address: '' });
    const router = new ExitRouter();
    const server = new TtrpcServer({
      log: (level, msg, extra) => this.log[level]({ monitor: monitorId.slice(0, 12), ...extra }, msg),
      onRequest: this.metrics ? this.observeRequest : undefined,
    });
    const store = new StateStore(path.join(this.dir, 'state', monitorId));
    // settled() reads the service, made just below; acks are only looked at after the current turn
    const acks = new EventAcks((events) => link.ack(events), (pid) => created.service.exitSettled(pid));
    const created: Group = {
      link, router, server, store, acks,
      service: new TaskService({
        link, router, events: this.events, log: this.log, store,
        onEmpty: () => this.retire(monitorId),
        onConfig: (options, log) => this.onConfig(options, log),
        onRecorded: () => acks.schedule(),
      }),
    };
    link.onReaped((e, event) => {
      if (!acks.received(event)) return;
      router.deliver(e);
      acks.exit(event, e.pid);
    });
    link.onOom((key, event) => {
      if (!acks.received(event)) return;
      created.service.oomKilled(key);
      acks.done(event);
    });
    const handlers = created.service.handlers();
    for (const name of TASK_SERVICES) server.register(name, this.noteService(name, handlers));
    if (this.taskMethods.size === 0) this.taskMethods = new Set(Object.keys(handlers));
    this.groups.set(monitorId, created);
    this.touch();
    // A proxy connection can arrive before its monitor's control hello; one whose monitor never
    // shows up (a late probe of a monitor that has exited) must not pin the daemon.
    if (!hello) setTimeout(() => this.onMonitorLost(monitorId, created), HELLO_TIMEOUT_MS * 2).unref();
    return created;
  }

  /** The same handlers, and the first request over `service` (in this daemon) is logged. */
  private noteService(service: string, handlers: Record<string, Handler>): Record<string, Handler> {
    const noted: Record<string, Handler> = {};
    for (const [method, handler] of Object.entries(handlers)) {
      noted[method] = (payload, ctx) => {
        if (!this.servicesSeen.has(service)) {
          this.servicesSeen.add(service);
          this.log.info({ service, method }, 'first Task API request over this service');
        }
        return handler(payload, ctx);
      };
    }
    return noted;
  }

  /** The monitor has nothing left to serve: tell it to exit and forget it. */
  private retire(monitorId: string): void {
    const g = this.groups.get(monitorId);
    if (!g || g.service.size > 0) return;
    this.groups.delete(monitorId);
    // Before shutdown, so that the monitor's last counts are asked for while it still answers.
    void this.metrics?.monitorRetiring(monitorProbe(monitorId, g));
    g.link.shutdown().catch(() => undefined).finally(() => {
      g.link.close();
      this.forget(monitorId, g);
    });
  }

  /** Drops a monitor's group: its recorded state, its connections, and (maybe) the daemon's last work. */
  private forget(monitorId: string, g: Group): void {
    if (this.groups.get(monitorId) === g) this.groups.delete(monitorId);
    g.store.clear();
    g.server.closeAll();
    this.touch();
  }

  /** The monitor's control channel closed: forget the monitor once it is really gone. */
  private onMonitorLost(monitorId: string, g: Group): void {
    const check = (): void => {
      if (this.groups.get(monitorId) !== g || g.link.connected) return;
      const pid = g.link.hello.pid;
      // Containers whose monitor may still come back (unknown pid, or alive) are kept.
      if (g.service.size > 0 && (pid === 0 || isAlive(pid))) {
        setTimeout(check, 5000).unref();
        return;
      }
      if (g.service.size > 0) this.log.warn({ monitor: monitorId.slice(0, 12), pid }, 'monitor died with containers; containerd cleans up through the delete binary');
      this.forget(monitorId, g);
    };
    check();
  }

  /**
   * A Create's daemon-wide options. The daemon serves every shim of the host, so the first Create that
   * sets one decides; a Create that asks for another value is told so in its container's log.
   */
  private onConfig(options: DaemonOptions, log: Logger): void {
    this.applyLogLevel(options.logLevel, log);
    this.applyMetricsAddress(options.metricsAddress);
  }

  private applyLogLevel(wanted: string, log: Logger): void {
    if (wanted === '') return;
    if (this.logLevelSet === '') {
      this.logLevelSet = wanted;
      if (wanted !== logLevel()) {
        this.log.info({ from: logLevel(), to: wanted }, 'log level set by the LogLevel runtime option');
        setLogLevel(wanted);
      }
      return;
    }
    if (wanted !== this.logLevelSet) {
      log.warn({ serving: this.logLevelSet, asked: wanted },
        'LogLevel differs from the one the daemon took from an earlier container; the daemon keeps the first');
    }
  }

  /** The first MetricsAddress named starts the daemon's metrics endpoint. */
  private applyMetricsAddress(address: string): void {
    if (address === '' || this.stopping) return;
    if (this.metricsAddress === '') {
      this.metricsAddress = address;
      void this.startMetrics(address);
      return;
    }
    if (address !== this.metricsAddress && !this.warnedMetricsAddress) {
      this.warnedMetricsAddress = true;
      this.log.warn({ serving: this.metricsAddress, asked: address },
        'a container names another MetricsAddress; the daemon serves one metrics endpoint and keeps the first');
    }
  }

  /** Never fails a Create: a metrics endpoint that cannot listen is a warning; a later Create tries again. */
  private async startMetrics(address: string): Promise<void> {
    try {
      const { MetricsEndpoint } = await import('./metrics-endpoint.js');
      const endpoint = await MetricsEndpoint.open(parseMetricsAddress(address), this.metricsSource(), {
        log: this.log, services: TASK_SERVICES, methods: this.taskMethods,
      });
      if (this.stopping) {
        endpoint.close();
        return;
      }
      this.metrics = endpoint;
      for (const g of this.groups.values()) g.server.observeRequests(this.observeRequest);
      this.log.info({ address }, 'metrics endpoint listening');
    } catch (e) {
      this.metricsAddress = '';
      this.log.warn({ address, err: (e as Error).message }, 'cannot serve metrics; containers are not affected');
    }
  }

  private metricsSource(): MetricsSource {
    return {
      containers: () => {
        let n = 0;
        for (const g of this.groups.values()) n += g.service.size;
        return n;
      },
      monitors: () => [...this.groups].filter(([, g]) => g.link.hello.pid > 0).map(([id, g]) => monitorProbe(id, g)),
      events: this.events.stats,
    };
  }

  private touch(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    if (this.groups.size === 0) {
      this.idleTimer = setTimeout(() => this.stop('idle'), IDLE_EXIT_MS);
      this.idleTimer.unref();
    }
  }

  private onConnection(sock: net.Socket): void {
    const reader = new ControlFrameReader();
    const timer = setTimeout(() => sock.destroy(), HELLO_TIMEOUT_MS);
    sock.on('error', (e) => this.log.debug({ err: e.message }, 'monitor connection error'));
    // `start` probes for a live daemon by connecting and closing without a word: not an error.
    sock.once('close', () => clearTimeout(timer));
    const onData = (chunk: Buffer): void => {
      let frames: string[][];
      try {
        // Only the hello: what follows is the protocol the connection switches to (raw ttrpc for a proxy).
        frames = reader.push(chunk, 1);
      } catch (e) {
        this.log.warn({ err: (e as Error).message }, 'bad hello from a monitor');
        sock.destroy();
        return;
      }
      if (frames.length === 0) return;
      clearTimeout(timer);
      sock.off('data', onData);
      try {
        this.route(sock, frames[0]!, reader.rest());
      } catch (e) {
        this.log.warn({ err: (e as Error).message }, 'refusing a monitor connection');
        sock.destroy();
      }
    };
    sock.on('data', onData);
  }

  private route(sock: net.Socket, hello: string[], rest: Buffer): void {
    if (hello[0] === 'control') {
      const h = parseHello(hello);
      const g = this.group(h.monitorId, h);
      g.acks.connected(h.pid);
      g.link.attach(sock, rest, h);
      sock.on('close', () => this.onMonitorLost(h.monitorId, g));
      this.log.debug({ monitor: h.monitorId.slice(0, 12), pid: h.pid, id: h.containerId }, 'monitor attached');
      return;
    }
    if (hello[0] === 'proxy' && hello[1]) {
      this.group(hello[1]).server.serveConnection(sock, rest);
      return;
    }
    throw new Error(`unknown hello ${JSON.stringify(hello[0])}`);
  }

  async listen(): Promise<void> {
    const sockPath = path.join(this.dir, 'daemon.sock');
    const server = net.createServer((s) => this.onConnection(s));
    try {
      await listenUnix(server, sockPath, 0o600);
    } catch (e) {
      // Another daemon won the race: leave quietly.
      if (e instanceof SocketInUse) throw new AlreadyRunning();
      throw e;
    }
    fs.writeFileSync(path.join(this.dir, 'daemon.pid'), String(process.pid));
    this.server = server;
    this.touch();
    this.log.info({ socket: sockPath }, 'tsrt daemon listening');
  }

  stop(why: string): void {
    this.log.info({ why }, 'tsrt daemon stopping');
    this.stopping = true;
    this.metrics?.close();
    const sockPath = path.join(this.dir, 'daemon.sock');
    try {
      // Only remove the socket if it is still ours.
      if (fs.readFileSync(path.join(this.dir, 'daemon.pid'), 'utf8') === String(process.pid)) {
        fs.rmSync(sockPath, { force: true });
        fs.rmSync(path.join(this.dir, 'daemon.pid'), { force: true });
      }
    } catch { /* already gone */ }
    this.server?.close();
    void this.events.flush(2000).finally(() => {
      // Of the daemon's directory only what the next daemon needs stays: records of containers still
      // running, events still kept for containerd; daemon.log too, the operator's. (An empty state/ was
      // left behind by every daemon that exited idle.)
      for (const sub of ['state', 'events']) {
        try {
          fs.rmdirSync(path.join(this.dir, sub));
        } catch { /* not there, or not empty */ }
      }
      process.exit(0);
    });
  }
}

class AlreadyRunning extends Error {}

function monitorProbe(monitorId: string, g: Group): MonitorProbe {
  return {
    key: `${monitorId}:${g.link.hello.pid}`,
    pid: g.link.hello.pid,
    connected: g.link.connected,
    ioStats: () => g.link.ioStats(),
  };
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function main(): Promise<void> {
  const dir = process.env.TSRT_DAEMON_DIR;
  const ttrpcAddress = process.env.TTRPC_ADDRESS;
  if (!dir || !ttrpcAddress) {
    process.stderr.write('tsrt daemon: TSRT_DAEMON_DIR and TTRPC_ADDRESS must be set (the shim binary starts the daemon)\n');
    process.exit(2);
  }
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const log = daemonLogger(dir);
  process.on('uncaughtException', (e) => log.error({ err: e.stack ?? String(e) }, 'uncaught exception'));
  process.on('unhandledRejection', (e) => log.error({ err: (e as Error)?.stack ?? String(e) }, 'unhandled rejection'));
  const events = new EventPublisher(ttrpcAddress, log, path.join(dir, 'events'));
  const daemon = new Daemon(dir, log, events);
  try {
    await daemon.listen();
  } catch (e) {
    if (e instanceof AlreadyRunning) process.exit(0);
    throw e;
  }
  process.on('SIGTERM', () => daemon.stop('SIGTERM'));
  process.on('SIGINT', () => daemon.stop('SIGINT'));
  process.on('SIGPIPE', () => { /* ignored, like runc-v2 */ });
  // An operator's question, answered whatever the log level (a listener also keeps Node's inspector,
  // which SIGUSR1 would otherwise start, closed)
  const report = log.child({}, { level: 'info' });
  process.on('SIGUSR1', () => report.info({ report: diagnosticReport(daemon.summary()) }, 'diagnostic report (SIGUSR1)'));
}

void main();
