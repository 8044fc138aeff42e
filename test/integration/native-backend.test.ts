// The native backend (no runc: plan.ts + cgroups/write.ts + tsrt-launch) through the real containerd and
// ctr, in three columns: runc-v2 (the reference), tsrt with runc, tsrt with native. Each scenario runs the
// same ctr commands through all three and compares what a user sees; then nothing may be left of a native
// container: bundle, mounts, processes, cgroups.
import assert from 'node:assert/strict';
import { chmodSync, existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  AWAIT_TTY_SIZE, CMD_MS, DEFAULT_SHIM_DIR, RUNC_V2, TSRT_V2, WAIT_MS, containerdForFile, ctrInTerminal, mountsUnder, processesWithCwdUnder,
  taskStatus, tsrtDaemonDir, uniqueId, waitFor, type Containerd,
} from './harness.js';

const suite = containerdForFile({ before, after });
const need = (): Containerd => suite.containerd();

interface Column { name: string; rt: string[] }
const COLUMNS: Column[] = [
  { name: 'runc-v2', rt: ['--runtime', RUNC_V2] },
  { name: 'tsrt+runc', rt: ['--runtime', TSRT_V2] },
  { name: 'tsrt+native', rt: ['--runtime', TSRT_V2, '--annotation', 'io.tsrt.backend=native'] },
];

/** Nothing of a container is left on the host. */
async function assertGone(id: string): Promise<void> {
  const cd = need();
  const bundle = cd.bundleDir(id);
  await waitFor(() => !existsSync(bundle), WAIT_MS, { what: `bundle ${bundle} removed` });
  assert.deepEqual(processesWithCwdUnder(bundle), [], 'no process left in the bundle');
  assert.deepEqual(mountsUnder(bundle), [], 'no mount left');
  for (const ctl of ['memory', 'pids', 'cpu', 'freezer', 'devices', 'systemd']) {
    assert.ok(!existsSync(join('/sys/fs/cgroup', ctl, cd.ns, id)), `${ctl} cgroup of ${id} removed`);
  }
  assert.ok(!existsSync(join('/sys/fs/cgroup/unified', cd.ns, id)), `unified cgroup of ${id} removed`);
}

/** Runs `scenario` once per column; returns what each saw, by column name. */
async function threeWays<T>(prefix: string, scenario: (col: Column, id: string) => Promise<T>): Promise<Record<string, T>> {
  const out: Record<string, T> = {};
  for (const col of COLUMNS) {
    const id = uniqueId(`${prefix}-${col.name.replace(/\W/g, '')}`);
    out[col.name] = await scenario(col, id);
    await assertGone(id);
  }
  return out;
}

const same = <T>(seen: Record<string, T>): void => {
  assert.deepEqual(seen['tsrt+native'], seen['runc-v2'], `native differs from runc-v2: ${JSON.stringify(seen, null, 1)}`);
  assert.deepEqual(seen['tsrt+runc'], seen['runc-v2'], `tsrt+runc differs from runc-v2: ${JSON.stringify(seen, null, 1)}`);
};

