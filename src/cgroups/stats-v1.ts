// cgroup v1 statistics → io.containerd.cgroups.v1.Metrics, filled the way containerd/cgroups
// v1.x `cgroup.Stat(cgroups.IgnoreNotExist)` fills it for runc-v2 on legacy and hybrid hosts.
//
// Rules kept from upstream:
//   - Metrics.cpu always exists with empty usage and throttling, even if cpu/cpuacct are absent.
//   - Each controller is read on its own; a missing file (ENOENT) ends that controller's section
//     silently, keeping whatever it had already filled (e.g. memory.stat counters without the
//     usage entries when memory.oom_control is missing). Any other error (bad format, EACCES)
//     fails the whole call.
//   - Controllers whose directory does not exist are skipped; if none exists the cgroup is gone
//     and CgroupNotFoundError is thrown.
//   - NetworkStat and CgroupStats are never filled (runc-v2 does not either).
import fs from 'node:fs';
import path from 'node:path';
import type { io } from '../gen/cgroups.js';
import {
  CgroupFormatError, CgroupNotFoundError, exists, fields, isNotExist, parseRdmaLines, parseUint, readText,
  readUint, scanLines, strictParseUint, u64,
} from './parse.js';

import { cgroupPathsV1 } from './paths.js';

export { cgroupPathsV1, resolveCgroupPathsV1 } from './paths.js';

export type MetricsV1 = io.containerd.cgroups.v1.Metrics.$Properties;
type MemoryStatV1 = io.containerd.cgroups.v1.MemoryStat.$Properties;
type MemoryEntryV1 = io.containerd.cgroups.v1.MemoryEntry.$Properties;
type BlkIOEntryV1 = io.containerd.cgroups.v1.BlkIOEntry.$Properties;
type HugetlbStatV1 = io.containerd.cgroups.v1.HugetlbStat.$Properties;

/** Any type URL of the message built here (bare full name, as containerd 1.6 expects). */
export const METRICS_V1_TYPE_URL = 'io.containerd.cgroups.v1.Metrics';

/** USER_HZ; upstream hard-codes 100 too (sysconf(_SC_CLK_TCK) is 100 on every Linux port). */
const CLOCK_TICKS = 100n;
const NS_PER_SECOND = 1_000_000_000n;

export interface StatsV1Options {
  /** Default "/proc" (for /proc/partitions, the blkio device names). */
  procRoot?: string;
  /** Default "/sys/kernel/mm/hugepages" (the huge page sizes to report). */
  hugepagesDir?: string;
}

/** Go bufio-style "key value" line parse of containerd/cgroups v1 (exactly two fields). */
function parseKV(line: string, file: string): [string, bigint] {
  const parts = fields(line);
  if (parts.length !== 2) throw new CgroupFormatError(`${file}: invalid format: ${JSON.stringify(line)}`);
  try {
    return [parts[0]!, parseUint(parts[1]!)];
  } catch (err) {
    throw new CgroupFormatError(`${file}: ${(err as Error).message}`);
  }
}

function readKVFile(file: string): Map<string, bigint> {
  const raw = new Map<string, bigint>();
  for (const line of scanLines(readText(file))) {
    const [k, v] = parseKV(line, file);
    raw.set(k, v);
  }
  return raw;
}

// ---- controllers -------------------------------------------------------------------------------

function statPids(dir: string, m: MetricsV1): void {
  const current = readUint(path.join(dir, 'pids.current'));
  const maxText = readText(path.join(dir, 'pids.max')).trim();
  let limit = 0n;
  if (maxText !== 'max') {
    try {
      limit = parseUint(maxText);
    } catch (err) {
      throw new CgroupFormatError(`${path.join(dir, 'pids.max')}: ${(err as Error).message}`);
    }
  }
  m.pids = { current: u64(current), limit: u64(limit) };
}

