// The daemon's idle exit: once its last container is gone it waits TSRT_DAEMON_IDLE_MS (5 min by default,
// 2 s here) and exits, and of its directory under /run/tsrt only daemon.log stays (no empty state/ or
// events/, no socket, no pid file); no shim socket of its containers stays either. The next container
// starts a new daemon there.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { TSRT_V2, WAIT_MS, containerdForFile, shimSocketPath, tsrtDaemonDir, uniqueId, waitFor } from './harness.js';
import { isAlive } from './lib/procfs.js';

const suite = containerdForFile({ before, after }, { env: { TSRT_DAEMON_IDLE_MS: '2000' } });

test('after its idle exit only daemon.log is left of the daemon; the next container starts a new one', { timeout: 120_000 }, async () => {
  const cd = suite.containerd();
  const dir = tsrtDaemonDir(cd.ttrpcAddress);
  const ids: string[] = [];
  for (const rt of [['--runtime', TSRT_V2], ['--runtime', TSRT_V2, '--annotation', 'io.tsrt.backend=native']]) {
    const id = uniqueId('idle');
    ids.push(id);
    const r = await cd.ctr(['run', '--rm', ...rt, suite.image(), id, 'sh', '-c', 'echo hi; exit 3']);
    assert.deepEqual([r.code, r.stdout.trim()], [3, 'hi'], r.stderr);
  }
  const first = Number(fs.readFileSync(path.join(dir, 'daemon.pid'), 'utf8'));
  await waitFor(() => !isAlive(first), WAIT_MS, { what: 'the idle daemon gone' });
  assert.deepEqual(fs.readdirSync(dir).sort(), ['daemon.log']);
  for (const id of ids) assert.equal(fs.existsSync(shimSocketPath(cd.address, cd.ns, id)), false, `no shim socket of ${id}`);

  const next = uniqueId('idle-next');
  const r = await cd.ctr(['run', '--rm', '--runtime', TSRT_V2, suite.image(), next, 'echo', 'again']);
  assert.deepEqual([r.code, r.stdout.trim()], [0, 'again'], r.stderr);
  const second = Number(fs.readFileSync(path.join(dir, 'daemon.pid'), 'utf8'));
  assert.notEqual(second, first, 'a new daemon');
  await waitFor(() => !isAlive(second), WAIT_MS, { what: 'the second idle daemon gone' });
  assert.deepEqual(fs.readdirSync(dir).sort(), ['daemon.log']);
});
