// Fault injection, for tests only: `TSRT_TEST_FAULT=<point>:<file>` in the daemon's environment makes the
// daemon SIGKILL itself when it reaches `<point>` while `<file>` exists. The file is removed first, so one
// file is one crash, whichever daemon gets there; without the variable a point costs one comparison.
//   exit-unrecorded  an exit of a recorded process was read from the monitor and is not yet written down
import fs from 'node:fs';

const spec = process.env.TSRT_TEST_FAULT ?? '';
const colon = spec.indexOf(':');
const armedPoint = colon > 0 ? spec.slice(0, colon) : '';
const armedFile = colon > 0 ? spec.slice(colon + 1) : '';

export function faultPoint(point: string): void {
  if (point !== armedPoint) return;
  try {
    fs.unlinkSync(armedFile);
  } catch {
    return; // not armed now
  }
  process.kill(process.pid, 'SIGKILL');
}
