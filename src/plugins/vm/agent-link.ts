// The host's end of the guest agent's channel: the virtio-serial port QEMU exposes as a unix socket
// (docs/vm-guest.md). Requests and replies are control frames (src/shim/control-frame.ts), the framing the
// monitor speaks too: `<op> <seq> args...` → `ok <seq> values...` | `error <seq> <errno> <message>`.
import net from 'node:net';
import { ControlFrameReader, encodeControlFrame } from '../../shim/control-frame.js';
import { RuntimeError, UnavailableError } from '../api/errors.js';

/** The protocol version this host speaks; the agent's hello names its own. */
export const AGENT_PROTOCOL = '1';

export interface AgentHello { protocol: string; kernelRelease: string; agentPid: number }

/** A request the agent refused: its errno and message. */
export class AgentRequestError extends RuntimeError {
  constructor(readonly op: string, readonly errno: number, readonly reason: string) {
    super(`guest agent: ${op}: ${reason} (errno ${errno})`);
  }
}

interface Pending { op: string; resolve: (v: string[]) => void; reject: (e: Error) => void }

export class AgentLink {
  private reader = new ControlFrameReader();
  private seq = 0;
  private pending = new Map<number, Pending>();
  private closed = false;
  private reapedListener: ((pid: number, status: number) => void) | null = null;

  private constructor(private readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      let frames: string[][];
      try {
        frames = this.reader.push(chunk);
      } catch (e) {
        this.fail(new RuntimeError(`guest agent sent a bad frame: ${(e as Error).message}`));
        return;
      }
      for (const f of frames) this.onFrame(f);
    });
    socket.on('error', () => { /* 'close' follows */ });
    socket.on('close', () => this.fail(new UnavailableError('guest agent channel closed')));
  }

  /**
   * Connects to QEMU's socket for the agent's port, retrying while QEMU has not made it yet, for at most
   * `timeoutMs`; `alive` says whether QEMU still runs (a QEMU that died ends the wait at once).
   */
  static async connect(socketPath: string, timeoutMs: number, alive: () => boolean = () => true): Promise<AgentLink> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        const s = await new Promise<net.Socket>((resolve, reject) => {
          const c = net.connect(socketPath);
          c.once('connect', () => { c.removeAllListeners('error'); resolve(c); });
          c.once('error', reject);
        });
        return new AgentLink(s);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if ((code !== 'ENOENT' && code !== 'ECONNREFUSED') || !alive() || Date.now() > deadline) {
          throw new UnavailableError(`cannot reach the guest agent at ${socketPath}: ${(e as Error).message}`);
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  }

  /** One request; its reply's values. `timeoutMs` bounds the wait (the guest may be gone or hung). */
  request(op: string, args: Array<string | number> = [], timeoutMs = 30_000): Promise<string[]> {
    if (this.closed) return Promise.reject(new UnavailableError('guest agent channel closed'));
    const seq = ++this.seq;
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.pending.delete(seq);
        reject(new UnavailableError(`guest agent did not answer ${op} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(seq, {
        op,
        resolve: (v) => { clearTimeout(t); resolve(v); },
        reject: (e) => { clearTimeout(t); reject(e); },
      });
      this.socket.write(encodeControlFrame([op, seq, ...args]));
    });
  }

  /** The agent reaped a guest process: its pid and wait status (sent unasked, in reap order). */
  onReaped(listener: (pid: number, status: number) => void): void { this.reapedListener = listener; }

  async hello(timeoutMs?: number): Promise<AgentHello> {
    const [protocol, kernelRelease, pid] = await this.request('hello', [], timeoutMs);
    if (protocol !== AGENT_PROTOCOL) throw new RuntimeError(`guest agent speaks protocol ${protocol}, this host ${AGENT_PROTOCOL}`);
    return { protocol, kernelRelease: kernelRelease ?? '', agentPid: Number(pid) };
  }

  close(): void {
    this.socket.destroy();
    this.fail(new UnavailableError('guest agent channel closed'));
  }

  private onFrame(f: string[]): void {
    const [kind, seq, a, b] = f;
    if (kind === 'reaped') {
      this.reapedListener?.(Number(seq), Number(a));
      return;
    }
    const p = this.pending.get(Number(seq));
    if (!p) return;
    this.pending.delete(Number(seq));
    if (kind === 'ok') p.resolve(f.slice(2));
    else if (kind === 'error') p.reject(new AgentRequestError(p.op, Number(a), b ?? 'failed'));
    else p.reject(new RuntimeError(`guest agent answered ${p.op} with ${JSON.stringify(kind)}`));
  }

  private fail(err: Error): void {
    this.closed = true;
    const p = this.pending;
    this.pending = new Map();
    for (const x of p.values()) x.reject(err);
  }
}
