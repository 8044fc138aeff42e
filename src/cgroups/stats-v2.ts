// cgroup v2 statistics → io.containerd.cgroups.v2.Metrics, filled the way containerd/cgroups fills it for
// runc-v2 on unified hosts: `v2.Manager.Stat()` of v1.0.4 (containerd 1.6) and `cgroup2.Manager.Stat()` of
// v3.0.5 (containerd 2.1; 2.0 has v3.0.3, 1.7.3+ v3.0.2, which has no PSI, distributions may build
// against newer ones).
//
// Rules kept from upstream:
//   - cpu.stat and memory.stat are read only when "cpu" / "memory" are listed in the cgroup's own
//     cgroup.controllers (so a cgroup whose parent did not delegate cpu reports zero CPU even
//     though the kernel always provides the core cpu.stat keys).
//   - pids, cpu, memory, io and rdma are always present (zero / empty when the files are missing);
//     memory_events only when memory.events exists and has keys; hugetlb is a list.
//   - "max" is 2^64-1 in pids.current/pids.max, memory.max, memory.swap.*, memory.peak, hugetlb.*.max.
//   - Missing or unparsable single-value memory files read as 0; a malformed cpu.stat/memory.stat
//     or memory.events line fails the call.
//   - A missing cgroup (no cgroup.controllers) is an error: CgroupNotFoundError here.
//
// What cgroups v3 added, reported whatever containerd asks (older decoders skip fields they do not know,
// so the newer message is a superset that a 1.6 ctr or CRI reads exactly as before):
//   - PSI (cpu.psi, memory.psi, io.psi) from cpu.pressure, memory.pressure, io.pressure: read whatever
//     cgroup.controllers says (the kernel keeps these files in every cgroup while PSI is on); absent
//     when the file is missing or unreadable (PSI off: psi=0, or cgroup.pressure set to 0 makes a read
//     fail with EOPNOTSUPP), and absent as a whole when a line does not parse.
//   - memory.max_usage / swap_max_usage from memory.peak / memory.swap.peak (v3.0.3+).
//   - cpu.nr_bursts / burst_usec (cpu.stat), memory_events.oom_group_kill, hugetlb failcnt (the "max"
//     count of hugetlb.<size>.events): v3.1 (containerd 2.2+), same files and rules.
// One thing differs by release in a way a client can see: which hugetlb page sizes are listed (see
// HugetlbListing).
import fs from 'node:fs';
import path from 'node:path';
import type { io } from '../gen/cgroups.js';
import {
  CgroupFormatError, CgroupNotFoundError, U64_MAX, fields, isNotExist, parseRdmaLines, parseUint, readText,
  scanLines, strictParseUint, u64,
} from './parse.js';
import { cgroupPathV2, type ProcOptions } from './paths.js';

export { cgroupPathV2, resolveCgroupPathV2 } from './paths.js';

export type MetricsV2 = io.containerd.cgroups.v2.Metrics.$Properties;
type MemoryStatV2 = io.containerd.cgroups.v2.MemoryStat.$Properties;
type IOEntryV2 = io.containerd.cgroups.v2.IOEntry.$Properties;
type HugeTlbStatV2 = io.containerd.cgroups.v2.HugeTlbStat.$Properties;
type PSIStatsV2 = io.containerd.cgroups.v2.PSIStats.$Properties;
type PSIDataV2 = io.containerd.cgroups.v2.PSIData.$Properties;

/** Something upstream logs and carries on after (a pressure file that does not parse, an odd huge page size). */
export type StatsWarn = (msg: string, fields: Record<string, unknown>) => void;

/**
 * Which hugetlb entries there are. cgroups v1.0.4 (containerd 1.6) lists the page sizes it finds among
 * the cgroup's `hugetlb.<size>.*` files, so a cgroup without the hugetlb controller has none; cgroups
 * v3.0.2+ (containerd 1.7.3+, 2.x) lists every size in /sys/kernel/mm/hugepages, with zero values when
 * the cgroup has no hugetlb files (1.7.0-1.7.2, on v3.0.1, still listed files).
 */
export type HugetlbListing = 'cgroup-files' | 'host-sizes';

