// ttrpc server: serves unary methods on already-connected stream sockets (shim-v2.md §3).
//
// Behaviour matched to the Go server:
// * every request runs concurrently; responses go out in completion order, matched by stream id;
// * unknown service / method -> Unimplemented "service X" / "method X";
// * undecodable Request envelope, even or non-increasing stream id, or a streaming request to a
//   unary method -> InvalidArgument;
// * frame longer than 4 MiB -> body discarded, ResourceExhausted on that stream;
// * thrown object with a numeric `code` (1..16) -> that status with its message; anything else
//   -> Unknown;
// * timeout_nano > 0 -> ctx.deadline and ctx.signal aborts at the deadline (the handler keeps
//   running; its answer is still sent, as in Go); ctx.signal also aborts when the connection closes;
// * data frames, response frames and unknown message types are ignored.
// An optional observer (TtrpcServerOptions.onRequest) sees each request's status code and duration, for
// the daemon's metrics.
import type { Socket } from 'node:net';
import { ttrpc } from '../gen/proto.js';
import { Code, StatusError, codeName, hasStatusCode, type StatusDetail } from './codes.js';
import { Flags, FrameReader, MAX_MESSAGE_LENGTH, MessageType, encodeFrame, type ReadResult } from './frame.js';
import { int64ToNumber } from './proto-helpers.js';

export interface RequestContext {
  service: string;
  method: string;
  /** Request metadata; repeated keys collect all their values in order. */
  metadata: Map<string, string[]>;
  /** Absolute deadline in Date.now() milliseconds, when the client sent timeout_nano > 0. */
  deadline?: number;
  /** Aborts at the deadline (reason: StatusError DeadlineExceeded) or when the connection closes (Canceled). */
  signal: AbortSignal;
}

export type Handler = (payload: Uint8Array, ctx: RequestContext) => Promise<Uint8Array>;

export type LogLevel = 'debug' | 'warn' | 'error';
export type LogFn = (level: LogLevel, msg: string, extra?: object) => void;

/**
 * Sees every request once, when its response or error status is written: the request's service and
 * method ('' when the request could not be decoded), the ttrpc status code (0 = OK) and the seconds
 * from the request's arrival to that moment.
 */
export type RequestObserver = (service: string, method: string, code: number, seconds: number) => void;

export interface TtrpcServerOptions {
  log?: LogFn;
  onRequest?: RequestObserver;
}

const EMPTY = new Uint8Array(0);
// setTimeout's limit; longer deadlines are recorded in ctx.deadline but never fire the signal.
const MAX_TIMER_MS = 0x7fffffff;

class Connection {
  readonly reader = new FrameReader();
  readonly inflight = new Map<number, AbortController>();
  lastStreamId = 0;
  closed = false;

  constructor(readonly socket: Socket, readonly id: number) {}
}

export class TtrpcServer {
  private readonly services = new Map<string, Map<string, Handler>>();
  private readonly conns = new Set<Connection>();
  private readonly log: LogFn;
  private observer: RequestObserver | undefined;
  private nextConnId = 1;

  constructor(opts?: TtrpcServerOptions) {
    this.log = opts?.log ?? (() => {});
    this.observer = opts?.onRequest;
  }

  /**
   * Sets (or, with undefined, removes) the request observer. Requests that arrived while there was none
   * are not reported: they have no start time.
   */
  observeRequests(observer: RequestObserver | undefined): void {
    this.observer = observer;
  }

  /** Adds (or replaces) the methods of `service`, e.g. "containerd.task.v2.Task". */
  register(service: string, methods: Record<string, Handler>): void {
    let table = this.services.get(service);
    if (table === undefined) {
      table = new Map();
      this.services.set(service, table);
    }
    for (const name of Object.keys(methods)) {
      const handler = methods[name];
      if (typeof handler !== 'function') throw new TypeError(`ttrpc: handler for ${service}/${name} is not a function`);
      table.set(name, handler);
    }
  }

