// google.protobuf.Timestamp helpers. A process that has not exited reports Go's zero time
// (0001-01-01T00:00:00Z), exactly as runc-v2 does: containerd 1.7+ would read an absent timestamp as 1970.
export interface Timestamp { seconds: number; nanos: number }

export const GO_ZERO_TIME: Readonly<Timestamp> = { seconds: -62135596800, nanos: 0 };

/**
 * A Date that keeps the nanoseconds the kernel gave (the monitor's reap time), which a Date's
 * milliseconds would cut: runc-v2 reports exit times to the nanosecond, and so does CRI's finishedAt.
 */
export class PreciseDate extends Date {
  /** 0 … 999 999 999, within the second of getTime() */
  readonly nanos: number;

  constructor(seconds: number, nanos: number) {
    super(seconds * 1000 + Math.floor(nanos / 1e6));
    this.nanos = nanos;
  }

  /** ISO 8601 with all nine digits of the fraction; parseTime() reads it back. */
  override toISOString(): string {
    return `${super.toISOString().slice(0, 19)}.${String(this.nanos).padStart(9, '0')}Z`;
  }
}

/** Reads what toISOString() of a Date or a PreciseDate wrote. */
export function parseTime(iso: string): Date {
  const m = /^(.*T\d\d:\d\d:\d\d)\.(\d{4,9})Z$/.exec(iso);
  if (!m) return new Date(iso);
  const seconds = Math.floor(Date.parse(`${m[1]}Z`) / 1000);
  return new PreciseDate(seconds, Number(m[2]!.padEnd(9, '0')));
}

export function toTimestamp(d: Date | null | undefined): Timestamp {
  if (!d) return { ...GO_ZERO_TIME };
  const ms = d.getTime();
  const seconds = Math.floor(ms / 1000);
  return { seconds, nanos: d instanceof PreciseDate ? d.nanos : (ms - seconds * 1000) * 1e6 };
}
