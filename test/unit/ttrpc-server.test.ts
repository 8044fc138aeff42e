import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ttrpc } from '../../src/gen/proto.js';
import { Code, StatusError } from '../../src/ttrpc/codes.js';
import { FrameReader, MessageType, Flags, encodeFrame, encodeHeader, MAX_MESSAGE_LENGTH, type Frame } from '../../src/ttrpc/frame.js';
import { TtrpcServer, unary, type Handler, type RequestContext, type RequestObserver } from '../../src/ttrpc/server.js';
import { TtrpcClient } from '../../src/ttrpc/client.js';
import { int64ToNumber } from '../../src/ttrpc/proto-helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'tsrt-ttrpc-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let sockSeq = 0;

const SERVICE = 'tsrt.test.v1.Echo';
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array): string => new TextDecoder().decode(b);

class NotFoundError extends StatusError {
  constructor(message: string) {
    super(Code.NotFound, message);
  }
}

interface Harness {
  path: string;
  server: TtrpcServer;
  listener: net.Server;
  logs: Array<{ level: string; msg: string }>;
  contexts: RequestContext[];
  /** methods whose handler has started, in order */
  started: string[];
  stop(): Promise<void>;
}

/**
 * Poll until cond() holds (10 s at most). Client and server share this process, but under load the
 * server can see a request many milliseconds after the client sent it: tests wait for what they need
 * (a handler running, an abort seen) instead of sleeping a fixed time.
 */
