// One process the shim manages (a container's init or one of its execs): its state and its waiters.
// Invariant: `exited` resolves in the same step that queues the process's TaskExit, so a Wait never
// returns before containerd could have seen the exit event.
import type { Exit } from './monitor-link.js';

/** `pausing`/`paused` only ever apply to an init (an exec reports its container's pause state). */
export type ProcessStatus = 'created' | 'running' | 'pausing' | 'paused' | 'stopped' | 'deleted';

export interface ProcessStdio { stdin: string; stdout: string; stderr: string; terminal: boolean }

export class ShimProcess {
  pid = 0;
  status: ProcessStatus = 'created';
  exitStatus = 0;
  exitedAt: Date | null = null;
  /** A Start is running; an exit seen meanwhile waits until TaskStart/TaskExecStarted is queued. */
  starting = false;
  pendingExit: Exit | null = null;
  /** An exec's OCI Process, kept from Exec until its Start. */
  spec: Record<string, unknown> | null = null;
  readonly exited: Promise<void>;
  private resolveExited!: () => void;

  /**
   * @param id container id for an init, exec id for an exec
   * @param execId '' for an init
   * @param ioKey key of its stdio at the monitor
   */
  constructor(readonly id: string, readonly execId: string, readonly ioKey: string, readonly stdio: ProcessStdio) {
    this.exited = new Promise((r) => { this.resolveExited = r; });
  }

  setExited(exit: Exit): void {
    this.status = 'stopped';
    this.exitStatus = exit.status;
    this.exitedAt = exit.at;
    this.resolveExited();
  }

  /**
   * The runtime could not start it (runc-v2: `runc exec` failed): waiters are released with status 0 and no
   * exit time, and the process stays deletable.
   */
  releaseWaiters(): void {
    this.resolveExited();
  }

  get hasExited(): boolean { return this.exitedAt !== null; }
  /** Started and not seen exiting. */
  get isLive(): boolean { return this.status === 'running' || this.status === 'pausing' || this.status === 'paused' || this.starting; }
}
