// One process the shim manages (a container's init; execs later): its state and its waiters.
// Invariant: `exited` resolves in the same step that queues the process's TaskExit, so a Wait never
// returns before containerd could have seen the exit event.
import type { Exit } from './monitor-link.js';

export type ProcessStatus = 'created' | 'running' | 'stopped' | 'deleted';

export class ShimProcess {
  pid = 0;
  status: ProcessStatus = 'created';
  exitStatus = 0;
  exitedAt: Date | null = null;
  /** A Start is running; an exit seen meanwhile waits until TaskStart is queued. */
  starting = false;
  pendingExit: Exit | null = null;
  readonly exited: Promise<void>;
  private resolveExited!: () => void;

  constructor(readonly id: string) {
    this.exited = new Promise((r) => { this.resolveExited = r; });
  }

  setExited(exit: Exit): void {
    this.status = 'stopped';
    this.exitStatus = exit.status;
    this.exitedAt = exit.at;
    this.resolveExited();
  }

  get hasExited(): boolean { return this.exitedAt !== null; }
}
