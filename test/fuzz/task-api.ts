// Fuzzing of the Task API as containerd reaches it: ttrpc frames written to a shim's socket (the monitor,
// which relays them to the daemon). Inputs are seeds (every Task request, shaped as containerd sends them,
// with the real ids and paths of the containers under test) mutated at three levels, plus generated ones:
//   - the Task request's protobuf (field values, lengths, unknown and repeated fields, random bytes);
//   - the ttrpc Request around it (service, method, timeout, metadata such as the namespace);
//   - the ttrpc frame header (length, stream id, type, flags), each on a connection of its own, as such an
//     input may leave the peer waiting for bytes that never come or make it drop the connection.
// A deterministic PRNG makes a run repeatable from its seed.
import net from 'node:net';
import path from 'node:path';
import { containerd, ttrpc } from '../../src/gen/proto.js';
import { encodeFrame, encodeHeader, HEADER_LENGTH } from '../../src/ttrpc/frame.js';

const task = containerd.task.v2;
export const TASK_V2 = 'containerd.task.v2.Task';
const TASK_V3 = 'containerd.task.v3.Task';

/** mulberry32: small, fast, good enough to spread mutations; the same seed gives the same run. */
export class Rng {
  private s: number;
  constructor(seed: number) { this.s = seed >>> 0; }
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number { return Math.floor(this.next() * n); }
  pick<T>(a: readonly T[]): T { return a[this.int(a.length)]!; }
  chance(p: number): boolean { return this.next() < p; }
  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
}

/** What the seeds are made of: the containers under test, as containerd knows them. */
export interface Target {
  namespace: string;
  containers: Array<{ id: string; bundle: string; pid: number }>;
  /** a scratch directory: FIFO paths and bundles under it need not exist */
  scratch: string;
}

export interface Seed { method: string; payload: Uint8Array }

const enc = (b: { finish(): Uint8Array }): Uint8Array => b.finish();

/** One request of every Task method, per container, as containerd would send them. */
export function seeds(t: Target): Seed[] {
  const out: Seed[] = [];
  const procSpec = (args: string[]) => ({
    typeUrl: 'types.containerd.io/opencontainers/runtime-spec/1/Process',
    value: Buffer.from(JSON.stringify({ args, cwd: '/', env: ['PATH=/bin:/usr/bin'], user: { uid: 0, gid: 0 }, terminal: false })),
  });
  for (const c of t.containers) {
    const id = c.id;
    const execId = 'fz1';
    out.push(
      { method: 'Create', payload: enc(task.CreateTaskRequest.encode({
        id: `${id}-new`, bundle: `${t.scratch}/bundle-${id}`, stdout: `${t.scratch}/out`, stderr: `${t.scratch}/err`,
        rootfs: [{ type: 'overlay', source: 'overlay', options: [`lowerdir=${t.scratch}/l`, `upperdir=${t.scratch}/u`, `workdir=${t.scratch}/w`] }],
        options: { typeUrl: 'runtimeoptions.v1.Options', value: Buffer.from([0x12, 4, 0x2f, 0x6e, 0x6f, 0x78]) },
      })) },
      { method: 'Create', payload: enc(task.CreateTaskRequest.encode({ id, bundle: `${t.scratch}/bundle-${id}` })) },
      { method: 'State', payload: enc(task.StateRequest.encode({ id })) },
      { method: 'State', payload: enc(task.StateRequest.encode({ id, execId })) },
      { method: 'Pids', payload: enc(task.PidsRequest.encode({ id })) },
      { method: 'Stats', payload: enc(task.StatsRequest.encode({ id })) },
      { method: 'Connect', payload: enc(task.ConnectRequest.encode({ id })) },
      { method: 'Exec', payload: enc(task.ExecProcessRequest.encode({ id, execId, stdout: '', stderr: '', spec: procSpec(['true']) })) },
      { method: 'Start', payload: enc(task.StartRequest.encode({ id, execId })) },
      { method: 'Wait', payload: enc(task.WaitRequest.encode({ id, execId })) },
      { method: 'Delete', payload: enc(task.DeleteRequest.encode({ id, execId })) },
      { method: 'Kill', payload: enc(task.KillRequest.encode({ id, execId, signal: 0 })) },
      { method: 'Kill', payload: enc(task.KillRequest.encode({ id, signal: 28, all: true })) }, // SIGWINCH: harmless
      { method: 'ResizePty', payload: enc(task.ResizePtyRequest.encode({ id, execId, width: 80, height: 24 })) },
      { method: 'CloseIO', payload: enc(task.CloseIORequest.encode({ id, execId, stdin: true })) },
      { method: 'Update', payload: enc(task.UpdateTaskRequest.encode({
        id, resources: { typeUrl: 'types.containerd.io/opencontainers/runtime-spec/1/LinuxResources', value: Buffer.from('{"cpu":{"shares":512}}') },
      })) },
      { method: 'Checkpoint', payload: enc(task.CheckpointTaskRequest.encode({ id, path: `${t.scratch}/ckpt` })) },
      { method: 'Pause', payload: enc(task.PauseRequest.encode({ id })) },
      { method: 'Resume', payload: enc(task.ResumeRequest.encode({ id })) },
      { method: 'Shutdown', payload: enc(task.ShutdownRequest.encode({ id })) },
    );
  }
  return out;
}

