// Turns the stdio strings of a Create/Exec request into what the monitor hands the process. Client FIFOs
// are passed to the container directly (no copy through the shim: the bytes go from the process to the
// client's FIFO); the monitor keeps the extra FIFO ends runc-v2 keeps so that EPIPE and EOF behave alike.
// With a terminal the monitor copies between the pty master and the FIFOs instead (src/io/process-io.ts).
import { InvalidArgumentError, UnimplementedError } from '../plugins/api/errors.js';

export interface StdioRequest {
  stdin: string;
  stdout: string;
  stderr: string;
  terminal: boolean;
}

/** Monitor stdio specs: '' = /dev/null, `fifo:<path>`, `file:<path>`, `logger:1|2` (the io key's logger). */
export interface StdioPlan {
  stdin: string;
  stdout: string;
  stderr: string;
  terminal: boolean;
  /** `binary://` destination: the logging process to start before the container's process. */
  logger: { argv: string[] } | null;
}

function schemeOf(uri: string): string | null {
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(uri);
  return m ? m[1]!.toLowerCase() : null;
}

function parseUri(uri: string): URL {
  try {
    return new URL(uri);
  } catch {
    throw new InvalidArgumentError(`malformed stdio URI ${JSON.stringify(uri)}`);
  }
}

function absolutePath(uri: string, u: URL): string {
  const p = decodeURIComponent(u.pathname);
  if (!p.startsWith('/') || (u.host !== '' && u.host !== 'localhost')) {
    throw new InvalidArgumentError(`stdio URI ${JSON.stringify(uri)} must name an absolute path`);
  }
  return p;
}

/**
 * argv of a `binary://` logger: the path, then each query key followed by its value when the value is not
 * empty (runc-v2's order of keys is unspecified; ours is the URI's).
 */
export function loggerArgv(uri: string): string[] {
  const u = parseUri(uri);
  const argv = [absolutePath(uri, u)];
  for (const [k, v] of u.searchParams) {
    argv.push(k);
    if (v !== '') argv.push(v);
  }
  return argv;
}

const fifo = (p: string): string => (p ? `fifo:${p}` : '');

/** The stdout string's scheme decides, as with runc-v2: plain path = FIFO, file:// = one log file. */
export function stdioFor(req: StdioRequest): StdioPlan {
  const scheme = schemeOf(req.stdout);
  const stdin = fifo(req.stdin);
  // A terminal has no stderr: runc-v2 never opens it (CRI still passes a path).
  const stderrOf = (s: string): string => (req.terminal ? '' : s);
  switch (scheme) {
    case null:
      return { stdin, stdout: fifo(req.stdout), stderr: stderrOf(fifo(req.stderr)), terminal: req.terminal, logger: null };
    case 'file': {
      const target = `file:${absolutePath(req.stdout, parseUri(req.stdout))}`;
      return { stdin, stdout: target, stderr: stderrOf(target), terminal: req.terminal, logger: null };
    }
    case 'binary':
      if (req.terminal) throw new UnimplementedError('a terminal with a binary:// log URI is not supported by tsrt');
      // The logger reads the process's output; stdin is not connected (runc-v2 alike).
      return { stdin: '', stdout: 'logger:1', stderr: stderrOf('logger:2'), terminal: req.terminal, logger: { argv: loggerArgv(req.stdout) } };
    default:
      throw new InvalidArgumentError(`unknown STDIO scheme ${scheme}`);
  }
}
