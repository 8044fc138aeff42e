// Stats benchmark: the CPU a shim spends answering Stats, io.containerd.runc.v2 vs io.containerd.tsrt.v2.
// Stats is reached the way users reach it, through containerd's Tasks.Metrics (filter `id==ID`), which
// calls the shim's Stats once per matching task.
//
//   node --import tsx bench/stats.ts [N]      (N calls per runtime for one container, default 200)
//   BENCH_STATS_CONTAINERS=M (default 100), BENCH_STATS_ROUNDS=R (default 5)
//
// 1. one `sleep 1000` container per runtime: wall clock per Metrics call (alternating), and CPU of the
//    shim processes and of containerd over batches of N calls per runtime (two rounds, order swapped);
// 2. M containers per runtime: one Metrics call per container in a row, and one call naming all M ids;
//    wall clock and CPU per round, R rounds alternating;
// 3. PSS of the shim processes while the M containers per runtime run.
// CPU is read before and after a batch: on-CPU time of every thread (sum_exec_runtime, ns, from
// /proc/PID/task/TID/schedstat), and as a cross-check utime+stime from /proc/PID/stat. The latter comes in
// 10 ms ticks, truncated per process, and on our kernel reads low (often 0) for a process that used a few
// ms, so it undercounts 100 monitors or shims that each answer one call per round. Shim processes: runc-v2,
// each container's containerd-shim-runc-v2; tsrt, the tsrt daemon plus each container's monitor (the
// containerd-shim-tsrt-v2 process with `-id ID`). Starts a private containerd through the integration
// harness and removes everything at the end.

import { existsSync, readFileSync } from 'node:fs';
import { availableParallelism, release } from 'node:os';
import { basename, join } from 'node:path';
import { RUNC_V2, TSRT_V2, buildBusyboxImage, startContainerd, tsrtDaemonDir, type Containerd } from '../test/integration/harness.js';
import { listPids, pssKiB, readCmdline } from '../test/integration/lib/procfs.js';
import { tasksClientFor, type TasksClient } from '../test/integration/lib/tasks-client.js';
import {
  RUNTIMES,
  CLK_TCK,
  alternate,
  benchArgs,
  fmt,
  median,
  printLatency,
  printTable,
  removeContainer,
  runBench,
  startContainer,
  threadDelta,
  threadMs,
  tickMs,
  type Runtime,
  type Sample,
} from './common.js';

const START_CONCURRENCY = 4;

function envInt(name: string, dflt: number): number {
  const v = Number(process.env[name] ?? dflt);
  if (!Number.isInteger(v) || v < 1) throw new Error(`${name} must be an integer >= 1, got ${process.env[name]}`);
  return v;
}

/** The processes serving one runtime's containers: a shim (runc) or monitor (tsrt) each, and tsrt's daemon. */
interface Procs { shims: number[]; daemon?: number }

function findProcs(c: Containerd, rt: Runtime, ids: string[]): Procs {
  const want = new Set(ids);
  const bin = rt === RUNC_V2 ? 'containerd-shim-runc-v2' : 'containerd-shim-tsrt-v2';
  const shims: number[] = [];
  for (const pid of listPids()) {
    const argv = readCmdline(pid);
    const arg = (flag: string) => (argv.includes(flag) ? argv[argv.indexOf(flag) + 1] : undefined);
    if (basename(argv[0] ?? '') === bin && want.has(arg('-id') ?? '') && arg('-address') === c.address) shims.push(pid);
  }
  if (shims.length !== ids.length) throw new Error(`${rt}: ${shims.length} shim processes for ${ids.length} containers`);
  if (rt === RUNC_V2) return { shims };
  const daemon = Number(readFileSync(join(tsrtDaemonDir(c.ttrpcAddress), 'daemon.pid'), 'utf8').trim());
  if (!readCmdline(daemon).join(' ').includes('tsrt-daemon')) throw new Error(`daemon.pid ${daemon} is not a tsrt daemon`);
  return { shims, daemon };
}