/** The Task API's methods, which a mutated Request may name instead of its own. */
const METHODS = ['Create', 'Start', 'State', 'Wait', 'Kill', 'Delete', 'Exec', 'Pids', 'Pause', 'Resume', 'Update',
  'ResizePty', 'CloseIO', 'Connect', 'Shutdown', 'Stats', 'Checkpoint'];

const INTERESTING_INTS = [0, 1, 2, 9, 15, 19, 64, 127, 128, 255, 256, 0x7fff, 0xffff, 0x7fffffff, 0x80000000, 0xffffffff, 2 ** 53 - 1];
const INTERESTING_STRINGS = ['', '.', '..', '../..', '/', '../../../etc', 'a/b', 'x\0y', 'é', '\u{1F600}', ' ', '-', '--help',
  '/proc/self/fd/0', '/dev/null', 'a'.repeat(77), 'a'.repeat(4096)];

function varint(n: bigint): Buffer {
  const out: number[] = [];
  let v = BigInt.asUintN(64, n);
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) b |= 0x80;
    out.push(b);
  } while (v > 0n);
  return Buffer.from(out);
}

interface Field { tag: number; wire: number; raw: Buffer; value?: Buffer }

/** The top-level fields of a protobuf message, or null when the bytes are not one. */
function fields(b: Buffer): Field[] | null {
  const out: Field[] = [];
  let i = 0;
  const readVarint = (): bigint | null => {
    let v = 0n;
    for (let shift = 0n; shift < 70n; shift += 7n) {
      if (i >= b.length) return null;
      const byte = b[i++]!;
      v |= BigInt(byte & 0x7f) << shift;
      if (!(byte & 0x80)) return v;
    }
    return null;
  };
  while (i < b.length) {
    const start = i;
    const key = readVarint();
    if (key === null) return null;
    const wire = Number(key & 7n);
    const tag = Number(key >> 3n);
    let value: Buffer | undefined;
    if (wire === 0) { if (readVarint() === null) return null; }
    else if (wire === 1) { i += 8; }
    else if (wire === 5) { i += 4; }
    else if (wire === 2) {
      const n = readVarint();
      if (n === null || i + Number(n) > b.length) return null;
      value = b.subarray(i, i + Number(n));
      i += Number(n);
    } else return null;
    if (i > b.length) return null;
    out.push({ tag, wire, raw: b.subarray(start, i), value });
  }
  return out;
}

const key = (tag: number, wire: number): Buffer => varint(BigInt((tag << 3) | wire));
const lenField = (tag: number, v: Buffer): Buffer => Buffer.concat([key(tag, 2), varint(BigInt(v.length)), v]);

