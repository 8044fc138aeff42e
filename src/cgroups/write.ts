// The write side of cgroups, for backends that run containers themselves (native): make a container's
// cgroup directories, apply linux.resources to them, freeze and thaw, signal every process, remove.
// The rest of src/cgroups only reads (Stats, OOM watch); this file keeps the same view of the host
// (parseCgroupMounts, cgroupMode) so the directories made here are the ones the readers find.
//
// Layout decisions:
// - v1 (legacy and hybrid hosts): a directory in every mounted v1 hierarchy, name=systemd included. That
//   hierarchy has no controller, but tools that read /proc/<pid>/cgroup (and containerd's own cgroup
//   lookups) then see the container's path there too, as with runc's cgroupfs driver; it costs a mkdir.
// - hybrid hosts also get a directory on the cgroup2 mount (/sys/fs/cgroup/unified): no limits are set
//   there (the controllers are v1 ones), but the container's processes are grouped in every hierarchy,
//   and a `type: "cgroup"` mount can show the container its own part of it.
// - v2 (unified hosts): one directory; every ancestor below the mount root gets the controllers the
//   resources need in cgroup.subtree_control (and the usual ones when available, so Stats and later
//   updates find their files).
//
// Errors: a resource the host cannot apply (its controller is not mounted, its file is missing, the
// kernel refuses the value) is a RuntimeError naming the file and the value, since the container would
// otherwise run without a limit its spec asked for. A spec the host can never satisfy in this layout
// (linux.resources.unified on v1; device rules in an update on v2, where they are an eBPF program the
// launcher attached at create, src/cgroups/devices.ts) is refused by field.
import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import { InvalidArgumentError, RuntimeError, UnimplementedError } from '../plugins/api/errors.js';
import type { OciResources, OciThrottle } from '../plugins/native/oci.js';
import { deviceFilter, deviceWrites, type DeviceFilter, type DeviceNode } from './devices.js';
import type { CgroupMountSource } from '../plugins/native/plan.js';
import { cgroupMode, type CgroupMode } from './mode.js';
import { parseCgroupMounts, type CgroupMount } from './paths.js';

export type { DeviceFilter, DeviceNode } from './devices.js';

export interface V1Hierarchy {
  /** The controllers of the hierarchy ("cpu"; "cpu,cpuacct" co-mounted; "name=systemd"). */
  controllers: string[];
  mountpoint: string;
  /** The container's directory in it. */
  dir: string;
}

/** A container's cgroup directories. Plain data: a backend can keep it in its state across restarts. */
export type CgroupDirs =
  | { version: 1; hierarchies: V1Hierarchy[]; /** hybrid hosts: the directory on the cgroup2 mount */ unified: string | null }
  | { version: 2; dir: string; mountpoint: string };

export interface CgroupHostOptions {
  /** Default: cgroupMode(). */
  mode?: CgroupMode;
  /** Default: /proc/self/mountinfo. */
  mountinfo?: string;
}

// ---------------------------------------------------------------------------------------------------
// Paths

/**
 * linux.cgroupsPath → the path inside the hierarchies. containerd writes `/<namespace>/<id>` (cgroupfs
 * driver) or `slice:prefix:name` (systemd driver); no path gives `/<id>`.
 */
export function resolveCgroupsPath(cgroupsPath: string | undefined, id: string): string {
  if (cgroupsPath === undefined || cgroupsPath === '') return path.posix.join('/', id);
  if (!cgroupsPath.startsWith('/') && cgroupsPath.split(':').length === 3) {
    throw new UnimplementedError(`linux.cgroupsPath ${JSON.stringify(cgroupsPath)} (the systemd cgroup driver) is not supported by the native backend yet`);
  }
  // runc takes a relative path as relative to its own cgroup, which for a shim is an accident of where
  // the daemon was started: refused rather than guessed.
  if (!cgroupsPath.startsWith('/')) throw new InvalidArgumentError(`linux.cgroupsPath ${JSON.stringify(cgroupsPath)} must be absolute`);
  const inner = path.posix.normalize(cgroupsPath);
  if (inner === '/' || inner.split('/').includes('..')) throw new InvalidArgumentError(`linux.cgroupsPath ${JSON.stringify(cgroupsPath)} must name a cgroup below the root`);
  return inner.replace(/\/+$/, '');
}

/** v1 super options that are not controllers. */
const V1_FLAGS = new Set(['rw', 'ro', 'noprefix', 'clone_children', 'xattr', 'cpuset_v2_mode', 'all', 'none', 'favordynmods']);

function v1Controllers(m: CgroupMount): string[] {
  return m.superOptions.filter((o) => o.startsWith('name=') || (!o.includes('=') && !V1_FLAGS.has(o) && o !== ''));
}