/**
 * The listing of the containerd that started this process: containerd sets MAX_SHIM_VERSION in a shim's
 * environment from 1.7 on (the first release on cgroups v3), 1.6 does not; the daemon inherits the
 * environment of the shim that started it.
 */
export function hugetlbListingFor(env: NodeJS.ProcessEnv = process.env): HugetlbListing {
  return env.MAX_SHIM_VERSION === undefined ? 'cgroup-files' : 'host-sizes';
}

export interface StatsV2Options {
  /** Default: hugetlbListingFor(process.env). */
  hugetlb?: HugetlbListing;
  /** Where the host's huge page sizes are listed (default /sys/kernel/mm/hugepages). */
  hugepagesDir?: string;
  /** Default: silent. */
  warn?: StatsWarn;
  /** How a pressure file is read (tests make it fail the way the kernel does). */
  readPressure?: (file: string) => string;
}

/** Any type URL of the message built here (bare full name, as containerd 1.6 expects). */
export const METRICS_V2_TYPE_URL = 'io.containerd.cgroups.v2.Metrics';

/** A value as upstream keeps it: a number, or the raw string when it did not parse (e.g. "max"). */
type Raw = bigint | string;

/** v2 parseKV: exactly two fields; a value that is not a number is kept as a string. */
function readKVStatsFile(dir: string, name: string, out: Map<string, Raw>): void {
  const file = path.join(dir, name);
  for (const line of scanLines(readText(file))) {
    const parts = fields(line);
    if (parts.length !== 2) {
      throw new CgroupFormatError(`error while parsing ${file} (line=${JSON.stringify(line)}): invalid format`);
    }
    let v: Raw;
    try {
      v = parseUint(parts[1]!);
    } catch {
      v = parts[1]!;
    }
    out.set(parts[0]!, v);
  }
}

function readSingleFile(dir: string, name: string, out: Map<string, Raw>): void {
  const s = readText(path.join(dir, name)).trim();
  let v: Raw;
  try {
    v = parseUint(s);
  } catch {
    v = s;
  }
  out.set(name, v);
}

function uintValue(key: string, out: Map<string, Raw>): bigint {
  const v = out.get(key);
  return typeof v === 'bigint' ? v : 0n;
}

function pidValue(key: string, out: Map<string, Raw>): bigint {
  const v = out.get(key);
  if (typeof v === 'bigint') return v;
  return v === 'max' ? U64_MAX : 0n;
}

/** getStatFileContentUint64: unreadable → 0, "max" → 2^64-1, unparsable → 0. */
function statFileUint(file: string): bigint {
  let text: string;
  try {
    text = readText(file);
  } catch {
    return 0n;
  }
  const t = text.trim();
  if (t === 'max') return U64_MAX;
  try {
    return parseUint(t);
  } catch {
    return 0n;
  }
}

/**
 * cgroups v3.1 getKVStatsFileContentUint64: the value of one "key value" line; 0 when the file is
 * unreadable, the key is missing or its value does not parse.
 */
function kvFileUint(file: string, key: string): bigint {
  let text: string;
  try {
    text = readText(file);
  } catch {
    return 0n;
  }
  for (const line of scanLines(text)) {
    const parts = fields(line);
    if (parts.length !== 2 || parts[0] !== key) continue;
    try {
      return parseUint(parts[1]!);
    } catch {
      return 0n;
    }
  }
  return 0n;
}

/** Go strconv.ParseFloat(s, 64) for what it accepts in decimal (and inf/nan); null where it fails. */
export function parseGoFloat(s: string): number | null {
  if (/^[+-]?(inf|infinity)$/i.test(s)) return s.startsWith('-') ? -Infinity : Infinity;
  if (/^[+-]?nan$/i.test(s)) return NaN;
  if (!/^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/.test(s)) return null;
  const v = Number(s);
  return Number.isFinite(v) ? v : null; // out of range: ParseFloat's ErrRange
}

