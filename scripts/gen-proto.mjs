#!/usr/bin/env node
// Generates static protobufjs code (ES modules with .d.ts) from the .proto files under proto/:
// src/gen/proto.js from everything but proto/cgroups/ and proto/bootstrap/, src/gen/cgroups.js from
// proto/cgroups/, src/gen/bootstrap.js from proto/bootstrap/ (see MODULES below).
//
//   node scripts/gen-proto.mjs          generate
//   node scripts/gen-proto.mjs --bench  generate, then compare load+decode time of the static
//                                       code against protobufjs reflection (fresh processes)
//
// pbjs flags and why:
//   -t static-module -w esm   plain ES module; `import $protobuf from "protobufjs/minimal.js"`
//                             (the explicit .js suffix is needed by Node's ESM resolver and is
//                             fine for esbuild). Only the minimal runtime is loaded: no parser,
//                             no reflection.
//   --no-verify --no-delimited --no-service
//                             not used by ttrpc (no length-delimited streams, no rpc.Service
//                             stubs; handlers are registered by name in src/ttrpc/server.ts).
//   --no-typeurl              getTypeUrl() would produce "type.googleapis.com/..." URLs;
//                             containerd 1.6 needs bare full names (shim-v2.md §5.1), so callers
//                             spell type URLs out instead.
//   create/encode/decode/fromObject/toObject are kept (toObject is handy for logging).
//   Field names are camelCased (exec_id -> execId), protobufjs' default.
//   The shipped JS is generated with --no-comments; the JSDoc-annotated variant only feeds pbts.
//
// 64-bit integers (int64/uint64: Timestamp.seconds, Request.timeout_nano, cgroup counters):
//   protobufjs decodes them to `Long` (package "long", a dependency of protobufjs) whenever Long is
//   available, which is exact over the whole 64-bit range; without Long it would silently fall
//   back to lossy JS numbers. The generated module therefore refuses to load if
//   $protobuf.util.Long is missing (esbuild bundles `long` because protobufjs require()s it
//   statically). We do NOT pass --force-long, so the d.ts types are `number|Long`: encoding
//   accepts plain numbers (exact up to 2^53, enough for timestamps and pids) or Long (exact
//   everywhere, e.g. Long.fromString("18446744073709551615", true)); decoded values are Long at
//   run time; src/ttrpc/proto-helpers.ts converts them (toBigInt / toNumber / Date).
//
// Measured with `--bench` (node 20.20.2, 2-CPU VM under load from other jobs; 15 fresh processes
// per variant and run; each figure is the range of the medians of 3 runs). Time from the child's
// first statement until the types are loaded and a ttrpc Request + its CreateTaskRequest payload
// are decoded, and (second number) wall time of the whole `node -e` process:
//   static module, from node_modules       29-36 ms   whole process 123-155 ms
//   static module, bundled by esbuild      14-20 ms   whole process  96-135 ms   (454 KB bundle)
//   reflection, protobuf.loadSync(.proto)  46-65 ms   whole process 129-187 ms
// i.e. static code saves ~15-30 ms over reflection unbundled and ~30-45 ms bundled (reflection
// also needs the full protobufjs build with its .proto parser and the .proto files at run time).
// Dropping fromObject/toObject (--no-convert) would save a further ~5 ms and 150 KB; kept for
// toJSON/logging.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const protoDir = join(root, 'proto');
const outDir = join(root, 'src', 'gen');
const outJs = join(outDir, 'proto.js');

// Generated modules. Everything the shim needs on every request goes to proto.js; the cgroups metrics
// (large, and needed only by Stats) go to cgroups.js, their own protobufjs root, which the daemon loads
// only when a Stats call first needs it.
// proto/bootstrap/ holds what containerd and the native `start` / `-info` exchange: only the tests use
// it, so it has its own module too (with its own copy of google.protobuf.Any), outside the daemon's bundle.
const MODULES = [
  { name: 'proto', rootName: 'default', files: (all) => all.filter((f) => !isCgroups(f) && !isBootstrap(f)) },
  { name: 'cgroups', rootName: 'cgroups', files: (all) => all.filter(isCgroups) },
  { name: 'bootstrap', rootName: 'bootstrap', files: (all) => all.filter((f) => isBootstrap(f) || relative(protoDir, f) === 'google/protobuf/any.proto') },
];
function isCgroups(file) {
  return relative(protoDir, file).startsWith('cgroups/');
}
function isBootstrap(file) {
  return relative(protoDir, file).startsWith('bootstrap/');
}

