// The native shim's bootstrap: `start` driven exactly as containerd 1.6, 1.7, 2.0-2.2 and 2.3+ run it (their
// flags, environment and stdin, as containerd's runtime/v2/shim/util.go, pkg/shim/util.go and binary.go
// build them), and its reply checked byte for byte; and `-info`'s RuntimeInfo decoded. `start` needs root
// (it binds /run/containerd/s/<hash>); `-info` does not.
//
//   make -C native && node --import tsx --test test/unit/shim-bootstrap.test.ts

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { containerd, google } from '../../src/gen/bootstrap.js';
import { pidAlive, sleep, waitFor } from './lib/wait.js';
import { listPids, readCmdline } from '../integration/lib/procfs.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const BIN = path.resolve(process.env.TSRT_SHIM_BIN ?? path.join(ROOT, 'native/build/containerd-shim-tsrt-v2'));
const IS_ROOT = process.getuid?.() === 0;
const SOCKET_DIR = '/run/containerd/s';
const CACHE = '/var/tmp/tsrt-test-cache/containerd';

interface RunResult { code: number | null; stdout: Buffer; stderr: string }

function runShim(args: string[], opts: { cwd: string; env: NodeJS.ProcessEnv; stdin?: Uint8Array }): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    // containerd: exec.Cmd with Stdin = bytes.Reader (a pipe), or nil (/dev/null); stdout and stderr
    // combined for start (CombinedOutput), kept apart here to see which one a byte went to.
    const child = spawn(BIN, args, { cwd: opts.cwd, env: opts.env, stdio: [opts.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', (d: Buffer) => out.push(d));
    child.stderr!.on('data', (d: Buffer) => err.push(d));
    child.on('error', reject);
    if (opts.stdin) {
      child.stdin!.on('error', () => { /* EPIPE if it exits first */ });
      child.stdin!.end(Buffer.from(opts.stdin));
    }
    child.on('close', (code) => resolve({ code, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString() }));
  });
}


const sha256hex = (s: string) => createHash('sha256').update(s).digest('hex');

// ---------------------------------------------------------------------------------------------
// A Go executable's build info, as the Go linker writes it (since Go 1.18): section .go.buildinfo
// holding a 32-byte header and two inline strings, the Go version and the module info.

function uvarint(n: number): Buffer {
  const b: number[] = [];
  do {
    let c = n & 0x7f;
    n = Math.floor(n / 128);
    if (n) c |= 0x80;
    b.push(c);
  } while (n);
  return Buffer.from(b);
}

const SENTINEL_START = Buffer.from('3077af0c9274080241e1c107e6d618e6', 'hex');
const SENTINEL_END = Buffer.from('f932433186182072008242104116d8f2', 'hex');

function goBuildInfo(mainPackage: string, module: string): Buffer {
  const head = Buffer.alloc(32);
  head.write('\xff Go buildinf:', 'latin1');
  head[14] = 8; // pointer size
  head[15] = 2; // inline strings
  const version = Buffer.from('go1.24.4');
  const modinfo = Buffer.concat([SENTINEL_START,
    Buffer.from(`path\t${mainPackage}\nmod\t${module}\t(devel)\t\nbuild\t-compiler=gc\n`), SENTINEL_END]);
  return Buffer.concat([head, uvarint(version.length), version, uvarint(modinfo.length), modinfo]);
}

/** A minimal ELF64 file carrying buildinfo: in a .go.buildinfo section, or (withSections false) only
 *  at the start of a writable PT_LOAD segment, where Go's debug/buildinfo also looks. */