async function until(what: string, cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

async function start(extra?: Record<string, Handler>, onRequest?: RequestObserver): Promise<Harness> {
  const path = join(dir, `s${++sockSeq}.sock`);
  const logs: Array<{ level: string; msg: string }> = [];
  const contexts: RequestContext[] = [];
  const started: string[] = [];
  const server = new TtrpcServer({ log: (level, msg) => logs.push({ level, msg }), onRequest });
  server.register(SERVICE, {
    Echo: async (payload, ctx) => {
      contexts.push(ctx);
      return payload;
    },
    Sleep: async (payload, ctx) => {
      started.push('Sleep');
      await sleep(Number(dec(payload)), undefined, { signal: ctx.signal });
      return payload;
    },
    SleepIgnoringSignal: async (payload) => {
      await sleep(Number(dec(payload)));
      return payload;
    },
    Fail: async (payload) => {
      const kind = dec(payload);
      switch (kind) {
        case 'status': throw new StatusError(Code.FailedPrecondition, 'wrong state');
        case 'subclass': throw new NotFoundError('container not created');
        case 'plain-object': throw { code: Code.AlreadyExists, message: 'exists' };
        case 'errno': throw Object.assign(new Error('ENOENT: no such file'), { code: 'ENOENT' });
        case 'bad-code': throw { code: 99, message: 'odd code' };
        case 'string': throw 'just a string';
        case 'sync': throw new Error('not even async');
        default: throw new Error(`boom ${kind}`);
      }
    },
    Sync: ((): Promise<Uint8Array> => {
      throw new StatusError(Code.PermissionDenied, 'thrown synchronously');
    }) as Handler,
    ...extra,
  });
  const listener = net.createServer((socket) => server.serveConnection(socket));
  await new Promise<void>((resolve) => listener.listen(path, resolve));
  return {
    path, server, listener, logs, contexts, started,
    async stop() {
      server.closeAll();
      await new Promise<void>((resolve) => listener.close(() => resolve()));
    },
  };
}

/** A bare socket that speaks frames, for protocol-level checks. */
class Raw {
  private readonly reader = new FrameReader();
  private readonly frames: Frame[] = [];
  private waiters: Array<() => void> = [];
  closed = false;

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      for (const r of this.reader.push(chunk)) if (r.kind === 'frame') this.frames.push(r);
      this.wake();
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
  }

  static connect(path: string): Promise<Raw> {
    return new Promise((resolve, reject) => {
      const s = net.createConnection({ path }, () => resolve(new Raw(s)));
      s.once('error', reject);
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  request(streamId: number, req: ttrpc.Request.$Properties, flags = 0): void {
    this.socket.write(encodeFrame(streamId, MessageType.Request, flags, ttrpc.Request.encode(req).finish()));
  }

  async next(n = 1, timeoutMs = 20_000): Promise<Frame[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.frames.length < n) {
      if (this.closed) throw new Error('raw connection closed');
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${n} frames (have ${this.frames.length})`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 50);
      });
    }
    return this.frames.splice(0, n);
  }

  close(): void {
    this.socket.destroy();
  }
}

function status(frame: Frame): { code: number; message: string } {
  assert.equal(frame.type, MessageType.Response);
  assert.equal(frame.flags, 0);
  const res = ttrpc.Response.decode(frame.payload);
  return { code: res.status?.code ?? 0, message: res.status?.message ?? '' };
}

async function rejection(p: Promise<unknown>): Promise<StatusError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof StatusError, `expected StatusError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected the call to fail');
}

test('round trip over a unix socket; success responses carry no status', async () => {
  const h = await start();
  const client = await TtrpcClient.connect(h.path);
  try {
    assert.equal(dec(await client.call(SERVICE, 'Echo', enc('ping'))), 'ping');
    assert.equal((await client.call(SERVICE, 'Echo', new Uint8Array(0))).length, 0);
    assert.equal(h.server.connections(), 1);
    assert.equal(h.contexts[0]?.service, SERVICE);
    assert.equal(h.contexts[0]?.method, 'Echo');
    assert.equal(h.contexts[0]?.deadline, undefined);

    const raw = await Raw.connect(h.path);
    raw.request(1, { service: SERVICE, method: 'Echo', payload: enc('x') });
    const [f] = await raw.next();
    assert.ok(f);
    assert.equal(f.streamId, 1);
    const res = ttrpc.Response.decode(f.payload);
    assert.equal(res.status, null);
    assert.equal(dec(res.payload), 'x');
    raw.close();
  } finally {
    client.close();
    await h.stop();
  }
});

test('concurrent calls complete out of order, matched by stream id', async () => {
  // Each Gate call is answered when the test opens its gate, so the order is the test's, not a timer's.
  const arrived = new Set<string>();
  const gates = new Map<string, () => void>();
  const h = await start({
    Gate: async (payload) => {
      const key = dec(payload);
      await new Promise<void>((resolve) => { gates.set(key, resolve); arrived.add(key); });
      return payload;
    },
  });
  const open = (key: string) => gates.get(key)!();
  const client = await TtrpcClient.connect(h.path);
  try {
    const order: string[] = [];
    const sent = ['d', 'b', 'c', 'a'];
    const calls = sent.map(async (key) => {
      const got = dec(await client.call(SERVICE, 'Gate', enc(key)));
      order.push(got);
      return got;
    });
    await until('all four calls at their handlers', () => sent.every((k) => arrived.has(k)));
    for (const [i, key] of ['a', 'b', 'c', 'd'].entries()) {
      open(key);
      await until(`the answer to ${key}`, () => order.length === i + 1);
    }
    assert.deepEqual(await Promise.all(calls), sent, 'each call got its own answer');
    assert.deepEqual(order, ['a', 'b', 'c', 'd']);

    // On the wire: responses leave in completion order, each with its request's stream id.
    const raw = await Raw.connect(h.path);
    raw.request(1, { service: SERVICE, method: 'Gate', payload: enc('x1') });
    raw.request(3, { service: SERVICE, method: 'Gate', payload: enc('x3') });
    raw.request(5, { service: SERVICE, method: 'Gate', payload: enc('x5') });
    await until('three raw requests at their handlers', () => ['x1', 'x3', 'x5'].every((k) => arrived.has(k)));
    const frames: Frame[] = [];
    for (const key of ['x5', 'x3', 'x1']) {
      open(key);
      frames.push(...(await raw.next(1)));
    }
    assert.deepEqual(frames.map((f) => f.streamId), [5, 3, 1]);
    assert.deepEqual(frames.map((f) => dec(ttrpc.Response.decode(f.payload).payload)), ['x5', 'x3', 'x1']);
    raw.close();
  } finally {
    client.close();
    await h.stop();
  }
});

test('unknown service and unknown method answer Unimplemented', async () => {
  const h = await start();
  const client = await TtrpcClient.connect(h.path);
  try {
    let e = await rejection(client.call('nope.v1.Svc', 'Echo', enc('')));
    assert.equal(e.code, Code.Unimplemented);
    assert.equal(e.message, 'service nope.v1.Svc');
    e = await rejection(client.call(SERVICE, 'Nope', enc('')));
    assert.equal(e.code, Code.Unimplemented);
    assert.equal(e.message, 'method Nope');
    // Names of Object.prototype members are not methods.
    e = await rejection(client.call(SERVICE, 'constructor', enc('')));
    assert.equal(e.code, Code.Unimplemented);
    e = await rejection(client.call(SERVICE, '__proto__', enc('')));
    assert.equal(e.code, Code.Unimplemented);
  } finally {
    client.close();
    await h.stop();
  }
});

test('handler errors map to status codes', async () => {
  const h = await start();
  const client = await TtrpcClient.connect(h.path);
  try {
    const cases: Array<[string, Code, string]> = [
      ['status', Code.FailedPrecondition, 'wrong state'],
      ['subclass', Code.NotFound, 'container not created'],
      ['plain-object', Code.AlreadyExists, 'exists'],
      ['errno', Code.Unknown, 'ENOENT: no such file'],
      ['bad-code', Code.Unknown, 'odd code'],
      ['string', Code.Unknown, 'just a string'],
      ['other', Code.Unknown, 'boom other'],
    ];
    for (const [kind, code, message] of cases) {
      const e = await rejection(client.call(SERVICE, 'Fail', enc(kind)));
      assert.equal(e.code, code, kind);
      assert.equal(e.message, message, kind);
    }
    const e = await rejection(client.call(SERVICE, 'Sync', enc('')));
    assert.equal(e.code, Code.PermissionDenied);
    assert.equal(e.message, 'thrown synchronously');
    // The connection is still fine afterwards.
    assert.equal(dec(await client.call(SERVICE, 'Echo', enc('ok'))), 'ok');
  } finally {
    client.close();
    await h.stop();
  }
});

test('status details travel to the client', async () => {
  const h = await start({
    Details: async () => {
      throw new StatusError(Code.Aborted, 'with details', { details: [{ typeUrl: 'x.y.Z', value: enc('d') }] });
    },
  });
  const client = await TtrpcClient.connect(h.path);
  try {
    const e = await rejection(client.call(SERVICE, 'Details', enc('')));
    assert.equal(e.code, Code.Aborted);
    assert.equal(e.details?.length, 1);
    assert.equal(e.details?.[0]?.typeUrl, 'x.y.Z');
    assert.equal(dec(e.details?.[0]?.value ?? new Uint8Array()), 'd');
  } finally {
    client.close();
    await h.stop();
  }
});

test('metadata: repeated keys become arrays', async () => {
  const h = await start();
  const client = await TtrpcClient.connect(h.path);
  try {
    await client.call(SERVICE, 'Echo', enc(''), {
      metadata: { 'containerd-namespace-ttrpc': 'k8s.io', multi: ['a', 'b'] },
    });
    const md = h.contexts[0]?.metadata;
    assert.ok(md);
    assert.deepEqual([...md.entries()], [['containerd-namespace-ttrpc', ['k8s.io']], ['multi', ['a', 'b']]]);

    const raw = await Raw.connect(h.path);
    raw.request(1, {
      service: SERVICE, method: 'Echo',
      metadata: [{ key: 'k', value: '1' }, { key: 'j', value: 'x' }, { key: 'k', value: '2' }],
    });
    await raw.next();
    assert.deepEqual([...(h.contexts[1]?.metadata.entries() ?? [])], [['k', ['1', '2']], ['j', ['x']]]);
    raw.close();
  } finally {
    client.close();
    await h.stop();
  }
});

test('deadline: timeout_nano sets ctx.deadline, the signal fires, the client gives up', async () => {
  let seen: { deadline: number | undefined; reason: unknown; abortedAt: number } | undefined;
  const h = await start({
    Hang: async (_p, ctx) => {
      await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve(), { once: true }));
      seen = { deadline: ctx.deadline, reason: ctx.signal.reason, abortedAt: Date.now() };
      return enc('late');
    },
  });
  const client = await TtrpcClient.connect(h.path);
  try {
    const t0 = Date.now();
    const e = await rejection(client.call(SERVICE, 'Hang', enc(''), { timeoutMs: 80 }));
    assert.equal(e.code, Code.DeadlineExceeded);
    assert.ok(Date.now() - t0 >= 75);
    // the server's own timer fires about when the client's did
    await until('the handler saw the abort', () => seen !== undefined);
    assert.ok(seen);
    // the deadline is the request's arrival + 80 ms; on a busy machine the arrival can lag the send
    const rel = (seen.deadline ?? 0) - t0;
    assert.ok(rel >= 75 && rel < 80 + 2000, `deadline at +${rel} ms`);
    assert.ok(seen.reason instanceof StatusError && seen.reason.code === Code.DeadlineExceeded);
    // The late answer was dropped by the client; the connection keeps working.
    assert.equal(dec(await client.call(SERVICE, 'Echo', enc('still'))), 'still');

    // timeout_nano as sent by the client.
    const raw = await Raw.connect(h.path);
    const sent = Date.now();
    raw.request(1, { service: SERVICE, method: 'Echo', timeoutNano: 5_000_000_000 });
    await raw.next();
    const ctx = h.contexts.at(-1);
    // 5 s from its arrival, which lies between the send and now
    assert.ok(ctx?.deadline !== undefined && ctx.deadline >= sent + 5000 - 1 && ctx.deadline <= Date.now() + 5000,
      `deadline ${ctx?.deadline} for a request sent at ${sent}`);
    raw.close();
  } finally {
    client.close();
    await h.stop();
  }
});

test('the signal fires when the connection closes; the late response is dropped', async () => {
  let reason: unknown;
  let entered = false;
  let finished = false;
  const h = await start({
    Hang: async (_p, ctx) => {
      entered = true;
      await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve(), { once: true }));
      reason = ctx.signal.reason;
      await sleep(20);
      finished = true;
      return enc('nobody listens');
    },
  });
  const client = await TtrpcClient.connect(h.path);
  try {
    const p = client.call(SERVICE, 'Hang', enc(''));
    await until('the handler running', () => entered);
    client.close();
    const e = await rejection(p);
    assert.equal(e.code, Code.Unavailable);
    assert.equal(e.message, 'ttrpc: closed');
    await until('the handler finished', () => finished);
    assert.ok(reason instanceof StatusError && reason.code === Code.Canceled);
    assert.equal(h.server.connections(), 0);
  } finally {
    await h.stop();
  }
});

