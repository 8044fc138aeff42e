// Integration-test harness: a private containerd per test file, a busybox image built from the
// host's busybox-static, and a stop() that removes everything the test left behind, even after a
// failure. Only processes, mounts and files positively identified as belonging to this harness's
// temp root are touched; nothing is ever killed by name.

import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
  rmdirSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { containerdUnderTest, type ContainerdDist } from './lib/containerd-dist.js';
import { buildBusyboxImageFile } from './lib/image.js';
import {
  isAlive,
  isUnder,
  listPids,
  listZombies,
  mountsUnder,
  processesWithCwdUnder,
  readCmdline,
  type CwdInfo,
  type ProcInfo,
} from './lib/procfs.js';

export { listZombies, mountsUnder, processesWithCwdUnder };
export type { CwdInfo, ProcInfo };

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const DEFAULT_SHIM_DIR = join(REPO_ROOT, 'native', 'build');
export const DEFAULT_NAMESPACE = 'tsrt-test';
export const DEFAULT_IMAGE = 'docker.io/tsrt/busybox:test';
export const RUNC_V2 = 'io.containerd.runc.v2';
export const TSRT_V2 = 'io.containerd.tsrt.v2';

/** Where shims put their sockets (hard-coded by runc-v2's convention, not containerd's state dir). */
const SHIM_SOCKET_DIR = '/run/containerd/s';
const CTR_FIFO_DIR = '/run/containerd/fifo';
const RUNC_V2_STATE_ROOT = '/run/containerd/runc';
const TSRT_RUN_DIR = '/run/tsrt';
const CGROUP_ROOT = '/sys/fs/cgroup';
const HYBRID_SUBTREE_CONTROL = '/sys/fs/cgroup/unified/cgroup.subtree_control';

const TASK_STATE_SUBDIR = 'io.containerd.runtime.v2.task';

// ---------------------------------------------------------------------------------------------
// small helpers

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Time limits of the tests. They are sized for a machine 3× slower than a quiet reference one and busy
 * with other work (`npm run test:load`): there a container start that takes 0.1 s quietly can take
 * 2–3 s. Every wait returns as soon as what it waits for has happened, so a generous limit costs time
 * only when a test fails.
 *
 * WAIT_MS: for a state the test has just caused (a task RUNNING or STOPPED, an event, a process gone).
 * CMD_MS: for one `ctr` command (a `ctr run` includes unpacking the rootfs and starting a shim).
 */
export const WAIT_MS = 30_000;
export const CMD_MS = 60_000;

/**
 * A container id that is unique across concurrently running harnesses (containers in one namespace
 * share runc's state root and cgroup parent, so ids must not collide between test runs).
 */
