// Listening on a named unix socket without ever removing a socket that belongs to someone else.
// libuv unlinks the path a server listened on when the server closes, whatever sits there by then, and a
// plain listen() fails on a stale socket file left by a crashed process. So the server listens on a
// private temporary name and the socket is published under its real name with link(2), which fails
// instead of replacing: a live listener keeps its name, a dead one's file is replaced.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** Another process answers on the path. */
export class SocketInUse extends Error {
  constructor(readonly path: string) { super(`${path} is in use by another process`); }
}

/** Which file a published socket is, so that only that file is removed later. */
export interface SocketIdentity {
  path: string;
  dev: number;
  ino: number;
}

/**
 * Makes `server` listen on `sockPath` with permissions `mode`. Throws SocketInUse (with the server
 * closed) when a live process already listens there.
 */
export async function listenUnix(server: net.Server, sockPath: string, mode: number): Promise<SocketIdentity> {
  const tmp = `${sockPath}.${process.pid}`;
  fs.rmSync(tmp, { force: true });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(tmp, () => { server.off('error', reject); resolve(); });
  });
  try {
    fs.chmodSync(tmp, mode);
    await publish(tmp, sockPath);
  } catch (e) {
    server.close();
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  const st = fs.statSync(tmp);
  fs.rmSync(tmp, { force: true });
  return { path: sockPath, dev: st.dev, ino: st.ino };
}

async function publish(tmp: string, sockPath: string): Promise<void> {
  for (;;) {
    try {
      fs.linkSync(tmp, sockPath);
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    // Only a dead socket is replaced: the path may come from a configuration file, and a typo must
    // not remove a file or directory that happens to be there.
    if (!isSocket(sockPath)) throw new Error(`${sockPath} exists and is not a socket`);
    if (await canConnect(sockPath)) throw new SocketInUse(sockPath);
    // Several processes may find the same dead socket (monitors starting daemons after a crash). Were
    // each to remove it, one could remove the live socket another had just published, and both would
    // believe they listen there. So removing happens under a lock, after the liveness check is made
    // again: only a lock holder removes, and while the name exists nobody else can link there, so the
    // file checked is the file removed. Otherwise the next round decides.
    await underLock(sockPath, async () => {
      const st = fs.lstatSync(sockPath, { throwIfNoEntry: false });
      if (st?.isSocket() && !(await canConnect(sockPath))) fs.rmSync(sockPath, { force: true });
    });
  }
}

/**
 * Runs `fn` holding a lock on `sockPath` across processes: a listener on an abstract unix socket named
 * after the path, which the kernel drops when its process dies, so a crash never leaves the lock held.
 */
async function underLock(sockPath: string, fn: () => Promise<void>): Promise<void> {
  const name = `\0tsrt-publish-${createHash('sha256').update(path.resolve(sockPath)).digest('hex').slice(0, 40)}`;
  const deadline = Date.now() + 10_000;
  for (;;) {
    const lock = net.createServer();
    try {
      await new Promise<void>((resolve, reject) => {
        lock.once('error', reject);
        lock.listen(name, () => { lock.off('error', reject); resolve(); });
      });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EADDRINUSE' || Date.now() > deadline) {
        throw new Error(`cannot lock ${sockPath} to replace its dead socket: ${(e as Error).message}`);
      }
      await sleep(5); // a holder keeps it for one connect attempt; poll until it lets go
      continue;
    }
    try {
      await fn();
    } finally {
      lock.close();
    }
    return;
  }
}

function isSocket(p: string): boolean {
  try {
    return fs.lstatSync(p).isSocket();
  } catch {
    return true; // gone meanwhile: nothing to protect, linking again decides
  }
}

/** Removes the published socket, unless the path has meanwhile been taken over by another file. */
export function unlinkIfOurs(id: SocketIdentity): void {
  try {
    const st = fs.statSync(id.path);
    if (st.dev === id.dev && st.ino === id.ino) fs.rmSync(id.path, { force: true });
  } catch { /* already gone */ }
}

/** True if something accepts connections on the unix socket `p` (within 500 ms). */
export function canConnect(p: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(p);
    const done = (ok: boolean): void => { s.destroy(); resolve(ok); };
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
    setTimeout(() => done(false), 500).unref();
  });
}
