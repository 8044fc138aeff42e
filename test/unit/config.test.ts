import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  configFromOptions, containerConfig, daemonOptions, DEFAULT_CONFIG, parseMetricsAddress, readConfigBody, readConfigFile,
} from '../../src/plugins/config.js';
import { containerd, runtimeoptions } from '../../src/gen/proto.js';
import { Code } from '../../src/ttrpc/codes.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrt-config-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

function runtimeOptions(configPath: string) {
  return { typeUrl: 'runtimeoptions.v1.Options', value: runtimeoptions.v1.Options.encode({ configPath }).finish() };
}

test('no options: runc with the defaults', () => {
  assert.deepEqual(configFromOptions(undefined), DEFAULT_CONFIG);
});

test('runtimeoptions config_path: a TOML file with runc-v2 keys', () => {
  const f = path.join(tmp, 'crun.toml');
  fs.writeFileSync(f, 'BinaryName = "crun"\nRoot = "/run/tsrt/crun"\nSystemdCgroup = false\n');
  const c = configFromOptions(runtimeOptions(f));
  assert.equal(c.binaryName, 'crun');
  assert.equal(c.root, '/run/tsrt/crun');
});

test('runc-v2 Options are understood too', () => {
  const value = containerd.runc.v1.Options.encode({ binaryName: '/usr/bin/crun', noPivotRoot: true }).finish();
  const c = configFromOptions({ typeUrl: 'type.googleapis.com/containerd.runc.v1.Options', value });
  assert.equal(c.binaryName, '/usr/bin/crun');
  assert.equal(c.noPivotRoot, true);
});

test('bad files and unknown keys or types are InvalidArgument with the reason', () => {
  const bad = path.join(tmp, 'bad.toml');
  fs.writeFileSync(bad, 'BinaryNmae = "crun"\n');
  const isInvalid = (re: RegExp) => (e: { code: number; message: string }) => e.code === Code.InvalidArgument && re.test(e.message);
  assert.throws(() => configFromOptions(runtimeOptions(bad)), isInvalid(/unknown key BinaryNmae/));
  assert.throws(() => configFromOptions(runtimeOptions(path.join(tmp, 'missing.toml'))), isInvalid(/cannot read/));
  fs.writeFileSync(bad, 'BinaryName = [\n');
  assert.throws(() => configFromOptions(runtimeOptions(bad)), isInvalid(/not valid TOML/));
  assert.throws(() => configFromOptions({ typeUrl: 'example.Other', value: new Uint8Array() }), isInvalid(/unsupported runtime options type/));
});

test('PluginDir: /etc/tsrt/plugins by default; an absolute path, normalised; anything else InvalidArgument', () => {
  assert.equal(configFromOptions(undefined).pluginDir, '/etc/tsrt/plugins');
  const f = path.join(tmp, 'plugins.toml');
  fs.writeFileSync(f, 'PluginDir = "/opt/tsrt//plugins/"\nBackend = "gvisor"\n');
  const c = configFromOptions(runtimeOptions(f));
  assert.deepEqual([c.pluginDir, c.backend], ['/opt/tsrt/plugins/', 'gvisor']);
  fs.writeFileSync(f, 'PluginDir = "plugins"\n');
  assert.throws(() => configFromOptions(runtimeOptions(f)), isInvalid(/PluginDir must be an absolute path/));
});

test('[backends.<name>] tables: kept as they are for that backend to check; a malformed one is InvalidArgument', () => {
  assert.deepEqual(configFromOptions(undefined).backendOptions, {});
  const f = path.join(tmp, 'backends.toml');
  fs.writeFileSync(f, 'Backend = "gvisor"\n[backends.gvisor]\nplatform = "ptrace"\ndebug = true\n[backends.vm]\nmemory_mib = 256\n');
  assert.deepEqual(configFromOptions(runtimeOptions(f)).backendOptions,
    { gvisor: { platform: 'ptrace', debug: true }, vm: { memory_mib: 256 } });
  fs.writeFileSync(f, 'backends = 3\n');
  assert.throws(() => configFromOptions(runtimeOptions(f)), isInvalid(/backends must be a table of \[backends.<name>\] tables/));
  fs.writeFileSync(f, '[backends]\ngvisor = "ptrace"\n');
  assert.throws(() => configFromOptions(runtimeOptions(f)), isInvalid(/backends.gvisor must be a table/));
});

