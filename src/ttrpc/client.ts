// ttrpc client for unary calls over a unix stream socket (shim-v2.md §3). Used to publish events
// to containerd ($TTRPC_ADDRESS) and by tests.
//
// * stream ids 1, 3, 5, … per connection (ttrpc ≥1.2 servers require odd, increasing ids);
// * a non-OK status rejects with StatusError(code, message);
// * connection loss, close(), or a call on a closed client rejects with Unavailable "ttrpc: closed";
// * timeoutMs sends timeout_nano and rejects locally with DeadlineExceeded when it expires; there is
//   no cancel frame, so a late answer is dropped.
import { createConnection, type Socket } from 'node:net';
import { ttrpc } from '../gen/proto.js';
import { Code, StatusError, type StatusDetail } from './codes.js';
import { FrameReader, MAX_MESSAGE_LENGTH, MessageType, encodeFrame, type ReadResult } from './frame.js';

export interface ConnectOptions {
  /** Give up connecting after this many ms (DeadlineExceeded). */
  timeoutMs?: number;
}

export interface CallOptions {
  /** Deadline for this call in ms; sent to the server as timeout_nano. */
  timeoutMs?: number;
  /** Request metadata; an array value sends the key once per element. */
  metadata?: Record<string, string | string[]>;
}

interface Pending {
  resolve: (payload: Uint8Array) => void;
  reject: (err: StatusError) => void;
  timer: NodeJS.Timeout | undefined;
}

const EMPTY = new Uint8Array(0);
const MAX_STREAM_ID = 0xffffffff;
const CLOSED_MESSAGE = 'ttrpc: closed';

