// Differential tests: every scenario runs once through the reference shim (io.containerd.runc.v2),
// once through tsrt (io.containerd.tsrt.v2) with its runc backend and once through tsrt with its native
// backend (annotation io.tsrt.backend=native: no runtime binary), on the same containerd, and what a user
// sees must be the same: ctr's exit code, stdout/stderr bytes, `ctr task ls` states, the `/tasks/...` events
// `ctr events` prints for the container, and the class of errors for bad requests. Only what has to
// differ is normalised: container ids, pids, timestamps, paths below the test root, runtime names.
//
// TSRT_DIFF_SELFTEST=1 runs the "tsrt" half with runc-v2 too: every test must then pass, which
// checks the comparisons themselves. TSRT_DIFF_DUMP=<file> writes every half of every scenario there.
// TSRT_DIFF_BACKENDS=runc or =native runs only that tsrt column (default: both).

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { execFileSync, spawn } from 'node:child_process';
import { appendFileSync, chmodSync, closeSync, constants as fsConstants, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  AWAIT_TTY_SIZE,
  psExecInfo,
  RUNC_V2,
  TSRT_V2,
  WAIT_MS,
  containerdForFile,
  ctrInTerminal,
  removeContainer,
  sleep,
  taskStatus,
  uniqueId,
  usr1Trapped,
  waitFor,
  watchEvents,
  type CmdResult,
  type Containerd,
  type CtrChild,
  type CtrEvent,
  type EventWatcher,
} from './harness.js';
import { listPids, readCmdline, readStat } from './lib/procfs.js';
import { TasksError, tasksClientFor } from './lib/tasks-client.js';

const suite = containerdForFile({ before, after });
const SELFTEST = process.env.TSRT_DIFF_SELFTEST === '1';
const NATIVE_ANNOTATION = ['--annotation', 'io.tsrt.backend=native'];

// ---------------------------------------------------------------------------------------------
// the two halves of a scenario

/** runc: the reference shim; tsrt: tsrt with its runc backend; native: tsrt with its native backend */
type Tag = 'runc' | 'tsrt' | 'native';
const TSRT_TAGS: Tag[] = (process.env.TSRT_DIFF_BACKENDS ?? 'runc,native')
  .split(',')
  .map((b) => (b.trim() === 'runc' ? 'tsrt' : b.trim()) as Tag)
  .filter((t, i, all) => {
    if (t !== 'tsrt' && t !== 'native') throw new Error(`TSRT_DIFF_BACKENDS: unknown backend "${t}" (runc, native)`);
    return all.indexOf(t) === i;
  });

/** What a scenario function gets: its runtime, its container id and a few shortcuts. */
interface Side {
  tag: Tag;
  runtime: string;
  /** what `ctr run` needs to pick this half's shim and backend: ['--runtime', runtime, …] */
  rt: string[];
  /** the container id of this half (unique per half) */
  id: string;
  c: Containerd;
  image: string;
  events: EventWatcher;
  /** replace what must differ between the halves (ids, paths, runtime names, timestamps) */
  norm(s: string): string;
  ctr(args: string[], input?: string | Buffer): Promise<CmdResult>;
  /** ctr that must succeed; throws with ctr's stderr otherwise */
  ok(args: string[]): Promise<string>;
  spawn(args: string[]): CtrChild;
}

interface Half<T> {
  tag: Tag;
  runtime: string;
  id: string;
  value?: T;
  error?: Error;
  /** normalised `/tasks/...` events of the container, in arrival order */
  events: string[];
  /** the same, grouped by process ('init' or the exec id) */
  byProcess: Record<string, string[]>;
  raw: CtrEvent[];
  /** runtime named by the container's /containers/create event (guards against a mixed-up half) */
  runtimeSeen?: string;
}

interface Both<T> {
  name: string;
  runc: Half<T>;
  /** the tsrt columns (TSRT_TAGS), each compared with runc */
  tsrt: Half<T>[];
}

function normalizer(c: Containerd, id: string, runtime: string): (s: string) => string {
  return (s: string) =>
    s
      .split(id)
      .join('<id>')
      .split(c.root)
      .join('<root>')
      .split(runtime)
      .join('<runtime>')
      .replace(/\/run\/containerd\/fifo\/\d+/g, '<fifo>')
      .replace(/snapshots\/\d+/g, 'snapshots/N')
      .replace(/time="[^"]*"/g, 'time=<t>');
}

/** The process an event belongs to: the exec id, or 'init'. */
function processOf(e: CtrEvent): string {
  const p = e.payload;
  if (typeof p.exec_id === 'string' && p.exec_id) return p.exec_id;
  if (typeof p.id === 'string' && p.id && p.id !== p.container_id) return p.id;
  return 'init';
}

/** `topic {json}` with pids replaced by P1, P2… (in order of appearance) and times by <t>. */
function eventTokens(events: CtrEvent[], norm: (s: string) => string): string[] {
  const pids = new Map<number, string>();
  const walk = (v: unknown, key: string): unknown => {
    // ctr 1.x prints a timestamp as a string, ctr 2.x as {seconds, nanos}
    if (key === 'exited_at') return '<t>';
    if (typeof v === 'string') return norm(v);
    if (typeof v === 'number' && /(^|_)pid$/.test(key)) {
      if (!pids.has(v)) pids.set(v, `P${pids.size + 1}`);
      return pids.get(v);
    }
    if (Array.isArray(v)) return v.map((x) => walk(x, key));
    if (v && typeof v === 'object') {
      const o = v as Record<string, unknown>;
      return Object.fromEntries(Object.keys(o).sort().map((k) => [k, walk(o[k], k)]));
    }
    return v;
  };
  return events.map((e) => `${e.topic} ${JSON.stringify(walk(e.payload, ''))}`);
}

const isInitDelete = (id: string) => (e: CtrEvent) =>
  e.topic === '/tasks/delete' && e.payload.container_id === id && processOf(e) === 'init';

/**
 * containerd 2.x's runc-v2 publishes the init's TaskDelete itself, from its event queue, and exits at the
 * Shutdown that follows: seen here, in 7 of the 34 scenarios of one run that event never arrived. A half run
 * through it that has the init's TaskExit but no TaskDelete gets the TaskDelete runc-v2 sends when it
 * does not lose it (the TaskExit's fields, without the process id), so that the comparison is with what
 * runc-v2 means to send. tsrt's half gets no such help: its events must all arrive.
 */
function lossyReference(c: Containerd, runtime: string): boolean {
  return runtime === RUNC_V2 && c.dist.release[0] >= 2;
}

function restoreLostDelete(raw: CtrEvent[], id: string): void {
  const exit = raw.find((e) => e.topic === '/tasks/exit' && processOf(e) === 'init');
  if (!exit || raw.some(isInitDelete(id))) return;
  const { id: _process, ...fields } = exit.payload;
  raw.push({ topic: '/tasks/delete', namespace: exit.namespace, payload: fields, line: '(restored: lost by runc-v2)' });
}