function underMount(m: CgroupMount, inner: string): string {
  const rel = path.posix.relative(m.root, inner);
  if (rel.startsWith('..')) throw new RuntimeError(`cgroup ${inner} is outside the hierarchy mounted at ${m.mountpoint} (its root is ${m.root})`);
  return path.posix.join(m.mountpoint, rel);
}

/** Where the container's directories go, without making them. */
export function cgroupDirsFor(inner: string, opts: CgroupHostOptions = {}): CgroupDirs {
  const mode = opts.mode ?? cgroupMode();
  if (mode === 'unavailable') throw new RuntimeError('no cgroup file system is mounted on this host');
  const mounts = parseCgroupMounts(opts.mountinfo ?? fs.readFileSync('/proc/self/mountinfo', 'utf8'));
  const v2 = mounts.find((m) => m.fstype === 'cgroup2');
  if (mode === 'unified') {
    if (!v2) throw new RuntimeError('no cgroup2 file system is mounted on this host');
    return { version: 2, dir: underMount(v2, inner), mountpoint: v2.mountpoint };
  }
  const hierarchies: V1Hierarchy[] = [];
  for (const m of mounts) {
    if (m.fstype !== 'cgroup') continue;
    const controllers = v1Controllers(m);
    if (controllers.length > 0) hierarchies.push({ controllers, mountpoint: m.mountpoint, dir: underMount(m, inner) });
  }
  if (hierarchies.length === 0) throw new RuntimeError('no cgroup v1 hierarchy is mounted on this host');
  return { version: 1, hierarchies, unified: mode === 'hybrid' && v2 ? underMount(v2, inner) : null };
}

/** The directories the container's processes join (the plan's `cgroup` steps). */
export function cgroupJoinDirs(dirs: CgroupDirs): string[] {
  if (dirs.version === 2) return [dirs.dir];
  return [...dirs.hierarchies.map((h) => h.dir), ...(dirs.unified ? [dirs.unified] : [])];
}

/** The hierarchies a `type: "cgroup"` mount shows the container (plan.ts's cgroupSources), v1 only. */
export function cgroupMountSources(dirs: CgroupDirs): CgroupMountSource[] {
  if (dirs.version === 2) return [];
  const out: CgroupMountSource[] = dirs.hierarchies.map((h) => ({
    name: path.posix.basename(h.mountpoint), fstype: 'cgroup', hostDir: h.dir, options: h.controllers.join(','),
  }));
  if (dirs.unified) out.push({ name: 'unified', fstype: 'cgroup2', hostDir: dirs.unified, options: '' });
  return out;
}

function v1Dir(dirs: CgroupDirs & { version: 1 }, controller: string): string | null {
  return dirs.hierarchies.find((h) => h.controllers.includes(controller))?.dir ?? null;
}

// ---------------------------------------------------------------------------------------------------
// File access

let capSysResource: boolean | null = null;

/** Whether this process has CAP_SYS_RESOURCE (machine.md: the test hosts lack it in the bounding set). */
function hasCapSysResource(): boolean {
  if (capSysResource === null) {
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
    capSysResource = m ? ((BigInt(`0x${m[1]}`) >> 24n) & 1n) === 1n : false;
  }
  return capSysResource;
}

function errno(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? (err as Error).message;
}

/** Writes one value (no O_CREAT: a file the kernel does not provide must not be made). */
function writeFile(file: string, value: string): void {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_WRONLY);
  } catch (err) {
    if (errno(err) === 'ENOENT') {
      throw new RuntimeError(`cannot write ${JSON.stringify(value)} to ${file}: the file does not exist (the controller or the feature is not available on this host)`);
    }
    throw writeError(file, value, err);
  }
  try {
    fs.writeSync(fd, value);
  } catch (err) {
    throw writeError(file, value, err);
  } finally {
    fs.closeSync(fd);
  }
}

function writeError(file: string, value: string, err: unknown): RuntimeError {
  const code = errno(err);
  const hint = (code === 'EPERM' || code === 'EACCES') && !hasCapSysResource() ? ' (this process has no CAP_SYS_RESOURCE, which the value may need)' : '';
  return new RuntimeError(`cannot write ${JSON.stringify(value)} to ${file}: ${code}${hint}`);
}

function readFile(file: string): string {
  return fs.readFileSync(file, 'utf8');
}

function fileExists(file: string): boolean {
  return fs.existsSync(file);
}

/** mkdir -p, calling made() for every directory it makes, top down. */
function mkdirs(dir: string, stopAt: string, made: (d: string) => void): void {
  const missing: string[] = [];
  for (let d = dir; d !== stopAt && d.length > stopAt.length && !fileExists(d); d = path.posix.dirname(d)) missing.unshift(d);
  for (const d of missing) {
    try {
      fs.mkdirSync(d);
    } catch (err) {
      if (errno(err) === 'EEXIST') continue;
      throw new RuntimeError(`cannot make cgroup ${d}: ${errno(err)}`);
    }
    made(d);
  }
}

