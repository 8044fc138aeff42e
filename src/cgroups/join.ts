// Moving a process into an existing cgroup, as runc-v2 moves its shim into the runtime option ShimCgroup
// at `start` (containerd cmd/containerd-shim-runc-v2/manager: cgroups v2 `Load(path).AddProc(pid)` on a
// unified host, else v1 `Load(StaticPath(path)).AddProc(pid)`). The path is inside the hierarchy
// ("/system.slice/shims"). On v1 the pid goes to every hierarchy in which that path exists (those where
// it does not are skipped, as upstream skips subsystems without the directory), and it is an error when
// none has it. The cgroup2 mount of a hybrid host is left alone, as upstream leaves it.
import fs from 'node:fs';
import path from 'node:path';
import { cgroupMode, type CgroupMode } from './mode.js';
import { parseCgroupMounts } from './paths.js';

export class JoinCgroupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'JoinCgroupError';
  }
}

export interface JoinOptions {
  /** Default: cgroupMode(). */
  mode?: CgroupMode;
  /** The unified hierarchy's mount point (default /sys/fs/cgroup, where runc-v2 looks). */
  unifiedRoot?: string;
  /** Default: /proc/self/mountinfo. */
  mountinfo?: string;
}

/** The cgroup.procs files the pid is written to. Throws JoinCgroupError when there is none. */
export function cgroupProcsFiles(cgPath: string, opts: JoinOptions = {}): string[] {
  const mode = opts.mode ?? cgroupMode();
  const inner = path.posix.normalize(path.posix.join('/', cgPath));
  if (mode === 'unavailable') throw new JoinCgroupError(`failed to load cgroup ${cgPath}: no cgroup file system is mounted`);
  if (mode === 'unified') return [path.posix.join(opts.unifiedRoot ?? '/sys/fs/cgroup', inner, 'cgroup.procs')];
  const text = opts.mountinfo ?? fs.readFileSync('/proc/self/mountinfo', 'utf8');
  const files: string[] = [];
  for (const m of parseCgroupMounts(text)) {
    if (m.fstype !== 'cgroup') continue;
    const dir = path.posix.join(m.mountpoint, inner);
    if (fs.existsSync(dir)) files.push(path.posix.join(dir, 'cgroup.procs'));
  }
  if (files.length === 0) throw new JoinCgroupError(`failed to load cgroup ${cgPath}: cgroup deleted (no v1 hierarchy has it)`);
  return files;
}

/** Moves process `pid` into the cgroup `cgPath` (all of its threads: cgroup.procs). */
export function joinCgroup(pid: number, cgPath: string, opts: JoinOptions = {}): void {
  for (const file of cgroupProcsFiles(cgPath, opts)) {
    try {
      // O_WRONLY without O_CREAT: a directory that is not a cgroup must not get a file
      const fd = fs.openSync(file, fs.constants.O_WRONLY);
      try {
        fs.writeSync(fd, String(pid));
      } finally {
        fs.closeSync(fd);
      }
    } catch (e) {
      throw new JoinCgroupError(`failed to join cgroup ${cgPath}: ${(e as Error).message}`);
    }
  }
}
