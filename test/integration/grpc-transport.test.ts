// The gRPC transport with a real containerd (docs/grpc-transport.md). An options file with
// Transport = "grpc", given with `ctr run --runtime-config-path`:
//   containerd 1.7  start answers {"version":2,…,"protocol":"grpc"}; containerd drives the whole lifecycle
//                   over HTTP/2 to the monitor (Task v3), and a daemon crash in the middle is not noticed.
//   containerd 2.x  start answers ttrpc, because 2.x drops a gRPC shim's tasks right after start; the
//                   monitor logs why, and the lifecycle runs as usual.
//   containerd 1.6  skipped: it takes only a ttrpc address.
// TSRT_CONTAINERD_BIN=<usr/bin of a containerd> picks the release (test/integration/lib/containerd-dist.ts).
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  CMD_MS,
  TSRT_V2,
  WAIT_MS,
  containerdForFile,
  processesWithCwdUnder,
  psExecInfo,
  removeContainer,
  taskStatus,
  tsrtDaemonDir,
  uniqueId,
  usr1Trapped,
  waitFor,
  type Containerd,
} from './harness.js';
import { containerdUnderTest } from './lib/containerd-dist.js';

const release = containerdUnderTest().release;
const skip = release[0] === 1 && release[1] < 7 ? 'containerd 1.6 takes only a ttrpc address from a shim' : false;
const grpcExpected = release[0] === 1; // 1.7; 2.x gets ttrpc

const suite = containerdForFile({ before, after });
const need = (): Containerd => suite.containerd();

let configFile = '';
const runArgs = () => ['--runtime', TSRT_V2, '--runtime-config-path', configFile];

/** containerd's log from byte `from` on, as text. */
const logFrom = (cd: Containerd, from = 0): string => readFileSync(cd.logPath).subarray(from).toString('utf8');

/** The gRPC methods the monitor of `id` answered (its debug lines in containerd's log). */
function grpcMethods(cd: Containerd, id: string, from = 0): string[] {
  const seen = new Set<string>();
  for (const l of logFrom(cd, from).split('\n')) {
    const m = /grpc call \/containerd\.task\.v3\.Task\/(\w+): status \d+/.exec(l);
    if (m && l.includes(`id=${id}`)) seen.add(m[1]!);
  }
  return [...seen].sort();
}

/** containerd took a shim for dead (it logs this when a shim's connection goes, before cleaning up). */
const disconnected = (log: string): boolean => log.includes('msg="shim disconnected"');

const daemonPid = (cd: Containerd): number => Number(readFileSync(join(tsrtDaemonDir(cd.ttrpcAddress), 'daemon.pid'), 'utf8'));
const initPid = async (cd: Containerd, id: string): Promise<number> =>
  Number((await cd.ctrOk(['task', 'ps', id])).split('\n')[1]!.trim().split(/\s+/)[0]);