async function runHalf<T>(name: string, tag: Tag, scenario: (x: Side) => Promise<T>): Promise<Half<T>> {
  const c = suite.containerd();
  const runtime = tag === 'runc' || SELFTEST ? RUNC_V2 : TSRT_V2;
  const id = uniqueId(`${name}-${tag}`);
  const norm = normalizer(c, id, runtime);
  const events = await watchEvents(c);
  const x: Side = {
    tag,
    runtime,
    rt: ['--runtime', runtime, ...(tag === 'native' && !SELFTEST ? NATIVE_ANNOTATION : [])],
    id,
    c,
    image: suite.image(),
    events,
    norm,
    ctr: (args, input) => c.ctr(args, { timeoutMs: 60_000, input }),
    ok: async (args) => {
      const r = await c.ctr(args, { timeoutMs: 60_000 });
      if (r.code !== 0) throw new Error(`ctr ${norm(args.join(' '))}: exit ${r.code}: ${norm(r.stderr.trim())}`);
      return r.stdout;
    },
    spawn: (args) => c.ctrSpawn(args),
  };
  const half: Half<T> = { tag, runtime, id, events: [], byProcess: {}, raw: [] };
  try {
    half.value = await scenario(x);
  } catch (e) {
    half.error = e instanceof Error ? e : new Error(String(e));
  } finally {
    await removeContainer(c, id);
    // events travel asynchronously: wait for the last one a task produces (its TaskDelete)
    if (events.tasks(id).length) {
      await events.waitFor(isInitDelete(id), lossyReference(c, runtime) ? 5000 : WAIT_MS, 'TaskDelete').catch(() => undefined);
    }
    await sleep(50);
    await events.stop();
  }
  half.raw = events.tasks(id);
  if (lossyReference(c, runtime)) restoreLostDelete(half.raw, id);
  const created = events.all().find((e) => e.topic === '/containers/create' && e.payload.id === id);
  const rtField = created?.payload.runtime as { name?: string } | undefined;
  half.runtimeSeen = rtField?.name;
  half.events = eventTokens(half.raw, norm);
  // per process with pids numbered per process, so interleaving with other processes does not matter
  const groups = new Map<string, CtrEvent[]>();
  for (const e of half.raw) groups.set(processOf(e), [...(groups.get(processOf(e)) ?? []), e]);
  for (const [p, evs] of groups) half.byProcess[p] = eventTokens(evs, norm);
  return half;
}

/** Run `scenario` through runc-v2, then through each tsrt column; returns every half. */
async function both<T>(name: string, scenario: (x: Side) => Promise<T>): Promise<Both<T>> {
  const runc = await runHalf(name, 'runc', scenario);
  const tsrt: Half<T>[] = [];
  for (const tag of TSRT_TAGS) tsrt.push(await runHalf(name, tag, scenario));
  return { name, runc, tsrt };
}

const columnName = (h: Half<unknown>): string => (h.tag === 'native' ? 'tsrt+native' : h.tag === 'tsrt' ? 'tsrt+runc' : 'runc-v2');

/** `wording` of a scenario's value is compared only by sameWording(). */
function withoutWording(v: unknown): unknown {
  if (v && typeof v === 'object' && !Array.isArray(v) && 'wording' in v) {
    const { wording: _w, ...rest } = v as Record<string, unknown>;
    return rest;
  }
  return v;
}

type EventCheck = 'ordered' | 'per-process' | 'none';

/** TSRT_DIFF_DUMP=<file>: append every half (values and events) of every scenario to <file>. */
function dump<T>(r: Both<T>, file: string): void {
  for (const h of [r.runc, ...r.tsrt]) {
    const v = h.error ? `error: ${h.error.message}` : JSON.stringify(h.value, null, 1);
    appendFileSync(file, `--- ${r.name} [${h.tag} = ${h.runtime}]\n${v}\n${h.events.join('\n')}\n\n`);
  }
}

/**
 * Assert that tsrt's half saw what runc-v2's half saw. `ref` checks the reference's own result first
 * (a scenario that runc-v2 does not pass is a broken test, not a tsrt bug).
 */
function same<T>(r: Both<T>, opts: { events?: EventCheck; ref?: (v: T, half: Half<T>) => void } = {}): void {
  if (process.env.TSRT_DIFF_DUMP) dump(r, process.env.TSRT_DIFF_DUMP);
  if (r.runc.error) throw new Error(`reference (runc-v2) half of "${r.name}" failed, the test is broken: ${r.runc.error.message}`);
  for (const h of [r.runc, ...r.tsrt]) {
    if (h.runtimeSeen !== undefined) assert.equal(h.runtimeSeen, h.runtime, `${h.tag} half ran under ${h.runtimeSeen}`);
  }
  opts.ref?.(r.runc.value as T, r.runc);
  for (const h of r.tsrt) {
    const col = columnName(h);
    if (h.error) assert.fail(`${col} half of "${r.name}" failed: ${h.error.message}`);
    assert.deepEqual(withoutWording(h.value), withoutWording(r.runc.value), `"${r.name}": what the user sees differs (actual = ${col}, expected = runc-v2)`);
    const check = opts.events ?? 'ordered';
    if (check === 'ordered') {
      assert.deepEqual(h.events, r.runc.events, `"${r.name}": /tasks events differ (actual = ${col}, expected = runc-v2)`);
    } else if (check === 'per-process') {
      assert.deepEqual(h.byProcess, r.runc.byProcess, `"${r.name}": /tasks events per process differ (actual = ${col}, expected = runc-v2)`);
      assert.deepEqual(execExitsBeforeInit(h), execExitsBeforeInit(r.runc), `"${r.name}": exec exits relative to the init exit differ (${col})`);
    }
  }
}

/** The execs whose /tasks/exit came before the init's /tasks/exit (sorted). */
function execExitsBeforeInit(h: Half<unknown>): string[] {
  const exits = h.raw.filter((e) => e.topic === '/tasks/exit');
  const initAt = exits.findIndex((e) => processOf(e) === 'init');
  const before = initAt < 0 ? exits : exits.slice(0, initAt);
  return before.map(processOf).filter((p) => p !== 'init').sort();
}

/**
 * The one difference in wording the native backend has by design (README, "Backends"): a Create that
 * fails names the runtime that failed, `tsrt-launch create failed: …` where runc says `runc create
 * failed: …`; the rest of the line is runc's.
 */
const nativeWording = (v: unknown): unknown =>
  typeof v === 'string' ? v.replace('OCI runtime create failed: tsrt-launch create failed: ', 'OCI runtime create failed: runc create failed: ')
    : v && typeof v === 'object' ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, nativeWording(x)])) : v;

function sameWording<T>(r: Both<T>): void {
  if (r.runc.error) throw new Error(`reference (runc-v2) half of "${r.name}" failed: ${r.runc.error.message}`);
  const w = (v: unknown) => (v && typeof v === 'object' ? (v as Record<string, unknown>).wording : undefined);
  for (const h of r.tsrt) {
    const col = columnName(h);
    if (h.error) assert.fail(`${col} half of "${r.name}" failed: ${h.error.message}`);
    const words = h.tag === 'native' ? nativeWording(w(h.value)) : w(h.value);
    assert.deepEqual(words, w(r.runc.value), `"${r.name}": error messages differ (actual = ${col}, expected = runc-v2)`);
  }
}

