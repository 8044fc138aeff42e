// A very small client for containerd's public gRPC Tasks API
// (service containerd.services.tasks.v1.Tasks, api/services/tasks/v1/tasks.proto in containerd 1.6).
// ctr 1.6 has no `task update`, so tests that need Update go through here, and so do tests that need
// stdio FIFOs of their own (ctr opens and closes its own). Messages are encoded by
// hand with protobufjs's Writer/Reader: only the handful of fields the tests use.

import { Client, Metadata, credentials, status as grpcStatus } from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { unaryBytes } from './grpc-bytes.js';

const { Writer, Reader } = protobuf;

const SERVICE = '/containerd.services.tasks.v1.Tasks';
export const LINUX_RESOURCES_TYPE_URL = 'types.containerd.io/opencontainers/runtime-spec/1/LinuxResources';
export const PROCESS_TYPE_URL = 'types.containerd.io/opencontainers/runtime-spec/1/Process';

/** A failed call: `code` is the gRPC status code (grpc-js `status` enum), `details` containerd's message. */
export class TasksError extends Error {
  constructor(
    readonly method: string,
    readonly code: number,
    readonly details: string,
  ) {
    super(`${method}: ${grpcStatus[code] ?? code}: ${details}`);
    this.name = 'TasksError';
  }
  /** the code's name, e.g. 'NOT_FOUND' */
  get codeName(): string {
    return grpcStatus[this.code] ?? String(this.code);
  }
}

// --- protobuf helpers (wire types: 0 varint, 2 length-delimited) --------------------------------

type W = protobuf.Writer;

function str(w: W, field: number, v: string | undefined): void {
  if (v) w.uint32((field << 3) | 2).string(v);
}

function bytes(w: W, field: number, v: Uint8Array): void {
  w.uint32((field << 3) | 2).bytes(v);
}

function anyMsg(typeUrl: string, value: Uint8Array): Uint8Array {
  const w = Writer.create();
  str(w, 1, typeUrl);
  bytes(w, 2, value);
  return w.finish();
}

function stringMap(w: W, field: number, m: Record<string, string> | undefined): void {
  for (const [k, v] of Object.entries(m ?? {})) {
    const e = Writer.create();
    str(e, 1, k);
    str(e, 2, v);
    bytes(w, field, e.finish());
  }
}

/** Field number → raw value of a decoded message (last occurrence wins; enough for the tests). */
function decodeFields(buf: Uint8Array): Map<number, number | Uint8Array> {
  const r = Reader.create(buf);
  const out = new Map<number, number | Uint8Array>();
  while (r.pos < r.len) {
    const tag = r.uint32();
    const field = tag >>> 3;
    switch (tag & 7) {
      case 0: {
        const v = r.uint64() as unknown as number | { toNumber(): number };
        out.set(field, typeof v === 'number' ? v : v.toNumber());
        break;
      }
      case 2:
        out.set(field, r.bytes());
        break;
      default:
        r.skipType(tag & 7);
    }
  }
  return out;
}

/** The request most Tasks calls take: container_id = 1, exec_id = 2. */
function processRef(containerId: string, execId?: string): Uint8Array {
  const w = Writer.create();
  str(w, 1, containerId);
  str(w, 2, execId);
  return w.finish();
}

/** Field 1 of a reply as a number (StartResponse.pid, WaitResponse.exit_status); 0 when absent. */
function firstNumber(reply: Uint8Array): number {
  const v = decodeFields(reply).get(1);
  return typeof v === 'number' ? v : 0;
}

// --- the client ------------------------------------------------------------------------------------

export interface TasksClientOptions {
  /** containerd's gRPC socket path (a plain path or unix://path) */
  address: string;
  namespace: string;
  /** per-call deadline (default 30 s) */
  timeoutMs?: number;
}

export class TasksClient {
  private readonly client: Client;
  private readonly namespace: string;
  private readonly timeoutMs: number;

  constructor(opts: TasksClientOptions) {
    const target = opts.address.startsWith('unix:') ? opts.address : `unix://${opts.address}`;
    this.client = new Client(target, credentials.createInsecure(), {
      // containerd's default limit is 16 MiB; the tests send tiny messages anyway
      'grpc.max_receive_message_length': 16 << 20,
    });
    this.namespace = opts.namespace;
    this.timeoutMs = opts.timeoutMs ?? 30_000;
  }

