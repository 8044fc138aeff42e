// Codec for the monitor <-> daemon control channel (docs/architecture.md): a 4-byte big-endian length,
// then NUL-terminated fields.

export const MAX_CONTROL_FRAME = 1 << 20;

export function encodeControlFrame(fields: readonly (string | number)[]): Buffer {
  const parts = fields.map((f) => Buffer.from(String(f) + '\0', 'utf8'));
  const body = Buffer.concat(parts);
  if (body.length > MAX_CONTROL_FRAME) throw new Error(`control frame of ${body.length} bytes is too large`);
  const head = Buffer.alloc(4);
  head.writeUInt32BE(body.length, 0);
  return Buffer.concat([head, body]);
}

function splitFields(body: Buffer): string[] {
  const fields: string[] = [];
  let start = 0;
  for (let i = 0; i < body.length; i++) {
    if (body[i] === 0) {
      fields.push(body.toString('utf8', start, i));
      start = i + 1;
    }
  }
  if (start !== body.length) throw new Error('control frame does not end with a NUL');
  return fields;
}

/** Accumulates chunks and hands out complete frames as field lists. */
export class ControlFrameReader {
  private buf: Buffer = Buffer.alloc(0);

  /** Adds a chunk and returns the complete frames, at most `max` of them (the rest stays buffered). */
  push(chunk: Buffer, max = Infinity): string[][] {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const frames: string[][] = [];
    while (frames.length < max && this.buf.length >= 4) {
      const n = this.buf.readUInt32BE(0);
      if (n > MAX_CONTROL_FRAME) throw new Error(`control frame of ${n} bytes is too large`);
      if (this.buf.length < 4 + n) break;
      frames.push(splitFields(this.buf.subarray(4, 4 + n)));
      this.buf = this.buf.subarray(4 + n);
    }
    return frames;
  }

  /** Bytes received after the frames handed out so far (used when a connection switches to raw ttrpc). */
  rest(): Buffer {
    const r = this.buf;
    this.buf = Buffer.alloc(0);
    return r;
  }
}
