// The example external plugin (plugins/gvisor, docs/backends.md) loaded from a plugin directory: containers
// run in gVisor through `runsc --platform=ptrace`, picked by the io.tsrt.backend annotation or by the
// options' Backend; and plugins that cannot be used are refused by name while the daemon serves on.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { release } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test as nodeTest } from 'node:test';
import {
  CMD_MS,
  REPO_ROOT,
  TSRT_V2,
  WAIT_MS,
  containerdForFile,
  ctrInTerminal,
  mountsUnder,
  processesWithCwdUnder,
  psExecInfo,
  removeContainer,
  shimSocketPath,
  taskStatus as harnessTaskStatus,
  tsrtDaemonDir,
  uniqueId,
  waitFor,
  type Containerd,
} from './harness.js';
import { listPids, readCmdline } from './lib/procfs.js';
import { TasksError, tasksClientFor } from './lib/tasks-client.js';
import { BACKEND_API_VERSION } from '../../src/plugins/api/index.js';

const suite = containerdForFile({ before, after });
const need = (): Containerd => suite.containerd();
const taskStatus = (id: string): Promise<string | undefined> => harnessTaskStatus(need(), id);

const RUNSC = ['/usr/bin/runsc', '/usr/local/bin/runsc', '/usr/sbin/runsc'].find((p) => existsSync(p));
// Without runsc the gVisor tests cannot run at all; they say so instead of failing (the bad-plugin ones still run).
const noRunsc = RUNSC ? undefined : 'runsc is not installed (apt-get install runsc)';
const gvisorTest = (name: string, fn: () => Promise<void>) =>
  nodeTest(name, { timeout: 120_000 }, async (t) => (noRunsc ? t.skip(noRunsc) : fn()));

/** This test file's plugin directory (plugins/gvisor linked in) and the options files that use it. */
let pluginDir = '';
let annotationCfg = '';
let backendCfg = '';
/** runc's state root given in the options; the gvisor plugin keeps runsc's next to it (<parent>/runsc/<ns>). */
let runcRoot = '';
const runscRoot = (): string => join(runcRoot, '..', 'runsc', need().ns);

/** Made on first use (after the file's containerd has started). */
function ensurePluginDir(): void {
  if (pluginDir) return;
  const root = need().root;
  pluginDir = join(root, 'plugins');
  mkdirSync(join(pluginDir, 'gvisor'), { recursive: true });
  symlinkSync(join(REPO_ROOT, 'plugins', 'gvisor', 'index.mjs'), join(pluginDir, 'gvisor', 'index.mjs'));
  runcRoot = join(root, 'state-root', 'runc');
  annotationCfg = join(root, 'plugins.toml');
  writeFileSync(annotationCfg, `PluginDir = ${JSON.stringify(pluginDir)}\nRoot = ${JSON.stringify(runcRoot)}\n`);
  backendCfg = join(root, 'gvisor-default.toml');
  writeFileSync(backendCfg, `PluginDir = ${JSON.stringify(pluginDir)}\nRoot = ${JSON.stringify(runcRoot)}\nBackend = "gvisor"\n` +
    '[backends.gvisor]\nplatform = "ptrace"\nbinary = "runsc"\n');
}

const viaAnnotation = (): string[] => (ensurePluginDir(), ['--runtime', TSRT_V2, '--runtime-config-path', annotationCfg, '--annotation', 'io.tsrt.backend=gvisor']);

/** Host processes that belong to runsc under this file's state root (sandbox, gofer, exec waiters). */
function runscProcesses(): string[] {
  if (!runcRoot) return [];
  const root = runscRoot();
  const out: string[] = [];
  for (const pid of listPids()) {
    const cmd = readCmdline(pid).join(' ');
    if (cmd.includes(root)) out.push(`${pid} ${cmd}`);
  }
  return out;
}

