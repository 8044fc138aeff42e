// A container's cgroup statistics as the Any that Stats returns: io.containerd.cgroups.v1.Metrics on a
// legacy or hybrid host, io.containerd.cgroups.v2.Metrics on a unified one (what runc-v2 sends). The
// cgroup is located once, from the init's /proc/<pid>/cgroup while it lives, then read on every call.
// Loaded only when a Stats call needs it; the metrics protos sit in their own generated module.
import { cgroupMode } from './mode.js';
import { cgroupPathsV1, METRICS_V1_TYPE_URL, statsV1 } from './stats-v1.js';
import { cgroupPathV2, METRICS_V2_TYPE_URL, statsV2 } from './stats-v2.js';
import { io } from '../gen/cgroups.js';

export { CgroupNotFoundError } from './parse.js';

export type CgroupLocation = { version: 1; paths: Record<string, string> } | { version: 2; dir: string };

export function locateCgroup(pid: number): CgroupLocation {
  return cgroupMode() === 'unified' ? { version: 2, dir: cgroupPathV2(pid) } : { version: 1, paths: cgroupPathsV1(pid) };
}

/** Throws CgroupNotFoundError once the cgroup is gone. */
export function readStats(where: CgroupLocation): { typeUrl: string; value: Uint8Array } {
  if (where.version === 2) {
    return { typeUrl: METRICS_V2_TYPE_URL, value: io.containerd.cgroups.v2.Metrics.encode(statsV2(where.dir)).finish() };
  }
  return { typeUrl: METRICS_V1_TYPE_URL, value: io.containerd.cgroups.v1.Metrics.encode(statsV1(where.paths)).finish() };
}
