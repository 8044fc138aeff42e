// `npm run test:load`: the whole test suite, N times in a row, on a machine kept busy the way a shared CI
// machine can be: one CPU-bound loop per core, and a second private containerd beside the suite that
// starts and removes containers without pause (alternating runc-v2 and tsrt, with an exec and a Stats
// call into a long-running container in between). Prints each run's summary line as it ends, then a
// table of the runs and of every test that failed, with the run it failed in and its error.
//
//   npm run test:load                     10 runs, hogs and churn
//   npm run test:load -- --runs 3 --no-churn test/unit/native-shim.test.ts
//
// Options: --runs N (10), --hogs N (one per core; 0 for none), --no-churn, --no-build, --out DIR (where
// each run's spec output and failures are kept; default a new dir under /tmp). Any other argument is a
// test file to run instead of the whole suite. Exits 1 when any run had a failure.
// The builds and the suite need root, as `npm test` does.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, createWriteStream } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join, relative } from 'node:path';
import { fmt, printTable } from '../bench/common.js';
import { runSuite, type SuiteResult } from './lib/run-suite.js';
import {
  REPO_ROOT,
  RUNC_V2,
  TSRT_V2,
  buildBusyboxImage,
  removeContainer,
  run,
  startContainerd,
  uniqueId,
  type Containerd,
} from '../test/integration/harness.js';

interface Args {
  runs: number;
  hogs: number;
  churn: boolean;
  build: boolean;
  out: string;
  files: string[];
}

function parseArgs(argv: string[]): Args {
  const a: Args = { runs: 10, hogs: availableParallelism(), churn: true, build: true, out: '', files: [] };
  for (let i = 0; i < argv.length; i++) {
    const v = argv[i]!;
    const num = (): number => {
      const n = Number(argv[++i]);
      if (!Number.isInteger(n) || n < 0) throw new Error(`${v} needs a whole number`);
      return n;
    };
    if (v === '--runs') a.runs = Math.max(1, num());
    else if (v === '--hogs') a.hogs = num();
    else if (v === '--no-churn') a.churn = false;
    else if (v === '--no-build') a.build = false;
    else if (v === '--out') a.out = argv[++i] ?? '';
    else if (v.startsWith('--')) throw new Error(`unknown option ${v}`);
    else a.files.push(v);
  }
  if (!a.files.length) {
    for (const dir of ['test/unit', 'test/integration']) {
      for (const f of readdirSync(join(REPO_ROOT, dir)).sort()) if (f.endsWith('.test.ts')) a.files.push(join(dir, f));
    }
  }
  return a;
}

// ---- load: CPU hogs ---------------------------------------------------------------------------