/** Nothing of the container is left: bundle, shim socket, processes, mounts, runsc state, cgroups. */
async function assertGone(id: string): Promise<void> {
  const cd = need();
  const bundle = cd.bundleDir(id);
  await waitFor(() => !existsSync(bundle), WAIT_MS, { what: `bundle ${bundle} removed` });
  // the monitor unlinks its socket as it exits, which can be just after containerd removed the bundle
  await waitFor(() => !existsSync(shimSocketPath(cd.address, cd.ns, id)), WAIT_MS, { what: 'shim socket removed' });
  assert.deepEqual(processesWithCwdUnder(bundle), [], 'no process left in the bundle');
  assert.deepEqual(mountsUnder(bundle), [], 'no mount left');
  const state = runcRoot && existsSync(runscRoot()) ? readdirSync(runscRoot()).filter((f) => f.includes(id)) : [];
  assert.deepEqual(state, [], 'no runsc state left');
  // sandbox and gofer are SIGKILLed by `runsc delete --force`; the monitor reaps them at once
  await waitFor(() => runscProcesses().length === 0, WAIT_MS).catch(() => assert.deepEqual(runscProcesses(), [], 'no runsc process left'));
  for (const ctl of ['memory', 'pids', 'cpu']) {
    assert.ok(!existsSync(join('/sys/fs/cgroup', ctl, cd.ns, id)), `${ctl} cgroup of ${id} removed`);
  }
}

const firstColumn = (table: string): number[] =>
  table.split('\n').slice(1).map((l) => Number(l.trim().split(/\s+/)[0])).filter((n) => n > 0);

