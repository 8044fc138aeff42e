// EventAcks: which of a monitor's numbered events the daemon acknowledges, and when.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventAcks } from '../../src/shim/event-acks.js';

const turn = () => new Promise((r) => setImmediate(r));

function acks(settled: (pid: number) => boolean) {
  const sent: number[][] = [];
  const a = new EventAcks((events) => sent.push(events), settled);
  a.connected(10);
  return { a, sent };
}

test('an exit is acknowledged after the current turn, once the core has settled it', async () => {
  const done = new Set<number>();
  const { a, sent } = acks((pid) => done.has(pid));
  assert.equal(a.received(1), true);
  a.exit(1, 500);
  assert.equal(a.received(2), true);
  a.exit(2, 501);
  assert.deepEqual(sent, [], 'nothing before the turn ends');
  done.add(501);
  await turn();
  assert.deepEqual(sent, [[2]], 'settled events go, in any order');
  assert.equal(a.pending, 1);
  a.schedule();
  await turn();
  assert.deepEqual(sent, [[2]], 'an unsettled exit waits');
  done.add(500);
  a.schedule();
  a.schedule();
  await turn();
  assert.deepEqual(sent, [[2], [1]], 'one look per turn, however many were asked for');
  assert.equal(a.pending, 0);
});

test('an event sent again after a reconnect is not handled twice; one acknowledged before is acknowledged again', async () => {
  const { a, sent } = acks(() => false);
  assert.equal(a.received(1), true);
  a.done(1); // an OOM event: handled and acknowledged at once
  assert.equal(a.received(2), true);
  a.exit(2, 700);
  assert.deepEqual(sent, [[1]]);
  // the connection broke; the monitor sends both again
  assert.equal(a.received(1), false);
  assert.equal(a.received(2), false);
  assert.deepEqual(sent, [[1], [1]], 'the ack of 1 may have been lost: sent again; 2 is still waiting');
  assert.equal(a.received(3), true, 'a new event');
});

test('a different monitor process numbers its events afresh', () => {
  const { a } = acks(() => true);
  assert.equal(a.received(5), true);
  a.connected(10);
  assert.equal(a.received(5), false, 'the same monitor, reconnected');
  a.connected(11);
  assert.equal(a.received(1), true, 'another monitor process');
});
