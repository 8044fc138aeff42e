// Which cgroup layout the host has, decided the way containerd's cgroups library does: statfs of
// /sys/fs/cgroup is cgroup2 → unified; else a cgroup2 mount at /sys/fs/cgroup/unified → hybrid; else legacy.
import fs from 'node:fs';

export type CgroupMode = 'unified' | 'hybrid' | 'legacy' | 'unavailable';

const CGROUP2_SUPER_MAGIC = 0x63677270;

function isCgroup2(p: string): boolean | null {
  try {
    return fs.statfsSync(p).type === CGROUP2_SUPER_MAGIC;
  } catch {
    return null;
  }
}

let cached: CgroupMode | null = null;

export function cgroupMode(root = '/sys/fs/cgroup'): CgroupMode {
  if (root === '/sys/fs/cgroup' && cached) return cached;
  const top = isCgroup2(root);
  let mode: CgroupMode;
  if (top === null) mode = 'unavailable';
  else if (top) mode = 'unified';
  else mode = isCgroup2(`${root}/unified`) ? 'hybrid' : 'legacy';
  if (root === '/sys/fs/cgroup') cached = mode;
  return mode;
}
