// tsrt backend plugin `gvisor`: runs containers in gVisor sandboxes by driving `runsc` (Debian's package
// `runsc`) through its runc-like CLI, on the ptrace platform.
//
// Install: copy or link this directory to `<PluginDir>/gvisor` (default /etc/tsrt/plugins/gvisor), then pick
// it per container with the annotation `io.tsrt.backend=gvisor`, or for every container of a runtime with
// `Backend = "gvisor"` in the runtime options file. docs/backends.md walks through this file.
//
// It is written against the public backend API only: everything of tsrt it uses arrives in `init` (the
// error classes and host helpers in `init.api`, the container's monitor in `init.host`). It imports node's
// own modules and nothing else.
//
// How gVisor maps onto the contract:
//   - `runsc create` leaves two host processes behind: the sandbox (`runsc-sandbox`, the gVisor kernel that
//     runs every process of the container) and its gofer. It is spawned by the container's monitor, so both
//     are re-parented to the monitor and reaped there. The pid runsc writes to --pid-file is the sandbox's;
//     it exits when the container's init exits, with the init's status: the init's exit is the sandbox's.
//   - `runsc exec` (run by the monitor) stays on the host, waiting for the process inside the sandbox, and
//     exits with its status, so an exec's exit is that host process's exit. It does not pass
//     signals on (SIGTERM kills the waiter, not the process), so an exec is signalled inside the sandbox:
//     `runsc kill --pid <pid in the sandbox>`, with the pid `--internal-pid-file` wrote.
//   - Stats: the sandbox runs in the container's host cgroups (runsc applies the spec's cgroupsPath and
//     limits to them), so Stats are those cgroups' Metrics, the same message runc containers give: what the
//     container costs the host, gVisor's kernel included. OOM kills of that cgroup are watched the same way.
//   - Pids: `runsc ps` lists pids inside the sandbox; the init and the execs are given as the host pids that
//     create and exec returned (so that `ctr task ps` still names the execs), the other processes by their
//     pids inside the sandbox, which have no host process of their own.
//   - update: this runsc (release 20221219) has no `update` command: UnimplementedError. pause/resume: yes.
//   - Pods: a CRI pod's containers would have to join the pod's sandbox (runsc does that from the CRI
//     annotations), and their exits are not host process exits; that is not implemented: such a Create is
//     refused with UnimplementedError. A pod sandbox container itself, and any standalone container, run.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

/** The contract version this file implements (BACKEND_API_VERSION). */
export const apiVersion = 2;

// Options: the options file's [backends.gvisor] table, checked here (CreateRequest.options, and
// AdoptRequest.options after a daemon restart):
//   binary    = "runsc"     the runsc executable (a name on PATH or a path); else the options' BinaryName
//                           when it names a runsc*, else runsc
//   platform  = "ptrace"    gVisor platform: ptrace works on every host (kvm needs a usable /dev/kvm)
/** gVisor platform by default. */
const DEFAULT_PLATFORM = 'ptrace';
/** The platforms this plugin lets through to runsc. */
const PLATFORMS = ['ptrace', 'kvm'];
/** The runtime binary, unless the options name another. */
const DEFAULT_BINARY = 'runsc';
/** State directory of runsc, next to the runc one: `<dirname(Root)>/runsc/<namespace>` (default /run/tsrt/runsc/<ns>). */
const STATE_DIR_NAME = 'runsc';
/** How long runsc may take to hand the pty master over after create/exec returned. */
const CONSOLE_WAIT_MS = 10_000;
/** How long `runsc exec` may take to start the process (it normally takes tens of milliseconds). */
const EXEC_START_MS = 30_000;
/** Exec ids become file names in the bundle; containerd validates them, this re-checks. */
const EXEC_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,75}$/;

/** The absolute path of `name` on PATH (runsc re-executes itself, and the monitor's PATH may differ). */
function resolveBinary(name) {
  if (name.includes('/')) return path.resolve(name);
  for (const dir of (process.env.PATH || '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin').split(':')) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch { /* not here */ }
  }
  return null;
}

/**
 * Runs a short runsc command from the daemon.
 * @returns {Promise<{code: number, stdout: string, stderr: string}>}
 */
