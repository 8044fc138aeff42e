// Lifecycle benchmark: `ctr run --rm IMG ID true` end to end, io.containerd.runc.v2 vs
// io.containerd.tsrt.v2, alternating runs, plus idle shim memory with 10 detached containers.
//
//   node --import tsx bench/lifecycle.ts [N]     (N runs per runtime, default 30)
//
// Starts a private containerd through the integration harness and removes everything at the end.

import { readFileSync, readlinkSync } from 'node:fs';
import { basename, join } from 'node:path';
import {
  RUNC_V2,
  TSRT_V2,
  buildBusyboxImage,
  processesWithCwdUnder,
  startContainerd,
  tsrtDaemonDir,
  uniqueId,
  waitFor,
  type Containerd,
} from '../test/integration/harness.js';
import { isAlive, pssKiB, readCmdline } from '../test/integration/lib/procfs.js';

const RUNTIMES = [RUNC_V2, TSRT_V2] as const;
type Runtime = (typeof RUNTIMES)[number];
const IDLE_CONTAINERS = 10;

function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return NaN;
  // nearest-rank
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] as number;
}

const median = (sorted: number[]) => {
  if (!sorted.length) return NaN;
  const m = sorted.length >> 1;
  return sorted.length % 2 ? (sorted[m] as number) : ((sorted[m - 1] as number) + (sorted[m] as number)) / 2;
};

const fmt = (n: number, digits = 1) => (Number.isFinite(n) ? n.toFixed(digits) : '-');

function printTable(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ');
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(line(r));
}

function firstLines(s: string, n = 6): string {
  return s.trim().split('\n').slice(0, n).join('\n    ');
}

/** Remove whatever a failed `ctr run --rm` left behind for `id` (best effort). */
async function scrub(c: Containerd, id: string): Promise<void> {
  await c.ctr(['task', 'delete', '--force', id], { timeoutMs: 15_000 });
  await c.ctr(['containers', 'rm', id], { timeoutMs: 15_000 });
}

async function lifecycle(c: Containerd, image: string, rt: Runtime): Promise<{ ms: number; error?: string }> {
  const id = uniqueId(rt === RUNC_V2 ? 'runc' : 'tsrt');
  const t0 = process.hrtime.bigint();
  const r = await c.ctr(['run', '--rm', '--runtime', rt, image, id, 'true'], { timeoutMs: 60_000 });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.code === 0) return { ms };
  await scrub(c, id);
  const status = r.code !== null ? `exit ${r.code}` : `signal ${r.signal}`;
  return { ms, error: `${status}: ${firstLines(r.stderr || r.stdout)}` };
}

function exeName(pid: number): string {
  try {
    return basename(readlinkSync(`/proc/${pid}/exe`));
  } catch {
    return basename(readCmdline(pid)[0] ?? '');
  }
}

interface MemSample {
  processes: number;
  pssKiB: number;
  detail: string;
}

/** PSS of the shim processes of `rt` that belong to this containerd. */
function shimMemory(c: Containerd, rt: Runtime): MemSample {
  const underRoot = processesWithCwdUnder(c.root).filter((p) => p.pid !== c.pid);
  if (rt === RUNC_V2) {
    const shims = underRoot.filter((p) => exeName(p.pid) === 'containerd-shim-runc-v2');
    const total = shims.reduce((s, p) => s + pssKiB(p.pid), 0);
    return { processes: shims.length, pssKiB: total, detail: `${shims.length} shims` };
  }
  const monitors = underRoot.filter((p) => exeName(p.pid) !== 'containerd-shim-runc-v2');
  const monitorPss = monitors.reduce((s, p) => s + pssKiB(p.pid), 0);
  let daemonPss = 0;
  let daemons = 0;
  try {
    const pid = Number(readFileSync(join(tsrtDaemonDir(c.ttrpcAddress), 'daemon.pid'), 'utf8').trim());
    if (pid > 1 && isAlive(pid) && readCmdline(pid).join(' ').includes('tsrt-daemon')) {
      daemonPss = pssKiB(pid);
      daemons = 1;
    }
  } catch {
    /* no daemon */
  }
  return {
    processes: monitors.length + daemons,
    pssKiB: monitorPss + daemonPss,
    detail: `${monitors.length} monitors ${fmt(monitorPss / 1024)} MB + ${daemons} daemon ${fmt(daemonPss / 1024)} MB`,
  };
}

