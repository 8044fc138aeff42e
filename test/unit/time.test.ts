// Exit times to the nanosecond: what the monitor reports reaches TaskExit, Wait, State and Delete, and
// survives the state file a restarted daemon reads.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GO_ZERO_TIME, PreciseDate, parseTime, toTimestamp } from '../../src/shim/time.js';

test('a PreciseDate keeps the nanoseconds into the Timestamp', () => {
  const d = new PreciseDate(1_764_633_600, 123_456_789);
  assert.deepEqual(toTimestamp(d), { seconds: 1_764_633_600, nanos: 123_456_789 });
  assert.equal(d.getTime(), 1_764_633_600_123);
});

test('its ISO form has nine fraction digits and reads back exactly', () => {
  const d = new PreciseDate(1_764_633_600, 5);
  assert.equal(d.toISOString(), '2025-12-02T00:00:00.000000005Z');
  assert.deepEqual(toTimestamp(parseTime(d.toISOString())), { seconds: 1_764_633_600, nanos: 5 });
});

test("a plain Date's ISO form (milliseconds, as older state files hold) reads back as before", () => {
  const d = new Date('2025-12-02T00:00:01.250Z');
  assert.deepEqual(toTimestamp(parseTime(d.toISOString())), { seconds: 1_764_633_601, nanos: 250_000_000 });
  assert.deepEqual(toTimestamp(d), { seconds: 1_764_633_601, nanos: 250_000_000 });
});

test('no time is Go\'s zero time', () => {
  assert.deepEqual(toTimestamp(null), GO_ZERO_TIME);
});
