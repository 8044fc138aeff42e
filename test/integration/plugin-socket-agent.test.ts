// A backend whose process's stdio is not handed to it as containerd's FIFOs (a stand-in for a VM backend,
// test/integration/fixtures/socket-agent): its "guest" serves the command's stdio on unix sockets, and the
// container's monitor copies between them and containerd's FIFOs in C (ProcessHost.copy). Through the real
// containerd and ctr: output, stderr, exit codes, stdin and its end, a file:// log, bulk output, and the
// stdio flowing while the daemon is frozen, and after it was killed and replaced.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  CMD_MS, REPO_ROOT, TSRT_V2, WAIT_MS, containerdForFile, mountsUnder, processesWithCwdUnder, shimSocketPath,
  taskStatus, tsrtDaemonDir, uniqueId, waitFor, type Containerd,
} from './harness.js';

const suite = containerdForFile({ before, after });
const need = (): Containerd => suite.containerd();

let cfg = '';
/** ctr's arguments that pick the socket-agent backend from this file's plugin directory. */
function viaAgent(): string[] {
  if (!cfg) {
    const root = need().root;
    const dir = join(root, 'plugins');
    mkdirSync(dir, { recursive: true });
    symlinkSync(join(REPO_ROOT, 'test', 'integration', 'fixtures', 'socket-agent'), join(dir, 'socket-agent'));
    cfg = join(root, 'agent.toml');
    writeFileSync(cfg, `PluginDir = ${JSON.stringify(dir)}\n`);
  }
  return ['--runtime', TSRT_V2, '--runtime-config-path', cfg, '--annotation', 'io.tsrt.backend=socket-agent'];
}

async function assertGone(id: string): Promise<void> {
  const cd = need();
  const bundle = cd.bundleDir(id);
  await waitFor(() => !existsSync(bundle), WAIT_MS, { what: `bundle ${bundle} removed` });
  // the monitor removes its socket as it exits, which may be just after containerd removed the bundle
  await waitFor(() => !existsSync(shimSocketPath(cd.address, cd.ns, id)), WAIT_MS, { what: 'shim socket removed' });
  assert.deepEqual(processesWithCwdUnder(bundle), [], 'no process left in the bundle');
  assert.deepEqual(mountsUnder(bundle), [], 'no mount left');
  // the agent's socket directory (one container at a time in this file)
  assert.deepEqual(readdirSync(tmpdir()).filter((f) => f.startsWith('tsrt-agent-')), [], 'no agent directory left');
}

const daemonFile = (): string => join(tsrtDaemonDir(need().ttrpcAddress), 'daemon.pid');

describe('a backend whose stdio the monitor copies from sockets', { timeout: 300_000 }, () => {
  test('ctr run: stdout, stderr and the exit code come back; nothing is left', async () => {
    const id = uniqueId('agent-run');
    const r = await need().ctr(['run', '--rm', ...viaAgent(), suite.image(), id, 'sh', '-c', 'echo out; echo err >&2; exit 3'], { timeoutMs: CMD_MS });
    assert.equal(r.code, 3, r.stderr);
    assert.equal(r.stdout, 'out\n');
    assert.match(r.stderr, /^err$/m);
    await assertGone(id);
  });

  test('4 MB of output arrive whole and in order', async () => {
    const id = uniqueId('agent-bulk');
    // 4 MB of numbered lines: a lost or reordered chunk shows as a wrong line
    const r = await need().ctr(['run', '--rm', ...viaAgent(), suite.image(), id, 'sh', '-c', 'seq 1 560000'], { timeoutMs: CMD_MS });
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.split('\n');
    assert.equal(lines.pop(), '');
    assert.equal(lines.length, 560000);
    assert.ok(lines.every((l, i) => l === String(i + 1)), 'every line, in order');
    await assertGone(id);
  });

  test('a file:// log gets stdout and stderr', async () => {
    const id = uniqueId('agent-log');
    const log = join(need().root, `${id}.log`);
    const r = await need().ctr(['run', '--rm', '--log-uri', `file://${log}`, ...viaAgent(), suite.image(), id, 'sh', '-c', 'echo to-out; echo to-err >&2'],
      { timeoutMs: CMD_MS });
    assert.equal(r.code, 0, r.stderr);
    const text = readFileSync(log, 'utf8');
    assert.deepEqual(text.split('\n').filter(Boolean).sort(), ['to-err', 'to-out']);
    await assertGone(id);
  });

  test('stdin flows while the daemon is frozen, and after it is killed and replaced; its end ends the process', async () => {
    const cd = need();
    const id = uniqueId('agent-stdin');
    const ex = cd.ctrSpawn(['run', '--rm', ...viaAgent(), suite.image(), id, 'sh', '-c', 'echo ready; while read l; do echo "got $l"; done; echo eof; exit 7']);
    let out = '';
    ex.stdout!.on('data', (b: Buffer) => { out += b.toString(); });
    try {
      await waitFor(() => out.includes('ready\n'), WAIT_MS, { what: 'the command runs' });
      ex.stdin!.write('a\n');
      await waitFor(() => out.includes('got a\n'), WAIT_MS, { what: 'a line through stdin and back' });

      // frozen daemon: the bytes never pass through it
      const daemon = Number(readFileSync(daemonFile(), 'utf8'));
      process.kill(daemon, 'SIGSTOP');
      try {
        ex.stdin!.write('b\n');
        await waitFor(() => out.includes('got b\n'), WAIT_MS, { what: 'a line while the daemon is stopped' });
      } finally {
        process.kill(daemon, 'SIGCONT');
      }

      // killed daemon: the copies are the monitor's, and a new daemon adopts the container
      process.kill(daemon, 'SIGKILL');
      ex.stdin!.write('c\n');
      await waitFor(() => out.includes('got c\n'), WAIT_MS, { what: 'a line after the daemon was killed' });
      await waitFor(async () => (await taskStatus(cd, id)) === 'RUNNING' && Number(readFileSync(daemonFile(), 'utf8')) !== daemon, WAIT_MS,
        { what: 'served by a new daemon' });
      ex.stdin!.write('d\n');
      await waitFor(() => out.includes('got d\n'), WAIT_MS, { what: 'a line with the new daemon' });
      // ctr sends CloseIO at its stdin's EOF: the new daemon's backend ends the copy, the command reads EOF
      ex.stdin!.end();
      const r = await ex.result;
      assert.deepEqual([r.code, out], [7, 'ready\ngot a\ngot b\ngot c\ngot d\neof\n'], r.stderr);
    } finally {
      if (ex.exitCode === null) ex.kill('SIGKILL');
      await cd.ctr(['task', 'delete', '--force', id]);
      await cd.ctr(['containers', 'rm', id]);
    }
    await assertGone(id);
  });

  test('kill: the signal reaches the command through the agent, 128 + signal comes back', async () => {
    const cd = need();
    const id = uniqueId('agent-kill');
    const ex = cd.ctrSpawn(['run', '--rm', ...viaAgent(), suite.image(), id, 'sh', '-c', 'echo ready; exec sleep 600']);
    let out = '';
    ex.stdout!.on('data', (b: Buffer) => { out += b.toString(); });
    await waitFor(() => out.includes('ready\n'), WAIT_MS, { what: 'the command runs' });
    await cd.ctrOk(['task', 'kill', '-s', 'SIGTERM', id]);
    const r = await ex.result;
    assert.equal(r.code, 143, r.stderr);
    await assertGone(id);
  });
});
