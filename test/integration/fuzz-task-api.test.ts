// Fuzzing of the Task API through the shim's socket, as containerd connects: 100,000 generated and mutated
// inputs by default (test/fuzz/task-api.ts), seeded from every Task request shaped as containerd sends it
// for two running containers, one on the runc backend and one on native. Afterwards neither the daemon nor
// a monitor has crashed or been replaced, no liveness request went unanswered, each container's State is
// answered and the daemon still runs and execs a new container.
//   FUZZ_SEED=<n>|random (default 1, what CI runs)   FUZZ_INPUTS=<n> (default 100000)
//   npm run fuzz   a longer run with a random seed (printed, so that a failure can be replayed)
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { TSRT_V2, WAIT_MS, containerdForFile, shimSocketPath, taskStatus, tsrtDaemonDir, uniqueId, waitFor } from './harness.js';
import { isAlive } from './lib/procfs.js';
import { Rng, fuzzShim, seeds, TASK_V2, type Target } from '../fuzz/task-api.js';
import { TtrpcClient } from '../../src/ttrpc/client.js';
import { containerd } from '../../src/gen/proto.js';

const suite = containerdForFile({ before, after });

const seedArg = process.env.FUZZ_SEED ?? '1';
const SEED = seedArg === 'random' ? Math.floor(Math.random() * 2 ** 31) : Number(seedArg);
const INPUTS = Number(process.env.FUZZ_INPUTS ?? 100_000);

/** The container records of the daemon: monitor id, namespace, container id. */
function records(daemonDir: string): Array<{ monitor: string; namespace: string; id: string }> {
  const out: Array<{ monitor: string; namespace: string; id: string }> = [];
  const root = path.join(daemonDir, 'state');
  for (const monitor of fs.existsSync(root) ? fs.readdirSync(root) : []) {
    for (const namespace of fs.readdirSync(path.join(root, monitor))) {
      for (const f of fs.readdirSync(path.join(root, monitor, namespace))) {
        if (f.endsWith('.json')) out.push({ monitor, namespace, id: f.slice(0, -'.json'.length) });
      }
    }
  }
  return out;
}

/** Kills and deletes, through the shim that serves it, every recorded container not in keep; how many. */
async function removeStray(daemonDir: string, keep: ReadonlySet<string>): Promise<number> {
  const task = containerd.task.v2;
  const stray = records(daemonDir).filter((r) => !keep.has(r.id));
  for (const r of stray) {
    // the monitor id is the shim socket's name (docs/architecture.md, Paths)
    const client = await TtrpcClient.connect(path.join('/run/containerd/s', r.monitor), { timeoutMs: 5000 });
    const call = (method: string, payload: Uint8Array) =>
      client.call(TASK_V2, method, payload, { timeoutMs: 10_000, metadata: { 'containerd-namespace-ttrpc': r.namespace } })
        .catch((e: Error) => { throw new Error(`${method} of stray container ${r.namespace}/${r.id}: ${e.message}`); });
    try {
      await call('Resume', task.ResumeRequest.encode({ id: r.id }).finish()).catch(() => undefined);
      await call('Kill', task.KillRequest.encode({ id: r.id, signal: 9, all: true }).finish()).catch(() => undefined);
      await waitFor(async () => {
        const st = task.StateResponse.decode(await call('State', task.StateRequest.encode({ id: r.id }).finish()));
        return st.status === containerd.v1.types.Status.STOPPED || st.status === containerd.v1.types.Status.CREATED;
      }, WAIT_MS, { what: `stray container ${r.id} stopped` });
      await call('Delete', task.DeleteRequest.encode({ id: r.id }).finish());
    } finally {
      client.close();
    }
  }
  return stray.length;
}

const parentOf = (pid: number): number => Number(fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]);

