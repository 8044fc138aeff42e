// Publishes task events to containerd (Events/Forward on $TTRPC_ADDRESS). One queue, one sender: events
// reach containerd in the order they were produced.
//
// While containerd cannot be reached (its socket refuses, or a call times out) nothing is dropped: the
// queue goes to disk, one file per event under `<daemon dir>/events/` named by a counter that only grows,
// and every event published meanwhile is written there too before it is queued. Delivery is tried again
// 1, 2, 3, 4 and then every 5 s for as long as it takes; each event's file is removed once containerd has
// it, and the directory once the queue is empty. A daemon that starts finds what an earlier one left there
// and sends it first. Bound: EVENTS_KEPT events (all of them on disk by then); past it the oldest is
// dropped and logged. An event containerd answers with an error (it was reached but refused the event) is
// tried MAX_TRIES times and then dropped, as runc-v2 does. runc-v2, by contrast, drops every event after
// about 15 s of containerd being down.
//
// Events queued in memory and not yet failed are not on disk: a daemon that dies while containerd is up
// loses at most those few, which containerd gets nowhere else either (exits are still answered by Wait,
// from the records).
import fs from 'node:fs';
import path from 'node:path';
import { TtrpcClient } from '../ttrpc/client.js';
import { Code, StatusError } from '../ttrpc/codes.js';
import { containerd } from '../gen/proto.js';
import { toTimestamp } from './time.js';
import { faultHeld } from './fault.js';
import type { Logger } from './log.js';

const SERVICE = 'containerd.services.events.ttrpc.v1.Events';
const TRY_TIMEOUT_MS = 5000;
/** Tries of an event that containerd refuses (it answered with an error status). */
const MAX_TRIES = 6;
export const EVENTS_KEPT = 16384;
const FILE = /^(\d{16})\.event$/;

/** Event messages by topic; the Any type URL is the bare proto name, as containerd 1.6 requires. */
export const TOPICS = {
  '/tasks/create': 'containerd.events.TaskCreate',
  '/tasks/start': 'containerd.events.TaskStart',
  '/tasks/exit': 'containerd.events.TaskExit',
  '/tasks/delete': 'containerd.events.TaskDelete',
  '/tasks/exec-added': 'containerd.events.TaskExecAdded',
  '/tasks/exec-started': 'containerd.events.TaskExecStarted',
  '/tasks/paused': 'containerd.events.TaskPaused',
  '/tasks/resumed': 'containerd.events.TaskResumed',
  '/tasks/oom': 'containerd.events.TaskOOM',
} as const;
export type Topic = keyof typeof TOPICS;

interface Queued {
  namespace: string;
  topic: string;
  /** The encoded ForwardRequest: what is sent, and what its file holds. */
  request: Uint8Array;
  /** Refusals by containerd so far. */
  refused: number;
  /** Its file under the events directory, once written there. */
  file: string | null;
}

/** Whether a failed Forward means containerd was not reached (kept), rather than that it refused. */
const unreachable = (e: unknown): boolean =>
  !(e instanceof StatusError) || e.code === Code.Unavailable || e.code === Code.DeadlineExceeded;

export class EventPublisher {
  private queue: Queued[] = [];
  private client: TtrpcClient | null = null;
  private running = false;
  /** containerd was unreachable at the last try: events go to disk as they are published. */
  private spilling = false;
  private nextFile = 1;
  private idle: Array<() => void> = [];
  private closed = false;
  /** The pause before the next try, cut short by close(). */
  private pause: { timer: NodeJS.Timeout; wake: () => void } | null = null;
  readonly stats = { queued: 0, sent: 0, failed: 0, kept: 0 };

  /** dir: where events wait while containerd is unreachable; null keeps them in memory only. */
  constructor(private readonly address: string, private readonly log: Logger, private readonly dir: string | null = null) {
    this.load();
  }

  /** Events not yet delivered (in memory or on disk). */
  get pending(): number { return this.queue.length; }

  publish(namespace: string, topic: Topic, value: Uint8Array): void {
    const request = containerd.services.events.ttrpc.v1.ForwardRequest.encode({
      envelope: { timestamp: toTimestamp(new Date()), namespace, topic, event: { typeUrl: TOPICS[topic], value } },
    }).finish();
    if (this.queue.length >= EVENTS_KEPT) {
      const dropped = this.queue.shift()!;
      this.remove(dropped);
      this.stats.failed++;
      this.log.error({ topic: dropped.topic, kept: EVENTS_KEPT }, 'event queue full: dropping the oldest event');
    }
    const e: Queued = { namespace, topic, request, refused: 0, file: null };
    if (this.spilling) this.keep(e);
    this.queue.push(e);
    this.stats.queued++;
    if (!this.running && !this.closed) void this.drain();
  }

