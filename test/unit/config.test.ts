import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { configFromOptions, DEFAULT_CONFIG, parseMetricsAddress } from '../../src/plugins/config.js';
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