/** A random protobuf message: fields 1–20 of every wire type, values from the interesting lists. */
function generateMessage(r: Rng, depth = 0): Buffer {
  const parts: Buffer[] = [];
  const n = r.int(6);
  for (let k = 0; k < n; k++) {
    const tag = 1 + r.int(20);
    switch (r.int(4)) {
      case 0: parts.push(key(tag, 0), varint(BigInt(r.chance(0.5) ? r.pick(INTERESTING_INTS) : -1 - r.int(1000)))); break;
      case 1: parts.push(lenField(tag, Buffer.from(r.pick(INTERESTING_STRINGS)))); break;
      case 2: parts.push(lenField(tag, depth < 2 ? generateMessage(r, depth + 1) : r.bytes(r.int(16)))); break;
      default: parts.push(key(tag, r.chance(0.5) ? 1 : 5), r.bytes(8).subarray(0, 8)); break;
    }
  }
  return Buffer.concat(parts);
}

/** One mutation of a protobuf message, field-aware where the bytes parse. */
export function mutateMessage(r: Rng, input: Uint8Array, pool: readonly Seed[]): Buffer {
  const b = Buffer.from(input);
  const fs = fields(b);
  const choice = r.int(fs && fs.length > 0 ? 12 : 6);
  switch (choice) {
    case 0: { // flip bits
      const out = Buffer.from(b);
      for (let k = 0, n = 1 + r.int(4); k < n && out.length > 0; k++) out[r.int(out.length)]! ^= 1 << r.int(8);
      return out;
    }
    case 1: { // interesting byte
      const out = Buffer.from(b);
      if (out.length > 0) out[r.int(out.length)] = r.pick([0, 0x7f, 0x80, 0xff]);
      return out;
    }
    case 2: { // insert random bytes
      const at = r.int(b.length + 1);
      return Buffer.concat([b.subarray(0, at), r.bytes(1 + r.int(32)), b.subarray(at)]);
    }
    case 3: { // delete a range
      const at = r.int(b.length + 1);
      return Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + 1 + r.int(16)))]);
    }
    case 4: // truncate
      return b.subarray(0, r.int(b.length + 1));
    case 5: { // splice with another seed
      const o = Buffer.from(r.pick(pool).payload);
      return Buffer.concat([b.subarray(0, r.int(b.length + 1)), o.subarray(r.int(o.length + 1))]);
    }
  }
  const list = fs!;
  const f = r.pick(list);
  const others = list.filter((x) => x !== f).map((x) => x.raw);
  switch (choice) {
    case 6: // a string/bytes field gets an interesting value
      return Buffer.concat([...others, lenField(f.tag, Buffer.from(r.pick(INTERESTING_STRINGS)))]);
    case 7: // a field as a varint with an interesting value
      return Buffer.concat([...others, key(f.tag, 0), varint(BigInt(r.pick(INTERESTING_INTS)) * (r.chance(0.2) ? -1n : 1n))]);
    case 8: // drop a field
      return Buffer.concat(others);
    case 9: // repeat a field
      return Buffer.concat([b, f.raw]);
    case 10: // an unknown field
      return Buffer.concat([b, lenField(100 + r.int(1000), r.bytes(r.int(64)))]);
    default: // mutate inside a nested message
      if (f.value && f.value.length > 0) return Buffer.concat([...others, lenField(f.tag, mutateMessage(r, f.value, pool))]);
      return Buffer.concat([b, generateMessage(r)]);
  }
}

export interface Input {
  /** the bytes to write */
  bytes: Buffer;
  /** the frame header itself was mutated: it goes on a connection of its own */
  own: boolean;
}

/**
 * One input: a seed request, mutated (or a generated one), in a ttrpc Request, in a frame with streamId.
 * namespace is containerd's namespace of the seeds.
 */
