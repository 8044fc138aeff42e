// cgroup v2 stats reader (src/cgroups/stats-v2.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { io } from '../../src/gen/cgroups.js';
import { cgroupMode } from '../../src/cgroups/mode.js';
import { CgroupFormatError, CgroupNotFoundError } from '../../src/cgroups/parse.js';
import { parseCgroupMounts } from '../../src/cgroups/paths.js';
import {
  METRICS_V2_TYPE_URL, cgroupPathV2, hugePageSizes, hugetlbListingFor, parseGoFloat, readPsi, statsV2, statsV2ForPid,
  type MetricsV2, type StatsV2Options,
} from '../../src/cgroups/stats-v2.js';

const Metrics = io.containerd.cgroups.v2.Metrics;
const FIX = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'cgroups', 'v2', 'cg');
/** A /sys/kernel/mm/hugepages with 64KB, 2MB and 1GB pages. */
const HUGEPAGES = path.join(FIX, '..', 'hugepages');
/** containerd 1.6's rule for hugetlb entries unless a test says otherwise (the fixture has files for 1GB and 2MB). */
const FILES: StatsV2Options = { hugetlb: 'cgroup-files' };
const U64_MAX = '18446744073709551615';

function roundTrip(m: MetricsV2): Record<string, any> {
  const bytes = Metrics.encode(m).finish();
  const decoded = Metrics.decode(bytes);
  assert.deepEqual(Buffer.from(Metrics.encode(decoded).finish()), Buffer.from(bytes));
  return Metrics.toObject(decoded, { longs: String, defaults: true, arrays: true });
}