describe('the gvisor plugin, picked by the io.tsrt.backend annotation', () => {
  gvisorTest('ctr run --rm: gVisor\'s kernel inside, its stdout and exit code come back, nothing left behind', async () => {
    const id = uniqueId('gv-run');
    const script = 'uname -r; dmesg | head -n 1; echo out; exit 3';
    const r = await need().ctr(['run', '--rm', ...viaAnnotation(), suite.image(), id, 'sh', '-c', script], { timeoutMs: CMD_MS });
    assert.equal(r.code, 3, r.stderr);
    const [kernel, dmesg, out] = r.stdout.split('\n');
    assert.notEqual(kernel, release(), 'the kernel inside is not the host\'s');
    assert.match(kernel!, /^\d+\.\d+\.\d+/);
    assert.match(dmesg!, /gVisor/, 'dmesg inside is gVisor\'s');
    assert.equal(out, 'out');
    await assertGone(id);
  });

  gvisorTest('run -d: exec, ps, metrics, pause/resume, signals to an exec and to the init, delete', async () => {
    const cd = need();
    const id = uniqueId('gv-detach');
    await cd.ctrOk(['run', '-d', ...viaAnnotation(), suite.image(), id, 'sh', '-c', 'trap "exit 42" TERM; while true; do sleep 0.1; done']);
    try {
      assert.equal(await taskStatus(id), 'RUNNING');
      // exec: stdout and exit status, in gVisor too
      const e = await cd.ctr(['task', 'exec', '--exec-id', 'one', id, 'sh', '-c', 'uname -r; exit 5'], { timeoutMs: CMD_MS });
      assert.equal(e.code, 5, e.stderr);
      assert.notEqual(e.stdout.trim(), release());

      // a long exec, signalled by exec id inside the sandbox (its trap answers)
      const ex = cd.ctrSpawn(['task', 'exec', '--exec-id', 'trapper', id, 'sh', '-c', 'trap "echo got TERM; exit 9" TERM; echo ready; while true; do sleep 0.1; done']);
      let exOut = '';
      ex.stdout!.on('data', (b: Buffer) => { exOut += b.toString(); });
      await waitFor(() => exOut.includes('ready'), WAIT_MS, { what: 'exec trap installed' });
      const ps = await cd.ctrOk(['task', 'ps', id]);
      assert.ok(ps.includes(psExecInfo(cd, 'trapper')), `task ps names the exec: ${ps}`);
      assert.ok(firstColumn(ps).length >= 2, ps);
      await cd.ctrOk(['task', 'kill', '--exec-id', 'trapper', '-s', 'SIGTERM', id]);
      const exR = await ex.result;
      assert.equal(exR.code, 9, exR.stderr);
      assert.match(exOut, /got TERM/);

      // metrics: the sandbox's host cgroups
      const m = await cd.ctr(['task', 'metrics', id]);
      assert.equal(m.code, 0, m.stderr);
      assert.match(m.stdout, /memory\.usage_in_bytes\s+[1-9]\d*/, m.stdout);

      await cd.ctrOk(['task', 'pause', id]);
      assert.equal(await taskStatus(id), 'PAUSED');
      await cd.ctrOk(['task', 'resume', id]);
      assert.equal(await taskStatus(id), 'RUNNING');

      // update has no runsc command behind it: a clear refusal (ctr 1.6 has no `task update`: the Tasks API)
      const tasks = tasksClientFor(cd);
      try {
        await assert.rejects(tasks.update(id, { memory: { limit: 67108864 } }), (e: unknown) => {
          assert.ok(e instanceof TasksError, String(e));
          assert.equal(e.codeName, 'UNIMPLEMENTED', e.message);
          assert.match(e.details, /no update command/);
          return true;
        });
      } finally {
        tasks.close();
      }

      // SIGTERM to the init: its trap's exit code is the task's
      await cd.ctrOk(['task', 'kill', id]);
      await waitFor(async () => (await taskStatus(id)) === 'STOPPED', WAIT_MS, { what: `${id} stopped` });
      const del = await cd.ctr(['task', 'delete', id]);
      assert.equal(del.code, 0, del.stderr);
      assert.match(del.stderr, /exit with non-zero exit code 42|42/);
      await cd.ctrOk(['containers', 'rm', id]);
      await assertGone(id);
    } finally {
      await cd.ctr(['task', 'delete', '--force', id]);
      await cd.ctr(['containers', 'rm', id]);
    }
  });

  gvisorTest('SIGKILL of the init of a foreground run gives 137, kill --all and a forced delete leave nothing', async () => {
    const cd = need();
    const id = uniqueId('gv-kill');
    const child = cd.ctrSpawn(['run', '--rm', ...viaAnnotation(), suite.image(), id, 'sleep', '600']);
    await waitFor(async () => (await taskStatus(id)) === 'RUNNING', WAIT_MS, { what: `${id} running` });
    await cd.ctrOk(['task', 'kill', '-s', 'SIGKILL', id]);
    const r = await child.result;
    assert.equal(r.code, 137, r.stderr);
    await assertGone(id);

    const id2 = uniqueId('gv-force');
    await cd.ctrOk(['run', '-d', ...viaAnnotation(), suite.image(), id2, 'sh', '-c', 'trap "" TERM; sleep 600 & sleep 600']);
    await cd.ctrOk(['task', 'kill', '--all', '-s', 'SIGKILL', id2]);
    await waitFor(async () => (await taskStatus(id2)) === 'STOPPED', WAIT_MS, { what: `${id2} stopped` });
    await cd.ctrOk(['task', 'delete', id2]);
    await cd.ctrOk(['containers', 'rm', id2]);
    await assertGone(id2);

    const id3 = uniqueId('gv-delforce');
    await cd.ctrOk(['run', '-d', ...viaAnnotation(), suite.image(), id3, 'sleep', '600']);
    await cd.ctrOk(['task', 'delete', '--force', id3]);
    await cd.ctrOk(['containers', 'rm', id3]);
    await assertGone(id3);
  });

  gvisorTest('a terminal: the init gets a pty from gVisor through the console socket, sized by ctr', async () => {
    const id = uniqueId('gv-tty');
    const r = await ctrInTerminal(need(), ['run', '--rm', '-t', ...viaAnnotation(), suite.image(), id, 'sh', '-c',
      'until stty size 2>/dev/null | grep -q "^[1-9]"; do sleep 0.05; done; test -t 0 && test -t 1 && echo on-a-tty; stty size; exit 4'], { cols: 101, rows: 33 });
    assert.equal(r.code, 4, r.stdout + r.stderr);
    // (busybox `tty` says "not a tty" under gVisor: ttyname finds no /dev/pts entry; isatty is what matters)
    assert.match(r.stdout, /on-a-tty/);
    assert.match(r.stdout, /33 101/);
    await assertGone(id);
  });
});