/** CPU ms over a batch: per-container shims, tsrt's daemon (0 for runc), containerd; utime+stime of shims + daemon. */
interface Cpu { shims: number; daemon: number; containerd: number; ticks: number }
const ZERO: Cpu = { shims: 0, daemon: 0, containerd: 0, ticks: 0 };
const addCpu = (a: Cpu, b: Cpu): Cpu => ({ shims: a.shims + b.shims, daemon: a.daemon + b.daemon, containerd: a.containerd + b.containerd, ticks: a.ticks + b.ticks });

/** Snapshot now; the returned function gives the CPU used since. */
function cpuMeter(p: Procs, containerd: number): () => Cpu {
  const daemon = p.daemon ? [p.daemon] : [];
  const ticks = () => [...p.shims, ...daemon].reduce((s, pid) => s + tickMs(pid), 0);
  const before = { shims: threadMs(p.shims), daemon: threadMs(daemon), containerd: threadMs([containerd]), ticks: ticks() };
  return () => ({
    shims: threadDelta(before.shims, threadMs(p.shims)),
    daemon: threadDelta(before.daemon, threadMs(daemon)),
    containerd: threadDelta(before.containerd, threadMs([containerd])),
    ticks: ticks() - before.ticks,
  });
}

/** One Metrics call; it fails unless exactly `expect` metrics come back. */
async function metrics(tasks: TasksClient, filters: string[], expect: number): Promise<Sample> {
  const t0 = process.hrtime.bigint();
  const ms = () => Number(process.hrtime.bigint() - t0) / 1e6;
  try {
    const got = await tasks.metrics(filters);
    return got === expect ? { ms: ms() } : { ms: ms(), error: `${got} metrics, expected ${expect}` };
  } catch (e) {
    return { ms: ms(), error: (e as Error).message };
  }
}

/** Run `fn` over `items`, `width` at a time; returns the errors. */
async function pool<T>(items: T[], width: number, fn: (item: T) => Promise<string | undefined>, stop: () => boolean): Promise<string[]> {
  const errors: string[] = [];
  let next = 0;
  const worker = async () => {
    while (next < items.length && !stop()) {
      const e = await fn(items[next++] as T);
      if (e) errors.push(e);
    }
  };
  await Promise.all(Array.from({ length: width }, worker));
  return errors;
}

const orderOf = (round: number): readonly Runtime[] => (round % 2 === 0 ? RUNTIMES : [...RUNTIMES].reverse());
/** Which processes the shim CPU is from; for tsrt split into daemon and monitors (divided by `per`). */
function shimDetail(rt: Runtime, cpu: Cpu, nShims: number, per: number): string {
  const plural = nShims > 1 ? 's' : '';
  const d = per === 1 ? 1 : 3;
  return rt === RUNC_V2 ? `${nShims} shim${plural}` : `daemon ${fmt(cpu.daemon / per, d)} + ${nShims} monitor${plural} ${fmt(cpu.shims / per, d)}`;
}