/** cgroups v3 parsePSIData: "key=value" fields; avg10/avg60/avg300 floats, total a uint64, others ignored. */
function parsePsiData(parts: string[]): PSIDataV2 | string {
  const data: PSIDataV2 = { avg10: 0, avg60: 0, avg300: 0, total: u64(0n) };
  for (const f of parts) {
    const eq = f.indexOf('=');
    if (eq < 0) return `invalid PSI data: ${JSON.stringify(f)}`;
    const k = f.slice(0, eq);
    const v = f.slice(eq + 1);
    if (k === 'avg10' || k === 'avg60' || k === 'avg300') {
      const n = parseGoFloat(v);
      if (n === null) return `invalid ${k} PSI value: ${JSON.stringify(v)}`;
      data[k] = n;
    } else if (k === 'total') {
      const n = strictParseUint(v);
      if (n === null) return `invalid total PSI value: ${JSON.stringify(v)}`;
      data.total = u64(n);
    }
  }
  return data;
}

/** EOPNOTSUPP on Linux (errno 95; libuv names it ENOTSUP): what a read of a pressure file gets with PSI off. */
function isNotSupported(err: unknown): boolean {
  const code = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
  return code === 'ENOTSUP' || code === 'EOPNOTSUPP';
}

/**
 * A *.pressure file as cgroups v3 getStatPSIFromFile reads it: null when the file cannot be read (missing,
 * or PSI off for the cgroup) or a "some"/"full" line does not parse; otherwise the lines seen ("some",
 * "full"; others are skipped), so an empty file gives an empty PSIStats, as upstream.
 */
export function readPsi(file: string, warn?: StatsWarn, read: (file: string) => string = readText): PSIStatsV2 | null {
  let text: string;
  try {
    text = read(file);
  } catch (err) {
    // upstream: an open error is silent, a read error is logged unless it is ENOTSUP/EOPNOTSUPP
    if (!isNotExist(err) && !isNotSupported(err)) warn?.('unable to read PSI data', { file, err: (err as Error).message });
    return null;
  }
  const psi: PSIStatsV2 = {};
  for (const line of scanLines(text)) {
    const parts = fields(line);
    const kind = parts[0];
    if (kind !== 'some' && kind !== 'full') continue; // (an empty line would make upstream panic)
    const data = parsePsiData(parts.slice(1));
    if (typeof data === 'string') {
      warn?.('failed to read PSI file', { file, err: data });
      return null;
    }
    psi[kind] = data;
  }
  return psi;
}

/**
 * cgroups v3 hugePageSizes: the `hugepages-<n>kB` entries of /sys/kernel/mm/hugepages in directory
 * order, named as the kernel names the hugetlb cgroup files (2MB, 1GB, 64KB). Read once per directory,
 * as upstream reads it once per process.
 */
const hugePageSizesCache = new Map<string, string[]>();

export function hugePageSizes(dir = '/sys/kernel/mm/hugepages', warn?: StatsWarn): string[] {
  const cached = hugePageSizesCache.get(dir);
  if (cached) return cached;
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    names = [];
  }
  const sizes: string[] = [];
  for (const name of names) {
    if (!name.startsWith('hugepages-')) continue;
    let val = name.slice('hugepages-'.length);
    if (!val.endsWith('kB') || !/^[+-]?[0-9]+$/.test(val.slice(0, -2))) {
      warn?.('hugePageSizes: unexpected name', { file: name });
      continue;
    }
    val = val.slice(0, -2);
    const size = Number(val);
    if (size >= 2 ** 20) sizes.push(`${Math.floor(size / 2 ** 20)}GB`);
    else if (size >= 2 ** 10) sizes.push(`${Math.floor(size / 2 ** 10)}MB`);
    else sizes.push(`${val}KB`);
  }
  hugePageSizesCache.set(dir, sizes);
  return sizes;
}

