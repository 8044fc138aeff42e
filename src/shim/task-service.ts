// The containerd.task.v2.Task service for the containers of one monitor (one container, or one pod when
// containerd groups them). Handlers keep runc-v2's semantics: its state machine, its error codes and its
// event order (TaskCreate → TaskStart → TaskExit → TaskDelete; an exit seen while Start runs is held until
// TaskStart is queued).
import fs from 'node:fs/promises';
import path from 'node:path';
import { containerd } from '../gen/proto.js';
import type { Handler, RequestContext } from '../ttrpc/server.js';
import type { Backend, BackendFactory } from '../plugins/backend.js';
import { configFromOptions } from '../plugins/config.js';
import { BACKEND_ANNOTATION, loadBackend } from '../plugins/registry.js';
import { stdioFor } from '../io/stdio.js';
import { NotFoundError, RuntimeError, UnimplementedError } from './errors.js';
import { ShimProcess } from './process.js';
import { toTimestamp } from './time.js';
import type { EventPublisher } from './events.js';
import type { Exit, MonitorLink } from './monitor-link.js';
import type { ExitRouter } from './exit-router.js';
import { containerLogger, type ContainerLogger, type Logger } from './log.js';
import type { RuntimeConfig } from '../plugins/config.js';
import type { ContainerRecord, StateStore } from './state-store.js';

const task = containerd.task.v2;
const Status = containerd.v1.types.Status;
const NS_KEY = 'containerd-namespace-ttrpc';

interface Container {
  id: string;
  namespace: string;
  bundle: string;
  backendName: string;
  config: RuntimeConfig;
  rootfsMounted: boolean;
  stdio: { stdin: string; stdout: string; stderr: string; terminal: boolean };
  backend: Backend;
  init: ShimProcess;
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
}

const empty = (): Uint8Array => new Uint8Array(0);

export class TaskService {
  private containers = new Map<string, Container>();
  /** Containers an earlier daemon recorded are back in the table before any request is served. */
  private readonly restored: Promise<void>;

  constructor(private readonly deps: GroupDeps) {
    this.restored = this.restore().catch((e) => deps.log.error({ err: (e as Error).message }, 'restoring state failed'));
  }

  private record(c: Container): ContainerRecord {
    const p = c.init;
    return {
      id: c.id, namespace: c.namespace, bundle: c.bundle, backend: c.backendName, config: c.config,
      rootfsMounted: c.rootfsMounted, stdio: c.stdio,
      init: { pid: p.pid, status: p.status, exitStatus: p.exitStatus, exitedAt: p.exitedAt?.toISOString() ?? null },
    };
  }

  private persist(c: Container): void {
    try {
      this.deps.store.save(this.record(c));
    } catch (e) {
      c.logger.log.warn({ err: (e as Error).message }, 'cannot record container state');
    }
  }

  private newBackend(factory: BackendFactory, namespace: string, config: RuntimeConfig, log: Logger): Backend {
    const { link, router } = this.deps;
    return factory({
      namespace, config, log,
      host: {
        spawn: async (s) => { const pid = await link.spawn(s); router.forget(pid); return pid; },
        waitExit: (pid) => router.wait(pid),
      },
      exited: (cid, execId, exit) => this.onExit(cid, execId, exit),
    });
  }

  private async restore(): Promise<void> {
    const records = this.deps.store.load((file, err) => this.deps.log.warn({ file, err: err.message }, 'skipping unreadable state'));
    for (const r of records) {
      const logger = containerLogger(r.bundle, r.id, r.namespace);
      const backend = this.newBackend(await loadBackend(r.backend), r.namespace, r.config, logger.log);
      const init = new ShimProcess(r.id);
      init.pid = r.init.pid;
      init.status = r.init.status;
      if (r.init.exitedAt) init.setExited({ pid: r.init.pid, status: r.init.exitStatus, at: new Date(r.init.exitedAt) });
      const c: Container = {
        id: r.id, namespace: r.namespace, bundle: r.bundle, backendName: r.backend, config: r.config,
        rootfsMounted: r.rootfsMounted, stdio: r.stdio, backend, init, logger,
      };
      this.containers.set(r.id, c);
      backend.adopt({ id: r.id, bundle: r.bundle, pid: r.init.pid, running: !init.hasExited });
      logger.log.info({ pid: init.pid, status: init.status }, 'container state restored by a new daemon');
    }
  }

  get size(): number { return this.containers.size; }

  private namespaceOf(ctx: RequestContext): string {
    return ctx.metadata.get(NS_KEY)?.[0] ?? this.deps.link.hello.namespace;
  }

  private get(id: string): Container {
    const c = this.containers.get(id);
    if (!c) throw new NotFoundError(`container ${id}: container not created`);
    return c;
  }

  private process(c: Container, execId: string): ShimProcess {
    if (execId) throw new NotFoundError(`process does not exist ${execId}`);
    return c.init;
  }

