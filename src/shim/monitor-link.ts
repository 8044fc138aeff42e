// The daemon's side of one monitor's control channel (docs/architecture.md). The monitor is the process
// containerd knows as the shim: it reaps, owns the sockets and spawns the runtime commands that leave
// processes behind. This class turns its requests into promises and its `reaped` and `oom` events into
// callbacks.
import type net from 'node:net';
import { encodeControlFrame, ControlFrameReader } from './control-frame.js';
import { RuntimeError, type Exit, type HandOffRequest, type SpawnRequest } from '../plugins/api/index.js';
import { PreciseDate } from './time.js';

export type { Exit, SpawnRequest };

export interface MonitorHello {
  monitorId: string;
  pid: number;
  bundle: string;
  namespace: string;
  containerId: string;
  address: string;
}

export function parseHello(fields: string[]): MonitorHello {
  const [kind, monitorId, pid, bundle, namespace, containerId, address] = fields;
  if (kind !== 'control' || !monitorId || !pid || bundle === undefined || namespace === undefined ||
      containerId === undefined || address === undefined) {
    throw new Error(`bad control hello: ${JSON.stringify(fields)}`);
  }
  return { monitorId, pid: Number(pid), bundle, namespace, containerId, address };
}

interface Pending {
  resolve: (values: string[]) => void;
  reject: (e: Error) => void;
  /** Run on the reply before the frames after it are handled (the promise settles only later). */
  onReply?: (values: string[]) => void;
}

export class MonitorLink {
  private socket: net.Socket | null = null;
  private reader = new ControlFrameReader();
  private seq = 0;
  private pending = new Map<number, Pending>();
  private reapedListener: ((e: Exit, event: number) => void) | null = null;
  private oomListener: ((key: string, event: number) => void) | null = null;
  private waiters: Array<() => void> = [];

  constructor(public hello: MonitorHello) {}

  get connected(): boolean { return this.socket !== null; }