test('protocol errors: even stream id, reused id, bad envelope, streaming request', async () => {
  const h = await start();
  const raw = await Raw.connect(h.path);
  try {
    raw.request(2, { service: SERVICE, method: 'Echo' });
    let [f] = await raw.next();
    assert.ok(f);
    assert.equal(f.streamId, 2);
    assert.equal(status(f).code, Code.InvalidArgument);

    raw.request(7, { service: SERVICE, method: 'Echo', payload: enc('a') });
    [f] = await raw.next();
    assert.ok(f);
    assert.equal(status(f).code, Code.OK);
    raw.request(5, { service: SERVICE, method: 'Echo' });
    [f] = await raw.next();
    assert.ok(f);
    assert.deepEqual([f.streamId, status(f).code], [5, Code.InvalidArgument]);

    // Field 1 declared as a 100-byte string, but the frame ends: not a Request.
    raw.socket.write(encodeFrame(9, MessageType.Request, 0, Buffer.from([0x0a, 100, 0x41])));
    [f] = await raw.next();
    assert.ok(f);
    assert.deepEqual([f.streamId, status(f).code], [9, Code.InvalidArgument]);

    raw.request(11, { service: SERVICE, method: 'Echo' }, Flags.RemoteOpen);
    [f] = await raw.next();
    assert.ok(f);
    assert.deepEqual([f.streamId, status(f).code], [11, Code.InvalidArgument]);

    // Data frames, response frames and unknown types are ignored; the next request still works.
    raw.socket.write(encodeFrame(13, MessageType.Data, Flags.RemoteClosed, enc('data')));
    raw.socket.write(encodeFrame(15, MessageType.Response, 0, enc('resp')));
    raw.socket.write(encodeFrame(17, 0x42, 0, enc('future')));
    raw.request(19, { service: SERVICE, method: 'Echo', payload: enc('after') });
    [f] = await raw.next();
    assert.ok(f);
    assert.equal(f.streamId, 19);
    assert.equal(dec(ttrpc.Response.decode(f.payload).payload), 'after');
  } finally {
    raw.close();
    await h.stop();
  }
});