function statCpuacct(dir: string, m: MetricsV1): void {
  const statFile = path.join(dir, 'cpuacct.stat');
  const raw = readKVFile(statFile);
  const user = raw.get('user');
  const system = raw.get('system');
  if (user === undefined) throw new CgroupFormatError(`expected field "user" but not found in ${statFile}`);
  if (system === undefined) throw new CgroupFormatError(`expected field "system" but not found in ${statFile}`);
  const total = readUint(path.join(dir, 'cpuacct.usage'));
  const perCpuFile = path.join(dir, 'cpuacct.usage_percpu');
  const perCpu = fields(readText(perCpuFile)).map((f) => {
    const v = strictParseUint(f);
    if (v === null) throw new CgroupFormatError(`${perCpuFile}: cannot parse ${JSON.stringify(f)}`);
    return u64(v);
  });
  // Ticks → ns with Go's uint64 arithmetic (the product wraps exactly as upstream's would).
  const toNs = (ticks: bigint): bigint => BigInt.asUintN(64, ticks * NS_PER_SECOND) / CLOCK_TICKS;
  const usage = m.cpu!.usage!;
  usage.total = u64(total);
  usage.user = u64(toNs(user));
  usage.kernel = u64(toNs(system));
  usage.perCpu = perCpu;
}

function statCpu(dir: string, m: MetricsV1): void {
  const file = path.join(dir, 'cpu.stat');
  const throttling = m.cpu!.throttling!;
  for (const line of scanLines(readText(file))) {
    const [k, v] = parseKV(line, file);
    if (k === 'nr_periods') throttling.periods = u64(v);
    else if (k === 'nr_throttled') throttling.throttledPeriods = u64(v);
    else if (k === 'throttled_time') throttling.throttledTime = u64(v);
  }
}

// memory.stat key → MemoryStat field, in upstream's order.
const MEMORY_STAT_KEYS: ReadonlyArray<[string, keyof MemoryStatV1]> = [
  ['cache', 'cache'], ['rss', 'rss'], ['rss_huge', 'rssHuge'], ['mapped_file', 'mappedFile'],
  ['dirty', 'dirty'], ['writeback', 'writeback'], ['pgpgin', 'pgPgIn'], ['pgpgout', 'pgPgOut'],
  ['pgfault', 'pgFault'], ['pgmajfault', 'pgMajFault'], ['inactive_anon', 'inactiveAnon'],
  ['active_anon', 'activeAnon'], ['inactive_file', 'inactiveFile'], ['active_file', 'activeFile'],
  ['unevictable', 'unevictable'], ['hierarchical_memory_limit', 'hierarchicalMemoryLimit'],
  ['hierarchical_memsw_limit', 'hierarchicalSwapLimit'], ['total_cache', 'totalCache'],
  ['total_rss', 'totalRss'], ['total_rss_huge', 'totalRssHuge'], ['total_mapped_file', 'totalMappedFile'],
  ['total_dirty', 'totalDirty'], ['total_writeback', 'totalWriteback'], ['total_pgpgin', 'totalPgPgIn'],
  ['total_pgpgout', 'totalPgPgOut'], ['total_pgfault', 'totalPgFault'], ['total_pgmajfault', 'totalPgMajFault'],
  ['total_inactive_anon', 'totalInactiveAnon'], ['total_active_anon', 'totalActiveAnon'],
  ['total_inactive_file', 'totalInactiveFile'], ['total_active_file', 'totalActiveFile'],
  ['total_unevictable', 'totalUnevictable'],
];

function statMemory(dir: string, m: MetricsV1): void {
  const statFile = path.join(dir, 'memory.stat');
  const statText = readText(statFile);
  const mem: MemoryStatV1 = { usage: {}, swap: {}, kernel: {}, kernelTcp: {} };
  m.memory = mem;
  const raw = new Map<string, bigint>();
  scanLines(statText).forEach((line, i) => {
    const parts = fields(line);
    if (parts.length !== 2) throw new CgroupFormatError(`${statFile}: ${i}: invalid format`);
    try {
      raw.set(parts[0]!, parseUint(parts[1]!));
    } catch (err) {
      throw new CgroupFormatError(`${statFile}: ${i}: ${(err as Error).message}`);
    }
  });
  for (const [key, field] of MEMORY_STAT_KEYS) {
    (mem as Record<string, unknown>)[field] = u64(raw.get(key) ?? 0n);
  }

  const oom = readKVFile(path.join(dir, 'memory.oom_control'));
  m.memoryOomControl = {
    oomKillDisable: u64(oom.get('oom_kill_disable') ?? 0n),
    underOom: u64(oom.get('under_oom') ?? 0n),
    oomKill: u64(oom.get('oom_kill') ?? 0n),
  };

  // Upstream loads the memory controller without OptionalSwap, so a missing memory.memsw.* file
  // (swap accounting off) ends the section here like any other missing file.
  const entries: Array<[string, MemoryEntryV1]> = [
    ['memory', mem.usage!], ['memory.memsw', mem.swap!], ['memory.kmem', mem.kernel!], ['memory.kmem.tcp', mem.kernelTcp!],
  ];
  for (const [prefix, entry] of entries) {
    entry.usage = u64(readUint(path.join(dir, `${prefix}.usage_in_bytes`)));
    entry.max = u64(readUint(path.join(dir, `${prefix}.max_usage_in_bytes`)));
    entry.failcnt = u64(readUint(path.join(dir, `${prefix}.failcnt`)));
    entry.limit = u64(readUint(path.join(dir, `${prefix}.limit_in_bytes`)));
  }
}

