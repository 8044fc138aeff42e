// Signals to host processes by pid, for backends whose processes are host processes (an exec under runc
// is signalled directly, as runc-v2 does: `runc kill` only reaches a container's init).
import { NotFoundError, RuntimeError } from '../api/errors.js';

export function signalHostPid(pid: number, signal: number): void {
  if (pid <= 0) throw new NotFoundError('process already finished');
  try {
    process.kill(pid, signal);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ESRCH') throw new NotFoundError('process already finished');
    throw new RuntimeError(`kill ${pid}: ${(e as Error).message}`);
  }
}