test(`Task API fuzzing: ${INPUTS} inputs (seed ${SEED}) through the shims' sockets, no crash, no hang, still serving`, { timeout: 30 * 60_000 }, async (t) => {
  const cd = suite.containerd();
  const image = suite.image();
  const ids = [uniqueId('fuzz-runc'), uniqueId('fuzz-native')];
  await cd.ctrOk(['run', '-d', '--runtime', TSRT_V2, image, ids[0]!, 'sleep', '100000']);
  await cd.ctrOk(['run', '-d', '--runtime', TSRT_V2, '--annotation', 'io.tsrt.backend=native', image, ids[1]!, 'sleep', '100000']);
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrt-fuzz-'));
  try {
    const pids = await Promise.all(ids.map(async (id) => Number((await cd.ctrOk(['task', 'ps', id])).split('\n')[1]!.trim().split(/\s+/)[0])));
    const monitors = pids.map(parentOf);
    const daemonPidFile = path.join(tsrtDaemonDir(cd.ttrpcAddress), 'daemon.pid');
    const daemon = Number(fs.readFileSync(daemonPidFile, 'utf8'));
    const target: Target = {
      namespace: cd.ns, scratch,
      containers: ids.map((id, i) => ({ id, bundle: cd.bundleDir(id), pid: pids[i]! })),
    };
    const pool = seeds(target);
    const sockets = ids.map((id) => shimSocketPath(cd.address, cd.ns, id));
    const started = Date.now();
    const stats = await Promise.all(sockets.map((socket, i) => fuzzShim({
      socket, pool, namespace: cd.ns, ping: ids[i]!, inputs: Math.ceil(INPUTS / sockets.length), rng: new Rng(SEED + i),
      keep: new Set(ids), bundles: new Set(ids.map((id) => cd.bundleDir(id))),
    })));
    t.diagnostic(`seed ${SEED}, ${((Date.now() - started) / 1000).toFixed(1)} s: ${JSON.stringify(stats)}`);
    assert.equal(stats.reduce((n, s) => n + s.inputs, 0) >= INPUTS, true);
    assert.deepEqual(stats.map((s) => s.stalls), [0, 0], 'every liveness request was answered within 10 s');

    assert.equal(Number(fs.readFileSync(daemonPidFile, 'utf8')), daemon, 'the daemon was not replaced');
    const faults = fs.readFileSync(path.join(tsrtDaemonDir(cd.ttrpcAddress), 'daemon.log'), 'utf8').split('\n')
      .filter((l) => /uncaught exception|unhandled rejection/.test(l));
    assert.deepEqual(faults.slice(0, 5), [], 'no exception escaped a handler');
    assert.ok(isAlive(daemon), 'the daemon is alive');
    for (const m of monitors) assert.ok(isAlive(m), `monitor ${m} is alive`);
    // each container's State is answered on a fresh connection, whatever the inputs did to it
    for (const [i, socket] of sockets.entries()) {
      const client = await TtrpcClient.connect(socket, { timeoutMs: 5000 });
      try {
        const res = await client.call(TASK_V2, 'State', containerd.task.v2.StateRequest.encode({ id: ids[i]! }).finish(), {
          timeoutMs: 5000, metadata: { 'containerd-namespace-ttrpc': cd.ns },
        }).then(() => 'answered', (e: Error & { code?: number }) => (e.code === 5 ? 'answered: not found' : `failed: ${e.message} (code ${e.code})`));
        assert.match(res, /^answered/, `State of ${ids[i]}`);
      } finally {
        client.close();
      }
    }
    // containers the inputs made (a mutated id with a real bundle) are taken down through the shim that
    // made them, as containerd would; then the daemon records only the two under test
    const stray = await removeStray(tsrtDaemonDir(cd.ttrpcAddress), new Set(ids));
    t.diagnostic(`containers the inputs created, removed again: ${stray}`);
    assert.deepEqual(records(tsrtDaemonDir(cd.ttrpcAddress)).map((r) => r.id).sort(), [...ids].sort(), 'only the containers under test are recorded');
    // the daemon still runs and execs a new container
    const fresh = uniqueId('after-fuzz');
    await cd.ctrOk(['run', '-d', '--runtime', TSRT_V2, image, fresh, 'sleep', '600']);
    try {
      assert.equal((await cd.ctrOk(['task', 'exec', '--exec-id', 'e1', fresh, 'echo', 'still serving'])).trim(), 'still serving');
    } finally {
      await cd.ctr(['task', 'kill', '-s', 'SIGKILL', fresh]);
      await waitFor(async () => (await taskStatus(cd, fresh)) === 'STOPPED', WAIT_MS, { what: `${fresh} stopped` });
      await cd.ctr(['task', 'rm', fresh]);
      await cd.ctr(['containers', 'rm', fresh]);
    }
  } finally {
    // after a failure too: what the inputs created is not left to the harness, which knows nothing of it
    await removeStray(tsrtDaemonDir(cd.ttrpcAddress), new Set(ids)).catch(() => undefined);
    for (const id of ids) {
      await cd.ctr(['task', 'resume', id]);
      await cd.ctr(['task', 'kill', '-s', 'SIGKILL', id]);
      await waitFor(async () => ['STOPPED', undefined].includes(await taskStatus(cd, id)), WAIT_MS, { what: `${id} stopped` }).catch(() => undefined);
      await cd.ctr(['task', 'rm', '-f', id]);
      await cd.ctr(['containers', 'rm', id]);
    }
    fs.rmSync(scratch, { recursive: true, force: true });
  }
});