  /** Resolves once the queue is empty (or after timeoutMs). */
  flush(timeoutMs: number): Promise<void> {
    if (!this.running && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(resolve, timeoutMs);
      this.idle.push(() => { clearTimeout(t); resolve(); });
    });
  }

  /** What an earlier daemon left on disk, oldest first, ahead of anything this one publishes. */
  private load(): void {
    if (!this.dir) return;
    let names: string[];
    try {
      names = fs.readdirSync(this.dir).filter((n) => FILE.test(n)).sort();
    } catch {
      return;
    }
    for (const name of names) {
      const file = path.join(this.dir, name);
      this.nextFile = Math.max(this.nextFile, Number(FILE.exec(name)![1]) + 1);
      try {
        const request = fs.readFileSync(file);
        const env = containerd.services.events.ttrpc.v1.ForwardRequest.decode(request).envelope;
        this.queue.push({ namespace: env?.namespace ?? '', topic: env?.topic ?? '', request, refused: 0, file });
      } catch (err) {
        this.log.warn({ file, err: (err as Error).message }, 'dropping an unreadable kept event');
        fs.rmSync(file, { force: true });
      }
    }
    if (this.queue.length > 0) {
      this.spilling = true;
      this.log.info({ events: this.queue.length }, 'events kept by an earlier daemon: delivering them first');
      void this.drain();
    }
  }

  /** Writes the event to its file (a failure to write leaves it in memory only, and is logged). */
  private keep(e: Queued): void {
    if (!this.dir || e.file) return;
    const file = path.join(this.dir, `${String(this.nextFile++).padStart(16, '0')}.event`);
    try {
      fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      fs.writeFileSync(file, e.request, { mode: 0o600 });
      e.file = file;
      this.stats.kept++;
    } catch (err) {
      this.log.warn({ topic: e.topic, err: (err as Error).message }, 'cannot keep an event on disk');
    }
  }

  /** Takes e out of the queue (the head, unless a full queue dropped it while it was being sent). */
  private unqueue(e: Queued): void {
    const i = this.queue.indexOf(e);
    if (i >= 0) this.queue.splice(i, 1);
  }

  private remove(e: Queued): void {
    if (e.file) fs.rmSync(e.file, { force: true });
    e.file = null;
  }

  private async connection(): Promise<TtrpcClient> {
    if (this.client && !this.client.closed) return this.client;
    this.client = await TtrpcClient.connect(this.address, { timeoutMs: TRY_TIMEOUT_MS });
    return this.client;
  }

  private async send(e: Queued): Promise<void> {
    if (faultHeld('events-unreachable')) throw new StatusError(Code.Unavailable, 'containerd held unreachable by TSRT_TEST_FAULT');
    const client = await this.connection();
    await client.call(SERVICE, 'Forward', e.request, {
      timeoutMs: TRY_TIMEOUT_MS,
      metadata: { 'containerd-namespace-ttrpc': e.namespace },
    });
  }

  private async drain(): Promise<void> {
    this.running = true;
    let failures = 0;
    while (this.queue.length > 0 && !this.closed) {
      const e = this.queue[0]!;
      try {
        await this.send(e);
        this.unqueue(e);
        this.remove(e);
        this.stats.sent++;
        if (failures > 0) this.log.info({ after: failures }, 'containerd reachable again: delivering kept events');
        failures = 0;
      } catch (err) {
        if (this.client?.closed) this.client = null;
        if (!unreachable(err) && ++e.refused >= MAX_TRIES) {
          this.unqueue(e);
          this.remove(e);
          this.stats.failed++;
          this.log.error({ topic: e.topic, err: (err as Error).message }, 'dropping an event containerd refused repeatedly');
          continue;
        }
        if (unreachable(err) && !this.spilling) {
          this.spilling = true;
          this.log.warn({ err: (err as Error).message, events: this.queue.length }, 'containerd unreachable: keeping events on disk until it is back');
          for (const q of this.queue) this.keep(q);
        }
        failures++;
        await new Promise<void>((wake) => {
          this.pause = { timer: setTimeout(wake, Math.min(failures, 5) * 1000), wake };
        });
        this.pause = null;
      }
    }
    this.running = false;
    if (this.spilling && this.queue.length === 0) {
      this.spilling = false;
      if (this.dir) {
        try {
          fs.rmdirSync(this.dir);
        } catch { /* not there, or not empty */ }
      }
    }
    const w = this.idle;
    this.idle = [];
    for (const f of w) f();
  }

  /** Stops sending (what is on disk stays there) and closes the connection. */
  close(): void {
    this.closed = true;
    if (this.pause) {
      clearTimeout(this.pause.timer);
      this.pause.wake();
    }
    this.client?.close();
    this.client = null;
  }
}
