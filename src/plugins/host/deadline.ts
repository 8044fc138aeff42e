// A deadline on a command the monitor spawned, for backends that run runtime commands as host processes.
import type { Exit } from '../api/index.js';

/**
 * The command's exit, or null once timeoutMs has passed: the command is then SIGKILLed. Its exit has not
 * been reported, so the monitor has not reaped it and the pid is still the command's.
 */
export async function exitWithin(waitExit: (pid: number) => Promise<Exit>, pid: number, timeoutMs: number): Promise<Exit | null> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<null>((resolve) => { timer = setTimeout(() => resolve(null), timeoutMs); });
  try {
    const first = await Promise.race([waitExit(pid), late]);
    if (first) return first;
  } finally {
    clearTimeout(timer);
  }
  try {
    process.kill(pid, 'SIGKILL');
  } catch { /* it exited just now */ }
  return null;
}