  /** One unary call with pre-encoded request bytes; resolves with the raw response bytes. */
  call(method: string, request: Uint8Array): Promise<Uint8Array> {
    const md = new Metadata();
    md.set('containerd-namespace', this.namespace);
    return unaryBytes(this.client, `${SERVICE}/${method}`, request, md, this.timeoutMs,
      (err) => new TasksError(method, err.code, err.details || err.message));
  }

  /**
   * Tasks.Update: new resources for a task. `resources` is the OCI LinuxResources object; it is sent
   * as JSON in an Any, as containerd's client does (typeurl of specs.LinuxResources).
   */
  async update(containerId: string, resources: object, annotations?: Record<string, string>): Promise<void> {
    const w = Writer.create();
    str(w, 1, containerId);
    bytes(w, 2, anyMsg(LINUX_RESOURCES_TYPE_URL, Buffer.from(JSON.stringify(resources))));
    stringMap(w, 3, annotations);
    await this.call('Update', w.finish());
  }

  /** Tasks.Get: status (containerd.v1.types.Status number), pid and exit status of a task or exec. */
  async get(containerId: string, execId?: string): Promise<{ pid: number; status: number; exitStatus: number }> {
    const res = decodeFields(await this.call('Get', processRef(containerId, execId)));
    const proc = res.get(1);
    const f = proc instanceof Uint8Array ? decodeFields(proc) : new Map<number, number | Uint8Array>();
    const num = (n: number) => {
      const v = f.get(n);
      return typeof v === 'number' ? v : 0;
    };
    return { pid: num(3), status: num(4), exitStatus: num(9) };
  }

  /**
   * Tasks.Exec: add a process to a running task. `spec` is the OCI Process object (JSON in an Any, as
   * containerd's client sends it); stdin/stdout/stderr name FIFOs the shim opens ('' for none).
   */
  async exec(containerId: string, execId: string, spec: object,
    io: { stdin?: string; stdout?: string; stderr?: string; terminal?: boolean }): Promise<void> {
    const w = Writer.create();
    str(w, 1, containerId);
    str(w, 2, io.stdin);
    str(w, 3, io.stdout);
    str(w, 4, io.stderr);
    if (io.terminal) w.uint32(5 << 3).bool(true);
    bytes(w, 6, anyMsg(PROCESS_TYPE_URL, Buffer.from(JSON.stringify(spec))));
    str(w, 7, execId);
    await this.call('Exec', w.finish());
  }

  /** Tasks.Start of a task or one of its execs; resolves with its pid. */
  async start(containerId: string, execId?: string): Promise<number> {
    return firstNumber(await this.call('Start', processRef(containerId, execId)));
  }

  /** Tasks.Wait: resolves with the exit status once the task or exec has exited. */
  async wait(containerId: string, execId?: string): Promise<number> {
    return firstNumber(await this.call('Wait', processRef(containerId, execId)));
  }

  /** Tasks.DeleteProcess: remove an exec that has exited. */
  async deleteProcess(containerId: string, execId: string): Promise<void> {
    await this.call('DeleteProcess', processRef(containerId, execId));
  }

  /**
   * Tasks.Metrics: containerd calls the shim's Stats for every task matching one of `filters` (ORed,
   * e.g. `id==ctr1`; none: every task of the namespace). Returns how many Metric entries came back.
   */
  async metrics(filters: string[]): Promise<number> {
    const w = Writer.create();
    for (const f of filters) w.uint32((1 << 3) | 2).string(f);
    const r = Reader.create(await this.call('Metrics', w.finish()));
    let count = 0;
    while (r.pos < r.len) {
      const tag = r.uint32();
      if (tag === ((1 << 3) | 2)) count++;
      r.skipType(tag & 7);
    }
    return count;
  }

  close(): void {
    this.client.close();
  }
}

/** Convenience: a client for a harness Containerd (anything with `address` and `ns`). */
export function tasksClientFor(c: { address: string; ns: string }, namespace?: string): TasksClient {
  return new TasksClient({ address: c.address, namespace: namespace ?? c.ns });
}

export { grpcStatus };
