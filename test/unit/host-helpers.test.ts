// The helpers of host-process backends (src/plugins/host/): containerd's stdio turned into monitor specs
// (IoUid/IoGid, binary:// loggers, terminals) and the rootfs mounts, against a recording ProcessHost.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { hostProcessIo, hostStdio } from '../../src/plugins/host/stdio.js';
import { HostRootfs, isMountPoint } from '../../src/plugins/host/rootfs.js';
import type { Logger, ProcessHost, Stdio } from '../../src/plugins/api/index.js';

function recordingHost(failMountAt = -1) {
  const calls: string[] = [];
  const host = {
    logger: async (key: string, cid: string, ns: string, argv: string[]) => { calls.push(`logger ${key} ${cid} ${ns} ${argv.join(' ')}`); },
    mount: async (type: string, source: string, target: string, options: string[]) => {
      if (calls.filter((c) => c.startsWith('mount')).length === failMountAt) throw new Error('mount failed');
      calls.push(`mount ${type} ${source} ${target} ${options.join(',')}`);
    },
    umount: async (target: string) => { calls.push(`umount ${target}`); },
    console: async (key: string, stdin: string, stdout: string) => { calls.push(`console ${key} ${stdin} ${stdout}`); return `/run/console-${key}.sock`; },
  } as unknown as ProcessHost;
  return { host, calls };
}

function recordingLog() {
  const warnings: Array<{ fields: Record<string, unknown>; msg: string }> = [];
  const log = {
    debug: () => undefined, info: () => undefined, error: () => undefined,
    warn: (fields: object, msg?: string) => { warnings.push({ fields: fields as Record<string, unknown>, msg: msg ?? '' }); },
  } satisfies Logger;
  return { log, warnings };
}

const stdio = (s: Partial<Stdio>): Stdio => ({ stdin: '', stdout: '', stderr: '', terminal: false, ...s });

test('hostStdio: FIFOs are handed to the process, and chowned to IoUid/IoGid when they are set', async () => {
  const { host } = recordingHost();
  const { log } = recordingLog();
  const chowned: Array<[string, number, number]> = [];
  const chown = async (f: string, u: number, g: number) => { chowned.push([f, u, g]); };
  const base = { ioKey: 'c1', containerId: 'c1', namespace: 'ns', log, chown };
  const specs = await hostStdio(host, {
    ...base, uid: 100000, gid: 100001, stdio: stdio({ stdin: '/fifo/in', stdout: '/fifo/out', stderr: '/fifo/err' }),
  });
  assert.deepEqual(specs, { stdin: 'fifo:/fifo/in', stdout: 'fifo:/fifo/out', stderr: 'fifo:/fifo/err', terminal: false });
  assert.deepEqual(chowned, [['/fifo/in', 100000, 100001], ['/fifo/out', 100000, 100001], ['/fifo/err', 100000, 100001]]);
  chowned.length = 0;
  await hostStdio(host, { ...base, uid: 0, gid: 0, stdio: stdio({ stdout: '/fifo/out' }) });
  assert.deepEqual(chowned, [], 'no IoUid/IoGid: left as they are');
  // a terminal: the console copies, the process gets a pty, nothing is chowned and stderr is unused
  const tty = await hostStdio(host, { ...base, uid: 5, gid: 5, stdio: stdio({ stdin: '/fifo/in', stdout: '/fifo/out', stderr: '/fifo/err', terminal: true }) });
  assert.deepEqual(tty, { stdin: 'fifo:/fifo/in', stdout: 'fifo:/fifo/out', stderr: '', terminal: true });
  assert.deepEqual(chowned, []);
});

