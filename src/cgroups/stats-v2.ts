// cgroup v2 statistics → io.containerd.cgroups.v2.Metrics, filled the way containerd/cgroups
// v1.x `v2.Manager.Stat()` fills it for runc-v2 on unified hosts.
//
// Rules kept from upstream:
//   - cpu.stat and memory.stat are read only when "cpu" / "memory" are listed in the cgroup's own
//     cgroup.controllers (so a cgroup whose parent did not delegate cpu reports zero CPU even
//     though the kernel always provides the core cpu.stat keys).
//   - pids, cpu, memory, io and rdma are always present (zero / empty when the files are missing);
//     memory_events only when memory.events exists and has keys; hugetlb is a list.
//   - "max" is 2^64-1 in pids.current/pids.max, memory.max, memory.swap.*, hugetlb.*.max.
//   - Missing or unparsable single-value memory files read as 0; a malformed cpu.stat/memory.stat
//     or memory.events line fails the call.
//   - A missing cgroup (no cgroup.controllers) is an error: CgroupNotFoundError here.
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
 * hugetlb.<size>.current / hugetlb.<size>.max, one entry per page size seen (upstream returns
 * them in Go map order, i.e. unordered; we keep directory-name order).
 */
function readHugeTlbStats(dir: string): HugeTlbStatV2[] {
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

/** Builds io.containerd.cgroups.v2.Metrics from a cgroup2 directory. */
export function statsV2(dir: string): MetricsV2 {
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

  const m: MetricsV2 = {
    pids: { current: u64(pidValue('pids.current', out)), limit: u64(pidValue('pids.max', out)) },
    cpu: {
      usageUsec: u64(uintValue('usage_usec', out)),
      userUsec: u64(uintValue('user_usec', out)),
      systemUsec: u64(uintValue('system_usec', out)),
      nrPeriods: u64(uintValue('nr_periods', out)),
      nrThrottled: u64(uintValue('nr_throttled', out)),
      throttledUsec: u64(uintValue('throttled_usec', out)),
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
    };
  }
  m.io = { usage: readIoStats(dir) };
  m.rdma = { current: rdmaStats(path.join(dir, 'rdma.current')), limit: rdmaStats(path.join(dir, 'rdma.max')) };
  m.hugetlb = readHugeTlbStats(dir);
  return m;
}

/** cgroupPathV2(pid) + statsV2. */
export function statsV2ForPid(pid: number, opts: ProcOptions = {}): MetricsV2 {
  return statsV2(cgroupPathV2(pid, opts));
}