function listProtos(dir) {
  const found = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) found.push(...listProtos(p));
    else if (name.endsWith('.proto')) found.push(p);
  }
  return found;
}

function runCli(tool, args) {
  return new Promise((resolvePromise, reject) => {
    tool.main(args, (err, output) => (err ? reject(err) : resolvePromise(output)));
  });
}

const GENERATED_NOTE = '// Code generated by scripts/gen-proto.mjs from proto/**/*.proto. DO NOT EDIT.\n';

const LONG_GUARD = `
// tsrt: int64/uint64 fields must decode to exact Long values, never to lossy numbers.
if (!$protobuf.util.Long) {
    throw new Error("tsrt/gen/proto: protobufjs did not find the 'long' package; int64 fields would lose precision");
}
`;

// Parses every .proto file into one Root and returns it as a JSON descriptor. We parse ourselves
// instead of letting pbjs load the files because protobufjs swaps any import of
// "google/protobuf/*.proto" for its bundled JSON copies, which keep snake_case names
// (Any.type_url) while everything else is camelCased; our own google/protobuf files give
// Any.typeUrl like the rest. Imports are therefore only checked, never followed: every file under
// proto/ is parsed, and resolveAll() fails on any type that is not defined by one of them.
function buildDescriptor(files) {
  const protobuf = require('protobufjs');
  const pbRoot = new protobuf.Root();
  const known = new Set(files.map((f) => relative(protoDir, f)));
  for (const file of files) {
    protobuf.parse.filename = relative(protoDir, file);
    const parsed = protobuf.parse(readFileSync(file, 'utf8'), pbRoot, { keepCase: false, alternateCommentMode: false });
    for (const imp of [...(parsed.imports ?? []), ...(parsed.weakImports ?? [])]) {
      if (!known.has(imp)) throw new Error(`${relative(protoDir, file)}: import "${imp}" is not a file under proto/`);
    }
  }
  protobuf.parse.filename = null;
  pbRoot.resolveAll();
  return JSON.stringify(pbRoot.toJSON({ keepComments: true }));
}

async function generate() {
  const all = listProtos(protoDir);
  if (all.length === 0) throw new Error(`no .proto files under ${protoDir}`);
  for (const m of MODULES) await generateModule(m.name, m.rootName, m.files(all));
}

