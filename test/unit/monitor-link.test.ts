import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type net from 'node:net';
import { encodeControlFrame } from '../../src/shim/control-frame.js';
import { ExitRouter } from '../../src/shim/exit-router.js';
import { MonitorLink, parseHello } from '../../src/shim/monitor-link.js';

/** A control socket stand-in: what the daemon writes is kept, what the monitor sends is emitted as data. */
class FakeSocket extends EventEmitter {
  written: Buffer[] = [];
  destroyed = false;
  write(b: Buffer): boolean { this.written.push(b); return true; }
  destroy(): void { this.destroyed = true; }
}

test('a process reaped in the same read as the spawn reply is not lost', async () => {
  const hello = parseHello(['control', 'm1', '1', '/b', 'ns', 'id', '/a']);
  const link = new MonitorLink(hello);
  const router = new ExitRouter();
  link.onReaped((e) => router.deliver(e));
  const sock = new FakeSocket();
  link.attach(sock as unknown as net.Socket, Buffer.alloc(0), hello);
  // a stale exit of an earlier process with the same pid, which the spawn must drop
  router.deliver({ pid: 77, status: 9, at: new Date(0) });
  const spawned = link.spawn({ ioKey: 'k', cwd: '/', stdin: '', stdout: '', stderr: '', argv: ['x'] }, (pid) => router.forget(pid));
  await new Promise((r) => setImmediate(r));
  assert.equal(sock.written.length, 1);
  sock.emit('data', Buffer.concat([encodeControlFrame(['ok', 1, 77]), encodeControlFrame(['reaped', 1, 77, 0, 5, 0])]));
  const pid = await spawned;
  assert.equal(pid, 77);
  assert.equal((await router.wait(pid)).status, 0);
});
