// The `runc` backend: drives any runc-compatible binary (runc, crun) through its CLI. Commands that leave
// processes behind (`create`) are spawned by the container's monitor, so the container's init is re-parented
// to the monitor (a child subreaper) and reaped there; short-lived commands run from the daemon. One
// instance serves a group (a pod); each container keeps its own runtime options.
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  DeadlineExceededError, EXEC_ID, InvalidArgumentError, NotFoundError, RuntimeError,
  type Backend, type BackendInit, type ContainerConfig, type CreateRequest, type ExecRequest, type Logger, type Stdio,
} from '../api/index.js';
import { HostCgroups } from '../host/cgroup-watch.js';
import { HostRootfs } from '../host/rootfs.js';
import { hostProcessIo } from '../host/stdio.js';
import { exitWithin } from '../host/deadline.js';
import { writeCleanupCommand } from '../host/cleanup.js';
import { cgroupMode } from '../../cgroups/mode.js';

// Bundles live on /run (tmpfs): the small files of the per-process hot path (pid files, exec process files)
// are read and written synchronously, tens of microseconds, cheaper than a thread-pool round trip.
/** How long a runtime may take to hand over the pty master after `create`/`exec` returned. */
const CONSOLE_WAIT_MS = 10_000;

interface CommandResult { code: number; stdout: string; stderr: string; timedOut?: boolean }

/**
 * Runs a short runtime command from the daemon. Past timeoutMs Node SIGKILLs it (its own child, not yet
 * reaped, so the pid cannot have been reused) and the result says timedOut.
 */
function run(argv: string[], cwd: string | undefined, timeoutMs: number): Promise<CommandResult> {
  return new Promise((resolve) => {
    execFile(argv[0]!, argv.slice(1), { cwd, maxBuffer: 16 << 20, encoding: 'utf8', timeout: timeoutMs, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      const timedOut = !!err && (err as { killed?: boolean }).killed === true;
      const code = err ? (typeof (err as NodeJS.ErrnoException & { code?: unknown }).code === 'number' ? (err as unknown as { code: number }).code : 1) : 0;
      resolve({ code, stdout, stderr: stderr || (err && !stderr ? err.message : ''), timedOut });
    });
  });
}

/** The error of a runtime command of c that RuntimeTimeout ended, logged on the container's log. */
function overdue(op: string, c: { config: ContainerConfig; log: Logger }): DeadlineExceededError {
  const timeoutMs = c.config.runtimeTimeoutMs;
  c.log.error({ op, timeoutMs }, 'runtime command killed at its deadline');
  return new DeadlineExceededError(`OCI runtime ${op} did not finish within ${timeoutMs / 1000} s (RuntimeTimeout) and was killed`);
}

/** The last error runc/crun wrote to its JSON log, which is what runc-v2 reports too. */
async function lastLoggedError(logFile: string): Promise<string | null> {
  let text: string;
  try {
    text = await fs.readFile(logFile, 'utf8');
  } catch {
    return null;
  }
  const lines = text.trimEnd().split('\n');
  for (let i = lines.length - 1; i >= 0; i--) {
    try {
      const entry = JSON.parse(lines[i]!) as { level?: string; msg?: string };
      if (entry.level === 'error' && entry.msg) return entry.msg;
    } catch { /* a partial or foreign line */ }
  }
  return null;
}

/**
 * crun refuses a "hybrid" cgroup host (v1 controllers plus cgroup2 at /sys/fs/cgroup/unified). On such a
 * host every crun command runs through tsrt-hybrid-exec, which hides that one mount in a private mount
 * namespace (machine.md: 0.3–0.9 ms per call). runc handles hybrid hosts itself.
 */
function commandPrefix(binary: string): string[] {
  if (!path.basename(binary).startsWith('crun') || cgroupMode() !== 'hybrid') return [];
  const helper = process.env.TSRT_HYBRID_EXEC ?? path.join(path.dirname(fileURLToPath(import.meta.url)), 'tsrt-hybrid-exec');
  return [helper];
}

/** What the backend keeps of one container. */
interface RuncContainer {
  id: string;
  bundle: string;
  namespace: string;
  config: ContainerConfig;
  log: Logger;
  /** `--root` of the runtime: the options' Root, per namespace (runc-v2 alike) */
  root: string;
  /** tsrt-hybrid-exec for crun on a hybrid cgroup host, else nothing */
  prefix: string[];
  initPid: number;
  initExited: boolean;
  /** host pids of the execs started, by exec id (an exec is signalled directly) */
  execPids: Map<string, number>;
  cgroups: HostCgroups;
  /** containerd's rootfs mounts on `<bundle>/rootfs` */
  rootfs: HostRootfs;
}

/** What the core keeps for the backend across a daemon restart (stateOf, AdoptRequest.state). */
interface RuncState { rootfsMounted: boolean }

