// A client of containerd's CRI streaming server (the URLs CRI Exec and Attach return), speaking the WebSocket
// flavour of the Kubernetes remotecommand protocol over the `ws` package.
//
// The protocol, as k8s.io/apimachinery's wsstream and the kubelet's cri/streaming (which containerd 1.6 carries
// in pkg/cri/streaming and 2.x vendors) implement it:
// - the client names the subprotocols it speaks, best first; the server takes the first it knows. containerd
//   1.6.20 and 2.1.9 both know "channel.k8s.io", "base64.channel.k8s.io", "v4.channel.k8s.io" and
//   "v4.base64.channel.k8s.io", not "v5.channel.k8s.io" (the apiserver's websocket endpoint has v5, the
//   kubelet's streaming server does not yet). This client speaks the binary ones: v5, v4 and the pre-v4 one.
// - every binary message starts with a channel byte: 0 stdin (client → server), 1 stdout, 2 stderr, 3 the
//   error/status channel, 4 resize (client → server, JSON {"Width":w,"Height":h}); v5 adds 255: a message
//   [255, n] half-closes channel n (the client closes stdin with [255, 0]).
// - once the streams exist the server sends one empty message on the lowest output channel it will write
//   (stdout, else stderr, else the error channel): the client knows the session is up.
// - at the end the server writes the outcome on channel 3 (v4/v5: a JSON metav1.Status, `Success` or
//   `Failure` with reason NonZeroExitCode and the exit code as the message of a cause of type ExitCode;
//   before v4: the error text, nothing on success) and closes the connection.
// - v4 has no half-close: the only way to end stdin is to close the connection, and then everything the
//   command writes afterwards, and its exit status, are lost (containerd closes every channel when the socket
//   goes: stdin sees EOF, and for an exec without a tty containerd then closes the process's stdin).

import { EventEmitter } from 'node:events';
import WebSocket from 'ws';

export const STDIN = 0;
export const STDOUT = 1;
export const STDERR = 2;
export const STATUS = 3;
export const RESIZE = 4;
export const CLOSE = 255;

export const PROTOCOL_V5 = 'v5.channel.k8s.io';
export const PROTOCOL_V4 = 'v4.channel.k8s.io';
export const PROTOCOL_V1 = 'channel.k8s.io';
/** What this client offers unless told otherwise, best first. */
export const DEFAULT_PROTOCOLS = [PROTOCOL_V5, PROTOCOL_V4, PROTOCOL_V1];

/** The outcome the server reported on the status channel. */
export interface StreamStatus {
  /** `Success`, `Failure`, or `Error` for a pre-v4 error text */
  status: string;
  reason: string;
  message: string;
  /** the command's exit code: 0 on Success, the ExitCode cause on NonZeroExitCode, else null */
  exitCode: number | null;
  /** what the server sent */
  raw: string;
}

/** Everything a session produced, once the server closed it. */
export interface StreamResult {
  protocol: string;
  stdout: Buffer;
  stderr: Buffer;
  /** null when no status came (the server closed without one, or the client closed first) */
  status: StreamStatus | null;
  /** WebSocket close code and reason (1006: the connection went without a close frame) */
  closeCode: number;
  closeReason: string;
  /** whether this client closed the connection (terminate(), or closeStdin() on a protocol without half-close) */
  closedByClient: boolean;
}

export interface OpenOptions {
  /** subprotocols to offer, best first (default DEFAULT_PROTOCOLS) */
  protocols?: string[];
  /** how long the handshake and the server's first message may take (default 30 s) */
  timeoutMs?: number;
}

