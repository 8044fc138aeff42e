// The vm backend's QEMU choices (src/plugins/vm/qemu.ts): the accelerator the host really offers, the TSC
// frequency for a TCG guest, QEMU's argv.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { chooseAccel, qemuArgs, tscKhz } from '../../src/plugins/vm/qemu.js';

const host = (...paths: string[]) => ({ exists: (p: string) => paths.includes(p) });

test('KVM only with a hardware KVM module; PVM and no /dev/kvm get TCG, each with its reason', () => {
  assert.deepEqual(chooseAccel(host('/dev/kvm', '/sys/module/kvm_intel')), { accel: 'kvm', why: '/dev/kvm with kvm_intel' });
  assert.deepEqual(chooseAccel(host('/dev/kvm', '/sys/module/kvm_amd')), { accel: 'kvm', why: '/dev/kvm with kvm_amd' });
  assert.deepEqual(chooseAccel(host('/dev/kvm', '/sys/module/kvm_pvm')), { accel: 'tcg', why: '/dev/kvm is PVM, which runs only PVM guest kernels' });
  assert.deepEqual(chooseAccel(host('/dev/kvm')), { accel: 'tcg', why: '/dev/kvm without a hardware KVM module' });
  assert.deepEqual(chooseAccel(host('/sys/module/kvm_intel')), { accel: 'tcg', why: 'no /dev/kvm' });
});

test('tsc_early_khz from the first cpu MHz line', () => {
  assert.equal(tscKhz('processor\t: 0\ncpu MHz\t\t: 2096.016\ncpu MHz\t\t: 1.0\n'), 2096016);
  assert.equal(tscKhz('no such line'), undefined);
});

test('QEMU argv: microvm, PVH kernel, the agent port on a unix socket, the console on stdio; bad values refused', () => {
  const o = { kernel: '/g/vmlinux', initrd: '/g/i.gz', memoryMiB: 256, vcpus: 2, accel: 'tcg' as const, agentSocket: '/run/x/agent.sock', portName: 'tsrt.agent', tscKhz: 2096016 };
  const a = qemuArgs(o);
  const after = (flag: string) => a[a.indexOf(flag) + 1];
  assert.deepEqual([after('-M'), after('-accel'), after('-m'), after('-smp'), after('-kernel'), after('-initrd'), after('-serial')],
    ['microvm', 'tcg', '256', '2', '/g/vmlinux', '/g/i.gz', 'stdio']);
  assert.equal(after('-append'), 'console=ttyS0 quiet panic=-1 tsc_early_khz=2096016');
  assert.ok(a.includes('socket,id=agent,path=/run/x/agent.sock,server=on,wait=off'));
  assert.ok(a.includes('virtserialport,chardev=agent,name=tsrt.agent'));
  assert.ok(!a.includes('-cpu'));
  assert.deepEqual(qemuArgs({ ...o, accel: 'kvm' }).slice(0, 6), ['-M', 'microvm', '-accel', 'kvm', '-cpu', 'host']);
  assert.throws(() => qemuArgs({ ...o, memoryMiB: 64 }), /below 128 MiB/);
  assert.throws(() => qemuArgs({ ...o, vcpus: 0 }), /not a positive integer/);
  assert.throws(() => qemuArgs({ ...o, agentSocket: '/a,b' }), /commas or spaces/);
  const shared = qemuArgs({ ...o, shares: [{ tag: 'tsrt.share', path: '/run/x/share' }] });
  assert.deepEqual(shared.slice(-4), ['-fsdev', 'local,id=fs0,path=/run/x/share,security_model=none', '-device', 'virtio-9p-device,fsdev=fs0,mount_tag=tsrt.share']);
  assert.throws(() => qemuArgs({ ...o, shares: [{ tag: 't', path: '/a b' }] }), /commas or spaces/);
});
