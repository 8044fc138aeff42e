// Figures, tables and the alternating latency runs the bench scripts share.
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { RUNC_V2, TSRT_V2, uniqueId, waitFor, type Containerd } from '../test/integration/harness.js';

// the bench scripts remove their containers the way the tests do
export { removeContainer } from '../test/integration/harness.js';
import { tasksClientFor } from '../test/integration/lib/tasks-client.js';

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] as number;
}

export function median(sorted: number[]): number {
  if (!sorted.length) return NaN;
  const m = sorted.length >> 1;
  return sorted.length % 2 ? (sorted[m] as number) : ((sorted[m - 1] as number) + (sorted[m] as number)) / 2;
}

export const mean = (xs: number[]): number => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);

export const fmt = (n: number, digits = 1): string => (Number.isFinite(n) ? n.toFixed(digits) : '-');

/** First column left-aligned, the others right-aligned, a dashed rule under the header. */
export function printTable(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ');
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(line(r));
}

/** The first lines of a command's output, indented for an error report. */
export const firstLines = (s: string, n = 6): string => s.trim().split('\n').slice(0, n).join('\n    ');

// ---- latency runs shared by the bench scripts -------------------------------------------------

export const RUNTIMES = [RUNC_V2, TSRT_V2] as const;
export type Runtime = (typeof RUNTIMES)[number];

/** One timed operation: its wall clock, or why it failed. */
export interface Sample { ms: number; error?: string }

export interface LatencyRuns {
  times: Record<Runtime, number[]>;
  failures: Record<Runtime, number>;
}

/**
 * One warm-up per runtime, then `n` rounds alternating which runtime goes first, so that both see the
 * same machine load. `skip` leaves a runtime out (e.g. its container could not start). The first three
 * errors per runtime are printed.
 */
export async function alternate(n: number, op: (rt: Runtime, round: number | 'warm-up') => Promise<Sample>,
  opts: { stop: () => boolean; skip?: ReadonlySet<Runtime> }): Promise<LatencyRuns> {
  const times: Record<Runtime, number[]> = { [RUNC_V2]: [], [TSRT_V2]: [] };
  const failures: Record<Runtime, number> = { [RUNC_V2]: 0, [TSRT_V2]: 0 };
  const shown: Record<Runtime, number> = { [RUNC_V2]: 0, [TSRT_V2]: 0 };
  const report = (rt: Runtime, what: string, err: string) => {
    if (what !== 'warm-up') failures[rt]++;
    if (shown[rt]++ < 3) console.log(`  ${rt} ${what} failed: ${err}`);
    else if (shown[rt] === 4) console.log(`  ${rt}: further errors not shown`);
  };
  const active = RUNTIMES.filter((rt) => !opts.skip?.has(rt));
  for (const rt of active) {
    const w = await op(rt, 'warm-up');
    if (w.error) report(rt, 'warm-up', w.error);
  }
  for (let i = 0; i < n && !opts.stop(); i++) {
    for (const rt of i % 2 === 0 ? active : [...active].reverse()) {
      const r = await op(rt, i);
      if (r.error) report(rt, `run ${i + 1}`, r.error);
      else times[rt].push(r.ms);
    }
  }
  return { times, failures };
}

/** The latency table (median, p90, mean, min) and the ratio of medians. */
export function printLatency(title: string, runs: LatencyRuns, skip?: ReadonlySet<Runtime>): void {
  console.log(`\n${title}, wall clock`);
  const sorted = (rt: Runtime) => [...runs.times[rt]].sort((a, b) => a - b);
  const rows = RUNTIMES.map((rt) => {
    const s = sorted(rt);
    const failed = skip?.has(rt) ? 'skipped' : String(runs.failures[rt]);
    return [rt, String(s.length), failed, fmt(median(s)), fmt(percentile(s, 90)), fmt(mean(s)), fmt(s[0] ?? NaN)];
  });
  printTable(['runtime', 'n', 'failed', 'median ms', 'p90 ms', 'mean ms', 'min ms'], rows);
  console.log(`tsrt/runc-v2 ratio of medians: ${fmt(median(sorted(TSRT_V2)) / median(sorted(RUNC_V2)), 2)}`);
}

