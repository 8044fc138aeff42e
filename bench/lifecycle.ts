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
  buildBusyboxImage,
  processesWithCwdUnder,
  startContainerd,
  tsrtDaemonDir,
  uniqueId,
  waitFor,
  type Containerd,
} from '../test/integration/harness.js';
import { isAlive, pssKiB, readCmdline } from '../test/integration/lib/procfs.js';
import { RUNTIMES, alternate, benchArgs, firstLines, fmt, printLatency, printTable, runBench, timeCtr, type Runtime, type Sample } from './common.js';
const IDLE_CONTAINERS = 10;

/** Remove whatever a failed `ctr run --rm` left behind for `id` (best effort). */
async function scrub(c: Containerd, id: string): Promise<void> {
  await c.ctr(['task', 'delete', '--force', id], { timeoutMs: 15_000 });
  await c.ctr(['containers', 'rm', id], { timeoutMs: 15_000 });
}

async function lifecycle(c: Containerd, image: string, rt: Runtime): Promise<Sample> {
  const id = uniqueId(rt === RUNC_V2 ? 'runc' : 'tsrt');
  const r = await timeCtr(c, ['run', '--rm', '--runtime', rt, image, id, 'true']);
  if (r.error) await scrub(c, id);
  return r;
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
  const { n, stopped } = benchArgs('bench/lifecycle.ts');
  const c = await startContainerd({ logLevel: 'info' });
  try {
    const image = await buildBusyboxImage(c);
    console.log(`containerd root ${c.root}; shim dir ${c.shimDir}; ${n} runs per runtime, alternating`);
    const runs = await alternate(n, (rt) => lifecycle(c, image, rt), { stop: stopped });
    printLatency('ctr run --rm IMG ID true', runs);

    if (!stopped()) {
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

runBench(main);
