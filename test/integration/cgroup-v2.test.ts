// The cgroup v2 code paths, end to end, on this cgroup v1 "hybrid" host: containerd, its shims and runc
// run in a private mount namespace whose /sys/fs/cgroup is a cgroup2 mount (the harness's
// `unifiedCgroups`), so runc-v2 and tsrt both see a unified host. Only the controllers the v1 hierarchies
// leave free work in that tree (here: hugetlb; cpu.stat and the core files are always there), which is
// why the containers run with `--cpu-shares 0` (ctr's default shares become a cpu.weight write). OOM
// watches on v2 need memory.events, which only a memory controller makes: test/unit/native-shim.test.ts
// covers that watch on a written memory.events instead.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CMD_MS, RUNC_V2, TSRT_V2, WAIT_MS, containerdForFile, removeContainer, taskStatus, uniqueId, waitFor } from './harness.js';
import { isAlive, readCgroups, readStat } from './lib/procfs.js';

// a namespace of its own: its cgroup directory (where runc enables controllers) is this file's alone
const suite = containerdForFile({ before, after }, { unifiedCgroups: true, namespace: 'tsrt-v2' });
/** runc-v2 (the reference), tsrt with runc, tsrt with the native backend (which writes the v2 files itself) */
const COLUMNS = [
  { name: 'runc-v2', rt: ['--runtime', RUNC_V2] },
  { name: 'tsrt+runc', rt: ['--runtime', TSRT_V2] },
  { name: 'tsrt+native', rt: ['--runtime', TSRT_V2, '--annotation', 'io.tsrt.backend=native'] },
];

type PSIData = { avg10?: number; avg60?: number; avg300?: number; total?: number };
type PSIStats = { some?: PSIData; full?: PSIData };

/**
 * A PSI line's numbers change from one container to the next (the cgroup's pressure and the time it has
 * existed): checked for what they can be, then replaced by a marker, so that what is compared is which
 * PSI stats and lines are there. A value of 0 is absent from ctr's JSON (omitempty), so the keys inside
 * a line are not compared either.
 */
function normalisedPsi(psi: PSIStats, where: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [line, data] of Object.entries(psi)) {
    assert.ok(line === 'some' || line === 'full', `${where}.${line}`);
    for (const [k, v] of Object.entries(data as PSIData)) {
      if (k === 'total') assert.ok(Number.isInteger(v) && v >= 0, `${where}.${line}.total = ${v}`);
      else assert.ok(['avg10', 'avg60', 'avg300'].includes(k) && typeof v === 'number' && v >= 0 && v <= 100, `${where}.${line}.${k} = ${v}`);
    }
    out[line] = '<PSIData>';
  }
  return out;
}

/**
 * `ctr task metrics --format json`, hugetlb sorted by page size (upstream sends them in map order), PSI
 * lines replaced by a marker (normalisedPsi).
 */
function normalisedMetrics(json: string): Record<string, unknown> {
  const m = JSON.parse(json) as Record<string, unknown> & {
    hugetlb?: Array<{ pagesize?: string }>;
    cpu?: { psi?: PSIStats }; memory?: { psi?: PSIStats }; io?: { psi?: PSIStats };
  };
  m.hugetlb?.sort((a, b) => (a.pagesize ?? '').localeCompare(b.pagesize ?? ''));
  for (const section of ['cpu', 'memory', 'io'] as const) {
    const s = m[section] as { psi?: PSIStats } | undefined;
    if (s?.psi) (s as Record<string, unknown>).psi = normalisedPsi(s.psi, `${section}.psi`);
  }
  return m;
}