/** Run a scenario once and share the result between tests (class test + wording test). */
function shared<T>(name: string, scenario: (x: Side) => Promise<T>): () => Promise<Both<T>> {
  let p: Promise<Both<T>> | undefined;
  return () => (p ??= both(name, scenario));
}

// ---------------------------------------------------------------------------------------------
// scenario helpers

interface Seen {
  code: number | null;
  stdout: string;
  stderr: string;
}

const seen = (x: Side, r: CmdResult): Seen => ({ code: r.code, stdout: x.norm(r.stdout), stderr: x.norm(r.stderr) });

/** containerd's error classes (errdefs), the words ctr ends an error message with. */
const ERROR_CLASSES = [
  'unknown', 'invalid argument', 'not found', 'already exists', 'permission denied', 'resource exhausted',
  'failed precondition', 'conflict', 'not modified', 'aborted', 'out of range', 'not implemented', 'internal',
  'unavailable', 'data loss', 'unauthenticated', 'context deadline exceeded', 'context canceled',
];

/**
 * The error class ctr prints last (`…: not found`, `…: unknown`), and the normalised message. ctr 1.x
 * always ends a failed request with its class; ctr 2.x prints a shim's message as it came, so an error
 * whose message names no class (what runc-v2 sends with code Unknown) is 'unclassified' there.
 */
function errorOf(x: Side, r: CmdResult): { code: number | null; cls: string } & { msg: string } {
  const line = x.norm(r.stderr.trim().split('\n').pop() ?? '');
  const cls = ERROR_CLASSES.find((c) => line.endsWith(`: ${c}`));
  return { code: r.code, cls: r.code === 0 ? 'ok' : (cls ?? (line ? 'unclassified' : 'no message')), msg: line };
}

/** The class an error with code Unknown shows: ctr 1.x names it, ctr 2.x does not (see errorOf). */
const unknownClass = (c: Containerd): string => (c.dist.release[0] >= 2 ? 'unclassified' : 'unknown');

/** `ctr run --rm` of `cmd` in the foreground. */
const runRm = (x: Side, cmd: string[], extra: string[] = [], input?: string | Buffer) =>
  x.ctr(['run', '--rm', ...x.rt, ...extra, x.image, x.id, ...cmd], input);

/** `ctr run -d` of `cmd` (default `sleep 1000`), then wait until RUNNING. */
async function detached(x: Side, cmd: string[] = ['sleep', '1000']): Promise<void> {
  await x.ok(['run', '-d', ...x.rt, x.image, x.id, ...cmd]);
  await waitFor(async () => (await taskStatus(x.c, x.id)) === 'RUNNING', WAIT_MS, { what: `${x.id} RUNNING` });
}

/** Collected stdout of a background ctr so far. */
function stdoutOf(child: CtrChild): () => string {
  let out = '';
  child.stdout?.on('data', (b: Buffer) => (out += b.toString('utf8')));
  return () => out;
}

/** Wait for `cond`, but fail at once with ctr's stderr if `child` ends first. */
async function whileAlive(child: CtrChild, cond: () => boolean | Promise<boolean>, what: string, x: Side, timeoutMs = WAIT_MS): Promise<void> {
  let ended: CmdResult | undefined;
  void child.result.then((r) => (ended = r));
  await waitFor(
    async () => {
      if (await cond()) return true;
      if (ended) throw new Error(`ctr ended (exit ${ended.code}) before ${what}: ${x.norm(ended.stderr.trim())}`);
      return false;
    },
    timeoutMs,
    { what },
  ).catch((e: Error) => {
    throw new Error(e.message.replace(/^waitFor \(.*?\) timed out after \d+ ms: /, ''));
  });
}

/** Wait for the /tasks/exec-started event of `execId` in this half's container. */
function execStarted(x: Side, child: CtrChild, execId: string): Promise<void> {
  const started = () =>
    x.events.tasks(x.id).some((e) => e.topic === '/tasks/exec-started' && e.payload.exec_id === execId);
  return whileAlive(child, started, `exec ${execId} started`, x);
}

async function statusAfter(x: Side, want: string, timeoutMs = WAIT_MS): Promise<string | undefined> {
  try {
    await waitFor(async () => (await taskStatus(x.c, x.id)) === want, timeoutMs, { what: want });
  } catch {
    /* report what it is instead */
  }
  return taskStatus(x.c, x.id);
}

const md5 = (b: string | Buffer) => createHash('md5').update(b).digest('hex');
const sha256 = (b: string | Buffer) => createHash('sha256').update(b).digest('hex');
const topicsOf = (h: Half<unknown>) => h.raw.map((e) => `${e.topic}${processOf(e) === 'init' ? '' : ` ${processOf(e)}`}`);

// ---------------------------------------------------------------------------------------------

