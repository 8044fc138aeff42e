// ttrpc framing (shim-v2.md §3.2): a 10-byte big-endian header followed by `length` bytes.
//
//   offset 0  uint32  length of the data after the header (at most 4 MiB)
//   offset 4  uint32  stream id (client-initiated streams are odd)
//   offset 8  uint8   message type (1 request, 2 response, 3 data)
//   offset 9  uint8   flags

export const HEADER_LENGTH = 10;
/** Largest frame body either side accepts or sends: 4 MiB. */
export const MAX_MESSAGE_LENGTH = 4 << 20;

export enum MessageType {
  Request = 1,
  Response = 2,
  Data = 3,
}

/** Flag bits (their meaning depends on the message type). */
export const Flags = {
  /** request/data: the sender will send no more data on this stream. */
  RemoteClosed: 0x01,
  /** request: a streaming request; the client will send data frames. */
  RemoteOpen: 0x02,
  /** data: the frame carries no payload. */
  NoData: 0x04,
} as const;

export interface FrameHeader {
  length: number;
  streamId: number;
  type: number;
  flags: number;
}

/** A complete frame. `payload` may share memory with the chunk it was read from. */
export interface Frame {
  kind: 'frame';
  streamId: number;
  type: number;
  flags: number;
  payload: Buffer;
}

/** A frame whose declared length exceeded the limit; its body was read and thrown away. */
export interface OversizedFrame {
  kind: 'oversized';
  streamId: number;
  type: number;
  flags: number;
  length: number;
}

export type ReadResult = Frame | OversizedFrame;

export function encodeHeader(header: FrameHeader, target: Buffer = Buffer.allocUnsafe(HEADER_LENGTH), offset = 0): Buffer {
  target.writeUInt32BE(header.length >>> 0, offset);
  target.writeUInt32BE(header.streamId >>> 0, offset + 4);
  target.writeUInt8(header.type & 0xff, offset + 8);
  target.writeUInt8(header.flags & 0xff, offset + 9);
  return target;
}

export function decodeHeader(source: Uint8Array, offset = 0): FrameHeader {
  const view = new DataView(source.buffer, source.byteOffset + offset, HEADER_LENGTH);
  return {
    length: view.getUint32(0),
    streamId: view.getUint32(4),
    type: view.getUint8(8),
    flags: view.getUint8(9),
  };
}

/** Header and payload in one buffer. Throws RangeError if the payload exceeds the limit. */
export function encodeFrame(streamId: number, type: number, flags: number, payload: Uint8Array): Buffer {
  if (payload.length > MAX_MESSAGE_LENGTH) {
    throw new RangeError(`message length ${payload.length} exceeds maximum message size of ${MAX_MESSAGE_LENGTH}`);
  }
  const out = Buffer.allocUnsafe(HEADER_LENGTH + payload.length);
  encodeHeader({ length: payload.length, streamId, type, flags }, out, 0);
  out.set(payload, HEADER_LENGTH);
  return out;
}

function asBuffer(chunk: Uint8Array): Buffer {
  return Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
}

/**
 * Incremental frame parser: feed it chunks of any size (a header split over several reads,
 * several frames in one read) and it returns every frame completed by each chunk.
 *
 * A frame whose declared length exceeds `maxLength` is not buffered: its body is skipped as it
 * arrives and, once fully skipped, reported as an `oversized` result so the caller can answer
 * that stream (ttrpc answers ResourceExhausted) while the byte stream stays in sync.
 *
 * Payloads of frames contained entirely in one chunk are views of that chunk (no copy); callers
 * must not modify a chunk after pushing it.
 */
export class FrameReader {
  readonly maxLength: number;
  private readonly header = Buffer.allocUnsafe(HEADER_LENGTH);
  private headerFill = 0;
  private current: FrameHeader | null = null;
  private body: Buffer | null = null;
  private bodyFill = 0;
  private discardLeft = 0;

  constructor(options?: { maxLength?: number }) {
    this.maxLength = options?.maxLength ?? MAX_MESSAGE_LENGTH;
  }

  /** Bytes held for the frame currently being assembled (header bytes included). */
  get pending(): number {
    if (this.current === null) return this.headerFill;
    if (this.body !== null) return HEADER_LENGTH + this.bodyFill;
    return HEADER_LENGTH;
  }

  push(input: Uint8Array): ReadResult[] {
    const chunk = asBuffer(input);
    const out: ReadResult[] = [];
    const end = chunk.length;
    let pos = 0;
    for (;;) {
      if (this.current === null) {
        let header: FrameHeader;
        if (this.headerFill === 0 && end - pos >= HEADER_LENGTH) {
          header = decodeHeader(chunk, pos);
          pos += HEADER_LENGTH;
        } else {
          const take = Math.min(HEADER_LENGTH - this.headerFill, end - pos);
          if (take === 0) break;
          chunk.copy(this.header, this.headerFill, pos, pos + take);
          this.headerFill += take;
          pos += take;
          if (this.headerFill < HEADER_LENGTH) break;
          header = decodeHeader(this.header, 0);
          this.headerFill = 0;
        }
        if (header.length > this.maxLength) {
          this.current = header;
          this.discardLeft = header.length;
        } else if (end - pos >= header.length) {
          // Whole body already here: hand out a view of the chunk.
          out.push(frameOf(header, chunk.subarray(pos, pos + header.length)));
          pos += header.length;
          continue;
        } else {
          this.current = header;
          this.body = Buffer.allocUnsafe(header.length);
          this.bodyFill = 0;
        }
      }

      const header = this.current;
      if (this.body === null) {
        // Skipping an oversized body.
        const take = Math.min(this.discardLeft, end - pos);
        pos += take;
        this.discardLeft -= take;
        if (this.discardLeft > 0) break;
        this.current = null;
        out.push({ kind: 'oversized', streamId: header.streamId, type: header.type, flags: header.flags, length: header.length });
        continue;
      }

      const take = Math.min(header.length - this.bodyFill, end - pos);
      chunk.copy(this.body, this.bodyFill, pos, pos + take);
      this.bodyFill += take;
      pos += take;
      if (this.bodyFill < header.length) break;
      out.push(frameOf(header, this.body));
      this.current = null;
      this.body = null;
      this.bodyFill = 0;
    }
    return out;
  }
}

function frameOf(header: FrameHeader, payload: Buffer): Frame {
  return { kind: 'frame', streamId: header.streamId, type: header.type, flags: header.flags, payload };
}
