// The CRI test harness: one containerd per test file with its CRI plugin on (harness.ts's containerdForFile
// with `cri: true`), runtime handlers `runc` (io.containerd.runc.v2, the oracle), `tsrt`
// (io.containerd.tsrt.v2 with its runc backend) and `tsrt-native` (io.containerd.tsrt.v2 whose options file
// says Backend = "native", as a Kubernetes node's second RuntimeClass handler would), a CNI bridge network of this run only, a pause image of Debian's catatonit and the
// busybox image in the k8s.io namespace, and this host's settings (restrict_oom_score_adj: no
// CAP_SYS_RESOURCE; disable_hugetlb_controller: hugetlb is on the cgroup2 mount of a hybrid host).
//
// The network: a bridge named for this run (`tsrt` + 8 hex digits) with no address, on a /24 of 10.0.0.0/8
// that no route of the host covers, host-local addresses kept below the run's temp dir, no IP masquerade, no
// gateway and no routes: pods reach each other on the bridge and nothing else; no packet leaves the machine.
//
// Everything of a run is ours by name: cgroups below /tsrt-cri-<run> (each pod gets its own parent below it),
// the bridge, the CNI network name (and its result cache files), the netns of its sandboxes (recorded when
// they start). Teardown (even after failures): the pods still there are stopped and removed through CRI,
// then containerd and its shims go (harness.ts), then whatever is left of the above is removed.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  CMD_MS,
  DEFAULT_IMAGE,
  IMAGE_CACHE_DIR,
  RUNC_V2,
  TSRT_V2,
  WAIT_MS,
  buildBusyboxImage,
  containerdForFile,
  importImage,
  run,
  shimSocketPath,
  uniqueId,
  waitFor,
  type Containerd,
  type StartOptions,
} from '../harness.js';
import { CriClient, type ContainerConfig, type ContainerState, type ContainerStatus, type PodSandboxConfig } from './cri-client.js';
import { buildCatatonitImageFile } from './image.js';
import { listPids, readCmdline, readMountinfo } from './procfs.js';

export const CRI_NAMESPACE = 'k8s.io';
export const PAUSE_IMAGE = 'docker.io/tsrt/catatonit-pause:test';
export const BUSYBOX_IMAGE = DEFAULT_IMAGE;
/** The runtime handlers (keys of containerd's runtimes table) and their runtime types. */
export const HANDLERS = { runc: RUNC_V2, tsrt: TSRT_V2, 'tsrt-native': TSRT_V2 } as const;
export type Handler = keyof typeof HANDLERS;
/** The handlers a differential test runs through, runc first; TSRT_CRI_HANDLERS=tsrt (say) keeps runc and that one. */
export const HANDLER_NAMES = (Object.keys(HANDLERS) as Handler[]).filter((h) => {
  const only = process.env.TSRT_CRI_HANDLERS?.split(',').map((x) => x.trim());
  return h === 'runc' || !only || only.includes(h);
});

/**
 * Every handler's result of a differential scenario must equal runc's (checked by the caller against what
 * the scenario means first).
 */
export function sameAsRunc<T>(out: Partial<Record<Handler, T>>): void {
  for (const h of HANDLER_NAMES) {
    if (h !== 'runc') assert.deepEqual(out[h], out.runc, `${h} (actual) differs from runc-v2 (expected)`);
  }
}

const CRI = 'plugins."io.containerd.grpc.v1.cri"';
const CGROUP_ROOT = '/sys/fs/cgroup';
const CNI_BIN_DIR = '/usr/lib/cni';
const CNI_RESULTS_DIR = '/var/lib/cni/results';
const TSRT_CONSOLE_DIR = '/run/tsrt/console';

export interface CriSuiteOptions extends Omit<StartOptions, 'cri' | 'extraConfig'> {
  /** more TOML lines for the CRI plugin's table (inside [plugins."io.containerd.grpc.v1.cri"]) */
  criConfig?: string[];
  /** more runtimes: handler name → TOML lines of its table (runtime_type included) */
  runtimes?: Record<string, string[]>;
  /** TOML appended after the CRI plugin's tables */
  extraConfig?: string;
}

export interface CriNetwork {
  /** CNI network name */
  name: string;
  bridge: string;
  /** e.g. 10.213.7.0/24 */
  subnet: string;
}

