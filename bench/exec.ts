// Exec benchmark: `ctr task exec --exec-id eN ID true` into a running container, wall clock as the
// caller sees it, io.containerd.runc.v2 vs io.containerd.tsrt.v2, alternating.
//
//   node --import tsx bench/exec.ts [N]     (N execs per runtime, default 30)
//
// Starts a private containerd through the integration harness, one detached `sleep 1000` container
// per runtime, and removes everything at the end.

import { buildBusyboxImage, startContainerd } from '../test/integration/harness.js';
import {
  RUNTIMES,
  alternate,
  benchArgs,
  printLatency,
  removeContainer,
  runBench,
  startContainer,
  timeCtr,
  type Runtime,
} from './common.js';

async function main(): Promise<void> {
  const { n, stopped } = benchArgs('bench/exec.ts');
  const c = await startContainerd({ logLevel: 'info' });
  const ids: Partial<Record<Runtime, string>> = {};
  try {
    const image = await buildBusyboxImage(c);
    console.log(`containerd root ${c.root}; shim dir ${c.shimDir}; ${n} execs per runtime, alternating`);
    const skipped = new Set<Runtime>();
    for (const rt of RUNTIMES) {
      const s = await startContainer(c, image, rt, 'bench-exec');
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
