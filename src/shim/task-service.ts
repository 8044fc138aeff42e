// The containerd Task service (containerd.task.v2.Task; v3, the same messages, goes to the same handlers)
// for the containers of one monitor (one container, or one pod when containerd groups them). Handlers keep
// runc-v2's semantics: its state machine, its error codes and its event order (TaskCreate → TaskStart →
// TaskExit → TaskDelete; an exit seen while Start runs is held until TaskStart is queued).
import fs from 'node:fs/promises';
import path from 'node:path';
import protobuf from 'protobufjs/minimal.js';
import { containerd } from '../gen/proto.js';
import type { Handler, RequestContext } from '../ttrpc/server.js';
import { EXEC_ID, backendApi, type Backend, type BackendFactory, type Mount } from '../plugins/api/index.js';
import { DEFAULT_CONFIG, configFromOptions, containerConfig, daemonOptions, type DaemonOptions } from '../plugins/config.js';
import { BACKEND_ANNOTATION, loadBackend } from '../plugins/registry.js';
import { stdioFor } from '../io/stdio.js';
import {
  AlreadyExistsError, DeadlineExceededError, FailedPreconditionError, InvalidArgumentError, NotFoundError, RuntimeError, UnavailableError, UnimplementedError,
} from '../plugins/api/errors.js';
import { ShimProcess, type ProcessStatus } from './process.js';
import { parseTime, toTimestamp } from './time.js';
import type { EventPublisher } from './events.js';
import { MonitorRequestError, type Exit, type MonitorLink } from './monitor-link.js';
import type { ExitRouter } from './exit-router.js';
import { containerLogger, logLevel, type ContainerLogger, type Logger } from './log.js';
import type { RuntimeConfig } from '../plugins/config.js';
import type { ContainerRecord, ProcessRecord, StateStore } from './state-store.js';
import { faultPoint } from './fault.js';
import { joinCgroup } from '../cgroups/join.js';

/** errno of a signal to a process that has exited (the monitor's `signal` reply). */
const ESRCH = 3;
/** The monitor's answer to a handoff whose process could not be started (the exec server's error line). */
const ENOEXEC = 8;
/** How much longer than RuntimeTimeout the core waits for a backend call (at most). */
const BACKEND_GRACE_MS = 5000;

const task = containerd.task.v2;
const Status = containerd.v1.types.Status;
const NS_KEY = 'containerd-namespace-ttrpc';
const PROCESS_DETAILS_URL = 'containerd.runc.v1.ProcessDetails';

interface Container {
  id: string;
  namespace: string;
  bundle: string;
  backendName: string;
  config: RuntimeConfig;
  /**
   * No pid namespace of its own (none in the spec, or one joined by `path`): the init's death does not end
   * the container's other processes, so they are SIGKILLed before its exit is reported (runc-v2 alike).
   */
  sharedPidNs: boolean;
  /** That SIGKILL to the whole container has been sent for the init's exit (or is on its way). */
  killedAllOnExit?: boolean;
  backend: Backend;
  init: ShimProcess;
  execs: Map<string, ShimProcess>;
  /** The init's exit, held back while execs still run (see "Event order" below). */
  heldInitExit: Exit | null;
  logger: ContainerLogger;
}

export interface GroupDeps {
  link: MonitorLink;
  router: ExitRouter;
  events: EventPublisher;
  log: Logger;
  /** Where this monitor's containers are recorded, so that a restarted daemon can serve them. */
  store: StateStore;
  /** The monitor has nothing left to serve and has been told to exit. */
  onEmpty(): void;
  /**
   * Sees each Create's daemon-wide options (the daemon starts what they ask of it, e.g. a metrics
   * endpoint); `log` is the container's, for a warning about an option the daemon cannot take.
   */
  onConfig?(options: DaemonOptions, log: Logger): void;
  /** Backend factories by name (the registry's, unless a test brings its own). */
  loadBackend?: (name: string, pluginDir: string) => Promise<BackendFactory>;
  /** Moves a process into a cgroup (ShimCgroup); the default writes to the host's cgroup.procs files. */
  joinCgroup?: (pid: number, cgroupPath: string) => void;
  /**
   * The records were written, or a call that can bind a pid ended: exits the monitor reported may be
   * settled now (`exitSettled`), and acknowledged.
   */
  onRecorded?(): void;
}

const empty = (): Uint8Array => new Uint8Array(0);

const processRecord = (p: ShimProcess): ProcessRecord =>
  ({ pid: p.pid, status: p.status, exitStatus: p.exitStatus, exitedAt: p.exitedAt?.toISOString() ?? null });

function restoreProcess(p: ShimProcess, r: ProcessRecord): ShimProcess {
  p.pid = r.pid;
  p.status = r.status;
  if (r.exitedAt) p.setExited({ pid: r.pid, status: r.exitStatus, at: parseTime(r.exitedAt) });
  return p;
}

/**
 * The container has no pid namespace of its own: `linux.namespaces` has no `pid` entry (the host's), or
 * one with a `path` (another container's or the pod's, as CRI sets for shared-PID pods). runc-v2's
 * ShouldKillAllOnExit reads the bundle the same way.
 */
export function sharesPidNamespace(spec: { linux?: { namespaces?: Array<{ type?: string; path?: string }> } }): boolean {
  return !(spec.linux?.namespaces ?? []).some((n) => n.type === 'pid' && !n.path);
}