/** A 10.x.y.0/24 that no address or route of the host covers. */
function pickSubnet(): string {
  const routes = execFileSync('ip', ['-4', '-o', 'route', 'show', 'table', 'all'], { encoding: 'utf8' }) +
    execFileSync('ip', ['-4', '-o', 'addr', 'show'], { encoding: 'utf8' });
  const used = [...routes.matchAll(/\b(\d+)\.(\d+)\.(\d+)\.(\d+)(?:\/(\d+))?/g)].map((m) => ({
    a: Number(m[1]) * 2 ** 24 + Number(m[2]) * 2 ** 16 + Number(m[3]) * 2 ** 8 + Number(m[4]),
    bits: m[5] === undefined ? 32 : Number(m[5]),
  }));
  for (let tries = 0; tries < 100; tries++) {
    const b = 200 + Math.floor(Math.random() * 50);
    const c = Math.floor(Math.random() * 256);
    const lo = 10 * 2 ** 24 + b * 2 ** 16 + c * 2 ** 8;
    const overlaps = used.some(({ a, bits }) => {
      if (bits === 0) return false; // the default route
      const size = 2 ** (32 - bits);
      const start = a - (a % size);
      return start < lo + 256 && lo < start + size;
    });
    if (!overlaps) return `10.${b}.${c}.0/24`;
  }
  throw new Error('no free 10.x.y.0/24 for the CRI test network');
}

function listDir(p: string): string[] {
  try {
    return readdirSync(p);
  } catch {
    return [];
  }
}

function readText(p: string): string | null {
  try {
    return readFileSync(p, 'utf8');
  } catch {
    return null;
  }
}

const isDir = (p: string) => {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
};

/** The directories of cgroup `path` (e.g. /tsrt-cri-x/pod) in every hierarchy of this host that has it. */
export function cgroupDirs(path: string): string[] {
  const out: string[] = [];
  if (existsSync(join(CGROUP_ROOT, path, 'cgroup.procs'))) out.push(join(CGROUP_ROOT, path)); // cgroup v2 host
  for (const h of listDir(CGROUP_ROOT)) {
    const d = join(CGROUP_ROOT, h, path);
    if (existsSync(join(d, 'cgroup.procs'))) out.push(d);
  }
  return out;
}

/** Every cgroup directory at or below `dir`, deepest first. */
function cgroupTree(dir: string): string[] {
  const out: string[] = [];
  for (const e of listDir(dir)) {
    const p = join(dir, e);
    if (isDir(p)) out.push(...cgroupTree(p));
  }
  out.push(dir);
  return out;
}

