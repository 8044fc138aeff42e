// The `native` backend: runs OCI bundles without runc or crun. plan.ts turns the bundle's config.json into
// a launch plan, src/cgroups/write.ts makes and drives the container's cgroups, and `tsrt-launch`
// (native/launcher/, docs/native-launcher.md), spawned by the container's monitor, carries the plan out:
// the init it leaves behind is re-parented to the monitor and reaped there, like a runc container's.
//
// Per container, against the runc backend: Create is one launcher exec (no `runc create` re-executing
// itself, no Go runtime), Start opens the exec FIFO from here (no `runc start`), Kill, Pause, Resume,
// Update, Pids and Delete act on the cgroups and pids directly (no runtime binary at all), and an exec is
// one launcher exec that joins the init's namespaces (no `runc exec`).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  DeadlineExceededError, EXEC_ID, UnavailableError, InvalidArgumentError, NotFoundError, RuntimeError, UnimplementedError,
  type Backend, type BackendInit, type ContainerConfig, type CreateRequest, type ExecRequest, type Exit, type Logger, type Stdio,
} from '../api/index.js';
import { HostCgroups } from '../host/cgroup-watch.js';
import { HostRootfs } from '../host/rootfs.js';
import { hostProcessIo } from '../host/stdio.js';
import { exitWithin } from '../host/deadline.js';
import { writeCleanupCommand } from '../host/cleanup.js';
import {
  cgroupJoinDirs, cgroupMountSources, createCgroup, cgroupDirsFor, cgroupPids, freeze, killAll, remove, resolveCgroupsPath, thaw,
  update as updateCgroup, type CgroupDirs, type DeviceNode,
} from '../../cgroups/write.js';
import { releaseInit } from './exec-fifo.js';
import { createPlan, execPlan, servedExecPlan, servePlan, type PlanHost } from './plan.js';
import type { OciProcess, OciResources, OciSpec } from './oci.js';

/** How long a launcher may take to hand over the pty master after it exited 0. */
const CONSOLE_WAIT_MS = 10_000;
/** How long Delete waits for a SIGKILLed init to be reaped before it removes the cgroups. */
const REAP_WAIT_MS = 10_000;

/** The launcher binary: next to the daemon's bundle (native/build), unless TSRT_LAUNCH_BIN names another. */
function launcherPath(): string {
  return process.env.TSRT_LAUNCH_BIN ?? path.join(path.dirname(fileURLToPath(import.meta.url)), 'tsrt-launch');
}

/** Whether the host runs AppArmor or SELinux (a label for a module that is not enabled is ignored), and has /proc/kcore. */
function planHost(): PlanHost {
  let apparmor = false;
  try {
    apparmor = fs.readFileSync('/sys/module/apparmor/parameters/enabled', 'utf8').trim() === 'Y';
  } catch { /* no AppArmor */ }
  let selinux = false;
  try {
    selinux = fs.readdirSync('/sys/fs/selinux').length > 0;
  } catch { /* no SELinux */ }
  return { apparmor, selinux, kcore: fs.existsSync('/proc/kcore') };
}

/** What the backend keeps of one container. */
interface NativeContainer {
  id: string;
  bundle: string;
  namespace: string;
  config: ContainerConfig;
  log: Logger;
  spec: OciSpec;
  cgroup: CgroupDirs | null;
  initPid: number;
  initExited: boolean;
  /** The init's exit, once it is watched (one waiter per pid at the monitor: everyone shares this one). */
  initExit: Promise<Exit> | null;
  execPids: Map<string, number>;
  /** Execs that took the launcher, which leaves files in the bundle (all of them, for an adopted container). */
  launched: Set<string> | 'all';
  cgroups: HostCgroups;
  rootfs: HostRootfs;
  /** The container's exec server, once an exec started it; 'off' where execs take the launcher. */
  server: ExecServer | 'off' | null;
  /** Its start, while one is under way (execs at once share it). */
  serverStarting: Promise<ExecServer | null> | null;
  /** The exit of the last server started (Delete waits for it: a server holds the container's namespaces). */
  serverExit: Promise<unknown> | null;
}

