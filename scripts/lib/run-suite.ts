// Runs test files under node's test runner (one file at a time, as `npm test` does) with the spec
// reporter going where the caller says and failure-reporter.mjs recording failures and the closing
// counts; shared by test-under-load.ts and containerd-matrix.ts.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../../test/integration/harness.js';

export interface Failure {
  file: string;
  /** the names of the test's suites and the test's own */
  path: string[];
  error: string;
  failureType: string;
}

export interface SuiteResult {
  code: number | null;
  seconds: number;
  /** the runner's closing counts: tests, pass, fail, cancelled, skipped, ... */
  counts: Record<string, number>;
  failures: Failure[];
}

export interface SuiteOptions {
  /** where the spec reporter writes: 'stdout' or a file */
  spec: string;
  /** the failure reporter's JSON lines file */
  failFile: string;
  env?: NodeJS.ProcessEnv;
  /** the runner's own stdout and stderr: shown (inherit) or kept in a stream */
  output: 'inherit' | NodeJS.WritableStream;
}

export function runSuite(files: string[], o: SuiteOptions): Promise<SuiteResult> {
  const args = [
    '--import', 'tsx', '--test', '--test-concurrency=1',
    '--test-reporter=spec', `--test-reporter-destination=${o.spec}`,
    `--test-reporter=${join(REPO_ROOT, 'scripts/lib/failure-reporter.mjs')}`, `--test-reporter-destination=${o.failFile}`,
    ...files,
  ];
  const started = Date.now();
  return new Promise((resolvePromise) => {
    const inherit = o.output === 'inherit';
    const child = spawn(process.execPath, args, { cwd: REPO_ROOT, env: o.env ?? process.env, stdio: ['ignore', inherit ? 'inherit' : 'pipe', inherit ? 'inherit' : 'pipe'] });
    if (o.output !== 'inherit') {
      child.stdout?.pipe(o.output, { end: false });
      child.stderr?.pipe(o.output, { end: false });
    }
    child.on('close', (code) => {
      const counts: Record<string, number> = {};
      const failures: Failure[] = [];
      let text = '';
      try {
        text = readFileSync(o.failFile, 'utf8');
      } catch {
        /* the runner died before writing anything */
      }
      for (const line of text.split('\n').filter((l) => l.trim())) {
        const r = JSON.parse(line) as Failure & { kind: string } & Record<string, number>;
        if (r.kind === 'fail') failures.push(r);
        else if (r.kind === 'summary') Object.assign(counts, r);
      }
      resolvePromise({ code, seconds: (Date.now() - started) / 1000, counts, failures });
    });
  });
}
