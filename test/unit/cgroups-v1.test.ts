// cgroup v1 stats reader (src/cgroups/stats-v1.ts) and the /proc → cgroup path resolvers.
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
import { parseProcCgroup, resolveCgroupPathV2 } from '../../src/cgroups/paths.js';
import {
  METRICS_V1_TYPE_URL, cgroupPathsV1, hugePageSizes, resolveCgroupPathsV1, statsV1, type MetricsV1,
} from '../../src/cgroups/stats-v1.js';

const Metrics = io.containerd.cgroups.v1.Metrics;
const FIX = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'cgroups', 'v1');
const CONTROLLERS = ['pids', 'cpu', 'cpuacct', 'memory', 'blkio', 'hugetlb', 'rdma', 'freezer'];

function fixturePaths(root = path.join(FIX, 'cg')): Record<string, string> {
  return Object.fromEntries(CONTROLLERS.map((c) => [c, path.join(root, c)]));
}
const opts = { procRoot: path.join(FIX, 'proc'), hugepagesDir: path.join(FIX, 'hugepages') };

/** Encode with the generated class, decode, and return a plain object with 64-bit values as strings. */
function roundTrip(m: MetricsV1): Record<string, any> {
  const bytes = Metrics.encode(m).finish();
  const decoded = Metrics.decode(bytes);
  // Re-encoding the decoded message must give the same bytes.
  assert.deepEqual(Buffer.from(Metrics.encode(decoded).finish()), Buffer.from(bytes));
  return Metrics.toObject(decoded, { longs: String, defaults: true, arrays: true });
}

function copyFixture(): { root: string; paths: Record<string, string>; cleanup: () => void } {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrt-cg1-'));
  fs.cpSync(path.join(FIX, 'cg'), root, { recursive: true });
  return { root, paths: fixturePaths(root), cleanup: () => fs.rmSync(root, { recursive: true, force: true }) };
}

test('v1 fixture: every section decoded as upstream fills it', () => {
  const o = roundTrip(statsV1(fixturePaths(), opts));
  assert.deepEqual(o.pids, { current: '3', limit: '0' }); // pids.max "max" -> 0 in v1
  assert.deepEqual(o.cpu, {
    usage: {
      total: '4200000000',
      user: '2500000000', // 250 ticks * 1e9 / 100
      kernel: '750000000', // 75 ticks
      perCpu: ['1500000000', '2700000000'],
    },
    throttling: { periods: '120', throttledPeriods: '7', throttledTime: '987654321' },
  });
  const mem = o.memory;
  assert.equal(mem.cache, '1110016');
  assert.equal(mem.rss, '2220032');
  assert.equal(mem.rssHuge, '2097152');
  assert.equal(mem.mappedFile, '333824');
  assert.equal(mem.dirty, '4096');
  assert.equal(mem.writeback, '8192');
  assert.equal(mem.pgPgIn, '5501');
  assert.equal(mem.pgPgOut, '4402');
  assert.equal(mem.pgFault, '9903');
  assert.equal(mem.pgMajFault, '11');
  assert.equal(mem.inactiveAnon, '1048576');
  assert.equal(mem.activeAnon, '1171456');
  assert.equal(mem.inactiveFile, '540672');
  assert.equal(mem.activeFile, '569344');
  assert.equal(mem.unevictable, '12288');
  assert.equal(mem.hierarchicalMemoryLimit, '268435456');
  assert.equal(mem.hierarchicalSwapLimit, '536870912');
  assert.equal(mem.totalCache, '1110017');
  assert.equal(mem.totalRss, '2220033');
  assert.equal(mem.totalRssHuge, '2097153');
  assert.equal(mem.totalMappedFile, '333825');
  assert.equal(mem.totalDirty, '4097');
  assert.equal(mem.totalWriteback, '8193');
  assert.equal(mem.totalPgPgIn, '5502');
  assert.equal(mem.totalPgPgOut, '4403');
  assert.equal(mem.totalPgFault, '9904');
  assert.equal(mem.totalPgMajFault, '12');
  assert.equal(mem.totalInactiveAnon, '1048577');
  assert.equal(mem.totalActiveAnon, '1171457');
  assert.equal(mem.totalInactiveFile, '540673');
  assert.equal(mem.totalActiveFile, '569345');
  assert.equal(mem.totalUnevictable, '12289');
  assert.deepEqual(mem.usage, { limit: '268435456', usage: '3330048', max: '4194304', failcnt: '5' });
  assert.deepEqual(mem.swap, { limit: '536870912', usage: '3330049', max: '4194305', failcnt: '0' });
  assert.deepEqual(mem.kernel, { limit: '9223372036854771712', usage: '65536', max: '131072', failcnt: '0' });
  assert.deepEqual(mem.kernelTcp, { limit: '9223372036854771712', usage: '0', max: '0', failcnt: '0' });
  assert.deepEqual(o.memoryOomControl, { oomKillDisable: '0', underOom: '0', oomKill: '2' });

  // No CFQ files: throttle.io_serviced -> io_serviced_recursive, throttle.io_service_bytes ->
  // io_service_bytes_recursive; "maj:min Total n" lines are kept, the bare "Total n" is skipped.
  const serviced = o.blkio.ioServicedRecursive;
  assert.equal(serviced.length, 12);
  assert.deepEqual(serviced[0], { op: 'Read', device: '/dev/vda', major: '254', minor: '0', value: '12' });
  assert.deepEqual(serviced[5], { op: 'Total', device: '/dev/vda', major: '254', minor: '0', value: '46' });
  assert.deepEqual(serviced[6], { op: 'Read', device: '/dev/sdb', major: '8', minor: '16', value: '1' });
  assert.deepEqual(o.blkio.ioServiceBytesRecursive.map((e: any) => [e.op, e.value]), [
    ['Read', '49152'], ['Write', '139264'], ['Sync', '163840'], ['Async', '24576'], ['Discard', '0'], ['Total', '188416'],
  ]);
  for (const k of ['ioQueuedRecursive', 'ioServiceTimeRecursive', 'ioWaitTimeRecursive', 'ioMergedRecursive', 'ioTimeRecursive', 'sectorsRecursive']) {
    assert.deepEqual(o.blkio[k], [], k);
  }

  assert.deepEqual(o.hugetlb, [
    { usage: '0', max: '0', failcnt: '0', pagesize: '1GB' },
    { usage: '2097152', max: '4194304', failcnt: '0', pagesize: '2MB' },
  ]);
  assert.deepEqual(o.rdma, {
    current: [
      { device: 'mlx5_0', hcaHandles: 2, hcaObjects: 2000 },
      { device: 'ocrdma1', hcaHandles: 3, hcaObjects: 4294967295 },
    ],
    limit: [
      { device: 'mlx5_0', hcaHandles: 4294967295, hcaObjects: 4294967295 },
      { device: 'ocrdma1', hcaHandles: 3, hcaObjects: 4294967295 },
    ],
  });
  assert.deepEqual(o.network, []);
  assert.equal(o.cgroupStats, null);
  assert.equal(METRICS_V1_TYPE_URL, 'io.containerd.cgroups.v1.Metrics');
});