/** A running `tsrt-launch serve` (docs/native-launcher.md, "The exec server"). */
interface ExecServer {
  pid: number;
  /** Requests it answered: a server that dies before its first answer is not started again. */
  served: number;
}

/** What the core keeps for the backend across a daemon restart. */
interface NativeState { rootfsMounted: boolean; cgroup: CgroupDirs | null }

const files = (bundle: string) => ({
  plan: path.join(bundle, 'native-init.plan'),
  err: path.join(bundle, 'native-init.err'),
  pid: path.join(bundle, 'init.pid'),
  fifo: path.join(bundle, 'exec.fifo'),
});

const serverFiles = (bundle: string) => ({ plan: path.join(bundle, 'native-serve.plan'), err: path.join(bundle, 'native-serve.err') });

/** The monitor key of a container's exec server channel ('/' cannot be in a container or exec id). */
const serverKey = (id: string): string => `${id}/exec-server`;

const execFiles = (bundle: string, execId: string) => {
  if (!EXEC_ID.test(execId)) throw new InvalidArgumentError(`invalid exec id ${JSON.stringify(execId)}`);
  const base = path.join(bundle, `native-exec-${execId}`);
  return { plan: `${base}.plan`, err: `${base}.err`, pid: `${base}.pid` };
};

/**
 * The launcher's error line, which names the step that failed. A program that cannot be found or run is
 * worded as runc words it (`unable to start container process: exec: "x": …`, behind runc's own
 * "runc create failed: " or "exec failed: "), because that is what users read in kubelet's events and
 * search for; only the runtime's name differs.
 */
function launchError(op: 'create' | 'exec', errfile: string, status: number): RuntimeError {
  let line = '';
  try {
    line = fs.readFileSync(errfile, 'utf8').trim().split('\n').filter((l) => !l.includes('warning:')).pop() ?? '';
  } catch { /* none written */ }
  return launchErrorLine(op, line || `tsrt-launch exited with status ${status}`);
}

function launchErrorLine(op: 'create' | 'exec', line: string): RuntimeError {
  if (line.startsWith('unable to start container process: ')) line = `${op === 'create' ? 'tsrt-launch create' : 'exec'} failed: ${line}`;
  return new RuntimeError(`OCI runtime ${op} failed: ${line}`);
}

/** Warnings the launcher wrote (a step the host could not take that is not fatal, e.g. oom_score_adj). */
function launchWarnings(errfile: string, log: Logger): void {
  let text = '';
  try {
    text = fs.readFileSync(errfile, 'utf8');
  } catch { return; }
  for (const l of text.split('\n')) if (l.includes('warning:')) log.warn({ launcher: l }, 'native launcher warning');
}

/** The container's own session keyring, named as runc names it; none with the NoNewKeyring option. */
const sessionKeyring = (id: string, config: { noNewKeyring: boolean }): string | undefined => (config.noNewKeyring ? undefined : `_ses.${id}`);