function parseJsonObject(what: string, value: Uint8Array | null | undefined): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(value ?? []).toString('utf8'));
  } catch (e) {
    throw new InvalidArgumentError(`${what} is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new InvalidArgumentError(`${what} must be a JSON object`);
  return v as Record<string, unknown>;
}

/**
 * runc-v2's wording for a request its init state machine refuses (pkg/process/init_state.go); the code is
 * Unknown there, except where noted at the call site.
 */
function wrongState(op: 'pause' | 'resume' | 'update', status: ProcessStatus): string {
  const s = status === 'pausing' ? 'paused' : status;
  if (s === 'created') return `cannot ${op} task in created state`;
  if (s === 'running' || s === 'deleted') return `cannot ${op} a ${s} process`;
  return `cannot ${op} a ${s} container`;
}

// Event order, as containerd's runtime v2 contract and runc-v2 1.6.29+ have it:
//   1. TaskCreate → TaskStart → TaskExit → TaskDelete for the init; TaskExecAdded → TaskExecStarted →
//      TaskExit for an exec. TaskCreate is queued before Create replies, TaskStart/TaskExecStarted before
//      Start replies.
//   2. An exit seen while Start runs (the process died at once) is held in `pendingExit` and applied
//      right after TaskStart/TaskExecStarted is queued, so it is never lost and never comes first.
//   3. An init that shares a pid namespace (sharesPidNamespace) has the rest of its container SIGKILLed
//      (`kill --all`) before anything else is done with its exit. Every exec's TaskExit comes before its
//      init's TaskExit: an init that exits while execs still run waits in `heldInitExit` until the last
//      of them has exited.
//   4. A process's waiters are released in the same step that queues its TaskExit (ShimProcess).
// One EventPublisher queue with one sender keeps that order on the wire.
export class TaskService {
  private containers = new Map<string, Container>();
  /** The group's backend instances by name, with how many of its containers each serves. */
  private backends = new Map<string, { backend: Backend; users: number }>();
  /** What each OOM watch the monitor keeps (by key) reports to: the backend that asked for it. */
  private oomHandlers = new Map<string, () => void>();
  /** Containers an earlier daemon recorded are back in the table before any request is served. */
  private readonly restored: Promise<void>;
  /**
   * The ShimCgroup the monitor was moved into, '' for none; null until its first Create. runc-v2 reads
   * ShimCgroup only in the `start` that spawns the shim, so the first container of a pod decides.
   */
  private shimCgroup: string | null = null;

  /**
   * Calls in flight that can give a process the core records a pid it does not know yet: Creates, Starts
   * and the restore of an earlier daemon's records. While there are any, an exit of an unknown pid may
   * still turn out to be one of the core's.
   */
  private binding = 0;

  constructor(private readonly deps: GroupDeps) {
    this.binding++;
    this.restored = this.restore()
      .catch((e) => deps.log.error({ err: (e as Error).message }, 'restoring state failed'))
      .finally(() => this.bound());
  }

  private bound(): void {
    this.binding--;
    this.deps.onRecorded?.();
  }

  /**
   * Whether an exit of `pid` the monitor reported needs nothing more of this daemon, so that the monitor
   * may forget it: the process of the core with that pid has its exit recorded (or held, recorded, for
   * its execs), or no process the core records has that pid and no call in flight can still give one
   * that pid (the exit was a runtime command's, a logger's, an orphan's).
   */
  exitSettled(pid: number): boolean {
    for (const c of this.containers.values()) {
      if (c.init.pid === pid) return c.init.hasExited || c.init.status === 'deleted' || c.heldInitExit?.pid === pid;
      for (const e of c.execs.values()) {
        if (e.pid === pid) return e.hasExited || e.status === 'stopped';
      }
    }
    return this.binding === 0;
  }

  private record(c: Container): ContainerRecord {
    return {
      id: c.id, namespace: c.namespace, bundle: c.bundle, backend: c.backendName, config: c.config,
      sharedPidNs: c.sharedPidNs, stdio: c.init.stdio, init: processRecord(c.init),
      heldInitExit: c.heldInitExit && { status: c.heldInitExit.status, at: c.heldInitExit.at.toISOString() },
      execs: [...c.execs.values()].map((e) => ({ ...processRecord(e), execId: e.execId, stdio: e.stdio, spec: e.spec })),
      backendState: c.backend.stateOf?.(c.id),
    };
  }

  /**
   * A backend call, bounded: past the container's RuntimeTimeout and a grace (5 s, or RuntimeTimeout again
   * where that is shorter, so that a backend's own deadline, whose message says more, comes first) the
   * request fails with DeadlineExceeded. The call is not awaited any further; what it still does is the
   * backend's.
   */
  private bounded<T>(c: Container, op: string, call: Promise<T>): Promise<T> {
    const timeout = c.config.runtimeTimeoutMs ?? DEFAULT_CONFIG.runtimeTimeoutMs;
    const ms = timeout + Math.min(BACKEND_GRACE_MS, timeout);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        c.logger.log.error({ op, backend: c.backendName, ms }, 'backend call did not return in time');
        reject(new DeadlineExceededError(`backend ${c.backendName}: ${op} did not return within ${ms / 1000} s`));
      }, ms);
    });
    return Promise.race([call, late]).finally(() => clearTimeout(timer));
  }

  private persist(c: Container): void {
    try {
      this.deps.store.save(this.record(c));
    } catch (e) {
      c.logger.log.warn({ err: (e as Error).message }, 'cannot record container state');
    }
    this.deps.onRecorded?.();
  }

  /**
   * The group's instance of a backend, made when its first container asks for it. Its containers count
   * its users; the last one's Delete closes it (deleteBackendUser).
   */
  private async backendFor(name: string, pluginDir: string): Promise<Backend> {
    let entry = this.backends.get(name);
    if (!entry) {
      try {
        const factory = await this.load(name, pluginDir);
        // another Create may have made it meanwhile
        entry = this.backends.get(name) ?? { backend: this.newBackend(factory), users: 0 };
      } catch (e) {
        this.deps.log.error({ backend: name, err: (e as Error).message }, 'backend refused');
        throw e;
      }
      this.backends.set(name, entry);
    }
    entry.users++;
    return entry.backend;
  }

  private deleteBackendUser(name: string): void {
    const entry = this.backends.get(name);
    if (!entry || --entry.users > 0) return;
    this.backends.delete(name);
    entry.backend.close?.().catch((e) => this.deps.log.warn({ backend: name, err: (e as Error).message }, 'closing the backend failed'));
  }

  private newBackend(factory: BackendFactory): Backend {
    const { link, router } = this.deps;
    return factory({
      api: backendApi,
      group: { id: link.hello.containerId, namespace: link.hello.namespace },
      log: this.deps.log,
      host: {
        // a pid the monitor hands out again drops an old exit recorded for it, before the new process's own
        spawn: (s) => link.spawn(s, (pid) => router.forget(pid)),
        handOff: async (key, h) => {
          const since = new Date(Date.now() - 1);
          try {
            return await link.handOff(key, h, (pid) => router.forgetBefore(pid, since));
          } catch (e) {
            if (e instanceof MonitorRequestError && e.errno !== ENOEXEC) throw new UnavailableError(e.message);
            throw e;
          }
        },
        release: (key) => link.release(key),
        waitExit: (pid) => router.wait(pid),
        signal: async (pid, signal) => {
          try {
            await link.signal(pid, signal);
          } catch (e) {
            if (e instanceof MonitorRequestError && e.errno === ESRCH) throw new NotFoundError('process already finished');
            throw e;
          }
        },
        console: (key, stdin, stdout) => link.console(key, stdin, stdout),
        consoleWait: (key, ms) => link.consoleWait(key, ms),
        resize: (key, w, h) => link.resize(key, w, h),
        closeIo: (key) => link.closeIo(key),
        logger: async (key, cid, ns, argv) => { await link.logger(key, cid, ns, argv); },
        mount: (type, source, target, options) => link.mount(type, source, target, options),
        umount: (target) => link.umount(target),
        copy: (key, direction, endpoint, target) => link.copy(key, direction, endpoint, target),
        // keyed by the container id, which is also the init's io key: the container's Delete releases
        // the monitor's watch with its stdio, and drops the handler
        oomWatch: async (containerId, version, dir, onOom) => {
          this.oomHandlers.set(containerId, onOom);
          await link.oomWatch(containerId, version, dir);
        },
      },
      exited: (cid, execId, exit) => this.onExit(cid, execId, exit),
      oom: (cid) => this.onOom(cid),
      stateChanged: (cid) => { const c = this.containers.get(cid); if (c) this.persist(c); },
    });
  }

  private async restore(): Promise<void> {
    const records = this.deps.store.load((file, err) => this.deps.log.warn({ file, err: err.message }, 'skipping unreadable state'));
    for (const r of records) {
      // records written before a key existed lack it
      r.config = { ...DEFAULT_CONFIG, ...r.config };
      // the monitor had its first Create under the earlier daemon; where it sits was decided then
      this.shimCgroup ??= r.config.shimCgroup;
      const logger = containerLogger(r.bundle, r.id, r.namespace);
      let backend: Backend;
      try {
        backend = await this.backendFor(r.backend, r.config.pluginDir);
      } catch (e) {
        // one container whose backend is gone (a plugin removed or broken) does not cost the others theirs
        logger.log.error({ backend: r.backend, err: (e as Error).message }, 'cannot restore the container: its backend is refused');
        logger.close();
        continue;
      }
      const init = restoreProcess(new ShimProcess(r.id, '', r.id, r.stdio), r.init);
      const execs = new Map<string, ShimProcess>();
      for (const e of r.execs ?? []) {
        const p = restoreProcess(new ShimProcess(e.execId, e.execId, execIoKey(r.id, e.execId), e.stdio), e);
        p.spec = e.spec;
        execs.set(e.execId, p);
      }
      const c: Container = {
        id: r.id, namespace: r.namespace, bundle: r.bundle, backendName: r.backend, config: r.config,
        sharedPidNs: r.sharedPidNs ?? false, backend, init, execs, logger,
        // The monitor reported that exit to the earlier daemon once; it is not reported again.
        heldInitExit: r.heldInitExit ? { pid: init.pid, status: r.heldInitExit.status, at: parseTime(r.heldInitExit.at) } : null,
      };
      this.containers.set(r.id, c);
      // what its options asked of the daemon (a metrics endpoint) is asked of the new daemon too
      this.deps.onConfig?.(daemonOptions(r.config), logger.log);
      backend.adopt({
        id: r.id, bundle: r.bundle, namespace: r.namespace, config: containerConfig(r.config),
        options: r.config.backendOptions[r.backend] ?? {}, log: logger.log, ioKey: init.ioKey, pid: init.pid,
        running: !init.hasExited && !c.heldInitExit && init.status !== 'deleted',
        runningExecs: [...execs.values()].filter((e) => e.pid > 0 && !e.hasExited && e.status !== 'stopped').map((e) => ({ execId: e.execId, pid: e.pid })),
        state: r.backendState,
      });
      logger.log.info({ pid: init.pid, status: init.status, execs: execs.size }, 'container state restored by a new daemon');
      this.releaseHeldInitExit(c);
    }
  }

  get size(): number { return this.containers.size; }
  /** The ids of the containers served. */
  get ids(): string[] { return [...this.containers.keys()]; }

  private load(name: string, pluginDir: string): Promise<BackendFactory> {
    return (this.deps.loadBackend ?? loadBackend)(name, pluginDir);
  }

  /**
   * The request's containerd namespace; it names directories (the runtime's root, the state records), so
   * it must be one containerd itself would accept (the identifier rule, as for container ids).
   */
  private namespaceOf(ctx: RequestContext): string {
    const ns = ctx.metadata.get(NS_KEY)?.[0] ?? this.deps.link.hello.namespace;
    if (!CONTAINER_ID.test(ns)) throw new InvalidArgumentError(`invalid namespace ${JSON.stringify(ns)}`);
    return ns;
  }

  private get(id: string): Container {
    const c = this.containers.get(id);
    if (!c) throw new NotFoundError(`container ${id}: container not created`);
    return c;
  }

  private process(c: Container, execId: string): ShimProcess {
    if (!execId) return c.init;
    const p = c.execs.get(execId);
    if (!p) throw new NotFoundError(`process does not exist ${execId}`);
    return p;
  }

  /**
   * ShimCgroup: runc-v2 moves the shim (the process containerd talks to) into it before any container
   * exists; tsrt moves the monitor at its first Create, before the runtime is spawned from it, so `runc
   * create` and the loggers start there as they do under runc-v2. Later Creates on the same monitor (the
   * other containers of a pod) do not move it, as runc-v2 reuses its shim without reading the option.
   */
  private placeMonitor(config: RuntimeConfig, log: Logger): void {
    if (this.shimCgroup !== null) {
      if (config.shimCgroup && config.shimCgroup !== this.shimCgroup) {
        log.warn({ shimCgroup: config.shimCgroup, placed: this.shimCgroup || null },
          'ShimCgroup ignored: this shim was placed by the first container it serves');
      }
      return;
    }
    if (config.shimCgroup) {
      (this.deps.joinCgroup ?? joinCgroup)(this.deps.link.hello.pid, config.shimCgroup);
      log.info({ shimCgroup: config.shimCgroup, pid: this.deps.link.hello.pid }, 'shim moved into ShimCgroup');
    }
    this.shimCgroup = config.shimCgroup;
  }

  // ---- exits ---------------------------------------------------------------------------------------------

  private onExit(containerId: string, execId: string, exit: Exit): void {
    const c = this.containers.get(containerId);
    if (!c) return;
    const p = execId ? c.execs.get(execId) : c.init;
    if (!p) return;
    if (p.starting) {
      p.pendingExit = exit;
      return;
    }
    this.exitObserved(c, p, exit);
  }

  private liveExecs(c: Container): number {
    let n = 0;
    for (const e of c.execs.values()) if (e.isLive) n++;
    return n;
  }

  private exitObserved(c: Container, p: ShimProcess, exit: Exit): void {
    if (p.hasExited || p.status === 'deleted') return;
    faultPoint('exit-unrecorded');
    if (p === c.init && c.sharedPidNs && !c.killedAllOnExit) {
      // The processes left behind (execs, and whatever the init started) would otherwise hold the
      // container's stdio open and outlive it; containerd 2.x waits for that stdio to close.
      c.killedAllOnExit = true;
      c.logger.log.info({ pid: exit.pid, status: exit.status }, 'init exited in a shared pid namespace; killing the rest of the container');
      c.backend.signal(c.id, '', 9, true).catch(async (e) => {
        c.logger.log.warn({ err: (e as Error).message }, 'killing the container failed; killing its execs one by one');
        for (const x of c.execs.values()) if (x.isLive && x.pid > 0) await c.backend.signal(c.id, x.execId, 9, false).catch(() => undefined);
      }).finally(() => this.exitObserved(c, p, exit));
      return;
    }
    if (p === c.init && this.liveExecs(c) > 0) {
      c.heldInitExit = exit;
      c.logger.log.info({ pid: exit.pid, status: exit.status }, 'init exited; waiting for its execs to exit first');
      this.persist(c);
      return;
    }
    const wasPaused = p.status === 'paused' || p.status === 'pausing';
    c.logger.log.info({ pid: exit.pid, status: exit.status, execId: p.execId || undefined }, 'process exited');
    this.deps.events.publish(c.namespace, '/tasks/exit', containerd.events.TaskExit.encode({
      containerId: c.id, id: p.id, pid: p.pid, exitStatus: exit.status, exitedAt: toTimestamp(exit.at),
    }).finish());
    p.setExited(exit);
    this.persist(c);
    if (p === c.init && wasPaused) {
      // runc-v2 thaws a container whose init died while it was frozen.
      c.backend.resume(c.id).catch(() => undefined);
    }
    this.releaseHeldInitExit(c);
  }

  private releaseHeldInitExit(c: Container): void {
    const held = c.heldInitExit;
    if (!held || this.liveExecs(c) > 0) return;
    c.heldInitExit = null;
    this.exitObserved(c, c.init, held);
  }

  // ---- RPCs ----------------------------------------------------------------------------------------------

  private async create(req: containerd.task.v2.CreateTaskRequest, ctx: RequestContext): Promise<Uint8Array> {
    this.binding++;
    try {
      return await this.createContainer(req, ctx);
    } finally {
      this.bound();
    }
  }

  private async createContainer(req: containerd.task.v2.CreateTaskRequest, ctx: RequestContext): Promise<Uint8Array> {
    const id = req.id;
    // the id and the bundle name files and directories: checked before any path is made of them
    if (!CONTAINER_ID.test(id)) throw new InvalidArgumentError(`invalid container id ${JSON.stringify(id)}`);
    if (!path.isAbsolute(req.bundle) || req.bundle.includes('\0')) throw new InvalidArgumentError(`bundle ${JSON.stringify(req.bundle)} is not an absolute path`);
    if (this.containers.has(id)) throw new RuntimeError(`container ${id}: already exists`);
    if (req.checkpoint) throw new UnimplementedError('restoring from a checkpoint is not supported by tsrt: it has no CRIU support yet');
    const namespace = this.namespaceOf(ctx);
    const ignored: Array<[string, Record<string, unknown>]> = [];
    const config = configFromOptions(req.options, (msg, fields) => { ignored.push([msg, fields]); });
    const spec = await readBundleSpec(req.bundle);
    const backendName = spec.annotations?.[BACKEND_ANNOTATION] ?? config.backend;
    const processStdio = { stdin: req.stdin, stdout: req.stdout, stderr: req.stderr, terminal: req.terminal };
    stdioFor(processStdio); // a bad stdio request fails before anything is set up
    // from here on, every failure gives the group's backend instance its user back (deleteBackendUser)
    const backend = await this.backendFor(backendName, config.pluginDir);
    const logger = containerLogger(req.bundle, id, namespace);
    for (const [msg, fields] of ignored) logger.log.warn(fields, msg);
    this.deps.onConfig?.(daemonOptions(config), logger.log);
    try {
      this.placeMonitor(config, logger.log);
    } catch (e) {
      logger.log.error({ err: (e as Error).message }, 'create failed');
      logger.close();
      this.deleteBackendUser(backendName);
      throw new RuntimeError((e as Error).message);
    }
    const c: Container = {
      id, namespace, bundle: req.bundle, backendName, config, backend, logger,
      sharedPidNs: sharesPidNamespace(spec), init: new ShimProcess(id, '', id, processStdio), execs: new Map(), heldInitExit: null,
    };
    const rootfs: Mount[] = req.rootfs.map((m) => ({ type: m.type ?? '', source: m.source ?? '', options: m.options ?? [] }));
    try {
      // Registered before the runtime runs so that an init dying at once is matched to this container.
      this.containers.set(id, c);
      const containerType = spec.annotations?.['io.kubernetes.cri.container-type'] ?? '';
      const { pid } = await this.bounded(c, 'create', backend.create({
        id, bundle: req.bundle, namespace, rootfs, config: containerConfig(config), options: config.backendOptions[backendName] ?? {},
        log: logger.log, stdio: processStdio, ioKey: c.init.ioKey, containerType,
      }));
      c.init.pid = pid;
    } catch (e) {
      this.containers.delete(id);
      this.oomHandlers.delete(id);
      // the backend takes down what it made: the runtime's container, the rootfs mounts
      await backend.delete(id, true).catch(() => undefined);
      await this.deps.link.release(c.init.ioKey).catch(() => undefined);
      this.deleteBackendUser(backendName);
      logger.log.error({ err: (e as Error).message }, 'create failed');
      logger.close();
      throw e;
    }
    this.persist(c);
    logger.log.info({ pid: c.init.pid, backend: backend.name }, 'container created');
    this.deps.events.publish(namespace, '/tasks/create', containerd.events.TaskCreate.encode({
      containerId: id, bundle: req.bundle, rootfs: req.rootfs,
      io: { stdin: req.stdin, stdout: req.stdout, stderr: req.stderr, terminal: req.terminal },
      checkpoint: req.checkpoint, pid: c.init.pid,
    }).finish());
    return task.CreateTaskResponse.encode({ pid: c.init.pid }).finish();
  }

  /** The monitor saw an OOM kill in the cgroup watched under key: to the backend whose watch it is. */
  oomKilled(key: string): void {
    this.oomHandlers.get(key)?.();
  }

  /** A backend reports an OOM kill in a container (before the exits it caused): TaskOOM. */
  private onOom(containerId: string): void {
    const c = this.containers.get(containerId);
    if (!c) return;
    c.logger.log.warn('OOM kill in the container');
    this.deps.events.publish(c.namespace, '/tasks/oom', containerd.events.TaskOOM.encode({ containerId: c.id }).finish());
  }

  private async start(req: containerd.task.v2.StartRequest): Promise<Uint8Array> {
    this.binding++;
    try {
      return await this.startProcess(req);
    } finally {
      this.bound();
    }
  }

  private async startProcess(req: containerd.task.v2.StartRequest): Promise<Uint8Array> {
    const c = this.get(req.id);
    const p = this.process(c, req.execId);
    if (p.status !== 'created' || p.starting) throw new RuntimeError(`cannot start a ${p.starting ? 'running' : p.status} process`);
    if (p.execId && (c.init.hasExited || c.heldInitExit || c.init.status === 'deleted')) {
      throw new FailedPreconditionError(`container ${c.id} init process is not running`);
    }
    p.starting = true;
    try {
      if (p.execId) {
        const { pid } = await this.bounded(c, 'exec', c.backend.exec({ id: c.id, execId: p.execId, spec: p.spec ?? {}, stdio: p.stdio, ioKey: p.ioKey }));
        p.pid = pid;
        p.spec = null;
        p.status = 'running';
        // A short-lived exec (a probe's) has often exited by now: its exit, observed in `finally` below in
        // this same tick, writes the record anyway, so it is written once, not twice in a row.
        if (!p.pendingExit) this.persist(c);
        this.deps.events.publish(c.namespace, '/tasks/exec-started', containerd.events.TaskExecStarted.encode({
          containerId: c.id, execId: p.execId, pid,
        }).finish());
      } else {
        await this.bounded(c, 'start', c.backend.start(c.id));
        p.status = 'running';
        this.persist(c);
        this.deps.events.publish(c.namespace, '/tasks/start', containerd.events.TaskStart.encode({ containerId: c.id, pid: p.pid }).finish());
      }
    } catch (e) {
      if (p.execId) {
        // runc-v2: a failed exec releases its waiters at once and can only be deleted.
        p.status = 'stopped';
        p.releaseWaiters();
      }
      throw e;
    } finally {
      p.starting = false;
      const early = p.pendingExit;
      p.pendingExit = null;
      if (early) this.exitObserved(c, p, early);
      this.releaseHeldInitExit(c);
    }
    return task.StartResponse.encode({ pid: p.pid }).finish();
  }

  private async exec(req: containerd.task.v2.ExecProcessRequest): Promise<Uint8Array> {
    const c = this.get(req.id);
    if (!EXEC_ID.test(req.execId)) throw new InvalidArgumentError(`invalid exec id ${JSON.stringify(req.execId)}`);
    if (c.execs.has(req.execId)) throw new AlreadyExistsError(`id ${req.execId}`);
    const init = c.init;
    if (init.status === 'paused' || init.status === 'pausing') throw new RuntimeError('cannot exec in a paused state');
    if (init.hasExited || c.heldInitExit || init.status === 'stopped' || init.status === 'deleted') {
      // runc-v2 1.6.20 words it the same but sends Unknown; the issue asks for FailedPrecondition, which is
      // also what later runc-v2 releases return for an exec whose init is gone.
      throw new FailedPreconditionError('cannot exec in a stopped state');
    }
    const spec = parseJsonObject('exec spec', req.spec?.value);
    const stdio = { stdin: req.stdin, stdout: req.stdout, stderr: req.stderr, terminal: req.terminal };
    stdioFor(stdio);
    const p = new ShimProcess(req.execId, req.execId, execIoKey(c.id, req.execId), stdio);
    p.spec = { ...spec, terminal: req.terminal };
    c.execs.set(req.execId, p);
    this.persist(c);
    this.deps.events.publish(c.namespace, '/tasks/exec-added', containerd.events.TaskExecAdded.encode({
      containerId: c.id, execId: req.execId,
    }).finish());
    return empty();
  }

  private statusOf(c: Container, p: ShimProcess): containerd.v1.types.Status {
    // An exec reports its container's pause state while it runs (runc-v2 alike).
    const s = p.execId && p.status === 'running' && (c.init.status === 'paused' || c.init.status === 'pausing') ? c.init.status : p.status;
    switch (s) {
      case 'created': return Status.CREATED;
      case 'running': return Status.RUNNING;
      case 'pausing': return Status.PAUSING;
      case 'paused': return Status.PAUSED;
      default: return Status.STOPPED;
    }
  }

  private async state(req: containerd.task.v2.StateRequest): Promise<Uint8Array> {
    const c = this.get(req.id);
    const p = this.process(c, req.execId);
    return task.StateResponse.encode({
      id: p.id, bundle: c.bundle, pid: p.pid, status: this.statusOf(c, p),
      stdin: p.stdio.stdin, stdout: p.stdio.stdout, stderr: p.stdio.stderr, terminal: p.stdio.terminal,
      exitStatus: p.exitStatus, exitedAt: toTimestamp(p.exitedAt),
    }).finish();
  }

  private async wait(req: containerd.task.v2.WaitRequest, ctx: RequestContext): Promise<Uint8Array> {
    const c = this.get(req.id);
    const p = this.process(c, req.execId);
    await new Promise<void>((resolve, reject) => {
      const onAbort = (): void => reject(new RuntimeError('wait cancelled'));
      ctx.signal.addEventListener('abort', onAbort, { once: true });
      p.exited.then(() => { ctx.signal.removeEventListener('abort', onAbort); resolve(); }, reject);
    });
    return task.WaitResponse.encode({ exitStatus: p.exitStatus, exitedAt: toTimestamp(p.exitedAt) }).finish();
  }

  private async kill(req: containerd.task.v2.KillRequest): Promise<Uint8Array> {
    const c = this.get(req.id);
    const p = this.process(c, req.execId);
    if (p.status === 'deleted' || p.hasExited) throw new NotFoundError('process already finished');
    if (p.execId) {
      if (p.pid === 0) throw new FailedPreconditionError('process not created');
      if (p.status === 'stopped') throw new NotFoundError('process already finished');
    }
    await this.bounded(c, 'kill', c.backend.signal(c.id, p.execId, req.signal, req.all));
    return empty();
  }

  private async delete(req: containerd.task.v2.DeleteRequest): Promise<Uint8Array> {
    const c = this.get(req.id);
    const p = this.process(c, req.execId);
    if (p.status === 'deleted') throw new NotFoundError(`process ${p.id} has been deleted`);
    if (p.status !== 'created' && p.status !== 'stopped') throw new RuntimeError(`cannot delete a ${p.status} process`);
    if (p.execId) return this.deleteExec(c, p);
    if (p.status === 'created') {
      await this.bounded(c, 'delete', c.backend.delete(c.id, true));
      // The blocked init dies with the container; record its exit if the monitor reaps it promptly.
      await Promise.race([p.exited, new Promise((r) => setTimeout(r, 2000))]);
    } else {
      await this.bounded(c, 'delete', c.backend.delete(c.id, false));
    }
    p.status = 'deleted';
    const { link } = this.deps;
    for (const e of c.execs.values()) await link.release(e.ioKey).catch(() => undefined);
    await link.release(p.ioKey).catch(() => undefined);
    this.containers.delete(c.id);
    this.oomHandlers.delete(c.id);
    this.deleteBackendUser(c.backendName);
    this.deps.store.remove(c.namespace, c.id);
    this.deps.onRecorded?.();
    const exitedAt = toTimestamp(p.exitedAt);
    this.deps.events.publish(c.namespace, '/tasks/delete', containerd.events.TaskDelete.encode({
      containerId: c.id, pid: p.pid, exitStatus: p.exitStatus, exitedAt,
    }).finish());
    c.logger.log.info({ pid: p.pid, status: p.exitStatus }, 'container deleted');
    c.logger.close();
    return task.DeleteResponse.encode({ pid: p.pid, exitStatus: p.exitStatus, exitedAt }).finish();
  }

  /** An exec's Delete: close its stdio, drop its files, forget it. runc-v2 publishes no event for it. */
  private async deleteExec(c: Container, p: ShimProcess): Promise<Uint8Array> {
    p.status = 'deleted';
    c.execs.delete(p.execId);
    // the monitor closes the stdio while the backend drops its files
    await Promise.all([
      this.deps.link.release(p.ioKey).catch(() => undefined),
      c.backend.deleteExec(c.id, p.execId).catch(() => undefined),
    ]);
    this.persist(c);
    return task.DeleteResponse.encode({ pid: p.pid, exitStatus: p.exitStatus, exitedAt: toTimestamp(p.exitedAt) }).finish();
  }

  private async pids(req: containerd.task.v2.PidsRequest): Promise<Uint8Array> {
    const c = this.get(req.id);
    if (c.init.hasExited || c.init.status === 'deleted') throw new RuntimeError(`container ${c.id} is not running`);
    const pids = await this.bounded(c, 'pids', c.backend.pids(c.id));
    const execByPid = new Map<number, string>();
    for (const e of c.execs.values()) if (e.pid > 0) execByPid.set(e.pid, e.execId);
    return task.PidsResponse.encode({
      processes: pids.map((pid) => {
        const execId = execByPid.get(pid);
        if (execId === undefined) return { pid };
        return { pid, info: { typeUrl: PROCESS_DETAILS_URL, value: containerd.runc.v1.ProcessDetails.encode({ execId }).finish() } };
      }),
    }).finish();
  }

  private async pause(req: containerd.task.v2.PauseRequest): Promise<Uint8Array> {
    const c = this.get(req.id);
    const p = c.init;
    if (p.status !== 'running' || c.heldInitExit) throw new RuntimeError(wrongState('pause', c.heldInitExit ? 'stopped' : p.status));
    p.status = 'pausing';
    try {
      await this.bounded(c, 'pause', c.backend.pause(c.id));
    } catch (e) {
      if (p.status === 'pausing') p.status = 'running';
      throw e;
    }
    if (p.status !== 'pausing') throw new RuntimeError(`container ${c.id} exited while it was being paused`);
    p.status = 'paused';
    this.persist(c);
    this.deps.events.publish(c.namespace, '/tasks/paused', containerd.events.TaskPaused.encode({ containerId: c.id }).finish());
    return empty();
  }

  private async resume(req: containerd.task.v2.ResumeRequest): Promise<Uint8Array> {
    const c = this.get(req.id);
    const p = c.init;
    if (p.status !== 'paused') throw new RuntimeError(wrongState('resume', p.status));
    await this.bounded(c, 'resume', c.backend.resume(c.id));
    if (p.status === 'paused') p.status = 'running';
    this.persist(c);
    this.deps.events.publish(c.namespace, '/tasks/resumed', containerd.events.TaskResumed.encode({ containerId: c.id }).finish());
    return empty();
  }

  private async update(req: containerd.task.v2.UpdateTaskRequest): Promise<Uint8Array> {
    const c = this.get(req.id);
    const s = c.init.status;
    if (c.init.hasExited || s === 'stopped' || s === 'deleted') throw new RuntimeError(wrongState('update', s));
    if (!req.resources) throw new InvalidArgumentError('update needs resources');
    await this.bounded(c, 'update', c.backend.update(c.id, parseJsonObject('resources', req.resources.value)));
    return empty();
  }

  private async stats(req: containerd.task.v2.StatsRequest): Promise<Uint8Array> {
    const c = this.get(req.id);
    return task.StatsResponse.encode({ stats: await this.bounded(c, 'stats', c.backend.stats(c.id)) }).finish();
  }

  private async resizePty(req: containerd.task.v2.ResizePtyRequest): Promise<Uint8Array> {
    const c = this.get(req.id);
    const p = this.process(c, req.execId);
    if (p.status === 'deleted') throw new NotFoundError(`process ${p.id} has been deleted`);
    if (p.stdio.terminal) await this.bounded(c, 'resize', c.backend.resizePty(p.ioKey, req.width, req.height));
    return empty();
  }

  private async closeIo(req: containerd.task.v2.CloseIORequest): Promise<Uint8Array> {
    const c = this.get(req.id);
    const p = this.process(c, req.execId);
    if (req.stdin) await this.bounded(c, 'closeio', c.backend.closeIo(p.ioKey));
    return empty();
  }

  private async connect(req: containerd.task.v2.ConnectRequest): Promise<Uint8Array> {
    await this.deps.link.ready();
    const c = this.containers.get(req.id);
    return task.ConnectResponse.encode({ shimPid: this.deps.link.hello.pid, taskPid: c?.init.pid ?? 0 }).finish();
  }

  private async shutdown(): Promise<Uint8Array> {
    if (this.containers.size === 0) setTimeout(() => this.deps.onEmpty(), 10);
    return empty();
  }

  /** The ttrpc method table. */
  handlers(): Record<string, Handler> {
    const methods: Record<string, Handler> = {
      Create: (b, ctx) => this.create(task.CreateTaskRequest.decode(b), ctx),
      Start: (b) => this.start(task.StartRequest.decode(b)),
      State: (b) => this.state(task.StateRequest.decode(b)),
      Wait: (b, ctx) => this.wait(task.WaitRequest.decode(b), ctx),
      Kill: (b) => this.kill(task.KillRequest.decode(b)),
      Delete: (b) => this.delete(task.DeleteRequest.decode(b)),
      Exec: (b) => this.exec(task.ExecProcessRequest.decode(b)),
      Pids: (b) => this.pids(task.PidsRequest.decode(b)),
      Pause: (b) => this.pause(task.PauseRequest.decode(b)),
      Resume: (b) => this.resume(task.ResumeRequest.decode(b)),
      Update: (b) => this.update(task.UpdateTaskRequest.decode(b)),
      ResizePty: (b) => this.resizePty(task.ResizePtyRequest.decode(b)),
      CloseIO: (b) => this.closeIo(task.CloseIORequest.decode(b)),
      Connect: (b) => this.connect(task.ConnectRequest.decode(b)),
      Shutdown: () => this.shutdown(),
      Stats: (b) => this.stats(task.StatsRequest.decode(b)),
      Checkpoint: async () => {
        throw new UnimplementedError('checkpoint is not supported by tsrt (no CRIU integration; see README, "Checkpoint")');
      },
    };
    for (const [name, h] of Object.entries(methods)) {
      methods[name] = async (b, ctx) => {
        await this.restored;
        return logLevel() === 'debug' ? this.traced(name, b, () => h(b, ctx)) : h(b, ctx);
      };
    }
    return methods;
  }

  /**
   * LogLevel debug: every Task request is a line in its container's log (containerd's log, through the
   * bundle's `log` FIFO), with how long it took and how it failed; one without a container (the container's
   * own Delete included, which closed its log) in the daemon's.
   */
  private async traced(method: string, payload: Uint8Array, run: () => Promise<Uint8Array>): Promise<Uint8Array> {
    const ids = requestIds(payload);
    const id = ids.id;
    const execId = WITH_EXEC_ID.has(method) ? ids.execId : '';
    const logOf = (): Logger => this.containers.get(id)?.logger.log ?? this.deps.log;
    const t0 = process.hrtime.bigint();
    const ms = (): number => Number(process.hrtime.bigint() - t0) / 1e6;
    try {
      const reply = await run();
      logOf().debug({ method, execId: execId || undefined, ms: ms() }, 'task request');
      return reply;
    } catch (e) {
      const code = (e as { code?: unknown }).code;
      logOf().debug({ method, execId: execId || undefined, ms: ms(), code, err: (e as Error).message }, 'task request failed');
      throw e;
    }
  }
}

/** containerd's own rule for ids (identifiers.Validate): alphanumeric runs joined by one of `._-`, at most 76. */
export const CONTAINER_ID = /^(?=.{1,76}$)[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$/;

type BundleSpec = { annotations?: Record<string, string>; linux?: { namespaces?: Array<{ type?: string; path?: string }> } };

/** The bundle's config.json: NotFound without one, InvalidArgument when it is not a JSON object. */
async function readBundleSpec(bundle: string): Promise<BundleSpec> {
  let text: string;
  try {
    text = await fs.readFile(path.join(bundle, 'config.json'), 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new NotFoundError(`bundle ${bundle} has no config.json`);
    throw new RuntimeError(`cannot read ${path.join(bundle, 'config.json')}: ${(e as Error).message}`);
  }
  let spec: unknown;
  try {
    spec = JSON.parse(text);
  } catch (e) {
    throw new InvalidArgumentError(`${path.join(bundle, 'config.json')} is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) throw new InvalidArgumentError(`${path.join(bundle, 'config.json')} must hold a JSON object`);
  return spec as BundleSpec;
}

/** The Task requests whose field 2 is the exec id (in the others it is the bundle, a path, resources, ...). */
const WITH_EXEC_ID: ReadonlySet<string> = new Set(['Start', 'State', 'Wait', 'Kill', 'Delete', 'Exec', 'ResizePty', 'CloseIO']);

/**
 * The string fields 1 and 2 of a Task request: field 1 is the container id in every one, field 2 the exec
 * id in those of WITH_EXEC_ID; read without decoding the rest.
 */
export function requestIds(payload: Uint8Array): { id: string; execId: string } {
  const out = { id: '', execId: '' };
  try {
    const r = protobuf.Reader.create(payload);
    while (r.pos < r.len) {
      const tag = r.uint32();
      const field = tag >>> 3;
      if ((field === 1 || field === 2) && (tag & 7) === 2) {
        const v = r.string();
        if (field === 1) out.id = v;
        else out.execId = v;
      } else {
        r.skipType(tag & 7);
      }
    }
  } catch { /* a malformed request: its handler says so */ }
  return out;
}

/** Monitor io key of an exec (container ids never contain '/'). */
export function execIoKey(containerId: string, execId: string): string {
  return `${containerId}/${execId}`;
}