test('hostStdio: a file:// log is handed over unchowned, with one warning; a binary:// logger is started first', async () => {
  const { host, calls } = recordingHost();
  const { log, warnings } = recordingLog();
  const chowned: string[] = [];
  const req = { ioKey: 'c1/e1', containerId: 'c1', namespace: 'ns', uid: 0, gid: 7, log, chown: async (f: string) => { chowned.push(f); } };
  const file = await hostStdio(host, { ...req, stdio: stdio({ stdout: 'file:///var/log/c1.log', stderr: 'file:///var/log/c1.log' }) });
  assert.deepEqual(file, { stdin: '', stdout: 'file:/var/log/c1.log', stderr: 'file:/var/log/c1.log', terminal: false });
  assert.deepEqual(chowned, []);
  assert.equal(warnings.length, 1, 'one warning per process');
  assert.equal(warnings[0]!.fields.file, '/var/log/c1.log');
  const bin = await hostStdio(host, { ...req, stdio: stdio({ stdin: '/fifo/in', stdout: 'binary:///usr/bin/tsrt-log?tag=web&v', stderr: 'binary:///usr/bin/tsrt-log?tag=web&v' }) });
  assert.deepEqual(bin, { stdin: '', stdout: 'logger:1', stderr: 'logger:2', terminal: false });
  assert.deepEqual(calls, ['logger c1/e1 c1 ns /usr/bin/tsrt-log tag web v']);
});

test('hostProcessIo: the process\'s own stdio, or for a terminal none and a console socket fed from the FIFOs', async () => {
  const { host, calls } = recordingHost();
  const { log } = recordingLog();
  const req = { ioKey: 'c1', containerId: 'c1', namespace: 'ns', uid: 0, gid: 0, log };
  assert.deepEqual(await hostProcessIo(host, { ...req, stdio: stdio({ stdin: '/fifo/in', stdout: '/fifo/out', stderr: '/fifo/err' }) }),
    { io: { stdin: 'fifo:/fifo/in', stdout: 'fifo:/fifo/out', stderr: 'fifo:/fifo/err' } });
  assert.deepEqual(calls, []);
  assert.deepEqual(await hostProcessIo(host, { ...req, stdio: stdio({ stdin: '/fifo/in', stdout: '/fifo/out', stderr: '/fifo/err', terminal: true }) }),
    { io: { stdin: '', stdout: '', stderr: '' }, consoleSocket: '/run/console-c1.sock' });
  assert.deepEqual(calls, ['console c1 fifo:/fifo/in fifo:/fifo/out']);
});

test('HostRootfs: mounts stacked in order on <bundle>/rootfs, taken down once; nothing to mount is nothing to take down', async () => {
  const bundle = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrt-rootfs-'));
  try {
    const { host, calls } = recordingHost();
    const r = new HostRootfs(host, bundle);
    await r.mount([]);
    await r.unmount();
    assert.deepEqual(calls, []);
    assert.equal(r.mounted, false);
    await r.mount([{ type: 'overlay', source: 'overlay', options: ['lowerdir=/a'] }, { type: 'bind', source: '/x', options: ['rbind', 'ro'] }]);
    assert.ok(fs.statSync(path.join(bundle, 'rootfs')).isDirectory());
    assert.equal(r.mounted, true);
    await r.unmount();
    await r.unmount();
    const target = path.join(bundle, 'rootfs');
    assert.deepEqual(calls, [`mount overlay overlay ${target} lowerdir=/a`, `mount bind /x ${target} rbind,ro`, `umount ${target}`]);

    // a second mount that fails leaves the first recorded, so that delete takes it down
    const failing = recordingHost(1);
    const f = new HostRootfs(failing.host, bundle);
    await assert.rejects(f.mount([{ type: 'tmpfs', source: 'a', options: [] }, { type: 'tmpfs', source: 'b', options: [] }]), /mount failed/);
    await f.unmount();
    assert.deepEqual(failing.calls, [`mount tmpfs a ${target} `, `umount ${target}`]);
  } finally {
    fs.rmSync(bundle, { recursive: true, force: true });
  }
});

test('HostRootfs.adopt: the recorded flag when there is one, else the mount table', () => {
  const bundle = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrt-rootfs-'));
  try {
    fs.mkdirSync(path.join(bundle, 'rootfs'));
    const { host } = recordingHost();
    const r = new HostRootfs(host, bundle);
    r.adopt(true);
    assert.equal(r.mounted, true);
    r.adopt(undefined);
    assert.equal(r.mounted, false, 'a plain directory is no mount point');
    assert.equal(isMountPoint('/'), true);
    assert.equal(isMountPoint('/proc'), true);
    assert.equal(isMountPoint(path.join(bundle, 'rootfs')), false);
  } finally {
    fs.rmSync(bundle, { recursive: true, force: true });
  }
});
