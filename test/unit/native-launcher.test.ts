// Tests of tsrt-launch (native/launcher/, docs/native-launcher.md), the native backend's launcher, on a
// real busybox rootfs. Plans are written by hand here. Needs root (namespaces, mounts, cgroups).
//
//   make -C native all tests && node --import tsx --test test/unit/native-launcher.test.ts
//   TSRT_LAUNCH_BIN=native/build-asan/tsrt-launch ... runs the same against the ASan build.
//
// Every launcher runs under native/build/tests/tsrt-test-reaper, a child subreaper that reports each
// process it reaps: the container's init is re-parented to it when the launcher exits, so the test
// waits for the init's exit (and its code) as an event, and a reaper that exits after the launcher's
// own exit proves that the launcher left no process behind.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pidAlive, waitFor } from './lib/wait.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const BIN = path.resolve(ROOT, process.env.TSRT_LAUNCH_BIN ?? 'native/build/tsrt-launch');
const REAPER = path.join(ROOT, 'native/build/tests/tsrt-test-reaper');
const RECV = path.join(ROOT, 'native/build/tests/tsrt-console-recv');
const BUSYBOX = '/bin/busybox';
const IS_ROOT = process.getuid?.() === 0;
const SKIP = !IS_ROOT ? 'needs root' : !fs.existsSync(BUSYBOX) ? 'needs busybox-static' : false;

// mount(2) flags
const MS_RDONLY = 1, MS_NOSUID = 2, MS_NODEV = 4, MS_NOEXEC = 8, MS_BIND = 4096, MS_REC = 16384;
const MS_STRICTATIME = 1 << 24;

type Field = string | number;
type Step = [string, ...Field[]];

/** A field as the plan format writes it: percent-encoded, `-` for the empty string. */
export function encodeField(v: Field): string {
  const s = String(v);
  if (s === '') return '-';
  if (s === '-') return '%2D';
  let out = '';
  for (const b of Buffer.from(s, 'utf8')) {
    const c = String.fromCharCode(b);
    out += /[A-Za-z0-9._/=,:@+-]/.test(c) ? c : '%' + b.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}

function planText(steps: Step[]): string {
  return ['tsrt-plan 1', ...steps.map(([name, ...f]) => [name, ...f.map(encodeField)].join(' '))].join('\n') + '\n';
}

const BOX_TOOLS = ['sh', 'cat', 'ls', 'id', 'hostname', 'echo', 'sleep', 'mount', 'env', 'pwd', 'grep', 'touch',
  'head', 'wc', 'readlink', 'tty', 'stat', 'test', 'true', 'tr', 'sed'];

// Everything a test made, undone in its after hook even when it fails.
interface Ctx {
  dir: string;
  rootfs: string;
  pids: number[];
  cgroups: string[];
  reapers: ChildProcess[];
}

const all: Ctx[] = [];

function makeCtx(name: string): Ctx {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `tsrt-launch-${name}-`));
  // The container's user (1000, or a mapped root) opens the exec FIFO through this directory.
  fs.chmodSync(dir, 0o711);
  const rootfs = path.join(dir, 'rootfs');
  fs.mkdirSync(path.join(rootfs, 'bin'), { recursive: true });
  fs.copyFileSync(BUSYBOX, path.join(rootfs, 'bin/busybox'));
  fs.chmodSync(path.join(rootfs, 'bin/busybox'), 0o755);
  for (const t of BOX_TOOLS) fs.symlinkSync('busybox', path.join(rootfs, 'bin', t));
  fs.chmodSync(rootfs, 0o755);
  const ctx: Ctx = { dir, rootfs, pids: [], cgroups: [], reapers: [] };
  all.push(ctx);
  return ctx;
}

async function cleanup(ctx: Ctx): Promise<void> {
  const i = all.indexOf(ctx);
  if (i < 0) return; // already done
  all.splice(i, 1);
  for (const pid of ctx.pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch { /* gone */ }
  }
  for (const r of ctx.reapers) {
    if (r.exitCode === null && r.signalCode === null) {
      await new Promise<void>((res) => {
        const t = setTimeout(() => { r.kill('SIGKILL'); res(); }, 20_000);
        r.once('exit', () => { clearTimeout(t); res(); });
      });
    }
  }
  for (const pid of ctx.pids) await waitFor(`pid ${pid} gone`, () => !pidAlive(pid));
  for (const cg of ctx.cgroups) {
    await waitFor(`cgroup ${cg} empty`, () => !fs.existsSync(cg) || fs.readFileSync(path.join(cg, 'cgroup.procs'), 'utf8').trim() === '');
    if (fs.existsSync(cg)) fs.rmdirSync(cg);
  }
  fs.rmSync(ctx.dir, { recursive: true, force: true });
}

/** A launcher run under the reaper: its exit code and every reaped process's. */
interface Run {
  reaper: ChildProcess;
  launcherPid: Promise<number>;
  /** Resolves with "exit N" / "signal N" of pid once reaped. */
  exitOf(pid: number): Promise<string>;
  /** Resolves when the reaper itself exits: every descendant is gone. */
  done: Promise<string[]>;
}