describe('differential: runc-v2 vs tsrt (runc and native backends)', { timeout: 900_000 }, () => {
  describe('stdio and exit codes', () => {
    test('echo: stdout bytes', async () => {
      const r = await both('echo', async (x) => seen(x, await runRm(x, ['echo', 'hello'])));
      same(r, { ref: (v) => assert.deepEqual(v, { code: 0, stdout: 'hello\n', stderr: '' }) });
    });

    for (const code of [0, 3, 255]) {
      test(`exit code ${code} is ctr's exit code`, async () => {
        const r = await both(`exit-${code}`, async (x) => seen(x, await runRm(x, ['sh', '-c', `exit ${code}`])));
        same(r, { ref: (v) => assert.equal(v.code, code) });
      });
    }

    test('stderr bytes stay separate from stdout', async () => {
      const script = 'echo out; echo err >&2; printf "no newline" >&2; exit 3';
      const r = await both('stderr', async (x) => seen(x, await runRm(x, ['sh', '-c', script])));
      same(r, { ref: (v) => assert.deepEqual(v, { code: 3, stdout: 'out\n', stderr: 'err\nno newline' }) });
    });

    test('1 MiB on stdout and 512 KiB on stderr of ctr run are not truncated', async () => {
      // On a busy machine ctr itself can drop the tail of what a container wrote just before it exited:
      // under two CPU hogs, 2 of 176 `ctr run --rm` through runc-v2 and 5 of 176 through tsrt printed
      // only 450-508 kB of the 512 kB of stderr. So the container stays up until ctr has passed all of it
      // on, and exits on a signal then (its trap is set before it writes anything).
      const script = 'trap "exit 0" USR1; head -c 1048576 /dev/zero | tr "\\0" x; ' +
        'head -c 524288 /dev/zero | tr "\\0" y >&2; while :; do sleep 0.1; done';
      const r = await both('big-run', async (x) => {
        const child = x.spawn(['run', '--rm', ...x.rt, x.image, x.id, 'sh', '-c', script]);
        let out = 0;
        let err = 0;
        child.stdout!.on('data', (b: Buffer) => (out += b.length));
        child.stderr!.on('data', (b: Buffer) => (err += b.length));
        await whileAlive(child, () => out >= 1 << 20 && err >= 1 << 19, 'all output through ctr', x);
        await x.ok(['task', 'kill', '-s', 'SIGUSR1', x.id]);
        const res = await child.result;
        return { code: res.code, out: [res.stdout.length, sha256(res.stdout)], err: [res.stderr.length, sha256(res.stderr)] };
      });
      same(r, { ref: (v) => assert.deepEqual(v.out, [1 << 20, sha256('x'.repeat(1 << 20))]) });
    });

    test('1 MiB on stdout of ctr task exec is not truncated', async () => {
      const r = await both('big-exec', async (x) => {
        await detached(x);
        const res = await x.ctr(['task', 'exec', '--exec-id', 'big', x.id, 'sh', '-c', 'head -c 1048576 /dev/zero | tr "\\0" x']);
        return { code: res.code, out: [res.stdout.length, sha256(res.stdout)], stderr: x.norm(res.stderr) };
      });
      same(r, { ref: (v) => assert.deepEqual(v, { code: 0, out: [1 << 20, sha256('x'.repeat(1 << 20))], stderr: '' }) });
    });

    test('stdin piped into ctr run: head -c N reads exactly what was sent', async () => {
      // ctr 1.6 loses the EOF of stdin read before the task exists (under runc-v2 too), so the
      // probe reads a known size instead of waiting for EOF.
      const data = randomBytes(100_000);
      const r = await both('stdin-head', async (x) => {
        const child = x.spawn(['run', '--rm', ...x.rt, x.image, x.id, 'sh', '-c', 'head -c 100000 | md5sum']);
        child.stdin!.end(data);
        const res = await child.result;
        return seen(x, res);
      });
      same(r, { ref: (v) => assert.deepEqual(v, { code: 0, stdout: `${md5(data)}  -\n`, stderr: '' }) });
    });

    test('stdin written to ctr run once the task is up reaches it, and its EOF ends it', async () => {
      const data = randomBytes(70_000);
      const r = await both('stdin-eof', async (x) => {
        const child = x.spawn(['run', '--rm', ...x.rt, x.image, x.id, 'sh', '-c', 'echo ready; wc -c']);
        const out = stdoutOf(child);
        await whileAlive(child, () => out().includes('ready'), 'ready', x);
        child.stdin!.end(data);
        return seen(x, await child.result);
      });
      same(r, { ref: (v) => assert.deepEqual(v, { code: 0, stdout: 'ready\n70000\n', stderr: '' }) });
    });

    test('--log-uri file://: the file holds stdout and stderr', async () => {
      const r = await both('log-file', async (x) => {
        const dir = join(x.c.root, 'logs', x.id);
        const file = join(dir, 'out.log');
        mkdirSync(dir, { recursive: true });
        // The container sees the log's directory (read-only) and goes on only once its last line is in
        // the file: first to stderr after stdout, then to its exit. runc-v2 copies a file:// log's pipes
        // in goroutines that neither the exit nor the delete waits for; on a busy machine it dropped the
        // last line of a container that exited at once (tsrt hands the file to the container, and
        // tsrt-lifecycle checks that it is complete when ctr returns).
        const script = 'echo out; until grep -q out /logs/out.log; do sleep 0.05; done; ' +
          'echo err >&2; until grep -q err /logs/out.log; do sleep 0.05; done; exit 2';
        const res = await runRm(x, ['sh', '-c', script],
          ['--log-uri', `file://${file}`, '--mount', `type=bind,src=${dir},dst=/logs,options=rbind:ro`]);
        return { ...seen(x, res), file: existsSync(file) ? readFileSync(file, 'utf8') : '<no file>' };
      });
      same(r, { ref: (v) => assert.deepEqual(v, { code: 2, stdout: '', stderr: '', file: 'out\nerr\n' }) });
    });

    test('--log-uri binary://: the logger gets stdout on fd 3, stderr on fd 4, args and env', async () => {
      const r = await both('log-binary', async (x) => {
        const dir = join(x.c.root, 'binlog', x.id);
        mkdirSync(dir, { recursive: true });
        const logger = join(dir, 'logger.sh');
        // The shim gives the logger no PATH, so absolute paths only. Ready = a byte on fd 5.
        writeFileSync(
          logger,
          [
            '#!/bin/sh',
            `echo "args: $*" > ${dir}/meta`,
            `/usr/bin/env | /usr/bin/sort >> ${dir}/meta`,
            `echo "cwd: $(pwd)" >> ${dir}/meta`,
            `/bin/cat <&3 > ${dir}/stdout &`,
            `/bin/cat <&4 > ${dir}/stderr &`,
            'printf x >&5',
            'exec 5>&-',
            'wait',
            '',
          ].join('\n'),
        );
        chmodSync(logger, 0o755);
        const res = await runRm(x, ['sh', '-c', 'echo out; echo err >&2; exit 3'], ['--log-uri', `binary://${logger}?tag=t1`]);
        const read = (f: string) => (existsSync(join(dir, f)) ? readFileSync(join(dir, f), 'utf8') : `<no ${f}>`);
        // the loggers' cats may still be copying when ctr returns, under either shim
        await waitFor(() => read('stdout') === 'out\n' && read('stderr') === 'err\n', WAIT_MS).catch(() => undefined);
        return { ...seen(x, res), stdout3: read('stdout'), stderr4: read('stderr'), meta: x.norm(read('meta')) };
      });
      same(r, {
        ref: (v) => {
          assert.deepEqual({ ...v, meta: undefined }, { code: 3, stdout: '', stderr: '', stdout3: 'out\n', stderr4: 'err\n', meta: undefined });
          assert.match(v.meta, /^args: tag t1\nCONTAINER_ID=<id>\nCONTAINER_NAMESPACE=/);
        },
      });
    });
  });

  describe('signals', () => {
    test('TERM to an init `sleep` is ignored (pid 1), KILL ends it with 137', async () => {
      const r = await both('sig-term-kill', async (x) => {
        const child = x.spawn(['run', '--rm', ...x.rt, x.image, x.id, 'sleep', '60']);
        await whileAlive(child, async () => (await taskStatus(x.c, x.id)) === 'RUNNING', 'RUNNING', x);
        const term = errorOf(x, await x.ctr(['task', 'kill', x.id]));
        await sleep(500);
        const afterTerm = await taskStatus(x.c, x.id);
        const kill = errorOf(x, await x.ctr(['task', 'kill', '-s', 'SIGKILL', x.id]));
        return { term, afterTerm, kill, run: seen(x, await child.result), afterRun: (await taskStatus(x.c, x.id)) ?? 'gone' };
      });
      same(r, { ref: (v) => assert.deepEqual([v.afterTerm, v.run.code, v.afterRun], ['RUNNING', 137, 'gone']) });
    });

    test('HUP trapped by the shell ends it with the trap exit code 42', async () => {
      const script = "trap 'exit 42' HUP; echo ready; while :; do sleep 0.1; done";
      const r = await both('sig-hup', async (x) => {
        const child = x.spawn(['run', '--rm', ...x.rt, x.image, x.id, 'sh', '-c', script]);
        const out = stdoutOf(child);
        await whileAlive(child, () => out().includes('ready'), 'ready', x);
        const kill = errorOf(x, await x.ctr(['task', 'kill', '-s', 'SIGHUP', x.id]));
        return { kill, run: seen(x, await child.result) };
      });
      same(r, { ref: (v) => assert.deepEqual(v.run, { code: 42, stdout: 'ready\n', stderr: '' }) });
    });

    test('TERM to an exec `sleep` ends the exec with 143; the task stays RUNNING; KILL to init → STOPPED', async () => {
      const r = await both('sig-exec', async (x) => {
        await detached(x);
        const child = x.spawn(['task', 'exec', '--exec-id', 's1', x.id, 'sleep', '60']);
        await execStarted(x, child, 's1');
        const kill = errorOf(x, await x.ctr(['task', 'kill', '--exec-id', 's1', '-s', 'SIGTERM', x.id]));
        const exec = seen(x, await child.result);
        const afterExec = await taskStatus(x.c, x.id);
        await x.ok(['task', 'kill', '-s', 'SIGKILL', x.id]);
        return { kill, exec, afterExec, afterKill: await statusAfter(x, 'STOPPED') };
      });
      same(r, { ref: (v) => assert.deepEqual([v.exec.code, v.afterExec, v.afterKill], [143, 'RUNNING', 'STOPPED']) });
    });

    test('kill --all (TERM) reaches the children of an init that ignores TERM', async () => {
      const script = 'sleep 600 & sleep 600 & echo ready; wait; echo waited $?';
      const r = await both('killall-term', async (x) => {
        const child = x.spawn(['run', '--rm', ...x.rt, x.image, x.id, 'sh', '-c', script]);
        const out = stdoutOf(child);
        await whileAlive(child, () => out().includes('ready'), 'ready', x);
        const ps = (await x.ok(['task', 'ps', x.id])).trim().split('\n').length - 1;
        const kill = errorOf(x, await x.ctr(['task', 'kill', '--all', x.id]));
        return { ps, kill, run: seen(x, await child.result) };
      });
      same(r, { ref: (v) => assert.deepEqual([v.ps, v.run], [3, { code: 0, stdout: 'ready\nwaited 0\n', stderr: '' }]) });
    });

    test('kill --all -s KILL leaves no process of the container', async () => {
      const r = await both('killall-kill', async (x) => {
        await detached(x, ['sh', '-c', 'trap "" TERM; sleep 600 & sleep 600 & wait']);
        // RUNNING is the shell; its two children follow when it gets the CPU
        const listed = async () => (await x.ok(['task', 'ps', x.id])).trim().split('\n').slice(1).map((l) => Number(l.trim().split(/\s+/)[0]));
        const pids = await waitFor(async () => { const p = await listed(); return p.length >= 3 ? p : null; }, WAIT_MS, { what: 'three processes' })
          .catch(listed);
        const kill = errorOf(x, await x.ctr(['task', 'kill', '--all', '-s', 'SIGKILL', x.id]));
        const status = await statusAfter(x, 'STOPPED');
        // a killed process is gone (or a zombie) once the kernel has run its exit
        const living = () => pids.filter((p) => existsSync(`/proc/${p}`) && !/\) Z /.test(readFileSync(`/proc/${p}/stat`, 'utf8'))).length;
        await waitFor(() => living() === 0, WAIT_MS).catch(() => undefined);
        const alive = living();
        return { ps: pids.length, kill, status, alive };
      });
      same(r, { ref: (v) => assert.deepEqual([v.ps, v.status, v.alive], [3, 'STOPPED', 0]) });
    });

    test("an init that joined another container's pid namespace: what it left running is killed by the time it is STOPPED", async () => {
      // runc-v2 (ShouldKillAllOnExit) SIGKILLs the whole container before it reports the exit when the
      // spec's pid namespace has a path, as for CRI's shared-PID pods and ctr --with-ns pid:...
      const token = `3${Math.floor(Math.random() * 1e7)}`;
      const r = await both('joined-pidns', async (x) => {
        const host = `${x.id}-host`;
        try {
          await x.ok(['run', '-d', ...x.rt, x.image, host, 'sleep', '1000']);
          await waitFor(async () => (await taskStatus(x.c, host)) === 'RUNNING', WAIT_MS, { what: `${host} RUNNING` });
          const hostPid = Number((await x.ok(['task', 'ls'])).split('\n').find((l) => l.startsWith(`${host} `))?.trim().split(/\s+/)[1]);
          // The shell exits when the test says so, once it runs and its child has become `sleep <token>`:
          // an init that exits while Start is still running is an early exit, which runc-v2 2.x reports
          // without its kill --all (handleStarted calls handleProcessExit, not handleInitExit), so a quick
          // exit would test that upstream gap instead.
          const script = `trap "exit 0" USR1; sleep ${token} & while :; do sleep 0.05; done`;
          await x.ok(['run', '-d', ...x.rt, '--with-ns', `pid:/proc/${hostPid}/ns/pid`, x.image, x.id, 'sh', '-c', script]);
          await waitFor(async () => (await taskStatus(x.c, x.id)) === 'RUNNING', WAIT_MS, { what: `${x.id} RUNNING` });
          const living = () => listPids().filter((p) => readCmdline(p).join(' ') === `sleep ${token}` && readStat(p)?.state !== 'Z').length;
          await waitFor(() => living() === 1, WAIT_MS, { what: `sleep ${token} running` });
          const initPid = Number((await x.ok(['task', 'ls'])).split('\n').find((l) => l.startsWith(`${x.id} `))?.trim().split(/\s+/)[1]);
          await usr1Trapped(initPid);
          await x.ok(['task', 'kill', '-s', 'SIGUSR1', x.id]);
          const status = await statusAfter(x, 'STOPPED');
          await waitFor(() => living() === 0, WAIT_MS).catch(() => undefined);
          return { status, alive: living() };
        } finally {
          await removeContainer(x.c, host);
        }
      });
      same(r, { ref: (v) => assert.deepEqual(v, { status: 'STOPPED', alive: 0 }) });
    });
  });

  describe('exec', () => {
    test('plain exec: stdout, stderr and exit code 5', async () => {
      const r = await both('exec-plain', async (x) => {
        await detached(x);
        return seen(x, await x.ctr(['task', 'exec', '--exec-id', 'x1', x.id, 'sh', '-c', 'echo hi; echo oops >&2; exit 5']));
      });
      same(r, { ref: (v) => assert.deepEqual(v, { code: 5, stdout: 'hi\n', stderr: 'oops\n' }) });
    });

    test('exec stdin: 70 kB piped into `wc -c` and `md5sum`', async () => {
      const data = randomBytes(71_680);
      const r = await both('exec-stdin', async (x) => {
        await detached(x);
        const out: Seen[] = [];
        for (const [execId, cmd] of [['wc', 'wc -c'], ['md5', 'md5sum']] as const) {
          const child = x.spawn(['task', 'exec', '--exec-id', execId, x.id, 'sh', '-c', cmd]);
          await execStarted(x, child, execId);
          child.stdin!.end(data);
          out.push(seen(x, await child.result));
        }
        return out;
      });
      same(r, {
        ref: (v) =>
          assert.deepEqual(v, [
            { code: 0, stdout: '71680\n', stderr: '' },
            { code: 0, stdout: `${md5(data)}  -\n`, stderr: '' },
          ]),
      });
    });

    test('exec -t: a terminal of the requested size, \\r\\n line ends, exit code 4', async () => {
      const script = `${AWAIT_TTY_SIZE} echo hi; stty size; test -t 0 && echo tty0; test -t 1 && echo tty1; exit 4`;
      const r = await both('exec-tty', async (x) => {
        await detached(x);
        const res = await ctrInTerminal(x.c, ['task', 'exec', '-t', '--exec-id', 't1', x.id, 'sh', '-c', script], { cols: 100, rows: 30 });
        return seen(x, res);
      });
      same(r, { ref: (v) => assert.deepEqual(v, { code: 4, stdout: 'hi\r\r\n30 100\r\r\ntty0\r\r\ntty1\r\r\n', stderr: '' }) });
    });

    test('a tty exec with stdin held open (kubectl exec -it): its output ends when it exits, before the exec is deleted', async () => {
      // through the Tasks API with FIFOs of the test's own: ctr cancels its copy at the exit, a CRI
      // stream waits for the output's EOF (and so does containerd 1.6.36+/1.7.20+ before a delete)
      const r = await both('exec-tty-eof', async (x) => {
        await detached(x);
        const dir = join(x.c.root, `fifo-${x.id}`);
        mkdirSync(dir, { recursive: true });
        const stdin = join(dir, 'in');
        const stdout = join(dir, 'out');
        execFileSync('mkfifo', [stdin, stdout]);
        // a writer of stdin that never writes nor closes (O_RDWR: no reader needed to open it)
        const inFd = openSync(stdin, fsConstants.O_RDWR | fsConstants.O_NONBLOCK);
        const reader = spawn('cat', [stdout], { stdio: ['ignore', 'pipe', 'ignore'] });
        let output = '';
        reader.stdout.on('data', (b: Buffer) => (output += b.toString('utf8')));
        let catExited = false;
        reader.on('exit', () => (catExited = true));
        const tasks = tasksClientFor(x.c);
        try {
          const spec = { args: ['/bin/sh', '-c', 'echo hi; exit 3'], cwd: '/', terminal: true, env: ['PATH=/bin'], user: { uid: 0, gid: 0 } };
          await tasks.exec(x.id, 'it', spec, { stdin, stdout, terminal: true });
          await tasks.start(x.id, 'it');
          const exitStatus = await tasks.wait(x.id, 'it');
          const ended = await waitFor(() => catExited, WAIT_MS).then(() => true, () => false);
          await tasks.deleteProcess(x.id, 'it');
          return { exitStatus, output, outputEndedBeforeDelete: ended };
        } finally {
          tasks.close();
          closeSync(inFd);
          reader.kill('SIGKILL');
        }
      });
      same(r, { ref: (v) => assert.deepEqual(v, { exitStatus: 3, output: 'hi\r\n', outputEndedBeforeDelete: true }) });
    });

    test('ctr task exec -t of an interactive shell: typed lines reach it, its output and exit code come back', async () => {
      const r = await both('exec-tty-typed', async (x) => {
        await detached(x);
        const type = ['echo typed-$((6*7))\n', 'exit 3\n'];
        const res = await ctrInTerminal(x.c, ['task', 'exec', '-t', '--exec-id', 'sh1', x.id, 'sh'], { type, typeDelayMs: 1200 });
        // The shell asks the terminal for the cursor position (ESC[6n) and redraws its prompt when the
        // answer comes; whether that lands before or after the typed line is terminal timing, not the
        // shim. What must match: the echo of the typed line, the command's output, the exit code.
        return {
          code: res.code,
          echoed: res.stdout.includes('echo typed-$((6*7))\r\r\n'),
          output: res.stdout.includes('\r\r\ntyped-42\r\r\n'),
          exitEchoed: res.stdout.includes('exit 3\r\r\n'),
          stderr: res.stderr,
        };
      });
      same(r, { ref: (v) => assert.deepEqual(v, { code: 3, echoed: true, output: true, exitEchoed: true, stderr: '' }) });
    });

    test('10 concurrent execs each get their own output and exit code', async () => {
      const r = await both('exec-10', async (x) => {
        await detached(x);
        const runs = Array.from({ length: 10 }, (_, i) =>
          x.ctr(['task', 'exec', '--exec-id', `c${i}`, x.id, 'sh', '-c', `echo out-${i}; echo err-${i} >&2; sleep 0.${i}; exit ${10 + i}`]),
        );
        return (await Promise.all(runs)).map((res) => seen(x, res));
      });
      same(r, {
        events: 'per-process',
        ref: (v) => assert.deepEqual(v, Array.from({ length: 10 }, (_, i) => ({ code: 10 + i, stdout: `out-${i}\n`, stderr: `err-${i}\n` }))),
      });
    });

    test('ctr task ps while an exec runs: same lines, the exec line names its exec id', async () => {
      const r = await both('pids', async (x) => {
        await detached(x);
        const child = x.spawn(['task', 'exec', '--exec-id', 'p1', x.id, 'sleep', '60']);
        await execStarted(x, child, 'p1');
        const ps = (await x.ok(['task', 'ps', x.id])).trim().split('\n');
        const startedPid = x.events.tasks(x.id).find((e) => e.topic === '/tasks/exec-started')?.payload.pid;
        const rows = ps.slice(1).map((l) => {
          const [pid, ...info] = l.trim().split(/\s+/);
          return { pid: Number(pid), info: info.join(' ') };
        });
        await x.ok(['task', 'kill', '--exec-id', 'p1', '-s', 'SIGKILL', x.id]);
        const exec = seen(x, await child.result);
        return {
          header: ps[0]?.trim().split(/\s+/),
          infos: rows.map((r) => r.info).sort(),
          execRowIsExecPid: rows.find((r) => r.info !== '-')?.pid === startedPid,
          exec,
        };
      });
      same(r, {
        ref: (v) =>
          assert.deepEqual(v, {
            header: ['PID', 'INFO'],
            infos: [psExecInfo(suite.containerd(), 'p1'), '-'].sort(),
            execRowIsExecPid: true,
            exec: { code: 137, stdout: '', stderr: '' },
          }),
      });
    });
  });

  describe('terminal', () => {
    test('ctr run -t --rm: output through the terminal and the exit code', async () => {
      const script = `${AWAIT_TTY_SIZE} echo hello; stty size; printf "a\\nb"; exit 7`;
      const r = await both('run-tty', async (x) =>
        seen(x, await ctrInTerminal(x.c, ['run', '-t', '--rm', ...x.rt, x.image, x.id, 'sh', '-c', script], { cols: 90, rows: 20 })),
      );
      same(r, { ref: (v) => assert.deepEqual(v, { code: 7, stdout: 'hello\r\r\n20 90\r\r\na\r\r\nb', stderr: '' }) });
    });
  });

  describe('stats', () => {
    test('ctr task metrics of a busy container: the same metrics, values in the same range', async () => {
      const r = await both('metrics', async (x) => {
        await detached(x, ['sh', '-c', 'while :; do :; done']);
        const table = (out: string) =>
          new Map(out.split('\n').slice(4).map((l) => l.trim().split(/\s{2,}/)).filter((f) => f.length === 2).map(([k, v]) => [k!, v!]));
        // until the loop has used 0.3 s of CPU: a second on a quiet machine, longer when others share the cores
        const rows = await waitFor(async () => {
          const t = table(await x.ok(['task', 'metrics', x.id]));
          return Number(t.get('cpuacct.usage')) > 0.3e9 ? t : null;
        }, WAIT_MS, { intervalMs: 200, what: 'the loop used 0.3 s of CPU' });
        const json = JSON.parse(await x.ok(['task', 'metrics', '--format', 'json', x.id])) as { cpu?: { usage?: { total?: number } } };
        return {
          metrics: [...rows.keys()],
          cpuBusy: Number(rows.get('cpuacct.usage')) > 0.3e9 && (json.cpu?.usage?.total ?? 0) > 0.3e9,
          memoryUnder16MiB: Number(rows.get('memory.usage_in_bytes')) > 0 && Number(rows.get('memory.usage_in_bytes')) < 16 << 20,
          limit: rows.get('memory.limit_in_bytes'),
          pids: [rows.get('pids.current'), rows.get('pids.limit')],
        };
      });
      same(r, {
        ref: (v) => assert.deepEqual(v, {
          metrics: ['memory.usage_in_bytes', 'memory.limit_in_bytes', 'memory.stat.cache', 'cpuacct.usage', 'cpuacct.usage_percpu', 'pids.current', 'pids.limit'],
          cpuBusy: true, memoryUnder16MiB: true, limit: v.limit, pids: ['1', '0'],
        }),
      });
    });
  });

  describe('pause, resume, update', () => {
    test('pause → PAUSED, resume → RUNNING, with /tasks/paused and /tasks/resumed', async () => {
      const r = await both('pause', async (x) => {
        await detached(x);
        const pause = errorOf(x, await x.ctr(['task', 'pause', x.id]));
        const paused = await statusAfter(x, 'PAUSED');
        const resume = errorOf(x, await x.ctr(['task', 'resume', x.id]));
        const resumed = await statusAfter(x, 'RUNNING');
        return { pause, paused, resume, resumed };
      });
      same(r, {
        ref: (v, h) => {
          assert.deepEqual([v.paused, v.resumed], ['PAUSED', 'RUNNING']);
          assert.deepEqual(topicsOf(h), ['/tasks/create', '/tasks/start', '/tasks/paused', '/tasks/resumed', '/tasks/exit', '/tasks/delete']);
        },
      });
    });

    test('Update (memory, pids, cpu shares/quota/period) through the Tasks API lands in the cgroup; Update of a stopped task fails the same way', async () => {
      const r = await both('update', async (x) => {
        await detached(x);
        const api = tasksClientFor(x.c);
        const cg = (ctl: string, file: string) => {
          try {
            return readFileSync(`/sys/fs/cgroup/${ctl}/${x.c.ns}/${x.id}/${file}`, 'utf8').trim();
          } catch (e) {
            return `<${(e as Error).message}>`;
          }
        };
        const call = async (resources: object) => {
          try {
            await api.update(x.id, resources, { 'io.tsrt.test': 'ignored' });
            return 'OK';
          } catch (e) {
            return e instanceof TasksError ? e.codeName : String(e);
          }
        };
        try {
          const before = cg('memory', 'memory.limit_in_bytes');
          const memory = await call({ memory: { limit: 64 << 20 } });
          const limit = cg('memory', 'memory.limit_in_bytes');
          const pids = await call({ pids: { limit: 50 } });
          const pidsMax = cg('pids', 'pids.max');
          const cpu = await call({ cpu: { shares: 512, quota: 50_000, period: 200_000 } });
          const cpuSet = ['cpu.shares', 'cpu.cfs_quota_us', 'cpu.cfs_period_us'].map((f) => cg('cpu', f));
          await x.ok(['task', 'kill', '-s', 'SIGKILL', x.id]);
          const status = await statusAfter(x, 'STOPPED');
          let stopped = 'OK';
          let stoppedMsg = '';
          try {
            await api.update(x.id, { memory: { limit: 32 << 20 } });
          } catch (e) {
            stopped = e instanceof TasksError ? e.codeName : String(e);
            stoppedMsg = e instanceof TasksError ? x.norm(e.details) : '';
          }
          return { before, memory, limit, pids, pidsMax, cpu, cpuSet, status, stopped, wording: { stoppedMsg } };
        } finally {
          api.close();
        }
      });
      same(r, {
        ref: (v) =>
          assert.deepEqual(
            { ...v, before: undefined, wording: undefined },
            {
              before: undefined, memory: 'OK', limit: String(64 << 20), pids: 'OK', pidsMax: '50',
              cpu: 'OK', cpuSet: ['512', '50000', '200000'], status: 'STOPPED', stopped: 'UNKNOWN', wording: undefined,
            },
          ),
      });
    });

    test('a container outgrowing --memory-limit: /tasks/oom, then exit 137 (tsrt: always in that order)', async () => {
      // One process that doubles a string until it outgrows 16 MB: the kernel has no other victim, so
      // this is one OOM kill. (With a pipeline such as $(head | tr) a busy machine sometimes sees the
      // shell and then tr killed, two kills, and tsrt rightly sends two events.)
      const r = await both('oom', async (x) =>
        seen(x, await runRm(x, ['sh', '-c', 'a=x; while :; do a=$a$a; done; echo survived'], ['--memory-limit', String(16 << 20)])));
      same(r, {
        events: 'none',
        ref: (v, h) => {
          assert.deepEqual(v, { code: 137, stdout: '', stderr: '' });
          assert.deepEqual([...new Set(topicsOf(h))].sort(), ['/tasks/create', '/tasks/delete', '/tasks/exit', '/tasks/oom', '/tasks/start']);
        },
      });
      // The kernel signals a v1 OOM eventfd for every failed charge, and runc-v2 sends a TaskOOM per
      // wake-up (1 to 16 of them for this one kill, seen here), from another goroutine, in no fixed order
      // with the exit. tsrt sends one per OOM kill (the cgroup's oom_kill count), and its monitor looks at
      // that count before it reports the exit.
      for (const h of r.tsrt) {
        assert.deepEqual(topicsOf(h), ['/tasks/create', '/tasks/start', '/tasks/oom', '/tasks/exit', '/tasks/delete'], columnName(h));
      }
    });
  });

  describe('bad requests', () => {
    // Each step records ctr's exit code and the error class (ctr's trailing `: not found` etc.);
    // `wording` keeps the whole message, compared by a separate test.
    type Steps = Record<string, { code: number | null; cls: string }> & { wording: Record<string, string> };
    const record = (x: Side, steps: Steps, name: string, r: CmdResult) => {
      const e = errorOf(x, r);
      steps[name] = { code: e.code, cls: e.cls };
      steps.wording[name] = e.msg;
    };

    const running = shared('bad-running', async (x) => {
      const steps = { wording: {} } as Steps;
      await detached(x);
      const bg = x.spawn(['task', 'exec', '--exec-id', 'dup', x.id, 'sleep', '60']);
      await execStarted(x, bg, 'dup');
      record(x, steps, 'exec with a duplicate exec id', await x.ctr(['task', 'exec', '--exec-id', 'dup', x.id, 'true']));
      record(x, steps, 'kill of an unknown exec id', await x.ctr(['task', 'kill', '--exec-id', 'nope', x.id]));
      record(x, steps, 'exec of a missing binary', await x.ctr(['task', 'exec', '--exec-id', 'nobin', x.id, '/nonexistent']));
      record(x, steps, 'kill of the running dup exec', await x.ctr(['task', 'kill', '--exec-id', 'dup', '-s', 'SIGKILL', x.id]));
      record(x, steps, 'the dup exec itself', await bg.result);
      record(x, steps, 'resume of a running task', await x.ctr(['task', 'resume', x.id]));
      record(x, steps, 'delete of a running task', await x.ctr(['task', 'delete', x.id]));
      return steps;
    });

    const paused = shared('bad-paused', async (x) => {
      const steps = { wording: {} } as Steps;
      await detached(x);
      record(x, steps, 'pause', await x.ctr(['task', 'pause', x.id]));
      record(x, steps, 'pause of a paused task', await x.ctr(['task', 'pause', x.id]));
      record(x, steps, 'exec into a paused task', await x.ctr(['task', 'exec', '--exec-id', 'e1', x.id, 'true']));
      record(x, steps, 'resume', await x.ctr(['task', 'resume', x.id]));
      return steps;
    });

    const stopped = shared('bad-stopped', async (x) => {
      const steps = { wording: {} } as Steps;
      await x.ok(['run', '-d', ...x.rt, x.image, x.id, 'sh', '-c', 'exit 0']);
      const st = await statusAfter(x, 'STOPPED');
      if (st !== 'STOPPED') throw new Error(`task is ${st}, not STOPPED`);
      record(x, steps, 'exec into a stopped task', await x.ctr(['task', 'exec', '--exec-id', 'e1', x.id, 'true']));
      record(x, steps, 'pause of a stopped task', await x.ctr(['task', 'pause', x.id]));
      record(x, steps, 'resume of a stopped task', await x.ctr(['task', 'resume', x.id]));
      record(x, steps, 'kill of a stopped task', await x.ctr(['task', 'kill', x.id]));
      return steps;
    });

    // What kubelet shows a user whose image lacks the command: the words matter, people search for them.
    const programs = { 'a missing path': '/nonexistent', 'a name not on PATH': 'nope', 'a file that is not executable': '/etc/passwd', 'a directory': '/etc' };
    const unrunnable = shared('bad-program', async (x) => {
      const steps = { wording: {} } as Steps;
      let n = 0;
      for (const [what, program] of Object.entries(programs)) {
        const id = `${x.id}-${n++}`;
        try {
          record(x, steps, `run of ${what}`, await runRm({ ...x, id }, [program]));
        } finally {
          await removeContainer(x.c, id);
        }
      }
      await detached(x);
      for (const [what, program] of Object.entries(programs)) record(x, steps, `exec of ${what}`, await x.ctr(['task', 'exec', '--exec-id', 'e', x.id, program]));
      return steps;
    });
    test('a program that cannot run, as the init and as an exec — same codes and classes', async () => {
      same(await unrunnable(), { events: 'none', ref: (v) => assert.deepEqual(v['run of a missing path'], { code: 1, cls: unknownClass(suite.containerd()) }) });
    });
    test('a program that cannot run: same error wording', async () => sameWording(await unrunnable()));

    test('running task: duplicate exec id, unknown exec, missing binary — same codes and classes', async () => {
      same(await running(), {
        ref: (v) => {
          assert.deepEqual(v['exec with a duplicate exec id'], { code: 1, cls: 'already exists' });
          assert.deepEqual(v['kill of an unknown exec id'], { code: 1, cls: 'not found' });
          assert.deepEqual(v['the dup exec itself'], { code: 137, cls: 'no message' });
        },
      });
    });
    test('running task: same error wording', async () => sameWording(await running()));

    test('paused task: pause twice, exec while paused — same codes and classes', async () => {
      same(await paused(), {
        ref: (v) => {
          assert.deepEqual(v['pause'], { code: 0, cls: 'ok' });
          assert.deepEqual(v['pause of a paused task'], { code: 1, cls: unknownClass(suite.containerd()) });
          assert.deepEqual(v['exec into a paused task'], { code: 1, cls: unknownClass(suite.containerd()) });
        },
      });
    });
    test('paused task: same error wording', async () => sameWording(await paused()));

    /**
     * The one deliberate difference from runc-v2 1.6.20: exec into a stopped task. runc-v2 sends Unknown;
     * issue 4 asks for FailedPrecondition (what later runc-v2 releases send once the init is gone). The words
     * are the same. This checks exactly that, and hands back both halves with that step taken out.
     */
    const withoutExecIntoStopped = (r: Both<Steps>): Both<Steps> => {
      const key = 'exec into a stopped task';
      const strip = (h: Half<Steps>, cls: string): Half<Steps> => {
        if (!h.value) return h;
        assert.deepEqual(h.value[key], { code: 1, cls }, `${h.tag}: ${key}`);
        assert.equal(h.value.wording[key], `ctr: cannot exec in a stopped state${cls === 'unclassified' ? '' : `: ${cls}`}`);
        const value = { ...h.value, wording: { ...h.value.wording } } as Steps;
        delete value[key];
        delete value.wording[key];
        return { ...h, value };
      };
      return { ...r, runc: strip(r.runc, unknownClass(suite.containerd())), tsrt: r.tsrt.map((h) => strip(h, 'failed precondition')) };
    };

    test('stopped task: exec (FailedPrecondition by design), pause, resume, kill — same codes and classes', async () => {
      same(withoutExecIntoStopped(await stopped()), {
        ref: (v) => assert.deepEqual(v['kill of a stopped task'], { code: 1, cls: 'not found' }),
      });
    });
    test('stopped task: same error wording', async () => sameWording(withoutExecIntoStopped(await stopped())));
  });

  describe('event order', () => {
    test('ctr run --rm: /tasks/create, start, exit, delete', async () => {
      const r = await both('events-run', async (x) => seen(x, await runRm(x, ['true'])));
      same(r, { ref: (_v, h) => assert.deepEqual(topicsOf(h), ['/tasks/create', '/tasks/start', '/tasks/exit', '/tasks/delete']) });
    });

    test('exec: exec-added, exec-started, exit (exec) before the init exit', async () => {
      const r = await both('events-exec', async (x) => {
        await detached(x);
        const exec = seen(x, await x.ctr(['task', 'exec', '--exec-id', 'x1', x.id, 'sh', '-c', 'exit 3']));
        await x.ok(['task', 'kill', '-s', 'SIGKILL', x.id]);
        const status = await statusAfter(x, 'STOPPED');
        return { exec, status };
      });
      same(r, {
        ref: (v, h) => {
          assert.deepEqual(v, { exec: { code: 3, stdout: '', stderr: '' }, status: 'STOPPED' });
          assert.deepEqual(topicsOf(h), [
            '/tasks/create',
            '/tasks/start',
            '/tasks/exec-added x1',
            '/tasks/exec-started x1',
            '/tasks/exit x1',
            '/tasks/exit',
            '/tasks/delete',
          ]);
        },
      });
    });
  });
});