export function makeInput(r: Rng, pool: readonly Seed[], namespace: string, streamId: number): Input {
  const seed = r.pick(pool);
  let method = seed.method;
  let payload: Buffer;
  const roll = r.next();
  if (roll < 0.1) payload = Buffer.from(seed.payload); // the seed itself, as containerd sends it
  else if (roll < 0.2) payload = generateMessage(r);
  else {
    payload = mutateMessage(r, seed.payload, pool);
    if (r.chance(0.3)) payload = mutateMessage(r, payload, pool);
  }
  let service = TASK_V2;
  const metadata: Array<{ key: string; value: string }> = [{ key: 'containerd-namespace-ttrpc', value: namespace }];
  let timeoutNano = 0;
  const req = r.next();
  if (req < 0.05) service = r.pick([TASK_V3, 'containerd.task.v2.Tas', '', 'grpc.health.v1.Health', TASK_V2 + '\0']);
  else if (req < 0.1) method = r.pick([...METHODS, '', 'create', 'Create\0', 'x'.repeat(300)]);
  else if (req < 0.2) metadata[0]!.value = r.pick(INTERESTING_STRINGS);
  else if (req < 0.25) metadata.push({ key: r.pick(['containerd-namespace-ttrpc', 'x', '']), value: r.pick(INTERESTING_STRINGS) });
  else if (req < 0.3) metadata.length = 0;
  else if (req < 0.35) timeoutNano = r.pick([1, 1000, 2 ** 31, 2 ** 53 - 1]);
  let body: Buffer = Buffer.from(ttrpc.Request.encode({ service, method, payload, timeoutNano, metadata }).finish());
  if (r.chance(0.05)) body = mutateMessage(r, body, pool); // the Request itself
  if (r.chance(0.04)) {
    // the header: a wrong length (shorter or longer than the body), an even or zero stream id, another
    // type, unknown flags; alone on its connection
    const h = { length: body.length, streamId, type: 1, flags: 0 };
    switch (r.int(5)) {
      case 0: h.length = Math.max(0, body.length - 1 - r.int(8)); break;
      case 1: h.length = body.length + 1 + r.int(64); break;
      case 2: h.streamId = r.pick([0, 2, 0xffffffff]); break;
      case 3: h.type = r.pick([0, 2, 3, 4, 255]); break;
      default: h.flags = r.pick([0x01, 0x02, 0x04, 0xff]); break;
    }
    if (r.chance(0.2)) h.length = r.pick([4 << 20, (4 << 20) + 1, 0xffffffff]);
    return { bytes: Buffer.concat([encodeHeader(h), body]), own: true };
  }
  return { bytes: encodeFrame(streamId, 1, 0, body), own: false };
}

/** Counts what came back on a connection: every response frame, by stream id. */
export class ResponseReader {
  private buf = Buffer.alloc(0);
  readonly answered = new Set<number>();
  constructor(sock: net.Socket) {
    sock.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      while (this.buf.length >= HEADER_LENGTH) {
        const len = this.buf.readUInt32BE(0);
        if (this.buf.length < HEADER_LENGTH + len) break;
        this.answered.add(this.buf.readUInt32BE(4));
        this.buf = this.buf.subarray(HEADER_LENGTH + len);
      }
    });
  }
}

export interface FuzzStats {
  inputs: number;
  /** inputs whose frame header was mutated (each on a connection of its own) */
  ownConnection: number;
  /** responses read on the main connections */
  answered: number;
  /** main connections the shim closed (a malformed frame) and that were opened again */
  reconnects: number;
  /** liveness requests (a State of a container under test) that got no answer within 10 s */
  stalls: number;
}

const connect = (socket: string): Promise<net.Socket> => new Promise((resolve, reject) => {
  const s = net.connect(socket);
  s.once('connect', () => { s.off('error', reject); s.on('error', () => { /* 'close' follows */ }); resolve(s); });
  s.once('error', reject);
});

/**
 * Feeds `inputs` inputs made from `pool` to the shim listening on `socket`, pipelined on one connection as
 * containerd's are (a State of `ping` every 200 inputs must be answered, else the run counts a stall and
 * connects again), header-mutated ones each on a connection of its own.
 */
