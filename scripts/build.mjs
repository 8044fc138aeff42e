// Bundles the daemon into one ES module next to the native shim binary, which starts it from there.
// One file, no module resolution at start-up: measured in bench/.
import { build } from 'esbuild';
import { mkdirSync } from 'node:fs';

const outdir = process.env.TSRT_BUILD_DIR ?? 'native/build';
mkdirSync(outdir, { recursive: true });

await build({
  entryPoints: { 'tsrt-daemon': 'src/shim/daemon.ts' },
  outdir,
  outExtension: { '.js': '.mjs' },
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  minify: true,
  sourcemap: 'linked',
  legalComments: 'none',
  // CommonJS dependencies (pino) call require() for Node built-ins.
  banner: { js: "import { createRequire as __tsrtRequire } from 'node:module'; const require = __tsrtRequire(import.meta.url);" },
  logLevel: 'warning',
});
