// Logging through pino. Each container's lines go to its bundle's `log` FIFO, which containerd copies to
// its own stderr; every line carries the container id. containerd opens that FIFO O_RDWR, so our O_WRONLY
// open never blocks. The fd is non-blocking: while nobody drains it (containerd down) lines are dropped
// rather than stalling the event loop.
import fs from 'node:fs';
import path from 'node:path';
import { pino, type Logger } from 'pino';

export type { Logger };

/** The level of the daemon's log and of the containers' logs: the environment's, until LogLevel names one. */
let level = process.env.TSRT_LOG_LEVEL ?? (process.env.TSRT_DEBUG ? 'debug' : 'info');
/** Every logger open now, so that a level set later reaches them all. */
const open = new Set<Logger>();

class DroppingFdStream {
  constructor(private fd: number | null) {}
  write(line: string): void {
    if (this.fd === null) return;
    try {
      fs.writeSync(this.fd, line);
    } catch {
      // EAGAIN (reader not draining) or EPIPE (no reader): drop the line.
    }
  }
  close(): void {
    if (this.fd !== null) {
      try { fs.closeSync(this.fd); } catch { /* already closed */ }
      this.fd = null;
    }
  }
}

function openForAppend(file: string, fifo: boolean): number | null {
  try {
    const flags = fifo
      ? fs.constants.O_WRONLY | fs.constants.O_NONBLOCK
      : fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_APPEND;
    return fs.openSync(file, flags, 0o600);
  } catch {
    return null;
  }
}

const base = { runtime: 'io.containerd.tsrt.v2' };

/** The daemon's own log: `<daemon dir>/daemon.log`. */
export function daemonLogger(dir: string): Logger {
  const stream = new DroppingFdStream(openForAppend(path.join(dir, 'daemon.log'), false));
  const log = pino({ level, base: { ...base, pid: process.pid } }, stream);
  open.add(log);
  return log;
}

/** The current level of the daemon's and the containers' logs. */
export function logLevel(): string {
  return level;
}

/** Sets the level of every log, open and to come (the runtime option LogLevel). */
export function setLogLevel(next: string): void {
  level = next;
  for (const log of open) log.level = next;
}

export interface ContainerLogger { log: Logger; close(): void }

/** A logger writing to `<bundle>/log` with `id` on every line. */
export function containerLogger(bundle: string, id: string, namespace: string): ContainerLogger {
  const stream = new DroppingFdStream(openForAppend(path.join(bundle, 'log'), true));
  const log = pino({ level, base: { ...base, id, namespace } }, stream);
  open.add(log);
  return { log, close: () => { open.delete(log); stream.close(); } };
}