/** /proc/partitions → "major:minor" → "/dev/<name>" (first occurrence wins). */
function readPartitions(procRoot: string): Map<string, string> {
  const file = path.join(procRoot, 'partitions');
  const devices = new Map<string, string>();
  scanLines(readText(file)).forEach((line, i) => {
    if (i < 2) return; // header and blank line
    const f = fields(line);
    if (f.length < 4 || !/^-?[0-9]+$/.test(f[0]!) || !/^-?[0-9]+$/.test(f[1]!)) {
      throw new CgroupFormatError(`${file}: invalid line ${JSON.stringify(line)}`);
    }
    const key = `${BigInt(f[0]!)}:${BigInt(f[1]!)}`;
    if (!devices.has(key)) devices.set(key, path.posix.join('/dev', f[3]!));
  });
  return devices;
}

function readBlkioEntries(dir: string, name: string, devices: Map<string, string>, into: BlkIOEntryV1[]): void {
  const file = path.join(dir, `blkio.${name}`);
  for (const line of scanLines(readText(file))) {
    // "maj:min Op value", "maj:min value" or "Total value"
    const f = line.split(/[ :]/).filter((x) => x !== '');
    if (f.length < 3) {
      if (f.length === 2 && f[0] === 'Total') continue;
      throw new CgroupFormatError(`invalid line found while parsing ${file}: ${line}`);
    }
    const major = strictParseUint(f[0]!);
    const minor = strictParseUint(f[1]!);
    const valueField = f.length === 4 ? 3 : 2;
    const value = strictParseUint(f[valueField]!);
    if (major === null || minor === null || value === null) {
      throw new CgroupFormatError(`invalid line found while parsing ${file}: ${line}`);
    }
    into.push({
      op: f.length === 4 ? f[2]! : '',
      device: devices.get(`${major}:${minor}`) ?? '',
      major: u64(major),
      minor: u64(minor),
      value: u64(value),
    });
  }
}

function statBlkio(dir: string, m: MetricsV1, procRoot: string): void {
  const b = {
    ioServiceBytesRecursive: [] as BlkIOEntryV1[],
    ioServicedRecursive: [] as BlkIOEntryV1[],
    ioQueuedRecursive: [] as BlkIOEntryV1[],
    ioServiceTimeRecursive: [] as BlkIOEntryV1[],
    ioWaitTimeRecursive: [] as BlkIOEntryV1[],
    ioMergedRecursive: [] as BlkIOEntryV1[],
    ioTimeRecursive: [] as BlkIOEntryV1[],
    sectorsRecursive: [] as BlkIOEntryV1[],
  };
  m.blkio = b;
  // CFQ files first (only on kernels that still have them), in upstream's order.
  const cfq: Array<[string, BlkIOEntryV1[]]> = exists(path.join(dir, 'blkio.io_serviced_recursive'))
    ? [
        ['sectors_recursive', b.sectorsRecursive], ['io_service_bytes_recursive', b.ioServiceBytesRecursive],
        ['io_serviced_recursive', b.ioServicedRecursive], ['io_queued_recursive', b.ioQueuedRecursive],
        ['io_service_time_recursive', b.ioServiceTimeRecursive], ['io_wait_time_recursive', b.ioWaitTimeRecursive],
        ['io_merged_recursive', b.ioMergedRecursive], ['time_recursive', b.ioTimeRecursive],
      ]
    : [];
  const devices = readPartitions(procRoot);
  let size = 0;
  for (const [name, into] of cfq) {
    readBlkioEntries(dir, name, devices, into);
    size += into.length;
  }
  if (size > 0) return;
  // No CFQ data (blk-mq kernels, or devices not using CFQ): the throttle files, which count
  // I/O of this cgroup only (upstream uses the non-recursive files here).
  readBlkioEntries(dir, 'throttle.io_serviced', devices, b.ioServicedRecursive);
  readBlkioEntries(dir, 'throttle.io_service_bytes', devices, b.ioServiceBytesRecursive);
}