test('v1: huge page sizes are named like upstream (units.CustomSize)', () => {
  assert.deepEqual(hugePageSizes(path.join(FIX, 'hugepages')), ['1GB', '2MB']);
});

test('v1: swap accounting off ends the memory section after the usage entry (no OptionalSwap upstream)', () => {
  const f = copyFixture();
  try {
    for (const n of fs.readdirSync(f.paths.memory!)) if (n.startsWith('memory.memsw.')) fs.rmSync(path.join(f.paths.memory!, n));
    const o = roundTrip(statsV1(f.paths, opts));
    assert.equal(o.memory.usage.usage, '3330048');
    assert.deepEqual(o.memory.swap, { limit: '0', usage: '0', max: '0', failcnt: '0' });
    assert.deepEqual(o.memory.kernel, { limit: '0', usage: '0', max: '0', failcnt: '0' });
    assert.equal(o.memory.totalRss, '2220033');
    assert.equal(o.cpu.usage.total, '4200000000'); // other controllers unaffected
  } finally {
    f.cleanup();
  }
});

test('v1: missing files are tolerated per controller, partial sections kept', () => {
  const f = copyFixture();
  try {
    fs.rmSync(path.join(f.paths.memory!, 'memory.oom_control'));
    fs.rmSync(path.join(f.paths.pids!, 'pids.current')); // like the root pids cgroup
    fs.rmSync(path.join(f.paths.cpuacct!, 'cpuacct.usage_percpu'));
    fs.rmSync(path.join(f.paths.hugetlb!, 'hugetlb.2MB.failcnt'));
    fs.rmSync(f.paths.rdma!, { recursive: true }); // controller directory gone
    const m = statsV1(f.paths, opts);
    const o = roundTrip(m);
    assert.equal(o.pids, null);
    // cpuacct failed before storing anything; cpu.stat still read.
    assert.deepEqual(o.cpu.usage, { total: '0', kernel: '0', user: '0', perCpu: [] });
    assert.equal(o.cpu.throttling.periods, '120');
    // memory.stat counters kept, oom_control missing -> entries never read, oom section absent.
    assert.equal(o.memory.cache, '1110016');
    assert.deepEqual(o.memory.usage, { limit: '0', usage: '0', max: '0', failcnt: '0' });
    assert.equal(o.memoryOomControl, null);
    // hugetlb stops at the first size that fails (1GB read fine, 2MB did not).
    assert.deepEqual(o.hugetlb.map((h: any) => h.pagesize), ['1GB']);
    assert.equal(o.rdma, null);
    // Empty sub-messages still travel (present, zero length), as gogoproto sends non-nil pointers.
    assert.ok(m.memory!.swap);
  } finally {
    f.cleanup();
  }
});

