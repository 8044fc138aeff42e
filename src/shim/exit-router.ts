// Matches the exits a monitor reaps to whoever waits for that pid. An exit can arrive before anyone asks
// for it (a container init that dies before `runc create` has written its pid file), so exits nobody
// claimed yet are kept for a while; a pid the monitor hands out again for a new child drops the old one.
import type { Exit } from './monitor-link.js';

const UNCLAIMED_TTL_MS = 60_000;
const UNCLAIMED_MAX = 4096;

export class ExitRouter {
  private waiting = new Map<number, (e: Exit) => void>();
  private unclaimed = new Map<number, { exit: Exit; until: number }>();

  deliver(exit: Exit): void {
    const w = this.waiting.get(exit.pid);
    if (w) {
      this.waiting.delete(exit.pid);
      w(exit);
      return;
    }
    this.unclaimed.set(exit.pid, { exit, until: Date.now() + UNCLAIMED_TTL_MS });
    this.trim();
  }

  /** A fresh process now owns this pid: an old exit recorded for it is stale. */
  forget(pid: number): void { this.unclaimed.delete(pid); }

  /**
   * The same for a process whose pid is learnt after its start (an exec server's child): its own exit may
   * have come first, so only an exit from before `since` (when its start was asked for) is stale.
   */
  forgetBefore(pid: number, since: Date): void {
    const u = this.unclaimed.get(pid);
    if (u && u.exit.at.getTime() < since.getTime()) this.unclaimed.delete(pid);
  }

  /** Resolves with the exit of `pid`, at once if it was already reaped. */
  wait(pid: number): Promise<Exit> {
    const u = this.unclaimed.get(pid);
    if (u) {
      this.unclaimed.delete(pid);
      return Promise.resolve(u.exit);
    }
    return new Promise((resolve) => {
      const prev = this.waiting.get(pid);
      this.waiting.set(pid, (e) => { prev?.(e); resolve(e); });
    });
  }

  private trim(): void {
    const now = Date.now();
    for (const [pid, u] of this.unclaimed) {
      if (u.until < now || this.unclaimed.size > UNCLAIMED_MAX) this.unclaimed.delete(pid);
      else break;
    }
  }
}
