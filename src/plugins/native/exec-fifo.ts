// Start of a native container: releasing its init, blocked on the exec FIFO (docs/native-launcher.md,
// step `execfifo`).
import fs from 'node:fs';
import net from 'node:net';
import { RuntimeError, type Exit } from '../api/index.js';

/**
 * Releases the init blocked on the exec FIFO: a non-blocking open for reading completes its blocked open
 * for writing, and the byte it writes says it goes on to execve. No thread ever blocks on the FIFO. An
 * init that has died meanwhile never writes, and a FIFO that never had a writer reports no end-of-file
 * either, so its exit (`exited`) ends the wait.
 *
 * The byte and the exit can reach the daemon in the same turn of the event loop, the exit first: an init
 * that runs `true` writes, execs and is reaped before the daemon has read the FIFO. So an exit is a
 * failure only when the FIFO holds no byte at that moment; a byte there means the init was started.
 */
export function releaseInit(fifo: string, exited: Promise<Exit>): Promise<void> {
  return new Promise((resolve, reject) => {
    let fd: number;
    try {
      fd = fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    } catch (e) {
      reject(new RuntimeError(`cannot open the exec FIFO ${fifo}: ${(e as Error).message}`));
      return;
    }
    const pipe = new net.Socket({ fd, readable: true, writable: false });
    let done = false;
    const finish = (err?: Error): void => {
      if (done) return;
      done = true;
      pipe.destroy();
      if (err) reject(err); else resolve();
    };
    pipe.on('data', () => finish());
    pipe.on('end', () => finish(new RuntimeError('container init exited before it was started')));
    exited.then((e) => {
      if (done) return;
      if (byteWaiting(fd)) finish();
      else finish(new RuntimeError(`container init exited with status ${e.status} before it was started`));
    }, () => undefined);
    pipe.on('error', (e) => finish(new RuntimeError(`exec FIFO ${fifo}: ${e.message}`)));
  });
}

/** Whether the (non-blocking) FIFO has a byte to read now; the byte is consumed. */
function byteWaiting(fd: number): boolean {
  try {
    return fs.readSync(fd, Buffer.alloc(1), 0, 1, null) === 1;
  } catch {
    return false; // EAGAIN: nothing written
  }
}