// ---------------------------------------------------------------------------------------------------
// Create

/** cgroup2 controllers enabled for every container when the host has them, for Stats and updates. */
const V2_USUAL = ['cpu', 'cpuset', 'io', 'memory', 'pids', 'hugetlb'];

/**
 * Makes the container's directories, applies `resources`, and returns them. What this call made is
 * removed again when it fails. An existing directory is used as it is (a CRI pod's parent, or a
 * container restarted into its old cgroup). Returns the warnings of applyResources too.
 */
export function createCgroup(inner: string, resources: OciResources | undefined, opts: CgroupHostOptions & { allowDevices?: DeviceNode[] } = {}):
  { dirs: CgroupDirs; warnings: string[]; deviceFilter?: DeviceFilter } {
  const dirs = cgroupDirsFor(inner, opts);
  const made: string[] = [];
  try {
    if (dirs.version === 1) {
      for (const h of dirs.hierarchies) {
        const cpuset = h.controllers.includes('cpuset');
        mkdirs(h.dir, h.mountpoint, (d) => {
          made.push(d);
          // A new cpuset has no cpus and no mems, and takes no process until it has both: each level
          // starts with its parent's.
          if (cpuset) for (const f of ['cpuset.cpus', 'cpuset.mems']) copyFromParent(d, f);
        });
      }
      if (dirs.unified) mkdirs(dirs.unified, mountpointOf(dirs.unified, opts), (d) => made.push(d));
    } else {
      mkdirs(dirs.dir, dirs.mountpoint, (d) => made.push(d));
      enableControllers(dirs, neededV2(resources), true);
    }
    const warnings = applyResources(dirs, resources, opts);
    // v2: the device rules become a program the launcher attaches (v1: applyResources wrote them)
    const filter = dirs.version === 2 && resources?.devices ? deviceFilter(deviceWrites(resources.devices, opts.allowDevices)) : undefined;
    return { dirs, warnings, ...(filter && { deviceFilter: filter }) };
  } catch (err) {
    for (const d of made.reverse()) {
      try { fs.rmdirSync(d); } catch { /* the original error says more */ }
    }
    throw err;
  }
}

function mountpointOf(dir: string, opts: CgroupHostOptions): string {
  const mounts = parseCgroupMounts(opts.mountinfo ?? fs.readFileSync('/proc/self/mountinfo', 'utf8'));
  const m = mounts.filter((x) => dir === x.mountpoint || dir.startsWith(`${x.mountpoint}/`)).sort((a, b) => b.mountpoint.length - a.mountpoint.length)[0];
  return m ? m.mountpoint : '/';
}

function copyFromParent(dir: string, file: string): void {
  const mine = readFile(path.posix.join(dir, file)).trim();
  if (mine !== '') return;
  const parent = readFile(path.posix.join(path.posix.dirname(dir), file)).trim();
  writeFile(path.posix.join(dir, file), parent);
}

/**
 * Enables controllers in cgroup.subtree_control from the mount root down to the container's parent.
 * A controller the resources need and the host lacks is an error; the usual ones are enabled only where
 * the kernel lets us (a parent with processes of its own refuses, "no internal processes").
 */
function enableControllers(dirs: CgroupDirs & { version: 2 }, needed: ReadonlySet<string>, withUsual: boolean): void {
  const levels: string[] = [];
  for (let d = path.posix.dirname(dirs.dir); d.length >= dirs.mountpoint.length; d = path.posix.dirname(d)) {
    levels.unshift(d);
    if (d === dirs.mountpoint) break;
  }
  for (const level of levels) {
    const available = new Set(readFile(path.posix.join(level, 'cgroup.controllers')).trim().split(/\s+/).filter(Boolean));
    const enabled = new Set(readFile(path.posix.join(level, 'cgroup.subtree_control')).trim().split(/\s+/).filter(Boolean));
    const file = path.posix.join(level, 'cgroup.subtree_control');
    for (const c of needed) {
      if (!available.has(c)) throw new RuntimeError(`cannot write "+${c}" to ${file}: the cgroup2 controller ${c} is not available there (cgroup.controllers)`);
      if (!enabled.has(c)) writeFile(file, `+${c}`);
    }
    if (!withUsual) continue;
    for (const c of V2_USUAL) {
      if (needed.has(c) || enabled.has(c) || !available.has(c)) continue;
      try { writeFile(file, `+${c}`); } catch { /* optional */ }
    }
  }
}

