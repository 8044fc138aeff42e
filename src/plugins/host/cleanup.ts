// The command the C `delete` binary runs to clean up after a container whose daemon is gone (containerd
// runs `<shim> delete` when it cannot reach a shim): `<bundle>/tsrt-cleanup`, one argument per line,
// run in the bundle with /dev/null as stdio and a time limit. The backend that made the container writes
// it, so `delete` needs to know nothing of backends.
import fs from 'node:fs';
import path from 'node:path';
import { InvalidArgumentError } from '../api/errors.js';

export const CLEANUP_FILE = 'tsrt-cleanup';
/** What native/shim/delete.c reads at most (CLEANUP_MAX_ARGS). */
const MAX_ARGS = 64;

export function writeCleanupCommand(bundle: string, argv: string[]): void {
  if (argv.length === 0 || argv.length > MAX_ARGS) {
    throw new InvalidArgumentError(`a cleanup command has 1 to ${MAX_ARGS} arguments, not ${argv.length}`);
  }
  const bad = argv.find((a) => a === '' || /[\n\0]/.test(a));
  if (bad !== undefined) throw new InvalidArgumentError(`cleanup argument ${JSON.stringify(bad)}: empty, or holds a newline or NUL`);
  const file = path.join(bundle, CLEANUP_FILE);
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${argv.join('\n')}\n`, { mode: 0o600 });
  fs.renameSync(tmp, file);
}
