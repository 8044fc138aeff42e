// The cgroup write path (src/cgroups/write.ts) against the host's real cgroups: this project's machines are
// v1 "hybrid" (machine.md), with a cgroup2 mount at /sys/fs/cgroup/unified that has no controllers; the v2
// freeze, kill and remove are tested there. Everything is made under a unique top directory per run and
// removed afterwards, also when a test fails. Root only.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { cgroupMode } from '../../src/cgroups/mode.js';
import { parseCgroupMounts } from '../../src/cgroups/paths.js';
import {
  applyResources, cgroupJoinDirs, cgroupMountSources, cgroupPids, createCgroup, freeze, killAll, remove, resolveCgroupsPath,
  sharesToWeight, thaw, update, type CgroupDirs,
} from '../../src/cgroups/write.js';
import { RuntimeError, UnimplementedError, InvalidArgumentError } from '../../src/plugins/api/errors.js';
import { pidAlive, waitFor } from './lib/wait.js';

const root = process.getuid?.() === 0;
const hybrid = root && cgroupMode() === 'hybrid';
const skip = hybrid ? false : 'needs root on a cgroup v1 hybrid host';
const TOP = `/tsrt-test-${process.pid}-${Date.now().toString(36)}`;
const children: ChildProcess[] = [];

function read(dir: string, file: string): string {
  return fs.readFileSync(path.join(dir, file), 'utf8').trim();
}

function dirOf(dirs: CgroupDirs, controller: string): string {
  assert.equal(dirs.version, 1);
  const h = dirs.hierarchies.find((x) => x.controllers.includes(controller));
  assert.ok(h, controller);
  return h.dir;
}

/** A process parked in the container's cgroups; with `forks` it starts two sleeping children once in. */
async function parked(dirs: CgroupDirs, forks = false): Promise<ChildProcess> {
  const child = spawn('sh', ['-c', forks ? 'read x; sleep 1000 & sleep 1000 & wait' : 'read x; exec sleep 1000'], { stdio: ['pipe', 'ignore', 'ignore'] });
  children.push(child);
  await waitFor('the shell', () => child.pid !== undefined && pidAlive(child.pid));
  for (const dir of cgroupJoinDirs(dirs)) fs.writeFileSync(path.join(dir, 'cgroup.procs'), String(child.pid));
  child.stdin!.write('\n');
  await waitFor('the processes in the cgroup', () => cgroupPids(dirs).length === (forks ? 3 : 1) &&
    (forks || fs.readFileSync(`/proc/${child.pid}/cmdline`, 'utf8').startsWith('sleep')));
  return child;
}

function exited(child: ChildProcess): Promise<NodeJS.Signals | number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve(child.signalCode ?? child.exitCode);
    else child.once('exit', (code, sig) => resolve(sig ?? code));
  });
}

/** Everything under TOP, in every hierarchy: processes killed, directories removed deepest first. */
function sweep(): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  const mounts = parseCgroupMounts(fs.readFileSync('/proc/self/mountinfo', 'utf8'));
  for (const m of mounts) {
    const top = path.join(m.mountpoint, TOP);
    if (!fs.existsSync(top)) continue;
    if (m.superOptions.includes('freezer')) {
      for (const f of walk(top)) try { fs.writeFileSync(path.join(f, 'freezer.state'), 'THAWED'); } catch { /* gone */ }
    }
    for (const d of walk(top).reverse()) {
      for (const pid of fs.readFileSync(path.join(d, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) {
        try { process.kill(Number(pid), 'SIGKILL'); } catch { /* gone */ }
      }
      const end = Date.now() + 10_000;
      for (;;) {
        try { fs.rmdirSync(d); break; } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'EBUSY' || Date.now() > end) throw e;
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
        }
      }
    }
  }
}

function walk(dir: string): string[] {
  const out = [dir];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) out.push(...walk(path.join(dir, e.name)));
  return out;
}