  // ---- exits ---------------------------------------------------------------------------------------------

  private onExit(containerId: string, execId: string, exit: Exit): void {
    const c = this.containers.get(containerId);
    if (!c || execId) return;
    const p = c.init;
    if (p.starting) {
      p.pendingExit = exit;
      return;
    }
    this.applyExit(c, p, exit);
  }

  private applyExit(c: Container, p: ShimProcess, exit: Exit): void {
    if (p.hasExited || p.status === 'deleted') return;
    c.logger.log.info({ pid: exit.pid, status: exit.status }, 'process exited');
    this.deps.events.publish(c.namespace, '/tasks/exit', containerd.events.TaskExit.encode({
      containerId: c.id, id: c.id, pid: p.pid, exitStatus: exit.status, exitedAt: toTimestamp(exit.at),
    }).finish());
    p.setExited(exit);
    this.persist(c);
  }

  // ---- RPCs ----------------------------------------------------------------------------------------------

  private async create(req: containerd.task.v2.CreateTaskRequest, ctx: RequestContext): Promise<Uint8Array> {
    const id = req.id;
    if (this.containers.has(id)) throw new RuntimeError(`container ${id}: already exists`);
    if (req.checkpoint) throw new UnimplementedError('restoring from a checkpoint is not supported by tsrt yet');
    const namespace = this.namespaceOf(ctx);
    const config = configFromOptions(req.options);
    const spec = JSON.parse(await fs.readFile(path.join(req.bundle, 'config.json'), 'utf8')) as { annotations?: Record<string, string> };
    const backendName = spec.annotations?.[BACKEND_ANNOTATION] ?? config.backend;
    const factory = await loadBackend(backendName);
    const stdio = stdioFor({ stdin: req.stdin, stdout: req.stdout, stderr: req.stderr, terminal: req.terminal });
    const logger = containerLogger(req.bundle, id, namespace);
    const { link } = this.deps;
    const backend = this.newBackend(factory, namespace, config, logger.log);
    const c: Container = {
      id, namespace, bundle: req.bundle, backendName, config, rootfsMounted: false, backend, logger,
      stdio: { stdin: req.stdin, stdout: req.stdout, stderr: req.stderr, terminal: req.terminal },
      init: new ShimProcess(id),
    };
    const rootfs = path.join(req.bundle, 'rootfs');
    try {
      if (req.rootfs.length > 0) {
        await fs.mkdir(rootfs, { recursive: true, mode: 0o711 });
        c.rootfsMounted = true;
        for (const m of req.rootfs) await link.mount(m.type ?? '', m.source ?? '', rootfs, m.options ?? []);
      }
      // Registered before the runtime runs so that an init dying at once is matched to this container.
      this.containers.set(id, c);
      const { pid } = await backend.create({ id, bundle: req.bundle, stdio, ioKey: id });
      c.init.pid = pid;
    } catch (e) {
      this.containers.delete(id);
      await backend.delete(id, true).catch(() => undefined);
      await link.release(id).catch(() => undefined);
      if (c.rootfsMounted) await link.umount(rootfs).catch(() => undefined);
      logger.log.error({ err: (e as Error).message }, 'create failed');
      logger.close();
      throw e;
    }
    this.persist(c);
    logger.log.info({ pid: c.init.pid, backend: backend.name, runtime: config.binaryName }, 'container created');
    this.deps.events.publish(namespace, '/tasks/create', containerd.events.TaskCreate.encode({
      containerId: id, bundle: req.bundle, rootfs: req.rootfs,
      io: { stdin: req.stdin, stdout: req.stdout, stderr: req.stderr, terminal: req.terminal },
      checkpoint: req.checkpoint, pid: c.init.pid,
    }).finish());
    return task.CreateTaskResponse.encode({ pid: c.init.pid }).finish();
  }

  private async start(req: containerd.task.v2.StartRequest): Promise<Uint8Array> {
    const c = this.get(req.id);
    const p = this.process(c, req.execId);
    if (p.status !== 'created' || p.starting) throw new RuntimeError(`cannot start a ${p.status} process`);
    p.starting = true;
    try {
      await c.backend.start(c.id);
      p.status = 'running';
      this.persist(c);
      this.deps.events.publish(c.namespace, '/tasks/start', containerd.events.TaskStart.encode({ containerId: c.id, pid: p.pid }).finish());
    } finally {
      p.starting = false;
      const early = p.pendingExit;
      p.pendingExit = null;
      if (early) this.applyExit(c, p, early);
    }
    return task.StartResponse.encode({ pid: p.pid }).finish();
  }

  private async state(req: containerd.task.v2.StateRequest): Promise<Uint8Array> {
    const c = this.get(req.id);
    const p = this.process(c, req.execId);
    const status = p.status === 'created' ? Status.CREATED : p.status === 'running' ? Status.RUNNING : Status.STOPPED;
    return task.StateResponse.encode({
      id: p.id, bundle: c.bundle, pid: p.pid, status,
      stdin: c.stdio.stdin, stdout: c.stdio.stdout, stderr: c.stdio.stderr, terminal: c.stdio.terminal,
      exitStatus: p.exitStatus, exitedAt: toTimestamp(p.exitedAt),
    }).finish();
  }

