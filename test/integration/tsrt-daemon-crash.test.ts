// The shared daemon may crash; containers must not notice more than a pause. Their monitors keep
// containerd's connections, the processes and their exits, start a new daemon and reconnect; the new
// daemon serves the containers from the state the old one recorded.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  TSRT_V2,
  containerdForFile,
  processesWithCwdUnder,
  taskStatus,
  tsrtDaemonDir,
  uniqueId,
  waitFor,
  type Containerd,
} from './harness.js';

const suite = containerdForFile({ before, after });

const daemonPid = (cd: Containerd): number =>
  Number(readFileSync(join(tsrtDaemonDir(cd.ttrpcAddress), 'daemon.pid'), 'utf8'));

test('SIGKILL of the daemon: containers keep running, exits meanwhile are reported, a new daemon serves them', { timeout: 120_000 }, async () => {
  const cd = suite.containerd();
  const image = suite.image();
  const a = uniqueId('keep');
  const b = uniqueId('dies');
  await cd.ctrOk(['run', '-d', '--runtime', TSRT_V2, image, a, 'sleep', '600']);
  await cd.ctrOk(['run', '-d', '--runtime', TSRT_V2, image, b, 'sh', '-c', 'sleep 2; exit 9']);
  const bPid = Number((await cd.ctrOk(['task', 'ps', b])).split('\n')[1]!.trim().split(/\s+/)[0]);
  const old = daemonPid(cd);
  process.kill(old, 'SIGKILL');

  await waitFor(() => !existsSync(`/proc/${bPid}`), 10_000, { what: 'b exited while the daemon was down' });
  await waitFor(async () => (await taskStatus(cd, a)) === 'RUNNING', 20_000, { what: 'a RUNNING through a new daemon' });
  const fresh = daemonPid(cd);
  assert.notEqual(fresh, old, 'a new daemon was started');
  await waitFor(async () => (await taskStatus(cd, b)) === 'STOPPED', 10_000, { what: 'b STOPPED' });

  const del = await cd.ctr(['task', 'delete', b]);
  assert.equal(del.code, 0, del.stderr);
  assert.match(del.stderr, /exit with non-zero exit code 9/);
  await cd.ctrOk(['containers', 'rm', b]);

  await cd.ctrOk(['task', 'kill', '-s', 'SIGKILL', a]);
  await waitFor(async () => (await taskStatus(cd, a)) === 'STOPPED', 10_000, { what: 'a stopped' });
  await cd.ctrOk(['task', 'delete', a]);
  await cd.ctrOk(['containers', 'rm', a]);
  for (const id of [a, b]) {
    await waitFor(() => !existsSync(cd.bundleDir(id)), 5000, { what: `bundle of ${id} removed` });
    assert.deepEqual(processesWithCwdUnder(cd.bundleDir(id)), []);
  }
});

test('a foreground ctr run waiting on its container does not notice a daemon crash', { timeout: 120_000 }, async () => {
  const cd = suite.containerd();
  const image = suite.image();
  const id = uniqueId('fg');
  const child = cd.ctrSpawn(['run', '--rm', '--runtime', TSRT_V2, image, id, 'sh', '-c', 'sleep 4; exit 5']);
  await waitFor(async () => (await taskStatus(cd, id)) === 'RUNNING', 15_000, { what: `${id} running` });
  const old = daemonPid(cd);
  process.kill(old, 'SIGKILL');
  // ctr's Wait was in flight in the dead daemon: the monitor replays it to the next one.
  const r = await child.result;
  assert.equal(r.code, 5, r.stderr);
  assert.equal(r.stderr, '');
  assert.notEqual(daemonPid(cd), old);
  await waitFor(() => !existsSync(cd.bundleDir(id)), 5000, { what: 'bundle removed' });
  assert.deepEqual(processesWithCwdUnder(cd.bundleDir(id)), []);
});

test('an exec running across a daemon crash: its ctr gets its exit code, task ps still names it', { timeout: 120_000 }, async () => {
  const cd = suite.containerd();
  const image = suite.image();
  const id = uniqueId('execcrash');
  await cd.ctrOk(['run', '-d', '--runtime', TSRT_V2, image, id, 'sleep', '600']);
  const exec = cd.ctrSpawn(['task', 'exec', '--exec-id', 'survivor', id, 'sh', '-c', 'sleep 3; echo done; exit 6']);
  await waitFor(async () => /ExecID:survivor,/.test((await cd.ctr(['task', 'ps', id])).stdout), 10_000, { what: 'exec running' });
  const old = daemonPid(cd);
  process.kill(old, 'SIGKILL');
  await waitFor(async () => (await taskStatus(cd, id)) === 'RUNNING', 20_000, { what: 'served by a new daemon' });
  assert.notEqual(daemonPid(cd), old);
  assert.match((await cd.ctrOk(['task', 'ps', id])), /ExecID:survivor,/, 'the new daemon knows the exec');
  const r = await exec.result;
  assert.deepEqual([r.code, r.stdout], [6, 'done\n'], r.stderr);
  await cd.ctrOk(['task', 'kill', '-s', 'SIGKILL', id]);
  await waitFor(async () => (await taskStatus(cd, id)) === 'STOPPED', 10_000, { what: 'stopped' });
  await cd.ctrOk(['task', 'delete', id]);
  await cd.ctrOk(['containers', 'rm', id]);
  await waitFor(() => !existsSync(cd.bundleDir(id)), 5000, { what: 'bundle removed' });
  assert.deepEqual(processesWithCwdUnder(cd.bundleDir(id)), []);
});