function runLauncher(ctx: Ctx, mode: 'create' | 'exec', plan: string, outFile: string): Run {
  const out = fs.openSync(outFile, 'a');
  const reaper = spawn(REAPER, [BIN, mode, plan], { stdio: ['ignore', out, out, 'pipe'] });
  fs.closeSync(out);
  ctx.reapers.push(reaper);
  const lines: string[] = [];
  const waiters: Array<() => void> = [];
  let buf = '';
  const report = reaper.stdio[3] as Readable;
  report.setEncoding('utf8');
  report.on('data', (d: string) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      lines.push(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
    for (const w of waiters.splice(0)) w();
  });
  const ended = new Promise<void>((res) => report.on('end', () => { for (const w of waiters.splice(0)) w(); res(); }));
  const find = (pred: (l: string) => boolean): Promise<string> => new Promise((res, rej) => {
    const look = () => {
      const l = lines.find(pred);
      if (l !== undefined) return res(l);
      if (report.readableEnded) return rej(new Error(`reaper ended without the line; saw: ${lines.join(' | ')}`));
      waiters.push(look);
    };
    look();
  });
  const launcherPid = find((l) => l.startsWith('started ')).then((l) => Number(l.split(' ')[1]));
  return {
    reaper,
    launcherPid,
    exitOf: (pid) => find((l) => l.startsWith(`${pid} `)).then((l) => l.slice(String(pid).length + 1)),
    done: new Promise((res) => reaper.once('exit', () => { void ended.then(() => res(lines)); })),
  };
}

/** The steps most tests share: new namespaces, the usual mounts and devices, the exec FIFO. */
function baseSteps(ctx: Ctx, opts: { sysfs?: boolean } = {}): Step[] {
  const fifo = path.join(ctx.dir, 'fifo');
  if (!fs.existsSync(fifo)) {
    spawnSyncOk('mkfifo', ['-m', '0622', fifo]);
  }
  const steps: Step[] = [
    ['errfile', path.join(ctx.dir, 'err')],
    ['pidfile', path.join(ctx.dir, 'pid')],
    ['ns', 'pid', ''], ['ns', 'mount', ''], ['ns', 'uts', ''], ['ns', 'ipc', ''], ['ns', 'net', ''],
    ['rootfs', ctx.rootfs],
    ['mount', '/proc', 'proc', 'proc', MS_NOSUID | MS_NODEV | MS_NOEXEC, ''],
    ['mount', '/dev', 'tmpfs', 'tmpfs', MS_NOSUID | MS_STRICTATIME, 'mode=755,size=65536k'],
    ['mount', '/dev/pts', 'devpts', 'devpts', MS_NOSUID | MS_NOEXEC, 'newinstance,ptmxmode=0666,mode=0620'],
    ['mount', '/dev/shm', 'tmpfs', 'shm', MS_NOSUID | MS_NODEV | MS_NOEXEC, 'mode=1777,size=65536k'],
    ['mount', '/tmp', 'tmpfs', 'tmpfs', MS_NOSUID | MS_NODEV, 'mode=1777'],
  ];
  if (opts.sysfs !== false) steps.push(['mount', '/sys', 'sysfs', 'sysfs', MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY, '']);
  steps.push(
    ['device', '/dev/null', 'c', 1, 3, 0o666, 0, 0],
    ['device', '/dev/zero', 'c', 1, 5, 0o666, 0, 0],
    ['device', '/dev/urandom', 'c', 1, 9, 0o666, 0, 0],
    ['symlink', '/proc/self/fd', '/dev/fd'],
    ['symlink', '/proc/self/fd/0', '/dev/stdin'],
    ['symlink', '/proc/self/fd/1', '/dev/stdout'],
    ['symlink', '/proc/self/fd/2', '/dev/stderr'],
    ['symlink', 'pts/ptmx', '/dev/ptmx'],
    ['env', 'PATH=/bin'],
    ['execfifo', fifo],
  );
  return steps;
}

function spawnSyncOk(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { stdio: 'pipe' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
}

function writePlan(ctx: Ctx, name: string, steps: Step[]): string {
  const p = path.join(ctx.dir, name);
  fs.writeFileSync(p, planText(steps));
  return p;
}

/** Opens the exec FIFO for reading (the Start of the backend) and reads the init's byte. */
async function release(ctx: Ctx): Promise<void> {
  const fh = await fs.promises.open(path.join(ctx.dir, 'fifo'), 'r');
  try {
    const { bytesRead } = await fh.read(Buffer.alloc(1), 0, 1, null);
    assert.equal(bytesRead, 1);
  } finally {
    await fh.close();
  }
}

function readPid(ctx: Ctx): number {
  const pid = Number(fs.readFileSync(path.join(ctx.dir, 'pid'), 'utf8'));
  assert.ok(pid > 1, `pidfile holds a pid: ${pid}`);
  ctx.pids.push(pid);
  return pid;
}

function hostMountsUnder(dir: string): string[] {
  return fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(dir));
}

/** create + release + the init's exit: its exit status and its output. */
async function createAndRun(ctx: Ctx, steps: Step[]): Promise<{ status: string; out: string; pid: number }> {
  const out = path.join(ctx.dir, 'out');
  const run = runLauncher(ctx, 'create', writePlan(ctx, 'plan', steps), out);
  const lpid = await run.launcherPid;
  const lexit = await run.exitOf(lpid);
  assert.equal(lexit, 'exit 0', `launcher: ${readIf(path.join(ctx.dir, 'err'))} ${readIf(out)}`);
  const pid = readPid(ctx);
  await release(ctx);
  const status = await run.exitOf(pid);
  await run.done;
  return { status, out: fs.readFileSync(out, 'utf8'), pid };
}

function readIf(p: string): string {
  try {
    return fs.readFileSync(p, 'utf8');
  } catch {
    return '';
  }
}