  private async wait(req: containerd.task.v2.WaitRequest, ctx: RequestContext): Promise<Uint8Array> {
    const c = this.get(req.id);
    const p = this.process(c, req.execId);
    if (!p.hasExited) {
      await new Promise<void>((resolve, reject) => {
        const onAbort = (): void => reject(new RuntimeError('wait cancelled'));
        ctx.signal.addEventListener('abort', onAbort, { once: true });
        p.exited.then(() => { ctx.signal.removeEventListener('abort', onAbort); resolve(); }, reject);
      });
    }
    return task.WaitResponse.encode({ exitStatus: p.exitStatus, exitedAt: toTimestamp(p.exitedAt) }).finish();
  }

  private async kill(req: containerd.task.v2.KillRequest): Promise<Uint8Array> {
    const c = this.get(req.id);
    const p = this.process(c, req.execId);
    if (p.status === 'deleted') throw new NotFoundError('process already finished');
    if (p.hasExited) throw new NotFoundError('process already finished');
    await c.backend.kill(c.id, req.signal, req.all);
    return empty();
  }

  private async delete(req: containerd.task.v2.DeleteRequest): Promise<Uint8Array> {
    const c = this.get(req.id);
    const p = this.process(c, req.execId);
    if (p.status === 'deleted') throw new NotFoundError(`process ${p.id} has been deleted`);
    if (p.status === 'running') throw new RuntimeError('cannot delete a running process');
    if (p.status === 'created') {
      await c.backend.delete(c.id, true);
      // The blocked init dies with the container; record its exit if the monitor reaps it promptly.
      await Promise.race([p.exited, new Promise((r) => setTimeout(r, 2000))]);
    } else {
      await c.backend.delete(c.id, false);
    }
    p.status = 'deleted';
    await this.deps.link.release(c.id).catch(() => undefined);
    if (c.rootfsMounted) await this.deps.link.umount(path.join(c.bundle, 'rootfs'));
    this.containers.delete(c.id);
    this.deps.store.remove(c.namespace, c.id);
    const exitedAt = toTimestamp(p.exitedAt);
    this.deps.events.publish(c.namespace, '/tasks/delete', containerd.events.TaskDelete.encode({
      containerId: c.id, pid: p.pid, exitStatus: p.exitStatus, exitedAt,
    }).finish());
    c.logger.log.info({ pid: p.pid, status: p.exitStatus }, 'container deleted');
    c.logger.close();
    return task.DeleteResponse.encode({ pid: p.pid, exitStatus: p.exitStatus, exitedAt }).finish();
  }

  private async pids(req: containerd.task.v2.PidsRequest): Promise<Uint8Array> {
    const c = this.get(req.id);
    if (c.init.hasExited || c.init.status === 'deleted') throw new RuntimeError(`container ${c.id} is not running`);
    const pids = await c.backend.pids(c.id);
    return task.PidsResponse.encode({ processes: pids.map((pid) => ({ pid })) }).finish();
  }

  private async closeIo(req: containerd.task.v2.CloseIORequest): Promise<Uint8Array> {
    const c = this.get(req.id);
    this.process(c, req.execId);
    if (req.stdin) await this.deps.link.closeIo(c.id);
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
    const unimplemented = (what: string): Handler => async () => {
      throw new UnimplementedError(`${what} is not implemented by tsrt yet`);
    };
    const methods: Record<string, Handler> = {
      Create: (b, ctx) => this.create(task.CreateTaskRequest.decode(b), ctx),
      Start: (b) => this.start(task.StartRequest.decode(b)),
      State: (b) => this.state(task.StateRequest.decode(b)),
      Wait: (b, ctx) => this.wait(task.WaitRequest.decode(b), ctx),
      Kill: (b) => this.kill(task.KillRequest.decode(b)),
      Delete: (b) => this.delete(task.DeleteRequest.decode(b)),
      Pids: (b) => this.pids(task.PidsRequest.decode(b)),
      CloseIO: (b) => this.closeIo(task.CloseIORequest.decode(b)),
      Connect: (b) => this.connect(task.ConnectRequest.decode(b)),
      Shutdown: () => this.shutdown(),
      Exec: unimplemented('Exec'),
      ResizePty: unimplemented('ResizePty'),
      Pause: unimplemented('Pause'),
      Resume: unimplemented('Resume'),
      Update: unimplemented('Update'),
      Stats: unimplemented('Stats'),
      Checkpoint: unimplemented('Checkpoint'),
    };
    for (const [name, h] of Object.entries(methods)) {
      methods[name] = async (b, ctx) => { await this.restored; return h(b, ctx); };
    }
    return methods;
  }
}

