// Kubernetes CRI streaming, differential: Exec and Attach return a URL on containerd's streaming server
// (127.0.0.1, a port of its choosing: the CRI plugin's default), and the client then speaks the remotecommand
// protocol to it, as kubelet and kubectl do. lib/cri-stream.ts speaks its WebSocket flavour. Each scenario
// runs with handler `runc` (io.containerd.runc.v2, the oracle), then `tsrt` and `tsrt-native` (io.containerd.tsrt.v2
// with its runc and its native backend, lib/cri-harness.ts); what the
// client observed (normalised: no ids, times or pty numbers) must be equal, and the runc half is also checked
// against what the scenario means, so that two equally wrong halves cannot pass.
//
// containerd 1.6 and 2.1 negotiate v4.channel.k8s.io, which has no half-close: a client ends stdin only by
// closing the connection, after which neither output nor the exit status reach it. The scenarios that end
// stdin therefore check its effect inside the container (the command saw EOF, through CloseIO); with a server
// that speaks v5 they check the exit status too.
//
// One pod per handler serves every scenario; each scenario removes its own containers and closes its sessions
// (also when it fails). The last test removes the pods and checks that nothing of them is left.
//
// TSRT_CRI_SELFTEST=1 runs the "tsrt" half on handler runc as well (every test must then pass, which checks the
// comparisons themselves).

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, afterEach, before, describe, test } from 'node:test';
import { CriError } from './lib/cri-client.js';
import { HANDLER_NAMES, criForFile, sameAsRunc, type Handler, type Pod } from './lib/cri-harness.js';
import { PROTOCOL_V4, PROTOCOL_V5, RemoteCommandStream, STDERR, STDOUT, type StreamResult } from './lib/cri-stream.js';
import { WAIT_MS, waitFor } from './harness.js';

const suite = criForFile({ before, after });
const SELFTEST = process.env.TSRT_CRI_SELFTEST === '1';
const handlerOf = (h: Handler): string => (SELFTEST ? 'runc' : h);
const pods = {} as Record<Handler, Pod>;
/** how long a session may take to end once its process is gone (runc-v2: well under a second) */
const END_MS = 15_000;

// every session a test opens; afterEach drops those still open
const open = new Set<RemoteCommandStream>();
afterEach(async () => {
  await Promise.all([...open].map((s) => s.terminate()));
  open.clear();
});

async function connect(url: string): Promise<RemoteCommandStream> {
  assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/(exec|attach)\//, 'the streaming URL');
  const s = await RemoteCommandStream.open(url, { timeoutMs: WAIT_MS });
  open.add(s);
  return s;
}

/** Run `fn` for runc then tsrt; the runc result is checked with `expect`, then tsrt's must equal it. */
async function differential<T>(fn: (pod: Pod, h: Handler) => Promise<T>, expect: (runc: T) => void): Promise<Record<Handler, T>> {
  const out = {} as Record<Handler, T>;
  for (const h of HANDLER_NAMES) out[h] = await fn(pods[h], h);
  expect(out.runc);
  sameAsRunc(out);
  return out;
}

/** Remove containers of a scenario, whatever state they are in (the pod's removal checks the rest). */
async function cleanup(pod: Pod, ids: string[]): Promise<void> {
  for (const id of ids) {
    await pod.cri.stopContainer(id, 0).catch(() => undefined);
    await pod.cri.removeContainer(id).catch(() => undefined);
  }
}

/** The end of a session as the test compares it. */
function ending(r: StreamResult): { status: string | null; reason: string; exitCode: number | null; byClient: boolean } {
  return { status: r.status?.status ?? null, reason: r.status?.reason ?? '', exitCode: r.status?.exitCode ?? null, byClient: r.closedByClient };
}

/** Wait for the session to end; `ended: false` (not a throw) when it is still open after `ms`. */
async function endWithin(s: RemoteCommandStream, ms = END_MS): Promise<{ ended: boolean; result: StreamResult | null }> {
  try {
    return { ended: true, result: await s.waitDone(ms) };
  } catch {
    return { ended: false, result: null };
  }
}

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex').slice(0, 16);
const seqText = (n: number) => Array.from({ length: n }, (_, i) => `${i + 1}\n`).join('');