/** Times one ctr command; a non-zero exit is a failed sample. */
export async function timeCtr(c: Containerd, args: string[]): Promise<Sample> {
  const t0 = process.hrtime.bigint();
  const r = await c.ctr(args, { timeoutMs: 60_000 });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.code === 0) return { ms };
  const status = r.code !== null ? `exit ${r.code}` : `signal ${r.signal}`;
  return { ms, error: `${status}: ${firstLines(r.stderr || r.stdout)}` };
}

// ---- detached containers ------------------------------------------------------------------------

export const short = (rt: Runtime): string => (rt === RUNC_V2 ? 'runc' : 'tsrt');

/**
 * Start `sleep 1000` detached under `rt` as `<prefix>-<runtime>-<unique>`; returns the container id (to
 * remove even on failure) and an error text if it did not reach RUNNING. Waits with Tasks.Get, not
 * `ctr task ls` (which asks every shim for its State).
 */
export async function startContainer(c: Containerd, image: string, rt: Runtime, prefix: string): Promise<{ id: string; error?: string }> {
  const id = uniqueId(`${prefix}-${short(rt)}`);
  const r = await c.ctr(['run', '-d', '--runtime', rt, image, id, 'sleep', '1000'], { timeoutMs: 60_000 });
  if (r.code !== 0) return { id, error: `ctr run -d: exit ${r.code}: ${firstLines(r.stderr || r.stdout)}` };
  const tasks = tasksClientFor(c);
  try {
    await waitFor(async () => (await tasks.get(id)).status === 2 /* RUNNING */, 15_000, { what: `${id} RUNNING` });
  } catch (e) {
    return { id, error: (e as Error).message };
  } finally {
    tasks.close();
  }
  return { id };
}

/** N from argv (default `defaultN`), and a flag that turns true on SIGINT/SIGTERM so the script can clean up. */
export function benchArgs(script: string, defaultN = 30): { n: number; stopped: () => boolean } {
  const n = Number(process.argv[2] ?? defaultN);
  if (!Number.isInteger(n) || n < 1) throw new Error(`usage: ${script} [N>=1], got ${process.argv[2]}`);
  let stopped = false;
  const onSignal = () => {
    if (stopped) return;
    stopped = true;
    console.error('\ninterrupted, cleaning up…');
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return { n, stopped: () => stopped };
}

/** Runs a bench's main and exits with its outcome. */
export function runBench(main: () => Promise<void>): void {
  main().then(
    () => process.exit(0),
    (e: unknown) => {
      console.error(e instanceof Error ? (e.stack ?? e.message) : e);
      process.exit(1);
    },
  );
}

// ---- CPU of processes -----------------------------------------------------------------------------

export const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/** utime+stime of a process in ms (NaN once it is gone). */
export function tickMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // f[0] is field 3; utime, stime are 14, 15
    return ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK;
  } catch {
    return NaN;
  }
}

/** On-CPU ms of each thread of `pids`, by tid (first field of /proc/PID/task/TID/schedstat, in ns). */
export function threadMs(pids: number[]): Map<number, number> {
  const out = new Map<number, number>();
  for (const pid of pids) {
    let tids: string[] = [];
    try {
      tids = readdirSync(`/proc/${pid}/task`);
    } catch {
      /* gone */
    }
    for (const tid of tids) {
      try {
        out.set(Number(tid), Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]) / 1e6);
      } catch {
        /* thread gone */
      }
    }
  }
  return out;
}

/** CPU ms the threads in `after` used since `before` (a new thread counts whole; one that exited is lost). */
export const threadDelta = (before: Map<number, number>, after: Map<number, number>): number =>
  [...after].reduce((s, [tid, ms]) => s + ms - (before.get(tid) ?? 0), 0);
