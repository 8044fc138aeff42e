// Runtime options as containerd and ctr send them (1.6 and 2.x), through the real containerd to the shim:
// the options file (`--runtime-config-path`), ctr's task options (`--no-pivot`, `--uidmap`/`--gidmap`:
// containerd.linux.runc.CreateOptions from ctr 1.6, containerd.runc.v1.Options from ctr 2.x), what ctr
// refuses, ShimCgroup, and the warnings for options tsrt does not act on. Where runc-v2 can be given the
// same option by ctr, both run it and are compared.
//
// The runtime binary is seen through a `runc` wrapper that logs its arguments (lib/runc-wrapper.ts): this
// file's containerd gets a shim directory (first on its PATH) holding links to the built shim and that
// wrapper, so runc-v2 and tsrt both run it when they run "runc".
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  CMD_MS, DEFAULT_SHIM_DIR, RUNC_V2, TSRT_V2, WAIT_MS, containerdForFile, removeContainer, taskStatus, uniqueId, waitFor,
} from './harness.js';
import { isAlive, readCgroups, readStat } from './lib/procfs.js';
import { loggingShimDir } from './lib/runc-wrapper.js';

const wrap = loggingShimDir(DEFAULT_SHIM_DIR);
const suite = containerdForFile({ before, after }, { shimDir: wrap.dir, namespace: 'tsrt-opts' });
after(() => wrap.cleanup());
const createArgv = (id: string): string[] => wrap.createArgv(id);

/** An options file in the containerd's temp root. */
function optionsFile(name: string, lines: string[]): string {
  const f = join(suite.containerd().root, name);
  writeFileSync(f, `${lines.join('\n')}\n`);
  return f;
}

const release = () => suite.containerd().dist.release;
const v2 = () => release()[0] >= 2;