// memory.stat keys (same names in the message), in field order.
const MEMORY_STAT_KEYS: ReadonlyArray<[string, keyof MemoryStatV2]> = [
  ['anon', 'anon'], ['file', 'file'], ['kernel_stack', 'kernelStack'], ['slab', 'slab'], ['sock', 'sock'],
  ['shmem', 'shmem'], ['file_mapped', 'fileMapped'], ['file_dirty', 'fileDirty'],
  ['file_writeback', 'fileWriteback'], ['anon_thp', 'anonThp'], ['inactive_anon', 'inactiveAnon'],
  ['active_anon', 'activeAnon'], ['inactive_file', 'inactiveFile'], ['active_file', 'activeFile'],
  ['unevictable', 'unevictable'], ['slab_reclaimable', 'slabReclaimable'],
  ['slab_unreclaimable', 'slabUnreclaimable'], ['pgfault', 'pgfault'], ['pgmajfault', 'pgmajfault'],
  ['workingset_refault', 'workingsetRefault'], ['workingset_activate', 'workingsetActivate'],
  ['workingset_nodereclaim', 'workingsetNodereclaim'], ['pgrefill', 'pgrefill'], ['pgscan', 'pgscan'],
  ['pgsteal', 'pgsteal'], ['pgactivate', 'pgactivate'], ['pgdeactivate', 'pgdeactivate'],
  ['pglazyfree', 'pglazyfree'], ['pglazyfreed', 'pglazyfreed'], ['thp_fault_alloc', 'thpFaultAlloc'],
  ['thp_collapse_alloc', 'thpCollapseAlloc'],
];

/** io.stat: "maj:min rbytes=.. wbytes=.. rios=.. wios=.. dbytes=.. dios=..", split on single spaces. */
function readIoStats(dir: string): IOEntryV2[] {
  const usage: IOEntryV2[] = [];
  let text: string;
  try {
    text = readText(path.join(dir, 'io.stat'));
  } catch {
    return usage;
  }
  for (const line of text.split('\n')) {
    const parts = line.split(' ');
    if (parts.length < 2) continue;
    const majmin = parts[0]!.split(':');
    if (majmin.length !== 2) continue;
    const major = strictParseUint(majmin[0]!);
    const minor = strictParseUint(majmin[1]!);
    if (major === null || minor === null) return usage; // upstream stops at the first bad device
    const entry: IOEntryV2 = { major: u64(major), minor: u64(minor) };
    for (const kv of parts.slice(1)) {
      const pair = kv.split('=');
      if (pair.length !== 2) continue;
      const v = strictParseUint(pair[1]!);
      if (v === null) continue;
      if (pair[0] === 'rbytes') entry.rbytes = u64(v);
      else if (pair[0] === 'wbytes') entry.wbytes = u64(v);
      else if (pair[0] === 'rios') entry.rios = u64(v);
      else if (pair[0] === 'wios') entry.wios = u64(v);
    }
    usage.push(entry);
  }
  return usage;
}

function rdmaStats(file: string) {
  let text: string;
  try {
    text = readText(file);
  } catch {
    return [];
  }
  return parseRdmaLines(text.split('\n'));
}

/**
 * cgroups v1.0.4 readHugeTlbStats: hugetlb.<size>.current / hugetlb.<size>.max, one entry per page size
 * seen among the file names (upstream returns them in Go map order, i.e. unordered; we keep
 * directory-name order).
 */
function readHugeTlbFromFiles(dir: string): HugeTlbStatV2[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir).sort();
  } catch {
    return [];
  }
  const bySize = new Map<string, HugeTlbStatV2>();
  for (const name of names) {
    if (!name.includes('hugetlb') || !(name.endsWith('max') || name.endsWith('current'))) continue;
    const parts = name.split('.');
    const pagesize = parts[1] ?? '';
    const entry = bySize.get(pagesize) ?? { pagesize };
    let text: string;
    try {
      text = readText(path.join(dir, name)).trim();
    } catch {
      continue;
    }
    const value = text === 'max' ? U64_MAX : strictParseUint(text);
    if (value === null) continue;
    if (parts[2] === 'max') entry.max = u64(value);
    else if (parts[2] === 'current') entry.current = u64(value);
    bySize.set(pagesize, entry);
  }
  return [...bySize.values()];
}

/** cgroups v3 readHugeTlbStats: one entry per host page size; a missing file reads as 0. */
function readHugeTlbForSizes(dir: string, sizes: string[]): HugeTlbStatV2[] {
  return sizes.map((pagesize) => ({
    max: u64(statFileUint(path.join(dir, `hugetlb.${pagesize}.max`))),
    current: u64(statFileUint(path.join(dir, `hugetlb.${pagesize}.current`))),
    pagesize,
  }));
}

