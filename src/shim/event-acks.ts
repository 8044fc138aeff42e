// Which of a monitor's events the daemon has made safe, and so may acknowledge (docs/architecture.md,
// "Acknowledged events"). The monitor keeps every `reaped` and `oom` event until the daemon names it in an
// `ack`, and sends what is not acknowledged again after each control hello: to this daemon when only the
// connection broke, to the next one when this daemon died. So an exit read by a daemon that dies before
// writing it down is not lost. An exit is acknowledged only once the core says it is settled: the process
// it ended has its exit recorded on disk, or it is no process the core records (a runtime command, a
// logger) and nothing the core is doing can still make it one.
export class EventAcks {
  /** Exits received and not yet acknowledged: event number → pid. */
  private readonly waiting = new Map<number, number>();
  /** The highest event number received from this monitor process: a number at or below it came before. */
  private highest = 0;
  private monitorPid = 0;
  private scheduled = false;

  constructor(
    private readonly send: (events: number[]) => void,
    private readonly settled: (pid: number) => boolean,
  ) {}

  /** A control hello: a monitor process other than the last one numbers its events afresh. */
  connected(monitorPid: number): void {
    if (monitorPid === this.monitorPid) return;
    this.monitorPid = monitorPid;
    this.waiting.clear();
    this.highest = 0;
  }

  /**
   * An event arrived. Returns false when this daemon has had it already (sent again after a reconnect):
   * it is not to be handled twice, and one acknowledged before, whose ack the broken connection may have
   * lost, is acknowledged again.
   */
  received(event: number): boolean {
    if (event > this.highest) {
      this.highest = event;
      return true;
    }
    if (!this.waiting.has(event)) this.send([event]);
    return false;
  }

  /** An exit, handed to the core: acknowledged once the core has settled it. */
  exit(event: number, pid: number): void {
    this.waiting.set(event, pid);
    this.schedule();
  }

  /** An event handled in full as it arrived (an OOM kill, published): acknowledged at once. */
  done(event: number): void {
    this.send([event]);
  }

  /**
   * Looks again, after the current turn of the event loop (the exit's handling runs in promise callbacks
   * first). The core calls it whenever it has written its records or finished a call that binds a pid.
   */
  schedule(): void {
    if (this.scheduled || this.waiting.size === 0) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.check();
    });
  }

  /** Exits received and not yet acknowledged (for the diagnostic report). */
  get pending(): number { return this.waiting.size; }

  private check(): void {
    const ready: number[] = [];
    for (const [event, pid] of this.waiting) {
      if (this.settled(pid)) ready.push(event);
    }
    for (const event of ready) this.waiting.delete(event);
    if (ready.length > 0) this.send(ready);
  }
}