async function idleMemory(c: Containerd, image: string, rt: Runtime): Promise<MemSample | string> {
  const ids: string[] = [];
  try {
    for (let i = 0; i < IDLE_CONTAINERS; i++) {
      const id = uniqueId(`idle-${rt === RUNC_V2 ? 'runc' : 'tsrt'}`);
      ids.push(id);
      const r = await c.ctr(['run', '-d', '--runtime', rt, image, id, 'sleep', '1000000'], { timeoutMs: 60_000 });
      if (r.code !== 0) return `starting container ${i + 1}: ${firstLines(r.stderr || r.stdout)}`;
    }
    await waitFor(
      async () => {
        const ls = (await c.ctr(['task', 'ls'], { timeoutMs: 15_000 })).stdout.split('\n');
        return ids.every((id) => ls.some((l) => l.startsWith(id + ' ') && /\bRUNNING\b/.test(l)));
      },
      30_000,
      { what: 'idle containers RUNNING', intervalMs: 200 },
    );
    await new Promise((r) => setTimeout(r, 1500)); // let start-up garbage settle
    return shimMemory(c, rt);
  } catch (e) {
    return (e as Error).message;
  } finally {
    await Promise.all(ids.map((id) => scrub(c, id)));
  }
}

async function main(): Promise<void> {
  const n = Number(process.argv[2] ?? 30);
  if (!Number.isInteger(n) || n < 1) throw new Error(`usage: bench/lifecycle.ts [N>=1], got ${process.argv[2]}`);

  const c = await startContainerd({ logLevel: 'info' });
  let interrupted = false;
  const onSignal = () => {
    if (interrupted) return;
    interrupted = true;
    console.error('\ninterrupted, cleaning up…');
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const image = await buildBusyboxImage(c);
    console.log(`containerd root ${c.root}; shim dir ${c.shimDir}; ${n} runs per runtime, alternating\n`);

    const times: Record<Runtime, number[]> = { [RUNC_V2]: [], [TSRT_V2]: [] };
    const failures: Record<Runtime, number> = { [RUNC_V2]: 0, [TSRT_V2]: 0 };
    const errorsShown: Record<Runtime, number> = { [RUNC_V2]: 0, [TSRT_V2]: 0 };

    const report = (rt: Runtime, what: string, err: string) => {
      if (what !== 'warm-up') failures[rt]++;
      if (errorsShown[rt]++ < 3) console.log(`  ${rt} ${what} failed: ${err}`);
      else if (errorsShown[rt] === 4) console.log(`  ${rt}: further errors not shown`);
    };

    for (const rt of RUNTIMES) {
      const w = await lifecycle(c, image, rt);
      if (w.error) report(rt, 'warm-up', w.error);
    }
    for (let i = 0; i < n && !interrupted; i++) {
      const order = i % 2 === 0 ? RUNTIMES : [...RUNTIMES].reverse();
      for (const rt of order) {
        const r = await lifecycle(c, image, rt);
        if (r.error) report(rt, `run ${i + 1}`, r.error);
        else times[rt].push(r.ms);
      }
    }

    console.log('\nctr run --rm IMG ID true, wall clock');
    const rows = RUNTIMES.map((rt) => {
      const s = [...times[rt]].sort((a, b) => a - b);
      return [rt, String(s.length), String(failures[rt]), fmt(median(s)), fmt(percentile(s, 90)), fmt(s[0] ?? NaN)];
    });
    printTable(['runtime', 'n', 'failed', 'median ms', 'p90 ms', 'min ms'], rows);
    const sorted = (rt: Runtime) => [...times[rt]].sort((a, b) => a - b);
    const ratio = median(sorted(TSRT_V2)) / median(sorted(RUNC_V2));
    console.log(`tsrt/runc-v2 ratio of medians: ${fmt(ratio, 2)}`);

    if (!interrupted) {
      console.log(`\nidle shim memory, ${IDLE_CONTAINERS} detached containers per runtime (sum of PSS)`);
      const memRows: string[][] = [];
      for (const rt of RUNTIMES) {
        const m = await idleMemory(c, image, rt);
        if (typeof m === 'string') {
          console.log(`  ${rt} failed: ${m}`);
          memRows.push([rt, '-', '-', '-', 'failed']);
        } else {
          memRows.push([
            rt,
            String(m.processes),
            fmt(m.pssKiB / 1024),
            fmt(m.pssKiB / 1024 / IDLE_CONTAINERS, 2),
            m.detail,
          ]);
        }
      }
      printTable(['runtime', 'procs', 'PSS MB', 'MB/container', 'detail'], memRows);
    }
  } finally {
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