/** Parse what came on channel 3. */
export function parseStatus(protocol: string, raw: string): StreamStatus {
  if (protocol !== PROTOCOL_V4 && protocol !== PROTOCOL_V5) {
    return { status: raw ? 'Error' : 'Success', reason: '', message: raw, exitCode: raw ? null : 0, raw };
  }
  const s = JSON.parse(raw) as {
    status?: string;
    reason?: string;
    message?: string;
    details?: { causes?: Array<{ reason?: string; type?: string; message?: string }> };
  };
  let exitCode: number | null = null;
  if (s.status === 'Success') exitCode = 0;
  else if (s.reason === 'NonZeroExitCode') {
    // metav1.StatusCause's `type` field is spelled `reason` in JSON
    const cause = s.details?.causes?.find((c) => (c.reason ?? c.type) === 'ExitCode');
    if (cause?.message !== undefined && /^\d+$/.test(cause.message)) exitCode = Number(cause.message);
  }
  return { status: s.status ?? '', reason: s.reason ?? '', message: s.message ?? '', exitCode, raw };
}

/**
 * One remotecommand session (an exec or an attach). Open with RemoteCommandStream.open(url); the promise
 * resolves once the server has said the streams are up. Output is collected per channel; wait for it with
 * waitOutput(), for the end with `done`. Call terminate() when giving up (tests: in a finally).
 */
export class RemoteCommandStream {
  readonly chunks: Record<number, Buffer[]> = { [STDOUT]: [], [STDERR]: [], [STATUS]: [] };
  /** resolves when the server (or the client) closed the connection */
  readonly done: Promise<StreamResult>;
  private readonly events = new EventEmitter();
  private closed: StreamResult | null = null;
  private closedByClient = false;
  private stdinClosed = false;

  private constructor(private readonly ws: WebSocket, readonly protocol: string) {
    this.events.setMaxListeners(0);
    ws.on('message', (data: WebSocket.RawData, isBinary: boolean) => {
      const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
      if (!isBinary || buf.length === 0) return;
      const ch = buf[0]!;
      (this.chunks[ch] ??= []).push(buf.subarray(1));
      this.events.emit('data', ch);
    });
    this.done = new Promise((resolve) => {
      ws.on('close', (code: number, reason: Buffer) => {
        const rawStatus = this.text(STATUS);
        let status: StreamStatus | null = null;
        if (rawStatus) status = parseStatus(protocol, rawStatus);
        else if (!this.closedByClient && protocol === PROTOCOL_V1) status = parseStatus(protocol, '');
        this.closed = {
          protocol,
          stdout: this.output(STDOUT),
          stderr: this.output(STDERR),
          status,
          closeCode: code,
          closeReason: reason.toString(),
          closedByClient: this.closedByClient,
        };
        this.events.emit('close');
        resolve(this.closed);
      });
    });
    ws.on('error', () => {
      /* a 'close' follows */
    });
  }