describe('the gvisor plugin, picked by the options\' Backend', () => {
  gvisorTest('Backend = "gvisor": every container of that runtime config runs in gVisor', async () => {
    ensurePluginDir();
    const id = uniqueId('gv-default');
    const r = await need().ctr(['run', '--rm', '--runtime', TSRT_V2, '--runtime-config-path', backendCfg, suite.image(), id, 'uname', '-r'], { timeoutMs: CMD_MS });
    assert.equal(r.code, 0, r.stderr);
    assert.notEqual(r.stdout.trim(), release());
    await assertGone(id);
  });

  gvisorTest('[backends.gvisor]: an unknown key or a platform it does not know is refused, naming it', async () => {
    ensurePluginDir();
    for (const [table, expect] of [
      ['platfrom = "ptrace"', /\[backends\.gvisor\]: unknown key platfrom \(known: binary, platform\)/],
      ['platform = "warp"', /\[backends\.gvisor\]: platform must be one of ptrace, kvm, not "warp"/],
    ] as const) {
      const cfg = join(need().root, 'gvisor-bad-table.toml');
      writeFileSync(cfg, `PluginDir = ${JSON.stringify(pluginDir)}\nRoot = ${JSON.stringify(runcRoot)}\nBackend = "gvisor"\n[backends.gvisor]\n${table}\n`);
      const id = uniqueId('gv-table');
      const r = await need().ctr(['run', '--rm', '--runtime', TSRT_V2, '--runtime-config-path', cfg, suite.image(), id, 'true'], { timeoutMs: CMD_MS });
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, expect);
      await removeContainer(need(), id);
      await assertGone(id);
    }
  });
});

describe('plugins that cannot be used', () => {
  const daemonPid = (): number => Number(readFileSync(join(tsrtDaemonDir(need().ttrpcAddress), 'daemon.pid'), 'utf8'));
  const bad: Array<{ name: string; file: string; text: string; expect: RegExp }> = [
    { name: 'syntax', file: 'syntax.mjs', text: 'export const apiVersion = 1;\nexport function createBackend( {\n', expect: /cannot be loaded/ },
    { name: 'version', file: 'version.mjs', text: 'export const apiVersion = 99;\nexport function createBackend() { return {}; }\n', expect: /backend API version 99/ },
    { name: 'throws', file: 'throws.mjs', text: `export const apiVersion = ${BACKEND_API_VERSION};\nexport function createBackend() { throw new Error("no sandbox for you"); }\n`, expect: /createBackend threw: no sandbox for you/ },
  ];

  nodeTest('each is refused with a message naming its file; runc containers of the same daemon still run', { timeout: 120_000 }, async () => {
    const cd = need();
    const dir = join(cd.root, 'bad-plugins');
    mkdirSync(dir, { recursive: true });
    for (const b of bad) writeFileSync(join(dir, b.file), b.text);
    const cfg = join(cd.root, 'bad-plugins.toml');
    writeFileSync(cfg, `PluginDir = ${JSON.stringify(dir)}\n`);
    // a runc container kept running across the failures: the daemon that serves it is the one asked
    const keeper = uniqueId('keeper');
    await cd.ctrOk(['run', '-d', '--runtime', TSRT_V2, '--runtime-config-path', cfg, suite.image(), keeper, 'sleep', '600']);
    try {
      const daemon = daemonPid();
      for (const b of bad) {
        const id = uniqueId(`bad-${b.name}`);
        const r = await cd.ctr(['run', '--rm', '--runtime', TSRT_V2, '--runtime-config-path', cfg, '--annotation', `io.tsrt.backend=${b.name}`,
          suite.image(), id, 'true'], { timeoutMs: CMD_MS });
        assert.notEqual(r.code, 0, `${b.file} refused`);
        assert.ok(r.stderr.includes(join(dir, b.file)), `the error names ${b.file}: ${r.stderr}`);
        assert.match(r.stderr, b.expect);
        await cd.ctr(['containers', 'rm', id]);
        await assertGone(id);
        const ok = uniqueId('after-bad');
        const r2 = await cd.ctr(['run', '--rm', '--runtime', TSRT_V2, '--runtime-config-path', cfg, suite.image(), ok, 'echo', 'still-here'], { timeoutMs: CMD_MS });
        assert.equal(r2.code, 0, r2.stderr);
        assert.equal(r2.stdout, 'still-here\n');
      }
      assert.equal(daemonPid(), daemon, 'the same daemon served throughout');
      assert.equal(await taskStatus(keeper), 'RUNNING');
      // an unknown name lists what there is, the broken ones included (they are files; loading them is what fails)
      const id = uniqueId('bad-unknown');
      const r = await cd.ctr(['run', '--rm', '--runtime', TSRT_V2, '--runtime-config-path', cfg, '--annotation', 'io.tsrt.backend=nosuch',
        suite.image(), id, 'true'], { timeoutMs: CMD_MS });
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /unknown backend "nosuch" \(available: native, runc, syntax, throws, version\)/);
      await cd.ctr(['containers', 'rm', id]);
    } finally {
      await cd.ctr(['task', 'kill', '-s', 'SIGKILL', keeper]);
      await waitFor(async () => (await taskStatus(keeper)) !== 'RUNNING', WAIT_MS).catch(() => undefined);
      await cd.ctr(['task', 'delete', '--force', keeper]);
      await cd.ctr(['containers', 'rm', keeper]);
    }
    await assertGone(keeper);
  });
});

