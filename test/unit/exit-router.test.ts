import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ExitRouter } from '../../src/shim/exit-router.js';

const exit = (pid: number, status: number) => ({ pid, status, at: new Date(1000) });

test('an exit reaches the waiter of its pid', async () => {
  const r = new ExitRouter();
  const w = r.wait(10);
  r.deliver(exit(11, 1));
  r.deliver(exit(10, 3));
  assert.equal((await w).status, 3);
});

test('an exit reaped before anyone asked is kept for the first waiter', async () => {
  const r = new ExitRouter();
  r.deliver(exit(20, 137));
  assert.equal((await r.wait(20)).status, 137);
});

test('a pid handed out again drops the stale exit', async () => {
  const r = new ExitRouter();
  r.deliver(exit(30, 1));
  r.forget(30);
  let done = false;
  const w = r.wait(30).then((e) => { done = true; return e; });
  await new Promise((res) => setImmediate(res));
  assert.equal(done, false);
  r.deliver(exit(30, 0));
  assert.equal((await w).status, 0);
});

test('two waiters of one pid both see the exit', async () => {
  const r = new ExitRouter();
  const a = r.wait(40);
  const b = r.wait(40);
  r.deliver(exit(40, 2));
  assert.deepEqual([(await a).status, (await b).status], [2, 2]);
});