  /**
   * Takes over an already-connected socket. `initial` holds bytes the caller already read from
   * it (they are parsed before anything the socket delivers later).
   */
  serveConnection(socket: Socket, initial?: Buffer): void {
    const conn = new Connection(socket, this.nextConnId++);
    this.conns.add(conn);
    socket.on('error', (err) => {
      this.log('debug', 'ttrpc: connection error', { conn: conn.id, error: err.message });
      socket.destroy();
    });
    socket.on('close', () => this.onClose(conn));
    // The Go server closes on EOF; so do we (in-flight handlers see their signal abort).
    socket.on('end', () => socket.destroy());
    if (socket.destroyed) {
      this.onClose(conn);
      return;
    }
    if (initial !== undefined && initial.length > 0) this.onData(conn, Buffer.from(initial));
    socket.on('data', (chunk: Buffer | string) => {
      this.onData(conn, typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : chunk);
    });
    // A caller that read a hello first has usually paused the socket; a 'data' listener alone
    // does not restart an explicitly paused stream.
    socket.resume();
  }

  /** Destroys every connection; in-flight handlers see their signal abort. */
  closeAll(): void {
    for (const conn of [...this.conns]) {
      conn.socket.destroy();
      this.onClose(conn);
    }
  }

  connections(): number {
    return this.conns.size;
  }

  private onClose(conn: Connection): void {
    if (conn.closed) return;
    conn.closed = true;
    this.conns.delete(conn);
    const reason = new StatusError(Code.Canceled, 'ttrpc: connection closed');
    for (const ac of conn.inflight.values()) ac.abort(reason);
    conn.inflight.clear();
  }

  private onData(conn: Connection, chunk: Buffer): void {
    if (conn.closed) return;
    let results: ReadResult[];
    try {
      results = conn.reader.push(chunk);
    } catch (err) {
      // FrameReader does not throw on any input; this is a last line of defence.
      this.log('error', 'ttrpc: frame parser failed', { conn: conn.id, error: String(err) });
      conn.socket.destroy();
      return;
    }
    for (const r of results) {
      if (conn.closed) return;
      if (r.kind === 'oversized') {
        this.log('warn', 'ttrpc: oversized frame discarded', { conn: conn.id, streamId: r.streamId, length: r.length });
        if (r.type === MessageType.Request) {
          this.sendStatus(conn, r.streamId, Code.ResourceExhausted,
            `message length ${r.length} exceed maximum message size of ${MAX_MESSAGE_LENGTH}`);
          this.observe(this.startClock(), '', '', Code.ResourceExhausted);
        }
        continue;
      }
      if (r.type === MessageType.Request) {
        this.onRequest(conn, r.streamId, r.flags, r.payload);
      } else {
        // Data frames (no streaming methods here), responses and unknown types: ignored.
        this.log('debug', 'ttrpc: ignoring frame', { conn: conn.id, streamId: r.streamId, type: r.type });
      }
    }
  }