function readHugeTlbStats(dir: string, opts: StatsV2Options): HugeTlbStatV2[] {
  const listing = opts.hugetlb ?? hugetlbListingFor();
  const entries = listing === 'host-sizes'
    ? readHugeTlbForSizes(dir, hugePageSizes(opts.hugepagesDir, opts.warn))
    : readHugeTlbFromFiles(dir);
  // v3.1: failcnt is the "max" count of hugetlb.<size>.events (a field cgroups v1.0.4 decoders skip)
  for (const e of entries) e.failcnt = u64(kvFileUint(path.join(dir, `hugetlb.${e.pagesize}.events`), 'max'));
  return entries;
}

/** Builds io.containerd.cgroups.v2.Metrics from a cgroup2 directory. */
export function statsV2(dir: string, opts: StatsV2Options = {}): MetricsV2 {
  let controllers: string[];
  try {
    controllers = fields(readText(path.join(dir, 'cgroup.controllers')));
  } catch (err) {
    if (isNotExist(err)) throw new CgroupNotFoundError(`cgroup does not exist (${dir})`);
    throw err;
  }
  const out = new Map<string, Raw>();
  for (const c of controllers) {
    if (c !== 'cpu' && c !== 'memory') continue;
    try {
      readKVStatsFile(dir, `${c}.stat`, out);
    } catch (err) {
      if (!isNotExist(err)) throw err;
    }
  }
  for (const name of ['pids.current', 'pids.max']) {
    try {
      readSingleFile(dir, name, out);
    } catch (err) {
      if (!isNotExist(err)) throw err;
    }
  }
  const events = new Map<string, Raw>();
  try {
    readKVStatsFile(dir, 'memory.events', events);
  } catch (err) {
    if (!isNotExist(err)) throw err;
  }

  const memory: MemoryStatV2 = {};
  for (const [key, field] of MEMORY_STAT_KEYS) (memory as Record<string, unknown>)[field] = u64(uintValue(key, out));
  memory.usage = u64(statFileUint(path.join(dir, 'memory.current')));
  memory.usageLimit = u64(statFileUint(path.join(dir, 'memory.max')));
  memory.swapUsage = u64(statFileUint(path.join(dir, 'memory.swap.current')));
  memory.swapLimit = u64(statFileUint(path.join(dir, 'memory.swap.max')));
  memory.maxUsage = u64(statFileUint(path.join(dir, 'memory.peak')));
  memory.swapMaxUsage = u64(statFileUint(path.join(dir, 'memory.swap.peak')));
  const psi = (name: string): PSIStatsV2 | null => readPsi(path.join(dir, name), opts.warn, opts.readPressure);
  memory.psi = psi('memory.pressure');

  const m: MetricsV2 = {
    pids: { current: u64(pidValue('pids.current', out)), limit: u64(pidValue('pids.max', out)) },
    cpu: {
      usageUsec: u64(uintValue('usage_usec', out)),
      userUsec: u64(uintValue('user_usec', out)),
      systemUsec: u64(uintValue('system_usec', out)),
      nrPeriods: u64(uintValue('nr_periods', out)),
      nrThrottled: u64(uintValue('nr_throttled', out)),
      throttledUsec: u64(uintValue('throttled_usec', out)),
      psi: psi('cpu.pressure'),
      nrBursts: u64(uintValue('nr_bursts', out)),
      burstUsec: u64(uintValue('burst_usec', out)),
    },
    memory,
  };
  if (events.size > 0) {
    m.memoryEvents = {
      low: u64(uintValue('low', events)),
      high: u64(uintValue('high', events)),
      max: u64(uintValue('max', events)),
      oom: u64(uintValue('oom', events)),
      oomKill: u64(uintValue('oom_kill', events)),
      oomGroupKill: u64(uintValue('oom_group_kill', events)),
    };
  }
  m.io = { usage: readIoStats(dir), psi: psi('io.pressure') };
  m.rdma = { current: rdmaStats(path.join(dir, 'rdma.current')), limit: rdmaStats(path.join(dir, 'rdma.max')) };
  m.hugetlb = readHugeTlbStats(dir, opts);
  return m;
}

/** cgroupPathV2(pid) + statsV2. */
export function statsV2ForPid(pid: number, opts: ProcOptions = {}, stats: StatsV2Options = {}): MetricsV2 {
  return statsV2(cgroupPathV2(pid, opts), stats);
}