function fakeGoExecutable(file: string, buildinfo: Buffer, withSections = true): void {
  const ehdr = Buffer.alloc(64);
  const data = Buffer.concat([buildinfo, Buffer.alloc((16 - (buildinfo.length % 16)) % 16)]);
  const dataOff = 128; // after the header and one program header
  const names = Buffer.from('\0.go.buildinfo\0.shstrtab\0');
  const namesOff = dataOff + data.length;
  const shOff = namesOff + names.length + ((8 - ((namesOff + names.length) % 8)) % 8);
  Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]).copy(ehdr);
  ehdr.writeUInt16LE(2, 16); // ET_EXEC
  ehdr.writeUInt16LE(62, 18); // EM_X86_64
  ehdr.writeUInt32LE(1, 20);
  ehdr.writeBigUInt64LE(64n, 32); // e_phoff
  ehdr.writeBigUInt64LE(withSections ? BigInt(shOff) : 0n, 40);
  ehdr.writeUInt16LE(64, 52); // e_ehsize
  ehdr.writeUInt16LE(56, 54); // e_phentsize
  ehdr.writeUInt16LE(1, 56); // e_phnum
  ehdr.writeUInt16LE(64, 58); // e_shentsize
  ehdr.writeUInt16LE(withSections ? 3 : 0, 60);
  ehdr.writeUInt16LE(withSections ? 2 : 0, 62);
  const phdr = Buffer.alloc(64); // 56 used
  phdr.writeUInt32LE(1, 0); // PT_LOAD
  phdr.writeUInt32LE(6, 4); // PF_R | PF_W
  phdr.writeBigUInt64LE(BigInt(dataOff), 8);
  phdr.writeBigUInt64LE(BigInt(data.length), 32); // p_filesz
  const shdr = (name: number, type: number, off: number, size: number): Buffer => {
    const s = Buffer.alloc(64);
    s.writeUInt32LE(name, 0);
    s.writeUInt32LE(type, 4);
    s.writeBigUInt64LE(BigInt(off), 24);
    s.writeBigUInt64LE(BigInt(size), 32);
    return s;
  };
  const parts: Buffer[] = [ehdr, phdr, data, names, Buffer.alloc(shOff - namesOff - names.length)];
  if (withSections) parts.push(shdr(0, 0, 0, 0), shdr(1, 1, dataOff, buildinfo.length), shdr(15, 3, namesOff, names.length));
  fs.writeFileSync(file, Buffer.concat(parts), { mode: 0o755 });
}

// ---------------------------------------------------------------------------------------------
// What containerd sends.

/** The runtime options Any `ctr --runtime io.containerd.tsrt.v2 --runtime-config-path <path>` sends. */
function runtimeOptionsAny(configPath: string): Uint8Array {
  // runtimeoptions.v1.Options{config_path = 2}
  const value = Buffer.concat([Buffer.from([0x12]), uvarint(Buffer.byteLength(configPath)), Buffer.from(configPath)]);
  return google.protobuf.Any.encode({ typeUrl: 'runtimeoptions.v1.Options', value }).finish();
}

interface Caller {
  release: '1.6' | '1.7' | '2.0' | '2.3';
  /** containerd's own executable: -publish-binary */
  binary: string;
  /** the runtime options (CreateTaskRequest.options), or none */
  options?: Uint8Array;
  debug?: boolean;
  /** 2.3: BootstrapParams fields to change */
  params?: Partial<containerd.runtime.bootstrap.v1.IBootstrapParams>;
}