  private onRequest(conn: Connection, streamId: number, flags: number, body: Buffer): void {
    const started = this.startClock();
    if (streamId % 2 === 0) {
      this.reject(conn, streamId, started, '', '', Code.InvalidArgument, 'StreamID must be odd for client initiated streams');
      return;
    }
    if (streamId <= conn.lastStreamId || conn.inflight.has(streamId)) {
      this.reject(conn, streamId, started, '', '', Code.InvalidArgument, 'StreamID cannot be re-used and must increment');
      return;
    }
    conn.lastStreamId = streamId;

    let req: ttrpc.Request;
    try {
      req = ttrpc.Request.decode(body);
    } catch (err) {
      this.reject(conn, streamId, started, '', '', Code.InvalidArgument, `failed to decode request: ${errorMessage(err)}`);
      return;
    }
    const service = req.service;
    const method = req.method;
    const methods = this.services.get(service);
    if (methods === undefined) {
      this.reject(conn, streamId, started, service, method, Code.Unimplemented, `service ${service}`);
      return;
    }
    const handler = methods.get(method);
    if (handler === undefined) {
      this.reject(conn, streamId, started, service, method, Code.Unimplemented, `method ${method}`);
      return;
    }
    if ((flags & Flags.RemoteOpen) !== 0) {
      this.reject(conn, streamId, started, service, method, Code.InvalidArgument, `method ${method} does not support streaming`);
      return;
    }

    const metadata = new Map<string, string[]>();
    for (const kv of req.metadata) {
      const key = kv.key ?? '';
      const value = kv.value ?? '';
      const list = metadata.get(key);
      if (list === undefined) metadata.set(key, [value]);
      else list.push(value);
    }

    const ac = new AbortController();
    const ctx: RequestContext = { service, method, metadata, signal: ac.signal };
    let timer: NodeJS.Timeout | undefined;
    const timeoutNs = int64ToNumber(req.timeoutNano);
    if (timeoutNs > 0) {
      const ms = timeoutNs / 1e6;
      ctx.deadline = Date.now() + ms;
      if (ms <= MAX_TIMER_MS) {
        timer = setTimeout(() => ac.abort(new StatusError(Code.DeadlineExceeded, 'context deadline exceeded')), ms);
        timer.unref();
      }
    }
    conn.inflight.set(streamId, ac);
    void this.run(conn, streamId, handler, req.payload ?? EMPTY, ctx, timer, started);
  }

  private async run(conn: Connection, streamId: number, handler: Handler, payload: Uint8Array,
    ctx: RequestContext, timer: NodeJS.Timeout | undefined, started: bigint): Promise<void> {
    let result: unknown;
    let code: Code;
    try {
      result = await handler(payload, ctx);
    } catch (err) {
      code = this.sendError(conn, streamId, ctx, err);
      this.observe(started, ctx.service, ctx.method, code);
      return;
    } finally {
      if (timer !== undefined) clearTimeout(timer);
      conn.inflight.delete(streamId);
    }
    code = this.respond(conn, streamId, ctx, result);
    this.observe(started, ctx.service, ctx.method, code);
  }

  /** Writes a handler's result as the response; returns the status code that went out. */
  private respond(conn: Connection, streamId: number, ctx: RequestContext, result: unknown): Code {
    if (result === undefined || result === null) result = EMPTY;
    if (!(result instanceof Uint8Array)) {
      this.log('error', 'ttrpc: handler returned a non-binary result', { service: ctx.service, method: ctx.method });
      this.sendStatus(conn, streamId, Code.Internal, `method ${ctx.method} returned an invalid response`);
      return Code.Internal;
    }
    const body = ttrpc.Response.encode({ payload: result }).finish();
    if (body.length > MAX_MESSAGE_LENGTH) {
      this.sendStatus(conn, streamId, Code.ResourceExhausted,
        `message length ${body.length} exceed maximum message size of ${MAX_MESSAGE_LENGTH}`);
      return Code.ResourceExhausted;
    }
    this.write(conn, streamId, body);
    return Code.OK;
  }

  private sendError(conn: Connection, streamId: number, ctx: RequestContext, err: unknown): Code {
    if (hasStatusCode(err)) {
      const message = typeof err.message === 'string' ? err.message : String(err.message ?? '');
      this.log('debug', 'ttrpc: handler returned status', {
        service: ctx.service, method: ctx.method, code: codeName(err.code), message,
      });
      this.sendStatus(conn, streamId, err.code, message, detailsOf(err));
      return err.code;
    }
    const message = errorMessage(err);
    this.log('warn', 'ttrpc: handler failed', { service: ctx.service, method: ctx.method, error: message });
    this.sendStatus(conn, streamId, Code.Unknown, message);
    return Code.Unknown;
  }