test('LogLevel: unset by default; debug, info, warn or error; anything else is InvalidArgument listing them', () => {
  assert.equal(configFromOptions(undefined).logLevel, '');
  const f = path.join(tmp, 'loglevel.toml');
  for (const level of ['debug', 'info', 'warn', 'error']) {
    fs.writeFileSync(f, `LogLevel = "${level}"\n`);
    assert.equal(configFromOptions(runtimeOptions(f)).logLevel, level);
  }
  for (const bad of ['"trace"', '"DEBUG"', '""', '1']) {
    fs.writeFileSync(f, `LogLevel = ${bad}\n`);
    assert.throws(() => configFromOptions(runtimeOptions(f)), isInvalid(/LogLevel must be one of "debug", "info", "warn", "error"/));
  }
});

test('RuntimeTimeout: 120 s by default; a number of seconds above 0 (fractions too), at most a day; anything else InvalidArgument', () => {
  assert.equal(configFromOptions(undefined).runtimeTimeoutMs, 120_000);
  const f = path.join(tmp, 'timeout.toml');
  for (const [v, ms] of [['4', 4000], ['0.5', 500], ['86400', 86_400_000]] as const) {
    fs.writeFileSync(f, `RuntimeTimeout = ${v}\n`);
    assert.equal(containerConfig(configFromOptions(runtimeOptions(f))).runtimeTimeoutMs, ms);
  }
  for (const bad of ['0', '-1', '86401', '"30s"', 'true']) {
    fs.writeFileSync(f, `RuntimeTimeout = ${bad}\n`);
    assert.throws(() => configFromOptions(runtimeOptions(f)), isInvalid(/RuntimeTimeout must be a number of seconds above 0/));
  }
  assert.equal(containerConfig({ ...DEFAULT_CONFIG, runtimeTimeoutMs: undefined as unknown as number }).runtimeTimeoutMs, 120_000,
    'a record of an older daemon');
});

test('the scopes of a document: a backend gets the container keys only; the daemon its own', () => {
  const f = path.join(tmp, 'scopes.toml');
  fs.writeFileSync(f, 'BinaryName = "crun"\nIoUid = 5\nLogLevel = "warn"\nMetricsAddress = "127.0.0.1:9464"\nShimCgroup = "/s"\n[backends.x]\na = 1\n');
  const c = configFromOptions(runtimeOptions(f));
  assert.deepEqual(containerConfig(c), {
    binaryName: 'crun', root: DEFAULT_CONFIG.root, systemdCgroup: false, noPivotRoot: false, noNewKeyring: false, ioUid: 5, ioGid: 0,
    runtimeTimeoutMs: 120_000,
  });
  assert.deepEqual(daemonOptions(c), { metricsAddress: '127.0.0.1:9464', logLevel: 'warn' });
  assert.deepEqual(daemonOptions({}), { metricsAddress: '', logLevel: '' }, 'a record of an older daemon');
});

test('MetricsAddress: off by default, unix sockets and loopback ports accepted', () => {
  assert.equal(configFromOptions(undefined).metricsAddress, '');
  const f = path.join(tmp, 'metrics.toml');
  fs.writeFileSync(f, 'MetricsAddress = "unix:///run/tsrt/metrics.sock"\n');
  assert.equal(configFromOptions(runtimeOptions(f)).metricsAddress, 'unix:///run/tsrt/metrics.sock');
  fs.writeFileSync(f, 'MetricsAddress = ""\n');
  assert.equal(configFromOptions(runtimeOptions(f)).metricsAddress, '', 'an empty address says "off" explicitly');

  assert.deepEqual(parseMetricsAddress('unix:///run/tsrt/metrics.sock'), { kind: 'unix', path: '/run/tsrt/metrics.sock' });
  assert.deepEqual(parseMetricsAddress('unix:///run//tsrt/./m.sock'), { kind: 'unix', path: '/run/tsrt/m.sock' });
  assert.deepEqual(parseMetricsAddress('127.0.0.1:9464'), { kind: 'tcp', host: '127.0.0.1', port: 9464 });
  assert.deepEqual(parseMetricsAddress('[::1]:1'), { kind: 'tcp', host: '::1', port: 1 });
  assert.deepEqual(parseMetricsAddress('localhost:65535'), { kind: 'tcp', host: '127.0.0.1', port: 65535 });
});