  /**
   * Connect to a streaming URL as CRI Exec/Attach returned it (http://host:port/exec/<token>). Resolves when
   * the server's first (empty) message has come; rejects when the handshake fails (e.g. no common
   * subprotocol) or the server closes first.
   */
  static open(url: string, o: OpenOptions = {}): Promise<RemoteCommandStream> {
    const wsUrl = url.replace(/^http(s?):/, 'ws$1:');
    const protocols = o.protocols ?? DEFAULT_PROTOCOLS;
    const timeoutMs = o.timeoutMs ?? 30_000;
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(wsUrl, protocols, { perMessageDeflate: false, handshakeTimeout: timeoutMs });
      let stream: RemoteCommandStream | undefined;
      const timer = setTimeout(() => {
        ws.terminate();
        reject(new Error(`remotecommand ${url}: no first message within ${timeoutMs} ms`));
      }, timeoutMs);
      ws.once('unexpected-response', (req, res) => {
        clearTimeout(timer);
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        const fail = () => {
          reject(new Error(`remotecommand ${url}: HTTP ${res.statusCode}: ${body.trim()}`));
          req.destroy();
        };
        res.on('end', fail);
        res.on('error', fail);
      });
      ws.once('error', (e) => {
        clearTimeout(timer);
        reject(new Error(`remotecommand ${url}: ${e.message}`));
      });
      ws.once('open', () => {
        stream = new RemoteCommandStream(ws, ws.protocol);
        // the first message of any channel means the server's streams are up
        ws.once('message', () => {
          clearTimeout(timer);
          resolve(stream!);
        });
        ws.once('close', (code: number) => {
          clearTimeout(timer);
          reject(new Error(`remotecommand ${url}: closed (${code}) before its first message; status: ${stream!.text(STATUS)}`));
        });
      });
    });
  }

  /** Everything received so far on `channel`. */
  output(channel: number): Buffer {
    return Buffer.concat(this.chunks[channel] ?? []);
  }

  text(channel: number): string {
    return this.output(channel).toString('utf8');
  }

  get isClosed(): boolean {
    return this.closed !== null;
  }

  /** Send bytes to the command's stdin. */
  write(data: string | Buffer): void {
    if (this.stdinClosed) throw new Error('stdin is closed');
    this.send(STDIN, typeof data === 'string' ? Buffer.from(data) : data);
  }

  /** Tell the server the terminal's size (what kubectl sends on SIGWINCH). */
  resize(width: number, height: number): void {
    this.send(RESIZE, Buffer.from(JSON.stringify({ Width: width, Height: height })));
  }

  /**
   * End stdin. v5 half-closes channel 0 and the session goes on; older protocols have no half-close, so
   * this closes the connection (see the top of the file). Returns whether the session goes on.
   */
  closeStdin(): boolean {
    this.stdinClosed = true;
    if (this.protocol === PROTOCOL_V5) {
      this.ws.send(Buffer.from([CLOSE, STDIN]));
      return true;
    }
    this.closedByClient = true;
    this.ws.close(1000);
    return false;
  }

  /**
   * Wait until the text received on `channel` matches `re` (tested against everything received so far);
   * returns the text. Rejects when the connection closes without a match or after `timeoutMs`.
   */
  waitOutput(channel: number, re: RegExp, timeoutMs = 30_000): Promise<string> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const t = this.text(channel);
        if (re.test(t)) {
          finish();
          resolve(t);
          return true;
        }
        return false;
      };
      const onData = (ch: number) => {
        if (ch === channel) check();
      };
      const onClose = () => {
        if (check()) return;
        finish();
        reject(new Error(`channel ${channel} closed without matching ${re}; got ${JSON.stringify(this.text(channel).slice(-500))}` +
          `; status: ${this.text(STATUS)}`));
      };
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`channel ${channel} did not match ${re} within ${timeoutMs} ms; got ${JSON.stringify(this.text(channel).slice(-500))}`));
      }, timeoutMs);
      const finish = () => {
        clearTimeout(timer);
        this.events.off('data', onData);
        this.events.off('close', onClose);
      };
      this.events.on('data', onData);
      this.events.on('close', onClose);
      if (check()) return;
      if (this.closed) onClose();
    });
  }

  /** `done`, or a rejection after `timeoutMs` (the connection is then left open: terminate() it). */
  waitDone(timeoutMs = 30_000): Promise<StreamResult> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`remotecommand session still open after ${timeoutMs} ms; stdout so far ` +
        `${JSON.stringify(this.text(STDOUT).slice(-300))}`)), timeoutMs);
    });
    return Promise.race([this.done, timeout]).finally(() => clearTimeout(timer));
  }

  /** Drop the connection now (no close handshake); resolves when it is closed. */
  async terminate(): Promise<void> {
    if (this.closed) return;
    this.closedByClient = true;
    this.ws.terminate();
    await this.done;
  }

  private send(channel: number, payload: Buffer): void {
    if (this.closed || this.ws.readyState !== WebSocket.OPEN) throw new Error(`remotecommand: send on channel ${channel} after close`);
    this.ws.send(Buffer.concat([Buffer.from([channel]), payload]));
  }
}