export function uniqueId(prefix = 't'): string {
  const clean = prefix.replace(/[^A-Za-z0-9]+/g, '-').replace(/^-+|-+$/g, '') || 't';
  return `${clean.slice(0, 40)}-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
}

/**
 * Poll `fn` until it returns a truthy value (which is returned), or throw after `timeoutMs`.
 * Errors thrown by `fn` count as "not yet"; the last one is reported on timeout.
 */
export async function waitFor<T>(
  fn: () => T | Promise<T>,
  timeoutMs = WAIT_MS,
  opts: { intervalMs?: number; what?: string } = {},
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  const interval = opts.intervalMs ?? 50;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() >= deadline) {
      const why = lastErr instanceof Error ? `: ${lastErr.message}` : '';
      throw new Error(`waitFor${opts.what ? ` (${opts.what})` : ''} timed out after ${timeoutMs} ms${why}`);
    }
    await sleep(interval);
  }
}

export const sha256hex = (s: string | Buffer) => createHash('sha256').update(s).digest('hex');

/** runc-v2's shim socket path for (grpc address, namespace, id). */
export function shimSocketPath(address: string, ns: string, id: string): string {
  return join(SHIM_SOCKET_DIR, sha256hex(`${address}/${ns}/${id}`));
}

/** tsrt daemon dir for a containerd (keyed by its ttrpc address), see docs/architecture.md. */
export function tsrtDaemonDir(ttrpcAddress: string): string {
  return join(TSRT_RUN_DIR, sha256hex(ttrpcAddress).slice(0, 16));
}

function tryKill(pid: number, sig: NodeJS.Signals = 'SIGKILL'): boolean {
  try {
    process.kill(pid, sig);
    return true;
  } catch {
    return false;
  }
}

function readText(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

function listDir(path: string): string[] {
  try {
    return readdirSync(path);
  } catch {
    return [];
  }
}

// ---------------------------------------------------------------------------------------------
// running commands

export interface CmdResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** true when the harness killed the command because it exceeded its timeout */
  timedOut: boolean;
}

export interface RunOptions {
  input?: string | Buffer;
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

/** Collect a child's output and exit; kills it (SIGKILL) after `timeoutMs` if given. */
export function collect(child: ChildProcess, timeoutMs?: number): Promise<CmdResult> {
  return new Promise((resolvePromise) => {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    let spawnError: Error | null = null;
    child.stdout?.on('data', (b: Buffer) => out.push(b));
    child.stderr?.on('data', (b: Buffer) => err.push(b));
    const timer =
      timeoutMs !== undefined && timeoutMs > 0
        ? setTimeout(() => {
            timedOut = true;
            child.kill('SIGKILL');
          }, timeoutMs)
        : null;
    child.on('error', (e) => {
      spawnError = e;
    });
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      let stderr = Buffer.concat(err).toString('utf8');
      if (spawnError) stderr += `\n[harness] spawn error: ${spawnError.message}`;
      if (timedOut) stderr += `\n[harness] killed after ${timeoutMs} ms timeout`;
      resolvePromise({ code, signal, stdout: Buffer.concat(out).toString('utf8'), stderr, timedOut });
    });
  });
}

/** Run a command to completion. Never throws for a non-zero exit; check `code`. */
export function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<CmdResult> {
  const child = spawn(cmd, args, {
    stdio: [opts.input !== undefined ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    env: opts.env ?? process.env,
    cwd: opts.cwd,
  });
  const result = collect(child, opts.timeoutMs ?? CMD_MS);
  if (opts.input !== undefined && child.stdin) {
    child.stdin.on('error', () => {}); // EPIPE when the command does not read its input
    child.stdin.end(opts.input);
  }
  return result;
}

function describe(cmd: string, r: CmdResult): string {
  const status = r.code !== null ? `exit ${r.code}` : `signal ${r.signal}`;
  return `${cmd}: ${status}\nstdout: ${r.stdout.trim()}\nstderr: ${r.stderr.trim()}`;
}

// ---------------------------------------------------------------------------------------------
// containerd

export interface CtrOptions extends RunOptions {
  /** namespace for this call (default: the harness namespace) */
  namespace?: string;
}

export type CtrChild = ChildProcess & { result: Promise<CmdResult> };

export interface StartOptions {
  /** directory put first on containerd's PATH (default <repo>/native/build) */
  shimDir?: string;
  /** default namespace for ctr calls (default 'tsrt-test') */
  namespace?: string;
  /** parent of the temp root (default $TSRT_TEST_TMPDIR or /tmp; must not be overlayfs) */
  tmpParent?: string;
  /** containerd log level (default 'debug') */
  logLevel?: string;
  /** extra environment for containerd (and so for every shim it starts) */
  env?: Record<string, string>;
  /** extra TOML appended to the generated config */
  extraConfig?: string;
  /** how long to wait for containerd to answer (default CMD_MS) */
  readyTimeoutMs?: number;
  /** which containerd to run (default: containerdUnderTest(), i.e. TSRT_CONTAINERD_BIN or the system's) */
  containerd?: ContainerdDist;
  /**
   * Run containerd (and so its shims and runtimes) in a private mount namespace whose /sys/fs/cgroup
   * is a cgroup2 mount: a unified host as far as they can tell, on this hybrid one. It is the same
   * cgroup2 hierarchy as the host's /sys/fs/cgroup/unified, where only unbound controllers work.
   */
  unifiedCgroups?: boolean;
  /**
   * Keep the CRI plugin (for tests that drive it through the CRI API; host-network pods need no CNI).
   * NRI, which it would start on the host-wide /var/run/nri socket, stays off.
   */
  cri?: boolean;
}

export interface Containerd {
  /** temp root; everything of this containerd lives below it */
  readonly root: string;
  /** containerd's root (content, snapshots, metadata) and state (bundles) dirs */
  readonly rootDir: string;
  readonly stateDir: string;
  readonly configPath: string;
  readonly logPath: string;
  readonly shimDir: string;
  /** the containerd release running (its binaries, version, where it came from) */
  readonly dist: ContainerdDist;
  /** gRPC socket path */
  readonly address: string;
  /** ttrpc socket path (TTRPC_ADDRESS as seen by shims) */
  readonly ttrpcAddress: string;
  readonly ns: string;
  /** pid of the running containerd, undefined while stopped */
  readonly pid: number | undefined;
  /**
   * Run `ctr --address <address> --namespace <ns> ...args` to completion (default timeout 60 s,
   * then SIGKILL and `timedOut`). Never throws for a non-zero exit.
   * Caveat of ctr 1.6: `run`/`task start` send CloseIO for stdin EOF only if the EOF is read after
   * the task was created (tasks_unix.go sets its closer after NewTask returns), so `input` given
   * here usually reaches the container but its EOF does not. A command that must see stdin EOF
   * (cat, wc) should be started with ctrSpawn() and have stdin written/ended once it is running.
   */
  ctr(args: string[], opts?: CtrOptions): Promise<CmdResult>;
  /** like ctr() but throws unless the exit code is 0; returns stdout */
  ctrOk(args: string[], opts?: CtrOptions): Promise<string>;
  /** start ctr in the background (stdio piped); the harness kills it in stop() if still running */
  ctrSpawn(args: string[], opts?: { namespace?: string; env?: NodeJS.ProcessEnv }): CtrChild;
  /** SIGKILL containerd and start it again with the same config (shims keep running) */
  restart(): Promise<void>;
  /** stop containerd (SIGKILL, or the signal given) and leave it down (its shims and containers stay); `up()` starts it again */
  down(signal?: NodeJS.Signals): Promise<void>;
  up(): Promise<void>;
  /** tear everything down; throws if something could not be cleaned up */
  stop(): Promise<void>;
  /** bundle directory containerd creates for a task */
  bundleDir(id: string, ns?: string): string;
  /** last `lines` lines of containerd's log */
  logTail(lines?: number): string;
  /** pids of this containerd's own processes: containerd, its shims and monitors, its tsrt daemons */
  ownPids(): number[];
}

function tomlString(s: string): string {
  return JSON.stringify(s); // JSON string escapes are valid TOML basic-string escapes
}

function pickTmpParent(explicit?: string): string {
  if (explicit) return explicit;
  if (process.env.TSRT_TEST_TMPDIR) return process.env.TSRT_TEST_TMPDIR;
  return '/tmp';
}

export async function startContainerd(opts: StartOptions = {}): Promise<Containerd> {
  const shimDir = resolve(opts.shimDir ?? DEFAULT_SHIM_DIR);
  const dist = opts.containerd ?? containerdUnderTest();
  const ctrBin = join(dist.binDir, 'ctr');
  const containerdBin = join(dist.binDir, 'containerd');
  const ns = opts.namespace ?? DEFAULT_NAMESPACE;
  const parent = pickTmpParent(opts.tmpParent);
  mkdirSync(parent, { recursive: true });
  const root = mkdtempSync(join(parent, 'tsrt-it-'));
  const rootDir = join(root, 'root');
  const stateDir = join(root, 'state');
  const address = join(root, 'containerd.sock');
  const ttrpcAddress = `${address}.ttrpc`;
  const configPath = join(root, 'config.toml');
  const logPath = join(root, 'containerd.log');

  const config = [
    'version = 2',
    `root = ${tomlString(rootDir)}`,
    `state = ${tomlString(stateDir)}`,
    // cri needs CNI and a config of its own; the others cannot work on ext4 without extra setup
    // (devmapper even logs an error), so they are left out.
    'disabled_plugins = [',
    opts.cri ? '  "io.containerd.nri.v1.nri",' : '  "io.containerd.grpc.v1.cri",',
    '  "io.containerd.snapshotter.v1.aufs",',
    '  "io.containerd.snapshotter.v1.btrfs",',
    '  "io.containerd.snapshotter.v1.devmapper",',
    '  "io.containerd.snapshotter.v1.zfs",',
    ']',
    '',
    '[grpc]',
    `  address = ${tomlString(address)}`,
    '',
    '[ttrpc]',
    `  address = ${tomlString(ttrpcAddress)}`,
    '',
    '[debug]',
    `  level = ${tomlString(opts.logLevel ?? 'debug')}`,
    '',
    '[plugins]',
    '  [plugins."io.containerd.internal.v1.opt"]',
    `    path = ${tomlString(join(root, 'opt'))}`,
    '',
    opts.extraConfig ?? '',
    '',
  ].join('\n');
  writeFileSync(configPath, config);

  const nodeDir = dirname(process.execPath);
  const basePath = process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
  // our shim first, then this release's own binaries (its containerd-shim-runc-v2 is the oracle)
  const pathParts = [shimDir, dist.binDir, ...basePath.split(':').filter((p) => p !== dist.binDir)];
  if (!pathParts.includes(nodeDir)) pathParts.push(nodeDir); // the tsrt daemon needs `node` on PATH
  const env: NodeJS.ProcessEnv = { ...process.env, ...opts.env, PATH: pathParts.join(':') };
  delete env.CONTAINERD_ADDRESS;
  delete env.CONTAINERD_NAMESPACE;

  let child: ChildProcess | null = null;
  let exited = true;
  const spawnedCtr = new Set<ChildProcess>();
  let stopping: Promise<void> | null = null;

  const ctrEnv = (extra?: NodeJS.ProcessEnv): NodeJS.ProcessEnv => {
    const e: NodeJS.ProcessEnv = { ...process.env, ...extra };
    delete e.CONTAINERD_ADDRESS;
    delete e.CONTAINERD_NAMESPACE;
    return e;
  };
  const ctrArgs = (args: string[], namespace?: string) => [
    '--address',
    address,
    '--namespace',
    namespace ?? ns,
    ...args,
  ];

  const ctr = (args: string[], o: CtrOptions = {}): Promise<CmdResult> =>
    run(ctrBin, ctrArgs(args, o.namespace), { ...o, env: ctrEnv(o.env) });

  const ctrOk = async (args: string[], o: CtrOptions = {}): Promise<string> => {
    const r = await ctr(args, o);
    if (r.code !== 0) throw new Error(describe(`ctr ${args.join(' ')}`, r));
    return r.stdout;
  };

  const ctrSpawn = (args: string[], o: { namespace?: string; env?: NodeJS.ProcessEnv } = {}): CtrChild => {
    const c = spawn(ctrBin, ctrArgs(args, o.namespace), { stdio: 'pipe', env: ctrEnv(o.env) });
    spawnedCtr.add(c);
    c.on('close', () => spawnedCtr.delete(c));
    c.stdin?.on('error', () => {});
    const result = collect(c);
    return Object.assign(c, { result });
  };

  const logTail = (lines = 50): string => {
    const text = readText(logPath) ?? '';
    return text.split('\n').slice(-lines - 1).join('\n');
  };

  const subtreeBefore = opts.unifiedCgroups ? readText(HYBRID_SUBTREE_CONTROL) : null;

  async function launch(): Promise<void> {
    const logFd = openSync(logPath, 'a');
    try {
      const [cmd, args] = opts.unifiedCgroups
        ? ['unshare', ['-m', '--propagation', 'private', '--', 'sh', '-c',
          'mount -t cgroup2 cgroup2 /sys/fs/cgroup && exec "$0" --config "$1"', containerdBin, configPath]]
        : [containerdBin, ['--config', configPath]];
      const c = spawn(cmd, args, {
        cwd: root,
        env,
        stdio: ['ignore', logFd, logFd],
      });
      child = c;
      exited = false;
      c.on('exit', () => {
        if (child === c) exited = true;
      });
      c.on('error', () => {
        if (child === c) exited = true;
      });
      c.unref();
    } finally {
      closeSync(logFd);
    }
    const deadline = Date.now() + (opts.readyTimeoutMs ?? CMD_MS);
    let last: CmdResult | null = null;
    for (;;) {
      if (exited) {
        throw new Error(`containerd exited during startup (config ${configPath})\n${logTail(40)}`);
      }
      if (existsSync(address)) {
        last = await run(ctrBin, ['--address', address, 'version'], { timeoutMs: 15_000, env: ctrEnv() });
        if (last.code === 0 && /Server:/.test(last.stdout)) return;
      }
      if (Date.now() > deadline) {
        throw new Error(
          `containerd did not answer on ${address}${last ? `\n${describe('ctr version', last)}` : ''}\n${logTail(40)}`,
        );
      }
      await sleep(50);
    }
  }

  async function killContainerd(first: NodeJS.Signals, graceMs: number): Promise<void> {
    const c = child;
    if (!c || exited || c.pid === undefined) return;
    tryKill(c.pid, first);
    try {
      await waitFor(() => exited, graceMs, { intervalMs: 20 });
    } catch {
      tryKill(c.pid, 'SIGKILL');
      await waitFor(() => exited, 10_000, { intervalMs: 20, what: 'containerd exit after SIGKILL' });
    }
  }

  const c: Containerd = {
    root,
    rootDir,
    stateDir,
    configPath,
    logPath,
    shimDir,
    dist,
    address,
    ttrpcAddress,
    ns,
    get pid() {
      return child && !exited ? child.pid : undefined;
    },
    ctr,
    ctrOk,
    ctrSpawn,
    async restart() {
      await killContainerd('SIGKILL', 10_000);
      await launch();
    },
    async down(signal: NodeJS.Signals = 'SIGKILL') {
      await killContainerd(signal, 10_000);
    },
    async up() {
      await launch();
    },
    stop() {
      if (process.env.TSRT_TEST_KEEP === '1') {
        // debugging aid: leave containerd, shims and files in place
        process.stderr.write(`[harness] TSRT_TEST_KEEP=1: leaving ${root} (containerd pid ${c.pid})\n`);
        return Promise.resolve();
      }
      stopping ??= teardown();
      return stopping;
    },
    bundleDir(id: string, namespace?: string) {
      return join(stateDir, TASK_STATE_SUBDIR, namespace ?? ns, id);
    },
    logTail,
    ownPids() {
      const pids = new Set([...processesWithCwdUnder(root).map((p) => p.pid), ...daemonPids()]);
      if (c.pid !== undefined) pids.add(c.pid);
      return [...pids];
    },
  };

  // -------------------------------------------------------------------------------------------
  // teardown

  async function teardown(): Promise<void> {
    const problems: string[] = [];
    const note = (msg: string) => problems.push(msg);

    // 1. background ctr processes started by the test
    for (const p of spawnedCtr) {
      if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    }

    // 2. ask containerd to kill and delete everything, remembering every (ns, id) it knows
    const known = new Map<string, Set<string>>(); // ns -> ids
    const remember = (n: string, id: string) => {
      if (!id) return;
      let s = known.get(n);
      if (!s) known.set(n, (s = new Set()));
      s.add(id);
    };
    known.set(ns, new Set()); // the default namespace is always visited below
    if (!exited) {
      try {
        await cleanupViaCtr(remember);
      } catch (e) {
        note(`ctr cleanup: ${(e as Error).message}`);
      }
    }
    for (const [n, id] of bundlesOnDisk()) remember(n, id);

    // 3. containerd itself
    try {
      await killContainerd('SIGTERM', 5000);
    } catch (e) {
      note(`containerd did not exit: ${(e as Error).message}`);
    }

    // 4. runtime state of our containers (kills container processes, removes runc state + cgroups)
    const bundleInfo = collectBundleInfo(known);
    await cleanupRuntimeState(known, bundleInfo, note);

    // 5. shims / monitors (cwd under our root) and the tsrt daemon; loop because a monitor may
    //    respawn the daemon until it is gone itself
    await killLeftoverProcesses(note);

    // 6. container processes still in the cgroups of our containers
    await cleanupCgroups(known, note);
    await killLeftoverProcesses(note);
    // controllers that runtimes enabled in the hybrid host's cgroup2 root, taken as their unified root
    if (subtreeBefore !== null) {
      const now = (readText(HYBRID_SUBTREE_CONTROL) ?? '').split(/\s+/).filter(Boolean);
      const before = new Set(subtreeBefore.split(/\s+/).filter(Boolean));
      for (const ctl of now) if (!before.has(ctl)) writeQuiet(HYBRID_SUBTREE_CONTROL, `-${ctl}`);
    }

    // 7. mounts under the root
    await unmountAll(note);

    // 8. files outside the root: shim sockets, ctr FIFO dirs, tsrt daemon dir
    for (const [n, ids] of known) {
      for (const id of ids) {
        rmQuiet(shimSocketPath(address, n, id));
      }
    }
    for (const info of bundleInfo) {
      const a = info.address?.replace(/^unix:\/\//, '');
      if (a && a.startsWith(SHIM_SOCKET_DIR + '/') && isSocket(a)) rmQuiet(a);
    }
    cleanupFifoDirs(known);
    rmQuiet(tsrtDaemonDir(ttrpcAddress));

    // 9. the root itself, but never while something is still mounted below it
    const left = mountsUnder(root);
    if (left.length) {
      note(`mounts still present, not removing ${root}: ${left.join(', ')}`);
    } else {
      try {
        rmSync(root, { recursive: true, force: true, maxRetries: 3 });
      } catch (e) {
        note(`rm -rf ${root}: ${(e as Error).message}`);
      }
    }

    const procs = processesWithCwdUnder(root);
    if (procs.length) note(`processes still running under ${root}: ${JSON.stringify(procs)}`);
    if (problems.length) throw new Error(`harness stop(): incomplete cleanup:\n  ${problems.join('\n  ')}`);
  }

  async function cleanupViaCtr(remember: (n: string, id: string) => void): Promise<void> {
    const t = { timeoutMs: 15_000 };
    const nsList = await ctr(['namespaces', 'ls', '-q'], t);
    const namespaces = new Set([ns, ...nsList.stdout.split('\n').map((s) => s.trim()).filter(Boolean)]);
    for (const n of namespaces) {
      const o = { ...t, namespace: n };
      const tasks = (await ctr(['task', 'ls', '-q'], o)).stdout.split('\n').map((s) => s.trim()).filter(Boolean);
      const containers = (await ctr(['containers', 'ls', '-q'], o)).stdout
        .split('\n')
        .map((s) => s.trim())
        .filter(Boolean);
      for (const id of [...tasks, ...containers]) remember(n, id);
      await Promise.all(
        tasks.map(async (id) => {
          await ctr(['task', 'kill', '-s', 'SIGKILL', id], o);
          await ctr(['task', 'delete', '--force', id], { ...o, timeoutMs: 20_000 });
        }),
      );
      if (containers.length) await ctr(['containers', 'rm', ...containers], o);
    }
  }

  function bundlesOnDisk(): Array<[string, string]> {
    const out: Array<[string, string]> = [];
    const base = join(stateDir, TASK_STATE_SUBDIR);
    for (const n of listDir(base)) {
      for (const id of listDir(join(base, n))) {
        out.push([n, id.replace(/^\./, '')]); // containerd renames to .<id> while deleting
      }
    }
    return out;
  }

  interface BundleInfo {
    ns: string;
    id: string;
    address: string | null;
    runtimeBinary: string | null;
    runtimeRoot: string | null;
  }

  function collectBundleInfo(known: Map<string, Set<string>>): BundleInfo[] {
    const out: BundleInfo[] = [];
    for (const [n, ids] of known) {
      for (const id of ids) {
        const dir = c.bundleDir(id, n);
        // the backend's cleanup command (`<binary> --root <root> delete --force <id>`), or an older
        // daemon's tsrt-runtime lines
        const cleanup = (readText(join(dir, 'tsrt-cleanup')) ?? '').split('\n').filter(Boolean);
        const rootAt = cleanup.indexOf('--root');
        const tsrt = readText(join(dir, 'tsrt-runtime')) ?? '';
        const field = (k: string) => {
          const m = new RegExp(`^${k}=(.*)$`, 'm').exec(tsrt);
          return m?.[1]?.trim() || null;
        };
        out.push({
          ns: n,
          id,
          address: readText(join(dir, 'address'))?.trim() ?? null,
          runtimeBinary: rootAt > 0 ? cleanup[rootAt - 1]! : field('binary'),
          runtimeRoot: rootAt > 0 ? cleanup[rootAt + 1] ?? null : field('root'),
        });
      }
    }
    return out;
  }

  /** The runtime's state for `id` under `stateRoot` mentions our temp root (so it is ours). */
  function ownedRuntimeState(stateRoot: string, id: string): boolean {
    const dir = join(stateRoot, id);
    for (const f of ['state.json', 'status', 'config.json']) {
      const t = readText(join(dir, f));
      if (t && t.includes(root + '/')) return true;
    }
    return false;
  }

  async function cleanupRuntimeState(
    known: Map<string, Set<string>>,
    infos: BundleInfo[],
    note: (m: string) => void,
  ): Promise<void> {
    const jobs: Array<{ binary: string; stateRoot: string; id: string }> = [];
    for (const [n, ids] of known) {
      for (const id of ids) jobs.push({ binary: 'runc', stateRoot: join(RUNC_V2_STATE_ROOT, n), id });
    }
    for (const i of infos) {
      if (i.runtimeRoot) jobs.push({ binary: i.runtimeBinary ?? 'runc', stateRoot: i.runtimeRoot, id: i.id });
    }
    for (const j of jobs) {
      const dir = join(j.stateRoot, j.id);
      if (!existsSync(dir) || !ownedRuntimeState(j.stateRoot, j.id)) continue;
      const r = await run(j.binary, ['--root', j.stateRoot, 'delete', '--force', j.id], { timeoutMs: 15_000 });
      if (existsSync(dir)) {
        // the runtime could not do it: remove the state ourselves (processes are handled by cgroup)
        if (r.code !== 0) note(`${j.binary} delete --force ${j.id}: ${r.stderr.trim()}`);
        rmQuiet(dir);
      }
    }
  }

  function cgroupDirsFor(n: string, id: string): string[] {
    const out: string[] = [];
    const direct = join(CGROUP_ROOT, n, id); // cgroup v2-only host
    if (existsSync(join(direct, 'cgroup.procs'))) out.push(direct);
    for (const h of listDir(CGROUP_ROOT)) {
      const d = join(CGROUP_ROOT, h, n, id);
      if (existsSync(join(d, 'cgroup.procs'))) out.push(d);
    }
    return out;
  }

  async function cleanupCgroups(known: Map<string, Set<string>>, note: (m: string) => void): Promise<void> {
    for (const [n, ids] of known) {
      for (const id of ids) {
        const dirs = cgroupDirsFor(n, id);
        if (!dirs.length) continue;
        for (const d of dirs) {
          // a frozen cgroup would never deliver SIGKILL
          if (existsSync(join(d, 'freezer.state'))) writeQuiet(join(d, 'freezer.state'), 'THAWED');
          if (existsSync(join(d, 'cgroup.freeze'))) writeQuiet(join(d, 'cgroup.freeze'), '0');
        }
        const pidsIn = () =>
          new Set(
            dirs.flatMap((d) =>
              (readText(join(d, 'cgroup.procs')) ?? '')
                .split('\n')
                .filter(Boolean)
                .map(Number)
                .filter((p) => p !== process.pid),
            ),
          );
        try {
          await waitFor(
            () => {
              const pids = pidsIn();
              for (const p of pids) tryKill(p);
              return pids.size === 0;
            },
            WAIT_MS,
            { intervalMs: 50 },
          );
        } catch {
          note(`processes left in cgroup ${n}/${id}: ${[...pidsIn()].join(' ')}`);
        }
        // children first (a container may have made sub-cgroups), then the container cgroup
        for (const d of dirs) rmdirTree(d);
      }
      // the namespace-level parent: only if nothing else (another harness) uses it
      for (const h of ['', ...listDir(CGROUP_ROOT)]) {
        const d = join(CGROUP_ROOT, h, n);
        if (existsSync(join(d, 'cgroup.procs'))) {
          try {
            rmdirSync(d);
          } catch {
            /* busy: still in use */
          }
        }
      }
    }
  }

  /**
   * The tsrt daemons serving this containerd: the one named in daemon.pid, and any other daemon process
   * whose environment names our ttrpc address (one a monitor started again after the first was killed).
   */
  function daemonPids(): number[] {
    const found = new Set<number>();
    const t = readText(join(tsrtDaemonDir(ttrpcAddress), 'daemon.pid'));
    const named = t ? Number(t.trim()) : NaN;
    if (Number.isInteger(named) && named > 1 && isAlive(named)) found.add(named);
    for (const pid of listPids()) {
      if (pid === process.pid) continue;
      if (!readCmdline(pid).join(' ').includes('tsrt-daemon')) continue;
      const env = readText(`/proc/${pid}/environ`);
      if (env && env.split('\0').includes(`TTRPC_ADDRESS=${ttrpcAddress}`)) found.add(pid);
    }
    return [...found].filter((pid) => pid !== process.pid && readCmdline(pid).join(' ').includes('tsrt-daemon'));
  }

  async function killLeftoverProcesses(note: (m: string) => void): Promise<void> {
    const deadline = Date.now() + WAIT_MS;
    let quietRounds = 0;
    while (quietRounds < 2) {
      const victims = processesWithCwdUnder(root).map((p) => p.pid);
      victims.push(...daemonPids());
      const live = victims.filter((p) => isAlive(p));
      if (live.length === 0) {
        quietRounds++;
      } else {
        quietRounds = 0;
        for (const p of live) tryKill(p);
      }
      if (Date.now() > deadline) {
        note(`could not kill: ${live.join(' ')}`);
        return;
      }
      await sleep(live.length ? 50 : 20);
    }
  }

  async function unmountAll(note: (m: string) => void): Promise<void> {
    for (let pass = 0; pass < 5; pass++) {
      const points = mountsUnder(root);
      if (!points.length) return;
      for (const p of points) {
        const r = await run('umount', ['-l', p], { timeoutMs: 15_000 });
        if (r.code !== 0 && pass === 4) note(`umount -l ${p}: ${r.stderr.trim()}`);
      }
    }
  }

  function cleanupFifoDirs(known: Map<string, Set<string>>): void {
    const ids = new Set([...known.values()].flatMap((s) => [...s]));
    if (!ids.size) return;
    for (const d of listDir(CTR_FIFO_DIR)) {
      const dir = join(CTR_FIFO_DIR, d);
      const entries = listDir(dir);
      if (!entries.length) continue;
      const ours = entries.every((e) => {
        const m = /^(.*)-(stdin|stdout|stderr)$/.exec(e);
        return m !== null && ids.has(m[1] ?? '');
      });
      if (ours) rmQuiet(dir);
    }
  }

  try {
    await launch();
  } catch (e) {
    try {
      await c.stop();
    } catch {
      /* report the startup error */
    }
    throw e;
  }
  return c;
}

function isSocket(p: string): boolean {
  try {
    return lstatSync(p).isSocket();
  } catch {
    return false;
  }
}

function rmQuiet(p: string): void {
  try {
    rmSync(p, { recursive: true, force: true });
  } catch {
    /* best effort */
  }
}

function writeQuiet(p: string, data: string): void {
  try {
    writeFileSync(p, data);
  } catch {
    /* best effort */
  }
}

/** rmdir a cgroup directory and any child cgroups (cgroupfs only allows rmdir, bottom-up). */
function rmdirTree(dir: string): void {
  for (const e of listDir(dir)) {
    const p = join(dir, e);
    try {
      if (statSync(p).isDirectory()) rmdirTree(p);
    } catch {
      /* vanished */
    }
  }
  try {
    rmdirSync(dir);
  } catch {
    /* busy or gone */
  }
}

// ---------------------------------------------------------------------------------------------
// images

export const IMAGE_CACHE_DIR = process.env.TSRT_TEST_CACHE ?? '/var/tmp/tsrt-test-cache';

/**
 * Build a one-layer busybox image (cached under IMAGE_CACHE_DIR) and import it into `c`'s
 * namespace as `ref`. Returns the ref.
 */
export async function buildBusyboxImage(c: Containerd, ref = DEFAULT_IMAGE, namespace?: string, cmd?: string[]): Promise<string> {
  return importImage(c, buildBusyboxImageFile(ref, IMAGE_CACHE_DIR, undefined, cmd), namespace);
}

/** Import an image-layout archive of lib/image.ts into `c`'s namespace (default: the harness's); returns its ref. */
export async function importImage(c: Containerd, file: { path: string; ref: string }, namespace?: string): Promise<string> {
  const o = { timeoutMs: 120_000, namespace };
  // the archive carries io.containerd.image.name = ref, which ctr 1.6 uses verbatim; no
  // --base-name (that would filter by prefix) and no --digests needed
  await c.ctrOk(['images', 'import', file.path], o);
  const names = (await c.ctrOk(['images', 'ls', '-q'], o)).split('\n').map((s) => s.trim());
  if (!names.includes(file.ref)) {
    throw new Error(`image import did not create ${file.ref}; images: ${names.filter(Boolean).join(', ')}`);
  }
  return file.ref;
}

/**
 * The INFO column `ctr task ps` prints for an exec process (runc-v2's ProcessDetails, as tsrt sends it
 * too): ctr 1.6 prints the gogo struct `&ProcessDetails{ExecID:ID,XXX_unrecognized:[],}`, ctr 1.7 and
 * 2.x the text form `exec_id:"ID"`.
 */
export function psExecInfo(c: Containerd, execId: string): string {
  return c.dist.release[0] === 1 && c.dist.release[1] <= 6
    ? `&ProcessDetails{ExecID:${execId},XXX_unrecognized:[],}`
    : `exec_id:"${execId}"`;
}

/** The STATUS column of `ctr task ls` for one task (undefined when the task is not listed). */
export async function taskStatus(c: Containerd, id: string): Promise<string | undefined> {
  const r = await c.ctr(['task', 'ls']);
  for (const line of r.stdout.split('\n').slice(1)) {
    const [task, , status] = line.trim().split(/\s+/);
    if (task === id) return status;
  }
  return undefined;
}

/**
 * Best effort, for finally blocks and teardown: SIGKILL the task, force-delete it, remove the container.
 * Never throws; whatever it cannot remove, the harness's stop() still cleans up.
 */
export async function removeContainer(c: Containerd, id: string): Promise<void> {
  await c.ctr(['task', 'kill', '-s', 'SIGKILL', id], { timeoutMs: WAIT_MS });
  await c.ctr(['task', 'delete', '--force', id], { timeoutMs: CMD_MS });
  await c.ctr(['containers', 'rm', id], { timeoutMs: WAIT_MS });
}

/**
 * One containerd with the busybox image for the tests of a file: started in a `before` hook, stopped
 * (and everything cleaned up) in an `after` hook even when tests failed.
 */
export function containerdForFile(
  hooks: { before: (fn: () => Promise<void>) => void; after: (fn: () => Promise<void>) => void },
  opts: StartOptions = {},
): {
  containerd(): Containerd;
  image(): string;
} {
  let c: Containerd | undefined;
  let image = '';
  hooks.before(async () => {
    c = await startContainerd(opts);
    image = await buildBusyboxImage(c);
  });
  hooks.after(async () => {
    await c?.stop();
  });
  return {
    containerd() {
      if (!c) throw new Error('containerd did not start');
      return c;
    },
    image: () => image,
  };
}

// ---------------------------------------------------------------------------------------------
// events and terminals (used by the differential tests)

/** One line of `ctr events`. */
export interface CtrEvent {
  /** e.g. '/tasks/exit' */
  topic: string;
  namespace: string;
  /** the decoded event as ctr printed it (JSON); {} when ctr printed nothing decodable */
  payload: Record<string, unknown>;
  /** the line as printed */
  line: string;
}

export interface EventWatcher {
  /** every event seen so far, in arrival order */
  all(): CtrEvent[];
  /** `/tasks/...` events of one container (matched on `container_id`), in arrival order */
  tasks(containerId: string): CtrEvent[];
  /** resolve with the first event (seen before or after the call) matching `pred`; throw after `timeoutMs` */
  waitFor(pred: (e: CtrEvent) => boolean, timeoutMs?: number, what?: string): Promise<CtrEvent>;
  /** stop the `ctr events` process */
  stop(): Promise<void>;
}

const EVENT_LINE = /^(.*? UTC) (\S+) (\/\S+)(?: (.*))?$/;

/**
 * Start `ctr events` and return once it is subscribed (proven by seeing a namespace-label update
 * it caused itself), so no event of what the caller does next can be missed.
 */
export async function watchEvents(c: Containerd, timeoutMs = WAIT_MS): Promise<EventWatcher> {
  const child = c.ctrSpawn(['events']);
  const events: CtrEvent[] = [];
  let partial = '';
  child.stdout!.on('data', (b: Buffer) => {
    const text = partial + b.toString('utf8');
    const lines = text.split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      const m = EVENT_LINE.exec(line);
      if (!m) continue;
      let payload: Record<string, unknown> = {};
      try {
        const v: unknown = m[4] ? JSON.parse(m[4]) : {};
        if (v && typeof v === 'object') payload = v as Record<string, unknown>;
      } catch {
        /* not JSON: keep the line only */
      }
      events.push({ namespace: m[2] ?? '', topic: m[3] ?? '', payload, line });
    }
  });
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await child.result;
  };
  const watcher: EventWatcher = {
    all: () => [...events],
    tasks: (id) => events.filter((e) => e.topic.startsWith('/tasks/') && e.payload.container_id === id),
    async waitFor(pred, ms = WAIT_MS, what) {
      return waitFor(() => events.find(pred), ms, { intervalMs: 20, what: what ?? 'event' });
    },
    stop,
  };
  // the probe: a label whose value nobody else uses; repeated until the subscription shows it
  const key = 'tsrt-events-probe';
  const value = randomBytes(6).toString('hex');
  try {
    await waitFor(
      async () => {
        if (child.exitCode !== null) throw new Error(`ctr events exited: ${(await child.result).stderr.trim()}`);
        await c.ctrOk(['namespaces', 'label', c.ns, `${key}=${value}`]);
        return events.some((e) => e.topic === '/namespaces/update' && e.line.includes(value));
      },
      timeoutMs,
      { intervalMs: 100, what: 'ctr events subscribed' },
    );
    await c.ctr(['namespaces', 'label', c.ns, key]); // remove the label again
  } catch (e) {
    await stop();
    throw e;
  }
  return watcher;
}

/**
 * Shell words for a container with a terminal: wait until `ctr` has sized the terminal. ctr sends the
 * window size (ResizePty) only after the task or exec has started, so a process that asks at once finds
 * a 0x0 terminal (busybox `stty size` then prints an error, and still exits 0); this waits for that
 * request instead of sleeping.
 */
export const AWAIT_TTY_SIZE = "until stty size 2>/dev/null | grep -q '^[1-9]'; do sleep 0.05; done;";

/**
 * Wait until process `pid` has a handler for SIGUSR1 (its shell ran `trap … USR1`). RUNNING comes before
 * the shell gets that far; a SIGUSR1 sent earlier is dropped by a pid 1 without a handler (or kills any
 * other process), so a test that ends a container with it waits for the handler the kernel reports in
 * SigCgt.
 */
export async function usr1Trapped(pid: number): Promise<void> {
  const SIGUSR1 = 10n;
  await waitFor(() => {
    const m = /^SigCgt:\s*([0-9a-f]+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m !== null && ((BigInt(`0x${m[1]}`) >> (SIGUSR1 - 1n)) & 1n) === 1n;
  }, WAIT_MS, { what: `a SIGUSR1 trap in ${pid}` });
}

/** Quote for a POSIX shell command line. */
export const shellQuote = (s: string): string => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

export interface TerminalOptions {
  /** window size set on the terminal ctr runs in (default 80x24) */
  cols?: number;
  rows?: number;
  timeoutMs?: number;
  namespace?: string;
  /** typed into the terminal: each string after `typeDelayMs` (default 1000 ms) more; nothing by default */
  type?: string[];
  typeDelayMs?: number;
}

/**
 * Run `ctr ... args` with a terminal as its stdin/stdout (for `-t`), under util-linux `script`.
 * The window size is set with stty before ctr starts. script's own stdin is a pipe that is never
 * closed; it is written only with `opts.type`, so otherwise nothing is typed into the container's terminal. Resolves with what the
 * terminal showed (stdout) and ctr's exit code (script -e passes it on).
 */
export function ctrInTerminal(c: Containerd, args: string[], opts: TerminalOptions = {}): Promise<CmdResult> {
  const ctrLine = [join(c.dist.binDir, 'ctr'), '--address', c.address, '--namespace', opts.namespace ?? c.ns, ...args].map(shellQuote).join(' ');
  const cmd = `stty cols ${opts.cols ?? 80} rows ${opts.rows ?? 24} && exec ${ctrLine}`;
  const env: NodeJS.ProcessEnv = { ...process.env, TERM: 'xterm' };
  delete env.CONTAINERD_ADDRESS;
  delete env.CONTAINERD_NAMESPACE;
  const child = spawn('script', ['-qec', cmd, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'], env });
  child.stdin?.on('error', () => {});
  const result = collect(child, opts.timeoutMs ?? 60_000);
  let typing: NodeJS.Timeout | undefined;
  const typeNext = (rest: string[]) => {
    if (rest.length === 0) return;
    typing = setTimeout(() => {
      child.stdin?.write(rest[0]!);
      typeNext(rest.slice(1));
    }, opts.typeDelayMs ?? 1000);
  };
  typeNext(opts.type ?? []);
  return result.finally(() => {
    clearTimeout(typing);
    child.stdin?.destroy();
  });
}
