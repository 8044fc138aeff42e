import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeControlFrame, ControlFrameReader, MAX_CONTROL_FRAME } from '../../src/shim/control-frame.js';

test('a frame is a big-endian length and NUL-terminated fields', () => {
  const f = encodeControlFrame(['ok', 7, '']);
  assert.deepEqual([...f], [0, 0, 0, 6, 0x6f, 0x6b, 0, 0x37, 0, 0]);
});

test('frames split at every byte and packed together decode alike', () => {
  const frames = [['spawn', 1, 'a b', 'é'], ['reaped', 42, 137, 1700000000, 5], ['shutdown', 9]];
  const bytes = Buffer.concat(frames.map((f) => encodeControlFrame(f)));
  const want = frames.map((f) => f.map(String));
  const byByte = new ControlFrameReader();
  const got: string[][] = [];
  for (const b of bytes) got.push(...byByte.push(Buffer.from([b])));
  assert.deepEqual(got, want);
  assert.deepEqual(new ControlFrameReader().push(bytes), want);
});

test('rest() hands over bytes that follow the last complete frame', () => {
  const r = new ControlFrameReader();
  const hello = encodeControlFrame(['proxy', 'abc']);
  assert.deepEqual(r.push(Buffer.concat([hello, Buffer.from([0, 0, 0])])), [['proxy', 'abc']]);
  assert.deepEqual([...r.rest()], [0, 0, 0]);
});

test('oversized or unterminated frames are refused', () => {
  const big = Buffer.alloc(4);
  big.writeUInt32BE(MAX_CONTROL_FRAME + 1);
  assert.throws(() => new ControlFrameReader().push(big), /too large/);
  assert.throws(() => new ControlFrameReader().push(Buffer.from([0, 0, 0, 2, 0x61, 0x62])), /NUL/);
});

test('push(chunk, 1) stops after the hello and leaves raw bytes that follow untouched', () => {
  const r = new ControlFrameReader();
  const ttrpcBytes = Buffer.from([0, 0, 0, 5, 0, 0, 0, 1, 1, 0, 1, 2, 3, 4, 5]);
  const frames = r.push(Buffer.concat([encodeControlFrame(['proxy', 'abc']), ttrpcBytes]), 1);
  assert.deepEqual(frames, [['proxy', 'abc']]);
  assert.deepEqual(r.rest(), ttrpcBytes);
});
