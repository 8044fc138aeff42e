// Small /proc readers used by the integration harness and the benchmark.
// Every function tolerates processes vanishing while /proc is being scanned.

import { readFileSync, readdirSync, readlinkSync } from 'node:fs';

export interface ProcInfo {
  pid: number;
  ppid: number;
  state: string;
  comm: string;
}

export interface CwdInfo {
  pid: number;
  comm: string;
  cwd: string;
}

/** True when `path` is `dir` or lies below it. */
export function isUnder(path: string, dir: string): boolean {
  const d = dir.endsWith('/') && dir.length > 1 ? dir.slice(0, -1) : dir;
  return path === d || path.startsWith(d + '/');
}

export function listPids(): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (/^[0-9]+$/.test(name)) out.push(Number(name));
  }
  return out;
}

/** Parsed /proc/PID/stat, or null when the process is gone. */
export function readStat(pid: number): ProcInfo | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // comm may contain spaces and parentheses: it ends at the last ')'.
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < 0) return null;
  const comm = text.slice(open + 1, close);
  const rest = text.slice(close + 2).split(' ');
  return { pid, comm, state: rest[0] ?? '?', ppid: Number(rest[1] ?? 0) };
}

export function readCmdline(pid: number): string[] {
  try {
    const raw = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return raw.split('\0').filter((s, i, a) => !(s === '' && i === a.length - 1));
  } catch {
    return [];
  }
}

export function readCwd(pid: number): string | null {
  try {
    return readlinkSync(`/proc/${pid}/cwd`).replace(/ \(deleted\)$/, '');
  } catch {
    return null;
  }
}

/** Lines of /proc/PID/cgroup as [hierarchy-id, controllers, path]. */
export function readCgroups(pid: number): Array<[string, string, string]> {
  try {
    return readFileSync(`/proc/${pid}/cgroup`, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => {
        const a = l.indexOf(':');
        const b = l.indexOf(':', a + 1);
        return [l.slice(0, a), l.slice(a + 1, b), l.slice(b + 1)] as [string, string, string];
      });
  } catch {
    return [];
  }
}

/** Every process currently in state Z (zombie). */
export function listZombies(): ProcInfo[] {
  const out: ProcInfo[] = [];
  for (const pid of listPids()) {
    const st = readStat(pid);
    if (st && st.state === 'Z') out.push(st);
  }
  return out;
}

/** Processes (other than this one) whose working directory is `dir` or below it. */
export function processesWithCwdUnder(dir: string): CwdInfo[] {
  const out: CwdInfo[] = [];
  for (const pid of listPids()) {
    if (pid === process.pid) continue;
    const cwd = readCwd(pid);
    if (cwd === null || !isUnder(cwd, dir)) continue;
    const st = readStat(pid);
    out.push({ pid, comm: st?.comm ?? '?', cwd });
  }
  return out;
}

/** Decode the octal escapes (\040 etc.) that mountinfo uses for blanks and backslashes. */
function unescapeMountPath(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export interface MountInfo {
  id: number;
  parent: number;
  mountPoint: string;
  fsType: string;
  source: string;
}

export function readMountinfo(pid: number | 'self' = 'self'): MountInfo[] {
  const out: MountInfo[] = [];
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/mountinfo`, 'utf8');
  } catch {
    return out;
  }
  for (const line of text.split('\n')) {
    if (!line) continue;
    const f = line.split(' ');
    const sep = f.indexOf('-');
    out.push({
      id: Number(f[0]),
      parent: Number(f[1]),
      mountPoint: unescapeMountPath(f[4] ?? ''),
      fsType: sep >= 0 ? (f[sep + 1] ?? '') : '',
      source: sep >= 0 ? unescapeMountPath(f[sep + 2] ?? '') : '',
    });
  }
  return out;
}

/** Mount points at or below `dir` in this process's mount namespace, deepest first. */
export function mountsUnder(dir: string): string[] {
  const points = readMountinfo()
    .map((m) => m.mountPoint)
    .filter((p) => isUnder(p, dir));
  const depth = (p: string) => p.split('/').length;
  return points.sort((a, b) => depth(b) - depth(a) || b.length - a.length);
}

/** Proportional set size of a process in KiB (smaps_rollup), or 0 if unreadable. */
export function pssKiB(pid: number): number {
  try {
    const text = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
    const m = /^Pss:\s+(\d+) kB/m.exec(text);
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

export function isAlive(pid: number): boolean {
  const st = readStat(pid);
  return st !== null && st.state !== 'Z' && st.state !== 'X';
}
