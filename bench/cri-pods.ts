// CRI pod benchmark: pods started the way the kubelet starts them (containerd's CRI plugin over gRPC,
// lib/cri-harness.ts), runtime handler `runc` (io.containerd.runc.v2) vs `tsrt` (io.containerd.tsrt.v2).
//
//   node --import tsx bench/cri-pods.ts [R]      (R rounds, default 3)
//   BENCH_PODS=P (default 10), BENCH_PROBES=N (default 100)
//
// Each round, for both handlers, the order swapped every round so that machine noise hits both:
// 1. P pods, each a pause sandbox plus two `sleep` containers, all P started at once (as the kubelet's pod
//    workers do): wall clock from the first RunPodSandbox until every container is RUNNING;
// 2. with both handlers' pods up, the PSS of each handler's shim processes (runc-v2: one
//    containerd-shim-runc-v2 per pod; tsrt: one monitor per pod plus the tsrt daemon of this containerd);
// 3. N ExecSync probes (`true`) into one container of each handler, alternating: wall clock per probe, and
//    the CPU of that handler's shim processes over the N probes (threads' schedstat run time, and utime+stime
//    as a cross-check; runc's own CPU, spent in `runc exec` children, is not the shim's and is not counted);
// 4. StopPodSandbox + RemovePodSandbox of the P pods, all at once: wall clock.
// No pass/fail on the figures. Starts a private containerd with CRI and removes everything at the end.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tsrtDaemonDir } from '../test/integration/harness.js';
import { HANDLER_NAMES, criForFile, type CriSuite, type Handler, type Pod } from '../test/integration/lib/cri-harness.js';
import { isAlive, pssKiB, readCmdline } from '../test/integration/lib/procfs.js';
import { benchArgs, fmt, mean, median, percentile, printTable, runBench, threadDelta, threadMs, tickMs } from './common.js';

function envInt(name: string, dflt: number): number {
  const v = Number(process.env[name] ?? dflt);
  if (!Number.isInteger(v) || v < 1) throw new Error(`${name} must be an integer >= 1, got ${process.env[name]}`);
  return v;
}

const ms = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6;

/** The shim processes serving `pods` (by their sandbox ids), and for tsrt the daemon of this containerd. */
function shimProcs(suite: CriSuite, h: Handler, pods: Pod[]): { shims: number[]; daemon?: number } {
  const ids = new Set(pods.map((p) => p.id));
  const bin = h === 'runc' ? 'containerd-shim-runc-v2' : 'containerd-shim-tsrt-v2';
  const shims = suite.shimPids().filter((s) => s.runtime === bin && ids.has(s.id)).map((s) => s.pid);
  if (shims.length !== pods.length) throw new Error(`${h}: ${shims.length} shim processes for ${pods.length} pods`);
  if (h === 'runc') return { shims };
  const daemon = Number(readFileSync(join(tsrtDaemonDir(suite.containerd().ttrpcAddress), 'daemon.pid'), 'utf8').trim());
  if (!isAlive(daemon) || !readCmdline(daemon).join(' ').includes('tsrt-daemon')) throw new Error(`daemon.pid ${daemon} is not a live tsrt daemon`);
  return { shims, daemon };
}

interface Round {
  startMs: Record<Handler, number>;
  removeMs: Record<Handler, number>;
  pss: Record<Handler, { shims: number; daemon: number; procs: number }>;
  probeMs: Record<Handler, number[]>;
  probeCpu: Record<Handler, { sched: number; ticks: number; daemon: number }>;
  probeFailures: Record<Handler, number>;
}

async function startPods(suite: CriSuite, h: Handler, n: number, round: number): Promise<{ pods: Pod[]; ms: number }> {
  const t0 = process.hrtime.bigint();
  const pods: Pod[] = [];
  await Promise.all(Array.from({ length: n }, async (_, i) => {
    const pod = await suite.runPod(h, { name: `bench-${h}-${round}-${i}` });
    pods.push(pod);
    for (const name of ['app-a', 'app-b']) await pod.start(name, { command: ['sleep', '1000000'] });
    for (const id of pod.containers.keys()) {
      const st = await pod.cri.containerStatus(id);
      if (st.state !== 'CONTAINER_RUNNING') throw new Error(`${h} pod ${i}: ${id} is ${st.state}`);
    }
  }));
  return { pods, ms: ms(t0) };
}