/** ExecSync `cat file` until it prints something (the scenario's process wrote it); returns that. */
async function waitFile(pod: Pod, id: string, file: string): Promise<string> {
  return waitFor(async () => {
    const r = await pod.cri.execSync(id, ['cat', file], 10);
    return r.exitCode === 0 && r.stdout.length ? r.stdout.toString() : null;
  }, WAIT_MS, { what: `${file} in the container`, intervalMs: 100 });
}

/** In an interactive tty shell: wait until the window is `rows cols`, then print it (the resize reached the pty). */
const sizeCommand = (rows: number, cols: number) =>
  `until [ "$(stty size)" = "${rows} ${cols}" ]; do sleep 0.05; done; echo "size=$(stty size)"\n`;

describe('CRI streaming (Exec, Attach over the remotecommand WebSocket protocol): runc vs tsrt (runc and native backends)', { timeout: 600_000 }, () => {
  before(async () => {
    for (const h of HANDLER_NAMES) pods[h] = await suite.runPod(handlerOf(h), { name: `stream-${h}` });
  });

  // one long-running container per pod for the execs
  const sleepers = {} as Record<Handler, string>;
  before(async () => {
    for (const h of HANDLER_NAMES) {
      sleepers[h] = await pods[h].start('sleeper', { command: ['sleep', '100000'] });
      await pods[h].waitState(sleepers[h], 'CONTAINER_RUNNING');
    }
  });

  test('Exec without a tty: stdout and stderr apart, 230 kB of stdout intact, the exit code on the status channel', async () => {
    const cmd = ['sh', '-c', 'echo out-1; echo err-1 >&2; seq 1 40000; echo err-2 >&2; exit 3'];
    const want = `out-1\n${seqText(40000)}`;
    await differential(async (pod, h) => {
      const s = await connect(await pod.cri.exec(sleepers[h], cmd, { stdout: true, stderr: true }));
      const r = await s.waitDone(WAIT_MS);
      const ok = await connect(await pod.cri.exec(sleepers[h], ['true']));
      const r2 = await ok.waitDone(WAIT_MS);
      return {
        protocol: r.protocol,
        stdoutBytes: r.stdout.length,
        stdoutSha: sha(r.stdout),
        stdoutIntact: r.stdout.toString() === want,
        stderr: r.stderr.toString(),
        end: ending(r),
        message: r.status?.message ?? '',
        trueEnd: ending(r2),
        trueOutput: r2.stdout.length + r2.stderr.length,
      };
    }, (o) => {
      assert.ok([PROTOCOL_V4, PROTOCOL_V5].includes(o.protocol), o.protocol);
      assert.equal(o.stdoutIntact, true, `stdout: ${o.stdoutBytes} bytes`);
      assert.equal(o.stderr, 'err-1\nerr-2\n');
      assert.deepEqual(o.end, { status: 'Failure', reason: 'NonZeroExitCode', exitCode: 3, byClient: false });
      assert.deepEqual(o.trueEnd, { status: 'Success', reason: '', exitCode: 0, byClient: false });
      assert.equal(o.trueOutput, 0);
    });
  });

  test('Exec with stdin, no tty: data in and back out, the end of stdin reaches the command as EOF', async () => {
    const chunk = Buffer.alloc(64 * 1024, 'abcdefghijklmnopqrstuvwxyz0123456789\n');
    await differential(async (pod, h) => {
      const tag = `eof-${Date.now().toString(36)}`;
      const s = await connect(await pod.cri.exec(sleepers[h], ['sh', '-c', `cat; echo "cat=$?" > /tmp/${tag}`], { stdin: true, stdout: true, stderr: true }));
      s.write('ping-1\n');
      await s.waitOutput(STDOUT, /^ping-1\n$/);
      s.write(chunk);
      const echoed = await s.waitOutput(STDOUT, new RegExp(`^ping-1\\n[a-z0-9\\n]{${chunk.length}}$`));
      const goesOn = s.closeStdin();
      const r = await s.waitDone(WAIT_MS);
      // the command saw EOF, ended cat and wrote its file
      const after = await waitFile(pod, sleepers[h], `/tmp/${tag}`);
      return {
        protocol: s.protocol,
        halfClose: goesOn,
        echoedIntact: echoed === `ping-1\n${chunk.toString()}`,
        afterEof: after,
        end: goesOn ? ending(r) : { byClient: r.closedByClient },
        stderr: r.stderr.toString(),
      };
    }, (o) => {
      assert.equal(o.echoedIntact, true);
      assert.equal(o.afterEof, 'cat=0\n');
      assert.equal(o.halfClose, o.protocol === PROTOCOL_V5);
      if (o.halfClose) assert.deepEqual(o.end, { status: 'Success', reason: '', exitCode: 0, byClient: false });
      else assert.deepEqual(o.end, { byClient: true });
      assert.equal(o.stderr, '');
    });
  });

  test('Exec with a tty and stdin (kubectl exec -it): a shell, window resizes seen by stty, the exit code, the end while stdin is open', async () => {
    await differential(async (pod, h) => {
      const s = await connect(await pod.cri.exec(sleepers[h], ['sh'], { tty: true, stdin: true, stdout: true, stderr: false }));
      s.resize(91, 37); // what kubectl sends first
      // ash prints a banner and a prompt and asks for the cursor position (ESC[6n): typed-ahead lines are read
      s.write('echo "v=$((6*7))"\n');
      await s.waitOutput(STDOUT, /v=42/);
      s.write(sizeCommand(37, 91));
      await s.waitOutput(STDOUT, /size=37 91/);
      s.resize(120, 50);
      s.write(sizeCommand(50, 120));
      await s.waitOutput(STDOUT, /size=50 120/);
      s.write('echo "tty=$(tty) term=$TERM"\n');
      const t = await s.waitOutput(STDOUT, /tty=\/\S+ term=\w+\r/);
      // exit with stdin still open: the session must end with the process
      s.write('exit 3\n');
      const end = await endWithin(s);
      // and a command that never reads: `crictl exec -it C echo hi`
      const s2 = await connect(await pod.cri.exec(sleepers[h], ['sh', '-c', 'echo hi; exit 2'], { tty: true, stdin: true, stdout: true, stderr: false }));
      const end2 = await endWithin(s2);
      return {
        tty: /tty=(\/\S+) term=(\w+)\r/.exec(t)!.slice(1).map((x) => x.replace(/\d+$/, 'N')),
        ended: end.ended,
        end: end.result && ending(end.result),
        stderr: end.result?.stderr.length ?? -1,
        echoHi: { ended: end2.ended, end: end2.result && ending(end2.result), stdout: end2.result?.stdout.toString() ?? null },
      };
    }, (o) => {
      assert.deepEqual(o.tty, ['/dev/pts/N', 'xterm']);
      assert.equal(o.ended, true, `the session is still open ${END_MS} ms after its shell exited`);
      assert.deepEqual(o.end, { status: 'Failure', reason: 'NonZeroExitCode', exitCode: 3, byClient: false });
      assert.equal(o.stderr, 0, 'a tty has no stderr');
      assert.deepEqual(o.echoHi, { ended: true, end: { status: 'Failure', reason: 'NonZeroExitCode', exitCode: 2, byClient: false }, stdout: 'hi\r\n' });
    });
  });

  test('Attach without a tty: stdin to the init, its stdout and stderr back; detaching leaves it running with stdin open; the session ends at its exit', async () => {
    await differential(async (pod) => {
      const id = await pod.start('attach', {
        stdin: true,
        stdinOnce: false,
        command: ['sh', '-c', 'echo started; while read l; do echo "got:$l"; echo "err:$l" >&2; done; echo bye; exit 4'],
      });
      try {
        await pod.waitLog(id, /^started$/);
        const s = await connect(await pod.cri.attach(id, { stdin: true, stdout: true, stderr: true }));
        s.write('a-1\n');
        await s.waitOutput(STDOUT, /got:a-1\n/);
        await s.waitOutput(STDERR, /err:a-1\n/);
        s.closeStdin();
        await s.waitDone(WAIT_MS);
        // a second client finds the init still reading
        const s2 = await connect(await pod.cri.attach(id, { stdin: true, stdout: true, stderr: true }));
        s2.write('a-2\n');
        await s2.waitOutput(STDOUT, /got:a-2\n/);
        const firstOut = s.text(STDOUT);
        const secondOut = s2.text(STDOUT);
        await s2.terminate();
        // an output-only client sees the end: the init's stdin is closed by nobody, so stop it
        const s3 = await connect(await pod.cri.attach(id, { stdin: false, stdout: true, stderr: true }));
        await pod.cri.stopContainer(id, 0);
        const end = await endWithin(s3);
        const st = await pod.waitState(id, 'CONTAINER_EXITED');
        return {
          firstOut,
          firstErr: s.text(STDERR),
          secondOut,
          end: end.result && ending(end.result),
          ended: end.ended,
          exit: [st.exitCode, st.reason],
          log: [pod.logText(id, 'stdout'), pod.logText(id, 'stderr')],
        };
      } finally {
        await cleanup(pod, [id]);
      }
    }, (o) => {
      assert.equal(o.firstOut, 'got:a-1\n');
      assert.equal(o.firstErr, 'err:a-1\n');
      assert.equal(o.secondOut, 'got:a-2\n');
      assert.equal(o.ended, true, 'the attach session outlived the container');
      assert.deepEqual(o.end, { status: 'Success', reason: '', exitCode: 0, byClient: false });
      assert.deepEqual(o.exit, [137, 'Error']);
      assert.deepEqual(o.log, [['started', 'got:a-1', 'got:a-2'], ['err:a-1', 'err:a-2']]);
    });
  });

  test('Attach with a tty: an interactive init shell, resize, its exit ends the session and the container', async () => {
    await differential(async (pod) => {
      const id = await pod.start('attach-tty', { stdin: true, stdinOnce: false, tty: true, command: ['sh'] });
      try {
        await pod.waitState(id, 'CONTAINER_RUNNING');
        const s = await connect(await pod.cri.attach(id, { tty: true, stdin: true, stdout: true, stderr: false }));
        s.resize(91, 37);
        s.write('echo "v=$((5*5))"\n');
        await s.waitOutput(STDOUT, /v=25/);
        s.write(sizeCommand(37, 91));
        await s.waitOutput(STDOUT, /size=37 91/);
        s.write('exit 6\n');
        const end = await endWithin(s);
        const st = await pod.waitState(id, 'CONTAINER_EXITED');
        return { ended: end.ended, end: end.result && ending(end.result), exit: [st.exitCode, st.reason] };
      } finally {
        await cleanup(pod, [id]);
      }
    }, (o) => {
      assert.equal(o.ended, true, 'the attach session outlived the container');
      assert.deepEqual(o.end, { status: 'Success', reason: '', exitCode: 0, byClient: false });
      assert.deepEqual(o.exit, [6, 'Error']);
    });
  });

  for (const tty of [false, true]) {
    test(`Exec${tty ? ' with a tty and stdin' : ''} into a container whose init exits under it: the session ends, the exec is killed; then Exec is refused`, async () => {
      await differential(async (pod) => {
        const id = await pod.start(tty ? 'exits-tty' : 'exits', { command: ['sh', '-c', 'until [ -e /tmp/go ]; do sleep 0.05; done; exit 5'] });
        try {
          await pod.waitState(id, 'CONTAINER_RUNNING');
          const url = await pod.cri.exec(id, ['sh', '-c', 'echo running; touch /tmp/go; exec sleep 100000'],
            tty ? { tty: true, stdin: true, stdout: true, stderr: false } : { stdout: true, stderr: true });
          const s = await connect(url);
          await s.waitOutput(STDOUT, /running/);
          const end = await endWithin(s);
          const st = await pod.waitState(id, 'CONTAINER_EXITED');
          let refused = 'ok';
          try {
            await pod.cri.exec(id, ['true']);
          } catch (e) {
            refused = e instanceof CriError ? `code ${e.code}` : String(e);
          }
          return {
            ended: end.ended,
            end: end.result && ending(end.result),
            stdout: end.result?.stdout.toString() ?? null,
            exit: [st.exitCode, st.reason],
            refused,
          };
        } finally {
          await cleanup(pod, [id]);
        }
      }, (o) => {
        assert.equal(o.ended, true, 'the exec session outlived its container');
        assert.deepEqual(o.end, { status: 'Failure', reason: 'NonZeroExitCode', exitCode: 137, byClient: false });
        assert.equal(o.stdout, tty ? 'running\r\n' : 'running\n');
        assert.deepEqual(o.exit, [5, 'Error']);
        assert.notEqual(o.refused, 'ok');
      });
    });
  }

  test('after StopPodSandbox and RemovePodSandbox nothing of any pod is left', async () => {
    const left = {} as Record<Handler, string[]>;
    for (const h of HANDLER_NAMES) {
      await pods[h].remove();
      left[h] = await waitFor(() => (pods[h].leftovers().length ? null : ([] as string[])), WAIT_MS, { what: `pod ${h} gone` })
        .catch(() => pods[h].leftovers());
    }
    assert.deepEqual(left, Object.fromEntries(HANDLER_NAMES.map((h) => [h, []])));
  });
});