describe('native shim: start as each containerd calls it', { skip: IS_ROOT ? false : 'needs root' }, () => {
  const unique = randomBytes(5).toString('hex');
  const ns = 'tsrt-boot';
  let tmp = '';
  let address = '';
  let ttrpc = '';
  let daemonDir = '';
  let baseEnv: NodeJS.ProcessEnv = {};
  let bins: Record<'v1' | 'v2' | 'v2NoSections' | 'notGo', string> = { v1: '', v2: '', v2NoSections: '', notGo: '' };
  const sockets: string[] = [];

  // The daemon the shim starts: it only has to accept the monitors' connections. It records each control
  // hello (so the test knows the monitors to stop) and its own pid. start spawns one whenever it finds
  // none listening yet, so a few may start at once; all but the one that listens first exit.
  const DAEMON_JS = String.raw`
import net from 'node:net';
import fs from 'node:fs';
import path from 'node:path';
const dir = process.env.TSRT_DAEMON_DIR;
const out = process.env.TSRT_TEST_OUT;
fs.appendFileSync(path.join(out, 'daemon.pids'), process.pid + '\n');
const server = net.createServer((sock) => {
  let buf = Buffer.alloc(0);
  sock.on('error', () => {});
  sock.on('data', (d) => {
    if (buf === null) return;
    buf = Buffer.concat([buf, d]);
    if (buf.length < 4 || buf.length < 4 + buf.readUInt32BE(0)) return;
    const fields = buf.subarray(4, 4 + buf.readUInt32BE(0)).toString().split('\0').slice(0, -1);
    buf = null;
    if (fields[0] === 'control') fs.appendFileSync(path.join(out, 'controls'), JSON.stringify(fields) + '\n');
  });
});
server.on('error', () => process.exit(0)); // another one listens
server.listen(path.join(dir, 'daemon.sock'));
process.on('SIGTERM', () => process.exit(0));
`;

  /** The control hellos the daemon had: control <monitor id> <pid> <bundle> <namespace> <id> <address>. */
  const controls = (): string[][] => {
    try {
      return fs.readFileSync(path.join(tmp, 'controls'), 'utf8').trim().split('\n').filter(Boolean)
        .map((l) => JSON.parse(l) as string[]);
    } catch { return []; }
  };
  const monitorPids = (): number[] => controls().map((h) => Number(h[2]));

  before(() => {
    if (!process.env.TSRT_SHIM_BIN) execFileSync('make', ['-s', '-C', path.join(ROOT, 'native')], { stdio: 'inherit' });
    tmp = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'tsrt-boot-')));
    address = path.join(tmp, 'containerd.sock');
    ttrpc = `${address}.ttrpc`;
    daemonDir = `/run/tsrt/${sha256hex(ttrpc).slice(0, 16)}`;
    fs.writeFileSync(path.join(tmp, 'daemon.mjs'), DAEMON_JS);
    baseEnv = { ...process.env, TSRT_NODE: process.execPath, TSRT_DAEMON: path.join(tmp, 'daemon.mjs'), TSRT_TEST_OUT: tmp };
    for (const k of ['TTRPC_ADDRESS', 'GRPC_ADDRESS', 'NAMESPACE', 'MAX_SHIM_VERSION', 'TSRT_DAEMON_DIR']) delete baseEnv[k];
    if (process.env.TSRT_SHIM_BIN) {
      // the ASan build: its reports go to files (the monitor's stderr is /dev/null)
      fs.mkdirSync(path.join(tmp, 'sanitizer'));
      baseEnv.ASAN_OPTIONS = [process.env.ASAN_OPTIONS, `log_path=${tmp}/sanitizer/asan`].filter(Boolean).join(':');
      baseEnv.UBSAN_OPTIONS = [process.env.UBSAN_OPTIONS, `log_path=${tmp}/sanitizer/ubsan`].filter(Boolean).join(':');
    }
    bins = {
      v1: path.join(tmp, 'containerd-1.7'),
      v2: path.join(tmp, 'containerd-2.1'),
      v2NoSections: path.join(tmp, 'containerd-2.1-nosections'),
      notGo: path.join(tmp, 'not-go'),
    };
    fakeGoExecutable(bins.v1, goBuildInfo('github.com/containerd/containerd/cmd/containerd', 'github.com/containerd/containerd'));
    fakeGoExecutable(bins.v2, goBuildInfo('github.com/containerd/containerd/v2/cmd/containerd', 'github.com/containerd/containerd/v2'));
    fakeGoExecutable(bins.v2NoSections, goBuildInfo('github.com/containerd/containerd/v2/cmd/containerd', 'github.com/containerd/containerd/v2'), false);
    fs.writeFileSync(bins.notGo, '#!/bin/sh\n', { mode: 0o755 });
  });

  /**
   * Every monitor this file started, also one that has not reached the fake daemon yet (monitorPids only
   * knows those that have): by its command line, which names this file's containerd address.
   */
  const startedMonitors = (): number[] => {
    const mine = new Set(monitorPids());
    for (const pid of listPids()) if (readCmdline(pid).includes(address)) mine.add(pid);
    mine.delete(process.pid);
    return [...mine];
  };

  after(async () => {
    const monitors = startedMonitors();
    for (const pid of monitors) {
      try { process.kill(pid, 'SIGTERM'); } catch { /* gone */ }
    }
    await Promise.all(monitors.map((pid) => waitFor(`monitor ${pid} to exit`, () => !pidAlive(pid)).catch(() => {
      try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    })));
    let daemons: number[] = [];
    try {
      daemons = fs.readFileSync(path.join(tmp, 'daemon.pids'), 'utf8').trim().split('\n').map(Number);
    } catch { /* never started */ }
    for (const pid of daemons) {
      try { process.kill(pid, 'SIGTERM'); } catch { /* gone */ }
    }
    for (const pid of daemons) await waitFor(`fake daemon ${pid} to exit`, () => !pidAlive(pid)).catch(() => undefined);
    for (const s of sockets) fs.rmSync(s, { force: true });
    if (daemonDir) fs.rmSync(daemonDir, { recursive: true, force: true });
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  let n = 0;
  /** A bundle as containerd makes it before start: config.json (with these annotations), rootfs/. */
  function bundle(annotations: Record<string, string> = {}): { dir: string; id: string } {
    const id = `c${++n}-${unique}`;
    const dir = path.join(tmp, 'bundles', id);
    fs.mkdirSync(path.join(dir, 'rootfs'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ociVersion: '1.1.0', annotations }));
    return { dir, id };
  }

  /** Runs start the way that release of containerd does (see the header of this file). */
  function start(c: Caller, b: { dir: string; id: string }): Promise<RunResult> {
    // runtime/v2/binary.go (1.6, 1.7), core/runtime/v2/binary.go (2.x): -id, [-debug], start, after
    // the flags shim.Command puts first; 2.3 builds them all in pkg/shim/util.go, in the same order.
    const args = ['-namespace', ns, '-address', address, '-publish-binary', c.binary, '-id', b.id,
      ...(c.debug ? ['-debug'] : []), 'start'];
    const env: NodeJS.ProcessEnv = { ...baseEnv, GOMAXPROCS: '2' };
    if (c.release !== '1.6') env.MAX_SHIM_VERSION = '2';
    env.TTRPC_ADDRESS = ttrpc;
    if (c.release !== '1.6') Object.assign(env, { GRPC_ADDRESS: address, NAMESPACE: ns });
    let stdin = c.options;
    if (c.release === '2.3') {
      stdin = containerd.runtime.bootstrap.v1.BootstrapParams.encode({
        instanceId: b.id,
        namespace: ns,
        logLevel: c.debug ? containerd.runtime.bootstrap.v1.LogLevel.LOG_LEVEL_DEBUG : 0,
        containerdVersion: '2.3.4',
        containerdGrpcAddress: address,
        containerdTtrpcAddress: ttrpc,
        containerdBinary: c.binary,
        extensions: c.options ? [{ value: google.protobuf.Any.decode(c.options) }] : [],
        socketDir: SOCKET_DIR,
        ...c.params,
      }).finish();
    }
    return runShim(args, { cwd: b.dir, env, stdin });
  }

  function expectOk(r: RunResult): void {
    assert.equal(r.stderr, '');
    assert.equal(r.code, 0);
  }

  /** runc-v2's address for (grpc address, namespace, group) under dir; remembered for cleanup. */
  function addressFor(group: string, dir = SOCKET_DIR, grpc = address): string {
    const sock = path.join(dir, sha256hex(`${grpc}/${ns}/${group}`));
    sockets.push(sock);
    return `unix://${sock}`;
  }

  const json = (version: number, addr: string): Buffer =>
    Buffer.from(`{"version":${version},"address":${JSON.stringify(addr)},"protocol":"ttrpc"}`);

  /** BootstrapResult{version: 3, address, protocol: "ttrpc"} as Go's proto.Marshal writes it. */
  const bootstrapResult = (addr: string): Buffer => Buffer.concat([
    Buffer.from([0x08, 0x03, 0x12]), uvarint(Buffer.byteLength(addr)), Buffer.from(addr),
    Buffer.from([0x1a, 0x05]), Buffer.from('ttrpc')]);

  it('containerd 1.6 (no MAX_SHIM_VERSION): the bare address', async () => {
    const b = bundle();
    const r = await start({ release: '1.6', binary: bins.v1, options: runtimeOptionsAny('/etc/tsrt/runc.toml') }, b);
    expectOk(r);
    const want = addressFor(b.id);
    assert.equal(r.stdout.toString('latin1'), want);
    assert.equal(fs.readFileSync(path.join(b.dir, 'address'), 'utf8'), want);
    assert.ok(fs.statSync(want.slice('unix://'.length)).isSocket());
  });

  it('containerd 1.6 started by a 2.x binary still gets the bare address: it sets no MAX_SHIM_VERSION', async () => {
    const b = bundle();
    const r = await start({ release: '1.6', binary: bins.v2 }, b);
    expectOk(r);
    assert.equal(r.stdout.toString('latin1'), addressFor(b.id));
  });

  it('containerd 1.7 (MAX_SHIM_VERSION=2, a containerd 1.x executable): version 2 JSON', async () => {
    const b = bundle();
    const r = await start({ release: '1.7', binary: bins.v1, options: runtimeOptionsAny('/etc/tsrt/runc.toml'), debug: true }, b);
    expectOk(r);
    const want = addressFor(b.id);
    assert.deepEqual(r.stdout, json(2, want));
    assert.equal(fs.readFileSync(path.join(b.dir, 'address'), 'utf8'), want);
  });

  it('containerd 2.0-2.2 (the same flags and environment, a containerd 2.x executable): version 3 JSON', async () => {
    for (const binary of [bins.v2, bins.v2NoSections]) {
      const b = bundle();
      const r = await start({ release: '2.0', binary }, b);
      expectOk(r);
      const want = addressFor(b.id);
      assert.deepEqual(r.stdout, json(3, want), binary);
      assert.equal(fs.readFileSync(path.join(b.dir, 'address'), 'utf8'), want);
    }
  });

  it('MAX_SHIM_VERSION=2 and an executable that is not a Go containerd (or is missing): version 2 JSON, which 1.7 and 2.x both take', async () => {
    for (const binary of [bins.notGo, path.join(tmp, 'no-such-containerd'), '']) {
      const b = bundle();
      const r = await start({ release: '1.7', binary }, b);
      expectOk(r);
      assert.deepEqual(r.stdout, json(2, addressFor(b.id)), binary);
    }
  });

  it('containerd 2.3+ (BootstrapParams on stdin): a protobuf BootstrapResult, version 3', async () => {
    const b = bundle();
    const r = await start({ release: '2.3', binary: bins.v2, options: runtimeOptionsAny('/etc/tsrt/runc.toml') }, b);
    expectOk(r);
    const want = addressFor(b.id);
    assert.deepEqual(r.stdout, bootstrapResult(want));
    const res = containerd.runtime.bootstrap.v1.BootstrapResult.decode(r.stdout);
    assert.deepEqual([res.version, res.address, res.protocol], [3, want, 'ttrpc']);
    assert.equal(fs.readFileSync(path.join(b.dir, 'address'), 'utf8'), want);
  });

  it('containerd 2.3+: the socket goes to socket_dir, its name is hashed from containerd_grpc_address, -debug may come as the log level', async () => {
    const dir = path.join(tmp, 's');
    const grpc = path.join(tmp, 'other-grpc.sock');
    const b = bundle();
    const r = await start({ release: '2.3', binary: bins.v2, debug: true, params: { socketDir: dir, containerdGrpcAddress: grpc } }, b);
    expectOk(r);
    const want = addressFor(b.id, dir, grpc);
    assert.deepEqual(r.stdout, bootstrapResult(want));
    assert.ok(fs.statSync(want.slice('unix://'.length)).isSocket());
  });

  it('a second start in a group (pod) answers in the same form, pointing at the first one\'s monitor', async () => {
    const sandbox = `pod-${unique}`;
    const first = bundle({ 'io.kubernetes.cri.sandbox-id': sandbox });
    expectOk(await start({ release: '2.3', binary: bins.v2 }, first));
    const want = addressFor(sandbox);
    const servingIt = () => controls().filter((h) => h[6] === want);
    await waitFor('the monitor\'s control hello', () => servingIt().length > 0);
    for (const c of [{ release: '2.3', binary: bins.v2 }, { release: '2.0', binary: bins.v2 },
      { release: '1.7', binary: bins.v1 }, { release: '1.6', binary: bins.v1 }] as Caller[]) {
      const b = bundle({ 'io.kubernetes.cri.sandbox-id': sandbox });
      const r = await start(c, b);
      expectOk(r);
      const expected = { '2.3': bootstrapResult(want), '2.0': json(3, want), '1.7': json(2, want), '1.6': Buffer.from(want) }[c.release];
      assert.deepEqual(r.stdout, expected, c.release);
      assert.equal(fs.readFileSync(path.join(b.dir, 'address'), 'utf8'), want);
    }
    assert.equal(servingIt().length, 1, 'no second monitor');
  });

  it('stdin that decodes as BootstrapParams but names another instance or namespace is legacy runtime options', async () => {
    for (const params of [{ instanceId: 'someone-else' }, { namespace: 'other-ns' }]) {
      const b = bundle();
      const r = await start({ release: '2.3', binary: bins.v2, params }, b);
      expectOk(r);
      // MAX_SHIM_VERSION=2 from a containerd 2.x executable: what 2.0-2.2 get
      assert.deepEqual(r.stdout, json(3, addressFor(b.id)), JSON.stringify(params));
    }
    // A legacy options Any is a valid message with fields 1 and 2 strings (type_url, value), as a
    // BootstrapParams is; its instance_id (the type URL) is not the -id.
    const b = bundle();
    const r = await start({ release: '1.7', binary: bins.v1, options: runtimeOptionsAny('/x.toml') }, b);
    expectOk(r);
    assert.deepEqual(r.stdout, json(2, addressFor(b.id)));
  });

  it('a failure keeps the usual form: "io.containerd.tsrt.v2: <error>" on stderr, exit 1, nothing on stdout', async () => {
    const b = bundle();
    const r = await start({ release: '2.3', binary: bins.v2, params: { socketDir: `/tmp/${'d'.repeat(60)}` } }, b);
    assert.equal(r.code, 1);
    assert.equal(r.stdout.length, 0);
    assert.equal(r.stderr, 'io.containerd.tsrt.v2: socket path too long\n');
  });

  // The releases test:matrix fetched; none on a clone that has not run it yet (CI runs test:asan first).
  const dists = fs.existsSync(CACHE)
    ? fs.readdirSync(CACHE).filter((d) => /^containerd-\d/.test(d) && fs.existsSync(path.join(CACHE, d, 'usr/bin/containerd')))
    : [];
  it('the real containerd 1.7 and 2.1 executables are told apart', { skip: dists.length > 0 ? false : `no containerd release under ${CACHE}` }, async () => {
    for (const d of dists) {
      const major = Number(/^containerd-(\d+)/.exec(d)![1]);
      const b = bundle();
      const r = await start({ release: '1.7', binary: path.join(CACHE, d, 'usr/bin/containerd') }, b);
      expectOk(r);
      assert.deepEqual(r.stdout, json(major >= 2 ? 3 : 2, addressFor(b.id)), d);
    }
  });

  it('the sanitizers reported nothing (ASan build)', { skip: process.env.TSRT_SHIM_BIN ? false : 'not the ASan build' }, async () => {
    // the monitors write their reports when they exit: stop them first
    for (const pid of monitorPids()) {
      try { process.kill(pid, 'SIGTERM'); } catch { /* gone */ }
    }
    for (const pid of monitorPids()) await waitFor(`monitor ${pid} to exit`, () => !pidAlive(pid));
    const dir = path.join(tmp, 'sanitizer');
    const reports = fs.readdirSync(dir).map((f) => fs.readFileSync(path.join(dir, f), 'utf8'));
    assert.deepEqual(reports, []);
  });
});