export async function fuzzShim(opts: {
  socket: string; pool: readonly Seed[]; namespace: string; ping: string; inputs: number; rng: Rng;
  /** containers the run must not delete (an input that would is replaced by another) */
  keep?: ReadonlySet<string>;
  /** their bundles, which no Create of another id may name */
  bundles?: ReadonlySet<string>;
}): Promise<FuzzStats> {
  const { rng } = opts;
  const stats: FuzzStats = { inputs: 0, ownConnection: 0, answered: 0, reconnects: 0, stalls: 0 };
  let sock: net.Socket | null = null;
  let reader: ResponseReader | null = null;
  let closed = true;
  let stream = 1;
  const open = async (): Promise<void> => {
    if (sock && !closed) return;
    if (sock) { stats.answered += reader!.answered.size; stats.reconnects++; }
    sock = await connect(opts.socket);
    closed = false;
    const mine = sock;
    mine.on('close', () => { if (sock === mine) closed = true; });
    reader = new ResponseReader(mine);
    stream = 1;
  };
  const write = async (b: Buffer): Promise<void> => {
    await open();
    if (!sock!.write(b)) {
      await new Promise<void>((resolve) => {
        const done = (): void => { sock!.off('drain', done); sock!.off('close', done); resolve(); };
        sock!.on('drain', done);
        sock!.on('close', done);
      });
    }
  };
  const own: Promise<void>[] = [];
  const alone = async (b: Buffer): Promise<void> => {
    const s = await connect(opts.socket);
    s.write(b);
    await new Promise((r) => setTimeout(r, 100));
    s.destroy();
  };
  const ping = async (): Promise<void> => {
    await open();
    const id = stream;
    stream += 2;
    const body = ttrpc.Request.encode({
      service: TASK_V2, method: 'State', payload: task.StateRequest.encode({ id: opts.ping }).finish(),
      metadata: [{ key: 'containerd-namespace-ttrpc', value: opts.namespace }],
    }).finish();
    await write(encodeFrame(id, 1, 0, body));
    const r = reader!;
    const end = Date.now() + 10_000;
    while (!r.answered.has(id)) {
      if (closed) return; // the shim closed it over an earlier input: counted as a reconnect
      if (Date.now() > end) {
        stats.stalls++;
        sock!.destroy();
        return;
      }
      await new Promise((res) => setTimeout(res, 2));
    }
  };
  for (let i = 0; i < opts.inputs; i++) {
    let input = makeInput(rng, opts.pool, opts.namespace, stream);
    while (opts.keep && excluded(input.bytes, opts.keep, opts.bundles)) input = makeInput(rng, opts.pool, opts.namespace, stream);
    stats.inputs++;
    if (input.own) {
      stats.ownConnection++;
      own.push(alone(input.bytes).catch(() => undefined));
      if (own.length >= 16) await Promise.all(own.splice(0));
      continue;
    }
    stream += 2;
    await write(input.bytes);
    if (i % 200 === 199) await ping();
  }
  await Promise.all(own);
  await ping();
  if (reader) stats.answered += (reader as ResponseReader).answered.size;
  (sock as net.Socket | null)?.destroy();
  return stats;
}

/**
 * The two inputs a run leaves out, decoded as the daemon decodes them: a Delete of the init of one of
 * `keep` (it would take the container, and with the last one its shim, away for the rest of the run), and
 * a Create on one of their bundles (a second container on a running one's rootfs and cgroup, in the other
 * shim or under another id, which containerd never asks for, and whose removal takes the first one's
 * processes with it; a Create of a running container's id, AlreadyExists, is a unit test's).
 */
function excluded(frame: Buffer, keep: ReadonlySet<string>, bundles: ReadonlySet<string> = new Set()): boolean {
  try {
    const req = ttrpc.Request.decode(frame.subarray(HEADER_LENGTH));
    const payload = req.payload ?? new Uint8Array(0);
    if (req.method === 'Delete') {
      const d = task.DeleteRequest.decode(payload);
      return keep.has(d.id ?? '') && !d.execId;
    }
    if (req.method === 'Create') {
      const c = task.CreateTaskRequest.decode(payload);
      return path.isAbsolute(c.bundle ?? '') && bundles.has(path.resolve(c.bundle!));
    }
    return false;
  } catch {
    return false;
  }
}
