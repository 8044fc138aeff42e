// Where a process's cgroups are: /proc/<pid>/cgroup joined with the cgroup mounts listed in
// /proc/self/mountinfo.
//
// v1 (legacy and hybrid hosts): one directory per controller. containerd/cgroups (PidPath +
// V1()) takes the path from /proc/<pid>/cgroup, makes it relative to the root of the cgroup mount
// that carries the controller (for nested cgroup namespaces), and puts it under
// <dir of the first cgroup mount>/<controller>. We use the mount point of the mount carrying the
// controller instead of guessing its name, which is the same directory on standard layouts and
// also right for "cpu,cpuacct" co-mounts (upstream reaches those through the cpu/cpuacct symlinks).
//
// v2: the "0::<path>" line joined with the cgroup2 mount point. runc-v2 hard-codes /sys/fs/cgroup
// because it only uses v2 on unified hosts; we look the mount up, so the hybrid mount at
// /sys/fs/cgroup/unified works as well.
import path from 'node:path';
import { CgroupFormatError, CgroupNotFoundError, isNotExist, readText, scanLines } from './parse.js';

export interface ProcCgroup {
  /** v1 hierarchies: controller (or "name=systemd") → path inside that hierarchy. */
  v1: Map<string, string>;
  /** Path of the "0::" (cgroup2) entry, or null if there is none. */
  unified: string | null;
}

/** Parses the text of /proc/<pid>/cgroup ("id:controllers:path" lines). */
export function parseProcCgroup(text: string): ProcCgroup {
  const v1 = new Map<string, string>();
  let unified: string | null = null;
  for (const line of scanLines(text)) {
    if (line === '') continue;
    const first = line.indexOf(':');
    const second = first < 0 ? -1 : line.indexOf(':', first + 1);
    if (second < 0) throw new CgroupFormatError(`invalid cgroup entry: ${JSON.stringify(line)}`);
    const id = line.slice(0, first);
    const controllers = line.slice(first + 1, second);
    const cgPath = line.slice(second + 1);
    if (id === '0' && controllers === '') {
      unified = cgPath;
      continue;
    }
    for (const c of controllers.split(',')) if (c !== '') v1.set(c, cgPath);
  }
  return { v1, unified };
}

export interface CgroupMount {
  /** "cgroup" (v1) or "cgroup2". */
  fstype: string;
  /** Root of the mount inside its hierarchy (mountinfo field 4). */
  root: string;
  /** Where it is mounted (mountinfo field 5). */
  mountpoint: string;
  /** Super options (v1: the controllers, "name=...", and flags such as "rw"). */
  superOptions: string[];
}

// mountinfo escapes space, tab, newline and backslash as \ooo.
function unescapeMountinfo(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/**
 * The cgroup and cgroup2 mounts of a mountinfo text that can be reached, in file order. A mount is out
 * of reach when a later one (mountinfo lists them in the order they were made) sits on the same
 * mountpoint or on a directory above it: a cgroup2 mount over /sys/fs/cgroup hides the v1 hierarchies
 * and the /sys/fs/cgroup/unified mount that were there before.
 */
export function parseCgroupMounts(text: string): CgroupMount[] {
  const all: CgroupMount[] = [];
  for (const line of scanLines(text)) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const pre = line.slice(0, sep).split(' ');
    const post = line.slice(sep + 3).split(' ');
    if (pre.length < 6 || post.length < 3) continue;
    all.push({
      fstype: post[0]!,
      root: unescapeMountinfo(pre[3]!),
      mountpoint: unescapeMountinfo(pre[4]!),
      superOptions: post[2]!.split(','),
    });
  }
  // From the last mount back: `later` holds the mountpoints made after the one looked at.
  const later = new Set<string>();
  const reachable: CgroupMount[] = [];
  for (let i = all.length - 1; i >= 0; i--) {
    const m = all[i]!;
    if ((m.fstype === 'cgroup' || m.fstype === 'cgroup2') && !coveredBy(later, m.mountpoint)) reachable.push(m);
    later.add(m.mountpoint);
  }
  return reachable.reverse();
}

/** Whether dir, or a directory above it (not "/"), is in mountpoints. */
function coveredBy(mountpoints: Set<string>, dir: string): boolean {
  for (let d = dir; d.length > 1; d = path.posix.dirname(d)) if (mountpoints.has(d)) return true;
  return false;
}

/** `p` relative to mount root `root`, joined under `mountpoint` (".." cannot escape the mount). */
function underMount(mountpoint: string, root: string, p: string): string {
  const inner = path.posix.join('/', path.posix.relative(root, p));
  return inner === '/' ? path.posix.normalize(mountpoint) : path.posix.join(mountpoint, inner);
}

/**
 * Controller → absolute cgroup directory, for the v1 hierarchies of /proc/<pid>/cgroup that are
 * mounted. Text-level variant of cgroupPathsV1, for tests.
 */
export function resolveCgroupPathsV1(procCgroupText: string, mountinfoText: string): Record<string, string> {
  const mounts = parseCgroupMounts(mountinfoText).filter((m) => m.fstype === 'cgroup');
  const byController = new Map<string, CgroupMount>();
  for (const m of mounts) {
    for (const opt of m.superOptions) if (!byController.has(opt)) byController.set(opt, m);
  }
  const out: Record<string, string> = {};
  for (const [controller, cgPath] of parseProcCgroup(procCgroupText).v1) {
    const m = byController.get(controller);
    if (m) out[controller] = underMount(m.mountpoint, m.root, cgPath);
  }
  return out;
}

/** Absolute cgroup2 directory of a /proc/<pid>/cgroup text; text-level variant of cgroupPathV2. */
export function resolveCgroupPathV2(procCgroupText: string, mountinfoText: string): string {
  const unified = parseProcCgroup(procCgroupText).unified;
  if (unified === null) throw new CgroupFormatError('cgroup path not found: no "0::" entry');
  const m = parseCgroupMounts(mountinfoText).find((x) => x.fstype === 'cgroup2');
  if (!m) throw new CgroupNotFoundError('no cgroup2 file system is mounted');
  return underMount(m.mountpoint, m.root, unified);
}

export interface ProcOptions {
  /** Default "/proc". */
  procRoot?: string;
}

function readProcCgroup(pid: number, procRoot: string): string {
  try {
    return readText(path.join(procRoot, String(pid), 'cgroup'));
  } catch (err) {
    if (isNotExist(err)) throw new CgroupNotFoundError(`cgroup does not exist: process ${pid} not found`);
    throw err;
  }
}

/** The v1 cgroup directories of process `pid`, e.g. { cpu: "/sys/fs/cgroup/cpu/default/c1", ... }. */
export function cgroupPathsV1(pid: number, opts: ProcOptions = {}): Record<string, string> {
  const procRoot = opts.procRoot ?? '/proc';
  const text = readProcCgroup(pid, procRoot);
  return resolveCgroupPathsV1(text, readText(path.join(procRoot, 'self', 'mountinfo')));
}

/** The cgroup2 directory of process `pid`, e.g. "/sys/fs/cgroup/default/c1". */
export function cgroupPathV2(pid: number, opts: ProcOptions = {}): string {
  const procRoot = opts.procRoot ?? '/proc';
  const text = readProcCgroup(pid, procRoot);
  return resolveCgroupPathV2(text, readText(path.join(procRoot, 'self', 'mountinfo')));
}