function run(argv, cwd) {
  return new Promise((resolve) => {
    execFile(argv[0], argv.slice(1), { cwd, maxBuffer: 16 << 20, encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr: stderr || (err ? err.message : '') });
    });
  });
}

/**
 * The last error runsc logged. Its JSON log has one object per entry, not always separated by newlines.
 * @returns {string | null}
 */
function lastLoggedError(logFile) {
  let text;
  try {
    text = fs.readFileSync(logFile, 'utf8');
  } catch {
    return null;
  }
  const entries = text.split(/\n|(?<=\})(?=\{"msg")/);
  for (let i = entries.length - 1; i >= 0; i--) {
    try {
      const e = JSON.parse(entries[i]);
      if (e && e.level === 'error' && e.msg) return e.msg;
    } catch { /* partial or foreign line */ }
  }
  return null;
}

/**
 * runsc's --network for the bundle's spec. gVisor's own network stack (`sandbox`) takes over the interfaces
 * of a network namespace given by path (a CNI-made pod netns); it refuses to run in the host's namespace,
 * which is where a spec that asks for a new namespace without a path (`ctr run` without --net-host) leaves
 * it. Such a container gets what runc would give it, a namespace with only loopback: `none` (gVisor's
 * loopback only). A spec without a network namespace (`--net-host`) is `host`.
 */
function networkMode(bundle) {
  let spec;
  try {
    spec = JSON.parse(fs.readFileSync(path.join(bundle, 'config.json'), 'utf8'));
  } catch {
    return 'none';
  }
  const ns = (spec.linux?.namespaces ?? []).find((n) => n && n.type === 'network');
  if (!ns) return 'host';
  return ns.path ? 'sandbox' : 'none';
}

/**
 * @typedef {object} GvisorContainer
 * @property {string} bundle
 * @property {string} root           runsc --root
 * @property {string} binary         the runsc binary
 * @property {string} platform       its --platform
 * @property {string} network        its --network (networkMode)
 * @property {number} sandboxPid     host pid of the sandbox (the init's exit is its exit)
 * @property {boolean} initExited
 * @property {Map<string, {hostPid: number, sandboxPid: number}>} execs  live execs: the host `runsc exec` waiter and the pid inside
 * @property {object} cgroups        init.api.host.HostCgroups of the sandbox
 * @property {object} rootfs         init.api.host.HostRootfs: containerd's mounts on <bundle>/rootfs, which the gofer serves
 * @property {string} namespace
 * @property {object} config         the container's ContainerConfig (IoUid/IoGid for its stdio)
 * @property {object} log            the container's log
 */

/**
 * The factory: one instance per group (pod or standalone container), see docs/backends.md.
 * @param {object} init  the BackendInit of src/plugins/api (api, group, host, log, exited, oom, stateChanged)
 * @returns {object} a Backend
 */