export class TtrpcClient {
  private readonly socket: Socket;
  private readonly reader = new FrameReader();
  private readonly pending = new Map<number, Pending>();
  private readonly closeCallbacks: Array<() => void> = [];
  private nextStreamId = 1;
  private isClosed = false;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('error', () => socket.destroy());
    socket.on('end', () => socket.destroy());
    socket.on('close', () => this.markClosed());
    socket.on('data', (chunk: Buffer | string) => {
      this.onData(typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : chunk);
    });
    if (socket.destroyed) this.markClosed();
  }

  /** Connects to the unix socket at `path`. Rejects with Unavailable (cause: the socket error). */
  static connect(path: string, opts?: ConnectOptions): Promise<TtrpcClient> {
    return new Promise((resolve, reject) => {
      const socket = createConnection({ path });
      let timer: NodeJS.Timeout | undefined;
      const onError = (err: Error): void => {
        if (timer !== undefined) clearTimeout(timer);
        socket.destroy();
        reject(new StatusError(Code.Unavailable, `ttrpc: dial ${path}: ${err.message}`, { cause: err }));
      };
      socket.once('error', onError);
      socket.once('connect', () => {
        if (timer !== undefined) clearTimeout(timer);
        socket.off('error', onError);
        resolve(new TtrpcClient(socket));
      });
      const timeoutMs = opts?.timeoutMs;
      if (timeoutMs !== undefined && timeoutMs > 0) {
        timer = setTimeout(() => {
          socket.off('error', onError);
          socket.on('error', () => {});
          socket.destroy();
          reject(new StatusError(Code.DeadlineExceeded, `ttrpc: dial ${path}: timed out after ${timeoutMs} ms`));
        }, timeoutMs);
      }
    });
  }

  /** Wraps a socket that is already connected to a ttrpc server. */
  static fromSocket(socket: Socket): TtrpcClient {
    return new TtrpcClient(socket);
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /** Called once when the connection is gone (immediately, asynchronously, if it already is). */
  onClose(cb: () => void): void {
    if (this.isClosed) queueMicrotask(cb);
    else this.closeCallbacks.push(cb);
  }

  close(): void {
    this.socket.destroy();
    this.markClosed();
  }

  /** One unary call; resolves with the encoded response message. */
  call(service: string, method: string, payload: Uint8Array, opts?: CallOptions): Promise<Uint8Array> {
    if (this.isClosed) return Promise.reject(new StatusError(Code.Unavailable, CLOSED_MESSAGE));
    const streamId = this.nextStreamId;
    if (streamId > MAX_STREAM_ID) {
      return Promise.reject(new StatusError(Code.ResourceExhausted, 'ttrpc: stream ids exhausted on this connection'));
    }
    this.nextStreamId += 2;

    const metadata: Array<{ key: string; value: string }> = [];
    if (opts?.metadata !== undefined) {
      for (const [key, value] of Object.entries(opts.metadata)) {
        if (Array.isArray(value)) for (const v of value) metadata.push({ key, value: v });
        else metadata.push({ key, value });
      }
    }
    const timeoutMs = opts?.timeoutMs;
    const hasTimeout = timeoutMs !== undefined && timeoutMs > 0;
    const body = ttrpc.Request.encode({
      service, method, payload, metadata,
      timeoutNano: hasTimeout ? Math.round(timeoutMs * 1e6) : 0,
    }).finish();
    if (body.length > MAX_MESSAGE_LENGTH) {
      return Promise.reject(new StatusError(Code.ResourceExhausted,
        `message length ${body.length} exceed maximum message size of ${MAX_MESSAGE_LENGTH}`));
    }

    return new Promise<Uint8Array>((resolve, reject) => {
      const entry: Pending = { resolve, reject, timer: undefined };
      if (hasTimeout) {
        entry.timer = setTimeout(() => {
          if (this.pending.get(streamId) !== entry) return;
          this.pending.delete(streamId);
          reject(new StatusError(Code.DeadlineExceeded, 'context deadline exceeded'));
        }, timeoutMs);
      }
      this.pending.set(streamId, entry);
      try {
        this.socket.write(encodeFrame(streamId, MessageType.Request, 0, body));
      } catch {
        // A socket destroyed under us; 'close' (or markClosed) fails the call.
        this.close();
      }
    });
  }

  private onData(chunk: Buffer): void {
    let results: ReadResult[];
    try {
      results = this.reader.push(chunk);
    } catch {
      this.close();
      return;
    }
    for (const r of results) {
      if (r.type !== MessageType.Response) continue; // data frames and unknown types: ignored
      const entry = this.pending.get(r.streamId);
      if (entry === undefined) continue; // late answer to a timed-out call, or a bogus id
      this.pending.delete(r.streamId);
      if (entry.timer !== undefined) clearTimeout(entry.timer);
      if (r.kind === 'oversized') {
        entry.reject(new StatusError(Code.ResourceExhausted,
          `message length ${r.length} exceed maximum message size of ${MAX_MESSAGE_LENGTH}`));
        continue;
      }
      let res: ttrpc.Response;
      try {
        res = ttrpc.Response.decode(r.payload);
      } catch (err) {
        entry.reject(new StatusError(Code.Internal, `ttrpc: failed to decode response: ${(err as Error).message}`));
        continue;
      }
      const status = res.status;
      const code = status?.code ?? 0;
      if (status != null && code !== Code.OK) {
        const details: StatusDetail[] = [];
        for (const d of status.details ?? []) details.push({ typeUrl: d.typeUrl ?? '', value: d.value ?? EMPTY });
        entry.reject(new StatusError(code as Code, status.message ?? '', { details }));
      } else {
        entry.resolve(res.payload ?? EMPTY);
      }
    }
  }

  private markClosed(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const entry of pending) {
      if (entry.timer !== undefined) clearTimeout(entry.timer);
      entry.reject(new StatusError(Code.Unavailable, CLOSED_MESSAGE));
    }
    const callbacks = this.closeCallbacks.splice(0);
    for (const cb of callbacks) {
      try {
        cb();
      } catch {
        // A failing callback must not stop the others.
      }
    }
  }
}