describe('cgroup v2 (unified) paths, runc-v2 vs tsrt', { timeout: 300_000 }, () => {
  test('run --rm: output and exit code under a unified cgroup tree', async () => {
    const c = suite.containerd();
    const seen = [];
    for (const { rt } of COLUMNS) {
      const id = uniqueId('v2-run');
      const r = await c.ctr(['run', '--rm', '--cpu-shares', '0', ...rt, suite.image(), id,
        'sh', '-c', 'echo hello; grep ^0:: /proc/self/cgroup; exit 7'], { timeoutMs: 60_000 });
      seen.push({ code: r.code, stdout: r.stdout.split(id).join('<id>'), stderr: r.stderr });
    }
    // no cgroup namespace in ctr's default spec: the container sees its cgroup2 path
    assert.deepEqual(seen[0], { code: 7, stdout: 'hello\n0::/tsrt-v2/<id>\n', stderr: '' }, 'reference (runc-v2)');
    assert.deepEqual(seen.slice(1), [seen[0], seen[0]]);
  });

  test('ctr task metrics of a busy container: io.containerd.cgroups.v2.Metrics, the same fields and values', async () => {
    const c = suite.containerd();
    const got: Record<string, { table: string[]; json: Record<string, unknown> }> = {};
    for (const { name, rt } of COLUMNS) {
      const id = uniqueId('v2-metrics');
      try {
        await c.ctrOk(['run', '-d', '--cpu-shares', '0', ...rt, suite.image(), id, 'sh', '-c', 'while :; do :; done']);
        await waitFor(async () => (await taskStatus(c, id)) === 'RUNNING', WAIT_MS, { what: `${id} RUNNING` });
        const table = await c.ctrOk(['task', 'metrics', id]);
        const json = await c.ctrOk(['task', 'metrics', '--format', 'json', id]);
        got[name] = {
          // metric names of the table (values are all 0 without the cpu, memory and pids controllers)
          table: table.split('\n').slice(4).map((l) => l.trim().split(/\s{2,}/)).filter((f) => f.length === 2).map((f) => f.join('=')),
          json: normalisedMetrics(json),
        };
      } finally {
        await removeContainer(c, id);
      }
    }
    const ref = got['runc-v2']!;
    // v2 Metrics: io and rdma, no blkio; hugetlb has one entry per page size with its limit
    assert.ok('io' in ref.json && 'rdma' in ref.json && !('blkio' in ref.json), JSON.stringify(ref.json));
    // PSI: runc-v2 on cgroups v3.0.3+ (containerd 2.x) reports it, ctr 1.6 does not know the fields. 1.7
    // depends on its build: upstream vendors cgroups v3.0.2 (no PSI), Debian's builds against a newer one.
    // The pressure files are there without any controller while the kernel has PSI on.
    const psiOn = existsSync('/sys/fs/cgroup/unified/cpu.pressure') || existsSync('/sys/fs/cgroup/cpu.pressure');
    const hasPsi = (j: Record<string, unknown>): boolean[] =>
      (['cpu', 'memory', 'io'] as const).map((k) => (j[k] as { psi?: unknown } | undefined)?.psi !== undefined);
    const [major, minor] = c.dist.release;
    if (major >= 2 || (major === 1 && minor <= 6)) {
      const expected = major >= 2 && psiOn;
      assert.deepEqual(hasPsi(ref.json), [expected, expected, expected], JSON.stringify(ref.json));
    }
    assert.ok(ref.table.includes('cpu.usage_usec=0') && ref.table.includes('memory.usage=0'), ref.table.join(' '));
    assert.deepEqual(got['tsrt+runc'], ref);
    assert.deepEqual(got['tsrt+native'], ref);
  });

  test('device rules (an eBPF program on v2): the allowed nodes open, others do not, mknod is allowed', async () => {
    const c = suite.containerd();
    // /dev/null and /dev/zero are allowed (runc's defaults); /dev/fuse (10:229) is not. fuse is the test: the
    // host lets anyone open it, so only the device rules stand in the way (a disk or /dev/mem would also
    // fail for want of the device or of CAP_SYS_RAWIO).
    const script = [
      'echo x > /dev/null && echo null-ok', 'head -c 1 /dev/zero | wc -c',
      'mknod /tmp/fuse c 10 229 && echo mknod-ok', '(exec 3</tmp/fuse) 2>/dev/null && echo fuse-opened || echo fuse-denied',
      'mknod /tmp/zero c 1 5 && head -c 1 /tmp/zero | wc -c',
    ].join('; ');
    const seen = [];
    for (const { rt } of COLUMNS) {
      const id = uniqueId('v2-dev');
      const r = await c.ctr(['run', '--rm', '--cpu-shares', '0', ...rt, suite.image(), id, 'sh', '-c', script], { timeoutMs: 60_000 });
      seen.push({ code: r.code, stdout: r.stdout, stderr: r.stderr });
    }
    assert.deepEqual(seen[0], { code: 0, stdout: 'null-ok\n1\nmknod-ok\nfuse-denied\n1\n', stderr: '' }, 'reference (runc-v2)');
    assert.deepEqual(seen.slice(1), [seen[0], seen[0]]);
  });

  test('ShimCgroup on a unified host: the monitor is moved into <cgroup2 root>/<path>, the container is not', async () => {
    const c = suite.containerd();
    // this host's view of the cgroup2 hierarchy that containerd's namespace has at /sys/fs/cgroup
    const root = existsSync('/sys/fs/cgroup/unified/cgroup.procs') ? '/sys/fs/cgroup/unified' : '/sys/fs/cgroup';
    const name = `/tsrt-shimcg-v2-${process.pid}-${Date.now().toString(36)}`;
    const dir = join(root, name);
    const cfg = join(c.root, 'shimcg.toml');
    writeFileSync(cfg, `ShimCgroup = "${name}"\n`);
    const id = uniqueId('v2-shimcg');
    let monitor = 0;
    mkdirSync(dir);
    try {
      await c.ctrOk(['run', '-d', '--cpu-shares', '0', '--runtime', TSRT_V2, '--runtime-config-path', cfg, suite.image(), id, 'sleep', '1000']);
      await waitFor(async () => (await taskStatus(c, id)) === 'RUNNING', WAIT_MS, { what: `${id} RUNNING` });
      const initPid = Number((await c.ctrOk(['task', 'ls'])).split('\n').find((l) => l.startsWith(id))!.trim().split(/\s+/)[1]);
      monitor = readStat(initPid)!.ppid;
      assert.ok(readFileSync(`/proc/${monitor}/cmdline`, 'utf8').includes('containerd-shim-tsrt-v2'));
      assert.deepEqual(readCgroups(monitor).filter(([h]) => h === '0').map(([, , p]) => p), [name]);
      assert.deepEqual(readCgroups(initPid).filter(([h]) => h === '0').map(([, , p]) => p), [`/tsrt-v2/${id}`]);
    } finally {
      await removeContainer(c, id);
      if (monitor) await waitFor(() => !isAlive(monitor), WAIT_MS, { what: 'monitor exited' }).catch(() => undefined);
      await waitFor(() => { rmdirSync(dir); return true; }, WAIT_MS, { what: `rmdir ${dir}` });
    }
  });

  test('exec: the process starts in the container\'s cgroup (the native launcher clones it there)', async () => {
    const c = suite.containerd();
    const seen = [];
    for (const { rt } of COLUMNS) {
      const id = uniqueId('v2-exec');
      try {
        await c.ctrOk(['run', '-d', '--cpu-shares', '0', ...rt, suite.image(), id, 'sleep', '1000']);
        await waitFor(async () => (await taskStatus(c, id)) === 'RUNNING', WAIT_MS, { what: `${id} RUNNING` });
        const r = await c.ctr(['task', 'exec', '--exec-id', 'e1', id, 'sh', '-c',
          'grep ^0:: /proc/self/cgroup; grep ^0:: /proc/1/cgroup; exit 3'], { timeoutMs: 60_000 });
        seen.push({ code: r.code, stdout: r.stdout.split(id).join('<id>'), stderr: r.stderr });
      } finally {
        await removeContainer(c, id);
      }
    }
    assert.deepEqual(seen[0], { code: 3, stdout: '0::/tsrt-v2/<id>\n0::/tsrt-v2/<id>\n', stderr: '' }, 'reference (runc-v2)');
    assert.deepEqual(seen.slice(1), [seen[0], seen[0]]);
  });

  test('SIGKILL to the init: exit 137, task STOPPED', async () => {
    const c = suite.containerd();
    const seen = [];
    for (const { rt } of COLUMNS) {
      const id = uniqueId('v2-kill');
      try {
        await c.ctrOk(['run', '-d', '--cpu-shares', '0', ...rt, suite.image(), id, 'sleep', '1000']);
        await waitFor(async () => (await taskStatus(c, id)) === 'RUNNING', WAIT_MS, { what: `${id} RUNNING` });
        await c.ctrOk(['task', 'kill', '-s', 'SIGKILL', id]);
        await waitFor(async () => (await taskStatus(c, id)) === 'STOPPED', WAIT_MS, { what: `${id} STOPPED` });
        const ls = await c.ctrOk(['task', 'ls']);
        seen.push(ls.split('\n').find((l) => l.startsWith(id))?.trim().split(/\s+/)[2]);
      } finally {
        await removeContainer(c, id);
      }
    }
    assert.deepEqual(seen, ['STOPPED', 'STOPPED', 'STOPPED']);
  });
});