describe('the native backend beside runc', { timeout: 600_000 }, () => {
  test('ctr run --rm: stdout, stderr and the exit code', async () => {
    same(await threeWays('nat-run', async (col, id) => {
      const r = await need().ctr(['run', '--rm', ...col.rt, suite.image(), id, 'sh', '-c', 'echo out; echo err >&2; exit 3'], { timeoutMs: CMD_MS });
      return { code: r.code, stdout: r.stdout, stderr: r.stderr };
    }));
  });

  test('the container\'s view: pid 1, user, capabilities, rlimits, umask, cwd, env, /dev, read-only and masked paths', async () => {
    const script = [
      'echo pid=$$', 'id', 'grep -E "^Cap(Inh|Prm|Eff|Bnd|Amb)" /proc/self/status', 'echo nofile=$(ulimit -n)', 'umask', 'pwd',
      'env | grep -v ^HOSTNAME= | sort', 'ls /dev | sort | tr "\\n" " "; echo', 'readlink /dev/fd /dev/stdin /dev/ptmx',
      'echo 1 > /proc/sys/kernel/domainname 2>/dev/null && echo sys-writable || echo sys-readonly',
      'head -c 1 /proc/kcore 2>/dev/null | wc -c', 'cat /proc/1/cmdline | tr "\\0" " "; echo',
      'touch /etc/probe && echo root-writable', 'grep -c . /proc/self/mountinfo >/dev/null && echo mountinfo-ok',
      'mount -t tmpfs x /mnt 2>/dev/null && echo mounted || echo mount-denied',
      // no host pids: only this shell and what it runs
      'echo host-pids=$(ls -d /proc/[0-9]* | awk -F/ \'$3 > 100\' | wc -l)', 'grep -E "^(NoNewPrivs|Seccomp):" /proc/self/status',
      // a device outside the allowed list: made (CAP_MKNOD), but the devices cgroup refuses to open it
      'mknod /tmp/sda b 8 0 && { head -c 1 /tmp/sda >/dev/null 2>&1 && echo dev-opened || echo dev-denied; }',
      // the mount table as the container sees it: mount points with their options, and the cgroup tree
      'awk \'{print $5, $6}\' /proc/self/mountinfo', 'ls /sys/fs/cgroup | tr "\\n" " "; echo',
      // a new network namespace has its loopback up, with its address
      'echo lo-flags=$(cat /sys/class/net/lo/flags) lo-addr=$(ip -o -4 addr show dev lo | awk \'{print $4}\')',
      // /dev/fuse: the host lets anyone open it, so here only the devices cgroup can refuse
      'mknod /tmp/fuse c 10 229 && { (exec 3</tmp/fuse) 2>/dev/null && echo fuse-opened || echo fuse-denied; }',
      'echo x > /proc/sysrq-trigger 2>/dev/null && echo sysrq-writable || echo sysrq-readonly',
    ].join('; ');
    same(await threeWays('nat-view', async (col, id) => {
      const r = await need().ctr(['run', '--rm', ...col.rt, suite.image(), id, 'sh', '-c', script], { timeoutMs: CMD_MS });
      return { code: r.code, stdout: r.stdout, stderr: r.stderr };
    }));
  });

  test('a user namespace (ctr --uidmap/--gidmap): root inside, an unprivileged uid on the host', async (t) => {
    const maxNs = Number(readFileSync('/proc/sys/user/max_user_namespaces', 'utf8'));
    if (!(maxNs > 0)) return t.skip('user namespaces are off');
    // the container's root (host uid 100000) must be able to reach the bundle's rootfs under the temp root
    chmodSync(need().root, 0o711);
    same(await threeWays('nat-userns', async (col, id) => {
      const cd = need();
      await cd.ctrOk(['run', '-d', '--uidmap', '0:100000:65536', '--gidmap', '0:100000:65536', ...col.rt, suite.image(), id, 'sleep', '600']);
      const pid = Number((await cd.ctrOk(['task', 'ls'])).split('\n').find((l) => l.startsWith(`${id} `))?.trim().split(/\s+/)[1]);
      const hostUid = /^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
      const e = await cd.ctr(['task', 'exec', '--exec-id', 'look', id, 'sh', '-c', 'id; cat /proc/self/uid_map /proc/self/gid_map; touch /proc/sys/x 2>/dev/null || echo no-host-root'],
        { timeoutMs: CMD_MS });
      await cd.ctrOk(['task', 'kill', '-s', 'SIGKILL', id]);
      await waitFor(async () => (await taskStatus(cd, id)) === 'STOPPED', WAIT_MS, { what: `${id} stopped` });
      await cd.ctrOk(['task', 'delete', id]);
      await cd.ctrOk(['containers', 'rm', id]);
      return { hostUid, code: e.code, out: e.stdout.replace(/[ \t]+/g, ' ') };
    }));
  });

  test('run -d, exec, ps, kill of an exec and of the init, pause and resume, metrics, delete', async () => {
    same(await threeWays('nat-life', async (col, id) => {
      const cd = need();
      const seen: Record<string, unknown> = {};
      await cd.ctrOk(['run', '-d', ...col.rt, suite.image(), id, 'sh', '-c', 'trap "exit 42" TERM; while true; do sleep 0.1; done']);
      seen.running = await taskStatus(cd, id);
      const e = await cd.ctr(['task', 'exec', '--exec-id', 'one', id, 'sh', '-c', 'echo in-exec pid1=$(cat /proc/1/cmdline | tr "\\0" " "); exit 5'],
        { timeoutMs: CMD_MS });
      seen.exec = [e.code, e.stdout];
      const ex = cd.ctrSpawn(['task', 'exec', '--exec-id', 'trapper', id, 'sh', '-c', 'trap "echo got TERM; exit 9" TERM; echo ready; while true; do sleep 0.1; done']);
      let exOut = '';
      ex.stdout!.on('data', (b: Buffer) => { exOut += b.toString(); });
      await waitFor(() => exOut.includes('ready'), WAIT_MS, { what: 'exec trap installed' });
      const ps = await cd.ctrOk(['task', 'ps', id]);
      seen.psRows = ps.trim().split('\n').length >= 3;
      await cd.ctrOk(['task', 'kill', '--exec-id', 'trapper', '-s', 'SIGTERM', id]);
      const exR = await ex.result;
      seen.trapper = [exR.code, exOut];
      await cd.ctrOk(['task', 'pause', id]);
      seen.paused = await taskStatus(cd, id);
      await cd.ctrOk(['task', 'resume', id]);
      seen.resumed = await taskStatus(cd, id);
      const m = await cd.ctr(['task', 'metrics', id]);
      seen.metrics = m.code === 0 && /memory\.usage_in_bytes\s+[1-9]\d*/.test(m.stdout);
      await cd.ctrOk(['task', 'kill', '-s', 'SIGTERM', id]);
      await waitFor(async () => (await taskStatus(cd, id)) === 'STOPPED', WAIT_MS, { what: `${id} stopped` });
      const ls = await cd.ctrOk(['task', 'ls']);
      seen.stopped = ls.split('\n').some((l) => l.startsWith(id) && /STOPPED/.test(l));
      await cd.ctrOk(['task', 'delete', id]);
      await cd.ctrOk(['containers', 'rm', id]);
      return seen;
    }));
  });

  test('an exec of a program that is not there fails as runc words it, and the container goes on', async () => {
    same(await threeWays('nat-exec-missing', async (col, id) => {
      const cd = need();
      await cd.ctrOk(['run', '-d', ...col.rt, suite.image(), id, 'sleep', '1000']);
      const r = await cd.ctr(['task', 'exec', '--exec-id', 'missing', id, '/nonexistent/prog'], { timeoutMs: CMD_MS });
      const ok = await cd.ctr(['task', 'exec', '--exec-id', 'after', id, 'sh', '-c', 'echo still; exit 4'], { timeoutMs: CMD_MS });
      await cd.ctrOk(['task', 'kill', '-s', 'SIGKILL', id]);
      await waitFor(async () => (await taskStatus(cd, id)) === 'STOPPED', WAIT_MS, { what: `${id} stopped` });
      await cd.ctrOk(['task', 'delete', id]);
      await cd.ctrOk(['containers', 'rm', id]);
      return {
        failed: r.code !== 0,
        words: r.stderr.includes('exec failed: unable to start container process: exec: "/nonexistent/prog": stat /nonexistent/prog: no such file or directory'),
        after: [ok.code, ok.stdout],
      };
    }));
  });

  test('execs go through the container\'s exec server: no process of the container, started again when it dies, gone with it', async () => {
    const cd = need();
    const id = uniqueId('nat-serve');
    const serverPids = (): number[] => readdirSync('/proc').filter((p) => /^\d+$/.test(p)).map(Number).filter((pid) => {
      try {
        const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
        return argv[1] === 'serve' && argv[2] === join(cd.bundleDir(id), 'native-serve.plan');
      } catch { return false; }
    });
    await cd.ctrOk(['run', '-d', ...COLUMNS[2]!.rt, suite.image(), id, 'sleep', '1000']);
    try {
      assert.deepEqual(serverPids(), [], 'no server before the first exec');
      const e1 = await cd.ctr(['task', 'exec', '--exec-id', 'e1', id, 'sh', '-c', 'echo one; exit 3'], { timeoutMs: CMD_MS });
      assert.deepEqual([e1.code, e1.stdout], [3, 'one\n']);
      const [server] = serverPids();
      assert.ok(server, 'the first exec started the server');
      // not in the container: neither in its cgroups nor in what ctr task ps lists
      const procs = readFileSync(join('/sys/fs/cgroup/pids', cd.ns, id, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
      assert.ok(!procs.includes(server), `the server ${server} is not in the container's cgroup (${procs.join(' ')})`);
      assert.ok(!(await cd.ctrOk(['task', 'ps', id])).split('\n').some((l) => l.trim().split(/\s+/)[0] === String(server)));
      // one server for every exec
      const e2 = await cd.ctr(['task', 'exec', '--exec-id', 'e2', id, 'cat', '/proc/self/status'], { timeoutMs: CMD_MS });
      assert.equal(e2.code, 0);
      assert.match(e2.stdout, /^Name:\s+cat$/m);
      assert.deepEqual(serverPids(), [server]);
      // a server that died: the exec takes the launcher, the next one starts a new server
      process.kill(server, 'SIGKILL');
      await waitFor(() => !serverPids().includes(server), WAIT_MS, { what: 'the killed server reaped' });
      const e3 = await cd.ctr(['task', 'exec', '--exec-id', 'e3', id, 'echo', 'three'], { timeoutMs: CMD_MS });
      assert.deepEqual([e3.code, e3.stdout], [0, 'three\n']);
      const e4 = await cd.ctr(['task', 'exec', '--exec-id', 'e4', id, 'echo', 'four'], { timeoutMs: CMD_MS });
      assert.deepEqual([e4.code, e4.stdout], [0, 'four\n']);
      const again = serverPids();
      assert.equal(again.length, 1, 'a new server');
      assert.notEqual(again[0], server);
      // the init's exit ends the server
      await cd.ctrOk(['task', 'kill', '-s', 'SIGKILL', id]);
      await waitFor(async () => (await taskStatus(cd, id)) === 'STOPPED', WAIT_MS, { what: `${id} stopped` });
      await waitFor(() => serverPids().length === 0, WAIT_MS, { what: 'the server gone with the init' });
    } finally {
      await cd.ctr(['task', 'delete', '-f', id]);
      await cd.ctr(['containers', 'rm', id]);
    }
    await assertGone(id);
  });

  test('kill --all of a container whose shell has children, and a forced delete of a running one', async () => {
    same(await threeWays('nat-kill', async (col, id) => {
      const cd = need();
      await cd.ctrOk(['run', '-d', ...col.rt, suite.image(), id, 'sh', '-c', 'sleep 600 & sleep 600 & wait']);
      await waitFor(async () => (await cd.ctrOk(['task', 'ps', id])).trim().split('\n').length >= 4, WAIT_MS, { what: 'both children run' });
      await cd.ctrOk(['task', 'kill', '--all', '-s', 'SIGKILL', id]);
      await waitFor(async () => (await taskStatus(cd, id)) === 'STOPPED', WAIT_MS, { what: `${id} stopped` });
      await cd.ctrOk(['task', 'delete', id]);
      const id2 = `${id}-f`;
      await cd.ctrOk(['run', '-d', ...col.rt, suite.image(), id2, 'sleep', '600']);
      const forced = await cd.ctr(['task', 'delete', '--force', id2], { timeoutMs: CMD_MS });
      await cd.ctrOk(['containers', 'rm', id, id2]);
      await assertGone(id2);
      return { forced: forced.code };
    }));
  });

  test('ctr run options: --read-only, --cap-add/--cap-drop, --env, --cwd; an exec with --user and --cwd', async () => {
    const view = 'id; grep -E "^Cap(Prm|Eff|Bnd)" /proc/self/status; pwd; echo FOO=$FOO; touch /probe 2>/dev/null && echo root-writable || echo root-readonly';
    same(await threeWays('nat-opts', async (col, id) => {
      const cd = need();
      try {
        const run = await cd.ctr(['run', '--rm', '--read-only', '--cap-add', 'CAP_SYS_ADMIN', '--cap-drop', 'CAP_CHOWN', '--env', 'FOO=bar baz', '--cwd', '/tmp', ...col.rt,
          suite.image(), `${id}-r`, 'sh', '-c', view], { timeoutMs: CMD_MS });
        await cd.ctrOk(['run', '-d', ...col.rt, suite.image(), id, 'sleep', '1000']);
        await waitFor(async () => (await taskStatus(cd, id)) === 'RUNNING', WAIT_MS, { what: `${id} RUNNING` });
        const exec = await cd.ctr(['task', 'exec', '--exec-id', 'u', '--user', '1000', '--cwd', '/tmp', id, 'sh', '-c', view], { timeoutMs: CMD_MS });
        return { run: [run.code, run.stdout, run.stderr], exec: [exec.code, exec.stdout, exec.stderr] };
      } finally {
        await cd.ctr(['task', 'kill', '-s', 'SIGKILL', id]);
        await waitFor(async () => (await taskStatus(cd, id)) !== 'RUNNING', WAIT_MS, { what: `${id} stopped` }).catch(() => undefined);
        await cd.ctr(['task', 'delete', '--force', id]);
        await cd.ctr(['containers', 'rm', id]);
      }
    }));
  });

  test('ctr run --privileged: every capability, the host\'s devices, no masked paths, no seccomp', async () => {
    const script = [
      'grep -E "^(Cap(Prm|Eff|Bnd)|Seccomp|NoNewPrivs):" /proc/self/status', 'ls /dev | wc -l | tr -d " "',
      'head -c 1 /proc/kcore 2>/dev/null | wc -c', 'echo 1 > /proc/sys/kernel/domainname 2>/dev/null && echo sys-writable || echo sys-readonly',
      '(exec 3</dev/fuse) 2>/dev/null && echo fuse-opened || echo fuse-denied', 'exit 3',
    ].join('; ');
    same(await threeWays('nat-priv', async (col, id) => {
      const r = await need().ctr(['run', '--rm', '--privileged', ...col.rt, suite.image(), id, 'sh', '-c', script], { timeoutMs: CMD_MS });
      return { code: r.code, stdout: r.stdout, stderr: r.stderr };
    }));
  });

  test('a terminal: tty, its size, /dev/console, and the exit code', async () => {
    same(await threeWays('nat-tty', async (col, id) => {
      const r = await ctrInTerminal(need(), ['run', '-t', '--rm', ...col.rt, suite.image(), id, 'sh', '-c', `${AWAIT_TTY_SIZE}; tty; stty size; stat -c "%F %t:%T" /dev/console; readlink /proc/1/fd/0; exit 4`],
        { cols: 91, rows: 27 });
      return { code: r.code, out: r.stdout.replace(/\r/g, '') };
    }));
  });

  test('a new daemon adopts a native container from its recorded state: exec, signals, pause and delete still work', async () => {
    const cd = need();
    const id = uniqueId('nat-crash');
    await cd.ctrOk(['run', '-d', ...COLUMNS[2]!.rt, suite.image(), id, 'sh', '-c', 'trap "exit 42" TERM; while true; do sleep 0.1; done']);
    try {
      const daemonFile = join(tsrtDaemonDir(cd.ttrpcAddress), 'daemon.pid');
      const old = Number(readFileSync(daemonFile, 'utf8'));
      process.kill(old, 'SIGKILL');
      await waitFor(async () => (await taskStatus(cd, id)) === 'RUNNING' && Number(readFileSync(daemonFile, 'utf8')) !== old, WAIT_MS,
        { what: 'served by a new daemon' });
      // the exec joins the init's namespaces and cgroups, which the new daemon knows from the record
      const e = await cd.ctr(['task', 'exec', '--exec-id', 'after', id, 'sh', '-c', 'cat /proc/1/cmdline | tr "\\0" " "; echo; exit 6'], { timeoutMs: CMD_MS });
      assert.deepEqual([e.code, e.stdout], [6, 'sh -c trap "exit 42" TERM; while true; do sleep 0.1; done \n'], e.stderr);
      await cd.ctrOk(['task', 'pause', id]);
      assert.equal(await taskStatus(cd, id), 'PAUSED');
      await cd.ctrOk(['task', 'resume', id]);
      await cd.ctrOk(['task', 'kill', '-s', 'SIGTERM', id]);
      await waitFor(async () => (await taskStatus(cd, id)) === 'STOPPED', WAIT_MS, { what: `${id} stopped` });
      const ls = await cd.ctrOk(['task', 'ls']);
      assert.match(ls.split('\n').find((l) => l.startsWith(id)) ?? '', /STOPPED/);
      await cd.ctrOk(['task', 'delete', id]);
      await cd.ctrOk(['containers', 'rm', id]);
      await assertGone(id);
    } finally {
      await cd.ctr(['task', 'delete', '--force', id]);
      await cd.ctr(['containers', 'rm', id]);
    }
  });

  test('ctr run --seccomp: containerd\'s default profile, applied the same way', async () => {
    const script = [
      'grep -E "^(Seccomp|NoNewPrivs):" /proc/self/status', 'id',
      // allowed by the profile, and what the capabilities the default spec keeps allow
      'ls / >/dev/null && echo ls-ok', 'chroot / true && echo chroot-ok', 'mkdir /tmp/d && echo mkdir-ok',
      // refused by the profile (unshare needs CAP_SYS_ADMIN there) whatever the capabilities
      'unshare -n true 2>/dev/null && echo unshare-ok || echo unshare-denied',
      // the profile's errno (EPERM, its default action's), as the program reports it
      'unshare -n true 2>&1 | sed "s/^unshare: //"',
      'exit 4',
    ].join('; ');
    const seen = await threeWays('nat-seccomp', async (col, id) => {
      const r = await need().ctr(['run', '--rm', '--seccomp', ...col.rt, suite.image(), id, 'sh', '-c', script], { timeoutMs: CMD_MS });
      return { code: r.code, stdout: r.stdout, stderr: r.stderr };
    });
    same(seen);
    // and runc's view is the filtered one
    assert.match(seen['runc-v2']!.stdout, /^Seccomp:\s+2$/m);
    assert.match(seen['runc-v2']!.stdout, /^unshare-denied$/m);
    assert.match(seen['runc-v2']!.stdout, /Operation not permitted$/m);
    assert.equal(seen['runc-v2']!.code, 4);
  });

  test('--seccomp: a syscall newer than every one the profile names gets ENOSYS (a libc falls back), an unnamed older one the default action', async () => {
    const helper = join(DEFAULT_SHIM_DIR, 'tests', 'tsrt-test-syscall');
    // 39 getpid (allowed), 169 reboot (the profile denies it), 400 (a gap below the profile's newest; 335 traps on this kind of host), 1000 (past them all)
    const seen = await threeWays('nat-enosys', async (col, id) => {
      const r = await need().ctr(['run', '--rm', '--seccomp', '--mount', `type=bind,src=${helper},dst=/tsrt-test-syscall,options=rbind:ro`,
        ...col.rt, suite.image(), id, '/tsrt-test-syscall', '39', '169', '400', '1000'], { timeoutMs: CMD_MS });
      return { code: r.code, stdout: r.stdout, stderr: r.stderr };
    });
    same(seen);
    assert.deepEqual(seen['runc-v2'], { code: 0, stdout: '39 ok\n169 EPERM\n400 EPERM\n1000 ENOSYS\n', stderr: '' });
  });

  test('an exec into a container run with --seccomp is filtered by the same profile', async () => {
    const script = ['grep -E "^(Seccomp|NoNewPrivs):" /proc/self/status', 'unshare -n true 2>/dev/null && echo unshare-ok || echo unshare-denied', 'exit 5'].join('; ');
    const seen = await threeWays('nat-seccomp-exec', async (col, id) => {
      const cd = need();
      try {
        await cd.ctrOk(['run', '-d', '--seccomp', ...col.rt, suite.image(), id, 'sleep', '1000']);
        await waitFor(async () => (await taskStatus(cd, id)) === 'RUNNING', WAIT_MS, { what: `${id} RUNNING` });
        const r = await cd.ctr(['task', 'exec', '--exec-id', 'probe', id, 'sh', '-c', script], { timeoutMs: CMD_MS });
        return { code: r.code, stdout: r.stdout, stderr: r.stderr };
      } finally {
        await cd.ctr(['task', 'kill', '-s', 'SIGKILL', id]);
        await waitFor(async () => (await taskStatus(cd, id)) !== 'RUNNING', WAIT_MS, { what: `${id} stopped` }).catch(() => undefined);
        await cd.ctr(['task', 'delete', '--force', id]);
        await cd.ctr(['containers', 'rm', id]);
      }
    });
    same(seen);
    assert.match(seen['runc-v2']!.stdout, /^Seccomp:\s+2$/m);
    assert.match(seen['runc-v2']!.stdout, /^unshare-denied$/m);
    assert.equal(seen['runc-v2']!.code, 5);
  });

  test('a session keyring of its own (not the monitor\'s, which containers would share), as runc makes it; none with NoNewKeyring', async () => {
    const cd = need();
    const noKeyring = join(cd.root, 'no-new-keyring.toml');
    writeFileSync(noKeyring, 'NoNewKeyring = true\n');
    /** The host's view (/proc/keys) of the keyrings named after the container: permissions, owner, name. */
    const keyringsOf = (id: string): string[] => readFileSync('/proc/keys', 'utf8').split('\n').filter((l) => l.includes(id))
      .map((l) => l.trim().split(/\s+/)).map((f) => `${f[3]} ${f[4]} ${f[5]}:${f[6]} ${f[7]} ${f[8]!.split(id).join('<id>')}`);
    const seen = await threeWays('nat-keys', async (col, id) => {
      const out: Record<string, string[]> = {};
      // NoNewKeyring only through tsrt's options file: ctr has no flag for it, and runc-v2 reads no such file
      const cases = [['default', []], ...(col.name === 'runc-v2' ? [] : [['NoNewKeyring', ['--runtime-config-path', noKeyring]]])] as Array<[string, string[]]>;
      for (const [what, extra] of cases) {
        const cid = `${id}-${what === 'default' ? 'k' : 'n'}`;
        try {
          await cd.ctrOk(['run', '-d', ...extra, ...col.rt, suite.image(), cid, 'sleep', '1000']);
          await waitFor(async () => (await taskStatus(cd, cid)) === 'RUNNING', WAIT_MS, { what: `${cid} RUNNING` });
          out[what] = keyringsOf(cid).map((l) => l.split(cid).join('<cid>'));
        } finally {
          await cd.ctr(['task', 'kill', '-s', 'SIGKILL', cid]);
          await waitFor(async () => (await taskStatus(cd, cid)) !== 'RUNNING', WAIT_MS, { what: `${cid} stopped` }).catch(() => undefined);
          await cd.ctr(['task', 'delete', '--force', cid]);
          await cd.ctr(['containers', 'rm', cid]);
        }
      }
      return out;
    });
    assert.deepEqual(seen['runc-v2'], { default: ['perm 3f1b0000 0:0 keyring _ses.<id>:'] });
    // tsrt+runc passes --no-new-keyring to runc: the native backend must do as runc then does
    for (const col of ['tsrt+runc', 'tsrt+native']) assert.deepEqual(seen[col], { ...seen['runc-v2'], NoNewKeyring: [] }, col);
  });

  test('what the native backend cannot do is refused by name, and nothing is left', async () => {
    const cd = need();
    const id = uniqueId('nat-bad');
    const cfg = join(cd.root, 'native-systemd.toml');
    writeFileSync(cfg, 'SystemdCgroup = true\n');
    const r = await cd.ctr(['run', '--rm', '--runtime-config-path', cfg, ...COLUMNS[2]!.rt, suite.image(), id, 'true'], { timeoutMs: CMD_MS });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /SystemdCgroup is not supported by the native backend yet/);
    await cd.ctr(['containers', 'rm', id]);
    await assertGone(id);
  });
});