async function generateModule(name, rootName, files) {
  const { pbjs, pbts } = require('protobufjs-cli');
  if (files.length === 0) throw new Error(`no .proto files for module ${name}`);
  const moduleJs = join(outDir, `${name}.js`);
  const moduleDts = join(outDir, `${name}.d.ts`);
  const tmp = mkdtempSync(join(tmpdir(), 'tsrt-gen-'));
  try {
    const descriptor = join(tmp, 'proto.json');
    writeFileSync(descriptor, buildDescriptor(files));
    const common = [
      '-t', 'static-module', '-w', 'esm', '--dependency', 'protobufjs/minimal.js', '-r', rootName,
      '--no-verify', '--no-delimited', '--no-service', '--no-typeurl',
    ];

    // 1. Annotated JS, only used to derive the declarations.
    const annotated = join(tmp, 'proto.js');
    await runCli(pbjs, [...common, '-o', annotated, descriptor]);
    let dts = await runCli(pbts, ['--import', '$protobuf=protobufjs/minimal.js', annotated]);
    if (typeof dts !== 'string' || dts.length === 0) throw new Error('pbts produced no output');
    // pbts writes a CommonJS-style `import Long = require("long")`, which an ES-module
    // declaration file cannot contain.
    const longImport = /^import Long = require\("long"\);$/m;
    if (!longImport.test(dts)) throw new Error('pbts output changed: Long import not found');
    dts = dts.replace(longImport, 'import type Long from "long";');

    // 2. Shipped JS without JSDoc.
    let js = await runCli(pbjs, [...common, '--no-comments', descriptor]);
    const depImport = 'import $protobuf from "protobufjs/minimal.js";\n';
    const at = js.indexOf(depImport);
    if (at < 0) throw new Error('pbjs output changed: protobufjs import not found');
    js = js.slice(0, at + depImport.length) + LONG_GUARD + js.slice(at + depImport.length);

    mkdirSync(outDir, { recursive: true });
    writeFileSync(moduleJs, GENERATED_NOTE + js);
    writeFileSync(moduleDts, GENERATED_NOTE + dts);
    const rel = (p) => relative(root, p);
    console.log(`gen-proto: ${files.length} .proto files -> ${rel(moduleJs)} (${js.length} B), ${rel(moduleDts)}`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// --bench: fresh `node` processes, each printing the ms from its first statement until the
// types are loaded and two messages are decoded.

// A CreateTaskRequest with a rootfs mount and options, and a ttrpc Request carrying it.
function sampleBytes(gen) {
  const { containerd, ttrpc } = gen;
  const create = containerd.task.v2.CreateTaskRequest.encode({
    id: 'c1', bundle: '/run/containerd/io.containerd.runtime.v2.task/default/c1',
    rootfs: [{ type: 'overlay', source: 'overlay', options: ['workdir=/w', 'upperdir=/u', 'lowerdir=/l'] }],
    stdout: '/run/containerd/fifo/1/c1-stdout', stderr: '/run/containerd/fifo/1/c1-stderr',
    options: { typeUrl: 'runtimeoptions.v1.Options', value: new Uint8Array([0x12, 0x01, 0x2f]) },
  }).finish();
  const request = ttrpc.Request.encode({
    service: 'containerd.task.v2.Task', method: 'Create', payload: create, timeoutNano: 2_000_000_000,
    metadata: [{ key: 'containerd-namespace-ttrpc', value: 'default' }],
  }).finish();
  return Buffer.from(request).toString('hex');
}

function childStatic(modulePath, hex) {
  return `const t0 = performance.now();
const gen = await import(${JSON.stringify(modulePath)});
const req = gen.ttrpc.Request.decode(Buffer.from(${JSON.stringify(hex)}, 'hex'));
const create = gen.containerd.task.v2.CreateTaskRequest.decode(req.payload);
if (create.id !== 'c1' || req.timeoutNano.toNumber() !== 2e9) throw new Error('bad decode');
console.log(performance.now() - t0);`;
}

function childReflect(files, hex) {
  return `const t0 = performance.now();
const { createRequire } = await import('node:module');
const require = createRequire(${JSON.stringify(join(root, 'package.json'))});
const protobuf = require('protobufjs');
const pbRoot = new protobuf.Root();
pbRoot.resolvePath = (origin, target) => {
  if (target.startsWith('/')) return target;
  return ${JSON.stringify(protoDir + '/')} + target;
};
pbRoot.loadSync(${JSON.stringify(files.map((f) => relative(protoDir, f)))});
const Request = pbRoot.lookupType('ttrpc.Request');
const Create = pbRoot.lookupType('containerd.task.v2.CreateTaskRequest');
const req = Request.decode(Buffer.from(${JSON.stringify(hex)}, 'hex'));
const create = Create.decode(req.payload);
if (create.id !== 'c1' || req.timeoutNano.toNumber() !== 2e9) throw new Error('bad decode');
console.log(performance.now() - t0);`;
}

function runChild(source, runs) {
  const samples = [];
  const walls = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', source], { encoding: 'utf8', cwd: root });
    walls.push(performance.now() - t0);
    if (r.status !== 0) throw new Error(`bench child failed: ${r.stderr}`);
    samples.push(Number(r.stdout.trim()));
  }
  const median = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const m = median(samples);
  return `${m.toFixed(1)} ms (min ${samples[0].toFixed(1)}, max ${samples[samples.length - 1].toFixed(1)}); ` +
    `whole process ${median(walls).toFixed(0)} ms`;
}

async function bench() {
  const runs = 15;
  const gen = await import(outJs);
  const hex = sampleBytes(gen);
  const tmp = mkdtempSync(join(tmpdir(), 'tsrt-bench-'));
  try {
    const bundled = join(tmp, 'proto.bundle.mjs');
    const esbuild = await import('esbuild');
    await esbuild.build({ entryPoints: [outJs], bundle: true, platform: 'node', format: 'esm', outfile: bundled, logLevel: 'error' });
    const results = {
      static: runChild(childStatic(outJs, hex), runs),
      bundled: runChild(childStatic(bundled, hex), runs),
      reflect: runChild(childReflect(listProtos(protoDir), hex), runs),
    };
    console.log(`static module (node_modules)      ${results.static}`);
    console.log(`static module bundled by esbuild  ${results.bundled}`);
    console.log(`reflection (protobuf.loadSync)    ${results.reflect}`);
    console.log(`bundle size: ${readFileSync(bundled).length} B`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

await generate();
if (process.argv.includes('--bench')) await bench();
