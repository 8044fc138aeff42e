// Small helpers for the generated protobuf code: 64-bit integers and google.protobuf.Timestamp.
//
// The generated code decodes int64/uint64 fields to `Long` (exact) and encodes from a number or a
// Long (see scripts/gen-proto.mjs). These helpers convert without losing precision.
import $protobuf from 'protobufjs/minimal.js';
import type Long from 'long';

/** The Long class protobufjs itself uses (the generated module refuses to load without it). */
export const LongImpl = $protobuf.util.Long as unknown as typeof Long;

/** What the generated code accepts and returns for 64-bit fields. */
export type Int64 = number | Long | { low: number; high: number; unsigned?: boolean };

const TWO_32 = 4294967296;

/** Number value of a 64-bit field; exact up to 2^53, rounded beyond. null/undefined -> 0. */
export function int64ToNumber(v: Int64 | null | undefined): number {
  if (v === null || v === undefined) return 0;
  if (typeof v === 'number') return v;
  return v.unsigned ? (v.high >>> 0) * TWO_32 + (v.low >>> 0) : (v.high | 0) * TWO_32 + (v.low >>> 0);
}

/** Exact bigint value of a 64-bit field; `unsigned` overrides the Long's own flag. */
export function int64ToBigInt(v: Int64 | null | undefined, unsigned?: boolean): bigint {
  if (v === null || v === undefined) return 0n;
  if (typeof v === 'number') return BigInt(Math.trunc(v));
  const bits = (BigInt(v.high >>> 0) << 32n) | BigInt(v.low >>> 0);
  return (unsigned ?? v.unsigned ?? false) ? bits : BigInt.asIntN(64, bits);
}

/** A Long for encoding a 64-bit field from a bigint (wrapped to 64 bits), number or decimal string. */
export function toLong(v: bigint | number | string, unsigned = false): Long {
  if (typeof v === 'bigint') {
    const bits = BigInt.asUintN(64, v);
    return LongImpl.fromBits(Number(bits & 0xffffffffn) | 0, Number(bits >> 32n) | 0, unsigned);
  }
  if (typeof v === 'string') return LongImpl.fromString(v, unsigned);
  return LongImpl.fromNumber(v, unsigned);
}

export interface TimestampLike {
  seconds?: Int64 | null;
  nanos?: number | null;
}

/** Go's zero time.Time, 0001-01-01T00:00:00Z, as containerd 1.6 sends it for "never". */
export const GO_ZERO_TIME_SECONDS = -62135596800;

export function timestampFromDate(d: Date): { seconds: number; nanos: number } {
  return timestampFromMs(d.getTime());
}

/** From epoch milliseconds (fractions of a millisecond are kept down to the nanosecond). */
export function timestampFromMs(ms: number): { seconds: number; nanos: number } {
  const seconds = Math.floor(ms / 1000);
  const nanos = Math.round((ms - seconds * 1000) * 1e6);
  return nanos >= 1e9 ? { seconds: seconds + 1, nanos: nanos - 1e9 } : { seconds, nanos };
}

export function timestampToMs(ts: TimestampLike | null | undefined): number {
  if (ts === null || ts === undefined) return 0;
  return int64ToNumber(ts.seconds) * 1000 + Math.floor((ts.nanos ?? 0) / 1e6);
}

export function timestampToDate(ts: TimestampLike | null | undefined): Date {
  return new Date(timestampToMs(ts));
}

/** True when a timestamp is absent, the Unix epoch with no nanos, or Go's zero time. */
export function isZeroTimestamp(ts: TimestampLike | null | undefined): boolean {
  if (ts === null || ts === undefined) return true;
  const s = int64ToNumber(ts.seconds);
  return (s === 0 || s === GO_ZERO_TIME_SECONDS) && (ts.nanos ?? 0) === 0;
}