after(() => {
  if (!hybrid) return;
  sweep();
  const left = parseCgroupMounts(fs.readFileSync('/proc/self/mountinfo', 'utf8')).filter((m) => fs.existsSync(path.join(m.mountpoint, TOP)));
  assert.deepEqual(left.map((m) => m.mountpoint), [], 'nothing is left');
});

test('cgroupsPath: absolute paths normalized; systemd form and relative paths refused', () => {
  assert.equal(resolveCgroupsPath('/default/c1/', 'c1'), '/default/c1');
  assert.equal(resolveCgroupsPath(undefined, 'c1'), '/c1');
  assert.throws(() => resolveCgroupsPath('system.slice:tsrt:c1', 'c1'), (e: unknown) => e instanceof UnimplementedError &&
    (e as Error).message === 'linux.cgroupsPath "system.slice:tsrt:c1" (the systemd cgroup driver) is not supported by the native backend yet: not implemented');
  assert.throws(() => resolveCgroupsPath('default/c1', 'c1'), InvalidArgumentError);
  assert.throws(() => resolveCgroupsPath('/', 'c1'), InvalidArgumentError);
  assert.equal(sharesToWeight(2), 1);
  assert.equal(sharesToWeight(1024), 39);
  assert.equal(sharesToWeight(262144), 10000);
});

test('v1: create in every hierarchy (name=systemd and the hybrid cgroup2 mount too), limits read back, update', { skip }, async () => {
  const inner = `${TOP}/limits`;
  const mib = 1 << 20;
  const { dirs, warnings } = createCgroup(inner, {
    memory: { limit: 64 * mib, reservation: 32 * mib, swap: 128 * mib, swappiness: 10, kernel: 8 * mib },
    cpu: { shares: 512, quota: 50_000, period: 100_000, cpus: '0', mems: '0' },
    pids: { limit: 50 },
    blockIO: { weight: 500 },
    devices: [{ allow: false, access: 'rwm' }, { allow: true, type: 'c', major: 10, minor: 200, access: 'rwm' }],
  });
  assert.deepEqual(warnings, ['linux.resources.memory.kernel ignored: kernel memory limits are deprecated (runc ignores them too)']);
  assert.equal(dirs.version, 1);
  if (dirs.version !== 1) return;
  const names = dirs.hierarchies.map((h) => h.controllers.join(','));
  for (const c of ['cpu', 'cpuacct', 'cpuset', 'memory', 'devices', 'freezer', 'blkio', 'pids', 'name=systemd']) assert.ok(names.includes(c), c);
  assert.equal(dirs.unified, `/sys/fs/cgroup/unified${inner}`);
  for (const d of cgroupJoinDirs(dirs)) assert.ok(fs.statSync(d).isDirectory(), d);
  const mem = dirOf(dirs, 'memory');
  assert.equal(read(mem, 'memory.limit_in_bytes'), String(64 * mib));
  assert.equal(read(mem, 'memory.soft_limit_in_bytes'), String(32 * mib));
  assert.equal(read(mem, 'memory.memsw.limit_in_bytes'), String(128 * mib));
  assert.equal(read(mem, 'memory.swappiness'), '10');
  const cpu = dirOf(dirs, 'cpu');
  assert.equal(read(cpu, 'cpu.shares'), '512');
  assert.equal(read(cpu, 'cpu.cfs_quota_us'), '50000');
  assert.equal(read(cpu, 'cpu.cfs_period_us'), '100000');
  assert.equal(read(dirOf(dirs, 'cpuset'), 'cpuset.cpus'), '0');
  assert.equal(read(dirOf(dirs, 'cpuset'), 'cpuset.mems'), '0');
  // the intermediate level got its parent's cpus and mems, so that it can hold the container's
  assert.equal(read(path.dirname(dirOf(dirs, 'cpuset')), 'cpuset.cpus'), read('/sys/fs/cgroup/cpuset', 'cpuset.cpus'));
  assert.equal(read(dirOf(dirs, 'pids'), 'pids.max'), '50');
  // no blkio.weight (CFQ is gone): BFQ's file, which every non-root blkio cgroup has
  assert.equal(read(dirOf(dirs, 'blkio'), 'blkio.bfq.weight'), '500');
  const devs = read(dirOf(dirs, 'devices'), 'devices.list').split('\n');
  for (const rule of ['c 10:200 rwm', 'c 1:3 rwm', 'c 5:0 rwm', 'c 136:* rwm', 'c *:* m', 'b *:* m']) assert.ok(devs.includes(rule), `${rule} in ${devs.join('|')}`);
  assert.ok(!devs.includes('a *:* rwm'));
  // the plan's view of the hierarchies
  const sources = cgroupMountSources(dirs);
  assert.deepEqual(sources.find((s) => s.name === 'systemd'), { name: 'systemd', fstype: 'cgroup', hostDir: `/sys/fs/cgroup/systemd${inner}`, options: 'name=systemd' });
  assert.equal(sources.at(-1)!.fstype, 'cgroup2');

  // update: lowering memory below memsw, then raising both past it (the order of the two writes matters)
  update(dirs, { memory: { limit: 16 * mib, swap: 16 * mib }, pids: { limit: -1 } });
  assert.equal(read(mem, 'memory.limit_in_bytes'), String(16 * mib));
  assert.equal(read(mem, 'memory.memsw.limit_in_bytes'), String(16 * mib));
  assert.equal(read(dirOf(dirs, 'pids'), 'pids.max'), 'max');
  update(dirs, { memory: { limit: 256 * mib, swap: 512 * mib } });
  assert.equal(read(mem, 'memory.limit_in_bytes'), String(256 * mib));
  assert.equal(read(mem, 'memory.memsw.limit_in_bytes'), String(512 * mib));
  await remove(dirs);
  for (const d of cgroupJoinDirs(dirs)) assert.ok(!fs.existsSync(d), d);
});

