// Fault injection, for tests only: `TSRT_TEST_FAULT=<point>:<file>[,<point>:<file>…]` in the daemon's
// environment arms these points; each acts only while its file exists. Without the variable a point costs
// one map lookup.
//   exit-unrecorded     faultPoint: the daemon SIGKILLs itself when it has read an exit of a recorded
//                       process from the monitor and not yet written it down. The file is removed first,
//                       so one file is one crash, whichever daemon gets there.
//   events-unreachable  faultHeld: the event publisher treats containerd as unreachable (tries nothing),
//                       so that a test decides when kept events go out.
import fs from 'node:fs';

const armed = new Map<string, string>();
for (const item of (process.env.TSRT_TEST_FAULT ?? '').split(',')) {
  const colon = item.indexOf(':');
  if (colon > 0) armed.set(item.slice(0, colon), item.slice(colon + 1));
}

export function faultPoint(point: string): void {
  const file = armed.get(point);
  if (file === undefined) return;
  try {
    fs.unlinkSync(file);
  } catch {
    return; // not armed now
  }
  process.kill(process.pid, 'SIGKILL');
}

export function faultHeld(point: string): boolean {
  const file = armed.get(point);
  return file !== undefined && fs.existsSync(file);
}
