// The rootfs of a host container: containerd's mounts (CreateTaskRequest.rootfs) stacked on
// `<bundle>/rootfs` by the monitor (the daemon cannot call mount(2)), and taken down at delete. A backend
// whose containers see the host's file systems (runc, gVisor's gofer) uses this; a VM backend hands the
// mounts to its guest instead.
import fs from 'node:fs';
import path from 'node:path';
import type { Mount, ProcessHost } from '../api/index.js';

export const rootfsOf = (bundle: string): string => path.join(bundle, 'rootfs');

export class HostRootfs {
  /** Some mount was (or may have been) made on `<bundle>/rootfs`: delete takes them down. */
  mounted = false;

  constructor(private readonly host: ProcessHost, readonly bundle: string) {}

  /**
   * Mounts containerd's rootfs mounts in order on `<bundle>/rootfs`. None: the bundle's rootfs is used as
   * it is (`ctr run --rootfs`, or a spec with its own root path). On failure what was mounted stays
   * recorded, so that `unmount` (the backend's delete after a failed Create) takes it down.
   */
  async mount(mounts: Mount[]): Promise<void> {
    if (mounts.length === 0) return;
    const target = rootfsOf(this.bundle);
    fs.mkdirSync(target, { recursive: true, mode: 0o711 });
    this.mounted = true;
    for (const m of mounts) await this.host.mount(m.type, m.source, target, m.options);
  }

  /** Takes down every mount stacked on the rootfs (nothing if none was made). */
  async unmount(): Promise<void> {
    if (!this.mounted) return;
    await this.host.umount(rootfsOf(this.bundle));
    this.mounted = false;
  }

  /**
   * After a daemon restart: whether the earlier daemon mounted the rootfs, from the backend's recorded
   * state when it has it, else from the mount table (a record of a daemon that kept no such state).
   */
  adopt(recorded: boolean | undefined): void {
    this.mounted = recorded ?? isMountPoint(rootfsOf(this.bundle));
  }
}

/** Whether `dir` is a mount point in this mount namespace (/proc/self/mountinfo, field 5). */
export function isMountPoint(dir: string): boolean {
  let text: string;
  try {
    text = fs.readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return false;
  }
  const want = path.resolve(dir);
  for (const line of text.split('\n')) {
    const mountPoint = line.split(' ')[4];
    // mountinfo escapes space, tab, newline and backslash as octal
    if (mountPoint && mountPoint.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8))) === want) return true;
  }
  return false;
}
