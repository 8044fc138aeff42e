// `npm run test:matrix`: the test suites against every containerd release CI covers. The system's
// containerd (Debian 12: 1.6) runs the unit tests and every integration suite; containerd 1.7 (Debian 13)
// runs the lifecycle subset; containerd 2.x (Debian unstable) runs every integration suite. 1.7 and 2.x
// are fetched as .deb packages from Debian with a private apt state and unpacked under the test cache
// (test/integration/lib/containerd-dist.ts); a release that cannot be fetched is reported as skipped,
// with the reason. Prints each cell's test output as it runs, then a table of what ran where, and a
// closing line `matrix: N passed, N failed, N skipped` (tests). Exits 1 when any cell failed.
//
//   npm run test:matrix                      every cell
//   npm run test:matrix -- --cells 2.x       some cells (1.6, 1.7, 2.x), comma-separated
//   npm run test:matrix -- --no-build        without building first

import { mkdtempSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fmt, printTable } from '../bench/common.js';
import { runSuite } from './lib/run-suite.js';
import { IMAGE_CACHE_DIR, REPO_ROOT, run } from '../test/integration/harness.js';
import { containerdUnderTest, fetchDebianContainerd, type ContainerdDist } from '../test/integration/lib/containerd-dist.js';

interface Cell {
  name: string;
  /** how to get the containerd */
  get: () => ContainerdDist;
  /** the test files, relative to the repo */
  files: () => string[];
  what: string;
}

const testFiles = (dir: string): string[] =>
  readdirSync(join(REPO_ROOT, dir)).filter((f) => f.endsWith('.test.ts')).sort().map((f) => join(dir, f));
const LIFECYCLE = ['test/integration/oracle.test.ts', 'test/integration/tsrt-lifecycle.test.ts', 'test/integration/tsrt-daemon-crash.test.ts',
  'test/integration/task-api-version.test.ts', 'test/integration/grpc-transport.test.ts'];
const cacheDir = join(IMAGE_CACHE_DIR, 'containerd');

const CELLS: Cell[] = [
  {
    name: '1.6',
    get: () => {
      const d = containerdUnderTest();
      if (d.release[0] !== 1 || d.release[1] !== 6) throw new Error(`the system containerd is ${d.version}, not 1.6`);
      return d;
    },
    files: () => [...testFiles('test/unit'), ...testFiles('test/integration')],
    what: 'unit + all integration',
  },
  {
    name: '1.7',
    get: () => fetchDebianContainerd({ suite: 'trixie', version: '1.7.', cacheDir }),
    files: () => LIFECYCLE,
    what: 'lifecycle subset',
  },
  {
    name: '2.x',
    get: () => fetchDebianContainerd({ suite: 'sid', version: '2.', cacheDir }),
    files: () => testFiles('test/integration'),
    what: 'all integration',
  },
];

interface Outcome {
  cell: Cell;
  dist?: ContainerdDist;
  skipped?: string;
  code?: number | null;
  seconds?: number;
  counts: Record<string, number>;
  failures: string[];
}

async function runCell(cell: Cell, dist: ContainerdDist, outDir: string): Promise<Outcome> {
  const r = await runSuite(cell.files(), {
    spec: 'stdout',
    failFile: join(outDir, `${cell.name}.jsonl`),
    env: { ...process.env, TSRT_CONTAINERD_BIN: dist.binDir, TSRT_CONTAINERD_SOURCE: dist.source },
    output: 'inherit',
  });
  return { cell, dist, code: r.code, seconds: r.seconds, counts: r.counts, failures: r.failures.map((f) => f.path.join(' > ')) };
}

const argv = process.argv.slice(2);
let wanted = CELLS.map((c) => c.name);
let build = true;
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === '--cells') wanted = (argv[++i] ?? '').split(',').filter(Boolean);
  else if (argv[i] === '--no-build') build = false;
  else throw new Error(`unknown argument ${argv[i]} (--cells 1.6,1.7,2.x, --no-build)`);
}
const unknown = wanted.filter((w) => !CELLS.some((c) => c.name === w));
if (unknown.length) throw new Error(`unknown cell ${unknown.join(', ')} (cells: ${CELLS.map((c) => c.name).join(', ')})`);

if (build) {
  console.log('==> npm run build && npm run typecheck');
  for (const script of ['build', 'typecheck']) {
    const b = await run('npm', ['run', script], { cwd: REPO_ROOT, timeoutMs: 900_000 });
    if (b.code !== 0) {
      console.error(b.stdout + b.stderr);
      process.exit(1);
    }
  }
}

const outDir = mkdtempSync('/tmp/tsrt-matrix-');
const outcomes: Outcome[] = [];
for (const cell of CELLS.filter((c) => wanted.includes(c.name))) {
  let dist: ContainerdDist;
  try {
    dist = cell.get();
  } catch (e) {
    const why = (e as Error).message.split('\n').slice(0, 3).join(' ');
    console.log(`\n==> containerd ${cell.name}: SKIPPED: ${why}`);
    outcomes.push({ cell, skipped: why, counts: {}, failures: [] });
    continue;
  }
  console.log(`\n==> containerd ${cell.name}: ${dist.version} (${dist.source}): ${cell.what}`);
  outcomes.push(await runCell(cell, dist, outDir));
}

console.log('\n==> containerd matrix');
printTable(
  ['cell', 'containerd', 'from', 'suites', 'tests', 'pass', 'fail', 'skipped', 'seconds', 'result'],
  outcomes.map((o) => {
    const n = (k: string) => (o.skipped ? '-' : String(o.counts[k] ?? '?'));
    const ok = !o.skipped && o.code === 0 && o.failures.length === 0;
    return [o.cell.name, o.dist?.version ?? '-', o.dist?.source ?? '-', o.cell.what, n('tests'), n('pass'), n('fail'),
      n('skipped'), o.seconds === undefined ? '-' : fmt(o.seconds, 0), o.skipped ? `SKIPPED: ${o.skipped}` : ok ? 'ok' : 'FAILED'];
  }),
);
for (const o of outcomes) for (const f of o.failures) console.log(`  containerd ${o.cell.name}: not ok: ${f}`);

const sum = (k: string) => outcomes.reduce((a, o) => a + (o.counts[k] ?? 0), 0);
const failedCells = outcomes.filter((o) => !o.skipped && (o.code !== 0 || o.failures.length > 0));
console.log(`\nmatrix: ${sum('pass')} passed, ${sum('fail')} failed, ${sum('skipped')} skipped`);
process.exit(failedCells.length ? 1 : 0);
