// Native backend benchmark: `ctr run --rm IMG ID true` and `ctr task exec ID true` through runc-v2 (with
// runc), tsrt with runc, and tsrt with the native backend (no runc), alternating in one run; then the
// same exec through one persistent gRPC connection to containerd's Tasks API (Exec, Start, Wait,
// DeleteProcess), as kubelet's exec probes reach containerd through CRI: there the client's own start-up,
// which is about half of `ctr task exec`'s time, does not count.
//
//   node --import tsx bench/native.ts [N]     (N runs per column and operation, default 30)
//
// Starts a private containerd through the integration harness and removes everything at the end.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { RUNC_V2, TSRT_V2, buildBusyboxImage, startContainerd, uniqueId, type Containerd } from '../test/integration/harness.js';
import { tasksClientFor, type TasksClient } from '../test/integration/lib/tasks-client.js';
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

/** The stdout and stderr FIFOs of one exec, open for reading, and a promise of both ends of file. */
interface ExecFifos { stdout: string; stderr: string; closed: Promise<void>; close: () => void }

/**
 * Makes and opens an exec's output FIFOs as CRI's ExecSync does for a probe (containerd's cio: a FIFO
 * each for stdout and stderr in a fresh directory, no stdin, no terminal; the shim opens the write ends),
 * read by the client until end of file, i.e. until the process and everything holding its output exited.
 * Done before the timed part: the FIFOs are the client's, and CRI makes them before its Exec too.
 */
function openExecFifos(dir: string, execId: string): ExecFifos {
  const names = ['stdout', 'stderr'].map((s) => path.join(dir, `${execId}-${s}`));
  execFileSync('mkfifo', names);
  // Polled, a FIFO whose writer has not come yet reports nothing (no end of file): the shims open their
  // writers at Exec (tsrt) or Start (runc-v2), and EOF comes once the last writer is gone.
  const streams = names.map((n) => new net.Socket({ fd: fs.openSync(n, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK), readable: true, writable: false }));
  const closed = Promise.all(streams.map((st) => new Promise<void>((resolve, reject) => {
    st.on('data', () => undefined);
    st.on('end', resolve);
    st.on('error', reject);
  }))).then(() => undefined);
  return {
    stdout: names[0]!, stderr: names[1]!, closed,
    close: () => {
      for (const st of streams) st.destroy();
      for (const n of names) fs.rmSync(n, { force: true });
    },
  };
}

/**
 * One probe-like exec over the persistent client: Exec → Start → Wait → DeleteProcess, timed from before
 * Exec to after DeleteProcess. Wait is sent right after Exec, before Start (as ctr and CRI do), so the exit
 * cannot slip by; containerd would answer a later Wait with the stored exit anyway, as the shims keep an
 * exited exec's status until DeleteProcess. The output FIFOs' end of file is awaited before DeleteProcess,
 * as CRI waits for its copies of the output to finish.
 */
async function timeApiExec(tasks: TasksClient, id: string, execId: string, processSpec: object, fifoDir: string): Promise<Sample> {
  const io = openExecFifos(fifoDir, execId);
  try {
    const t0 = process.hrtime.bigint();
    await tasks.exec(id, execId, { ...processSpec, args: ['true'], terminal: false }, { stdout: io.stdout, stderr: io.stderr });
    const exited = tasks.wait(id, execId);
    await tasks.start(id, execId);
    const status = await exited;
    await io.closed;
    await tasks.deleteProcess(id, execId);
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    return status === 0 ? { ms } : { ms, error: `exit status ${status}` };
  } catch (e) {
    return { ms: 0, error: (e as Error).message };
  } finally {
    io.close();
  }
}

async function main(): Promise<void> {
  const { n, stopped } = benchArgs('bench/native.ts');
  const c: Containerd = await startContainerd({ logLevel: 'info' });
  const running = new Map<string, string>();
  let tasks: TasksClient | undefined;
  let fifoDir: string | undefined;
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
    // the exec's process is the container's with other args, as ctr and CRI build it
    const specs = new Map([...running].map(([name, id]) =>
      [name, (JSON.parse(fs.readFileSync(path.join(c.bundleDir(id), 'config.json'), 'utf8')) as { process: object }).process]));
    tasks = tasksClientFor(c);
    fifoDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrt-bench-fifo-'));
    const client = tasks;
    const dir = fifoDir;
    print('Tasks API Exec+Start+Wait+DeleteProcess of true, one gRPC connection', await rounds(n, stopped, (col, round) =>
      timeApiExec(client, running.get(col.name)!, round === 'warm-up' ? 'api-warmup' : `api${round}`, specs.get(col.name)!, dir)));
  } finally {
    tasks?.close();
    if (fifoDir) fs.rmSync(fifoDir, { recursive: true, force: true });
    for (const id of running.values()) await removeContainer(c, id);
    await c.stop();
  }
}

runBench(main);