/** Removes a file of the bundle, if it is there: one unlink (fs.rmSync stats it first). */
function removeFile(file: string): void {
  try {
    fs.unlinkSync(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}

function readPid(file: string, op: string): number {
  const pid = Number(fs.readFileSync(file, 'utf8').trim());
  if (!Number.isInteger(pid) || pid <= 0) throw new RuntimeError(`OCI runtime ${op}: bad pid file ${file}`);
  return pid;
}

/**
 * The command the C `delete` binary runs after a dead daemon: SIGKILL whatever is left in the container's
 * cgroups, then remove them (retrying while the kernel finishes with the killed processes).
 */
function cleanupArgv(dirs: readonly string[]): string[] {
  const script = 'for d in "$@"; do [ -f "$d/cgroup.procs" ] && while read p; do kill -9 "$p" 2>/dev/null; done < "$d/cgroup.procs"; done; ' +
    'for i in 1 2 3 4 5 6 7 8 9 10; do left=0; for d in "$@"; do [ -d "$d" ] && { rmdir "$d" 2>/dev/null || left=1; }; done; ' +
    '[ "$left" = 0 ] && exit 0; sleep 0.2; done; exit 1';
  return ['/bin/sh', '-c', script, 'tsrt-native-cleanup', ...dirs];
}

export function createNativeBackend(init: BackendInit): Backend {
  const { host } = init;
  const containers = new Map<string, NativeContainer>();
  let hostFacts: PlanHost | null = null;

  const containerOf = (id: string): NativeContainer => {
    const c = containers.get(id);
    if (!c) throw new NotFoundError(`container ${id} is not known to the native backend`);
    return c;
  };
  const cgroupOf = (c: NativeContainer): CgroupDirs => {
    if (!c.cgroup) throw new NotFoundError(`container ${c.id} has no cgroup`);
    return c.cgroup;
  };

  const watchExit = (id: string, execId: string, pid: number): void => {
    const exited = host.waitExit(pid);
    const c = containers.get(id);
    if (c && !execId) c.initExit = exited;
    exited.then((e) => {
      if (c && !execId) {
        c.initExited = true;
        // nothing can be exec'd any more: the server lets go of the container's namespaces
        stopServer(c);
      }
      init.exited(id, execId, e);
    }, () => { /* the monitor is gone */ });
  };

  /** Ends the container's exec server, if it has one (it exits at the end of its channel). */
  const stopServer = (c: NativeContainer): void => {
    if (c.server === null || c.server === 'off') return;
    c.server = null;
    host.release(serverKey(c.id)).catch((e: unknown) => c.log.warn({ err: (e as Error).message }, 'cannot release the exec server'));
  };

  /**
   * The container's exec server, started by its first exec; null where execs take the launcher: a
   * container with a user namespace (the server would have to give up its host capabilities to join it),
   * or one whose server failed before it served anything.
   */
  function serverFor(c: NativeContainer): Promise<ExecServer | null> {
    if (c.server === 'off') return Promise.resolve(null);
    if (c.server) return Promise.resolve(c.server);
    c.serverStarting ??= startServer(c).finally(() => { c.serverStarting = null; });
    return c.serverStarting;
  }

  async function startServer(c: NativeContainer): Promise<ExecServer | null> {
    if ((c.spec.linux?.namespaces ?? []).some((n) => n.type === 'user')) {
      c.server = 'off';
      return null;
    }
    const f = serverFiles(c.bundle);
    const plan = servePlan({ spec: c.spec, initPid: c.initPid, errfile: f.err, cgroupDirs: c.cgroup ? cgroupJoinDirs(c.cgroup) : [] });
    fs.writeFileSync(f.plan, plan.text, { mode: 0o600 });
    const key = serverKey(c.id);
    let pid: number;
    try {
      pid = await host.spawn({ ioKey: key, cwd: c.bundle, stdin: 'channel:', stdout: '', stderr: '', argv: [launcherPath(), 'serve', f.plan] });
    } catch (e) {
      c.log.warn({ err: (e as Error).message }, 'cannot start the exec server; execs take the launcher');
      c.server = 'off';
      return null;
    }
    const server: ExecServer = { pid, served: 0 };
    c.server = server;
    c.serverExit = host.waitExit(pid).then((e) => {
      if (c.server === server) {
        c.server = server.served > 0 ? null : 'off';
        // the monitor ends the channel at its end of file already; this covers a daemon that raced it
        host.release(key).catch(() => undefined);
      }
      if (e.status !== 0) {
        let why = '';
        try {
          why = fs.readFileSync(f.err, 'utf8').trim();
        } catch { /* none written */ }
        c.log.warn({ pid, status: e.status, served: server.served, err: why }, 'the exec server exited');
      }
    }, () => { /* the monitor is gone */ });
    if (c.initExited || containers.get(c.id) !== c) {
      // the init exited or the container went while the server started
      stopServer(c);
      return null;
    }
    return server;
  }

  /**
   * An exec through the container's exec server: its pid, or null when the server cannot take it (the
   * launcher does then). The server's answer comes once the program's execve succeeded, or with the error
   * line the launcher would have written.
   */
  async function execServed(c: NativeContainer, req: ExecRequest, io: { stdin: string; stdout: string; stderr: string }): Promise<number | null> {
    const server = await serverFor(c);
    if (!server) return null;
    hostFacts ??= planHost();
    const plan = servedExecPlan({ spec: c.spec, process: req.spec as OciProcess, sessionKeyring: sessionKeyring(c.id, c.config), host: hostFacts });
    for (const w of plan.warnings) c.log.warn({ execId: req.execId }, w);
    const ms = c.config.runtimeTimeoutMs;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => { timer = setTimeout(() => resolve('late'), ms); });
    try {
      const r = await Promise.race([host.handOff(serverKey(c.id), { ioKey: req.ioKey, ...io, message: plan.text }), late]);
      if (r === 'late') {
        // the server is stuck with this exec's child: it goes, and the next exec starts another
        c.log.error({ execId: req.execId, timeoutMs: ms }, 'exec server did not answer in time');
        if (c.server === server) stopServer(c);
        host.signal(server.pid, 9).catch(() => undefined);
        throw new DeadlineExceededError(`exec server did not answer within ${ms / 1000} s (RuntimeTimeout)`);
      }
      server.served++;
      for (const w of r.warnings) c.log.warn({ launcher: w, execId: req.execId }, 'native launcher warning');
      return r.pid;
    } catch (e) {
      if (e instanceof DeadlineExceededError) throw e;
      if (!(e instanceof UnavailableError)) {
        server.served++;
        throw launchErrorLine('exec', (e as Error).message);
      }
      c.log.warn({ err: (e as Error).message, execId: req.execId }, 'exec server unreachable; this exec takes the launcher');
      if (c.server === server) c.server = server.served > 0 ? null : 'off';
      return null;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Monitor stdio for the launcher: the process's own, or a console socket for a terminal. */
  const launchStdio = (c: NativeContainer, ioKey: string, stdio: Stdio) => hostProcessIo(host, {
    ioKey, containerId: c.id, namespace: c.namespace, stdio, uid: c.config.ioUid, gid: c.config.ioGid, log: c.log,
  });

  /** Runs the launcher from the monitor; returns the pid it wrote. */
  async function launch(op: 'create' | 'exec', c: NativeContainer, ioKey: string, io: { stdin: string; stdout: string; stderr: string },
    plan: string, f: { plan: string; err: string; pid: string }, terminal: boolean): Promise<number> {
    fs.writeFileSync(f.plan, plan, { mode: 0o600 });
    removeFile(f.err);
    const pid = await host.spawn({ ioKey, cwd: c.bundle, ...io, argv: [launcherPath(), op, f.plan] });
    const exit = await exitWithin(host, pid, c.config.runtimeTimeoutMs);
    if (!exit) {
      c.log.error({ op, pid, timeoutMs: c.config.runtimeTimeoutMs }, 'tsrt-launch killed at its deadline');
      throw new DeadlineExceededError(`tsrt-launch ${op} did not finish within ${c.config.runtimeTimeoutMs / 1000} s (RuntimeTimeout) and was killed`);
    }
    if (exit.status !== 0) throw launchError(op, f.err, exit.status);
    launchWarnings(f.err, c.log);
    if (terminal) await host.consoleWait(ioKey, CONSOLE_WAIT_MS);
    return readPid(f.pid, op);
  }

  return {
    name: 'native',

    async create(req: CreateRequest) {
      const extra = Object.keys(req.options);
      if (extra.length > 0) throw new InvalidArgumentError(`[backends.native]: unknown key ${extra.join(', ')}: the native backend has no options yet`);
      if (req.config.systemdCgroup) throw new UnimplementedError('SystemdCgroup is not supported by the native backend yet');
      const f = files(req.bundle);
      const spec = JSON.parse(fs.readFileSync(path.join(req.bundle, 'config.json'), 'utf8')) as OciSpec;
      const c: NativeContainer = {
        id: req.id, bundle: req.bundle, namespace: req.namespace, config: req.config, log: req.log, spec, cgroup: null,
        initPid: 0, initExited: false, initExit: null, execPids: new Map(), launched: new Set(), cgroups: new HostCgroups(req.log), rootfs: new HostRootfs(host, req.bundle),
        server: null, serverStarting: null, serverExit: null,
      };
      // On failure the container stays known: the core's delete(id, true) removes what was made.
      containers.set(req.id, c);
      const inner = resolveCgroupsPath(spec.linux?.cgroupsPath, req.id);
      // before anything outlives the daemon: where the cgroups will be, for the delete binary
      // the mount table, read once for both: where the cgroups go, and making them
      const mountinfo = fs.readFileSync('/proc/self/mountinfo', 'utf8');
      writeCleanupCommand(req.bundle, cleanupArgv(cgroupJoinDirs(cgroupDirsFor(inner, { mountinfo }))));
      await c.rootfs.mount(req.rootfs);
      const allowDevices: DeviceNode[] = (spec.linux?.devices ?? []).map((d) => ({ type: d.type ?? '', major: d.major ?? 0, minor: d.minor ?? 0 }));
      const made = createCgroup(inner, spec.linux?.resources as OciResources | undefined, { allowDevices, mountinfo });
      c.cgroup = made.dirs;
      for (const w of made.warnings) req.log.warn({ cgroup: inner }, w);
      const { io, consoleSocket } = await launchStdio(c, req.ioKey, req.stdio);
      hostFacts ??= planHost();
      const plan = createPlan({
        spec, bundle: req.bundle, errfile: f.err, pidfile: f.pid, execFifo: f.fifo, cgroupDirs: cgroupJoinDirs(made.dirs),
        cgroupVersion: made.dirs.version, cgroupSources: made.dirs.version === 1 ? cgroupMountSources(made.dirs) : undefined,
        deviceFilter: made.deviceFilter,
        consoleSocket, noPivotRoot: req.config.noPivotRoot, sessionKeyring: sessionKeyring(req.id, req.config), host: hostFacts,
      });
      for (const w of plan.warnings) req.log.warn({}, w);
      removeFile(f.fifo);
      const pid = await launch('create', c, req.ioKey, io, plan.text, f, req.stdio.terminal);
      c.initPid = pid;
      watchExit(req.id, '', pid);
      await c.cgroups.watch(host, req.id, pid, () => init.oom(req.id));
      return { pid };
    },

    adopt({ id, bundle, namespace, config, log, pid, running, runningExecs, state }) {
      const s = (state ?? {}) as Partial<NativeState>;
      let spec: OciSpec = {};
      try {
        spec = JSON.parse(fs.readFileSync(path.join(bundle, 'config.json'), 'utf8')) as OciSpec;
      } catch (e) {
        log.warn({ err: (e as Error).message }, 'cannot read the bundle\'s config.json; execs will fail');
      }
      const c: NativeContainer = {
        id, bundle, namespace, config, log, spec, cgroup: s.cgroup ?? null, initPid: pid, initExited: !running, initExit: null,
        execPids: new Map(), launched: 'all', cgroups: new HostCgroups(log), rootfs: new HostRootfs(host, bundle), server: null,
        serverStarting: null, serverExit: null,
      };
      c.rootfs.adopt(s.rootfsMounted);
      containers.set(id, c);
      // an exec server of the daemon before this one: ended, the next exec starts one of this daemon's
      host.release(serverKey(id)).catch(() => undefined);
      if (running) watchExit(id, '', pid);
      for (const e of runningExecs) {
        c.execPids.set(e.execId, e.pid);
        watchExit(id, e.execId, e.pid);
      }
    },

    stateOf(id): NativeState | undefined {
      const c = containers.get(id);
      return c && { rootfsMounted: c.rootfs.mounted, cgroup: c.cgroup };
    },

    async start(id) {
      const c = containerOf(id);
      if (c.initExited || !c.initExit) throw new RuntimeError('container init exited before it was started');
      await releaseInit(files(c.bundle).fifo, c.initExit);
    },

    async exec(req: ExecRequest) {
      const c = containerOf(req.id);
      if (c.initExited) throw new RuntimeError(`container ${req.id} init process is not running`);
      const f = execFiles(c.bundle, req.execId);
      const { io, consoleSocket } = await launchStdio(c, req.ioKey, req.stdio);
      // a terminal's pty is made by the process's launcher, which reaches the console socket on the host
      const served = req.stdio.terminal ? null : await execServed(c, req, io);
      if (served !== null) {
        c.execPids.set(req.execId, served);
        watchExit(req.id, req.execId, served);
        return { pid: served };
      }
      hostFacts ??= planHost();
      const plan = execPlan({
        spec: c.spec, process: req.spec as OciProcess, initPid: c.initPid, errfile: f.err, pidfile: f.pid,
        cgroupDirs: c.cgroup ? cgroupJoinDirs(c.cgroup) : [], consoleSocket, sessionKeyring: sessionKeyring(c.id, c.config), host: hostFacts,
      });
      for (const w of plan.warnings) c.log.warn({ execId: req.execId }, w);
      if (c.launched !== 'all') c.launched.add(req.execId);
      try {
        const pid = await launch('exec', c, req.ioKey, io, plan.text, f, req.stdio.terminal);
        c.execPids.set(req.execId, pid);
        watchExit(req.id, req.execId, pid);
        return { pid };
      } finally {
        removeFile(f.plan);
      }
    },

    async deleteExec(id, execId) {
      const c = containers.get(id);
      if (!c) return;
      c.execPids.delete(execId);
      // a served exec left no file: no unlinks on the probes' path
      if (c.launched !== 'all' && !c.launched.delete(execId)) return;
      const f = execFiles(c.bundle, execId);
      for (const file of [f.plan, f.err, f.pid]) removeFile(file);
    },

    async signal(id, execId, signal, all) {
      const c = containerOf(id);
      if (execId) {
        const pid = c.execPids.get(execId);
        if (pid === undefined) throw new NotFoundError(`process does not exist ${execId}`);
        await host.signal(pid, signal);
        return;
      }
      if (c.initExited && !all) throw new NotFoundError('process already finished');
      if (all) {
        const n = await killAll(cgroupOf(c), signal);
        if (n === 0 && c.initExited) throw new NotFoundError('process already finished');
        return;
      }
      await host.signal(c.initPid, signal);
    },

    async delete(id) {
      const c = containers.get(id);
      if (!c) return;
      // first: the server holds the container's namespaces (the init's exit has ended it already, mostly)
      stopServer(c);
      if (c.cgroup) {
        // whatever still runs goes (a created init waiting for Start, a forced delete, left-over children)
        if (cgroupPids(c.cgroup).length > 0) await killAll(c.cgroup, 'SIGKILL');
        if (c.initExit && !c.initExited) {
          let timer: NodeJS.Timeout | undefined;
          await Promise.race([c.initExit.catch(() => undefined), new Promise((r) => { timer = setTimeout(r, REAP_WAIT_MS); })]);
          clearTimeout(timer);
        }
        await remove(c.cgroup);
      }
      if (c.serverExit) {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([c.serverExit, new Promise((r) => { timer = setTimeout(r, REAP_WAIT_MS); })]);
        clearTimeout(timer);
      }
      await c.rootfs.unmount();
      const f = files(c.bundle);
      const sf = serverFiles(c.bundle);
      for (const file of [f.plan, f.err, f.fifo, sf.plan, sf.err]) removeFile(file);
      containers.delete(id);
    },

    async pause(id) {
      await freeze(cgroupOf(containerOf(id)));
    },

    async resume(id) {
      await thaw(cgroupOf(containerOf(id)));
    },

    async update(id, resources) {
      const c = containerOf(id);
      for (const w of updateCgroup(cgroupOf(c), resources as OciResources)) c.log.warn({}, w);
    },

    async stats(id) {
      const c = containerOf(id);
      return c.cgroups.stats(c.initExited ? 0 : c.initPid);
    },

    async pids(id) {
      return cgroupPids(cgroupOf(containerOf(id)));
    },

    async resizePty(ioKey, width, height) {
      await host.resize(ioKey, width, height);
    },

    async closeIo(ioKey) {
      await host.closeIo(ioKey);
    },
  };
}
