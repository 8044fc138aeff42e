import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { StateStore, type ContainerRecord } from '../../src/shim/state-store.js';

const record = (id: string, namespace = 'ns'): ContainerRecord => ({
  id, namespace, bundle: `/b/${id}`, backend: 'native', config: {} as ContainerRecord['config'], stdio: { stdin: '', stdout: '', stderr: '', terminal: false },
  init: { pid: 1, status: 'running', exitStatus: 0, exitedAt: null },
});

test('records are saved, replaced, removed, and saved again after their directories went away', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrt-store-'));
  const dir = path.join(root, 'state');
  try {
    const store = new StateStore(dir);
    store.save(record('a'));
    store.save({ ...record('a'), bundle: '/b/again' });
    assert.deepEqual(store.load(() => assert.fail('unreadable')).map((r) => r.bundle), ['/b/again']);
    // the last record of the namespace takes the directories with it; the next save makes them again
    store.remove('ns', 'a');
    assert.equal(fs.existsSync(dir), false);
    store.save(record('b'));
    // someone else removed them: made again too
    fs.rmSync(dir, { recursive: true });
    store.save(record('c'));
    assert.deepEqual(store.load(() => assert.fail('unreadable')).map((r) => r.id), ['c']);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test('a save interrupted between its unlink and its rename is loaded from the new file, and finished', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrt-store-'));
  const dir = path.join(root, 'state');
  try {
    const store = new StateStore(dir);
    store.save(record('a'));
    store.save(record('b'));
    // b's next save got as far as the unlink
    const b = path.join(dir, 'ns', 'b.json');
    fs.writeFileSync(`${b}.tmp`, JSON.stringify({ ...record('b'), bundle: '/b/new' }));
    fs.unlinkSync(b);
    // a stale .tmp next to a complete record (a save interrupted while writing) is not read
    fs.writeFileSync(path.join(dir, 'ns', 'a.json.tmp'), '{"id":');
    const loaded = new StateStore(dir).load(() => assert.fail('unreadable'));
    assert.deepEqual(loaded.map((r) => `${r.id} ${r.bundle}`).sort(), ['a /b/a', 'b /b/new']);
    assert.equal(fs.existsSync(b), true);
    assert.equal(fs.existsSync(`${b}.tmp`), false);
    // remove takes a left-over .tmp too, so that it cannot bring the container back
    store.remove('ns', 'a');
    assert.deepEqual(fs.readdirSync(path.join(dir, 'ns')), ['b.json']);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

