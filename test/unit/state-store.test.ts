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


const openFds = (): number => fs.readdirSync('/proc/self/fd').length;

test('a record that fits in a page is written over in place, padded to the old length; a larger one and an unlinked file take the slow way', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrt-store-'));
  const dir = path.join(root, 'state');
  const fdsBefore = openFds();
  try {
    const store = new StateStore(dir);
    const file = path.join(dir, 'ns', 'a.json');
    store.save({ ...record('a'), bundle: `/b/${'x'.repeat(200)}` });
    const ino = fs.statSync(file).ino;
    const long = fs.statSync(file).size;
    // shorter: same file, same length, the tail is spaces, and it loads
    store.save(record('a'));
    assert.equal(fs.statSync(file).ino, ino);
    assert.equal(fs.statSync(file).size, long);
    assert.match(fs.readFileSync(file, 'utf8'), /} +$/);
    assert.deepEqual(store.load(() => assert.fail('unreadable')).map((r) => r.bundle), ['/b/a']);
    // no temporary file is made on the way
    assert.deepEqual(fs.readdirSync(path.join(dir, 'ns')), ['a.json']);
    // larger than a page: a new file, renamed to the record's name
    const big = { ...record('a'), bundle: `/b/${'y'.repeat(5000)}` };
    store.save(big);
    assert.notEqual(fs.statSync(file).ino, ino);
    assert.equal(store.load(() => assert.fail('unreadable'))[0]!.bundle, big.bundle);
    // back under a page: the slow way once, in place again after that
    store.save(record('a'));
    const ino2 = fs.statSync(file).ino;
    store.save({ ...record('a'), bundle: '/b/in-place' });
    assert.equal(fs.statSync(file).ino, ino2);
    // the file was unlinked behind the store's back: the next save writes it again, not into the old inode
    fs.unlinkSync(file);
    store.save({ ...record('a'), bundle: '/b/after-unlink' });
    assert.deepEqual(store.load(() => assert.fail('unreadable')).map((r) => r.bundle), ['/b/after-unlink']);
    // remove and clear close what they kept open
    store.save(record('b'));
    store.remove('ns', 'a');
    store.clear();
    assert.equal(openFds(), fdsBefore);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});
