import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL, fileURLToPath } from 'node:url';
import { containerd, google, runtimeoptions, ttrpc } from '../../src/gen/proto.js';
import {
  GO_ZERO_TIME_SECONDS, LongImpl, int64ToBigInt, int64ToNumber, isZeroTimestamp, timestampFromMs, timestampToMs, toLong,
} from '../../src/ttrpc/proto-helpers.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

// Independent reference encoder (no protobufjs) for cross-checking bytes.
function varint(v: bigint): number[] {
  let u = BigInt.asUintN(64, v);
  const out: number[] = [];
  do {
    let byte = Number(u & 0x7fn);
    u >>= 7n;
    if (u !== 0n) byte |= 0x80;
    out.push(byte);
  } while (u !== 0n);
  return out;
}
const field = (num: number, v: bigint): number[] => [...varint(BigInt(num << 3)), ...varint(v)];
const lenField = (num: number, body: number[]): number[] => [...varint(BigInt((num << 3) | 2)), ...varint(BigInt(body.length)), ...body];

test('Timestamp of Go zero time encodes to 08 80 92 b8 c3 98 fe ff ff ff 01', () => {
  const want = '088092b8c398feffffff01';
  assert.equal(GO_ZERO_TIME_SECONDS, -62135596800);
  assert.equal(hex(google.protobuf.Timestamp.encode({ seconds: -62135596800 }).finish()), want);
  assert.equal(hex(google.protobuf.Timestamp.encode({ seconds: toLong(-62135596800n) }).finish()), want);
  assert.equal(hex(google.protobuf.Timestamp.encode({ seconds: LongImpl.fromString('-62135596800') }).finish()), want);
  assert.equal(hex(Uint8Array.from(field(1, -62135596800n))), want);

  const back = google.protobuf.Timestamp.decode(Buffer.from(want, 'hex'));
  assert.ok(LongImpl.isLong(back.seconds), 'int64 decodes to Long');
  assert.equal(int64ToBigInt(back.seconds), -62135596800n);
  assert.equal(int64ToNumber(back.seconds), -62135596800);
  assert.equal(back.nanos, 0);
  assert.ok(isZeroTimestamp(back));
});

test('DeleteResponse encode/decode', () => {
  const msg = { pid: 4242, exitStatus: 137, exitedAt: { seconds: 1700000000, nanos: 123456789 } };
  const bytes = containerd.task.v2.DeleteResponse.encode(msg).finish();
  const ts = [...field(1, 1700000000n), ...field(2, 123456789n)];
  assert.equal(hex(bytes), hex(Uint8Array.from([...field(1, 4242n), ...field(2, 137n), ...lenField(3, ts)])));

  const back = containerd.task.v2.DeleteResponse.decode(bytes);
  assert.equal(back.pid, 4242);
  assert.equal(back.exitStatus, 137);
  assert.ok(back.exitedAt);
  assert.equal(int64ToNumber(back.exitedAt.seconds), 1700000000);
  assert.equal(back.exitedAt.nanos, 123456789);
  assert.equal(timestampToMs(back.exitedAt), 1700000000123);

  // proto3: zero values are omitted; an empty message is zero bytes and decodes to defaults.
  assert.equal(containerd.task.v2.DeleteResponse.encode({ pid: 0, exitStatus: 0 }).finish().length, 0);
  const empty = containerd.task.v2.DeleteResponse.decode(new Uint8Array(0));
  assert.equal(empty.pid, 0);
  assert.equal(empty.exitStatus, 0);
  assert.equal(empty.exitedAt ?? null, null);

  // Go zero time as exited_at (what containerd 1.6 sends for "not exited").
  const zero = containerd.task.v2.DeleteResponse.encode({ pid: 1, exitedAt: { seconds: GO_ZERO_TIME_SECONDS } }).finish();
  assert.equal(hex(zero), '0801' + '1a0b' + '088092b8c398feffffff01');
});

test('64-bit values keep full precision', () => {
  const max = (1n << 63n) - 1n;
  const req = ttrpc.Request.encode({ service: 's', method: 'm', timeoutNano: toLong(max) }).finish();
  assert.equal(int64ToBigInt(ttrpc.Request.decode(req).timeoutNano), max);
  const min = -(1n << 63n);
  const req2 = ttrpc.Request.encode({ timeoutNano: toLong(min) }).finish();
  assert.equal(int64ToBigInt(ttrpc.Request.decode(req2).timeoutNano), min);
  // uint64 bit patterns via Long (cgroup counters will use this path).
  const u = toLong(0xffff_ffff_ffff_fffen, true);
  assert.equal(int64ToBigInt(u), 0xffff_ffff_ffff_fffen);
  assert.equal(int64ToBigInt(u, false), -2n);
});

test('ttrpc envelope field numbers', () => {
  const req = ttrpc.Request.encode({
    service: 'a', method: 'b', payload: new Uint8Array([1]), timeoutNano: 5,
    metadata: [{ key: 'k', value: 'v' }],
  }).finish();
  const k = [...Buffer.from('k')];
  const v = [...Buffer.from('v')];
  assert.equal(hex(req), hex(Uint8Array.from([
    ...lenField(1, [...Buffer.from('a')]), ...lenField(2, [...Buffer.from('b')]), ...lenField(3, [1]),
    ...field(4, 5n), ...lenField(5, [...lenField(1, k), ...lenField(2, v)]),
  ])));
  const res = ttrpc.Response.encode({ status: { code: 5, message: 'x', details: [{ typeUrl: 't', value: new Uint8Array([9]) }] } }).finish();
  assert.equal(hex(res), hex(Uint8Array.from(lenField(1, [
    ...field(1, 5n), ...lenField(2, [...Buffer.from('x')]), ...lenField(3, [...lenField(1, [...Buffer.from('t')]), ...lenField(2, [9])]),
  ]))));
});

