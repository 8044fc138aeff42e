// A node:test reporter for scripts/test-under-load.ts: one JSON line per failed test (its file, the
// names of its suites and itself, the first lines of its error) and one for the run's summary counts.
// Plain JavaScript so that the test runner can load it without a TypeScript loader.

const firstLines = (text, n) =>
  String(text ?? '').split('\n').filter((l) => l.trim()).slice(0, n).join('\n');

/** @param {AsyncIterable<{ type: string, data: any }>} source */
export default async function* failureReporter(source) {
  // the names of the suites a test sits in, by file and nesting level
  const open = new Map();
  const counts = {};
  for await (const { type, data } of source) {
    if (type === 'test:start') {
      const key = data.file ?? '';
      const stack = open.get(key) ?? [];
      stack.length = data.nesting;
      stack.push(data.name);
      open.set(key, stack);
    } else if (type === 'test:fail') {
      // a suite fails with its children; only a test's own failure is reported (and a suite's hook)
      const details = data.details ?? {};
      const err = details.error;
      const inner = err?.cause ?? err;
      const ownFailure = details.type !== 'suite' || (err && err.failureType !== 'subtestsFailed');
      if (!ownFailure) continue;
      const stack = (open.get(data.file ?? '') ?? []).slice(0, data.nesting);
      yield JSON.stringify({
        kind: 'fail',
        file: data.file ?? '',
        path: [...stack, data.name],
        error: firstLines(inner?.message ?? err?.message ?? String(err), 4),
        failureType: err?.failureType ?? '',
        durationMs: details.duration_ms ?? 0,
      }) + '\n';
    } else if (type === 'test:diagnostic') {
      // the runner's closing diagnostics: "tests 177", "pass 176", "fail 0", ...
      const m = /^(tests|suites|pass|fail|cancelled|skipped|todo|duration_ms) ([\d.]+)$/.exec(data.message ?? '');
      if (m && data.nesting === 0) counts[m[1]] = Number(m[2]);
    }
  }
  yield JSON.stringify({ kind: 'summary', ...counts }) + '\n';
}