async function removePods(pods: Pod[]): Promise<number> {
  const t0 = process.hrtime.bigint();
  await Promise.all(pods.filter((p) => !p.removed).map((p) => p.remove()));
  return ms(t0);
}

async function main(): Promise<void> {
  const { n: rounds, stopped } = benchArgs('bench/cri-pods.ts', 3);
  const nPods = envInt('BENCH_PODS', 10);
  const nProbes = envInt('BENCH_PROBES', 100);
  const before: Array<() => Promise<void>> = [];
  const after: Array<() => Promise<void>> = [];
  const suite = criForFile({ before: (fn) => before.push(fn), after: (fn) => after.unshift(fn) }, { logLevel: 'info' });
  const results: Round[] = [];
  try {
    for (const fn of before) await fn();
    const c = suite.containerd();
    console.log(`CRI pods, handler runc (io.containerd.runc.v2) vs tsrt (io.containerd.tsrt.v2): containerd ${c.dist.version}`);
    console.log(`${rounds} rounds of ${nPods} pods (pause + 2 sleep containers) per handler, ${nProbes} ExecSync probes per handler per round`);
    for (let r = 0; r < rounds && !stopped(); r++) {
      const order = r % 2 === 0 ? HANDLER_NAMES : [...HANDLER_NAMES].reverse();
      const round = { startMs: {}, removeMs: {}, pss: {}, probeMs: { runc: [], tsrt: [] }, probeCpu: {}, probeFailures: { runc: 0, tsrt: 0 } } as unknown as Round;
      const pods = {} as Record<Handler, Pod[]>;
      try {
        for (const h of order) {
          const s = await startPods(suite, h, nPods, r);
          pods[h] = s.pods;
          round.startMs[h] = s.ms;
        }
        // let the start-up work settle before the memory is read (as bench/lifecycle.ts does)
        await new Promise((res) => setTimeout(res, 1500));
        const procs = {} as Record<Handler, ReturnType<typeof shimProcs>>;
        for (const h of HANDLER_NAMES) {
          procs[h] = shimProcs(suite, h, pods[h]);
          const shims = procs[h].shims.reduce((a, pid) => a + pssKiB(pid), 0);
          const daemon = procs[h].daemon ? pssKiB(procs[h].daemon!) : 0;
          round.pss[h] = { shims, daemon, procs: procs[h].shims.length + (procs[h].daemon ? 1 : 0) };
        }
        // ExecSync probes, alternating, into the first container of each handler's first pod
        const target = {} as Record<Handler, string>;
        for (const h of HANDLER_NAMES) target[h] = [...pods[h][0]!.containers.keys()][0]!;
        const meters = {} as Record<Handler, { threads: Map<number, number>; daemon: Map<number, number>; ticks: number }>;
        const ticks = (h: Handler) => [...procs[h].shims, ...(procs[h].daemon ? [procs[h].daemon!] : [])].reduce((a, pid) => a + tickMs(pid), 0);
        for (const h of HANDLER_NAMES) {
          meters[h] = { threads: threadMs(procs[h].shims), daemon: threadMs(procs[h].daemon ? [procs[h].daemon!] : []), ticks: ticks(h) };
        }
        for (let i = 0; i < nProbes && !stopped(); i++) {
          for (const h of i % 2 === 0 ? order : [...order].reverse()) {
            const t0 = process.hrtime.bigint();
            try {
              const res = await suite.cri().execSync(target[h], ['true'], 10);
              if (res.exitCode !== 0) throw new Error(`exit code ${res.exitCode}`);
              round.probeMs[h].push(ms(t0));
            } catch (e) {
              if (round.probeFailures[h]++ < 3) console.log(`  ${h} probe ${i + 1} failed: ${(e as Error).message}`);
            }
          }
        }
        for (const h of HANDLER_NAMES) {
          const daemon = threadDelta(meters[h].daemon, threadMs(procs[h].daemon ? [procs[h].daemon!] : []));
          round.probeCpu[h] = { sched: threadDelta(meters[h].threads, threadMs(procs[h].shims)) + daemon, ticks: ticks(h) - meters[h].ticks, daemon };
        }
      } finally {
        for (const h of order) if (pods[h]) round.removeMs[h] = await removePods(pods[h]);
      }
      results.push(round);
      const line = (h: Handler) => `${h} start ${fmt(round.startMs[h] / 1000, 2)} s, PSS ${fmt((round.pss[h].shims + round.pss[h].daemon) / 1024)} MB, ` +
        `probe median ${fmt(median([...round.probeMs[h]].sort((a, b) => a - b)))} ms`;
      console.log(`round ${r + 1}: ${HANDLER_NAMES.map(line).join('; ')}`);
    }
  } finally {
    for (const fn of after) await fn();
  }

  if (!results.length) return;
  const med = (xs: number[]) => median([...xs].sort((a, b) => a - b));
  const per = <T>(f: (r: Round, h: Handler) => T) => (h: Handler) => results.map((r) => f(r, h));

  console.log(`\n${nPods} pods (pause + 2 containers), all started at once: median over ${results.length} rounds`);
  printTable(['handler', 'to all running s', 'remove all s', 'shim procs', 'shim PSS MB', 'PSS/pod MB', 'detail'], HANDLER_NAMES.map((h) => {
    const pss = per((r, x) => r.pss[x].shims + r.pss[x].daemon)(h);
    const shims = med(per((r, x) => r.pss[x].shims)(h));
    const daemon = med(per((r, x) => r.pss[x].daemon)(h));
    const detail = h === 'runc' ? `${nPods} shims` : `${nPods} monitors ${fmt(shims / 1024)} MB + daemon ${fmt(daemon / 1024)} MB`;
    return [h, fmt(med(per((r, x) => r.startMs[x])(h)) / 1000, 2), fmt(med(per((r, x) => r.removeMs[x])(h)) / 1000, 2),
      String(results[0]!.pss[h].procs), fmt(med(pss) / 1024), fmt(med(pss) / 1024 / nPods, 2), detail];
  }));
  const r0 = (h: Handler) => med(per((r, x) => r.startMs[x])(h));
  console.log(`tsrt/runc ratio: to all running ${fmt(r0('tsrt') / r0('runc'), 2)}, shim PSS ` +
    `${fmt(med(per((r, x) => r.pss[x].shims + r.pss[x].daemon)('tsrt')) / med(per((r, x) => r.pss[x].shims + r.pss[x].daemon)('runc')), 2)}`);

  console.log(`\nExecSync \`true\` into a running container, ${nProbes} per handler per round, alternating`);
  printTable(['handler', 'n', 'failed', 'median ms', 'p90 ms', 'mean ms', `${nProbes} probes s`, 'shim CPU ms', 'CPU/probe ms', 'utime+stime ms', 'of it daemon ms'],
    HANDLER_NAMES.map((h) => {
      const all = results.flatMap((r) => r.probeMs[h]).sort((a, b) => a - b);
      const count = results.reduce((a, r) => a + r.probeMs[h].length + r.probeFailures[h], 0) / results.length;
      const cpu = med(per((r, x) => r.probeCpu[x].sched)(h));
      return [h, String(all.length), String(results.reduce((a, r) => a + r.probeFailures[h], 0)), fmt(median(all)), fmt(percentile(all, 90)),
        fmt(mean(all)), fmt(med(per((r, x) => r.probeMs[x].reduce((a, b) => a + b, 0))(h)) / 1000, 2), fmt(cpu, 0), fmt(cpu / count, 2),
        fmt(med(per((r, x) => r.probeCpu[x].ticks)(h)), 0), h === 'tsrt' ? fmt(med(per((r, x) => r.probeCpu[x].daemon)(h)), 0) : '-'];
    }));
  const pm = (h: Handler) => median(results.flatMap((r) => r.probeMs[h]).sort((a, b) => a - b));
  console.log(`tsrt/runc ratio: probe median ${fmt(pm('tsrt') / pm('runc'), 2)}, shim CPU ` +
    `${fmt(med(per((r, x) => r.probeCpu[x].sched)('tsrt')) / med(per((r, x) => r.probeCpu[x].sched)('runc')), 2)}`);
  console.log('shim CPU: run time of every thread of the shim processes over the probes (tsrt: monitors + daemon); per-round medians');
}

runBench(main);
