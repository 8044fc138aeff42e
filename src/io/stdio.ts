// Turns the stdio strings of a Create/Exec request into what the monitor hands the process. Client FIFOs
// are passed to the container directly (no copy through the shim: the bytes go from the process to the
// client's FIFO); the monitor keeps the extra FIFO ends runc-v2 keeps so that EPIPE and EOF behave alike.
import { InvalidArgumentError, UnimplementedError } from '../shim/errors.js';
import type { Stdio } from '../plugins/backend.js';

export interface StdioRequest {
  stdin: string;
  stdout: string;
  stderr: string;
  terminal: boolean;
}

function schemeOf(uri: string): string | null {
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(uri);
  return m ? m[1]!.toLowerCase() : null;
}

function filePath(uri: string): string {
  let u: URL;
  try {
    u = new URL(uri);
  } catch {
    throw new InvalidArgumentError(`malformed stdio URI ${JSON.stringify(uri)}`);
  }
  const p = decodeURIComponent(u.pathname);
  if (!p.startsWith('/')) throw new InvalidArgumentError(`stdio URI ${JSON.stringify(uri)} must name an absolute path`);
  return p;
}

const fifo = (p: string): string => (p ? `fifo:${p}` : '');

/** The stdout string's scheme decides, as with runc-v2: plain path = FIFO, file:// = one log file. */
export function stdioFor(req: StdioRequest): Stdio {
  if (req.terminal) throw new UnimplementedError('terminal (tty) processes are not supported by tsrt yet');
  const scheme = schemeOf(req.stdout);
  switch (scheme) {
    case null:
      return { stdin: fifo(req.stdin), stdout: fifo(req.stdout), stderr: fifo(req.stderr) };
    case 'file': {
      const target = `file:${filePath(req.stdout)}`;
      return { stdin: fifo(req.stdin), stdout: target, stderr: target };
    }
    case 'binary':
      throw new UnimplementedError('binary:// log URIs are not supported by tsrt yet');
    default:
      throw new InvalidArgumentError(`unknown STDIO scheme ${scheme}`);
  }
}