test('an oversized request gets ResourceExhausted on its stream and the connection continues', async () => {
  const h = await start();
  const raw = await Raw.connect(h.path);
  try {
    const length = MAX_MESSAGE_LENGTH + 10;
    raw.socket.write(encodeHeader({ length, streamId: 3, type: MessageType.Request, flags: 0 }));
    raw.socket.write(Buffer.alloc(length, 0x61));
    raw.request(5, { service: SERVICE, method: 'Echo', payload: enc('small') });
    const [a, b] = await raw.next(2, 5000);
    assert.ok(a && b);
    assert.equal(a.streamId, 3);
    assert.equal(status(a).code, Code.ResourceExhausted);
    assert.match(status(a).message, /exceed maximum message size/);
    assert.equal(b.streamId, 5);
    assert.equal(dec(ttrpc.Response.decode(b.payload).payload), 'small');
  } finally {
    raw.close();
    await h.stop();
  }
});

test('request observer: once per request, when its answer is written, with its code and duration', async () => {
  const seen: Array<{ service: string; method: string; code: number; seconds: number }> = [];
  const h = await start(undefined, (service, method, code, seconds) => seen.push({ service, method, code, seconds }));
  const client = await TtrpcClient.connect(h.path);
  const raw = await Raw.connect(h.path);
  try {
    assert.equal(dec(await client.call(SERVICE, 'Echo', enc('x'))), 'x');
    assert.equal(seen.length, 1, 'observed by the time the client has the answer');
    await rejection(client.call(SERVICE, 'Fail', enc('subclass')));
    await rejection(client.call(SERVICE, 'Fail', enc('other')));
    await client.call(SERVICE, 'Sleep', enc('40'));
    await rejection(client.call(SERVICE, 'Nope', enc('')));
    await rejection(client.call('nope.v1.Svc', 'Echo', enc('')));
    raw.request(2, { service: SERVICE, method: 'Echo' });
    await raw.next();
    assert.deepEqual(seen.map(({ service, method, code }) => [service, method, code]), [
      [SERVICE, 'Echo', Code.OK],
      [SERVICE, 'Fail', Code.NotFound],
      [SERVICE, 'Fail', Code.Unknown],
      [SERVICE, 'Sleep', Code.OK],
      [SERVICE, 'Nope', Code.Unimplemented],
      ['nope.v1.Svc', 'Echo', Code.Unimplemented],
      ['', '', Code.InvalidArgument],
    ]);
    const sleep = seen[3]!.seconds;
    assert.ok(sleep >= 0.035 && sleep < 5, `Sleep 40 ms took ${sleep} s`);
    assert.ok(seen.every((o) => o.seconds >= 0));

    // A failing observer is logged; the answers still go out. Removing it stops the reports.
    h.server.observeRequests(() => { throw new Error('observer bug'); });
    assert.equal(dec(await client.call(SERVICE, 'Echo', enc('y'))), 'y');
    assert.ok(h.logs.some((l) => l.level === 'warn' && l.msg === 'ttrpc: request observer failed'));
    h.server.observeRequests(undefined);
    await client.call(SERVICE, 'Echo', enc('z'));
    assert.equal(seen.length, 7);
  } finally {
    raw.close();
    client.close();
    await h.stop();
  }
});