/** The cgroup2 controllers a resources object writes to. */
function neededV2(r: OciResources | undefined): Set<string> {
  const out = new Set<string>();
  if (!r) return out;
  const m = r.memory;
  if (m && (nz(m.limit) || nz(m.reservation) || nz(m.swap))) out.add('memory');
  const c = r.cpu;
  if (c && (nz(c.shares) || nz(c.quota) || nz(c.period) || present(c.burst) || present(c.idle))) out.add('cpu');
  if (c && (c.cpus || c.mems)) out.add('cpuset');
  if (r.pids && nz(r.pids.limit)) out.add('pids');
  const b = r.blockIO;
  if (b && (present(b.weight) || (b.weightDevice?.length ?? 0) > 0 || [b.throttleReadBpsDevice, b.throttleWriteBpsDevice,
    b.throttleReadIOPSDevice, b.throttleWriteIOPSDevice].some((l) => (l?.length ?? 0) > 0))) out.add('io');
  if ((r.hugepageLimits?.length ?? 0) > 0) out.add('hugetlb');
  if (r.rdma && Object.keys(r.rdma).length > 0) out.add('rdma');
  for (const key of Object.keys(r.unified ?? {})) {
    // cgroup.* files are the core's, every other file belongs to the controller it is named after
    const c2 = key.split('.')[0]!;
    if (c2 !== 'cgroup') out.add(c2);
  }
  return out;
}

function present(v: unknown): boolean {
  return v !== undefined && v !== null;
}

/** runc takes 0 for "not set" in the limits that have no meaningful 0 (Go's zero value). */
function nz(v: number | undefined | null): v is number {
  return v !== undefined && v !== null && v !== 0;
}

// ---------------------------------------------------------------------------------------------------
// Resources

function int(v: unknown, field: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v)) throw new InvalidArgumentError(`linux.resources.${field} must be an integer`);
  return v;
}

/**
 * Applies linux.resources (only the fields present: this is Update too). Returns warnings for settings
 * that are ignored the way runc ignores them. On v2 the device rules are not files: createCgroup turns
 * them into the launcher's device filter, and an Update that carries them is refused.
 */
export function applyResources(dirs: CgroupDirs, r: OciResources | undefined, opts: { allowDevices?: DeviceNode[] } = {}): string[] {
  const warnings: string[] = [];
  if (!r) return warnings;
  if (dirs.version === 1) applyV1(dirs, r, opts, warnings);
  else applyV2(dirs, r, warnings);
  return warnings;
}

/** Update: the same as applying, with the controllers enabled that the new resources need (v2). */
export function update(dirs: CgroupDirs, r: OciResources): string[] {
  if (dirs.version === 2 && r.devices) {
    // the filter would have to be replaced by another program (neither containerd's CRI nor ctr sends device rules in an update)
    throw new UnimplementedError('linux.resources.devices in an update on cgroup v2 (replacing the container\'s eBPF device filter) is not supported by the native backend');
  }
  if (dirs.version === 2) enableControllers(dirs, neededV2(r), false);
  return applyResources(dirs, r);
}

