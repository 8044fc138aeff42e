// Native backend benchmark: `ctr run --rm IMG ID true` and `ctr task exec ID true` through runc-v2 (with
// runc), tsrt with runc, and tsrt with the native backend (no runc), alternating in one run.
//
//   node --import tsx bench/native.ts [N]     (N runs per column and operation, default 30)
//
// Starts a private containerd through the integration harness and removes everything at the end.
import { RUNC_V2, TSRT_V2, buildBusyboxImage, startContainerd, uniqueId, type Containerd } from '../test/integration/harness.js';
import { benchArgs, fmt, mean, median, percentile, printTable, removeContainer, runBench, timeCtr, type Sample } from './common.js';

interface Column { name: string; rt: string[] }
const COLUMNS: Column[] = [
  { name: 'runc-v2 + runc', rt: ['--runtime', RUNC_V2] },
  { name: 'tsrt + runc', rt: ['--runtime', TSRT_V2] },
  { name: 'tsrt + native', rt: ['--runtime', TSRT_V2, '--annotation', 'io.tsrt.backend=native'] },
];

/** n rounds of `op` per column, the column order reversed every other round; a warm-up each first. */
async function rounds(n: number, stopped: () => boolean, op: (col: Column, round: number | 'warm-up') => Promise<Sample>): Promise<Map<string, { ms: number[]; failed: number; last?: string }>> {
  const out = new Map(COLUMNS.map((c) => [c.name, { ms: [] as number[], failed: 0, last: undefined as string | undefined }]));
  for (const col of COLUMNS) await op(col, 'warm-up');
  for (let i = 0; i < n && !stopped(); i++) {
    for (const col of i % 2 === 0 ? COLUMNS : [...COLUMNS].reverse()) {
      const s = await op(col, i);
      const r = out.get(col.name)!;
      if (s.error) { r.failed++; r.last = s.error; } else r.ms.push(s.ms);
    }
  }
  return out;
}

function print(title: string, runs: Map<string, { ms: number[]; failed: number; last?: string }>): void {
  console.log(`\n${title}, wall clock`);
  const ref = median([...runs.get(COLUMNS[0]!.name)!.ms].sort((a, b) => a - b));
  printTable(['column', 'n', 'failed', 'median ms', 'p90 ms', 'mean ms', 'min ms', 'vs runc-v2'], COLUMNS.map((col) => {
    const r = runs.get(col.name)!;
    const s = [...r.ms].sort((a, b) => a - b);
    return [col.name, String(s.length), String(r.failed), fmt(median(s)), fmt(percentile(s, 90)), fmt(mean(s)), fmt(s[0] ?? NaN), fmt(median(s) / ref, 2)];
  }));
  for (const col of COLUMNS) { const r = runs.get(col.name)!; if (r.last) console.log(`  ${col.name}: last failure: ${r.last}`); }
}

async function main(): Promise<void> {
  const { n, stopped } = benchArgs('bench/native.ts');
  const c: Containerd = await startContainerd({ logLevel: 'info' });
  const running = new Map<string, string>();
  try {
    const image = await buildBusyboxImage(c);
    console.log(`containerd root ${c.root}; shim dir ${c.shimDir}; ${n} runs per column, alternating`);
    print('ctr run --rm IMG ID true', await rounds(n, stopped, async (col) => {
      const id = uniqueId('bench-nat');
      const s = await timeCtr(c, ['run', '--rm', ...col.rt, image, id, 'true']);
      if (s.error) await removeContainer(c, id);
      return s;
    }));
    for (const col of COLUMNS) {
      const id = uniqueId('bench-nat-exec');
      await c.ctrOk(['run', '-d', ...col.rt, image, id, 'sleep', '100000']);
      running.set(col.name, id);
    }
    print('ctr task exec --exec-id eN ID true', await rounds(n, stopped, (col, round) =>
      timeCtr(c, ['task', 'exec', '--exec-id', round === 'warm-up' ? 'warmup' : `e${round}`, running.get(col.name)!, 'true'])));
  } finally {
    for (const id of running.values()) await removeContainer(c, id);
    await c.stop();
  }
}

runBench(main);