test('MetricsAddress: anything else is InvalidArgument saying what is wrong and what is expected', () => {
  const cases: Array<[string, RegExp]> = [
    ['10.0.0.1:9000', /host 10\.0\.0\.1 is not allowed, the endpoint listens on loopback only/],
    ['0.0.0.0:9000', /host 0\.0\.0\.0 is not allowed/],
    ['[::]:9000', /host \[::\] is not allowed/],
    ['example.com:80', /host example\.com is not allowed/],
    ['127.0.0.1:0', /port 0 is out of range 1-65535/],
    ['127.0.0.1:70000', /port 70000 is out of range/],
    ['127.0.0.1:http', /not a unix socket or a loopback host:port/],
    ['127.0.0.1', /not a unix socket or a loopback host:port/],
    ['unix://metrics.sock', /must be absolute/],
    ['unix:///run/tsrt/', /names a directory/],
    [`unix:///${'x'.repeat(120)}.sock`, /longer than 107 bytes/],
    ['/run/tsrt/metrics.sock', /not a unix socket or a loopback host:port/],
  ];
  for (const [address, why] of cases) {
    assert.throws(() => parseMetricsAddress(address), (e: { code: number; message: string }) =>
      e.code === Code.InvalidArgument && why.test(e.message) && e.message.includes('expected unix:///absolute/path.sock'),
    address);
  }
  const f = path.join(tmp, 'bad-metrics.toml');
  fs.writeFileSync(f, 'MetricsAddress = "10.0.0.1:9000"\n');
  assert.throws(() => configFromOptions(runtimeOptions(f)), (e: { code: number; message: string }) =>
    e.code === Code.InvalidArgument && e.message.startsWith(`${f}: MetricsAddress "10.0.0.1:9000": host 10.0.0.1`));
  fs.writeFileSync(f, 'MetricsAddress = 9000\n');
  assert.throws(() => configFromOptions(runtimeOptions(f)), /MetricsAddress must be a string/);
});

// ---- the runc options runc-v2 users set, in every form containerd sends them ---------------------------

/** Warnings as [option, message] pairs. */
function collector(): { warn: (m: string, f: Record<string, unknown>) => void; seen: Array<[unknown, string]> } {
  const seen: Array<[unknown, string]> = [];
  return { seen, warn: (m, f) => { seen.push([f.option, m]); } };
}

const isInvalid = (re: RegExp) => (e: { code: number; message: string }) => e.code === Code.InvalidArgument && re.test(e.message);

test('TOML file: every runc-v2 option by its Go name; the ones tsrt cannot honour are warnings', () => {
  const f = path.join(tmp, 'all.toml');
  fs.writeFileSync(f, [
    'BinaryName = "crun"', 'Root = "/run/tsrt/crun"', 'SystemdCgroup = true', 'NoPivotRoot = true', 'NoNewKeyring = true',
    'IoUid = 100000', 'IoGid = 100001', 'ShimCgroup = "/system.slice/tsrt-shims"',
    'CriuPath = "/usr/sbin/criu"', 'CriuImagePath = "/var/lib/img"', 'CriuWorkPath = ""', 'TaskApiAddress = "ttrpc+unix:///x"',
    'TaskApiVersion = 0', '',
  ].join('\n'));
  const w = collector();
  const c = configFromOptions(runtimeOptions(f), w.warn);
  assert.deepEqual(c, {
    ...DEFAULT_CONFIG, binaryName: 'crun', root: '/run/tsrt/crun', systemdCgroup: true, noPivotRoot: true, noNewKeyring: true,
    ioUid: 100000, ioGid: 100001, shimCgroup: '/system.slice/tsrt-shims',
  });
  // empty / zero values are "not set": no warning for CriuWorkPath and TaskApiVersion
  assert.deepEqual(w.seen.map(([o]) => o), ['CriuPath', 'CriuImagePath', 'TaskApiAddress']);
  assert.match(w.seen[0]![1], /CriuPath is not supported by tsrt: tsrt does not checkpoint/);
  assert.match(w.seen[2]![1], /TaskApiAddress is not supported by tsrt: containerd reads it/);
  // readConfigFile on its own, as before (warnings optional)
  assert.equal(readConfigFile(f).ioGid, 100001);
});