test('request observer set later: in-flight requests are not reported, later ones are', async () => {
  const h = await start();
  const client = await TtrpcClient.connect(h.path);
  try {
    const seen: string[] = [];
    const slow = client.call(SERVICE, 'Sleep', enc('50'));
    await until('Sleep in flight', () => h.started.includes('Sleep'));
    h.server.observeRequests((_s, method, code) => seen.push(`${method}:${code}`));
    await slow;
    await client.call(SERVICE, 'Echo', enc(''));
    assert.deepEqual(seen, [`Echo:${Code.OK}`]);
  } finally {
    client.close();
    await h.stop();
  }
});

test('garbage bytes and abrupt disconnects do not crash the server', async () => {
  const h = await start();
  try {
    let seed = 42;
    const rand = (): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed;
    };
    for (let round = 0; round < 20; round++) {
      const raw = await Raw.connect(h.path);
      for (let i = 0; i < 10; i++) {
        const junk = Buffer.alloc(1 + (rand() % 200));
        for (let j = 0; j < junk.length; j++) junk[j] = rand() & 0xff;
        if (round % 2 === 0 && junk.length >= 10) {
          // A plausible header with a junk body: exact length, request type, random stream id.
          junk.writeUInt32BE(junk.length - 10, 0);
          junk[8] = MessageType.Request;
        }
        raw.socket.write(junk);
      }
      await sleep(5);
      raw.close();
    }
    // A slow handler whose client vanished: the write to the destroyed socket is ignored.
    const raw = await Raw.connect(h.path);
    raw.request(1, { service: SERVICE, method: 'SleepIgnoringSignal', payload: enc('30') });
    await sleep(5);
    raw.close();
    await sleep(60);

    const client = await TtrpcClient.connect(h.path);
    assert.equal(dec(await client.call(SERVICE, 'Echo', enc('alive'))), 'alive');
    client.close();
    await until('no connection left', () => h.server.connections() === 0);
  } finally {
    await h.stop();
  }
});

