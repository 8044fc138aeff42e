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
