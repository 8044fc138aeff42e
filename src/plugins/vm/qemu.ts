// How the vm backend runs QEMU (shared/reference/vm-backend.md has the measurements behind each choice): the
// `microvm` machine booting the uncompressed kernel directly (PVH), the initramfs with the agent as /init,
// one virtio-serial port for the agent and the serial console as the guest's log. The accelerator is what
// the host really offers: KVM only with a hardware KVM module (kvm_intel, kvm_amd); a PVM host's /dev/kvm
// runs only PVM guest kernels, which Debian does not ship, so it gets TCG like a host without /dev/kvm.
import fs from 'node:fs';

export type Accel = 'kvm' | 'tcg';

export interface AccelChoice { accel: Accel; why: string }

/** Which accelerator to use, and why; `sys` is for tests (default: the host's /sys and /dev). */
export function chooseAccel(sys: { exists(path: string): boolean } = { exists: fs.existsSync }): AccelChoice {
  const kvm = sys.exists('/dev/kvm');
  const hw = ['kvm_intel', 'kvm_amd'].find((m) => sys.exists(`/sys/module/${m}`));
  if (kvm && hw) return { accel: 'kvm', why: `/dev/kvm with ${hw}` };
  if (kvm && sys.exists('/sys/module/kvm_pvm')) return { accel: 'tcg', why: '/dev/kvm is PVM, which runs only PVM guest kernels' };
  return { accel: 'tcg', why: kvm ? '/dev/kvm without a hardware KVM module' : 'no /dev/kvm' };
}

/**
 * The TSC frequency for the guest's command line (`tsc_early_khz`), from the first "cpu MHz" of
 * /proc/cpuinfo. Under TCG the guest cannot calibrate its TSC against the PIT and, without it, hangs in
 * some boots (2 of 5 seen).
 */
export function tscKhz(cpuinfo: string): number | undefined {
  const m = /^cpu MHz\s*:\s*([0-9.]+)/m.exec(cpuinfo);
  return m ? Math.round(Number(m[1]) * 1000) : undefined;
}

export interface QemuOptions {
  kernel: string;
  initrd: string;
  memoryMiB: number;
  vcpus: number;
  accel: Accel;
  /** The unix socket QEMU listens on for the agent's port (the host connects to it). */
  agentSocket: string;
  /** Name of the virtio-serial port the agent looks for. */
  portName: string;
  /** Guest kernel command line additions. */
  tscKhz?: number;
  /** Host directories the guest mounts with 9p (`mount -t 9p -o trans=virtio <tag> <dir>`). */
  shares?: ReadonlyArray<{ tag: string; path: string }>;
}

/** The guest needs at least this much memory with Debian's kernel (84 MiB measured; 128 is the plan). */
export const MIN_MEMORY_MIB = 128;

/** QEMU's argv (without the binary) for one guest; its serial console goes to QEMU's stdout. */
export function qemuArgs(o: QemuOptions): string[] {
  if (o.memoryMiB < MIN_MEMORY_MIB) throw new RangeError(`guest memory ${o.memoryMiB} MiB is below ${MIN_MEMORY_MIB} MiB`);
  if (!Number.isInteger(o.vcpus) || o.vcpus < 1) throw new RangeError(`guest vCPUs ${o.vcpus} is not a positive integer`);
  const shares = o.shares ?? [];
  if ([o.agentSocket, o.portName, ...shares.flatMap((x) => [x.tag, x.path])].some((v) => /[,\s]/.test(v))) {
    throw new RangeError('the agent socket path, port name and shares may not hold commas or spaces');
  }
  const cmdline = ['console=ttyS0', 'quiet', 'panic=-1', ...(o.tscKhz ? [`tsc_early_khz=${o.tscKhz}`] : [])];
  return [
    '-M', 'microvm', '-accel', o.accel, ...(o.accel === 'kvm' ? ['-cpu', 'host'] : []),
    '-m', String(o.memoryMiB), '-smp', String(o.vcpus),
    '-nodefaults', '-no-user-config', '-nographic', '-no-reboot', '-serial', 'stdio',
    '-kernel', o.kernel, '-initrd', o.initrd, '-append', cmdline.join(' '),
    '-device', 'virtio-serial-device',
    '-chardev', `socket,id=agent,path=${o.agentSocket},server=on,wait=off`,
    '-device', `virtserialport,chardev=agent,name=${o.portName}`,
    ...shares.flatMap((x, i) => [
      '-fsdev', `local,id=fs${i},path=${x.path},security_model=none`, '-device', `virtio-9p-device,fsdev=fs${i},mount_tag=${x.tag}`,
    ]),
  ];
}
