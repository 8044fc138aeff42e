// Exec benchmark: `ctr task exec --exec-id eN ID true` into a running container, wall clock as the
// caller sees it, io.containerd.runc.v2 vs io.containerd.tsrt.v2, alternating.
//
//   node --import tsx bench/exec.ts [N]     (N execs per runtime, default 30)
//
// Starts a private containerd through the integration harness, one detached `sleep 1000` container
// per runtime, and removes everything at the end.

import {
  RUNC_V2,
  buildBusyboxImage,
  startContainerd,
  taskStatus,
  uniqueId,
  waitFor,
  type Containerd,
} from '../test/integration/harness.js';
import { RUNTIMES, alternate, benchArgs, firstLines, printLatency, runBench, timeCtr, type Runtime } from './common.js';

const short = (rt: Runtime) => (rt === RUNC_V2 ? 'runc' : 'tsrt');

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

async function main(): Promise<void> {
  const { n, stopped } = benchArgs('bench/exec.ts');
  const c = await startContainerd({ logLevel: 'info' });
  const ids: Partial<Record<Runtime, string>> = {};
  try {
    const image = await buildBusyboxImage(c);
    console.log(`containerd root ${c.root}; shim dir ${c.shimDir}; ${n} execs per runtime, alternating`);
    const skipped = new Set<Runtime>();
    for (const rt of RUNTIMES) {
      const s = await startContainer(c, image, rt);
      ids[rt] = s.id;
      if (s.error) {
        console.log(`  ${rt}: no container, skipped: ${s.error}`);
        skipped.add(rt);
      }
    }
    const exec = (rt: Runtime, round: number | 'warm-up') =>
      timeCtr(c, ['task', 'exec', '--exec-id', round === 'warm-up' ? 'warmup' : `e${round}`, ids[rt]!, 'true']);
    const runs = await alternate(n, exec, { stop: stopped, skip: skipped });
    printLatency('ctr task exec --exec-id eN ID true', runs, skipped);
  } finally {
    for (const id of Object.values(ids)) if (id) await removeContainer(c, id);
    await c.stop();
  }
}

runBench(main);
