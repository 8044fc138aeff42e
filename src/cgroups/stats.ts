// A container's cgroup statistics as the Any that Stats returns: io.containerd.cgroups.v1.Metrics on a
// legacy or hybrid host, io.containerd.cgroups.v2.Metrics on a unified one (what runc-v2 sends), read from
// the cgroup that locate.ts found.
// Loaded only when a Stats call needs it; the metrics protos sit in their own generated module.
import { METRICS_V1_TYPE_URL, statsV1 } from './stats-v1.js';
import { METRICS_V2_TYPE_URL, hugetlbListingFor, statsV2, type StatsWarn } from './stats-v2.js';
import type { CgroupLocation } from './locate.js';
import { io } from '../gen/cgroups.js';

export { CgroupNotFoundError } from './parse.js';

/** The containerd that started this daemon decides which hugetlb page sizes v2 Metrics list. */
const HUGETLB_LISTING = hugetlbListingFor(process.env);

/**
 * Throws CgroupNotFoundError once the cgroup is gone. `warn` gets what upstream only logs (a pressure file
 * that does not parse).
 */
export function readStats(where: CgroupLocation, warn?: StatsWarn): { typeUrl: string; value: Uint8Array } {
  if (where.version === 2) {
    const m = statsV2(where.dir, { hugetlb: HUGETLB_LISTING, warn });
    return { typeUrl: METRICS_V2_TYPE_URL, value: io.containerd.cgroups.v2.Metrics.encode(m).finish() };
  }
  return { typeUrl: METRICS_V1_TYPE_URL, value: io.containerd.cgroups.v1.Metrics.encode(statsV1(where.paths)).finish() };
}
