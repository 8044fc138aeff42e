// A shim directory for a test containerd (first on its PATH) holding links to the built shim and two
// `runc` wrappers that log their argv before running the real runc: `runc` (what runc-v2 and tsrt run by
// default) and `runc-alt` (for a BinaryName that must be seen to be used). Lines are "<name> <argv>".
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface LoggingShimDir {
  /** the directory (pass it as the harness's shimDir); other files of a test may live here too */
  dir: string;
  /** absolute path of the `runc-alt` wrapper */
  runcAlt: string;
  /** the one `runc create` argv seen for container `id`, the wrapper's name first */
  createArgv(id: string): string[];
  /** every `runc create` argv seen, wrapper's name first */
  creates(): string[][];
  cleanup(): void;
}

export function loggingShimDir(shimBuildDir: string): LoggingShimDir {
  const dir = mkdtempSync(join(tmpdir(), 'tsrt-runc-wrap-'));
  const log = join(dir, 'runc-argv.log');
  const realRunc = execFileSync('sh', ['-c', 'command -v runc'], { encoding: 'utf8' }).trim();
  for (const f of readdirSync(shimBuildDir)) {
    if (f !== 'obj' && f !== 'tests') symlinkSync(join(shimBuildDir, f), join(dir, f));
  }
  for (const name of ['runc', 'runc-alt']) {
    writeFileSync(join(dir, name), `#!/bin/sh\nprintf '%s %s\\n' "\${0##*/}" "$*" >> '${log}'\nexec '${realRunc}' "$@"\n`, { mode: 0o755 });
  }
  const creates = (): string[][] => {
    const text = existsSync(log) ? readFileSync(log, 'utf8') : '';
    return text.split('\n').filter((l) => / create /.test(` ${l} `)).map((l) => l.split(' '));
  };
  return {
    dir,
    runcAlt: join(dir, 'runc-alt'),
    creates,
    createArgv(id) {
      const found = creates().filter((a) => a[a.length - 1] === id);
      assert.equal(found.length, 1, `one runc create for ${id} in:\n${creates().map((a) => a.join(' ')).join('\n')}`);
      return found[0]!;
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
