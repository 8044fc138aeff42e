// Moving a process into ShimCgroup (src/cgroups/join.ts), on fake hierarchies and, as root, a real one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { JoinCgroupError, cgroupProcsFiles, joinCgroup } from '../../src/cgroups/join.js';
import { cgroupMode } from '../../src/cgroups/mode.js';
import { cgroupPathsV1, cgroupPathV2, parseCgroupMounts } from '../../src/cgroups/paths.js';

function fakeHierarchies(): { root: string; mountinfo: string; cleanup: () => void } {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrt-join-'));
  const line = (n: number, dir: string, fstype: string, opts: string) =>
    `${n} 1 0:${n} / ${path.join(root, dir)} rw,relatime shared:${n} - ${fstype} ${fstype} rw,${opts}`;
  const mountinfo = [
    `20 1 0:19 / / rw - ext4 /dev/vda rw`,
    line(30, 'cpu,cpuacct', 'cgroup', 'cpu,cpuacct'),
    line(31, 'memory', 'cgroup', 'memory'),
    line(32, 'systemd', 'cgroup', 'name=systemd'),
    line(33, 'unified', 'cgroup2', 'nsdelegate'),
  ].join('\n');
  for (const d of ['cpu,cpuacct', 'memory', 'systemd', 'unified']) fs.mkdirSync(path.join(root, d));
  return { root, mountinfo, cleanup: () => fs.rmSync(root, { recursive: true, force: true }) };
}

test('v1 (legacy/hybrid): every hierarchy that has the path, the cgroup2 mount left alone; none is an error', () => {
  const h = fakeHierarchies();
  try {
    for (const d of ['cpu,cpuacct', 'memory', 'unified']) {
      fs.mkdirSync(path.join(h.root, d, 'shims'));
      fs.writeFileSync(path.join(h.root, d, 'shims', 'cgroup.procs'), '');
    }
    joinCgroup(4242, '/shims', { mode: 'hybrid', mountinfo: h.mountinfo });
    const procs = (d: string) => fs.readFileSync(path.join(h.root, d, 'shims', 'cgroup.procs'), 'utf8');
    assert.equal(procs('cpu,cpuacct'), '4242');
    assert.equal(procs('memory'), '4242');
    assert.equal(procs('unified'), '', 'the hybrid cgroup2 mount is not a v1 hierarchy (runc-v2 alike)');
    assert.ok(!fs.existsSync(path.join(h.root, 'systemd', 'shims')), 'a hierarchy without the path is skipped');
    assert.throws(() => joinCgroup(4242, '/nowhere', { mode: 'legacy', mountinfo: h.mountinfo }),
      (e: unknown) => e instanceof JoinCgroupError && /failed to load cgroup \/nowhere: cgroup deleted/.test((e as Error).message));
    // a directory that is not a cgroup gets no file: the write fails instead
    fs.mkdirSync(path.join(h.root, 'memory', 'plain'));
    assert.throws(() => joinCgroup(1, '/plain', { mode: 'legacy', mountinfo: h.mountinfo }), /failed to join cgroup \/plain: ENOENT/);
    assert.ok(!fs.existsSync(path.join(h.root, 'memory', 'plain', 'cgroup.procs')));
  } finally {
    h.cleanup();
  }
});

test('unified: <root>/<path>/cgroup.procs, as runc-v2 (cgroups v2 Load + AddProc)', () => {
  const h = fakeHierarchies();
  try {
    const dir = path.join(h.root, 'unified', 'system.slice', 'shims');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'cgroup.procs'), '');
    const opts = { mode: 'unified' as const, unifiedRoot: path.join(h.root, 'unified') };
    assert.deepEqual(cgroupProcsFiles('/system.slice/shims', opts), [path.join(dir, 'cgroup.procs')]);
    joinCgroup(7, '/system.slice/shims', opts);
    assert.equal(fs.readFileSync(path.join(dir, 'cgroup.procs'), 'utf8'), '7');
    assert.throws(() => joinCgroup(7, '/missing', opts), /failed to join cgroup \/missing: ENOENT/);
    assert.throws(() => joinCgroup(7, '/x', { mode: 'unavailable' }), /no cgroup file system is mounted/);
  } finally {
    h.cleanup();
  }
});

// ---- real cgroups (root only) ------------------------------------------------------------------------

const mode = cgroupMode();
const real = process.getuid?.() === 0 && mode !== 'unavailable';

test('real: a sleep process moved into a new cgroup of every hierarchy', { skip: !real && 'needs root and cgroups' }, async () => {
  const name = `/tsrt-join-test-${process.pid}-${Math.random().toString(16).slice(2, 8)}`;
  const mounts = parseCgroupMounts(fs.readFileSync('/proc/self/mountinfo', 'utf8'))
    .filter((m) => (mode === 'unified' ? m.fstype === 'cgroup2' : m.fstype === 'cgroup'));
  const dirs = mounts.map((m) => path.join(m.mountpoint, name));
  const child = spawn('sleep', ['30'], { stdio: 'ignore' });
  const exited = new Promise((r) => child.once('exit', r));
  const made: string[] = [];
  try {
    for (const d of dirs) {
      fs.mkdirSync(d);
      made.push(d);
      // a new v1 cpuset cgroup has no cpus or mems, and nothing can join it until it has
      for (const f of ['cpuset.cpus', 'cpuset.mems']) {
        if (mode !== 'unified' && fs.existsSync(path.join(d, f))) fs.writeFileSync(path.join(d, f), fs.readFileSync(path.join(d, '..', f)));
      }
    }
    joinCgroup(child.pid!, name);
    if (mode === 'unified') assert.equal(cgroupPathV2(child.pid!), path.join(mounts[0]!.mountpoint, name));
    else for (const p of Object.values(cgroupPathsV1(child.pid!))) assert.ok(p.endsWith(name), p);
  } finally {
    child.kill('SIGKILL');
    await exited;
    // the killed process leaves the cgroup once reaped; rmdir then succeeds
    for (const d of made.reverse()) fs.rmdirSync(d);
  }
});