test('v1: CFQ recursive files are used when present and non-empty', () => {
  const f = copyFixture();
  try {
    const b = f.paths.blkio!;
    const write = (n: string, s: string) => fs.writeFileSync(path.join(b, `blkio.${n}`), s);
    write('sectors_recursive', '254:0 2048\n');
    write('io_service_bytes_recursive', '254:0 Read 4096\n254:0 Write 8192\n254:0 Total 12288\nTotal 12288\n');
    write('io_serviced_recursive', '254:0 Read 1\n254:0 Write 2\nTotal 3\n');
    for (const n of ['io_queued_recursive', 'io_service_time_recursive', 'io_wait_time_recursive', 'io_merged_recursive']) write(n, 'Total 0\n');
    write('time_recursive', '254:0 77\n');
    const o = roundTrip(statsV1(f.paths, opts));
    assert.deepEqual(o.blkio.sectorsRecursive, [{ op: '', device: '/dev/vda', major: '254', minor: '0', value: '2048' }]);
    assert.deepEqual(o.blkio.ioServiceBytesRecursive.map((e: any) => e.value), ['4096', '8192', '12288']);
    assert.deepEqual(o.blkio.ioServicedRecursive.map((e: any) => e.op), ['Read', 'Write']); // not the throttle data
    assert.equal(o.blkio.ioTimeRecursive[0].value, '77');
  } finally {
    f.cleanup();
  }
});

test('v1: number parsing follows upstream (negative -> 0, garbage -> error)', () => {
  const f = copyFixture();
  try {
    fs.writeFileSync(path.join(f.paths.memory!, 'memory.kmem.tcp.limit_in_bytes'), '-1\n');
    fs.writeFileSync(path.join(f.paths.pids!, 'pids.max'), '512\n');
    const o = roundTrip(statsV1(f.paths, opts));
    assert.equal(o.memory.kernelTcp.limit, '0');
    assert.deepEqual(o.pids, { current: '3', limit: '512' });
    fs.writeFileSync(path.join(f.paths.cpu!, 'cpu.stat'), 'nr_periods 1 2\n');
    assert.throws(() => statsV1(f.paths, opts), CgroupFormatError);
  } finally {
    f.cleanup();
  }
});

test('v1: a cgroup with no existing directory is a clear CgroupNotFoundError', () => {
  const gone = Object.fromEntries(CONTROLLERS.map((c) => [c, path.join(FIX, 'does-not-exist', c)]));
  assert.throws(() => statsV1(gone, opts), (err: unknown) => {
    assert.ok(err instanceof CgroupNotFoundError);
    assert.match((err as Error).message, /cgroup does not exist/);
    return true;
  });
  assert.throws(() => statsV1({}, opts), CgroupNotFoundError);
  assert.throws(() => cgroupPathsV1(2 ** 22 + 12345), CgroupNotFoundError);
});

// ---- path resolution -----------------------------------------------------------------------------