function applyV1(dirs: CgroupDirs & { version: 1 }, r: OciResources, opts: { allowDevices?: DeviceNode[] }, warnings: string[]): void {
  const at = (controller: string, file: string): string => {
    const dir = v1Dir(dirs, controller);
    if (dir === null) throw new RuntimeError(`cannot write ${file}: the ${controller} cgroup controller is not mounted on this host`);
    return path.posix.join(dir, file);
  };
  const set = (controller: string, file: string, value: string | number) => writeFile(at(controller, file), String(value));

  if (r.unified && Object.keys(r.unified).length > 0) throw new RuntimeError('linux.resources.unified needs cgroup v2; this host runs cgroup v1');

  const m = r.memory;
  if (m) {
    const limit = nz(m.limit) ? int(m.limit, 'memory.limit') : undefined;
    let swap = nz(m.swap) ? int(m.swap, 'memory.swap') : undefined;
    // runc: an unlimited memory with no swap given means unlimited swap too (memsw may not be below it)
    if (swap === undefined && limit === -1 && fileExists(at('memory', 'memory.memsw.limit_in_bytes'))) swap = -1;
    if (swap !== undefined) {
      // memory.limit_in_bytes may never exceed memory.memsw.limit_in_bytes: raise memsw first, lower it last
      const memsw = at('memory', 'memory.memsw.limit_in_bytes');
      if (!fileExists(memsw)) throw new RuntimeError(`cannot write ${swap} to ${memsw}: the file does not exist (swap accounting is off on this host)`);
      const cur = BigInt(readFile(memsw).trim());
      const want = swap === -1 ? 1n << 63n : BigInt(swap);
      if (want >= cur) {
        set('memory', 'memory.memsw.limit_in_bytes', swap);
        if (limit !== undefined) set('memory', 'memory.limit_in_bytes', limit);
      } else {
        if (limit !== undefined) set('memory', 'memory.limit_in_bytes', limit);
        set('memory', 'memory.memsw.limit_in_bytes', swap);
      }
    } else if (limit !== undefined) set('memory', 'memory.limit_in_bytes', limit);
    if (nz(m.reservation)) set('memory', 'memory.soft_limit_in_bytes', int(m.reservation, 'memory.reservation'));
    if (nz(m.kernel)) warnings.push('linux.resources.memory.kernel ignored: kernel memory limits are deprecated (runc ignores them too)');
    if (nz(m.kernelTCP)) set('memory', 'memory.kmem.tcp.limit_in_bytes', int(m.kernelTCP, 'memory.kernelTCP'));
    if (present(m.swappiness)) {
      const s = int(m.swappiness, 'memory.swappiness');
      if (s < 0 || s > 100) throw new InvalidArgumentError(`linux.resources.memory.swappiness ${s} is not between 0 and 100`);
      set('memory', 'memory.swappiness', s);
    }
    if (m.disableOOMKiller) set('memory', 'memory.oom_control', 1);
  }

  const c = r.cpu;
  if (c) {
    if (nz(c.shares)) set('cpu', 'cpu.shares', int(c.shares, 'cpu.shares'));
    const period = nz(c.period) ? int(c.period, 'cpu.period') : undefined;
    const quota = nz(c.quota) ? int(c.quota, 'cpu.quota') : undefined;
    if (period !== undefined && quota !== undefined) {
      // the kernel checks quota against period (and the parent's bandwidth) at each write: if the period
      // is refused first, the quota goes first
      try {
        set('cpu', 'cpu.cfs_period_us', period);
      } catch {
        set('cpu', 'cpu.cfs_quota_us', quota);
        set('cpu', 'cpu.cfs_period_us', period);
      }
      set('cpu', 'cpu.cfs_quota_us', quota);
    } else if (period !== undefined) set('cpu', 'cpu.cfs_period_us', period);
    else if (quota !== undefined) set('cpu', 'cpu.cfs_quota_us', quota);
    if (present(c.burst)) set('cpu', 'cpu.cfs_burst_us', int(c.burst, 'cpu.burst'));
    if (nz(c.realtimePeriod)) set('cpu', 'cpu.rt_period_us', int(c.realtimePeriod, 'cpu.realtimePeriod'));
    if (nz(c.realtimeRuntime)) set('cpu', 'cpu.rt_runtime_us', int(c.realtimeRuntime, 'cpu.realtimeRuntime'));
    if (present(c.idle)) set('cpu', 'cpu.idle', int(c.idle, 'cpu.idle'));
    if (c.cpus) set('cpuset', 'cpuset.cpus', c.cpus);
    if (c.mems) set('cpuset', 'cpuset.mems', c.mems);
  }

  if (r.pids && nz(r.pids.limit)) set('pids', 'pids.max', r.pids.limit > 0 ? int(r.pids.limit, 'pids.limit') : 'max');

  const b = r.blockIO;
  if (b) {
    // blkio.weight is CFQ's; with BFQ (the only proportional scheduler since 5.0) it is blkio.bfq.weight
    const bfq = !fileExists(at('blkio', 'blkio.weight')) && fileExists(at('blkio', 'blkio.bfq.weight'));
    if (present(b.weight)) set('blkio', bfq ? 'blkio.bfq.weight' : 'blkio.weight', int(b.weight, 'blockIO.weight'));
    if (present(b.leafWeight)) set('blkio', 'blkio.leaf_weight', int(b.leafWeight, 'blockIO.leafWeight'));
    (b.weightDevice ?? []).forEach((d, i) => {
      const dev = `${int(d.major, `blockIO.weightDevice[${i}].major`)}:${int(d.minor, `blockIO.weightDevice[${i}].minor`)}`;
      if (present(d.weight)) set('blkio', bfq ? 'blkio.bfq.weight_device' : 'blkio.weight_device', `${dev} ${int(d.weight, `blockIO.weightDevice[${i}].weight`)}`);
      if (present(d.leafWeight)) set('blkio', 'blkio.leaf_weight_device', `${dev} ${int(d.leafWeight, `blockIO.weightDevice[${i}].leafWeight`)}`);
    });
    const throttle = (list: OciThrottle[] | undefined, field: string, file: string) => (list ?? []).forEach((t, i) => {
      const f = `blockIO.${field}[${i}]`;
      set('blkio', file, `${int(t.major, `${f}.major`)}:${int(t.minor, `${f}.minor`)} ${int(t.rate, `${f}.rate`)}`);
    });
    throttle(b.throttleReadBpsDevice, 'throttleReadBpsDevice', 'blkio.throttle.read_bps_device');
    throttle(b.throttleWriteBpsDevice, 'throttleWriteBpsDevice', 'blkio.throttle.write_bps_device');
    throttle(b.throttleReadIOPSDevice, 'throttleReadIOPSDevice', 'blkio.throttle.read_iops_device');
    throttle(b.throttleWriteIOPSDevice, 'throttleWriteIOPSDevice', 'blkio.throttle.write_iops_device');
  }

  (r.hugepageLimits ?? []).forEach((h, i) => {
    const size = hugepageSize(h.pageSize, i);
    const file = `hugetlb.${size}.limit_in_bytes`;
    if (v1Dir(dirs, 'hugetlb') === null && dirs.unified !== null) {
      throw new RuntimeError(`cannot write ${file}: hugetlb is not a v1 controller on this host (it is on the cgroup2 mount of this hybrid host; CRI: disable_hugetlb_controller = true)`);
    }
    set('hugetlb', file, int(h.limit, `hugepageLimits[${i}].limit`));
  });

  if (r.network) {
    if (present(r.network.classID)) set('net_cls', 'net_cls.classid', int(r.network.classID, 'network.classID'));
    for (const p of r.network.priorities ?? []) set('net_prio', 'net_prio.ifpriomap', `${p.name} ${int(p.priority, 'network.priorities.priority')}`);
  }
  for (const [dev, lim] of Object.entries(r.rdma ?? {})) set('rdma', 'rdma.max', rdmaLine(dev, lim));

  if (r.devices) {
    // Deny everything, then the spec's rules in order, then runc's defaults and the spec's own nodes.
    // A process in the container sees a moment of "deny all" during an update, as with runc's v1 driver.
    for (const w of deviceWrites(r.devices, opts.allowDevices)) set('devices', w.allow ? 'devices.allow' : 'devices.deny', w.rule);
  }
}