  /** Adopt a (re)connected control socket; requests in flight on an older socket fail. */
  attach(socket: net.Socket, initial: Buffer, hello: MonitorHello): void {
    this.detach(new RuntimeError('monitor control channel was replaced'));
    this.hello = hello;
    this.socket = socket;
    this.reader = new ControlFrameReader();
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', () => { /* 'close' follows */ });
    socket.on('close', () => { if (this.socket === socket) this.detach(new RuntimeError('monitor went away')); });
    if (initial.length > 0) this.onData(initial);
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /**
   * Every process the monitor reaped, with the event's number. The monitor sends an event again, after
   * its next control hello, until `ack` names it: the same number can come twice (docs/architecture.md).
   */
  onReaped(listener: (e: Exit, event: number) => void): void { this.reapedListener = listener; }
  /** An OOM kill in the cgroup watched under key; always delivered before the reaped events it caused. */
  onOom(listener: (key: string, event: number) => void): void { this.oomListener = listener; }

  /** Tells the monitor these events are recorded: it keeps them no longer. Lost with a broken connection. */
  ack(events: readonly number[]): void {
    if (!this.socket || events.length === 0) return;
    this.socket.write(Buffer.concat(events.map((n) => encodeControlFrame(['ack', n]))));
  }

  /** Resolves when a control socket is attached (at once if one is). */
  ready(timeoutMs = 10_000): Promise<void> {
    if (this.socket) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new RuntimeError('monitor is not connected')), timeoutMs);
      this.waiters.push(() => { clearTimeout(t); resolve(); });
    });
  }

  private detach(err: Error): void {
    const s = this.socket;
    this.socket = null;
    if (s && !s.destroyed) s.destroy();
    const p = this.pending;
    this.pending = new Map();
    for (const { reject } of p.values()) reject(err);
  }

  close(): void { this.detach(new RuntimeError('monitor link closed')); }

  private onData(chunk: Buffer): void {
    let frames: string[][];
    try {
      frames = this.reader.push(chunk);
    } catch (e) {
      this.detach(e as Error);
      return;
    }
    for (const f of frames) this.onFrame(f);
  }

  private onFrame(fields: string[]): void {
    const [kind, a, b, c, d] = fields;
    if (kind === 'reaped' || kind === 'oom') {
      const event = Number(a);
      if (!Number.isSafeInteger(event) || event <= 0) return;
      if (kind === 'oom') {
        if (b) this.oomListener?.(b, event);
        return;
      }
      const exit: Exit = { pid: Number(b), status: Number(c), at: new PreciseDate(Number(d), Number(fields[5])) };
      this.reapedListener?.(exit, event);
      return;
    }
    if (kind === 'ok' || kind === 'error') {
      const seq = Number(a);
      const p = this.pending.get(seq);
      if (!p) return;
      this.pending.delete(seq);
      if (kind === 'ok') {
        p.onReply?.(fields.slice(2));
        p.resolve(fields.slice(2));
      }
      else p.reject(new MonitorRequestError(Number(b), c ?? 'monitor request failed'));
    }
  }

  private async request(op: string, args: (string | number)[], onReply?: (values: string[]) => void): Promise<string[]> {
    await this.ready();
    const seq = ++this.seq;
    const frame = encodeControlFrame([op, seq, ...args]);
    return new Promise((resolve, reject) => {
      this.pending.set(seq, { resolve, reject, onReply });
      this.socket!.write(frame);
    });
  }

  /**
   * Spawns a process; `onPid` runs with its pid as soon as the reply is read, before the frames after it:
   * the process's own `reaped` may come in the same read (a short-lived process, a busy event loop), and
   * whatever drops stale exits of an earlier process with that pid must do so before that one arrives.
   */
  async spawn(req: SpawnRequest, onPid?: (pid: number) => void): Promise<number> {
    const env = req.env ?? [];
    const [pid] = await this.request('spawn', [
      req.ioKey, req.cwd, req.stdin, req.stdout, req.stderr, req.argv.length, ...req.argv, env.length, ...env,
    ], onPid && ((values) => onPid(Number(values[0]))));
    return Number(pid);
  }
  /** See ProcessHost.handOff; onPid as spawn's. */
  async handOff(channelKey: string, req: HandOffRequest, onPid?: (pid: number) => void): Promise<{ pid: number; warnings: string[] }> {
    const [pid, warnings] = await this.request('handoff', [req.ioKey, channelKey, req.stdin, req.stdout, req.stderr, req.message],
      onPid && ((values) => onPid(Number(values[0]))));
    return { pid: Number(pid), warnings: (warnings ?? '').split('\n').filter((l) => l !== '') };
  }
  async closeIo(ioKey: string): Promise<void> { await this.request('closeio', [ioKey]); }
  /** Signals a child of the monitor that has not exited (ESRCH as a MonitorRequestError otherwise). */
  async signal(pid: number, signal: number): Promise<void> { await this.request('signal', [pid, signal]); }
  /** A console socket for ioKey; the monitor copies between the pty master it receives and the specs. */
  async console(ioKey: string, stdin: string, stdout: string): Promise<string> {
    const [socketPath] = await this.request('console', [ioKey, stdin, stdout]);
    if (!socketPath) throw new RuntimeError('monitor returned no console socket path');
    return socketPath;
  }
  async consoleWait(ioKey: string, timeoutMs: number): Promise<void> {
    await this.request('consolewait', [ioKey, timeoutMs]);
  }
  /** false when ioKey has no console (runc-v2 treats that as a successful no-op). */
  async resize(ioKey: string, width: number, height: number): Promise<boolean> {
    try {
      await this.request('resize', [ioKey, width, height]);
      return true;
    } catch (e) {
      if (e instanceof MonitorRequestError && e.errno === ENOENT) return false;
      throw e;
    }
  }
  /** Starts a `binary://` logging process for ioKey; spawn stdio `logger:1`/`logger:2` then feed it. */
  async logger(ioKey: string, containerId: string, namespace: string, argv: string[]): Promise<number> {
    const [pid] = await this.request('logger', [ioKey, containerId, namespace, argv.length, ...argv]);
    return Number(pid);
  }
  /** Watch a memory cgroup for OOM kills, reported as `oom` events for key until `release(key)`. */
  async oomWatch(key: string, version: 1 | 2, dir: string): Promise<void> {
    await this.request('oomwatch', [key, `v${version}`, dir]);
  }
  /**
   * The monitor copies, in C and from then on without the daemon, between a process stream it did not fork
   * and containerd's stdio: direction 'out' from endpoint to target, 'in' from target to endpoint. endpoint:
   * `unix:<absolute path>` (a stream socket it connects to, e.g. a VM agent's) or the absolute path of a
   * FIFO or character device; target: `fifo:<path>`, or for 'out' also `file:<path>`. Resolves once both
   * are open; `closeIo(ioKey)` ends the key's 'in' copy (at the stdin FIFO's EOF, the endpoint's write
   * side is shut), `release(ioKey)` ends all of them.
   */
  async copy(ioKey: string, direction: 'in' | 'out', endpoint: string, target: string): Promise<void> {
    await this.request('copy', [ioKey, direction, endpoint, target]);
  }
  /** Bytes the monitor's consoles and copies have moved: stdin → pty or endpoint, pty or endpoint → stdout. */
  async ioStats(): Promise<{ stdinBytes: number; stdoutBytes: number }> {
    const [stdin, stdout] = await this.request('iostats', []);
    return { stdinBytes: Number(stdin), stdoutBytes: Number(stdout) };
  }
  async release(ioKey: string): Promise<void> { await this.request('release', [ioKey]); }
  async mount(type: string, source: string, target: string, options: string[]): Promise<void> {
    await this.request('mount', [type, source, target, options.join(',')]);
  }
  async umount(target: string): Promise<void> { await this.request('umount', [target]); }
  async shutdown(): Promise<void> { await this.request('shutdown', []); }
}

const ENOENT = 2;

export class MonitorRequestError extends RuntimeError {
  constructor(public readonly errno: number, message: string) { super(message); }
}
