// google.protobuf.Timestamp helpers. A process that has not exited reports Go's zero time
// (0001-01-01T00:00:00Z), exactly as runc-v2 does: containerd 1.7+ would read an absent timestamp as 1970.
export interface Timestamp { seconds: number; nanos: number }

export const GO_ZERO_TIME: Readonly<Timestamp> = { seconds: -62135596800, nanos: 0 };

export function toTimestamp(d: Date | null | undefined): Timestamp {
  if (!d) return { ...GO_ZERO_TIME };
  const ms = d.getTime();
  const seconds = Math.floor(ms / 1000);
  return { seconds, nanos: (ms - seconds * 1000) * 1e6 };
}