function hugepageSize(size: string | undefined, i: number): string {
  if (typeof size !== 'string' || !/^[0-9]+[KMG]B$/.test(size)) throw new InvalidArgumentError(`linux.resources.hugepageLimits[${i}].pageSize ${JSON.stringify(size)} is not like 2MB`);
  return size;
}

function rdmaLine(dev: string, lim: { hcaHandles?: number; hcaObjects?: number }): string {
  const parts = [dev];
  if (present(lim.hcaHandles)) parts.push(`hca_handle=${int(lim.hcaHandles, 'rdma.hcaHandles')}`);
  if (present(lim.hcaObjects)) parts.push(`hca_object=${int(lim.hcaObjects, 'rdma.hcaObjects')}`);
  return parts.join(' ');
}

/** runc's conversion of cpu.shares (2–262144) to cpu.weight (1–10000). */
export function sharesToWeight(shares: number): number {
  return 1 + Math.floor(((shares - 2) * 9999) / 262142);
}

/** blkio.weight (10–1000) → io.weight (1–10000), the same linear map. */
export function blkioToIoWeight(weight: number): number {
  return 1 + Math.floor(((weight - 10) * 9999) / 990);
}

function applyV2(dirs: CgroupDirs & { version: 2 }, r: OciResources, warnings: string[]): void {
  const set = (file: string, value: string | number) => writeFile(path.posix.join(dirs.dir, file), String(value));

  if (r.devices) deviceWrites(r.devices); // checked here, made into a filter by createCgroup
  const m = r.memory;
  if (m) {
    const limit = nz(m.limit) ? int(m.limit, 'memory.limit') : undefined;
    if (limit !== undefined) set('memory.max', limit === -1 ? 'max' : limit);
    if (nz(m.swap)) {
      const swap = int(m.swap, 'memory.swap');
      // OCI's swap is memory+swap, cgroup2's memory.swap.max the swap alone
      if (swap === -1) set('memory.swap.max', 'max');
      else {
        if (limit === undefined || limit === -1) throw new InvalidArgumentError('linux.resources.memory.swap needs memory.limit on cgroup v2 (it is memory+swap)');
        if (swap < limit) throw new InvalidArgumentError(`linux.resources.memory.swap ${swap} is below memory.limit ${limit}`);
        set('memory.swap.max', swap - limit);
      }
    }
    if (nz(m.reservation)) set('memory.low', int(m.reservation, 'memory.reservation'));
    if (nz(m.kernel)) warnings.push('linux.resources.memory.kernel ignored: cgroup v2 has no kernel memory limit');
    if (nz(m.kernelTCP)) warnings.push('linux.resources.memory.kernelTCP ignored: cgroup v2 has no kernel TCP limit');
    if (present(m.swappiness)) warnings.push('linux.resources.memory.swappiness ignored: cgroup v2 has no per-cgroup swappiness');
    if (m.disableOOMKiller) warnings.push('linux.resources.memory.disableOOMKiller ignored: cgroup v2 cannot disable the OOM killer');
  }
  const c = r.cpu;
  if (c) {
    if (nz(c.shares)) set('cpu.weight', sharesToWeight(int(c.shares, 'cpu.shares')));
    if (nz(c.quota) || nz(c.period)) {
      let v = nz(c.quota) && c.quota > 0 ? String(int(c.quota, 'cpu.quota')) : 'max';
      if (nz(c.period)) v += ` ${int(c.period, 'cpu.period')}`;
      set('cpu.max', v);
    }
    if (present(c.burst)) set('cpu.max.burst', int(c.burst, 'cpu.burst'));
    if (present(c.idle)) set('cpu.idle', int(c.idle, 'cpu.idle'));
    if (nz(c.realtimePeriod) || nz(c.realtimeRuntime)) throw new RuntimeError('linux.resources.cpu.realtimePeriod/realtimeRuntime cannot be set: cgroup v2 has no real-time CPU bandwidth');
    if (c.cpus) set('cpuset.cpus', c.cpus);
    if (c.mems) set('cpuset.mems', c.mems);
  }
  if (r.pids && nz(r.pids.limit)) set('pids.max', r.pids.limit > 0 ? int(r.pids.limit, 'pids.limit') : 'max');
  const b = r.blockIO;
  if (b) {
    const bfq = fileExists(path.posix.join(dirs.dir, 'io.bfq.weight'));
    if (present(b.weight)) {
      const w = int(b.weight, 'blockIO.weight');
      if (bfq) set('io.bfq.weight', w);
      else set('io.weight', `default ${blkioToIoWeight(w)}`);
    }
    (b.weightDevice ?? []).forEach((d, i) => {
      if (!present(d.weight)) return;
      const dev = `${int(d.major, `blockIO.weightDevice[${i}].major`)}:${int(d.minor, `blockIO.weightDevice[${i}].minor`)}`;
      const w = int(d.weight, `blockIO.weightDevice[${i}].weight`);
      if (bfq) set('io.bfq.weight', `${dev} ${w}`);
      else set('io.weight', `${dev} ${blkioToIoWeight(w)}`);
    });
    const throttle = (list: OciThrottle[] | undefined, field: string, key: string) => (list ?? []).forEach((t, i) => {
      const f = `blockIO.${field}[${i}]`;
      set('io.max', `${int(t.major, `${f}.major`)}:${int(t.minor, `${f}.minor`)} ${key}=${int(t.rate, `${f}.rate`)}`);
    });
    throttle(b.throttleReadBpsDevice, 'throttleReadBpsDevice', 'rbps');
    throttle(b.throttleWriteBpsDevice, 'throttleWriteBpsDevice', 'wbps');
    throttle(b.throttleReadIOPSDevice, 'throttleReadIOPSDevice', 'riops');
    throttle(b.throttleWriteIOPSDevice, 'throttleWriteIOPSDevice', 'wiops');
  }
  (r.hugepageLimits ?? []).forEach((h, i) => set(`hugetlb.${hugepageSize(h.pageSize, i)}.max`, int(h.limit, `hugepageLimits[${i}].limit`)));
  if (r.network && (present(r.network.classID) || (r.network.priorities?.length ?? 0) > 0)) {
    throw new RuntimeError('linux.resources.network cannot be set: cgroup v2 has no net_cls or net_prio controller');
  }
  for (const [dev, lim] of Object.entries(r.rdma ?? {})) set('rdma.max', rdmaLine(dev, lim));
  for (const [key, value] of Object.entries(r.unified ?? {})) {
    if (!/^[a-z_]+\.[a-z0-9_.]+$/.test(key)) throw new InvalidArgumentError(`linux.resources.unified: ${JSON.stringify(key)} is not a cgroup file name`);
    set(key, value);
  }
}