  /** A request refused before any handler ran. */
  private reject(conn: Connection, streamId: number, started: bigint, service: string, method: string,
    code: Code, message: string): void {
    this.sendStatus(conn, streamId, code, message);
    this.observe(started, service, method, code);
  }

  // Without an observer the clock is never read: one branch per request is all the hot path pays.
  private startClock(): bigint {
    return this.observer === undefined ? 0n : process.hrtime.bigint();
  }

  private observe(started: bigint, service: string, method: string, code: Code): void {
    const observer = this.observer;
    // A request that arrived before the observer was set has no start time; it is not reported.
    if (observer === undefined || started === 0n) return;
    try {
      observer(service, method, code, Number(process.hrtime.bigint() - started) / 1e9);
    } catch (err) {
      this.log('warn', 'ttrpc: request observer failed', { error: errorMessage(err) });
    }
  }

  private sendStatus(conn: Connection, streamId: number, code: Code, message: string, details?: StatusDetail[]): void {
    const status: { code: number; message: string; details?: StatusDetail[] } = { code, message };
    if (details !== undefined && details.length > 0) status.details = details;
    let body = ttrpc.Response.encode({ status }).finish();
    if (body.length > MAX_MESSAGE_LENGTH) {
      // Only a huge message or details can get here; drop them rather than the answer.
      body = ttrpc.Response.encode({ status: { code, message: message.slice(0, 4096) } }).finish();
    }
    this.write(conn, streamId, body);
  }

  private write(conn: Connection, streamId: number, body: Uint8Array): void {
    const socket = conn.socket;
    if (conn.closed || socket.destroyed || !socket.writable) {
      this.log('debug', 'ttrpc: response dropped, connection closed', { conn: conn.id, streamId });
      return;
    }
    const frame = encodeFrame(streamId, MessageType.Response, 0, body);
    try {
      socket.write(frame, (err) => {
        if (err) this.log('debug', 'ttrpc: write failed', { conn: conn.id, streamId, error: err.message });
      });
    } catch (err) {
      this.log('debug', 'ttrpc: write failed', { conn: conn.id, streamId, error: errorMessage(err) });
    }
  }
}

function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  if (typeof err === 'object' && err !== null && typeof (err as { message?: unknown }).message === 'string') {
    return (err as { message: string }).message;
  }
  return String(err);
}

function detailsOf(err: object): StatusDetail[] | undefined {
  const details = (err as { details?: unknown }).details;
  if (!Array.isArray(details)) return undefined;
  const out: StatusDetail[] = [];
  for (const d of details) {
    if (typeof d === 'object' && d !== null && typeof d.typeUrl === 'string' && d.value instanceof Uint8Array) {
      out.push({ typeUrl: d.typeUrl, value: d.value });
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Typed handlers on top of the generated message classes.

export interface MessageDecoder<T> {
  decode(data: Uint8Array): T;
}

export interface MessageEncoder<T> {
  encode(message: T): { finish(): Uint8Array };
}

/**
 * Wraps a typed function as a Handler: decodes the request (a payload that fails to decode is the
 * client's error and is answered with InvalidArgument; Go's ttrpc says Internal), encodes the response.
 *
 *   server.register('containerd.task.v2.Task', {
 *     Connect: unary(task.ConnectRequest, task.ConnectResponse, async (req) => ({ shimPid: 1 })),
 *   });
 */
export function unary<Req, Res>(
  request: MessageDecoder<Req>,
  response: MessageEncoder<Res>,
  fn: (req: Req, ctx: RequestContext) => Promise<Res> | Res,
): Handler {
  return async (payload, ctx) => {
    let req: Req;
    try {
      req = request.decode(payload);
    } catch (err) {
      throw new StatusError(Code.InvalidArgument, `failed to decode ${ctx.method} request: ${errorMessage(err)}`);
    }
    const res = await fn(req, ctx);
    return response.encode(res).finish();
  };
}