export function createBackend(init) {
  const { host, api } = init;
  const { NotFoundError, RuntimeError, InvalidArgumentError, UnimplementedError } = api.errors;
  const { HostCgroups, HostRootfs, hostProcessIo } = api.host;
  if (api.version !== apiVersion) throw new Error(`written for backend API ${apiVersion}, the daemon offers ${api.version}`);
  // Refuse at once (with the reason, in the Create error) when runsc is not installed.
  if (!resolveBinary(DEFAULT_BINARY)) throw new Error(`${DEFAULT_BINARY} is not on PATH (apt-get install runsc)`);

  /** @type {Map<string, GvisorContainer>} */
  const containers = new Map();

  /** The [backends.gvisor] table, checked: unknown keys and wrong values are InvalidArgument naming them. */
  const optionsOf = (table) => {
    const o = table ?? {};
    const known = ['binary', 'platform'];
    const unknown = Object.keys(o).filter((k) => !known.includes(k));
    if (unknown.length > 0) throw new InvalidArgumentError(`[backends.gvisor]: unknown key ${unknown.join(', ')} (known: ${known.join(', ')})`);
    if (o.binary !== undefined && (typeof o.binary !== 'string' || !o.binary)) throw new InvalidArgumentError('[backends.gvisor]: binary must be a non-empty string');
    if (o.platform !== undefined && !PLATFORMS.includes(o.platform)) {
      throw new InvalidArgumentError(`[backends.gvisor]: platform must be one of ${PLATFORMS.join(', ')}, not ${JSON.stringify(o.platform)}`);
    }
    return { binary: o.binary, platform: o.platform ?? DEFAULT_PLATFORM };
  };

  const binaryFor = (config, options) => {
    const wanted = options.binary ?? (path.basename(config.binaryName).startsWith('runsc') ? config.binaryName : DEFAULT_BINARY);
    const found = resolveBinary(wanted);
    if (!found) throw new InvalidArgumentError(`gvisor backend: runtime binary ${JSON.stringify(wanted)} not found`);
    return found;
  };
  const rootFor = (config, namespace) => path.join(path.dirname(config.root), STATE_DIR_NAME, namespace);

  const track = (id, bundle, namespace, config, table, log, sandboxPid) => {
    const options = optionsOf(table);
    /** @type {GvisorContainer} */
    const c = {
      id, bundle, namespace, config, log, root: rootFor(config, namespace), binary: binaryFor(config, options), platform: options.platform,
      network: networkMode(bundle), sandboxPid, initExited: false,
      execs: new Map(), cgroups: new HostCgroups(log), rootfs: new HostRootfs(host, bundle),
    };
    containers.set(id, c);
    return c;
  };

  const containerOf = (id) => {
    const c = containers.get(id);
    if (!c) throw new NotFoundError(`container ${id} is not known to the gvisor backend`);
    return c;
  };

  const logFile = (c) => path.join(c.bundle, 'runsc-log.json');
  const globalArgs = (c) => [
    c.binary, '--root', c.root, `--platform=${c.platform}`, `--network=${c.network}`, `--log=${logFile(c)}`, '--log-format=json',
  ];

  const failure = (op, c, res) => {
    const detail = lastLoggedError(logFile(c)) ?? (res.stderr.trim().split('\n').pop() || `exit status ${res.code}`);
    return new RuntimeError(`OCI runtime ${op} failed: ${detail}`);
  };

  async function simple(op, id, args) {
    const c = containerOf(id);
    const res = await run([...globalArgs(c), ...args], c.bundle);
    if (res.code !== 0) throw failure(op, c, res);
    return res;
  }

  const readPid = (file, op) => {
    const pid = Number(fs.readFileSync(file, 'utf8').trim());
    if (!Number.isInteger(pid) || pid <= 0) throw new RuntimeError(`OCI runtime ${op} wrote a bad pid file ${file}`);
    return pid;
  };

  const execFiles = (bundle, execId) => {
    if (!EXEC_ID.test(execId)) throw new InvalidArgumentError(`invalid exec id ${JSON.stringify(execId)}`);
    const base = path.join(bundle, `gvisor-exec-${execId}`);
    return { sandboxPidFile: `${base}.sandbox-pid`, processFile: `${base}.process.json` };
  };

  /**
   * Monitor stdio for a runsc command from containerd's (FIFOs handed to runsc, which passes them to the
   * process in the sandbox): the process's own, or a console socket's for a terminal.
   */
  async function stdioFor(c, ioKey, stdio) {
    const { io, consoleSocket } = await hostProcessIo(host, {
      ioKey, containerId: c.id, namespace: c.namespace, stdio, uid: c.config.ioUid, gid: c.config.ioGid, log: c.log,
    });
    return { io, consoleArgs: consoleSocket ? [`--console-socket=${consoleSocket}`] : [] };
  }

  /**
   * `runsc create` from the monitor: it leaves the sandbox behind (re-parented to the monitor, which reaps
   * it) and exits once the container waits for start.
   */
  async function createThroughMonitor(c, ioKey, stdio, args) {
    const { io, consoleArgs } = await stdioFor(c, ioKey, stdio);
    const pid = await host.spawn({ ioKey, cwd: c.bundle, ...io, argv: [...globalArgs(c), 'create', ...consoleArgs, ...args] });
    const exit = await host.waitExit(pid);
    if (exit.status !== 0) throw failure('create', c, { code: exit.status, stdout: '', stderr: '' });
    if (stdio.terminal) await host.consoleWait(ioKey, CONSOLE_WAIT_MS);
  }

  /**
   * Resolves with the pid in `file` once runsc has written it, or with null if `exited` settles first.
   * Woken by the directory's change events, not by polling.
   */
  function pidFileOrExit(file, exited, timeoutMs) {
    return new Promise((resolve, reject) => {
      let done = false;
      const finish = (fn, v) => {
        if (done) return;
        done = true;
        watcher.close();
        clearTimeout(timer);
        fn(v);
      };
      const check = () => {
        let text = '';
        try {
          text = fs.readFileSync(file, 'utf8').trim();
        } catch { /* not yet */ }
        const pid = Number(text);
        if (text && Number.isInteger(pid) && pid > 0) finish(resolve, pid);
      };
      const watcher = fs.watch(path.dirname(file), (_ev, name) => {
        if (!name || name === path.basename(file)) check();
      });
      const timer = setTimeout(() => finish(reject, new RuntimeError(`OCI runtime exec did not start the process in ${timeoutMs} ms`)), timeoutMs);
      exited.then(() => { check(); finish(resolve, null); }, (e) => finish(reject, e));
      check();
    });
  }

  const watchInit = (id, c) => {
    host.waitExit(c.sandboxPid).then((e) => {
      c.initExited = true;
      init.exited(id, '', e);
    }, () => { /* the monitor is gone */ });
  };
  const watchExec = (id, c, execId, hostPid, exited = host.waitExit(hostPid)) => {
    exited.then((e) => {
      // kept until deleteExec: a signal to it is then "already finished", not "does not exist"
      const x = c.execs.get(execId);
      if (x && x.hostPid === hostPid) x.exited = true;
      init.exited(id, execId, e);
    }, () => { /* the monitor is gone */ });
  };

  return {
    name: 'gvisor',

    async create(req) {
      if (req.containerType === 'container') {
        throw new UnimplementedError('the gvisor backend runs standalone containers and pod sandboxes; containers joining a pod\'s gVisor sandbox are not implemented');
      }
      // On failure the container stays known: the core's delete(id, true) after a failed Create removes
      // what runsc made of it.
      const c = track(req.id, req.bundle, req.namespace, req.config, req.options, req.log, 0);
      fs.mkdirSync(c.root, { recursive: true, mode: 0o711 });
      // what the C `delete` binary runs after a dead daemon
      api.writeCleanupCommand(req.bundle, [c.binary, '--root', c.root, 'delete', '--force', req.id]);
      // the gofer serves the sandbox the host's <bundle>/rootfs
      await c.rootfs.mount(req.rootfs);
      const pidFile = path.join(req.bundle, 'init.pid');
      await createThroughMonitor(c, req.ioKey, req.stdio, [`--bundle=${req.bundle}`, `--pid-file=${pidFile}`, req.id]);
      c.sandboxPid = readPid(pidFile, 'create');
      watchInit(req.id, c);
      // before Start, so that no OOM kill is missed
      await c.cgroups.watch(host, req.id, c.sandboxPid, () => init.oom(req.id));
      return { pid: c.sandboxPid };
    },

    adopt({ id, bundle, namespace, config, options, log, pid, running, runningExecs, state }) {
      const c = track(id, bundle, namespace, config, options, log, pid);
      c.rootfs.adopt(state && typeof state === 'object' ? state.rootfsMounted : undefined);
      c.initExited = !running;
      if (running) watchInit(id, c);
      const inSandbox = (state && typeof state === 'object' && state.execs) || {};
      for (const e of runningExecs) {
        c.execs.set(e.execId, { hostPid: e.pid, sandboxPid: Number(inSandbox[e.execId]) || 0, exited: false });
        watchExec(id, c, e.execId, e.pid);
      }
    },

    stateOf(id) {
      const c = containers.get(id);
      if (!c) return undefined;
      const execs = {};
      for (const [execId, x] of c.execs) execs[execId] = x.sandboxPid;
      return { execs, rootfsMounted: c.rootfs.mounted };
    },

    async start(id) {
      await simple('start', id, ['start', id]);
    },

    async exec(req) {
      const c = containerOf(req.id);
      const { sandboxPidFile, processFile } = execFiles(c.bundle, req.execId);
      fs.writeFileSync(processFile, JSON.stringify(req.spec), { mode: 0o600 });
      fs.rmSync(sandboxPidFile, { force: true });
      try {
        // Not `runsc exec --detach`: to detach, runsc re-executes itself without every argument that
        // contains "detach", so a container id or bundle path with that word in it (a container named
        // "web-detached") breaks it. The monitor runs the waiting `runsc exec` itself instead: it writes
        // the pid inside the sandbox once the process runs, and exits with its status.
        const { io, consoleArgs } = await stdioFor(c, req.ioKey, req.stdio);
        const argv = [...globalArgs(c), 'exec', ...consoleArgs, `--process=${processFile}`, `--internal-pid-file=${sandboxPidFile}`, req.id];
        const hostPid = await host.spawn({ ioKey: req.ioKey, cwd: c.bundle, ...io, argv });
        const exited = host.waitExit(hostPid);
        const sandboxPid = await pidFileOrExit(sandboxPidFile, exited, EXEC_START_MS);
        // it exited before it wrote the pid: runsc failed (a process that ran and ended has written it)
        if (sandboxPid === null) throw failure('exec', c, { code: (await exited).status, stdout: '', stderr: '' });
        if (req.stdio.terminal) await host.consoleWait(req.ioKey, CONSOLE_WAIT_MS);
        c.execs.set(req.execId, { hostPid, sandboxPid, exited: false });
        watchExec(req.id, c, req.execId, hostPid, exited);
        init.stateChanged(req.id);
        return { pid: hostPid };
      } finally {
        fs.rmSync(processFile, { force: true });
      }
    },

    async deleteExec(id, execId) {
      const c = containers.get(id);
      if (!c) return;
      c.execs.delete(execId);
      const { sandboxPidFile, processFile } = execFiles(c.bundle, execId);
      for (const f of [sandboxPidFile, processFile]) fs.rmSync(f, { force: true });
      init.stateChanged(id);
    },

    async signal(id, execId, signal, all) {
      const c = containerOf(id);
      let args;
      if (execId) {
        const x = c.execs.get(execId);
        if (!x) throw new NotFoundError(`process does not exist ${execId}`);
        if (x.exited || c.initExited) throw new NotFoundError('process already finished');
        if (!x.sandboxPid) throw new RuntimeError(`the pid of exec ${execId} inside the sandbox is not known`);
        args = ['kill', '--pid', String(x.sandboxPid), id, String(signal)];
      } else {
        if (c.initExited) throw new NotFoundError('process already finished');
        args = ['kill', ...(all ? ['--all'] : []), id, String(signal)];
      }
      const res = await run([...globalArgs(c), ...args], c.bundle);
      if (res.code === 0) return;
      const why = lastLoggedError(logFile(c)) ?? res.stderr;
      if (/no such process|not running|stopped|finished|does not exist/i.test(why)) throw new NotFoundError('process already finished');
      throw new RuntimeError(`unknown error after kill: OCI runtime kill failed: ${why.trim()}`);
    },

    async delete(id, force) {
      const c = containers.get(id);
      if (!c) return;
      const res = await run([...globalArgs(c), 'delete', ...(force ? ['--force'] : []), id], c.bundle);
      if (res.code !== 0) {
        const why = lastLoggedError(logFile(c)) ?? res.stderr;
        if (!/does not exist|not found|file does not exist/i.test(why)) throw new RuntimeError(`OCI runtime delete failed: ${why.trim()}`);
      }
      await c.rootfs.unmount();
      containers.delete(id);
    },

    async pids(id) {
      const c = containerOf(id);
      const res = await simple('ps', id, ['ps', '--format', 'json', id]);
      const list = JSON.parse(res.stdout || '[]');
      if (!Array.isArray(list)) return [];
      const hostPidOf = new Map([[1, c.sandboxPid]]);
      for (const x of c.execs.values()) if (x.sandboxPid && !x.exited) hostPidOf.set(x.sandboxPid, x.hostPid);
      return list.map(Number).map((p) => hostPidOf.get(p) ?? p);
    },

    async pause(id) {
      await simple('pause', id, ['pause', id]);
    },

    async resume(id) {
      await simple('resume', id, ['resume', id]);
    },

    async update(id) {
      containerOf(id);
      throw new UnimplementedError('the gvisor backend cannot update resources: this runsc has no update command');
    },

    async stats(id) {
      const c = containerOf(id);
      return c.cgroups.stats(c.initExited ? 0 : c.sandboxPid);
    },

    async resizePty(ioKey, width, height) {
      await host.resize(ioKey, width, height);
    },

    async closeIo(ioKey) {
      await host.closeIo(ioKey);
    },
  };
}