function copyFixture(): { dir: string; cleanup: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrt-cg2-'));
  fs.cpSync(FIX, dir, { recursive: true });
  return { dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

test('v2 fixture: every section decoded as upstream fills it', () => {
  const o = roundTrip(statsV2(FIX, FILES));
  assert.deepEqual(o.pids, { current: '3', limit: U64_MAX }); // "max" -> 2^64-1 in v2
  assert.deepEqual(o.cpu, {
    usageUsec: '4200123', userUsec: '3100456', systemUsec: '1099667',
    nrPeriods: '120', nrThrottled: '7', throttledUsec: '98765', nrBursts: '2', burstUsec: '1500',
    psi: {
      some: { avg10: 1.5, avg60: 0.75, avg300: 0.2, total: '123456' },
      full: { avg10: 0, avg60: 0, avg300: 0, total: '7' },
    },
  });
  assert.deepEqual(o.memory, {
    anon: '2220032', file: '1110016', kernelStack: '32768', slab: '352256', sock: '4096', shmem: '8192',
    fileMapped: '333824', fileDirty: '4096', fileWriteback: '12288', anonThp: '2097152',
    inactiveAnon: '1048576', activeAnon: '1171456', inactiveFile: '540672', activeFile: '569344',
    unevictable: '16384', slabReclaimable: '151552', slabUnreclaimable: '200704', pgfault: '9903',
    pgmajfault: '11', workingsetRefault: '0', workingsetActivate: '0', workingsetNodereclaim: '3',
    pgrefill: '23', pgscan: '21', pgsteal: '19', pgactivate: '29', pgdeactivate: '31', pglazyfree: '37',
    pglazyfreed: '41', thpFaultAlloc: '43', thpCollapseAlloc: '47',
    usage: '3330048', usageLimit: U64_MAX, swapUsage: '4096', swapLimit: '536870912',
    maxUsage: '4100096', swapMaxUsage: '8192',
    psi: {
      some: { avg10: 0, avg60: 0, avg300: 0, total: '42' },
      full: { avg10: 0, avg60: 0, avg300: 0, total: '40' },
    },
  });
  assert.deepEqual(o.memoryEvents, { low: '1', high: '2', max: '3', oom: '4', oomKill: '5', oomGroupKill: '6' });
  assert.deepEqual(o.io, {
    usage: [
      { major: '254', minor: '0', rbytes: '49152', wbytes: '139264', rios: '12', wios: '34' },
      { major: '8', minor: '16', rbytes: '4096', wbytes: '0', rios: '1', wios: '0' },
    ],
    psi: {
      some: { avg10: 12.34, avg60: 5.67, avg300: 1.01, total: '987654321' },
      full: { avg10: 10, avg60: 4, avg300: 0.99, total: '876543210' },
    },
  });
  assert.deepEqual(o.hugetlb, [
    { current: '0', max: '1073741824', pagesize: '1GB', failcnt: '0' },
    { current: '2097152', max: U64_MAX, pagesize: '2MB', failcnt: '9' },
  ]);
  assert.deepEqual(o.network, []); // never filled, as upstream
  assert.deepEqual(o.rdma, {
    current: [{ device: 'mlx5_0', hcaHandles: 2, hcaObjects: 2000 }],
    limit: [{ device: 'mlx5_0', hcaHandles: 4294967295, hcaObjects: 4294967295 }],
  });
  assert.equal(METRICS_V2_TYPE_URL, 'io.containerd.cgroups.v2.Metrics');
});

test('v2: cpu.stat / memory.stat only read for controllers in cgroup.controllers; missing files read as zero', () => {
  const f = copyFixture();
  try {
    fs.writeFileSync(path.join(f.dir, 'cgroup.controllers'), '\n'); // nothing delegated
    for (const n of ['memory.events', 'memory.swap.current', 'memory.swap.max', 'memory.peak', 'memory.swap.peak',
      'pids.current', 'pids.max', 'io.stat', 'rdma.current', 'rdma.max', 'cpu.pressure', 'memory.pressure', 'io.pressure']) {
      fs.rmSync(path.join(f.dir, n));
    }
    fs.writeFileSync(path.join(f.dir, 'memory.max'), '268435456\n');
    const warnings: string[] = [];
    const m = statsV2(f.dir, { ...FILES, warn: (msg) => warnings.push(msg) });
    const o = roundTrip(m);
    assert.deepEqual(o.pids, { current: '0', limit: '0' });
    assert.equal(o.cpu.usageUsec, '0'); // cpu.stat exists but "cpu" is not enabled
    assert.equal(o.memory.anon, '0');
    assert.equal(o.memory.usage, '3330048'); // single-value files do not depend on the controller list
    assert.equal(o.memory.usageLimit, '268435456');
    assert.equal(o.memory.swapUsage, '0');
    assert.equal(o.memory.swapLimit, '0');
    assert.equal(o.memory.maxUsage, '0');
    assert.equal(o.memory.swapMaxUsage, '0');
    assert.equal(o.memoryEvents, null);
    // no pressure files (a kernel without PSI, or booted with psi=0): no psi anywhere, and nothing logged
    assert.equal(o.cpu.psi, null);
    assert.equal(o.memory.psi, null);
    assert.deepEqual(o.io, { usage: [], psi: null });
    assert.equal(m.cpu?.psi, null);
    assert.deepEqual(warnings, []);
    assert.deepEqual(o.rdma, { current: [], limit: [] });
    // Always-present sections are set on the built object, too.
    assert.ok(m.io && m.rdma && m.cpu && m.memory && m.pids);
  } finally {
    f.cleanup();
  }
});

test('v2: parsing rules (string values, bad io.stat device, malformed lines)', () => {
  const f = copyFixture();
  try {
    fs.appendFileSync(path.join(f.dir, 'memory.stat'), 'weird_key notanumber\n');
    fs.writeFileSync(path.join(f.dir, 'memory.current'), 'garbage\n');
    fs.writeFileSync(path.join(f.dir, 'io.stat'), '254:0 rbytes=1 wbytes=x rios=3 wios=4\nxx:0 rbytes=9\n8:16 rbytes=5\n');
    let o = roundTrip(statsV2(f.dir, FILES));
    assert.equal(o.memory.usage, '0');
    assert.deepEqual(o.io.usage, [{ major: '254', minor: '0', rbytes: '1', wbytes: '0', rios: '3', wios: '4' }]);
    fs.writeFileSync(path.join(f.dir, 'pids.current'), '-1\n');
    o = roundTrip(statsV2(f.dir, FILES));
    assert.equal(o.pids.current, '0');
    fs.appendFileSync(path.join(f.dir, 'cpu.stat'), 'three fields here\n');
    assert.throws(() => statsV2(f.dir, FILES), CgroupFormatError);
  } finally {
    f.cleanup();
  }
});

test('v2 PSI: parsed as cgroups v3 parses it; a line that does not parse drops that file\'s psi with a warning', () => {
  const f = copyFixture();
  const warnings: Array<[string, Record<string, unknown>]> = [];
  const warn = (msg: string, fields: Record<string, unknown>): void => { warnings.push([msg, fields]); };
  const psiOf = (text: string): unknown => {
    fs.writeFileSync(path.join(f.dir, 'cpu.pressure'), text);
    const p = roundTrip(statsV2(f.dir, { ...FILES, warn })).cpu.psi;
    return p;
  };
  try {
    // only "some" (a v1-era kernel's cpu.pressure); unknown keys and lines are ignored
    assert.deepEqual(psiOf('some avg10=0.50 avg60=0.25 avg300=0.05 total=99 future=1\nlater avg10=x\n'),
      { some: { avg10: 0.5, avg60: 0.25, avg300: 0.05, total: '99' }, full: null });
    // an empty file is an empty PSIStats, not none (upstream returns the empty struct)
    assert.deepEqual(psiOf(''), { some: null, full: null });
    assert.equal(warnings.length, 0);
    for (const bad of ['some avg10=abc avg60=0 avg300=0 total=1\n', 'full avg10=0 avg60=0 avg300=0 total=-1\n',
      'some avg10=0.00 avg60\n', 'some avg10=1e999\n']) {
      assert.equal(psiOf(bad), null, bad);
    }
    assert.equal(warnings.length, 4);
    assert.equal(warnings[0]![0], 'failed to read PSI file');
    assert.match(String(warnings[0]![1].err), /invalid avg10 PSI value/);
    assert.equal(warnings[0]![1].file, path.join(f.dir, 'cpu.pressure'));
    assert.match(String(warnings[2]![1].err), /invalid PSI data: "avg60"/);
    // the other pressure files are unaffected
    assert.ok(roundTrip(statsV2(f.dir, FILES)).io.psi.some);
  } finally {
    f.cleanup();
  }
});

test('v2 PSI: PSI switched off for the cgroup (EOPNOTSUPP on read) is silent; other read errors are logged', () => {
  const warnings: string[] = [];
  const warn = (msg: string): void => { warnings.push(msg); };
  const failing = (code: string) => (): string => { throw Object.assign(new Error(`${code}: read`), { code }); };
  assert.equal(readPsi('/x/cpu.pressure', warn, failing('ENOTSUP')), null); // libuv's name for errno 95
  assert.equal(readPsi('/x/cpu.pressure', warn, failing('EOPNOTSUPP')), null);
  assert.equal(readPsi('/x/cpu.pressure', warn, failing('ENOENT')), null);
  assert.deepEqual(warnings, []);
  assert.equal(readPsi('/x/cpu.pressure', warn, failing('EIO')), null);
  assert.deepEqual(warnings, ['unable to read PSI data']);
  // statsV2 reads every pressure file through the same reader
  const seen: string[] = [];
  const m = statsV2(FIX, { ...FILES, readPressure: (file) => { seen.push(path.basename(file)); return failing('ENOTSUP')(); } });
  assert.deepEqual(seen.sort(), ['cpu.pressure', 'io.pressure', 'memory.pressure']);
  assert.ok(m.cpu?.psi == null && m.memory?.psi == null && m.io?.psi == null);
});

test('v2 PSI: numbers as Go ParseFloat reads them', () => {
  assert.equal(parseGoFloat('0.00'), 0);
  assert.equal(parseGoFloat('12.34'), 12.34);
  assert.equal(parseGoFloat('+1.5e2'), 150);
  assert.equal(parseGoFloat('.5'), 0.5);
  assert.equal(parseGoFloat('Inf'), Infinity);
  assert.equal(parseGoFloat('-infinity'), -Infinity);
  assert.ok(Number.isNaN(parseGoFloat('NaN')));
  for (const bad of ['', ' 1', '1,5', 'abc', '1e999', '0x10', '1_0']) assert.equal(parseGoFloat(bad), null, bad);
});

test('v2 hugetlb: cgroup-files (containerd 1.6) vs host-sizes (1.7+, cgroups v3) listing', () => {
  const f = copyFixture();
  try {
    const host = (dir: string): Record<string, any>[] =>
      roundTrip(statsV2(dir, { hugetlb: 'host-sizes', hugepagesDir: HUGEPAGES })).hugetlb
        .sort((a: { pagesize: string }, b: { pagesize: string }) => a.pagesize.localeCompare(b.pagesize));
    // every host size, with zeros where the cgroup has no files (64KB here)
    assert.deepEqual(host(f.dir), [
      { current: '0', max: '1073741824', pagesize: '1GB', failcnt: '0' },
      { current: '2097152', max: U64_MAX, pagesize: '2MB', failcnt: '9' },
      { current: '0', max: '0', pagesize: '64KB', failcnt: '0' },
    ]);
    // a cgroup without the hugetlb controller: no entries under 1.6's rule, zero entries under v3's
    for (const n of fs.readdirSync(f.dir).filter((x) => x.startsWith('hugetlb.'))) fs.rmSync(path.join(f.dir, n));
    assert.deepEqual(roundTrip(statsV2(f.dir, FILES)).hugetlb, []);
    assert.deepEqual(host(f.dir).map((e) => [e.pagesize, e.current, e.max, e.failcnt]),
      [['1GB', '0', '0', '0'], ['2MB', '0', '0', '0'], ['64KB', '0', '0', '0']]);
  } finally {
    f.cleanup();
  }
  // which one: containerd sets MAX_SHIM_VERSION for its shims from 1.7 on
  assert.equal(hugetlbListingFor({}), 'cgroup-files');
  assert.equal(hugetlbListingFor({ MAX_SHIM_VERSION: '2' }), 'host-sizes');
});

test('v2 hugetlb: host page sizes named as the kernel names the cgroup files', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrt-hp-'));
  try {
    for (const n of ['hugepages-2048kB', 'hugepages-1048576kB', 'hugepages-16777216kB', 'hugepages-64kB', 'hugepages-512kB',
      'hugepages-12MB', 'hugepages-xkB', 'other']) fs.mkdirSync(path.join(dir, n));
    const warnings: string[] = [];
    const sizes = hugePageSizes(dir, (_m, fields) => warnings.push(String(fields.file)));
    assert.deepEqual([...sizes].sort(), ['16GB', '1GB', '2MB', '512KB', '64KB']);
    assert.deepEqual(warnings.sort(), ['hugepages-12MB', 'hugepages-xkB']);
    assert.equal(hugePageSizes(dir), sizes); // read once, as upstream
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  assert.deepEqual(hugePageSizes(path.join(os.tmpdir(), 'tsrt-no-such-hugepages')), []);
});

test('v2: a missing cgroup is a clear CgroupNotFoundError', () => {
  assert.throws(() => statsV2(path.join(FIX, 'nope')), (err: unknown) => {
    assert.ok(err instanceof CgroupNotFoundError);
    assert.match((err as Error).message, /cgroup does not exist/);
    return true;
  });
  assert.throws(() => cgroupPathV2(2 ** 22 + 12345), CgroupNotFoundError);
});

// ---- real cgroup2 (root only) ----------------------------------------------------------------------

function cgroup2Mount(): string | null {
  const m = parseCgroupMounts(fs.readFileSync('/proc/self/mountinfo', 'utf8')).find((x) => x.fstype === 'cgroup2');
  return m ? m.mountpoint : null;
}

const v2Mount = cgroup2Mount();
const v2Host = process.getuid?.() === 0 && v2Mount !== null && cgroupMode() !== 'unavailable';

test('v2 real: a child cgroup holding a sleep process', { skip: !v2Host && 'needs root and a cgroup2 mount' }, async () => {
  const parent = cgroupPathV2(process.pid);
  assert.ok(parent.startsWith(v2Mount!));
  const dir = path.join(parent, `tsrt-test-${process.pid}-${Math.random().toString(16).slice(2, 10)}`);
  const child = spawn('sleep', ['5'], { stdio: 'ignore' });
  const exited = new Promise((r) => child.once('exit', r));
  let made = false;
  try {
    assert.ok(child.pid);
    fs.mkdirSync(dir);
    made = true;
    fs.writeFileSync(path.join(dir, 'cgroup.procs'), String(child.pid));
    assert.equal(cgroupPathV2(child.pid), dir);

    const o = roundTrip(statsV2ForPid(child.pid, {}, FILES));
    const has = (n: string): boolean => fs.existsSync(path.join(dir, n));
    const controllers = fs.readFileSync(path.join(dir, 'cgroup.controllers'), 'utf8').split(/\s+/).filter(Boolean);

    if (has('pids.current')) assert.equal(o.pids.current, '1');
    else assert.equal(o.pids.current, '0');
    if (has('pids.max')) assert.equal(o.pids.limit, U64_MAX);
    // cpu.stat is read only with the cpu controller enabled (upstream rule); on a hybrid host the
    // cgroup2 tree usually has no controllers, so all zero.
    if (controllers.includes('cpu')) assert.ok(BigInt(o.cpu.usageUsec) >= BigInt(o.cpu.userUsec));
    else assert.equal(o.cpu.usageUsec, '0');
    if (has('memory.current')) assert.ok(BigInt(o.memory.usage) >= 0n);
    else assert.equal(o.memory.usage, '0');
    if (has('memory.events')) assert.ok(o.memoryEvents);
    else assert.equal(o.memoryEvents, null);
    const hugetlbFiles = fs.readdirSync(dir).filter((n) => /^hugetlb\.[^.]+\.current$/.test(n)); // not *.rsvd.current
    assert.equal(o.hugetlb.length, hugetlbFiles.length);
    if (!has('io.stat')) assert.deepEqual(o.io.usage, []);
    // PSI files are in every cgroup while PSI is on, whatever the controllers
    for (const [file, psi] of [['cpu.pressure', o.cpu.psi], ['memory.pressure', o.memory.psi], ['io.pressure', o.io.psi]] as const) {
      if (has(file)) {
        assert.ok(psi?.some, `${file}: ${JSON.stringify(psi)}`);
        assert.ok(psi.some.avg10 >= 0 && psi.some.avg10 <= 100);
      } else {
        assert.equal(psi, null, file);
      }
    }
    const hosts = roundTrip(statsV2ForPid(child.pid, {}, { hugetlb: 'host-sizes' })).hugetlb;
    assert.equal(hosts.length, hugePageSizes().length);
  } finally {
    if (made) {
      try {
        fs.writeFileSync(path.join(parent, 'cgroup.procs'), String(child.pid));
      } catch { /* already gone */ }
    }
    child.kill('SIGKILL');
    await exited;
    if (made) fs.rmdirSync(dir);
  }
  assert.throws(() => statsV2(dir), CgroupNotFoundError);
});