/** Kill every process in cgroup `path` (all hierarchies, sub-cgroups included) and remove its directories. */
async function removeCgroupTree(path: string, note: (m: string) => void): Promise<void> {
  const dirs = cgroupDirs(path).flatMap(cgroupTree);
  if (!dirs.length) return;
  for (const d of dirs) {
    if (existsSync(join(d, 'freezer.state'))) {
      try {
        writeFileSync(join(d, 'freezer.state'), 'THAWED');
      } catch {
        /* gone */
      }
    }
  }
  const pids = () => new Set(dirs.flatMap((d) => (readText(join(d, 'cgroup.procs')) ?? '').split('\n').filter(Boolean).map(Number)));
  try {
    await waitFor(() => {
      const left = [...pids()].filter((p) => p !== process.pid);
      for (const p of left) {
        try {
          process.kill(p, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      return left.length === 0;
    }, WAIT_MS, { what: `processes of cgroup ${path} gone` });
  } catch {
    note(`processes left in cgroup ${path}: ${[...pids()].join(' ')}`);
  }
  for (const d of dirs) {
    try {
      rmdirSync(d);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') note(`rmdir ${d}: ${(e as Error).message}`);
    }
  }
}

/** One line of a CRI container log: `<RFC3339Nano time> <stdout|stderr> <P|F> <text>`. */
export interface CriLogLine {
  time: string;
  stream: 'stdout' | 'stderr';
  /** P: a partial line (continued by the next record), F: the line's end */
  tag: 'P' | 'F';
  text: string;
}

const LOG_LINE = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)) (stdout|stderr) ([PF]) (.*)$/;

/** Parse a CRI log file; throws on a line that is not in the CRI format. */
export function parseCriLog(text: string): CriLogLine[] {
  return text.split('\n').filter(Boolean).map((l) => {
    const m = LOG_LINE.exec(l);
    if (!m) throw new Error(`not a CRI log line: ${JSON.stringify(l)}`);
    return { time: m[1]!, stream: m[2] as 'stdout' | 'stderr', tag: m[3] as 'P' | 'F', text: m[4]! };
  });
}

export interface PodOptions {
  /** pod name (made unique); also the prefix of the cgroup parent */
  name: string;
  /** namespace modes of the sandbox (default: all POD, with the CNI network) */
  namespaceOptions?: { network?: 'POD' | 'NODE'; pid?: 'POD' | 'CONTAINER' | 'NODE'; ipc?: 'POD' | 'NODE' };
  sysctls?: Record<string, string>;
  hostname?: string;
  labels?: Record<string, string>;
}

export interface ContainerOptions extends Omit<ContainerConfig, 'metadata' | 'image' | 'logPath'> {
  image?: string;
  attempt?: number;
}

/** A pod sandbox started through CRI, with helpers for its containers. Remove it with remove(). */
export class Pod {
  readonly containers = new Map<string, { name: string; attempt: number; logPath: string }>();
  netnsPath = '';
  removed = false;

  constructor(
    readonly suite: CriSuite,
    readonly handler: string,
    readonly id: string,
    readonly config: PodSandboxConfig,
    readonly logDir: string,
    readonly cgroupParent: string,
  ) {}

  get cri(): CriClient {
    return this.suite.cri();
  }

  /** CreateContainer, the way the kubelet names things: log `<name>/<attempt>.log`, metadata attempt. */
  async create(name: string, o: ContainerOptions = {}): Promise<string> {
    const attempt = o.attempt ?? 0;
    const { image, attempt: _a, ...rest } = o;
    const logPath = `${name}/${attempt}.log`;
    mkdirSync(join(this.logDir, name), { recursive: true });
    const cfg: ContainerConfig = { ...rest, metadata: { name, attempt }, image: { image: image ?? BUSYBOX_IMAGE }, logPath };
    const id = await this.cri.createContainer(this.id, cfg, this.config);
    this.containers.set(id, { name, attempt, logPath: join(this.logDir, logPath) });
    return id;
  }

  /** create() then StartContainer. */
  async start(name: string, o: ContainerOptions = {}): Promise<string> {
    const id = await this.create(name, o);
    await this.cri.startContainer(id);
    return id;
  }

  /** Wait until ContainerStatus shows `state`; returns that status. */
  async waitState(id: string, state: ContainerState, timeoutMs = WAIT_MS): Promise<ContainerStatus> {
    return waitFor(async () => {
      const s = await this.cri.containerStatus(id);
      return s.state === state ? s : null;
    }, timeoutMs, { what: `${this.containers.get(id)?.name ?? id} (${this.handler}) ${state}` });
  }

  /** Start a container and wait for it to exit; returns its status and log. */
  async runToExit(name: string, o: ContainerOptions = {}): Promise<{ id: string; status: ContainerStatus; log: CriLogLine[] }> {
    const id = await this.start(name, o);
    const status = await this.waitState(id, 'CONTAINER_EXITED');
    return { id, status, log: this.log(id) };
  }

  /** The container's CRI log, parsed (empty when there is no file yet). */
  log(id: string, path = this.containers.get(id)?.logPath): CriLogLine[] {
    if (!path) throw new Error(`no container ${id} in pod ${this.config.metadata.name}`);
    const text = readText(path);
    return text === null ? [] : parseCriLog(text);
  }

  /** The lines of the container's log, one string per full line (P records joined), with their stream. */
  logText(id: string, stream?: 'stdout' | 'stderr', path?: string): string[] {
    const out: string[] = [];
    let partial = '';
    for (const l of this.log(id, path)) {
      if (stream && l.stream !== stream) continue;
      partial += l.text;
      if (l.tag === 'F') {
        out.push(partial);
        partial = '';
      }
    }
    return out;
  }

  /** Wait until the container's log has a line matching `re` (the container says it is ready, etc.). */
  async waitLog(id: string, re: RegExp, timeoutMs = WAIT_MS, path?: string): Promise<string> {
    return waitFor(() => this.logText(id, undefined, path).find((l) => re.test(l)), timeoutMs, { what: `log of ${id} matching ${re}` });
  }

  /** The host pid of a running container's init (containerd's verbose info). */
  async pid(id: string): Promise<number> {
    return (await this.cri.containerInfo(id)).pid;
  }

  /** StopContainer (timeout seconds) then RemoveContainer. */
  async removeContainer(id: string, timeout = 0): Promise<void> {
    await this.cri.stopContainer(id, timeout);
    await this.cri.removeContainer(id);
  }

  /** StopPodSandbox then RemovePodSandbox. */
  async remove(): Promise<void> {
    await this.cri.stopPodSandbox(this.id);
    await this.cri.removePodSandbox(this.id);
    this.removed = true;
  }

  /** The shim socket containerd uses for this pod's containers (one shim per pod, keyed by the sandbox id). */
  shimSocket(): string {
    return shimSocketPath(this.suite.containerd().address, CRI_NAMESPACE, this.id);
  }

  /**
   * Live shim processes serving this pod: for runc-v2 `containerd-shim-runc-v2 ... -id <sandbox id>`, for tsrt the
   * monitor (a fork of `containerd-shim-tsrt-v2 ... -id <id> start`, same argv). Both start with the sandbox's
   * id; later containers join the same process.
   */
  shimPids(): number[] {
    const pids = this.suite.shimPids().filter((s) => this.ids().includes(s.id)).map((s) => s.pid);
    for (const p of pids) this.seenShims.add(p);
    return pids;
  }

  /** every shim pid shimPids() has seen for this pod (runPod looks once, after the sandbox started) */
  readonly seenShims = new Set<number>();

  /** The sandbox id and every container id this pod has had. */
  ids(): string[] {
    return [this.id, ...this.containers.keys()];
  }

  /**
   * What this pod left behind after RemovePodSandbox, one line per thing (empty: nothing): shim processes and
   * sockets, mounts naming one of its ids, cgroups below its parent, its netns, files named after its ids
   * below containerd's root and state (FIFOs, bundles, logs of containerd), runc and tsrt state of its ids.
   */
  leftovers(): string[] {
    const out: string[] = [];
    const c = this.suite.containerd();
    const ids = this.ids();
    for (const pid of this.shimPids()) out.push(`shim process ${pid}: ${readCmdline(pid).join(' ')}`);
    if (existsSync(this.shimSocket())) out.push(`shim socket ${this.shimSocket()}`);
    for (const m of readMountinfo()) {
      if (ids.some((id) => m.mountPoint.includes(id)) || (this.netnsPath && m.mountPoint === this.netnsPath)) out.push(`mount ${m.mountPoint}`);
    }
    for (const d of cgroupDirs(this.cgroupParent)) {
      for (const e of listDir(d)) if (isDir(join(d, e))) out.push(`cgroup ${join(d, e)}`);
    }
    if (this.netnsPath && existsSync(this.netnsPath)) out.push(`netns ${this.netnsPath}`);
    const walk = (dir: string, depth: number) => {
      for (const e of listDir(dir)) {
        const p = join(dir, e);
        if (ids.some((id) => e.includes(id))) out.push(`file ${p}`);
        else if (depth < 8 && e !== 'snapshots' && e !== 'content' && isDir(p)) walk(p, depth + 1);
      }
    };
    walk(c.rootDir, 0);
    walk(c.stateDir, 0);
    // a tsrt monitor's console sockets are named after its pid
    for (const f of listDir(TSRT_CONSOLE_DIR)) {
      if ([...this.seenShims].some((p) => f.startsWith(`${p}-`))) out.push(`console socket ${join(TSRT_CONSOLE_DIR, f)}`);
    }
    for (const root of ['/run/containerd/runc', '/run/tsrt/runc']) {
      for (const id of ids) if (existsSync(join(root, CRI_NAMESPACE, id))) out.push(`runtime state ${join(root, CRI_NAMESPACE, id)}`);
    }
    return out;
  }
}

export interface CriSuite {
  containerd(): Containerd;
  cri(): CriClient;
  readonly network: CriNetwork;
  /** the run's cgroup root (each pod's cgroup parent is below it) */
  readonly cgroupRoot: string;
  /** temp dir of the run: CNI config, pod logs, seccomp profiles */
  readonly dir: string;
  /** RunPodSandbox on `handler`; the harness removes the pod at the end if the test does not */
  runPod(handler: string, o: PodOptions): Promise<Pod>;
  /** live shim processes of this containerd's k8s.io namespace: pid and the -id they were started with */
  shimPids(): Array<{ pid: number; id: string; runtime: string }>;
  /** every pod started so far */
  pods(): Pod[];
}

/**
 * Start one containerd with CRI for the tests of a file (in `before`), tear it all down in `after`. Call at
 * the file's top level, like containerdForFile.
 */
export function criForFile(
  hooks: { before: (fn: () => Promise<void>) => void; after: (fn: () => Promise<void>) => void },
  opts: CriSuiteOptions = {},
): CriSuite {
  const run_ = uniqueId('cri').slice(-17).replace(/^-/, '');
  const dir = mkdtempSync(join(process.env.TSRT_TEST_TMPDIR ?? '/tmp', 'tsrt-cri-'));
  const hex = run_.replace(/[^0-9a-f]/g, '').slice(-8).padStart(8, '0');
  const network: CriNetwork = { name: `tsrt-cri-${hex}`, bridge: `tsrt${hex}`, subnet: pickSubnet() };
  const cgroupRoot = `/tsrt-cri-${hex}`;
  const cniConf = join(dir, 'cni', 'conf');
  mkdirSync(cniConf, { recursive: true });
  mkdirSync(join(dir, 'pods'), { recursive: true });
  writeFileSync(join(cniConf, '10-tsrt-test.conflist'), JSON.stringify({
    cniVersion: '0.4.0',
    name: network.name,
    plugins: [{
      type: 'bridge',
      bridge: network.bridge,
      isGateway: false,
      isDefaultGateway: false,
      ipMasq: false,
      hairpinMode: false,
      ipam: { type: 'host-local', ranges: [[{ subnet: network.subnet }]], routes: [], dataDir: join(dir, 'cni', 'ipam') },
    }],
  }, null, 2));

  const nativeOptions = join(dir, 'tsrt-native.toml');
  writeFileSync(nativeOptions, 'Backend = "native"\n');
  const runtimes: Record<string, string[]> = {
    runc: [`runtime_type = "${RUNC_V2}"`],
    tsrt: [`runtime_type = "${TSRT_V2}"`],
    'tsrt-native': [`runtime_type = "${TSRT_V2}"`, `[${CRI}.containerd.runtimes.tsrt-native.options]`, `  ConfigPath = "${nativeOptions}"`],
    ...opts.runtimes,
  };
  const extraConfig = [
    `[${CRI}]`,
    `  sandbox_image = "${PAUSE_IMAGE}"`,
    // no CAP_SYS_RESOURCE here: the sandbox's oom_score_adj -998 cannot be set
    '  restrict_oom_score_adj = true',
    // a hybrid cgroup host: hugetlb is bound to the cgroup2 mount, v1 has no hugetlb hierarchy
    '  disable_hugetlb_controller = true',
    ...(opts.criConfig ?? []).map((l) => `  ${l}`),
    `  [${CRI}.cni]`,
    `    bin_dir = "${CNI_BIN_DIR}"`,
    `    conf_dir = "${cniConf}"`,
    `  [${CRI}.containerd]`,
    '    default_runtime_name = "runc"',
    ...Object.entries(runtimes).flatMap(([name, lines]) => [
      `    [${CRI}.containerd.runtimes.${name}]`,
      ...lines.map((l) => `      ${l}`),
    ]),
    opts.extraConfig ?? '',
  ].join('\n');

  let client: CriClient | undefined;
  const pods: Pod[] = [];
  const wrapped = {
    before: (fn: () => Promise<void>) => hooks.before(async () => {
      await fn();
      const c = base.containerd();
      await buildBusyboxImage(c, BUSYBOX_IMAGE, CRI_NAMESPACE);
      await importImage(c, buildCatatonitImageFile(PAUSE_IMAGE, IMAGE_CACHE_DIR), CRI_NAMESPACE);
      client = new CriClient(c.address, CMD_MS);
      // the CRI is up and has loaded our network (the NetworkReady condition)
      await waitFor(async () => {
        const st = await client!.status();
        return st.status?.conditions.every((x) => x.status) ? st : null;
      }, CMD_MS, { what: 'CRI RuntimeReady and NetworkReady' });
    }),
    after: (fn: () => Promise<void>) => hooks.after(async () => {
      const problems: string[] = [];
      const note = (m: string) => problems.push(m);
      // 1. pods the tests left: through CRI, which tears down their network too
      if (client) {
        for (const p of pods.filter((x) => !x.removed)) {
          try {
            await client.call('StopPodSandbox', { podSandboxId: p.id }, CMD_MS);
            await client.call('RemovePodSandbox', { podSandboxId: p.id }, CMD_MS);
          } catch (e) {
            note(`removing pod ${p.config.metadata.name} (${p.handler}): ${(e as Error).message}`);
          }
        }
        client.close();
      }
      // 2. containerd, its shims, mounts and state (harness.ts)
      try {
        await fn();
      } catch (e) {
        note((e as Error).message);
      }
      // 3. what is ours outside containerd's dirs
      await removeCgroupTree(cgroupRoot, note);
      for (const p of pods) {
        if (p.netnsPath && existsSync(p.netnsPath)) {
          await run('umount', ['-l', p.netnsPath], { timeoutMs: 15_000 });
          try {
            rmSync(p.netnsPath, { force: true });
          } catch (e) {
            note(`rm ${p.netnsPath}: ${(e as Error).message}`);
          }
        }
      }
      if (existsSync(`/sys/class/net/${network.bridge}`)) {
        const r = await run('ip', ['link', 'del', network.bridge], { timeoutMs: 15_000 });
        if (r.code !== 0) note(`ip link del ${network.bridge}: ${r.stderr.trim()}`);
      }
      for (const f of listDir(CNI_RESULTS_DIR)) if (f.startsWith(`${network.name}-`)) rmSync(join(CNI_RESULTS_DIR, f), { force: true });
      rmSync(dir, { recursive: true, force: true });
      if (problems.length) throw new Error(`CRI harness teardown:\n  ${problems.join('\n  ')}`);
    }),
  };
  const base = containerdForFile(wrapped, { ...opts, cri: true, extraConfig });

  const suite: CriSuite = {
    containerd: base.containerd,
    cri() {
      if (!client) throw new Error('the CRI suite did not start');
      return client;
    },
    network,
    cgroupRoot,
    dir,
    pods: () => [...pods],
    async runPod(handler, o) {
      const name = uniqueId(o.name).slice(0, 63);
      const logDir = join(dir, 'pods', name);
      mkdirSync(logDir, { recursive: true });
      const cgroupParent = `${cgroupRoot}/${name}`;
      const ns = o.namespaceOptions ?? {};
      const config: PodSandboxConfig = {
        metadata: { name, uid: name, namespace: 'tsrt-cri', attempt: 0 },
        hostname: o.hostname ?? (ns.network === 'NODE' ? '' : name.slice(0, 63)),
        logDirectory: logDir,
        labels: { 'tsrt-test-run': hex, ...o.labels },
        linux: {
          cgroupParent,
          securityContext: { namespaceOptions: { network: ns.network ?? 'POD', pid: ns.pid ?? 'CONTAINER', ipc: ns.ipc ?? 'POD' } },
          sysctls: o.sysctls ?? {},
        },
      };
      const id = await suite.cri().runPodSandbox(config, handler);
      const pod = new Pod(suite, handler, id, config, logDir, cgroupParent);
      pods.push(pod);
      const info = await suite.cri().sandboxInfo(id);
      pod.netnsPath = info.runtimeSpec.linux?.namespaces?.find((n) => n.type === 'network')?.path ?? '';
      pod.shimPids();
      return pod;
    },
    shimPids() {
      const address = base.containerd().address;
      const out: Array<{ pid: number; id: string; runtime: string }> = [];
      for (const pid of listPids()) {
        const argv = readCmdline(pid);
        const bin = argv[0]?.split('/').pop() ?? '';
        if (!/^containerd-shim-(runc|tsrt)-v2$/.test(bin)) continue;
        const arg = (k: string) => {
          const i = argv.indexOf(k);
          return i >= 0 ? argv[i + 1] ?? '' : '';
        };
        if (arg('-address') !== address || arg('-namespace') !== CRI_NAMESPACE) continue;
        if (argv.includes('delete')) continue; // a shim's cleanup run, not a shim
        out.push({ pid, id: arg('-id'), runtime: bin });
      }
      return out;
    },
  };
  return suite;
}