describe('gRPC transport', { skip, timeout: 300_000 }, () => {
  before(() => {
    configFile = join(need().root, 'tsrt-grpc.toml');
    writeFileSync(configFile, 'Transport = "grpc"\n');
  });

  test('a whole lifecycle: run, exec, ps, metrics, pause/resume, kill, delete', async () => {
    const cd = need();
    const id = uniqueId('grpc');
    const from = readFileSync(cd.logPath).length;
    try {
      await cd.ctrOk(['run', '-d', ...runArgs(), suite.image(), id, 'sleep', '600'], { timeoutMs: CMD_MS });
      const bundle = cd.bundleDir(id);
      const address = readFileSync(join(bundle, 'address'), 'utf8');
      if (grpcExpected) {
        // containerd 1.7 reads the reply back from <bundle>/address when it reconnects
        assert.match(address, /^\{"version":2,"address":"\/run\/containerd\/s\/[0-9a-f]{64}","protocol":"grpc"\}$/);
      } else {
        const sock = address.replace(/^unix:\/\//, '');
        assert.deepEqual(JSON.parse(readFileSync(join(bundle, 'bootstrap.json'), 'utf8')),
          { version: 3, address, protocol: 'ttrpc' });
        assert.match(sock, /^\/run\/containerd\/s\/[0-9a-f]{64}$/);
        await waitFor(() => logFrom(cd, from).split('\n').some((l) => l.includes(`id=${id}`) &&
          l.includes('containerd 2.x drops a gRPC shim') && l.includes('serving ttrpc')), WAIT_MS, { what: 'the reason in the log' });
      }
      const exec = await cd.ctr(['task', 'exec', '--exec-id', 'e1', id, 'sh', '-c', 'echo out; exit 3'], { timeoutMs: CMD_MS });
      assert.deepEqual([exec.code, exec.stdout], [3, 'out\n'], exec.stderr);
      const sleeper = cd.ctrSpawn(['task', 'exec', '--exec-id', 'sleeper', id, 'sleep', '600']);
      await waitFor(async () => (await cd.ctr(['task', 'ps', id])).stdout.includes(psExecInfo(cd, 'sleeper')), WAIT_MS, { what: 'the exec in task ps' });
      const metrics = await cd.ctrOk(['task', 'metrics', id]);
      assert.match(metrics, /pids\.current|memory|ID\s+TIMESTAMP/i);
      await cd.ctrOk(['task', 'pause', id]);
      await waitFor(async () => (await taskStatus(cd, id)) === 'PAUSED', WAIT_MS, { what: 'PAUSED' });
      await cd.ctrOk(['task', 'resume', id]);
      await waitFor(async () => (await taskStatus(cd, id)) === 'RUNNING', WAIT_MS, { what: 'RUNNING again' });
      await cd.ctrOk(['task', 'kill', '--exec-id', 'sleeper', '-s', 'SIGKILL', id]);
      const s = await sleeper.result;
      assert.equal(s.code, 137, s.stderr);
      await cd.ctrOk(['task', 'kill', '-s', 'SIGKILL', id]);
      await waitFor(async () => (await taskStatus(cd, id)) === 'STOPPED', WAIT_MS, { what: 'STOPPED' });
      // until the task is deleted (containerd then closes the connection itself and cleans up as for ttrpc)
      assert.ok(!disconnected(logFrom(cd, from)), 'containerd never lost the shim');
      await cd.ctrOk(['task', 'delete', id]);
      await cd.ctrOk(['containers', 'rm', id]);
      await waitFor(() => !existsSync(bundle), WAIT_MS, { what: 'bundle removed' });
      assert.deepEqual(processesWithCwdUnder(bundle), []);
      const log = logFrom(cd, from);
      if (grpcExpected) {
        assert.ok(log.includes('protocol=grpc'), 'containerd connected with gRPC');
        // every call of the lifecycle came over HTTP/2 (the Shutdown after the last delete may still be on its way)
        const methods = grpcMethods(cd, id, from);
        for (const m of ['Connect', 'Create', 'Delete', 'Exec', 'Kill', 'Pause', 'Pids', 'Resume', 'Start', 'State', 'Stats', 'Wait']) {
          assert.ok(methods.includes(m), `${m} over gRPC (seen: ${methods.join(', ')})`);
        }
      } else {
        assert.deepEqual(grpcMethods(cd, id, from), [], 'nothing over gRPC on containerd 2.x');
      }
    } finally {
      await removeContainer(cd, id);
    }
  });

  test('a daemon crash in the middle: containerd keeps the tasks, an exit meanwhile is reported, exec works after', async () => {
    const cd = need();
    const keep = uniqueId('grpc-keep');
    const dies = uniqueId('grpc-dies');
    try {
      await cd.ctrOk(['run', '-d', ...runArgs(), suite.image(), keep, 'sleep', '600'], { timeoutMs: CMD_MS });
      await cd.ctrOk(['run', '-d', ...runArgs(), suite.image(), dies, 'sh', '-c', 'trap "exit 9" USR1; while :; do sleep 0.1; done'], { timeoutMs: CMD_MS });
      const pid = await initPid(cd, dies);
      await usr1Trapped(pid);
      const old = daemonPid(cd);
      const from = readFileSync(cd.logPath).length;
      process.kill(old, 'SIGKILL');
      await waitFor(() => logFrom(cd, from).split('\n').some((l) => l.includes('lost the daemon control connection') && l.includes(`id=${dies}`)),
        WAIT_MS, { what: 'the monitor saw the daemon go' });
      process.kill(pid, 'SIGUSR1'); // exits while no daemon runs
      await waitFor(async () => (await taskStatus(cd, keep)) === 'RUNNING', WAIT_MS, { what: 'keep served by a new daemon' });
      assert.notEqual(daemonPid(cd), old);
      await waitFor(async () => (await taskStatus(cd, dies)) === 'STOPPED', WAIT_MS, { what: 'dies STOPPED' });
      const exec = await cd.ctr(['task', 'exec', '--exec-id', 'after', keep, 'echo', 'still here'], { timeoutMs: CMD_MS });
      assert.deepEqual([exec.code, exec.stdout], [0, 'still here\n'], exec.stderr);
      assert.ok(!disconnected(logFrom(cd, from)), 'containerd did not take the crash for a dead shim');
      const del = await cd.ctr(['task', 'delete', dies]);
      assert.equal(del.code, 0, del.stderr);
      assert.match(del.stderr, /exit with non-zero exit code 9/);
      if (grpcExpected) {
        assert.ok(grpcMethods(cd, keep, from).includes('Exec'), 'the exec after the crash came over gRPC');
      }
      assert.ok(!disconnected(logFrom(cd, from).split('\n').filter((l) => l.includes(keep)).join('\n')), 'keep was never lost');
      await cd.ctrOk(['task', 'kill', '-s', 'SIGKILL', keep]);
      await waitFor(async () => (await taskStatus(cd, keep)) === 'STOPPED', WAIT_MS, { what: 'keep stopped' });
    } finally {
      await removeContainer(cd, keep);
      await removeContainer(cd, dies);
    }
  });
});