export function createRuncBackend(init: BackendInit): Backend {
  const { host } = init;
  const containers = new Map<string, RuncContainer>();
  let updates = 0;

  const track = (id: string, bundle: string, namespace: string, config: ContainerConfig, log: Logger, initPid: number): RuncContainer => {
    const c: RuncContainer = {
      id, bundle, namespace, config, log, root: path.join(config.root, namespace), prefix: commandPrefix(config.binaryName),
      initPid, initExited: false, execPids: new Map(), cgroups: new HostCgroups(log), rootfs: new HostRootfs(host, bundle),
    };
    containers.set(id, c);
    return c;
  };

  const globalArgs = (c: RuncContainer): string[] => [
    ...c.prefix, c.config.binaryName, '--root', c.root, '--log', path.join(c.bundle, 'log.json'), '--log-format', 'json',
    ...(c.config.systemdCgroup ? ['--systemd-cgroup'] : []),
  ];

  const containerOf = (id: string): RuncContainer => {
    const c = containers.get(id);
    if (!c) throw new NotFoundError(`container ${id} is not known to the runc backend`);
    return c;
  };

  async function failure(op: string, bundle: string, res: CommandResult): Promise<RuntimeError> {
    const logged = await lastLoggedError(path.join(bundle, 'log.json'));
    const detail = logged ?? (res.stderr.trim().split('\n').pop() || `exit status ${res.code}`);
    return new RuntimeError(`OCI runtime ${op} failed: ${detail}`);
  }

  /** A short runtime command of container c, ended (and reported) at its deadline. */
  async function command(op: string, c: RuncContainer, args: string[]): Promise<CommandResult> {
    const res = await run([...globalArgs(c), ...args], c.bundle, c.config.runtimeTimeoutMs);
    if (res.timedOut) throw overdue(op, c);
    return res;
  }

  async function simple(op: string, id: string, args: string[]): Promise<CommandResult> {
    const c = containerOf(id);
    const res = await command(op, c, args);
    if (res.code !== 0) throw await failure(op, c.bundle, res);
    return res;
  }

  const execFiles = (bundle: string, execId: string): { pidFile: string; processFile: string } => {
    if (!EXEC_ID.test(execId)) throw new InvalidArgumentError(`invalid exec id ${JSON.stringify(execId)}`);
    return { pidFile: path.join(bundle, `exec-${execId}.pid`), processFile: path.join(bundle, `exec-${execId}.process.json`) };
  };

  /**
   * Runs a runtime command that leaves a process behind (`create`, `exec --detach`) from the monitor, with
   * the process's stdio, or with a console socket when it has a terminal. Returns the pid the runtime wrote.
   */
  async function spawnWithPid(op: string, c: RuncContainer, ioKey: string, stdio: Stdio, args: string[], pidFile: string): Promise<number> {
    const { bundle } = c;
    // No need to remove an old pid file first: runc and crun replace it atomically.
    const { io, consoleSocket } = await hostProcessIo(host, {
      ioKey, containerId: c.id, namespace: c.namespace, stdio, uid: c.config.ioUid, gid: c.config.ioGid, log: c.log,
    });
    const consoleArgs = consoleSocket ? ['--console-socket', consoleSocket] : [];
    const argv = [...globalArgs(c), op, ...consoleArgs, '--pid-file', pidFile, ...args];
    const pid = await host.spawn({ ioKey, cwd: bundle, ...io, argv });
    const exit = await exitWithin(host, pid, c.config.runtimeTimeoutMs);
    if (!exit) throw overdue(op, c);
    if (exit.status !== 0) throw await failure(op, bundle, { code: exit.status, stdout: '', stderr: '' });
    if (stdio.terminal) await host.consoleWait(ioKey, CONSOLE_WAIT_MS);
    const processPid = Number(readFileSync(pidFile, 'utf8').trim());
    if (!Number.isInteger(processPid) || processPid <= 0) throw new RuntimeError(`OCI runtime ${op} wrote a bad pid file ${pidFile}`);
    return processPid;
  }

  const watchExit = (id: string, execId: string, pid: number): void => {
    host.waitExit(pid).then((e) => {
      const c = containers.get(id);
      if (c && !execId) c.initExited = true;
      init.exited(id, execId, e);
    }, () => { /* monitor gone */ });
  };

  return {
    name: 'runc',

    async create(req: CreateRequest) {
      const extra = Object.keys(req.options);
      if (extra.length > 0) {
        throw new InvalidArgumentError(`[backends.runc]: unknown key ${extra.join(', ')}: the runc backend has no table of its own; ` +
          'its options (BinaryName, Root, SystemdCgroup, ...) go at the top level of the options file');
      }
      const c = track(req.id, req.bundle, req.namespace, req.config, req.log, 0);
      const { config } = c;
      // what the delete binary runs to clean up after a dead daemon
      writeCleanupCommand(req.bundle, [...c.prefix, config.binaryName, '--root', c.root, 'delete', '--force', req.id]);
      await c.rootfs.mount(req.rootfs);
      const pidFile = path.join(req.bundle, 'init.pid');
      const args = [
        '--bundle', req.bundle, ...(config.noPivotRoot ? ['--no-pivot'] : []), ...(config.noNewKeyring ? ['--no-new-keyring'] : []), req.id,
      ];
      // On failure the container stays known: the core's delete(id, true) that follows a failed Create
      // removes what the runtime made of it (a create that ran, then a console that never came).
      const pid = await spawnWithPid('create', c, req.ioKey, req.stdio, args, pidFile);
      c.initPid = pid;
      watchExit(req.id, '', pid);
      // before Start, so that no OOM kill is missed
      await c.cgroups.watch(host, req.id, pid, () => init.oom(req.id));
      return { pid };
    },

    adopt({ id, bundle, namespace, config, log, pid, running, runningExecs, state }) {
      const c = track(id, bundle, namespace, config, log, pid);
      c.rootfs.adopt((state as Partial<RuncState> | undefined)?.rootfsMounted);
      c.initExited = !running;
      if (running) watchExit(id, '', pid);
      for (const e of runningExecs) {
        c.execPids.set(e.execId, e.pid);
        watchExit(id, e.execId, e.pid);
      }
    },

    async exec(req: ExecRequest) {
      const c = containerOf(req.id);
      const { pidFile, processFile } = execFiles(c.bundle, req.execId);
      writeFileSync(processFile, JSON.stringify(req.spec), { mode: 0o600 });
      try {
        const pid = await spawnWithPid('exec', c, req.ioKey, req.stdio, ['--process', processFile, '--detach', req.id], pidFile);
        c.execPids.set(req.execId, pid);
        watchExit(req.id, req.execId, pid);
        return { pid };
      } finally {
        rmSync(processFile, { force: true });
      }
    },

    async deleteExec(id, execId) {
      const c = containers.get(id);
      if (!c) return;
      c.execPids.delete(execId);
      const { pidFile, processFile } = execFiles(c.bundle, execId);
      rmSync(pidFile, { force: true });
      rmSync(processFile, { force: true });
    },

    async start(id) {
      await simple('start', id, ['start', id]);
    },

    async signal(id, execId, signal, all) {
      const c = containerOf(id);
      if (execId) {
        // An exec is signalled directly; `all` does not apply to it (runc-v2 alike).
        const pid = c.execPids.get(execId);
        if (pid === undefined) throw new NotFoundError(`process does not exist ${execId}`);
        await host.signal(pid, signal);
        return;
      }
      const res = await command('kill', c, ['kill', ...(all ? ['--all'] : []), id, String(signal)]);
      if (res.code === 0) return;
      const why = (await lastLoggedError(path.join(c.bundle, 'log.json'))) ?? res.stderr;
      if (/process already finished|container not running|no such process|not running/i.test(why)) {
        throw new NotFoundError('process already finished');
      }
      throw new RuntimeError(`unknown error after kill: OCI runtime kill failed: ${why.trim()}`);
    },

    async delete(id, force) {
      const c = containers.get(id);
      if (!c) return;
      const res = await command('delete', c, ['delete', ...(force ? ['--force'] : []), id]);
      if (res.code !== 0) {
        const why = (await lastLoggedError(path.join(c.bundle, 'log.json'))) ?? res.stderr;
        if (!/does not exist|not found/i.test(why)) throw new RuntimeError(`OCI runtime delete failed: ${why.trim()}`);
      }
      await c.rootfs.unmount();
      containers.delete(id);
    },

    stateOf(id): RuncState | undefined {
      const c = containers.get(id);
      return c && { rootfsMounted: c.rootfs.mounted };
    },

    async pause(id) {
      await simple('pause', id, ['pause', id]);
    },

    async resume(id) {
      await simple('resume', id, ['resume', id]);
    },

    async update(id, resources) {
      // A file rather than stdin: crun does not read `--resources -`.
      const file = path.join(containerOf(id).bundle, `update-${process.pid}-${++updates}.json`);
      await fs.writeFile(file, JSON.stringify(resources), { mode: 0o600 });
      try {
        await simple('update', id, ['update', '--resources', file, id]);
      } finally {
        await fs.rm(file, { force: true });
      }
    },

    async resizePty(ioKey, width, height) {
      await host.resize(ioKey, width, height);
    },

    async closeIo(ioKey) {
      await host.closeIo(ioKey);
    },

    async stats(id) {
      const c = containerOf(id);
      return c.cgroups.stats(c.initExited ? 0 : c.initPid);
    },

    async pids(id) {
      const res = await simple('ps', id, ['ps', '--format', 'json', id]);
      const list = JSON.parse(res.stdout || '[]') as unknown;
      return Array.isArray(list) ? list.map(Number) : [];
    },
  };
}