test('v1: what the host cannot apply is a RuntimeError naming the file and value, and create leaves nothing', { skip }, () => {
  const inner = `${TOP}/refused`;
  const cases: Array<[object, RegExp]> = [
    // BFQ (blkio.bfq.weight) has no leaf weight, CFQ's blkio.leaf_weight is gone since 5.0
    [{ blockIO: { leafWeight: 500 } }, /^cannot write "500" to \/sys\/fs\/cgroup\/blkio\/.*\/blkio\.leaf_weight: the file does not exist/],
    [{ hugepageLimits: [{ pageSize: '2MB', limit: 1 << 21 }] }, /^cannot write hugetlb\.2MB\.limit_in_bytes: hugetlb is not a v1 controller on this host/],
    [{ network: { classID: 1 } }, /^cannot write net_cls\.classid: the net_cls cgroup controller is not mounted/],
    [{ memory: { limit: 1 << 20, swap: 1 << 19 } }, /^cannot write "1048576" to .*memory\.limit_in_bytes: EINVAL|^cannot write "524288" to .*memory\.memsw\.limit_in_bytes: EINVAL/],
    [{ cpu: { cpus: '63' } }, /^cannot write "63" to \/sys\/fs\/cgroup\/cpuset\/.*\/cpuset\.cpus: E[A-Z]+$/],
    [{ unified: { 'memory.high': '1' } }, /linux\.resources\.unified needs cgroup v2/],
  ];
  for (const [resources, message] of cases) {
    assert.throws(() => createCgroup(inner, resources), (e: unknown) => {
      assert.ok(e instanceof RuntimeError, String(e));
      assert.match((e as Error).message, message);
      return true;
    });
    for (const m of parseCgroupMounts(fs.readFileSync('/proc/self/mountinfo', 'utf8'))) {
      assert.ok(!fs.existsSync(path.join(m.mountpoint, inner)), `a failed create removed what it made (${m.mountpoint})`);
    }
  }
});