// ---------------------------------------------------------------------------------------------------
// Freeze, thaw, kill, remove

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** How long freeze and thaw wait for the kernel: long enough for a loaded machine 3× slower than a quiet one. */
const FREEZE_TIMEOUT_MS = 15_000;

function freezerOf(dirs: CgroupDirs): { file: string; want: (frozen: boolean) => string; check: string } {
  if (dirs.version === 2) return { file: path.posix.join(dirs.dir, 'cgroup.freeze'), want: (f) => (f ? '1' : '0'), check: path.posix.join(dirs.dir, 'cgroup.events') };
  const dir = v1Dir(dirs, 'freezer');
  if (dir === null) throw new RuntimeError('cannot freeze: the freezer cgroup controller is not mounted on this host');
  const state = path.posix.join(dir, 'freezer.state');
  return { file: state, want: (f) => (f ? 'FROZEN' : 'THAWED'), check: state };
}

/** Whether the cgroup reports the state asked for (v1 freezer.state, v2 cgroup.events "frozen"). */
function reached(dirs: CgroupDirs, check: string, frozen: boolean): boolean {
  const text = readFile(check);
  if (dirs.version === 1) return text.trim() === (frozen ? 'FROZEN' : 'THAWED');
  return new RegExp(`^frozen ${frozen ? 1 : 0}$`, 'm').test(text);
}

