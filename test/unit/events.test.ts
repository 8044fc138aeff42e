// EventPublisher: events wait on disk while containerd is unreachable, in order, for as long as it takes,
// and a later publisher sends what an earlier one left there.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { containerd } from '../../src/gen/proto.js';
import { EventPublisher } from '../../src/shim/events.js';
import { TtrpcServer } from '../../src/ttrpc/server.js';
import { waitFor } from './lib/wait.js';

const EVENTS = 'containerd.services.events.ttrpc.v1.Events';

/** A containerd stand-in serving Events/Forward on path: the envelopes it got, in order. */
async function eventsService(socket: string) {
  const got: Array<{ namespace: string; topic: string; id: string }> = [];
  const server = new TtrpcServer();
  server.register(EVENTS, {
    Forward: async (payload) => {
      const env = containerd.services.events.ttrpc.v1.ForwardRequest.decode(payload).envelope!;
      const exit = containerd.events.TaskExit.decode(env.event!.value!);
      got.push({ namespace: env.namespace ?? '', topic: env.topic ?? '', id: exit.containerId ?? '' });
      return new Uint8Array(0);
    },
  });
  const listener = net.createServer((s) => server.serveConnection(s));
  await new Promise<void>((resolve) => listener.listen(socket, resolve));
  return { got, close: () => new Promise<void>((resolve) => { server.closeAll(); listener.close(() => resolve()); }) };
}

const exit = (id: string) => containerd.events.TaskExit.encode({ containerId: id, exitStatus: 7 }).finish();

function tmp() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrt-events-'));
  return { dir, socket: path.join(dir, 'containerd.sock.ttrpc'), kept: path.join(dir, 'events'), cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

const keptFiles = (dir: string): string[] => { try { return fs.readdirSync(dir).sort(); } catch { return []; } };

test('events published while containerd is unreachable wait on disk and go out in order once it is back', async () => {
  const t = tmp();
  const p = new EventPublisher(t.socket, pino({ level: 'silent' }), t.kept);
  try {
    p.publish('ns', '/tasks/exit', exit('a'));
    await waitFor('the first event kept on disk', () => keptFiles(t.kept).length === 1);
    p.publish('ns2', '/tasks/exit', exit('b'));
    p.publish('ns', '/tasks/exit', exit('c'));
    assert.deepEqual(keptFiles(t.kept), ['0000000000000001.event', '0000000000000002.event', '0000000000000003.event'],
      'an event published meanwhile is on disk before publish returns');
    const svc = await eventsService(t.socket);
    try {
      await waitFor('all three delivered', () => svc.got.length === 3, 20_000);
      assert.deepEqual(svc.got, [
        { namespace: 'ns', topic: '/tasks/exit', id: 'a' },
        { namespace: 'ns2', topic: '/tasks/exit', id: 'b' },
        { namespace: 'ns', topic: '/tasks/exit', id: 'c' },
      ]);
      await p.flush(5000);
      assert.equal(fs.existsSync(t.kept), false, 'the files and their directory are gone once delivered');
      // containerd up: an event goes straight out, nothing is written
      p.publish('ns', '/tasks/exit', exit('d'));
      await waitFor('the fourth', () => svc.got.length === 4);
      assert.equal(fs.existsSync(t.kept), false);
      assert.equal(p.stats.kept, 3);
    } finally {
      await svc.close();
    }
  } finally {
    p.close();
    t.cleanup();
  }
});

test('a publisher delivers first what an earlier one kept on disk', async () => {
  const t = tmp();
  // the earlier daemon's publisher never reaches a containerd (its own address is never served)
  const earlier = new EventPublisher(path.join(t.dir, 'nobody.sock'), pino({ level: 'silent' }), t.kept);
  earlier.publish('ns', '/tasks/exit', exit('old1'));
  await waitFor('kept', () => keptFiles(t.kept).length === 1);
  earlier.publish('ns', '/tasks/exit', exit('old2'));
  earlier.close();
  const svc = await eventsService(t.socket);
  const later = new EventPublisher(t.socket, pino({ level: 'silent' }), t.kept);
  try {
    assert.equal(later.pending, 2);
    later.publish('ns', '/tasks/exit', exit('new'));
    await waitFor('three delivered', () => svc.got.length === 3);
    assert.deepEqual(svc.got.map((g) => g.id), ['old1', 'old2', 'new']);
    await later.flush(5000);
    assert.equal(fs.existsSync(t.kept), false);
  } finally {
    later.close();
    await svc.close();
    t.cleanup();
  }
});