test('serveConnection parses bytes the caller already read', async () => {
  const path = join(dir, `s${++sockSeq}.sock`);
  const server = new TtrpcServer();
  server.register(SERVICE, { Echo: async (p) => p });
  // A listener that reads a "hello\n" line first, then hands the socket over with the rest.
  const listener = net.createServer((socket) => {
    socket.once('data', (chunk: Buffer) => {
      socket.pause();
      const nl = chunk.indexOf(0x0a);
      assert.equal(chunk.subarray(0, nl).toString(), 'hello');
      server.serveConnection(socket, chunk.subarray(nl + 1));
    });
  });
  await new Promise<void>((resolve) => listener.listen(path, resolve));
  try {
    const raw = await Raw.connect(path);
    const req = (id: number, s: string): Buffer =>
      encodeFrame(id, MessageType.Request, 0, ttrpc.Request.encode({ service: SERVICE, method: 'Echo', payload: enc(s) }).finish());
    const second = req(3, 'second');
    raw.socket.write(Buffer.concat([Buffer.from('hello\n'), req(1, 'first'), second.subarray(0, 5)]));
    await sleep(20);
    raw.socket.write(second.subarray(5));
    const frames = await raw.next(2);
    assert.deepEqual(frames.map((f) => [f.streamId, dec(ttrpc.Response.decode(f.payload).payload)]), [[1, 'first'], [3, 'second']]);
    raw.close();
  } finally {
    server.closeAll();
    await new Promise<void>((resolve) => listener.close(() => resolve()));
  }
});