describe('runtime options through containerd', { timeout: 300_000 }, () => {
  test('options file: NoNewKeyring and NoPivotRoot reach runc create (--no-new-keyring, --no-pivot)', async () => {
    const c = suite.containerd();
    const cfg = optionsFile('keyring.toml', ['NoNewKeyring = true', 'NoPivotRoot = true']);
    const id = uniqueId('keyring');
    const r = await c.ctr(['run', '--rm', '--runtime', TSRT_V2, '--runtime-config-path', cfg, suite.image(), id, 'echo', 'ok'], { timeoutMs: CMD_MS });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'ok\n');
    const argv = createArgv(id);
    assert.ok(argv.includes('--no-new-keyring') && argv.includes('--no-pivot'), argv.join(' '));
    assert.deepEqual([argv[0], argv.includes('/run/tsrt/runc/tsrt-opts')], ['runc', true], 'tsrt ran it');
  });

  test('ctr --no-pivot: the same runc create flag under runc-v2 and tsrt (ctr 1.6 CreateOptions, 2.x runc Options)', async () => {
    const c = suite.containerd();
    const seen: Record<string, { out: string; noPivot: boolean; keyring: boolean }> = {};
    for (const rt of [RUNC_V2, TSRT_V2]) {
      const id = uniqueId('nopivot');
      const r = await c.ctr(['run', '--rm', '--no-pivot', '--runtime', rt, suite.image(), id, 'echo', 'ok'], { timeoutMs: CMD_MS });
      assert.equal(r.code, 0, `${rt}: ${r.stderr}`);
      const argv = createArgv(id);
      seen[rt] = { out: r.stdout, noPivot: argv.includes('--no-pivot'), keyring: argv.includes('--no-new-keyring') };
    }
    assert.deepEqual(seen[RUNC_V2], { out: 'ok\n', noPivot: true, keyring: false });
    assert.deepEqual(seen[TSRT_V2], seen[RUNC_V2]);
  });

  test('ctr --uidmap/--gidmap: the stdio is owned by the mapped root, so the process can reopen it, as under runc-v2 (runc and native backends)', async (t) => {
    const maxNs = Number(readFileSync('/proc/sys/user/max_user_namespaces', 'utf8'));
    if (!(maxNs > 0)) return t.skip('user namespaces are off');
    const c = suite.containerd();
    // the container's root (host uid 100000) must be able to reach the bundle's rootfs under the temp root
    chmodSync(c.root, 0o711);
    const seen: Record<string, { code: number | null; stdout: string; stderr: string }> = {};
    const columns = { [RUNC_V2]: ['--runtime', RUNC_V2], [TSRT_V2]: ['--runtime', TSRT_V2], native: ['--runtime', TSRT_V2, '--annotation', 'io.tsrt.backend=native'] };
    for (const [rt, args] of Object.entries(columns)) {
      const id = uniqueId('uidmap');
      try {
        const r = await c.ctr(['run', '--rm', '--uidmap', '0:100000:65536', '--gidmap', '0:100000:65536', ...args, suite.image(), id,
          'sh', '-c', 'stat -L -c "%u:%g %F" /proc/self/fd/0 /proc/self/fd/1 /proc/self/fd/2; echo out > /proc/self/fd/1; echo err > /proc/self/fd/2'],
        { timeoutMs: CMD_MS });
        seen[rt] = { code: r.code, stdout: r.stdout, stderr: r.stderr };
      } finally {
        await removeContainer(c, id);
      }
    }
    // runc-v2 hands the process pipes (they stat as fifo too), tsrt the client's FIFOs: both owned by 100000
    assert.deepEqual(seen[RUNC_V2], { code: 0, stdout: '0:0 fifo\n0:0 fifo\n0:0 fifo\nout\n', stderr: 'err\n' }, 'reference (runc-v2)');
    assert.deepEqual(seen[TSRT_V2], seen[RUNC_V2]);
    assert.deepEqual(seen.native, seen[RUNC_V2], 'the native backend');
  });

  test('ctr --runc-binary with tsrt: refused by ctr itself; BinaryName in an options file is the way', async () => {
    const c = suite.containerd();
    const id = uniqueId('runc-binary');
    const r = await c.ctr(['run', '--rm', '--runtime', TSRT_V2, '--runc-binary', 'crun', suite.image(), id, 'true'], { timeoutMs: CMD_MS });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /only supported for "io.containerd.runc.v2" runtime/);
    await removeContainer(c, id);
    const cfg = optionsFile('alt.toml', [`BinaryName = "${wrap.runcAlt}"`]);
    const id2 = uniqueId('alt');
    const r2 = await c.ctr(['run', '--rm', '--runtime', TSRT_V2, '--runtime-config-path', cfg, suite.image(), id2, 'echo', 'ok'], { timeoutMs: CMD_MS });
    assert.equal(r2.code, 0, r2.stderr);
    const argv = createArgv(id2);
    assert.equal(argv[0], 'runc-alt');
    assert.ok(argv.includes('/run/tsrt/runc/tsrt-opts'), argv.join(' '));
  });

  test('an options file with --no-pivot or --uidmap: ctr 2.x refuses the mix, ctr 1.6 sends only the task options', async () => {
    const c = suite.containerd();
    const cfg = optionsFile('mix.toml', ['NoNewKeyring = true']);
    const id = uniqueId('mix');
    try {
      const r = await c.ctr(['run', '--rm', '--no-pivot', '--runtime', TSRT_V2, '--runtime-config-path', cfg, suite.image(), id, 'echo', 'ok'],
        { timeoutMs: CMD_MS });
      if (v2()) {
        // client/task.go getRuncOptions: the container's runtimeoptions.v1.Options cannot become runc Options
        assert.notEqual(r.code, 0);
        assert.match(r.stderr, /can't unmarshal type "runtimeoptions.v1.Options" to output "containerd.runc.v1.Options"/);
      } else {
        // containerd sends the task options instead of the runtime options: the file is not seen
        assert.equal(r.code, 0, r.stderr);
        const argv = createArgv(id);
        assert.ok(argv.includes('--no-pivot') && !argv.includes('--no-new-keyring'), argv.join(' '));
      }
    } finally {
      await removeContainer(c, id);
    }
  });

  test('options tsrt does not act on: the container runs, and each is a warning in containerd\'s log', async () => {
    const c = suite.containerd();
    const cfg = optionsFile('criu.toml', ['CriuWorkPath = "/var/lib/tsrt-criu"', 'TaskApiAddress = "ttrpc+unix:///run/x.sock"']);
    const id = uniqueId('criu');
    const r = await c.ctr(['run', '--rm', '--runtime', TSRT_V2, '--runtime-config-path', cfg, suite.image(), id, 'echo', 'ok'], { timeoutMs: CMD_MS });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'ok\n');
    // the shim's log FIFO is copied into containerd's log; the copy is asynchronous
    const warned = (option: string) => readFileSync(c.logPath, 'utf8').split('\n').some((l) =>
      l.includes(`runtime option ${option} is not supported by tsrt`) && l.includes(id));
    await waitFor(() => warned('CriuWorkPath') && warned('TaskApiAddress'), WAIT_MS, { what: 'both warnings in containerd\'s log' });
  });

  test('LogLevel, a daemon-wide option: debug traces each Task request in containerd\'s log; a later Create asking for another level is warned', async () => {
    const c = suite.containerd();
    const debug = optionsFile('debug.toml', ['LogLevel = "debug"']);
    const id = uniqueId('loglevel');
    const r = await c.ctr(['run', '--rm', '--runtime', TSRT_V2, '--runtime-config-path', debug, suite.image(), id, 'echo', 'ok'], { timeoutMs: CMD_MS });
    assert.equal(r.code, 0, r.stderr);
    const lines = () => readFileSync(c.logPath, 'utf8').split('\n').filter((l) => l.includes(`"id":"${id}"`));
    // (the Create that sets the level is not traced: it was not known to be wanted when it arrived)
    const traced = (method: string) => lines().some((l) => l.includes('"msg":"task request"') && l.includes(`"method":"${method}"`));
    await waitFor(() => traced('Start') && traced('Wait') && traced('State'), WAIT_MS, { what: 'Start, Wait and State traced in containerd\'s log' });

    const other = optionsFile('error.toml', ['LogLevel = "error"']);
    const id2 = uniqueId('loglevel');
    const r2 = await c.ctr(['run', '--rm', '--runtime', TSRT_V2, '--runtime-config-path', other, suite.image(), id2, 'true'], { timeoutMs: CMD_MS });
    assert.equal(r2.code, 0, r2.stderr);
    await waitFor(() => readFileSync(c.logPath, 'utf8').split('\n').some((l) => l.includes(`"id":"${id2}"`) &&
      l.includes('LogLevel differs from the one the daemon took') && l.includes('"serving":"debug"')), WAIT_MS, { what: 'the warning for the second level' });
  });

  test('a [backends.runc] table is refused by the runc backend, naming the key; nothing is left of the container', async () => {
    const c = suite.containerd();
    const cfg = optionsFile('runc-table.toml', ['[backends.runc]', 'binary = "crun"']);
    const id = uniqueId('runc-table');
    const r = await c.ctr(['run', '--rm', '--runtime', TSRT_V2, '--runtime-config-path', cfg, suite.image(), id, 'true'], { timeoutMs: CMD_MS });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /\[backends\.runc\]: unknown key binary: the runc backend has no table of its own/);
    assert.deepEqual(wrap.creates().filter((a) => a.at(-1) === id), [], 'runc create never ran');
    await removeContainer(c, id);
  });

  test('ShimCgroup: the monitor (what containerd knows as the shim) is moved there, the container is not', async (t) => {
    const mountinfo = readFileSync('/proc/self/mountinfo', 'utf8').split('\n');
    const v1 = mountinfo.map((l) => l.split(' - ')).filter((p) => p[1]?.startsWith('cgroup ')).map((p) => p[0]!.split(' ')[4]!)
      .filter((mp) => mp.startsWith('/sys/fs/cgroup/'));
    if (v1.length === 0) return t.skip('needs a cgroup v1 or hybrid host (the unified case is in cgroup-v2.test.ts)');
    const c = suite.containerd();
    const name = `/tsrt-shimcg-${process.pid}-${Date.now().toString(36)}`;
    const made: string[] = [];
    const id = uniqueId('shimcg');
    let monitor = 0;
    try {
      for (const mp of v1) {
        const d = join(mp, name);
        mkdirSync(d);
        made.push(d);
        for (const f of ['cpuset.cpus', 'cpuset.mems']) if (existsSync(join(d, f))) writeFileSync(join(d, f), readFileSync(join(mp, f)));
      }
      const cfg = optionsFile('shimcg.toml', [`ShimCgroup = "${name}"`]);
      await c.ctrOk(['run', '-d', '--runtime', TSRT_V2, '--runtime-config-path', cfg, suite.image(), id, 'sleep', '1000']);
      await waitFor(async () => (await taskStatus(c, id)) === 'RUNNING', WAIT_MS, { what: `${id} RUNNING` });
      const ls = (await c.ctrOk(['task', 'ls'])).split('\n').find((l) => l.startsWith(id))!;
      const initPid = Number(ls.trim().split(/\s+/)[1]);
      monitor = readStat(initPid)!.ppid; // the monitor is the init's subreaper
      assert.ok(readFileSync(`/proc/${monitor}/cmdline`, 'utf8').includes('containerd-shim-tsrt-v2'));
      for (const [, controllers, p] of readCgroups(monitor)) {
        if (controllers !== '') assert.equal(p, name, `monitor in ${controllers}`);
      }
      for (const [, controllers, p] of readCgroups(initPid)) {
        if (controllers !== '' && controllers !== 'name=systemd') assert.equal(p, `/tsrt-opts/${id}`, `container in ${controllers}`);
      }
    } finally {
      await removeContainer(c, id);
      // the monitor exits once its last container is gone; then the cgroups are empty and can go
      if (monitor) await waitFor(() => !isAlive(monitor), WAIT_MS, { what: 'monitor exited' }).catch(() => undefined);
      for (const d of made.reverse()) {
        await waitFor(() => { rmdirSync(d); return true; }, WAIT_MS, { what: `rmdir ${d}` });
      }
    }
  });
});