test('TOML: wrong types and values are InvalidArgument naming the key', () => {
  const f = path.join(tmp, 'types.toml');
  const cases: Array<[string, RegExp]> = [
    ['IoUid = -1', /IoUid must be an integer from 0 to 4294967295/],
    ['IoGid = 4294967296', /IoGid must be an integer/],
    ['IoUid = "1000"', /IoUid must be an integer/],
    ['NoNewKeyring = "yes"', /NoNewKeyring must be true or false/],
    ['ShimCgroup = "relative/path"', /ShimCgroup must be an absolute cgroup path/],
    ['ShimCgroup = "/a/../b"', /ShimCgroup must be an absolute cgroup path without "\.\."/],
    ['CriuWorkPath = 3', /CriuWorkPath must be a string/],
    ['TaskApiVersion = 1.5', /TaskApiVersion must be an integer/],
    ['TypeUrl = "x"', /unknown key TypeUrl/], // a file is not an options table
  ];
  for (const [line, why] of cases) {
    fs.writeFileSync(f, `${line}\n`);
    assert.throws(() => configFromOptions(runtimeOptions(f)), isInvalid(why), line);
  }
  fs.writeFileSync(f, 'ShimCgroup = ""\n');
  assert.equal(configFromOptions(runtimeOptions(f)).shimCgroup, '');
});

test('config_body: a CRI options table without ConfigPath (containerd 1.7+) is read like a file', () => {
  // what containerd's CRI sends for [..runtimes.tsrt.options] BinaryName = "crun" ... (go-toml's output)
  const body = Buffer.from("BinaryName = 'crun'\nIoUid = 1000\nNoNewKeyring = true\nSystemdCgroup = true\nTypeUrl = ''\n");
  const w = collector();
  const c = configFromOptions({ typeUrl: 'runtimeoptions.v1.Options', value: runtimeoptions.v1.Options.encode({ configBody: body }).finish() }, w.warn);
  assert.deepEqual(c, { ...DEFAULT_CONFIG, binaryName: 'crun', ioUid: 1000, noNewKeyring: true, systemdCgroup: true });
  assert.equal(w.seen.length, 0, 'an empty TypeUrl in the table is nothing');
  // a TypeUrl that says something is not used: a warning (also when it comes as the message's field)
  readConfigBody(Buffer.from('TypeUrl = "io.containerd.tsrt.v1.options"\n'), { ...DEFAULT_CONFIG }, w.warn);
  configFromOptions({ typeUrl: 'runtimeoptions.v1.Options', value: runtimeoptions.v1.Options.encode({ typeUrl: 'x' }).finish() }, w.warn);
  assert.deepEqual(w.seen.map(([o]) => o), ['TypeUrl', 'TypeUrl']);
  // ConfigPath wins over a body (containerd never sends both)
  const f = path.join(tmp, 'path-wins.toml');
  fs.writeFileSync(f, 'BinaryName = "runc"\n');
  assert.equal(configFromOptions({
    typeUrl: 'runtimeoptions.v1.Options', value: runtimeoptions.v1.Options.encode({ configPath: f, configBody: body }).finish(),
  }).binaryName, 'runc');
  // a typo in the table fails the Create, as in a file
  assert.throws(() => readConfigBody(Buffer.from('BinaryNmae = "crun"\n')), isInvalid(/runtime options table: unknown key BinaryNmae/));
  assert.throws(() => readConfigBody(Buffer.from('BinaryName = \n')), isInvalid(/runtime options table is not valid TOML/));
});

