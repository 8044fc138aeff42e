// Proves the harness against the reference shim (io.containerd.runc.v2): if these fail, the
// problem is the harness or the host, not tsrt.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import {
  CMD_MS,
  RUNC_V2,
  WAIT_MS,
  buildBusyboxImage,
  listZombies,
  mountsUnder,
  processesWithCwdUnder,
  shimSocketPath,
  startContainerd,
  uniqueId,
  waitFor,
  type Containerd,
} from './harness.js';
import { readMountinfo } from './lib/procfs.js';

const RT = ['--runtime', RUNC_V2];

describe('oracle: harness + io.containerd.runc.v2', { timeout: 180_000 }, () => {
  let c: Containerd | undefined;
  let image = '';
  let root = '';
  const ids: string[] = [];

  before(async () => {
    c = await startContainerd();
    root = c.root;
    image = await buildBusyboxImage(c);
  });

  after(async () => {
    // stop() also runs (and cleans up) when a test above failed
    await c?.stop();
  });

  const need = (): Containerd => {
    assert.ok(c, 'containerd did not start');
    return c;
  };

  test('image is listed under its ref', async () => {
    const out = await need().ctrOk(['images', 'ls', '-q']);
    assert.ok(out.split('\n').includes(image), out);
  });

  test('ctr run --rm echo hello', async () => {
    const id = uniqueId('hello');
    const r = await need().ctr(['run', '--rm', ...RT, image, id, 'echo', 'hello'], { timeoutMs: CMD_MS });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'hello\n');
    // --rm removed the container and the shim cleaned up after itself
    const ls = await need().ctrOk(['containers', 'ls', '-q']);
    assert.ok(!ls.split('\n').includes(id));
    assert.ok(!existsSync(need().bundleDir(id)), 'bundle dir removed');
    assert.ok(!existsSync(shimSocketPath(need().address, need().ns, id)), 'shim socket removed');
  });

  test('exit status of the container is ctr’s exit status', async () => {
    const id = uniqueId('exit3');
    const r = await need().ctr(['run', '--rm', ...RT, image, id, 'sh', '-c', 'exit 3'], { timeoutMs: CMD_MS });
    assert.equal(r.code, 3, r.stderr);
  });

  test('stdin reaches the container and its EOF ends it', async () => {
    // ctr only forwards stdin EOF (CloseIO) once the task exists; EOF that arrives earlier is
    // lost and the task never sees it. So write stdin only after the task says it is up.
    const id = uniqueId('cat');
    const child = need().ctrSpawn(['run', '--rm', ...RT, image, id, 'sh', '-c', 'echo ready; cat']);
    let seen = '';
    child.stdout?.on('data', (b: Buffer) => (seen += b.toString()));
    await waitFor(() => seen.includes('ready'), WAIT_MS, { what: 'ready' });
    child.stdin?.end('ping\n');
    const r = await child.result;
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'ready\nping\n');
  });

  test('detached container is RUNNING, on an overlayfs rootfs, and survives a containerd restart', async () => {
    const cd = need();
    const id = uniqueId('detached');
    ids.push(id);
    await cd.ctrOk(['run', '-d', ...RT, image, id, 'sleep', '1000'], { timeoutMs: CMD_MS });
    const running = async () => {
      const ls = await cd.ctrOk(['task', 'ls']);
      const row = ls.split('\n').find((l) => l.split(/\s+/)[0] === id);
      return row && /\bRUNNING\b/.test(row) ? row : null;
    };
    const row = await waitFor(running, WAIT_MS, { what: 'task RUNNING' });
    const pid = Number(row.split(/\s+/)[1]);
    assert.ok(pid > 1);

    const rootfs = `${cd.bundleDir(id)}/rootfs`;
    const m = readMountinfo().find((x) => x.mountPoint === rootfs);
    assert.equal(m?.fsType, 'overlay', `rootfs mount: ${JSON.stringify(m)}`);

    const shims = processesWithCwdUnder(root);
    assert.ok(
      shims.some((p) => p.comm.startsWith('containerd-shim') && p.cwd === cd.bundleDir(id)),
      JSON.stringify(shims),
    );

    await cd.restart();
    await waitFor(running, WAIT_MS, { what: 'task RUNNING after restart' });
    const exec = await cd.ctr(['task', 'exec', '--exec-id', 'e1', id, 'echo', 'inside'], { timeoutMs: CMD_MS });
    assert.equal(exec.code, 0, exec.stderr);
    assert.equal(exec.stdout, 'inside\n');
    // left running on purpose: stop() must clean it up
  });

  test('a foreground ctr forwards a signal and reports the exit', async () => {
    const cd = need();
    const id = uniqueId('fg');
    const script = 'trap "exit 7" TERM; trap "echo winch" WINCH; echo up; while true; do sleep 0.1; done';
    const child = cd.ctrSpawn(['run', '--rm', ...RT, image, id, 'sh', '-c', script]);
    let seen = '';
    child.stdout?.on('data', (b: Buffer) => (seen += b.toString()));
    await waitFor(() => seen.includes('up'), 30_000, { what: 'fg output' });
    // ctr starts forwarding signals only after the task has started, so the container can print before
    // ctr listens; a SIGTERM then kills ctr itself (seen on a loaded machine). SIGWINCH is harmless until
    // then (Go ignores it), and forwarded after: once the container has seen one, ctr is listening.
    await waitFor(
      () => {
        child.kill('SIGWINCH');
        return seen.includes('winch');
      },
      30_000,
      { intervalMs: 200, what: 'ctr forwards signals' },
    );
    child.kill('SIGTERM'); // ctr proxies it to the task
    const r = await child.result;
    assert.equal(r.code, 7, `${r.stdout} ${r.stderr}`);
  });

  test('stop() leaves nothing behind', async () => {
    const cd = need();
    const zombiesBefore = new Set(listZombies().map((z) => z.pid));
    await cd.stop();
    assert.deepEqual(processesWithCwdUnder(root), []);
    assert.deepEqual(mountsUnder(root), []);
    assert.ok(!existsSync(root), `${root} removed`);
    for (const id of ids) {
      assert.ok(!existsSync(`/run/containerd/runc/${cd.ns}/${id}`), `runc state of ${id} removed`);
      assert.ok(!existsSync(shimSocketPath(cd.address, cd.ns, id)), `socket of ${id} removed`);
    }
    assert.equal(cd.pid, undefined);
    // nothing we started is left as an unreaped child of ours
    const ours = listZombies().filter((z) => z.ppid === process.pid && !zombiesBefore.has(z.pid));
    assert.deepEqual(ours, []);
  });
});