function startHogs(n: number): ChildProcess[] {
  const hogs: ChildProcess[] = [];
  for (let i = 0; i < n; i++) {
    hogs.push(spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' }));
  }
  return hogs;
}

function stopHogs(hogs: ChildProcess[]): void {
  for (const h of hogs) if (h.exitCode === null && h.signalCode === null) h.kill('SIGKILL');
}

// ---- load: a second containerd churning containers --------------------------------------------

interface Churn {
  stop(): Promise<void>;
  /** containers run and failed, per runtime, and the last error */
  counts(): { runs: Record<string, number>; failed: Record<string, number>; lastError: string };
}

async function startChurn(): Promise<Churn> {
  const c: Containerd = await startContainerd({ namespace: 'tsrt-churn', logLevel: 'info' });
  let stopping = false;
  const runs: Record<string, number> = { [RUNC_V2]: 0, [TSRT_V2]: 0 };
  const failed: Record<string, number> = { [RUNC_V2]: 0, [TSRT_V2]: 0 };
  let lastError = '';
  const loop = (async () => {
    const image = await buildBusyboxImage(c);
    // a long-running container of each runtime to exec into and read Stats of
    const sleepers = new Map<string, string>();
    for (const rt of [RUNC_V2, TSRT_V2]) {
      const id = uniqueId('churn-sleeper');
      const r = await c.ctr(['run', '-d', '--runtime', rt, image, id, 'sleep', '100000'], { timeoutMs: 60_000 });
      if (r.code === 0) sleepers.set(rt, id);
    }
    for (let i = 0; !stopping; i++) {
      const rt = i % 2 === 0 ? RUNC_V2 : TSRT_V2;
      const id = uniqueId('churn');
      const r = await c.ctr(
        ['run', '--rm', '--runtime', rt, image, id, 'sh', '-c', 'head -c 2000000 /dev/urandom | md5sum >/dev/null; echo done'],
        { timeoutMs: 120_000 },
      );
      runs[rt] = (runs[rt] ?? 0) + 1;
      if (r.code !== 0 || r.stdout !== 'done\n') {
        failed[rt] = (failed[rt] ?? 0) + 1;
        lastError = `${rt} run: exit ${r.code}, stdout ${JSON.stringify(r.stdout)}: ${r.stderr.trim().split('\n')[0] ?? ''}`;
        await removeContainer(c, id);
      }
      const sleeper = sleepers.get(rt);
      if (sleeper && !stopping) {
        const e = await c.ctr(['task', 'exec', '--exec-id', `x${i}`, sleeper, 'true'], { timeoutMs: 60_000 });
        const m = await c.ctr(['task', 'metrics', sleeper], { timeoutMs: 60_000 });
        if (e.code !== 0 || m.code !== 0) {
          failed[rt] = (failed[rt] ?? 0) + 1;
          lastError = `${rt} exec/metrics: ${(e.code !== 0 ? e : m).stderr.trim().split('\n')[0] ?? ''}`;
        }
      }
    }
  })().catch((e: unknown) => {
    failed.harness = 1;
    lastError = `churn stopped: ${(e as Error).message.split('\n')[0]}`;
  });
  return {
    async stop() {
      stopping = true;
      await loop;
      await c.stop();
    },
    counts: () => ({ runs, failed, lastError }),
  };
}

// ---- the suite --------------------------------------------------------------------------------

interface RunResult extends SuiteResult {
  index: number;
}

async function runOnce(index: number, files: string[], outDir: string): Promise<RunResult> {
  const log = createWriteStream(join(outDir, `run-${index}.stderr.txt`));
  const r = await runSuite(files, {
    spec: join(outDir, `run-${index}.spec.txt`),
    failFile: join(outDir, `run-${index}.failures.jsonl`),
    output: log,
  });
  log.end();
  return { ...r, index };
}

const summaryLine = (s: Record<string, number>): string =>
  ['tests', 'pass', 'fail', 'cancelled', 'skipped'].map((k) => `${k} ${s[k] ?? '?'}`).join(', ');

// ---- main -------------------------------------------------------------------------------------

const args = parseArgs(process.argv.slice(2));
const outDir = args.out || mkdtempSync('/tmp/tsrt-load-');
mkdirSync(outDir, { recursive: true });

if (args.build) {
  console.log('building (npm run build)');
  const b = await run('npm', ['run', 'build'], { cwd: REPO_ROOT, timeoutMs: 600_000 });
  if (b.code !== 0) {
    console.error(b.stdout + b.stderr);
    process.exit(1);
  }
}

const hogs = startHogs(args.hogs);
let churn: Churn | undefined;
let cleaning: Promise<void> | undefined;
const cleanup = (): Promise<void> =>
  (cleaning ??= (async () => {
    stopHogs(hogs);
    await churn?.stop();
  })());
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    console.error(`\n${sig}: stopping the load`);
    void cleanup().finally(() => process.exit(130));
  });
}

const results: RunResult[] = [];
try {
  if (args.churn) churn = await startChurn();
  console.log(
    `load: ${args.hogs} CPU hog(s), ${args.churn ? 'a second containerd churning containers' : 'no churn'}; ` +
      `${args.runs} run(s) of ${args.files.length} test file(s); output in ${outDir}`,
  );
  for (let i = 1; i <= args.runs; i++) {
    const r = await runOnce(i, args.files, outDir);
    results.push(r);
    const status = r.code === 0 && r.failures.length === 0 ? 'ok' : 'FAILED';
    console.log(`run ${i}/${args.runs}: ${status} in ${fmt(r.seconds, 0)} s: ${summaryLine(r.counts)}`);
    for (const f of r.failures) console.log(`  not ok: ${relative(REPO_ROOT, f.file)}: ${f.path.join(' > ')}`);
  }
} finally {
  await cleanup();
}

console.log('');
printTable(
  ['run', 'exit', 'seconds', 'tests', 'pass', 'fail', 'skipped'],
  results.map((r) => [String(r.index), String(r.code), fmt(r.seconds, 0),
    ...['tests', 'pass', 'fail', 'skipped'].map((k) => String(r.counts[k] ?? '?'))]),
);
const failed = results.flatMap((r) => r.failures.map((f) => ({ ...f, run: r.index })));
if (failed.length) {
  console.log('\nfailures:');
  for (const f of failed) {
    console.log(`  run ${f.run}: ${relative(REPO_ROOT, f.file)}: ${f.path.join(' > ')}`);
    console.log(`    ${f.error.split('\n').join('\n    ')}`);
  }
}
if (churn) {
  const k = churn.counts();
  const per = Object.keys(k.runs).map((rt) => `${rt}: ${k.runs[rt]} run, ${k.failed[rt] ?? 0} failed`).join('; ');
  console.log(`\nchurn beside the suite: ${per}${k.failed.harness ? '; the churn itself stopped' : ''}${k.lastError ? ` (last error: ${k.lastError})` : ''}`);
}
const bad = results.filter((r) => r.code !== 0 || r.failures.length > 0).length;
console.log(`\nruns: ${results.length - bad} passed, ${bad} failed`);
process.exit(bad ? 1 : 0);