test('containerd.runc.v1.Options (ctr 2.x task options for --no-pivot, --uidmap): every field', () => {
  const value = containerd.runc.v1.Options.encode({
    noPivotRoot: true, noNewKeyring: true, shimCgroup: '/shims', ioUid: 100000, ioGid: 100000, binaryName: 'crun', root: '/run/x',
    criuPath: '/criu', systemdCgroup: true, criuImagePath: '/img', criuWorkPath: '/work', taskApiAddress: 'ttrpc+unix:///s', taskApiVersion: 3,
  }).finish();
  const w = collector();
  const c = configFromOptions({ typeUrl: 'containerd.runc.v1.Options', value }, w.warn);
  assert.deepEqual(c, {
    ...DEFAULT_CONFIG, binaryName: 'crun', root: '/run/x', systemdCgroup: true, noPivotRoot: true, noNewKeyring: true,
    ioUid: 100000, ioGid: 100000, shimCgroup: '/shims',
  });
  assert.deepEqual(w.seen.map(([o]) => o), ['CriuPath', 'CriuImagePath', 'CriuWorkPath', 'TaskApiAddress', 'TaskApiVersion']);
  // only what ctr 2.x sets for `--uidmap 0:100000:65536`: nothing to warn about
  const w2 = collector();
  const c2 = configFromOptions({ typeUrl: 'containerd.runc.v1.Options', value: containerd.runc.v1.Options.encode({ ioUid: 100000, ioGid: 100000 }).finish() }, w2.warn);
  assert.equal(c2.binaryName, 'runc');
  assert.equal(c2.ioUid, 100000);
  assert.equal(w2.seen.length, 0);
  assert.throws(() => configFromOptions({ typeUrl: 'containerd.runc.v1.Options', value: containerd.runc.v1.Options.encode({ shimCgroup: 'rel' }).finish() }),
    isInvalid(/containerd.runc.v1.Options: ShimCgroup must be an absolute cgroup path/));
});

test('containerd.linux.runc.CreateOptions (ctr 1.6 task options): the runc fields, checkpoint ones warned', () => {
  const value = containerd.linux.runc.CreateOptions.encode({
    noPivotRoot: true, noNewKeyring: true, shimCgroup: '/s', ioUid: 1, ioGid: 2, openTcp: true, emptyNamespaces: ['network'], criuWorkPath: '/w',
  }).finish();
  const w = collector();
  const c = configFromOptions({ typeUrl: 'containerd.linux.runc.CreateOptions', value }, w.warn);
  assert.deepEqual(c, { ...DEFAULT_CONFIG, noPivotRoot: true, noNewKeyring: true, shimCgroup: '/s', ioUid: 1, ioGid: 2 });
  assert.deepEqual(w.seen.map(([o]) => o), ['OpenTcp', 'EmptyNamespaces', 'CriuWorkPath']);
  const w2 = collector();
  configFromOptions({ typeUrl: 'containerd.linux.runc.CreateOptions', value: containerd.linux.runc.CreateOptions.encode({ emptyNamespaces: [] }).finish() }, w2.warn);
  assert.equal(w2.seen.length, 0);
});

test('Transport: ttrpc by default, "ttrpc" and "grpc" accepted (file and CRI table), anything else refused', () => {
  assert.equal(DEFAULT_CONFIG.transport, 'ttrpc');
  const f = path.join(tmp, 'transport.toml');
  fs.writeFileSync(f, 'Transport = "grpc"\nBinaryName = "crun"\n');
  assert.equal(configFromOptions(runtimeOptions(f)).transport, 'grpc');
  fs.writeFileSync(f, 'Transport = "ttrpc"\n');
  assert.equal(configFromOptions(runtimeOptions(f)).transport, 'ttrpc');
  assert.equal(readConfigBody(Buffer.from('TypeUrl = ""\nConfigPath = ""\nTransport = "grpc"\n')).transport, 'grpc');
  for (const bad of ['"GRPC"', '"http2"', '1', 'true']) {
    fs.writeFileSync(f, `Transport = ${bad}\n`);
    assert.throws(() => configFromOptions(runtimeOptions(f)), (e: { code: number; message: string }) =>
      e.code === Code.InvalidArgument && e.message === `${f}: Transport must be "ttrpc" or "grpc" (got ${bad}): invalid argument`);
  }
});