test('v1: freeze and thaw a real process, killAll, remove', { skip }, async () => {
  const { dirs } = createCgroup(`${TOP}/life`, { pids: { limit: 10 } });
  const child = await parked(dirs);
  const freezer = dirOf(dirs, 'freezer');
  await freeze(dirs);
  assert.equal(read(freezer, 'freezer.state'), 'FROZEN');
  // the frozen task is stopped in the kernel's freezer: it is not running, whatever /proc shows as its state
  assert.equal(read(freezer, 'freezer.self_freezing'), '1');
  await thaw(dirs);
  assert.equal(read(freezer, 'freezer.state'), 'THAWED');
  assert.equal(await killAll(dirs, 'SIGTERM'), 1);
  assert.equal(await exited(child), 'SIGTERM');

  // SIGKILL freezes first, so a forking tree cannot escape; the cgroup is thawed after
  const tree = await parked(dirs, true);
  assert.equal(await killAll(dirs, 'SIGKILL'), 3);
  assert.equal(await exited(tree), 'SIGKILL');
  await waitFor('the cgroup to empty', () => cgroupPids(dirs).length === 0);
  assert.equal(read(freezer, 'freezer.state'), 'THAWED');
  await remove(dirs);
  for (const d of cgroupJoinDirs(dirs)) assert.ok(!fs.existsSync(d), d);
  await remove(dirs); // twice is fine
});

test('v1: remove right after a kill waits out EBUSY; a cgroup that stays busy is an error naming its processes', { skip }, async () => {
  const { dirs } = createCgroup(`${TOP}/busy`, undefined);
  const child = await parked(dirs);
  await assert.rejects(remove(dirs), (e: unknown) => e instanceof RuntimeError && new RegExp(`processes ${child.pid} are still in it`).test((e as Error).message));
  await killAll(dirs, 9);
  await remove(dirs);
  for (const d of cgroupJoinDirs(dirs)) assert.ok(!fs.existsSync(d), d);
});

test('v2 (the hybrid host\'s cgroup2 mount): create, freeze and thaw via cgroup.freeze, SIGKILL via cgroup.kill, remove', { skip }, async () => {
  const { dirs, deviceFilter } = createCgroup(`${TOP}/v2`, { cpu: {}, devices: [] }, { mode: 'unified' });
  // no rules of the spec's own: deny all but runc's defaults
  assert.equal(deviceFilter?.defaultAllow, false);
  assert.equal(deviceFilter?.exceptions.length, 11);
  assert.deepEqual(dirs, { version: 2, dir: `/sys/fs/cgroup/unified${TOP}/v2`, mountpoint: '/sys/fs/cgroup/unified' });
  // a controller this cgroup2 mount does not have is refused by name
  assert.throws(() => applyResources(dirs, { pids: { limit: 5 } }), /pids\.max: the file does not exist/);
  assert.throws(() => update(dirs, { pids: { limit: 5 } }), /cannot write "\+pids" to .*cgroup\.subtree_control: the cgroup2 controller pids is not available/);
  // device rules are no files on v2: createCgroup makes them a filter for the launcher; an update with them is refused
  assert.doesNotThrow(() => applyResources(dirs, { devices: [{ allow: false, access: 'rwm' }] }));
  assert.throws(() => applyResources(dirs, { devices: [{ allow: false, type: 'x' }] }), /type "x" is not a, c or b/);
  assert.throws(() => update(dirs, { devices: [{ allow: false, access: 'rwm' }] }), UnimplementedError);
  const child = await parked(dirs);
  await freeze(dirs);
  assert.match(read(dirs.version === 2 ? dirs.dir : '', 'cgroup.events'), /^frozen 1$/m);
  await thaw(dirs);
  assert.match(read(dirs.version === 2 ? dirs.dir : '', 'cgroup.events'), /^frozen 0$/m);
  assert.equal(await killAll(dirs, 'SIGKILL'), 1);
  assert.equal(await exited(child), 'SIGKILL');
  await remove(dirs);
  assert.ok(!fs.existsSync(`/sys/fs/cgroup/unified${TOP}/v2`));
});