test('events: a TaskExit in an Envelope with a bare type URL', () => {
  const exit = containerd.events.TaskExit.encode({
    containerId: 'c1', id: 'c1', pid: 99, exitStatus: 1, exitedAt: timestampFromMs(1700000000500),
  }).finish();
  const fwd = containerd.services.events.ttrpc.v1.ForwardRequest.encode({
    envelope: { timestamp: timestampFromMs(Date.now()), namespace: 'default', topic: '/tasks/exit', event: { typeUrl: 'containerd.events.TaskExit', value: exit } },
  }).finish();
  const back = containerd.services.events.ttrpc.v1.ForwardRequest.decode(fwd);
  assert.equal(back.envelope?.topic, '/tasks/exit');
  assert.equal(back.envelope?.event?.typeUrl, 'containerd.events.TaskExit');
  const ev = containerd.events.TaskExit.decode(back.envelope?.event?.value ?? new Uint8Array());
  assert.deepEqual([ev.containerId, ev.id, ev.pid, ev.exitStatus, ev.exitedAt?.nanos], ['c1', 'c1', 99, 1, 500_000_000]);
});

test('task types, options and enums', () => {
  assert.equal(containerd.v1.types.Status.STOPPED, 3);
  assert.equal(containerd.v1.types.Status.PAUSING, 5);
  const state = containerd.task.v2.StateResponse.decode(containerd.task.v2.StateResponse.encode({
    id: 'c', status: containerd.v1.types.Status.RUNNING, execId: 'e',
  }).finish());
  assert.equal(state.status, containerd.v1.types.Status.RUNNING);
  assert.equal(state.execId, 'e');

  const create = containerd.task.v2.CreateTaskRequest.encode({
    id: 'c', bundle: '/b', rootfs: [{ type: 'overlay', source: 'overlay', options: ['lowerdir=/l'] }],
    options: { typeUrl: 'runtimeoptions.v1.Options', value: runtimeoptions.v1.Options.encode({ configPath: '/etc/x.toml' }).finish() },
  }).finish();
  const c = containerd.task.v2.CreateTaskRequest.decode(create);
  assert.equal(c.rootfs[0]?.type, 'overlay');
  assert.equal(runtimeoptions.v1.Options.decode(c.options?.value ?? new Uint8Array()).configPath, '/etc/x.toml');
  // runtimeoptions: 1 type_url, 2 config_path
  assert.equal(hex(runtimeoptions.v1.Options.encode({ typeUrl: 'a', configPath: 'b' }).finish()), '0a0161' + '120162');
  // legacy runctypes io_uid is field 10, runc.v1 io_uid is field 4
  assert.equal(hex(containerd.linux.runc.CreateOptions.encode({ ioUid: 1 }).finish()), '5001');
  assert.equal(hex(containerd.runc.v1.Options.encode({ ioUid: 1 }).finish()), '2001');

  const upd = containerd.task.v2.UpdateTaskRequest.decode(containerd.task.v2.UpdateTaskRequest.encode({
    id: 'c', annotations: { a: '1', b: '2' },
  }).finish());
  assert.deepEqual({ ...upd.annotations }, { a: '1', b: '2' });
  assert.equal(google.protobuf.Empty.encode({}).finish().length, 0);
});

test('timestamp helpers', () => {
  assert.deepEqual(timestampFromMs(1500), { seconds: 1, nanos: 500_000_000 });
  assert.deepEqual(timestampFromMs(-1500), { seconds: -2, nanos: 500_000_000 });
  assert.equal(timestampToMs(timestampFromMs(1700000000123)), 1700000000123);
  assert.ok(isZeroTimestamp(undefined));
  assert.ok(!isZeroTimestamp({ seconds: 1 }));
});

test('the generated module bundles with esbuild and still decodes int64 to Long', async () => {
  const esbuild = await import('esbuild');
  const genJs = fileURLToPath(new URL('../../src/gen/proto.js', import.meta.url));
  const out = mkdtempSync(join(tmpdir(), 'tsrt-proto-bundle-'));
  try {
    const outfile = join(out, 'proto.mjs');
    await esbuild.build({ entryPoints: [genJs], bundle: true, platform: 'node', format: 'esm', outfile, logLevel: 'error' });
    const mod = (await import(pathToFileURL(outfile).href)) as typeof import('../../src/gen/proto.js');
    const ts = mod.google.protobuf.Timestamp.decode(Buffer.from('088092b8c398feffffff01', 'hex'));
    assert.equal(typeof ts.seconds, 'object');
    assert.equal(int64ToBigInt(ts.seconds), -62135596800n);
    assert.equal(hex(mod.google.protobuf.Timestamp.encode({ seconds: -62135596800 }).finish()), '088092b8c398feffffff01');
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
