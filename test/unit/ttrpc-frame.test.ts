import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  FrameReader, HEADER_LENGTH, MAX_MESSAGE_LENGTH, MessageType, decodeHeader, encodeFrame, encodeHeader,
  type ReadResult,
} from '../../src/ttrpc/frame.js';

function frames(results: ReadResult[]): Array<{ id: number; type: number; flags: number; payload: string }> {
  return results.map((r) => {
    assert.equal(r.kind, 'frame');
    return { id: r.streamId, type: r.type, flags: r.flags, payload: r.kind === 'frame' ? r.payload.toString('hex') : '' };
  });
}

const sample = [
  { id: 1, type: MessageType.Request, flags: 0, payload: Buffer.from('hello') },
  { id: 3, type: MessageType.Response, flags: 0, payload: Buffer.alloc(0) },
  { id: 5, type: MessageType.Data, flags: 0x05, payload: Buffer.from([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]) },
  { id: 0xfffffffd, type: 0x7f, flags: 0xff, payload: Buffer.from('x') },
];
const wire = Buffer.concat(sample.map((f) => encodeFrame(f.id, f.type, f.flags, f.payload)));
const expected = sample.map((f) => ({ id: f.id, type: f.type, flags: f.flags, payload: f.payload.toString('hex') }));

test('header layout: big-endian length, stream id, type, flags', () => {
  const h = encodeHeader({ length: 0x01020304, streamId: 0x0a0b0c0d, type: 2, flags: 1 });
  assert.equal(h.toString('hex'), '010203040a0b0c0d0201');
  assert.deepEqual(decodeHeader(h), { length: 0x01020304, streamId: 0x0a0b0c0d, type: 2, flags: 1 });
  const f = encodeFrame(7, MessageType.Request, 0, Buffer.from([0xaa, 0xbb]));
  assert.equal(f.toString('hex'), '00000002' + '00000007' + '01' + '00' + 'aabb');
});

test('several frames in one chunk', () => {
  const r = new FrameReader();
  assert.deepEqual(frames(r.push(wire)), expected);
  assert.equal(r.pending, 0);
});

test('frames split byte by byte', () => {
  const r = new FrameReader();
  const out: ReadResult[] = [];
  for (let i = 0; i < wire.length; i++) out.push(...r.push(wire.subarray(i, i + 1)));
  assert.deepEqual(frames(out), expected);
  assert.equal(r.pending, 0);
});

test('frames split at every possible point into two chunks, and into three', () => {
  for (let a = 0; a <= wire.length; a++) {
    const r = new FrameReader();
    const out = [...r.push(wire.subarray(0, a)), ...r.push(wire.subarray(a))];
    assert.deepEqual(frames(out), expected, `split at ${a}`);
  }
  for (let a = 0; a < wire.length; a += 3) {
    for (let b = a; b <= wire.length; b += 5) {
      const r = new FrameReader();
      const out = [...r.push(wire.subarray(0, a)), ...r.push(wire.subarray(a, b)), ...r.push(wire.subarray(b))];
      assert.deepEqual(frames(out), expected, `split at ${a}, ${b}`);
    }
  }
});

test('a partial header and body are held as pending', () => {
  const r = new FrameReader();
  assert.deepEqual(r.push(wire.subarray(0, 4)), []);
  assert.equal(r.pending, 4);
  assert.deepEqual(r.push(wire.subarray(4, HEADER_LENGTH + 2)), []);
  assert.equal(r.pending, HEADER_LENGTH + 2);
});

test('payloads assembled from several chunks do not alias later input', () => {
  const r = new FrameReader();
  const f = encodeFrame(9, MessageType.Request, 0, Buffer.from('abcdef'));
  const first = Buffer.from(f.subarray(0, 12));
  r.push(first);
  const [got] = r.push(Buffer.from(f.subarray(12)));
  first.fill(0);
  assert.ok(got !== undefined && got.kind === 'frame');
  assert.equal(got.payload.toString(), 'abcdef');
});

test('exactly 4 MiB is accepted', () => {
  const r = new FrameReader();
  const body = Buffer.alloc(MAX_MESSAGE_LENGTH, 7);
  const out = r.push(Buffer.concat([encodeHeader({ length: MAX_MESSAGE_LENGTH, streamId: 1, type: 1, flags: 0 }), body]));
  assert.equal(out.length, 1);
  assert.ok(out[0]?.kind === 'frame' && out[0].payload.length === MAX_MESSAGE_LENGTH);
});

test('an oversized frame is discarded and reported, and the stream stays in sync', () => {
  const r = new FrameReader();
  const length = MAX_MESSAGE_LENGTH + 1;
  const out: ReadResult[] = [];
  out.push(...r.push(encodeHeader({ length, streamId: 11, type: MessageType.Request, flags: 0 })));
  assert.equal(out.length, 0);
  // The body arrives in pieces; nothing is buffered for it.
  const piece = Buffer.alloc(1 << 16, 0xee);
  let sent = 0;
  while (length - sent > piece.length) {
    out.push(...r.push(piece));
    sent += piece.length;
    assert.ok(r.pending <= HEADER_LENGTH);
  }
  const next = encodeFrame(13, MessageType.Request, 0, Buffer.from('after'));
  out.push(...r.push(Buffer.concat([piece.subarray(0, length - sent), next])));
  assert.equal(out.length, 2);
  assert.deepEqual(out[0], { kind: 'oversized', streamId: 11, type: MessageType.Request, flags: 0, length });
  assert.ok(out[1]?.kind === 'frame');
  assert.equal(out[1].streamId, 13);
  assert.equal(out[1].payload.toString(), 'after');
});

test('a custom limit applies', () => {
  const r = new FrameReader({ maxLength: 4 });
  const out = r.push(Buffer.concat([encodeFrame(1, 1, 0, Buffer.from('12345')), encodeFrame(3, 1, 0, Buffer.from('1234'))]));
  assert.equal(out[0]?.kind, 'oversized');
  assert.equal(out[1]?.kind, 'frame');
});

test('encodeFrame refuses payloads over 4 MiB', () => {
  assert.throws(() => encodeFrame(1, 1, 0, new Uint8Array(MAX_MESSAGE_LENGTH + 1)), RangeError);
});

test('random input never throws', () => {
  let seed = 12345;
  const rand = (): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed;
  };
  const r = new FrameReader({ maxLength: 1 << 12 });
  for (let i = 0; i < 2000; i++) {
    const chunk = Buffer.alloc(rand() % 64);
    for (let j = 0; j < chunk.length; j++) chunk[j] = rand() & 0xff;
    // Small lengths so frames complete now and then.
    if (chunk.length > 0) chunk[0] = 0;
    r.push(chunk);
  }
});
