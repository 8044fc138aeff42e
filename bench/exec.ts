// Exec benchmark: `ctr task exec --exec-id eN ID true` into a running container, wall clock as the
// caller sees it, io.containerd.runc.v2 vs io.containerd.tsrt.v2, alternating.
//
//   node --import tsx bench/exec.ts [N]     (N execs per runtime, default 30)
//
// Starts a private containerd through the integration harness, one detached `sleep 1000` container
// per runtime, and removes everything at the end.

import {
  RUNC_V2,
  TSRT_V2,
  buildBusyboxImage,
  startContainerd,
  taskStatus,
  uniqueId,
  waitFor,
  type Containerd,
} from '../test/integration/harness.js';

const RUNTIMES = [RUNC_V2, TSRT_V2] as const;
type Runtime = (typeof RUNTIMES)[number];

const short = (rt: Runtime) => (rt === RUNC_V2 ? 'runc' : 'tsrt');

function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length); // nearest-rank
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] as number;
}

function median(sorted: number[]): number {
  if (!sorted.length) return NaN;
  const m = sorted.length >> 1;
  return sorted.length % 2 ? (sorted[m] as number) : ((sorted[m - 1] as number) + (sorted[m] as number)) / 2;
}

const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);
const fmt = (n: number, digits = 1) => (Number.isFinite(n) ? n.toFixed(digits) : '-');

function printTable(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ');
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(line(r));
}

const firstLines = (s: string, n = 4) => s.trim().split('\n').slice(0, n).join('\n    ');

/** Start `sleep 1000` detached under `rt`; returns the container id or an error text. */
async function startContainer(c: Containerd, image: string, rt: Runtime): Promise<{ id: string; error?: string }> {
  const id = uniqueId(`bench-exec-${short(rt)}`);
  const r = await c.ctr(['run', '-d', '--runtime', rt, image, id, 'sleep', '1000'], { timeoutMs: 60_000 });
  if (r.code !== 0) return { id, error: `ctr run -d: exit ${r.code}: ${firstLines(r.stderr || r.stdout)}` };
  try {
    await waitFor(async () => (await taskStatus(c, id)) === 'RUNNING', 15_000, { what: `${id} RUNNING` });
  } catch (e) {
    return { id, error: (e as Error).message };
  }
  return { id };
}

async function removeContainer(c: Containerd, id: string): Promise<void> {
  await c.ctr(['task', 'kill', '-s', 'SIGKILL', id], { timeoutMs: 15_000 });
  await c.ctr(['task', 'delete', '--force', id], { timeoutMs: 30_000 });
  await c.ctr(['containers', 'rm', id], { timeoutMs: 15_000 });
}

async function execOnce(c: Containerd, id: string, execId: string): Promise<{ ms: number; error?: string }> {
  const t0 = process.hrtime.bigint();
  const r = await c.ctr(['task', 'exec', '--exec-id', execId, id, 'true'], { timeoutMs: 60_000 });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.code === 0) return { ms };
  const status = r.code !== null ? `exit ${r.code}` : `signal ${r.signal}`;
  return { ms, error: `${status}: ${firstLines(r.stderr || r.stdout)}` };
}

async function main(): Promise<void> {
  const n = Number(process.argv[2] ?? 30);
  if (!Number.isInteger(n) || n < 1) throw new Error(`usage: bench/exec.ts [N>=1], got ${process.argv[2]}`);

  const c = await startContainerd({ logLevel: 'info' });
  let interrupted = false;
  const onSignal = () => {
    if (interrupted) return;
    interrupted = true;
    console.error('\ninterrupted, cleaning up…');
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const ids: Partial<Record<Runtime, string>> = {};
  try {
    const image = await buildBusyboxImage(c);
    console.log(`containerd root ${c.root}; shim dir ${c.shimDir}; ${n} execs per runtime, alternating\n`);

    const times: Record<Runtime, number[]> = { [RUNC_V2]: [], [TSRT_V2]: [] };
    const failures: Record<Runtime, number> = { [RUNC_V2]: 0, [TSRT_V2]: 0 };
    const errorsShown: Record<Runtime, number> = { [RUNC_V2]: 0, [TSRT_V2]: 0 };
    const skipped = new Set<Runtime>();

    const report = (rt: Runtime, what: string, err: string) => {
      if (what !== 'warm-up') failures[rt]++;
      if (errorsShown[rt]++ < 3) console.log(`  ${rt} ${what} failed: ${err}`);
      else if (errorsShown[rt] === 4) console.log(`  ${rt}: further errors not shown`);
    };

    for (const rt of RUNTIMES) {
      const s = await startContainer(c, image, rt);
      ids[rt] = s.id;
      if (s.error) {
        console.log(`  ${rt}: no container, skipped: ${s.error}`);
        skipped.add(rt);
        continue;
      }
      const w = await execOnce(c, s.id, 'warmup');
      if (w.error) report(rt, 'warm-up', w.error);
    }

    for (let i = 0; i < n && !interrupted; i++) {
      const order = i % 2 === 0 ? RUNTIMES : [...RUNTIMES].reverse();
      for (const rt of order) {
        const id = ids[rt];
        if (skipped.has(rt) || !id) continue;
        const r = await execOnce(c, id, `e${i}`);
        if (r.error) report(rt, `exec ${i + 1}`, r.error);
        else times[rt].push(r.ms);
      }
    }

    console.log('\nctr task exec --exec-id eN ID true, wall clock');
    const sorted = (rt: Runtime) => [...times[rt]].sort((a, b) => a - b);
    const rows = RUNTIMES.map((rt) => {
      const s = sorted(rt);
      return [
        rt,
        String(s.length),
        skipped.has(rt) ? 'skipped' : String(failures[rt]),
        fmt(median(s)),
        fmt(percentile(s, 90)),
        fmt(mean(s)),
        fmt(s[0] ?? NaN),
      ];
    });
    printTable(['runtime', 'n', 'failed', 'median ms', 'p90 ms', 'mean ms', 'min ms'], rows);
    const ratio = median(sorted(TSRT_V2)) / median(sorted(RUNC_V2));
    console.log(`tsrt/runc-v2 ratio of medians: ${fmt(ratio, 2)}`);
  } finally {
    for (const id of Object.values(ids)) if (id) await removeContainer(c, id);
    await c.stop();
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e instanceof Error ? (e.stack ?? e.message) : e);
    process.exit(1);
  },
);