function statRdma(dir: string, m: MetricsV1): void {
  const current = readText(path.join(dir, 'rdma.current')).split('\n');
  const max = readText(path.join(dir, 'rdma.max')).split('\n');
  // A device went away between the two reads: upstream reports nothing.
  if (current.length !== max.length) return;
  m.rdma = { current: parseRdmaLines(current), limit: parseRdmaLines(max) };
}

/**
 * Huge page sizes as upstream names them: /sys/kernel/mm/hugepages/hugepages-2048kB → "2MB",
 * hugepages-1048576kB → "1GB" (sorted by directory name, like Go's os.ReadDir).
 */
export function hugePageSizes(hugepagesDir = '/sys/kernel/mm/hugepages'): string[] {
  const units = ['B', 'KB', 'MB', 'GB', 'TB', 'PB'];
  const mult: Record<string, number> = { b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 };
  const out: string[] = [];
  for (const name of fs.readdirSync(hugepagesDir).sort()) {
    const sizeText = name.split('-')[1] ?? '';
    const mm = /^([0-9]+(?:\.[0-9]+)?)\s*([kmgtp]?)i?b?$/i.exec(sizeText);
    if (!mm) throw new CgroupFormatError(`${hugepagesDir}: cannot parse huge page size of ${name}`);
    let size = Math.trunc(Number(mm[1]) * mult[(mm[2] || 'b').toLowerCase()]!);
    let i = 0;
    while (size >= 1024 && i < units.length - 1) {
      size /= 1024;
      i++;
    }
    out.push(`${size}${units[i]}`);
  }
  return out;
}

function statHugetlb(dir: string, m: MetricsV1, sizes: string[]): void {
  const list: HugetlbStatV1[] = [];
  m.hugetlb = list;
  for (const size of sizes) {
    const prefix = path.join(dir, `hugetlb.${size}`);
    const usage = readUint(`${prefix}.usage_in_bytes`);
    const max = readUint(`${prefix}.max_usage_in_bytes`);
    const failcnt = readUint(`${prefix}.failcnt`);
    list.push({ pagesize: size, usage: u64(usage), max: u64(max), failcnt: u64(failcnt) });
  }
}

// ---- entry point -------------------------------------------------------------------------------

/**
 * Builds io.containerd.cgroups.v1.Metrics from the container's v1 cgroup directories
 * (controller → absolute dir, as cgroupPathsV1 returns them; controllers without a stats reader,
 * such as freezer or devices, only count for the "does the cgroup exist" check).
 */
export function statsV1(paths: Record<string, string>, opts: StatsV1Options = {}): MetricsV1 {
  const procRoot = opts.procRoot ?? '/proc';
  const live = Object.entries(paths).filter(([, dir]) => exists(dir));
  if (live.length === 0) {
    const where = Object.values(paths).join(', ') || 'no mounted v1 controller';
    throw new CgroupNotFoundError(`cgroup does not exist (${where})`);
  }
  const dirs = new Map(live);
  const m: MetricsV1 = { cpu: { usage: {}, throttling: {} } };

  const readers: Array<[string, (dir: string) => void]> = [
    ['pids', (d) => statPids(d, m)],
    ['cpu', (d) => statCpu(d, m)],
    ['cpuacct', (d) => statCpuacct(d, m)],
    ['memory', (d) => statMemory(d, m)],
    ['blkio', (d) => statBlkio(d, m, procRoot)],
    ['rdma', (d) => statRdma(d, m)],
    ['hugetlb', (d) => {
      let sizes: string[];
      try {
        sizes = hugePageSizes(opts.hugepagesDir);
      } catch (err) {
        if (isNotExist(err)) return; // no huge page support: upstream drops the controller
        throw err;
      }
      statHugetlb(d, m, sizes);
    }],
  ];
  for (const [controller, read] of readers) {
    const dir = dirs.get(controller);
    if (dir === undefined) continue;
    try {
      read(dir);
    } catch (err) {
      if (!isNotExist(err)) throw err; // cgroups.IgnoreNotExist
    }
  }
  return m;
}

/** cgroupPathsV1(pid) + statsV1. */
export function statsV1ForPid(pid: number, opts: StatsV1Options = {}): MetricsV1 {
  return statsV1(cgroupPathsV1(pid, { procRoot: opts.procRoot }), opts);
}
