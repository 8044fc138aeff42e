// Publishes task events to containerd (Events/Forward on $TTRPC_ADDRESS). One queue, one sender: events
// reach containerd in the order they were produced. While containerd is down the queue keeps them and
// retries (1 s, 2 s, … 5 s apart); an event that still fails after MAX_TRIES is dropped and logged, as
// runc-v2 does.
import { TtrpcClient } from '../ttrpc/client.js';
import { containerd } from '../gen/proto.js';
import { toTimestamp } from './time.js';
import type { Logger } from './log.js';

const SERVICE = 'containerd.services.events.ttrpc.v1.Events';
const TRY_TIMEOUT_MS = 5000;
const MAX_TRIES = 6;
const MAX_QUEUE = 4096;

interface Queued { namespace: string; topic: string; typeUrl: string; value: Uint8Array; at: Date; tries: number }

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

export class EventPublisher {
  private queue: Queued[] = [];
  private client: TtrpcClient | null = null;
  private running = false;
  private idle: Array<() => void> = [];
  readonly stats = { queued: 0, sent: 0, failed: 0 };

  constructor(private readonly address: string, private readonly log: Logger) {}

  publish(namespace: string, topic: Topic, value: Uint8Array): void {
    if (this.queue.length >= MAX_QUEUE) {
      const dropped = this.queue.shift()!;
      this.stats.failed++;
      this.log.warn({ topic: dropped.topic }, 'event queue full, dropping the oldest event');
    }
    this.queue.push({ namespace, topic, typeUrl: TOPICS[topic], value, at: new Date(), tries: 0 });
    this.stats.queued++;
    if (!this.running) void this.drain();
  }

  /** Resolves once the queue is empty (or after timeoutMs). */
  flush(timeoutMs: number): Promise<void> {
    if (!this.running && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(resolve, timeoutMs);
      this.idle.push(() => { clearTimeout(t); resolve(); });
    });
  }

  private async connection(): Promise<TtrpcClient> {
    if (this.client && !this.client.closed) return this.client;
    this.client = await TtrpcClient.connect(this.address, { timeoutMs: TRY_TIMEOUT_MS });
    return this.client;
  }

  private async send(e: Queued): Promise<void> {
    const req = containerd.services.events.ttrpc.v1.ForwardRequest.encode({
      envelope: {
        timestamp: toTimestamp(e.at),
        namespace: e.namespace,
        topic: e.topic,
        event: { typeUrl: e.typeUrl, value: e.value },
      },
    }).finish();
    const client = await this.connection();
    await client.call(SERVICE, 'Forward', req, {
      timeoutMs: TRY_TIMEOUT_MS,
      metadata: { 'containerd-namespace-ttrpc': e.namespace },
    });
  }

  private async drain(): Promise<void> {
    this.running = true;
    while (this.queue.length > 0) {
      const e = this.queue[0]!;
      try {
        await this.send(e);
        this.queue.shift();
        this.stats.sent++;
      } catch (err) {
        e.tries++;
        if (this.client?.closed) this.client = null;
        if (e.tries >= MAX_TRIES) {
          this.queue.shift();
          this.stats.failed++;
          this.log.error({ topic: e.topic, err: (err as Error).message }, 'dropping event after repeated failures');
          continue;
        }
        await new Promise((r) => setTimeout(r, Math.min(e.tries, 5) * 1000));
      }
    }
    this.running = false;
    const w = this.idle;
    this.idle = [];
    for (const f of w) f();
  }

  close(): void {
    this.client?.close();
    this.client = null;
  }
}