const HYBRID_MOUNTINFO = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`;

test('paths: /proc/<pid>/cgroup joined with the cgroup mounts', () => {
  const proc = '9:name=systemd:/default/c1\n8:pids:/default/c1\n7:blkio:/default/c1\n4:memory:/default/c1\n2:cpuacct:/default/c1\n1:cpu:/default/c1\n0::/default/c1\n';
  assert.deepEqual(resolveCgroupPathsV1(proc, HYBRID_MOUNTINFO), {
    'name=systemd': '/sys/fs/cgroup/systemd/default/c1',
    pids: '/sys/fs/cgroup/pids/default/c1',
    memory: '/sys/fs/cgroup/memory/default/c1',
    cpuacct: '/sys/fs/cgroup/cpuacct/default/c1',
    cpu: '/sys/fs/cgroup/cpu/default/c1',
  }); // blkio is not mounted in this mountinfo: left out
  assert.equal(resolveCgroupPathV2(proc, HYBRID_MOUNTINFO), '/sys/fs/cgroup/unified/default/c1');

  // Co-mounted controllers and a mount whose root is not "/" (nested cgroup namespace).
  const nested = '50 31 0:40 /kubepods /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n' +
    '51 31 0:41 / /sys/fs/cgroup/with\\040space rw - cgroup cgroup rw,pids\n';
  assert.deepEqual(resolveCgroupPathsV1('3:cpu,cpuacct:/kubepods/pod1/c2\n2:pids:/\n', nested), {
    cpu: '/sys/fs/cgroup/cpu,cpuacct/pod1/c2',
    cpuacct: '/sys/fs/cgroup/cpu,cpuacct/pod1/c2',
    pids: '/sys/fs/cgroup/with space',
  });
  assert.deepEqual(parseProcCgroup('0::/a:b\n').unified, '/a:b');
  assert.throws(() => parseProcCgroup('garbage\n'), CgroupFormatError);
  assert.throws(() => resolveCgroupPathV2('1:cpu:/x\n', HYBRID_MOUNTINFO), CgroupFormatError);
});

test('paths: a later mount over /sys/fs/cgroup hides the hierarchies below it', () => {
  // a private mount namespace that mounted cgroup2 on /sys/fs/cgroup (the harness's unified-cgroups mode)
  const shadowed = `${HYBRID_MOUNTINFO}90 23 0:38 / /sys/fs/cgroup rw,relatime - cgroup2 cgroup2 rw\n`;
  const proc = '4:memory:/default/c1\n0::/default/c1\n';
  assert.equal(resolveCgroupPathV2(proc, shadowed), '/sys/fs/cgroup/default/c1');
  assert.deepEqual(resolveCgroupPathsV1(proc, shadowed), {});
  // a v1 hierarchy mounted again on the same mountpoint: the later mount is the one reached
  const remounted = `${HYBRID_MOUNTINFO}91 31 0:50 /sub /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n`;
  assert.equal(resolveCgroupPathsV1('4:memory:/sub/c1\n', remounted).memory, '/sys/fs/cgroup/memory/c1');
});

// ---- real cgroups (root only) ----------------------------------------------------------------------

const v1Host = process.getuid?.() === 0 && (cgroupMode() === 'hybrid' || cgroupMode() === 'legacy');

test('v1 real: the test process\'s own cgroups give cpu and memory numbers', { skip: !v1Host && 'needs root on a v1/hybrid host' }, () => {
  const paths = cgroupPathsV1(process.pid);
  assert.ok(paths.memory && paths.cpuacct, 'memory and cpuacct hierarchies mounted');
  const o = roundTrip(statsV1(paths));
  assert.ok(BigInt(o.cpu.usage.total) > 0n, 'cpuacct.usage > 0');
  assert.ok(BigInt(o.cpu.usage.user) + BigInt(o.cpu.usage.kernel) > 0n, 'cpuacct.stat > 0');
  assert.equal(o.cpu.usage.perCpu.length, os.cpus().length);
  assert.ok(BigInt(o.memory.usage.usage) > 0n, 'memory.usage_in_bytes > 0');
  assert.ok(BigInt(o.memory.usage.limit) > 0n);
  assert.ok(BigInt(o.memory.totalCache) + BigInt(o.memory.totalRss) > 0n);
  assert.ok(o.memoryOomControl);
  // pids.current does not exist in the root pids cgroup; only check it where it does.
  if (paths.pids && fs.existsSync(path.join(paths.pids, 'pids.current'))) assert.ok(BigInt(o.pids.current) > 0n);
  assert.ok(o.blkio, 'blkio section present');
});

test('v1 real: a child cgroup holding a sleep process', { skip: !v1Host && 'needs root on a v1/hybrid host' }, async () => {
  const own = cgroupPathsV1(process.pid);
  const name = `tsrt-test-${process.pid}-${Math.random().toString(16).slice(2, 10)}`;
  const controllers = ['pids', 'cpu', 'cpuacct', 'memory'].filter((c) => own[c]);
  const child = spawn('sleep', ['5'], { stdio: 'ignore' });
  const exited = new Promise((r) => child.once('exit', r));
  const made: string[] = [];
  try {
    assert.ok(child.pid);
    for (const c of controllers) {
      const dir = path.join(own[c]!, name);
      fs.mkdirSync(dir);
      made.push(c);
      fs.writeFileSync(path.join(dir, 'cgroup.procs'), String(child.pid));
    }
    const paths = cgroupPathsV1(child.pid);
    for (const c of controllers) assert.equal(paths[c], path.join(own[c]!, name));
    const o = roundTrip(statsV1(paths));
    assert.deepEqual(o.pids, { current: '1', limit: '0' });
    assert.ok(o.memory.usage, 'memory entry read');
    assert.ok(BigInt(o.memory.usage.limit) > 0n);
    assert.equal(o.cpu.usage.perCpu.length, os.cpus().length);
  } finally {
    for (const c of made) {
      try {
        fs.writeFileSync(path.join(own[c]!, 'cgroup.procs'), String(child.pid));
      } catch { /* already gone */ }
    }
    child.kill('SIGKILL');
    await exited;
    for (const c of made) fs.rmdirSync(path.join(own[c]!, name));
  }
});
