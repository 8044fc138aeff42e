// A deadline on a command the monitor spawned, for backends that run runtime commands as host processes.
import type { Exit, ProcessHost } from '../api/index.js';

/**
 * The command's exit, or null once timeoutMs has passed: the command is then SIGKILLed through the
 * monitor, which signals it only while it has not exited (so never a process that took its pid).
 */
export async function exitWithin(host: Pick<ProcessHost, 'waitExit' | 'signal'>, pid: number, timeoutMs: number): Promise<Exit | null> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<null>((resolve) => { timer = setTimeout(() => resolve(null), timeoutMs); });
  try {
    const first = await Promise.race([host.waitExit(pid), late]);
    if (first) return first;
  } finally {
    clearTimeout(timer);
  }
  await host.signal(pid, 9).catch(() => undefined); // it exited just now
  return null;
}
