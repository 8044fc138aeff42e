// Where a container's cgroups are: found once from its init's /proc/<pid>/cgroup while it lives, by the
// host's layout (v1 hierarchies on a legacy or hybrid host, one cgroup2 directory on a unified one).
// Kept free of the metrics protos so that Create can use it without loading them.
import { cgroupMode } from './mode.js';
import { cgroupPathsV1, cgroupPathV2 } from './paths.js';
import { CgroupNotFoundError } from './parse.js';

export type CgroupLocation = { version: 1; paths: Record<string, string> } | { version: 2; dir: string };

export function locateCgroup(pid: number): CgroupLocation {
  return cgroupMode() === 'unified' ? { version: 2, dir: cgroupPathV2(pid) } : { version: 1, paths: cgroupPathsV1(pid) };
}

/** The directory OOM kills are watched in: the v1 memory cgroup, or the cgroup2 directory. */
export function memoryCgroup(where: CgroupLocation): { version: 1 | 2; dir: string } {
  if (where.version === 2) return { version: 2, dir: where.dir };
  const dir = where.paths.memory;
  if (!dir) throw new CgroupNotFoundError('the process has no v1 memory cgroup');
  return { version: 1, dir };
}
