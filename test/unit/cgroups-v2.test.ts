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
import { METRICS_V2_TYPE_URL, cgroupPathV2, statsV2, statsV2ForPid, type MetricsV2 } from '../../src/cgroups/stats-v2.js';

const Metrics = io.containerd.cgroups.v2.Metrics;
const FIX = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'cgroups', 'v2', 'cg');
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
  const o = roundTrip(statsV2(FIX));
  assert.deepEqual(o.pids, { current: '3', limit: U64_MAX }); // "max" -> 2^64-1 in v2
  assert.deepEqual(o.cpu, {
    usageUsec: '4200123', userUsec: '3100456', systemUsec: '1099667',
    nrPeriods: '120', nrThrottled: '7', throttledUsec: '98765',
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
  });
  assert.deepEqual(o.memoryEvents, { low: '1', high: '2', max: '3', oom: '4', oomKill: '5' });
  assert.deepEqual(o.io, {
    usage: [
      { major: '254', minor: '0', rbytes: '49152', wbytes: '139264', rios: '12', wios: '34' },
      { major: '8', minor: '16', rbytes: '4096', wbytes: '0', rios: '1', wios: '0' },
    ],
  });
  assert.deepEqual(o.hugetlb, [
    { current: '0', max: '1073741824', pagesize: '1GB' },
    { current: '2097152', max: U64_MAX, pagesize: '2MB' },
  ]);
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
    for (const n of ['memory.events', 'memory.swap.current', 'memory.swap.max', 'pids.current', 'pids.max', 'io.stat', 'rdma.current', 'rdma.max']) {
      fs.rmSync(path.join(f.dir, n));
    }
    fs.writeFileSync(path.join(f.dir, 'memory.max'), '268435456\n');
    const m = statsV2(f.dir);
    const o = roundTrip(m);
    assert.deepEqual(o.pids, { current: '0', limit: '0' });
    assert.equal(o.cpu.usageUsec, '0'); // cpu.stat exists but "cpu" is not enabled
    assert.equal(o.memory.anon, '0');
    assert.equal(o.memory.usage, '3330048'); // single-value files do not depend on the controller list
    assert.equal(o.memory.usageLimit, '268435456');
    assert.equal(o.memory.swapUsage, '0');
    assert.equal(o.memory.swapLimit, '0');
    assert.equal(o.memoryEvents, null);
    assert.deepEqual(o.io, { usage: [] });
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
    let o = roundTrip(statsV2(f.dir));
    assert.equal(o.memory.usage, '0');
    assert.deepEqual(o.io.usage, [{ major: '254', minor: '0', rbytes: '1', wbytes: '0', rios: '3', wios: '4' }]);
    fs.writeFileSync(path.join(f.dir, 'pids.current'), '-1\n');
    o = roundTrip(statsV2(f.dir));
    assert.equal(o.pids.current, '0');
    fs.appendFileSync(path.join(f.dir, 'cpu.stat'), 'three fields here\n');
    assert.throws(() => statsV2(f.dir), CgroupFormatError);
  } finally {
    f.cleanup();
  }
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

    const o = roundTrip(statsV2ForPid(child.pid));
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