async function main(): Promise<void> {
  const { n, stopped } = benchArgs('bench/stats.ts', 200);
  const m = envInt('BENCH_STATS_CONTAINERS', 100);
  const rounds = envInt('BENCH_STATS_ROUNDS', 5);
  const cgroup = existsSync('/sys/fs/cgroup/cgroup.controllers') ? 'cgroup v2' : 'cgroup v1/hybrid';
  console.log(`Stats RPC cost through containerd Tasks.Metrics, runc-v2 vs tsrt: wall clock, and CPU of the shim processes`);
  console.log(`and of containerd (threads' schedstat run time; utime+stime in ${fmt(1000 / CLK_TCK, 0)} ms ticks as a cross-check).`);
  console.log(`nproc ${availableParallelism()}, CLK_TCK ${CLK_TCK}, kernel ${release()}, ${cgroup}; N=${n}, ${m} containers, ${rounds} rounds`);

  const c = await startContainerd({ logLevel: 'info' });
  const started: string[] = [];
  const tasks = tasksClientFor(c);
  let image = '';
  const start = async (rt: Runtime, prefix: string): Promise<string> => {
    const s = await startContainer(c, image, rt, prefix);
    started.push(s.id);
    if (s.error) throw new Error(`${rt}: ${s.error}`);
    return s.id;
  };
  try {
    image = await buildBusyboxImage(c);
    const cd = c.pid!;
    console.log(`containerd root ${c.root} (pid ${cd}); shim dir ${c.shimDir}`);

    // ---- 1. one Stats call ------------------------------------------------------------------
    const one = { [RUNC_V2]: await start(RUNC_V2, 'bench-stats-one'), [TSRT_V2]: await start(TSRT_V2, 'bench-stats-one') };
    const procs1 = { [RUNC_V2]: findProcs(c, RUNC_V2, [one[RUNC_V2]]), [TSRT_V2]: findProcs(c, TSRT_V2, [one[TSRT_V2]]) };
    const call1 = (rt: Runtime) => metrics(tasks, [`id==${one[rt]}`], 1);
    printLatency(`1. one Stats call: Tasks.Metrics id==ID, ${n} calls per runtime alternating`, await alternate(n, call1, { stop: stopped }));

    const batch = { [RUNC_V2]: { calls: 0, failed: 0, wall: 0, cpu: ZERO }, [TSRT_V2]: { calls: 0, failed: 0, wall: 0, cpu: ZERO } };
    for (let round = 0; round < 2 && !stopped(); round++) {
      for (const rt of orderOf(round)) {
        const b = batch[rt];
        const since = cpuMeter(procs1[rt], cd);
        const t0 = performance.now();
        for (let i = 0; i < n && !stopped(); i++, b.calls++) if ((await call1(rt)).error) b.failed++;
        b.wall += performance.now() - t0;
        b.cpu = addCpu(b.cpu, since());
      }
    }
    if (stopped()) return;
    console.log(`\n1. one Stats call, CPU per call over 2 batches of ${n} calls per runtime (order swapped in the second)`);
    printTable(
      ['runtime', 'calls', 'failed', 'shim CPU ms/call', 'detail ms/call', 'utime+stime ms/call', 'containerd CPU ms/call', 'wall ms/call'],
      RUNTIMES.map((rt) => {
        const { calls, failed, wall, cpu } = batch[rt];
        return [rt, String(calls), String(failed), fmt((cpu.shims + cpu.daemon) / calls, 3), shimDetail(rt, cpu, 1, calls),
          fmt(cpu.ticks / calls, 3), fmt(cpu.containerd / calls, 3), fmt(wall / calls, 2)];
      }),
    );

    // ---- 2. M containers' Stats in a row ----------------------------------------------------------
    console.log(`\nstarting ${m} containers per runtime, ${START_CONCURRENCY} at a time…`);
    const many: Record<Runtime, string[]> = { [RUNC_V2]: [], [TSRT_V2]: [] };
    const jobs = Array.from({ length: 2 * m }, (_, i) => RUNTIMES[i % 2] as Runtime);
    const t0 = performance.now();
    const errors = await pool(jobs, START_CONCURRENCY, async (rt) => {
      try {
        many[rt].push(await start(rt, 'bench-stats'));
        return undefined;
      } catch (e) {
        return (e as Error).message;
      }
    }, stopped);
    if (stopped()) return;
    if (errors.length) throw new Error(`${errors.length} containers did not start; first: ${errors[0]}`);
    console.log(`  started in ${fmt((performance.now() - t0) / 1000)} s`);
    const procs = { [RUNC_V2]: findProcs(c, RUNC_V2, many[RUNC_V2]), [TSRT_V2]: findProcs(c, TSRT_V2, many[TSRT_V2]) };

    type Round = { wall: number; cpu: Cpu; failed: number };
    const res = { seq: { [RUNC_V2]: [] as Round[], [TSRT_V2]: [] as Round[] }, all: { [RUNC_V2]: [] as Round[], [TSRT_V2]: [] as Round[] } };
    const measure = async (rt: Runtime, body: () => Promise<number>): Promise<Round> => {
      const since = cpuMeter(procs[rt], cd);
      const t = performance.now();
      const failed = await body();
      return { wall: performance.now() - t, cpu: since(), failed };
    };
    for (let round = 0; round < rounds && !stopped(); round++) {
      for (const rt of orderOf(round)) {
        res.seq[rt].push(await measure(rt, async () => {
          let failed = 0;
          for (const id of many[rt]) if ((await metrics(tasks, [`id==${id}`], 1)).error) failed++;
          return failed;
        }));
        res.all[rt].push(await measure(rt, async () => {
          const s = await metrics(tasks, many[rt].map((id) => `id==${id}`), m);
          if (s.error) console.log(`  ${rt} all-ids call failed: ${s.error}`);
          return s.error ? 1 : 0;
        }));
      }
    }
    for (const [key, title] of [['seq', `(a) ${m} Metrics calls in a row, one id==ID each`], ['all', `(b) one Metrics call with ${m} id==ID filters`]] as const) {
      console.log(`\n2. ${m} containers per runtime, ${title}; per round, ${res[key][RUNC_V2].length} rounds alternating`);
      printTable(
        ['runtime', 'rounds', 'failed', 'wall ms median', 'wall ms/ctr', 'shim CPU ms mean', 'shim CPU ms/ctr', 'detail ms/round', 'utime+stime ms mean', 'containerd CPU ms mean'],
        RUNTIMES.map((rt) => {
          const rs = res[key][rt];
          const wall = median(rs.map((r) => r.wall).sort((a, b) => a - b));
          const total = rs.reduce((a, r) => addCpu(a, r.cpu), ZERO);
          const cpu: Cpu = { shims: total.shims / rs.length, daemon: total.daemon / rs.length, containerd: total.containerd / rs.length, ticks: total.ticks / rs.length };
          const shim = cpu.shims + cpu.daemon;
          return [rt, String(rs.length), String(rs.reduce((s, r) => s + r.failed, 0)), fmt(wall), fmt(wall / m, 2), fmt(shim),
            fmt(shim / m, 3), shimDetail(rt, cpu, m, 1), fmt(cpu.ticks), fmt(cpu.containerd)];
        }),
      );
    }

    // ---- 3. memory ---------------------------------------------------------------------------------
    console.log(`\n3. shim memory with ${m} + 1 containers per runtime running (sum of PSS, after the rounds above)`);
    printTable(
      ['runtime', 'procs', 'PSS MB', 'MB/container', 'detail'],
      RUNTIMES.map((rt) => {
        const shims = [...procs[rt].shims, ...procs1[rt].shims];
        const shimKiB = shims.reduce((s, pid) => s + pssKiB(pid), 0);
        const daemonKiB = procs[rt].daemon ? pssKiB(procs[rt].daemon) : 0;
        const total = (shimKiB + daemonKiB) / 1024;
        const detail = rt === RUNC_V2 ? `${shims.length} shims` : `${shims.length} monitors ${fmt(shimKiB / 1024)} MB + daemon ${fmt(daemonKiB / 1024)} MB`;
        return [rt, String(shims.length + (procs[rt].daemon ? 1 : 0)), fmt(total), fmt(total / shims.length, 2), detail];
      }),
    );
  } finally {
    tasks.close();
    // a Ctrl-C reaches containerd too (same process group): then stop() alone cleans up, without ctr
    if (c.pid !== undefined) {
      console.log(`\nremoving ${started.length} containers…`);
      await pool(started, START_CONCURRENCY, async (id) => { await removeContainer(c, id); return undefined; }, () => false);
    }
    await c.stop();
  }
}

runBench(main);