async function setFrozen(dirs: CgroupDirs, frozen: boolean, timeoutMs: number): Promise<void> {
  const f = freezerOf(dirs);
  const end = Date.now() + timeoutMs;
  for (let wait = 1; ; wait = Math.min(wait * 2, 50)) {
    // v1 can stay FREEZING while a task is busy in the kernel; writing FROZEN again retries those tasks
    writeFile(f.file, f.want(frozen));
    if (reached(dirs, f.check, frozen)) return;
    if (Date.now() > end) {
      if (frozen) await setFrozen(dirs, false, timeoutMs).catch(() => undefined);
      throw new RuntimeError(`cgroup did not become ${frozen ? 'frozen' : 'thawed'} within ${timeoutMs} ms (${f.check})`);
    }
    await sleep(wait);
  }
}

/** Freezes every process of the container and waits until the kernel reports it frozen. */
export function freeze(dirs: CgroupDirs, timeoutMs = FREEZE_TIMEOUT_MS): Promise<void> {
  return setFrozen(dirs, true, timeoutMs);
}

/** Thaws the container and waits until the kernel reports it thawed. */
export function thaw(dirs: CgroupDirs, timeoutMs = FREEZE_TIMEOUT_MS): Promise<void> {
  return setFrozen(dirs, false, timeoutMs);
}

/** The pids in the container's cgroups: every hierarchy's cgroup.procs, so none is missed. */
export function cgroupPids(dirs: CgroupDirs): number[] {
  const pids = new Set<number>();
  for (const dir of cgroupJoinDirs(dirs)) {
    let text: string;
    try {
      text = readFile(path.posix.join(dir, 'cgroup.procs'));
    } catch (err) {
      if (errno(err) === 'ENOENT') continue;
      throw err;
    }
    for (const line of text.split('\n')) if (line !== '') pids.add(Number(line));
  }
  return [...pids];
}

/**
 * Sends `signal` to every process of the container; returns how many were signalled. SIGKILL on v2 is
 * cgroup.kill (the kernel kills them all at once); elsewhere the cgroup is frozen first, so no process
 * can fork a child past the list being read, and thawed afterwards so the killed ones can die.
 */
export async function killAll(dirs: CgroupDirs, signal: number | NodeJS.Signals): Promise<number> {
  const signo = typeof signal === 'number' ? signal : os.constants.signals[signal];
  if (signo === undefined) throw new InvalidArgumentError(`unknown signal ${String(signal)}`);
  const sigkill = signo === os.constants.signals.SIGKILL;
  if (sigkill && dirs.version === 2 && fileExists(path.posix.join(dirs.dir, 'cgroup.kill'))) {
    const n = cgroupPids(dirs).length;
    writeFile(path.posix.join(dirs.dir, 'cgroup.kill'), '1');
    return n;
  }
  const canFreeze = sigkill && (dirs.version === 2 || v1Dir(dirs, 'freezer') !== null);
  if (canFreeze) await freeze(dirs);
  try {
    let n = 0;
    for (const pid of cgroupPids(dirs)) {
      try {
        process.kill(pid, signo);
        n++;
      } catch (err) {
        if (errno(err) !== 'ESRCH') throw new RuntimeError(`cannot signal process ${pid}: ${errno(err)}`);
      }
    }
    return n;
  } finally {
    if (canFreeze) await thaw(dirs);
  }
}

/**
 * rmdir's EBUSY: the cgroup still has a task. Right after the last process was reaped the kernel can
 * still be finishing its exit (v2 in particular drops a dying task from the cgroup asynchronously), so
 * EBUSY is retried a bounded number of times with a growing wait (about 2.5 s in all, enough for a loaded
 * machine); a cgroup that stays busy has a live process in it, and waiting longer would only hide that.
 */
const RMDIR_TRIES = 9;

/** Removes the container's directories (and any the container made below them); missing ones are fine. */
export async function remove(dirs: CgroupDirs): Promise<void> {
  for (const dir of cgroupJoinDirs(dirs)) await removeTree(dir);
}

async function removeTree(dir: string): Promise<void> {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch (err) {
    if (errno(err) === 'ENOENT') return;
    throw new RuntimeError(`cannot remove cgroup ${dir}: ${errno(err)}`);
  }
  for (const e of entries) if (e.isDirectory()) await removeTree(path.posix.join(dir, e.name));
  for (let attempt = 1, wait = 10; ; attempt++, wait *= 2) {
    try {
      fs.rmdirSync(dir);
      return;
    } catch (err) {
      const code = errno(err);
      if (code === 'ENOENT') return;
      if (code !== 'EBUSY' || attempt >= RMDIR_TRIES) {
        let pids = '';
        try { pids = readFile(path.posix.join(dir, 'cgroup.procs')).trim().split('\n').join(' '); } catch { /* gone */ }
        throw new RuntimeError(`cannot remove cgroup ${dir}: ${code}${pids ? ` (processes ${pids} are still in it)` : ''}`);
      }
    }
    await sleep(wait);
  }
}