describe('tsrt-launch', { skip: SKIP, concurrency: 1 }, () => {
  before(() => {
    for (const f of [BIN, REAPER, RECV]) assert.ok(fs.existsSync(f), `${f} is built (make -C native all tests)`);
  });
  after(async () => {
    for (const ctx of [...all]) await cleanup(ctx);
  });

  it('create: new namespaces, mounts, pivot, hostname, env, cwd, user with groups, capabilities; waits on the exec FIFO', async (t) => {
    const ctx = makeCtx('create');
    t.after(() => cleanup(ctx));
    const caps = (1n << 0n) | (1n << 12n) | (1n << 13n); // chown, net_admin, net_raw
    const hex = caps.toString(16);
    const script = 'echo pid=$$; echo host=$(hostname); id; echo cwd=$(pwd); echo FOO=$FOO; ' +
      'grep -E "^Cap(Eff|Bnd|Prm|Amb)" /proc/self/status; exit 7';
    const steps: Step[] = [
      ...baseSteps(ctx),
      ['hostname', 'ctr-one'],
      ['user', 1000, 1000],
      ['groups', 10, 20],
      ['cwd', '/work/dir'],
      ['umask', '022'],
      ['rlimit', 7, 1024, 2048],
      ['caps', 'bounding', hex], ['caps', 'effective', hex], ['caps', 'permitted', hex],
      ['caps', 'inheritable', hex], ['caps', 'ambient', hex],
      ['nonewprivs'],
      ['env', 'FOO=a b%c'],
      ['arg', 'sh'], ['arg', '-c'], ['arg', script],
    ];
    const out = path.join(ctx.dir, 'out');
    const run = runLauncher(ctx, 'create', writePlan(ctx, 'plan', steps), out);
    const lpid = await run.launcherPid;
    assert.equal(await run.exitOf(lpid), 'exit 0', readIf(path.join(ctx.dir, 'err')));
    assert.equal(readIf(path.join(ctx.dir, 'err')), '');
    const pid = readPid(ctx);
    assert.ok(pidAlive(pid));
    // Blocked before its execve: still the launcher's image, sleeping in the FIFO open.
    assert.equal(fs.readlinkSync(`/proc/${pid}/exe`), fs.realpathSync(BIN));
    assert.match(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'), /\) S /);
    assert.equal(readIf(out), '', 'nothing ran yet');
    await release(ctx);
    assert.equal(await run.exitOf(pid), 'exit 7');
    await run.done;
    const o = fs.readFileSync(out, 'utf8');
    assert.match(o, /^pid=1$/m);
    assert.match(o, /^host=ctr-one$/m);
    assert.match(o, /^uid=1000 gid=1000 groups=10,20$/m);
    assert.match(o, /^cwd=\/work\/dir$/m);
    assert.match(o, /^FOO=a b%c$/m);
    const want = hex.padStart(16, '0');
    for (const set of ['CapEff', 'CapBnd', 'CapPrm', 'CapAmb']) assert.match(o, new RegExp(`^${set}:\\s+${want}$`, 'm'));
    assert.deepEqual(hostMountsUnder(ctx.dir), []);
  });

  it('create: masked and read-only paths, readonlyroot, devices and /dev symlinks', async (t) => {
    const ctx = makeCtx('paths');
    t.after(() => cleanup(ctx));
    fs.mkdirSync(path.join(ctx.rootfs, 'data'));
    fs.writeFileSync(path.join(ctx.rootfs, 'data/secret'), 'top secret\n');
    fs.mkdirSync(path.join(ctx.rootfs, 'ro'));
    fs.writeFileSync(path.join(ctx.rootfs, 'ro/file'), 'ro\n');
    const script = [
      'echo kcore=[$(cat /proc/kcore | wc -c)]',
      'echo secret=[$(cat /data/secret)]',
      'echo firmware=$(ls /sys/firmware | wc -l)',
      'touch /sys/firmware/x 2>/dev/null && echo firmware-writable || echo firmware-ro',
      'touch /ro/new 2>/dev/null && echo ro-writable || echo ro-readonly',
      'cat /ro/file',
      'touch /rootfile 2>/dev/null && echo root-writable || echo root-readonly',
      'touch /tmp/x && echo tmp-writable',
      'echo zero=$(head -c 5 /dev/zero | wc -c)',
      'echo discard > /dev/null && echo null-ok',
      'echo fd=$(readlink /dev/fd) stdin=$(readlink /dev/stdin) ptmx=$(readlink /dev/ptmx)',
      'stat -c "%F %t:%T %a" /dev/null',
    ].join('; ');
    const r = await createAndRun(ctx, [
      ...baseSteps(ctx),
      ['readonlyroot'],
      ['mask', '/proc/kcore'], ['mask', '/sys/firmware'], ['mask', '/data/secret'], ['mask', '/no/such/path'],
      ['readonly', '/ro'], ['readonly', '/no/such/ro'],
      ['arg', 'sh'], ['arg', '-c'], ['arg', script],
    ]);
    assert.equal(r.status, 'exit 0', r.out);
    assert.match(r.out, /^kcore=\[0\]$/m);
    assert.match(r.out, /^secret=\[\]$/m);
    assert.match(r.out, /firmware=0/);
    assert.match(r.out, /^firmware-ro$/m);
    assert.match(r.out, /^ro-readonly$/m);
    assert.match(r.out, /^ro$/m);
    assert.match(r.out, /^root-readonly$/m);
    assert.match(r.out, /^tmp-writable$/m);
    assert.match(r.out, /^zero=5$/m);
    assert.match(r.out, /^null-ok$/m);
    assert.match(r.out, /^fd=\/proc\/self\/fd stdin=\/proc\/self\/fd\/0 ptmx=pts\/ptmx$/m);
    assert.match(r.out, /^character special file 1:3 666$/m);
    assert.ok(!fs.existsSync(path.join(ctx.rootfs, 'rootfile')));
    assert.equal(fs.readFileSync(path.join(ctx.rootfs, 'data/secret'), 'utf8'), 'top secret\n');
    assert.deepEqual(hostMountsUnder(ctx.dir), []);
  });

  it('create: pivot 0 (NoPivotRoot) moves the rootfs onto / and chroots', async (t) => {
    const ctx = makeCtx('nopivot');
    t.after(() => cleanup(ctx));
    const r = await createAndRun(ctx, [
      ...baseSteps(ctx),
      ['pivot', 0],
      ['arg', 'sh'], ['arg', '-c'], ['arg', 'echo pid=$$; ls /; test -e /etc || echo no-etc; grep " / / " /proc/self/mountinfo | wc -l'],
    ]);
    assert.equal(r.status, 'exit 0', r.out);
    assert.match(r.out, /^pid=1$/m);
    assert.match(r.out, /^bin$/m);
    assert.match(r.out, /^no-etc$/m);
    assert.deepEqual(hostMountsUnder(ctx.dir), []);
  });

  it('create: a new user namespace maps root to an unprivileged host uid', async (t) => {
    const ctx = makeCtx('userns');
    t.after(() => cleanup(ctx));
    const HOST = 200000;
    spawnSyncOk('chown', ['-R', `${HOST}:${HOST}`, ctx.rootfs]);
    const out = path.join(ctx.dir, 'out');
    const steps: Step[] = [
      ['ns', 'user', ''],
      ['uidmap', 0, HOST, 65536],
      ['gidmap', 0, HOST, 65536],
      ...baseSteps(ctx),
      ['hostname', 'userns'],
      ['arg', 'sh'], ['arg', '-c'], ['arg', 'id; cat /proc/self/uid_map; echo x > /dev/null && echo null-ok; ls -n /bin/busybox'],
    ];
    const run = runLauncher(ctx, 'create', writePlan(ctx, 'plan', steps), out);
    assert.equal(await run.exitOf(await run.launcherPid), 'exit 0', readIf(path.join(ctx.dir, 'err')) + readIf(out));
    const pid = readPid(ctx);
    assert.match(fs.readFileSync(`/proc/${pid}/uid_map`, 'utf8'), new RegExp(`^\\s*0\\s+${HOST}\\s+65536\\s*$`));
    assert.match(fs.readFileSync(`/proc/${pid}/gid_map`, 'utf8'), new RegExp(`^\\s*0\\s+${HOST}\\s+65536\\s*$`));
    assert.equal(fs.readFileSync(`/proc/${pid}/setgroups`, 'utf8').trim(), 'allow');
    assert.match(fs.readFileSync(`/proc/${pid}/status`, 'utf8'), new RegExp(`^Uid:\\s+${HOST}\\s+${HOST}\\s+${HOST}\\s+${HOST}$`, 'm'));
    await release(ctx);
    assert.equal(await run.exitOf(pid), 'exit 0');
    await run.done;
    const o = fs.readFileSync(out, 'utf8');
    assert.match(o, /^uid=0 gid=0/m);
    assert.match(o, /^null-ok$/m);
    assert.match(o, / 0 +0 .*\/bin\/busybox$/m);
    assert.deepEqual(hostMountsUnder(ctx.dir), []);
  });

  it('exec: joins a running container\'s namespaces and sees its hostname and pid 1', async (t) => {
    const ctx = makeCtx('exec');
    t.after(() => cleanup(ctx));
    const out = path.join(ctx.dir, 'out');
    const run = runLauncher(ctx, 'create', writePlan(ctx, 'plan', [
      ...baseSteps(ctx), ['hostname', 'ctr-exec'], ['arg', 'sleep'], ['arg', '1000'],
    ]), out);
    assert.equal(await run.exitOf(await run.launcherPid), 'exit 0', readIf(path.join(ctx.dir, 'err')));
    const init = readPid(ctx);
    await release(ctx);
    await waitFor('the init runs sleep', () => fs.readlinkSync(`/proc/${init}/exe`).endsWith('/busybox'));

    const xout = path.join(ctx.dir, 'xout');
    const xsteps: Step[] = [
      ['errfile', path.join(ctx.dir, 'xerr')],
      ['pidfile', path.join(ctx.dir, 'xpid')],
      ...(['pid', 'mount', 'uts', 'ipc', 'net', 'cgroup'] as const).map((n): Step => ['ns', n, `/proc/${init}/ns/${n === 'mount' ? 'mnt' : n}`]),
      ['user', 1000, 1000],
      ['groups'],
      ['cwd', '/tmp'],
      ['env', 'PATH=/bin'],
      ['arg', 'sh'], ['arg', '-c'], ['arg', 'hostname; cat /proc/1/cmdline | tr "\\0" " "; echo; echo pid=$$; id; pwd; exit 5'],
    ];
    const xrun = runLauncher(ctx, 'exec', writePlan(ctx, 'xplan', xsteps), xout);
    const lpid = await xrun.launcherPid;
    assert.equal(await xrun.exitOf(lpid), 'exit 0', readIf(path.join(ctx.dir, 'xerr')) + readIf(xout));
    const xpid = Number(fs.readFileSync(path.join(ctx.dir, 'xpid'), 'utf8'));
    ctx.pids.push(xpid);
    assert.equal(await xrun.exitOf(xpid), 'exit 5');
    await xrun.done;
    const o = fs.readFileSync(xout, 'utf8');
    assert.match(o, /^ctr-exec$/m);
    assert.match(o, /^sleep 1000 ?$/m);
    assert.match(o, /^pid=[2-9]\d*$/m);
    assert.match(o, /^uid=1000 gid=1000/m);
    assert.match(o, /^\/tmp$/m);
    assert.ok(pidAlive(init));
    process.kill(init, 'SIGKILL');
    assert.equal(await run.exitOf(init), 'signal 9');
    await run.done;
  });

  // A profile that allows everything but mkdir (EPERM) and chmod (ENOSYS); a syscall this libseccomp does
  // not know is skipped with a warning, and an argument-filtered rule is built too.
  const SECCOMP: Step[] = [
    ['seccomp-default', 'allow', 0],
    ['seccomp-arch', 'x86_64'], ['seccomp-arch', 'x86'],
    ['seccomp-rule', 'errno', 1, 'mkdir'], ['seccomp-rule', 'errno', 1, 'mkdirat'],
    ['seccomp-rule', 'errno', 38, 'chmod'], ['seccomp-rule', 'errno', 38, 'fchmodat'],
    ['seccomp-rule', 'errno', 13, 'socket', 0, 'eq', 40, 0],
    ['seccomp-rule', 'errno', 1, 'tsrt_no_such_syscall'],
  ];
  const SECCOMP_SCRIPT = 'grep Seccomp: /proc/self/status; busybox mkdir /tmp/d 2>&1; echo mkdir=$?; ' +
    'touch /tmp/f && echo touch=$?; busybox chmod 600 /tmp/f 2>&1; echo chmod=$?';
  function seccompChecks(o: string): void {
    assert.match(o, /^Seccomp:\s+2$/m);
    assert.match(o, /mkdir: can't create directory '\/tmp\/d': Operation not permitted/);
    assert.match(o, /^mkdir=1$/m);
    assert.match(o, /^touch=0$/m);
    assert.match(o, /chmod: \/tmp\/f: Function not implemented/);
    assert.match(o, /^chmod=1$/m);
  }

  it('create: a seccomp filter (with nonewprivs: loaded right before execve) denies its syscalls with their errnos', async (t) => {
    const ctx = makeCtx('seccomp');
    t.after(() => cleanup(ctx));
    const out = path.join(ctx.dir, 'out');
    const run = runLauncher(ctx, 'create', writePlan(ctx, 'plan', [
      ...baseSteps(ctx), ['mount', '/tmp', 'tmpfs', 'tmpfs', 0, ''], ['user', 1000, 1000], ['nonewprivs'], ...SECCOMP,
      ['arg', 'sh'], ['arg', '-c'], ['arg', SECCOMP_SCRIPT + '; grep NoNewPrivs: /proc/self/status'],
    ]), out);
    assert.equal(await run.exitOf(await run.launcherPid), 'exit 0', readIf(path.join(ctx.dir, 'err')));
    assert.match(readIf(path.join(ctx.dir, 'err')), /^tsrt-launch: warning: seccomp-rule: tsrt_no_such_syscall: syscall not known to this libseccomp, skipped/);
    const pid = readPid(ctx);
    // not loaded yet: the init waits on the exec FIFO unfiltered
    assert.match(fs.readFileSync(`/proc/${pid}/status`, 'utf8'), /^Seccomp:\s+0$/m);
    await release(ctx);
    assert.equal(await run.exitOf(pid), 'exit 0');
    await run.done;
    const o = fs.readFileSync(out, 'utf8');
    seccompChecks(o);
    assert.match(o, /^NoNewPrivs:\s+1$/m);
  });

  it('exec: a seccomp filter without nonewprivs (loaded before the capabilities are dropped), no_new_privs left unset', async (t) => {
    const ctx = makeCtx('seccomp-exec');
    t.after(() => cleanup(ctx));
    const run = runLauncher(ctx, 'create', writePlan(ctx, 'plan', [
      ...baseSteps(ctx), ['mount', '/tmp', 'tmpfs', 'tmpfs', 0, ''], ['arg', 'sleep'], ['arg', '1000'],
    ]), path.join(ctx.dir, 'out'));
    assert.equal(await run.exitOf(await run.launcherPid), 'exit 0', readIf(path.join(ctx.dir, 'err')));
    const init = readPid(ctx);
    await release(ctx);
    await waitFor('the init runs sleep', () => fs.readlinkSync(`/proc/${init}/exe`).endsWith('/busybox'));
    const xout = path.join(ctx.dir, 'xout');
    const caps = (1n << 0n).toString(16);
    const xrun = runLauncher(ctx, 'exec', writePlan(ctx, 'xplan', [
      ['errfile', path.join(ctx.dir, 'xerr')], ['pidfile', path.join(ctx.dir, 'xpid')],
      ...(['pid', 'mount', 'uts', 'ipc', 'net'] as const).map((n): Step => ['ns', n, `/proc/${init}/ns/${n === 'mount' ? 'mnt' : n}`]),
      ['user', 1000, 1000], ['groups'],
      ['caps', 'bounding', caps], ['caps', 'effective', caps], ['caps', 'permitted', caps],
      ...SECCOMP, ['env', 'PATH=/bin'],
      ['arg', 'sh'], ['arg', '-c'], ['arg', SECCOMP_SCRIPT + '; grep -E "^(NoNewPrivs|CapEff):" /proc/self/status'],
    ]), xout);
    assert.equal(await xrun.exitOf(await xrun.launcherPid), 'exit 0', readIf(path.join(ctx.dir, 'xerr')) + readIf(xout));
    const xpid = Number(fs.readFileSync(path.join(ctx.dir, 'xpid'), 'utf8'));
    ctx.pids.push(xpid);
    assert.equal(await xrun.exitOf(xpid), 'exit 0');
    await xrun.done;
    const o = fs.readFileSync(xout, 'utf8');
    seccompChecks(o);
    assert.match(o, /^NoNewPrivs:\s+0$/m);
    assert.match(o, /^CapEff:\s+0000000000000000$/m);
    process.kill(init, 'SIGKILL');
    assert.equal(await run.exitOf(init), 'signal 9');
    await run.done;
  });

  it('a created init waiting for Start is not dumpable: root in the container cannot reach the host fds it holds', async (t) => {
    const ctx = makeCtx('dumpable');
    t.after(() => cleanup(ctx));
    // Docker's default capabilities: root, but no CAP_SYS_PTRACE
    const docker = 0xa80425fbn.toString(16);
    const caps: Step[] = (['bounding', 'effective', 'permitted'] as const).map((set): Step => ['caps', set, docker]);
    const run = runLauncher(ctx, 'create', writePlan(ctx, 'plan', [
      ...baseSteps(ctx), ['groups'], ['user', 0, 0], ...caps, ['arg', 'sleep'], ['arg', '1000'],
    ]), path.join(ctx.dir, 'out'));
    assert.equal(await run.exitOf(await run.launcherPid), 'exit 0', readIf(path.join(ctx.dir, 'err')));
    const init = readPid(ctx);
    // not released: the init still runs the launcher's code and holds its host directories open
    assert.ok(fs.readlinkSync(`/proc/${init}/exe`).endsWith('tsrt-launch'));
    const xout = path.join(ctx.dir, 'xout');
    const xrun = runLauncher(ctx, 'exec', writePlan(ctx, 'xplan', [
      ['errfile', path.join(ctx.dir, 'xerr')],
      ['pidfile', path.join(ctx.dir, 'xpid')],
      ...(['pid', 'mount', 'uts', 'ipc', 'net'] as const).map((n): Step => ['ns', n, `/proc/${init}/ns/${n === 'mount' ? 'mnt' : n}`]),
      ['groups'], ['user', 0, 0], ...caps, ['env', 'PATH=/bin'],
      // listing the fd directory is allowed to its root owner; following a link needs ptrace access
      ['arg', 'sh'], ['arg', '-c'], ['arg', 'for f in /proc/1/fd/*; do ls "$f/" >/dev/null 2>&1 && echo "through $f"; done; echo done'],
    ]), xout);
    assert.equal(await xrun.exitOf(await xrun.launcherPid), 'exit 0', readIf(path.join(ctx.dir, 'xerr')));
    const xpid = Number(fs.readFileSync(path.join(ctx.dir, 'xpid'), 'utf8'));
    ctx.pids.push(xpid);
    assert.equal(await xrun.exitOf(xpid), 'exit 0');
    await xrun.done;
    assert.equal(fs.readFileSync(xout, 'utf8'), 'done\n', 'no host directory reached through the init\'s fds');
    process.kill(init, 'SIGKILL');
    assert.equal(await run.exitOf(init), 'signal 9');
    await run.done;
  });

  it('sysctls are written before /proc/sys is made read-only', async (t) => {
    const ctx = makeCtx('sysctl');
    t.after(() => cleanup(ctx));
    const r = await createAndRun(ctx, [
      ...baseSteps(ctx), ['sysctl', 'net.ipv4.ip_unprivileged_port_start', '0'], ['readonly', '/proc/sys'],
      ['arg', 'sh'], ['arg', '-c'], ['arg', 'cat /proc/sys/net/ipv4/ip_unprivileged_port_start; (echo 1 > /proc/sys/net/ipv4/ip_unprivileged_port_start) 2>/dev/null || echo ro'],
    ]);
    assert.equal(r.status, 'exit 0', readIf(path.join(ctx.dir, 'err')));
    assert.equal(r.out, '0\nro\n');
  });

  it('a new user namespace whose gid map denies setgroups: an empty groups step is no error', async (t) => {
    const ctx = makeCtx('setgroups');
    t.after(() => cleanup(ctx));
    spawnSyncOk('chown', ['-R', '200000:200000', ctx.rootfs]);
    const r = await createAndRun(ctx, [
      ['ns', 'user', ''], ['uidmap', 0, 200000, 1], ['gidmap', 0, 200000, 1], ...baseSteps(ctx), ['groups'],
      ['arg', 'sh'], ['arg', '-c'], ['arg', 'id -u; cat /proc/self/setgroups'],
    ]);
    assert.equal(r.status, 'exit 0', readIf(path.join(ctx.dir, 'err')));
    assert.equal(r.out, '0\ndeny\n');
  });

  it('console: the pty master goes over the socket, the slave is the controlling terminal and stdio', async (t) => {
    const ctx = makeCtx('console');
    t.after(() => cleanup(ctx));
    const sock = path.join(ctx.dir, 'console.sock');
    const recv = spawn(RECV, [sock, 'tty; echo h$((1+1))i; exit 3\n'], { stdio: ['ignore', 'pipe', 'pipe'] });
    ctx.reapers.push(recv);
    let got = '';
    recv.stdout.setEncoding('utf8');
    recv.stdout.on('data', (d: string) => { got += d; });
    const recvExit = new Promise<number | null>((res) => recv.once('exit', (c) => res(c)));
    await waitFor('the console server listens', () => got.includes('listening'));
    const out = path.join(ctx.dir, 'out');
    const run = runLauncher(ctx, 'create', writePlan(ctx, 'plan', [
      ...baseSteps(ctx), ['console', sock], ['arg', 'sh'],
    ]), out);
    assert.equal(await run.exitOf(await run.launcherPid), 'exit 0', readIf(path.join(ctx.dir, 'err')));
    const pid = readPid(ctx);
    await release(ctx);
    assert.equal(await run.exitOf(pid), 'exit 3');
    await run.done;
    assert.equal(await recvExit, 0);
    assert.match(got, /payload 1/);
    assert.match(got, /\/dev\/pts\/0/);
    assert.match(got, /h2i/);
    assert.equal(readIf(out), '', 'the process wrote to the pty, not to the launcher\'s stdio');
  });

  describe('errors: exit 1, the errfile line names the step, nothing left behind', () => {
    const cases: Array<{ name: string; steps: (ctx: Ctx) => Step[]; line: RegExp }> = [
      { name: 'unknown step', steps: (ctx) => [...baseSteps(ctx), ['frobnicate', 'x'], ['arg', 'true']],
        line: /^tsrt-launch: frobnicate: line \d+: unknown step: Invalid argument$/ },
      { name: 'bad number', steps: (ctx) => [...baseSteps(ctx), ['rlimit', 7, '12x', 100], ['arg', 'true']],
        line: /^tsrt-launch: rlimit: line \d+: bad number "12x": Invalid argument$/ },
      { name: 'wrong field count', steps: (ctx) => [...baseSteps(ctx), ['user', 1000], ['arg', 'true']],
        line: /^tsrt-launch: user: line \d+: 1 fields, want 2: Invalid argument$/ },
      { name: 'missing rootfs', steps: (ctx) => [...baseSteps(ctx).map((s): Step => s[0] === 'rootfs' ? ['rootfs', path.join(ctx.dir, 'nope')] : s), ['arg', 'true']],
        line: /^tsrt-launch: rootfs: \/.*\/nope: No such file or directory$/ },
      { name: 'missing argv[0]', steps: (ctx) => [...baseSteps(ctx), ['arg', 'no-such-program']],
        line: /^unable to start container process: exec: "no-such-program": executable file not found in \$PATH$/ },
      { name: 'missing program path', steps: (ctx) => [...baseSteps(ctx), ['arg', '/no/such']],
        line: /^unable to start container process: exec: "\/no\/such": stat \/no\/such: no such file or directory$/ },
      { name: 'program is a directory', steps: (ctx) => [...baseSteps(ctx), ['arg', '/bin']],
        line: /^unable to start container process: exec: "\/bin": permission denied$/ },
      { name: 'devex without devfilter', steps: (ctx) => [...baseSteps(ctx), ['devex', 'c', 1, 3, 'rwm'], ['arg', 'true']],
        line: /^tsrt-launch: devex: no devfilter step: Invalid argument$/ },
      { name: 'devex with a bad access', steps: (ctx) => [...baseSteps(ctx), ['devfilter', '/x', 'deny'], ['devex', 'c', 1, 3, 'rx'], ['arg', 'true']],
        line: /^tsrt-launch: devex: line \d+: access not made of r, w and m "rx": Invalid argument$/ },
      { name: 'failing mount', steps: (ctx) => [...baseSteps(ctx), ['mount', '/x', 'no-such-fs', 'none', 0, ''], ['arg', 'true']],
        line: /^tsrt-launch: mount: \/x: mount none \(no-such-fs\) flags 0x0: No such device$/ },
      { name: 'seccomp rule without a default', steps: (ctx) => [...baseSteps(ctx), ['seccomp-rule', 'errno', 1, 'mkdir'], ['arg', 'true']],
        line: /^tsrt-launch: seccomp-rule: no seccomp-default step: Invalid argument$/ },
      { name: 'seccomp unknown action', steps: (ctx) => [...baseSteps(ctx), ['seccomp-default', 'deny', 0], ['arg', 'true']],
        line: /^tsrt-launch: seccomp-default: line \d+: unknown seccomp action "deny": Invalid argument$/ },
      { name: 'seccomp return value on allow', steps: (ctx) => [...baseSteps(ctx), ['seccomp-default', 'allow', 5], ['arg', 'true']],
        line: /^tsrt-launch: seccomp-default: line \d+: a return value only for errno or trace "5": Invalid argument$/ },
      { name: 'seccomp rule with a partial condition', steps: (ctx) => [...baseSteps(ctx), ['seccomp-default', 'allow', 0], ['seccomp-rule', 'errno', 1, 'kill', 0, 'eq'], ['arg', 'true']],
        line: /^tsrt-launch: seccomp-rule: line \d+: 5 fields, want 3 and 4 per argument: Invalid argument$/ },
      { name: 'seccomp argument twice in a rule', steps: (ctx) => [...baseSteps(ctx), ['seccomp-default', 'allow', 0],
        ['seccomp-rule', 'errno', 1, 'kill', 0, 'eq', 1, 0, 0, 'ne', 2, 0], ['arg', 'true']],
        line: /^tsrt-launch: seccomp-rule: line \d+: argument given twice in one rule "0": Invalid argument$/ },
      { name: 'seccomp unknown flag', steps: (ctx) => [...baseSteps(ctx), ['seccomp-default', 'allow', 0], ['seccomp-flag', 'tsync-esrch'], ['arg', 'true']],
        line: /^tsrt-launch: seccomp-flag: line \d+: unknown seccomp flag "tsync-esrch": Invalid argument$/ },
    ];
    for (const c of cases) {
      it(c.name, async (t) => {
        const ctx = makeCtx('err');
        t.after(() => cleanup(ctx));
        const out = path.join(ctx.dir, 'out');
        const run = runLauncher(ctx, 'create', writePlan(ctx, 'plan', c.steps(ctx)), out);
        const lpid = await run.launcherPid;
        const lines = await run.done;
        // Only the launcher was reaped here: its child (if it got that far) was killed and reaped by it.
        assert.deepEqual(lines, [`started ${lpid}`, `${lpid} exit 1`]);
        const err = fs.readFileSync(path.join(ctx.dir, 'err'), 'utf8');
        assert.equal(err.split('\n').length, 2, err);
        assert.match(err.trim(), c.line);
        assert.ok(fs.readFileSync(out, 'utf8').includes(err.trim()), 'the line is on stderr too');
        assert.ok(!fs.existsSync(path.join(ctx.dir, 'pid')));
        assert.deepEqual(hostMountsUnder(ctx.dir), []);
      });
    }
  });

  it('devfilter: a cgroup v2 device program, attached before the init joins, lets through only the exceptions', { skip: !fs.existsSync('/sys/fs/cgroup/unified/cgroup.procs') && 'no cgroup2 mount at /sys/fs/cgroup/unified' }, async (t) => {
    const ctx = makeCtx('devfilter');
    t.after(() => cleanup(ctx));
    const cg = fs.mkdtempSync('/sys/fs/cgroup/unified/tsrt-launch-test-');
    ctx.cgroups.push(cg);
    const out = path.join(ctx.dir, 'out');
    // /dev/null (1:3) and mknod of any char device are allowed; /dev/fuse (10:229), which the host lets
    // anyone open, is not
    const script = 'echo x > /dev/null && echo null-ok; mknod /dev/fuse c 10 229 && echo mknod-ok; (exec 3</dev/fuse) 2>/dev/null && echo fuse-opened || echo fuse-denied';
    const run = runLauncher(ctx, 'create', writePlan(ctx, 'plan', [
      ['devfilter', cg, 'deny'], ['devex', 'c', 1, 3, 'rwm'], ['devex', 'c', 'any', 'any', 'm'],
      ['cgroup', cg], ...baseSteps(ctx), ['arg', 'sh'], ['arg', '-c'], ['arg', script],
    ]), out);
    assert.equal(await run.exitOf(await run.launcherPid), 'exit 0', readIf(path.join(ctx.dir, 'err')));
    const pid = readPid(ctx);
    await release(ctx);
    assert.equal(await run.exitOf(pid), 'exit 0');
    await run.done;
    assert.equal(readIf(out), 'null-ok\nmknod-ok\nfuse-denied\n');
  });

  it('exec into one cgroup v2 directory: the process starts in it (cloned there), with its exit code', { skip: !fs.existsSync('/sys/fs/cgroup/unified/cgroup.procs') && 'no cgroup2 mount at /sys/fs/cgroup/unified' }, async (t) => {
    const ctx = makeCtx('exec-v2');
    t.after(() => cleanup(ctx));
    const cg = fs.mkdtempSync('/sys/fs/cgroup/unified/tsrt-launch-test-');
    ctx.cgroups.push(cg);
    const rel = '/' + path.basename(cg);
    const run = runLauncher(ctx, 'create', writePlan(ctx, 'plan', [
      ['cgroup', cg], ...baseSteps(ctx), ['arg', 'sleep'], ['arg', '1000'],
    ]), path.join(ctx.dir, 'out'));
    assert.equal(await run.exitOf(await run.launcherPid), 'exit 0', readIf(path.join(ctx.dir, 'err')));
    const init = readPid(ctx);
    await release(ctx);
    await waitFor('the init runs sleep', () => fs.readlinkSync(`/proc/${init}/exe`).endsWith('/busybox'));
    const xout = path.join(ctx.dir, 'xout');
    const xrun = runLauncher(ctx, 'exec', writePlan(ctx, 'xplan', [
      ['errfile', path.join(ctx.dir, 'xerr')], ['pidfile', path.join(ctx.dir, 'xpid')], ['cgroup', cg],
      ...(['pid', 'mount', 'uts', 'ipc', 'net'] as const).map((n): Step => ['ns', n, `/proc/${init}/ns/${n === 'mount' ? 'mnt' : n}`]),
      ['env', 'PATH=/bin'], ['arg', 'sh'], ['arg', '-c'], ['arg', 'grep ^0:: /proc/self/cgroup; exit 4'],
    ]), xout);
    const launcher = await xrun.launcherPid;
    assert.equal(await xrun.exitOf(launcher), 'exit 0', readIf(path.join(ctx.dir, 'xerr')));
    const xpid = Number(fs.readFileSync(path.join(ctx.dir, 'xpid'), 'utf8'));
    ctx.pids.push(xpid);
    assert.equal(await xrun.exitOf(xpid), 'exit 4');
    await xrun.done;
    assert.equal(fs.readFileSync(xout, 'utf8'), `0::${rel}\n`);
    // nothing of the exec is left in the cgroup
    assert.deepEqual(fs.readFileSync(path.join(cg, 'cgroup.procs'), 'utf8').trim().split('\n'), [String(init)]);
    process.kill(init, 'SIGKILL');
    assert.equal(await run.exitOf(init), 'signal 9');
    await run.done;
  });

  it('cgroup: the init joins a v1 cgroup before its namespaces', { skip: !fs.existsSync('/sys/fs/cgroup/pids') && 'no v1 pids hierarchy' }, async (t) => {
    const ctx = makeCtx('cgroup');
    t.after(() => cleanup(ctx));
    const cg = fs.mkdtempSync('/sys/fs/cgroup/pids/tsrt-launch-test-');
    ctx.cgroups.push(cg);
    const rel = '/' + path.basename(cg);
    const out = path.join(ctx.dir, 'out');
    const run = runLauncher(ctx, 'create', writePlan(ctx, 'plan', [
      ['cgroup', cg], ...baseSteps(ctx), ['arg', 'sh'], ['arg', '-c'], ['arg', 'cat /proc/self/cgroup'],
    ]), out);
    assert.equal(await run.exitOf(await run.launcherPid), 'exit 0', readIf(path.join(ctx.dir, 'err')));
    const pid = readPid(ctx);
    assert.match(fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8'), new RegExp(`^\\d+:pids:${rel}$`, 'm'));
    assert.deepEqual(fs.readFileSync(path.join(cg, 'cgroup.procs'), 'utf8').trim().split('\n'), [String(pid)]);
    await release(ctx);
    assert.equal(await run.exitOf(pid), 'exit 0');
    await run.done;
    assert.equal(fs.readFileSync(path.join(cg, 'cgroup.procs'), 'utf8').trim(), '');
  });
});