describe('native shim: -info', () => {
  let tmp = '';
  before(() => {
    if (!process.env.TSRT_SHIM_BIN) execFileSync('make', ['-s', '-C', path.join(ROOT, 'native')], { stdio: 'inherit' });
    tmp = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'tsrt-info-')));
  });
  after(() => {
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  // containerd's getRuntimeInfo (core/runtime/v2/task_manager.go): `<shim> -info`, the options Any
  // marshalled on stdin (empty when there are none), cwd and environment containerd's own.
  const info = (stdin: Uint8Array = new Uint8Array(), env: NodeJS.ProcessEnv = process.env) =>
    runShim(['-info'], { cwd: '/', env, stdin });

  /** A runtime whose `features` prints this document. */
  function fakeRuntime(name: string, features: string): string {
    const file = path.join(tmp, name);
    fs.writeFileSync(file, `#!/bin/sh\n[ "$1" = features ] || exit 3\ncat <<'EOF'\n${features}\nEOF\n`, { mode: 0o755 });
    return file;
  }

  const revision = (() => {
    try { return execFileSync('git', ['-C', ROOT, 'rev-parse', 'HEAD'], { encoding: 'utf8' }).trim(); } catch { return ''; }
  })();

  it('without options: name, version, revision, and runc\'s features (checkpoint reported off)', async () => {
    const r = await info();
    assert.equal(r.stderr, '');
    assert.equal(r.code, 0);
    const i = containerd.types.RuntimeInfo.decode(r.stdout);
    assert.equal(i.name, 'io.containerd.tsrt.v2');
    assert.equal(i.version?.version, '0.1.0');
    if (revision) assert.equal(i.version?.revision, revision);
    assert.equal(i.options, null);
    assert.deepEqual(Object.keys(i.annotations), []);
    let runcFeatures: Record<string, any> | undefined;
    try { runcFeatures = JSON.parse(execFileSync('runc', ['features'], { encoding: 'utf8' })); } catch { /* no runc, or too old */ }
    if (!runcFeatures) {
      assert.equal(i.features, null);
      return;
    }
    assert.equal(i.features?.typeUrl, 'types.containerd.io/opencontainers/runtime-spec/1/features/Features');
    const got = JSON.parse(Buffer.from(i.features!.value!).toString());
    if (runcFeatures.annotations?.['org.opencontainers.runc.checkpoint.enabled'] === 'true') {
      runcFeatures.annotations['org.opencontainers.runc.checkpoint.enabled'] = 'false';
    }
    assert.deepEqual(got, runcFeatures);
  });

  it('runc-v2\'s options: echoed as given, their BinaryName\'s features', async () => {
    const rt = fakeRuntime('runtime-a', '{"ociVersionMin":"1.0.0","ociVersionMax":"1.2.0"}');
    // containerd.runc.v1.Options{binary_name = 6, root = 7}
    const value = Buffer.concat([Buffer.from([0x32, rt.length]), Buffer.from(rt), Buffer.from([0x3a, 0x04]), Buffer.from('/r/x')]);
    const options = google.protobuf.Any.encode({ typeUrl: 'containerd.runc.v1.Options', value }).finish();
    const r = await info(options);
    assert.equal(r.stderr, '');
    assert.equal(r.code, 0);
    const i = containerd.types.RuntimeInfo.decode(r.stdout);
    assert.deepEqual(Buffer.from(google.protobuf.Any.encode(i.options!).finish()), Buffer.from(options));
    assert.equal(Buffer.from(i.features!.value!).toString(), '{"ociVersionMin":"1.0.0","ociVersionMax":"1.2.0"}\n');
  });

  it('tsrt\'s options file (runtimeoptions.v1.Options config_path): its BinaryName, looked up on PATH', async () => {
    fakeRuntime('my-runtime', '{ "annotations" : { "org.opencontainers.runc.checkpoint.enabled" : "true", "x": "y" } }');
    const cfg = path.join(tmp, 'tsrt.toml');
    fs.writeFileSync(cfg, '# a comment\nRoot = "/run/tsrt/x"\n  BinaryName = \'my-runtime\'   # crun-compatible\n');
    const r = await info(runtimeOptionsAny(cfg), { ...process.env, PATH: `${tmp}:${process.env.PATH}` });
    assert.equal(r.stderr, '');
    assert.equal(r.code, 0);
    const i = containerd.types.RuntimeInfo.decode(r.stdout);
    assert.equal(i.options?.typeUrl, 'runtimeoptions.v1.Options');
    assert.equal(Buffer.from(i.features!.value!).toString(),
      '{ "annotations" : { "org.opencontainers.runc.checkpoint.enabled" : "false", "x": "y" } }\n');
  });

  it('a runtime without `features` (crun 1.8, runc < 1.1), or with output that is not JSON: no features', async () => {
    for (const [name, doc] of [['broken-json', '{"ociVersionMin": '], ['no-features', '']] as const) {
      const rt = name === 'no-features' ? '/bin/false' : fakeRuntime(name, doc);
      const cfg = path.join(tmp, `${name}.toml`);
      fs.writeFileSync(cfg, `BinaryName = ${JSON.stringify(rt)}\n`);
      const r = await info(runtimeOptionsAny(cfg));
      assert.equal(r.stderr, '');
      assert.equal(r.code, 0);
      assert.equal(containerd.types.RuntimeInfo.decode(r.stdout).features, null, name);
    }
  });

  it('options it cannot use are an error, as for runc-v2', async () => {
    let r = await info(google.protobuf.Any.encode({ typeUrl: 'example.com/Other', value: new Uint8Array([1]) }).finish());
    assert.equal(r.code, 1);
    assert.equal(r.stdout.length, 0);
    assert.equal(r.stderr, 'io.containerd.tsrt.v2: unsupported runtime options type example.com/Other\n');
    r = await info(runtimeOptionsAny(path.join(tmp, 'missing.toml')));
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^io\.containerd\.tsrt\.v2: cannot read runtime config .*missing\.toml: No such file or directory\n$/);
    const cfg = path.join(tmp, 'nobin.toml');
    fs.writeFileSync(cfg, 'BinaryName = "no-such-runtime-binary"\n');
    r = await info(runtimeOptionsAny(cfg));
    assert.equal(r.code, 1);
    assert.equal(r.stderr, 'io.containerd.tsrt.v2: failed to look up the path of "no-such-runtime-binary": executable file not found in $PATH\n');
    r = await info(Buffer.from([0x0a, 0x7f]));
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^io\.containerd\.tsrt\.v2: failed to read runtime options/);
  });
});