describe('the gvisor plugin across a daemon crash', () => {
  gvisorTest('a new daemon adopts the container from the plugin\'s persisted state: an exec is still signalled inside the sandbox', async () => {
    const cd = need();
    const id = uniqueId('gv-crash');
    await cd.ctrOk(['run', '-d', ...viaAnnotation(), suite.image(), id, 'sleep', '600']);
    try {
      const ex = cd.ctrSpawn(['task', 'exec', '--exec-id', 'survivor', id, 'sh', '-c', 'trap "echo done; exit 6" TERM; echo ready; while :; do sleep 0.1; done']);
      let out = '';
      ex.stdout!.on('data', (b: Buffer) => { out += b.toString(); });
      await waitFor(() => out.includes('ready'), WAIT_MS, { what: 'exec trap installed' });
      // the daemon has recorded the started exec (its Start has returned) once task ps names it
      await waitFor(async () => (await cd.ctrOk(['task', 'ps', id])).includes(psExecInfo(cd, 'survivor')), WAIT_MS, { what: 'exec recorded' });
      const daemonFile = join(tsrtDaemonDir(cd.ttrpcAddress), 'daemon.pid');
      const old = Number(readFileSync(daemonFile, 'utf8'));
      process.kill(old, 'SIGKILL');
      await waitFor(async () => (await taskStatus(id)) === 'RUNNING' && Number(readFileSync(daemonFile, 'utf8')) !== old, WAIT_MS,
        { what: 'served by a new daemon' });
      // the pid inside the sandbox came back from the state the plugin gave the earlier daemon
      await cd.ctrOk(['task', 'kill', '--exec-id', 'survivor', '-s', 'SIGTERM', id]);
      const r = await ex.result;
      assert.deepEqual([r.code, out], [6, 'ready\ndone\n'], r.stderr);
      await cd.ctrOk(['task', 'kill', '-s', 'SIGKILL', id]);
      await waitFor(async () => (await taskStatus(id)) === 'STOPPED', WAIT_MS, { what: `${id} stopped` });
      await cd.ctrOk(['task', 'delete', id]);
      await cd.ctrOk(['containers', 'rm', id]);
      await assertGone(id);
    } finally {
      await cd.ctr(['task', 'delete', '--force', id]);
      await cd.ctr(['containers', 'rm', id]);
    }
  });
});