test('client: stream ids 1, 3, 5 …, timeout_nano, code-0 status is success, stray responses ignored', async () => {
  const path = join(dir, `s${++sockSeq}.sock`);
  const seen: Array<{ id: number; timeout: number; method: string }> = [];
  const listener = net.createServer((socket) => {
    const reader = new FrameReader();
    socket.on('data', (chunk: Buffer) => {
      for (const r of reader.push(chunk)) {
        if (r.kind !== 'frame') continue;
        const req = ttrpc.Request.decode(r.payload);
        seen.push({ id: r.streamId, timeout: int64ToNumber(req.timeoutNano), method: req.method });
        // A response nobody asked for, then the real one with an explicit OK status (old servers).
        socket.write(encodeFrame(r.streamId + 100, MessageType.Response, 0, ttrpc.Response.encode({ payload: enc('stray') }).finish()));
        socket.write(encodeFrame(r.streamId, MessageType.Response, 0,
          ttrpc.Response.encode({ status: { code: 0, message: '' }, payload: enc(req.method) }).finish()));
      }
    });
  });
  await new Promise<void>((resolve) => listener.listen(path, resolve));
  const client = await TtrpcClient.connect(path);
  try {
    assert.equal(dec(await client.call('s', 'A', enc(''))), 'A');
    assert.equal(dec(await client.call('s', 'B', enc(''), { timeoutMs: 1500 })), 'B');
    assert.equal(dec(await client.call('s', 'C', enc(''))), 'C');
    assert.deepEqual(seen, [
      { id: 1, timeout: 0, method: 'A' },
      { id: 3, timeout: 1_500_000_000, method: 'B' },
      { id: 5, timeout: 0, method: 'C' },
    ]);
  } finally {
    client.close();
    await new Promise<void>((resolve) => listener.close(() => resolve()));
  }
});

test('client sees Unavailable "ttrpc: closed" when the server goes away', async () => {
  const h = await start();
  const client = await TtrpcClient.connect(h.path);
  let closedCalls = 0;
  client.onClose(() => closedCalls++);
  const inflight = client.call(SERVICE, 'Sleep', enc('5000'));
  await sleep(30);
  await h.stop();
  const e = await rejection(inflight);
  assert.equal(e.code, Code.Unavailable);
  assert.equal(e.message, 'ttrpc: closed');
  assert.equal(client.closed, true);
  assert.equal(closedCalls, 1);
  const after = await rejection(client.call(SERVICE, 'Echo', enc('')));
  assert.equal(after.code, Code.Unavailable);
  let late = false;
  client.onClose(() => (late = true));
  await sleep(0);
  assert.ok(late, 'onClose after close still fires');
});

test('client connect failures', async () => {
  const e = await rejection(TtrpcClient.connect(join(dir, 'missing.sock')));
  assert.equal(e.code, Code.Unavailable);
  assert.equal((e.cause as NodeJS.ErrnoException).code, 'ENOENT');
});

test('unary(): typed handlers; undecodable payload -> InvalidArgument', async () => {
  const h = await start({
    Typed: unary(ttrpc.KeyValue, ttrpc.KeyValue, async (req) => ({ key: req.value, value: req.key })),
  });
  const client = await TtrpcClient.connect(h.path);
  try {
    const out = ttrpc.KeyValue.decode(await client.call(SERVICE, 'Typed', ttrpc.KeyValue.encode({ key: 'a', value: 'b' }).finish()));
    assert.deepEqual([out.key, out.value], ['b', 'a']);
    const e = await rejection(client.call(SERVICE, 'Typed', new Uint8Array([0x0a, 0x05])));
    assert.equal(e.code, Code.InvalidArgument);
    assert.match(e.message, /failed to decode Typed request/);
  } finally {
    client.close();
    await h.stop();
  }
});
