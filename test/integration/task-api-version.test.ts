// Which Task API the real containerd speaks to tsrt, and what it reads from `-info`: containerd 1.6 and 1.7
// call containerd.task.v2.Task, 2.x calls containerd.task.v3.Task (start answered bootstrap version 3;
// native/shim/bootstrap.h). Run it on each release: TSRT_CONTAINERD_BIN=<usr/bin of a containerd> (see
// test/integration/lib/containerd-dist.ts); by default the system's.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  CMD_MS,
  RUNC_V2,
  TSRT_V2,
  WAIT_MS,
  containerdForFile,
  removeContainer,
  tsrtDaemonDir,
  uniqueId,
  waitFor,
  type Containerd,
} from './harness.js';

const suite = containerdForFile({ before, after });
const need = (): Containerd => suite.containerd();
const v2x = (): boolean => need().dist.release[0] >= 2;

/** The Task API services the daemon has had requests over, from its log's first-request lines. */
function servicesSeen(c: Containerd): string[] {
  let text = '';
  try {
    text = readFileSync(join(tsrtDaemonDir(c.ttrpcAddress), 'daemon.log'), 'utf8');
  } catch { /* no daemon yet */ }
  const seen: string[] = [];
  for (const line of text.split('\n')) {
    if (!line.includes('first Task API request over this service')) continue;
    seen.push((JSON.parse(line) as { service: string }).service);
  }
  return seen.sort();
}

describe('Task API version', { timeout: 240_000 }, () => {
  test('containerd speaks Task v3 to tsrt from 2.0 on, Task v2 before', async () => {
    const c = need();
    const id = uniqueId('api');
    try {
      await c.ctrOk(['run', '-d', '--runtime', TSRT_V2, suite.image(), id, 'sleep', '600'], { timeoutMs: CMD_MS });
      const want = v2x() ? 'containerd.task.v3.Task' : 'containerd.task.v2.Task';
      // Create, Start and Connect have been answered once ctr run -d returns; the log line comes first
      assert.deepEqual(await waitFor(() => (servicesSeen(c).length > 0 ? servicesSeen(c) : undefined), WAIT_MS,
        { what: 'a first-request line in the daemon log' }), [want]);
      const bundle = c.bundleDir(id);
      const address = readFileSync(join(bundle, 'address'), 'utf8');
      assert.match(address, /^unix:\/\/\/run\/containerd\/s\/[0-9a-f]{64}$/);
      if (v2x()) {
        // what containerd 2.x parsed from start's reply, kept to reconnect after a restart
        assert.deepEqual(JSON.parse(readFileSync(join(bundle, 'bootstrap.json'), 'utf8')),
          { version: 3, address, protocol: 'ttrpc' });
      } else {
        assert.ok(!existsSync(join(bundle, 'bootstrap.json')));
      }
      const ps = await c.ctrOk(['task', 'ls']);
      assert.match(ps, new RegExp(`^${id}\\s+\\d+\\s+RUNNING$`, 'm'));
      await c.ctrOk(['task', 'kill', '-s', 'SIGKILL', id]);
      await waitFor(async () => /STOPPED/.test((await c.ctr(['task', 'ls'])).stdout), WAIT_MS, { what: `${id} stopped` });
      await c.ctrOk(['task', 'delete', id]);
      // every request went over the one service
      assert.deepEqual(servicesSeen(c), [want]);
    } finally {
      await removeContainer(c, id);
    }
  });

  test('ctr plugins inspect-runtime shows tsrt as it shows runc-v2', async (t) => {
    if (!v2x()) {
      t.skip(`containerd ${need().dist.version} has no inspect-runtime`);
      return;
    }
    const c = need();
    const inspect = async (args: string[]): Promise<any> =>
      JSON.parse(await c.ctrOk(['plugins', 'inspect-runtime', ...args], { timeoutMs: CMD_MS }));
    const runc = await inspect(['--runtime', RUNC_V2]);
    const tsrt = await inspect(['--runtime', TSRT_V2]);
    assert.equal(tsrt.Name, TSRT_V2);
    assert.equal(tsrt.Version.Version, '0.1.0');
    assert.match(tsrt.Version.Revision, /^([0-9a-f]{40})?$/);
    assert.equal(runc.Name, RUNC_V2);
    // the same runc underneath: the same features, but checkpoint, which tsrt does not do
    const expected = structuredClone(runc.Features);
    if (expected?.annotations?.['org.opencontainers.runc.checkpoint.enabled'] === 'true') {
      expected.annotations['org.opencontainers.runc.checkpoint.enabled'] = 'false';
    }
    assert.deepEqual(tsrt.Features, expected);
    assert.ok(tsrt.Features?.ociVersionMax, 'runc reported its features');

    // with tsrt's options file: the options come back, and its BinaryName is asked
    const cfg = join(c.root, 'inspect-crun.toml');
    writeFileSync(cfg, 'BinaryName = "runc"\nRoot = "/run/tsrt/runc"\n');
    const withOptions = await inspect(['--runtime', TSRT_V2, '--runtime-config-path', cfg]);
    assert.deepEqual(withOptions.Options, { config_path: cfg });
    assert.deepEqual(withOptions.Features, expected);
  });
});
