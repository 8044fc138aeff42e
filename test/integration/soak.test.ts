// Soak: SOAK_LIFECYCLES (default 500) container lifecycles through tsrt, alternating the runc and native
// backends, two at a time: run -d, exec, pause, resume, kill, delete. A census taken after a first
// lifecycle (which makes what stays for good: the runtime's root, the cgroup parents) and again at the end
// must be the same: this containerd's processes, their zombies, mounts, the namespace's cgroups in every
// hierarchy, ctr's FIFOs, shim and console sockets, everything under /run/tsrt, and the open fds of the
// daemon and of the monitor of a container that runs throughout. The daemon's RSS before and after is
// reported (not compared: the heap grows and shrinks with the collector), and so is its JavaScript heap in
// use from the SIGUSR1 report: live objects only when the daemon runs with --expose-gc, which
// SOAK_NODE=<a wrapper that runs node --expose-gc> arranges (TSRT_NODE of the shims).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { TSRT_V2, WAIT_MS, containerdForFile, taskStatus, tsrtDaemonDir, uniqueId, waitFor, type Containerd } from './harness.js';
import { listZombies, readMountinfo } from './lib/procfs.js';

const suite = containerdForFile({ before, after }, process.env.SOAK_NODE ? { env: { TSRT_NODE: process.env.SOAK_NODE } } : {});
const LIFECYCLES = Number(process.env.SOAK_LIFECYCLES ?? 500);
const PARALLEL = 2;
const BACKENDS = [['--runtime', TSRT_V2], ['--runtime', TSRT_V2, '--annotation', 'io.tsrt.backend=native']];

const list = (dir: string): string[] => { try { return fs.readdirSync(dir).sort(); } catch { return []; } };

/** Every path under dir, relative, sorted (daemon.log left out: it only grows). */
function tree(dir: string, rel = ''): string[] {
  const out: string[] = [];
  for (const name of list(path.join(dir, rel))) {
    const r = path.join(rel, name);
    if (name === 'daemon.log') continue;
    out.push(r);
    let st: fs.Stats;
    try { st = fs.lstatSync(path.join(dir, r)); } catch { continue; }
    if (st.isDirectory()) out.push(...tree(dir, r));
  }
  return out;
}

/** The daemon's JavaScript heap in use, from the diagnostic report SIGUSR1 makes it log. */
async function heapUsedKiB(daemonDir: string, pid: number): Promise<number> {
  const log = path.join(daemonDir, 'daemon.log');
  const from = fs.readFileSync(log).length;
  process.kill(pid, 'SIGUSR1');
  let used = NaN;
  await waitFor(() => {
    for (const l of fs.readFileSync(log).subarray(from).toString('utf8').split('\n')) {
      if (!l.includes('diagnostic report (SIGUSR1)')) continue;
      used = (JSON.parse(l) as { report: { javascriptHeap: { usedMemory: number } } }).report.javascriptHeap.usedMemory;
      return true;
    }
    return false;
  }, WAIT_MS, { what: 'the diagnostic report' });
  return Math.round(used / 1024);
}

const fdCount = (pid: number): number => list(`/proc/${pid}/fd`).length;
const rssKiB = (pid: number): number =>
  Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN);

/** The namespace's cgroups (`<hierarchy>/<namespace>/<container>`), in every hierarchy, v1 and v2. */
function cgroups(ns: string): string[] {
  const out: string[] = [];
  for (const h of list('/sys/fs/cgroup')) {
    for (const c of list(path.join('/sys/fs/cgroup', h, ns))) {
      if (fs.statSync(path.join('/sys/fs/cgroup', h, ns, c)).isDirectory()) out.push(`${h}/${c}`);
    }
  }
  return out;
}

function census(cd: Containerd, daemon: number, monitor: number) {
  const own = new Set(cd.ownPids());
  return {
    processes: [...own].sort((a, b) => a - b),
    zombies: listZombies().filter((z) => own.has(z.ppid)).map((z) => z.pid),
    mounts: readMountinfo().map((m) => m.mountPoint).filter((m) => m.startsWith(cd.root) || m.startsWith('/run/tsrt') || m.startsWith('/run/containerd')).sort(),
    cgroups: cgroups(cd.ns),
    fifos: list('/run/containerd/fifo'),
    sockets: [...list('/run/containerd/s'), ...list('/run/tsrt/console').map((n) => `console/${n}`)],
    runTsrt: tree('/run/tsrt'),
    fds: { daemon: fdCount(daemon), monitor: fdCount(monitor) },
  };
}

async function lifecycle(cd: Containerd, image: string, n: number, name = 'soak'): Promise<void> {
  const id = uniqueId(`${name}${n}`);
  await cd.ctrOk(['run', '-d', ...BACKENDS[n % BACKENDS.length]!, image, id, 'sleep', '600']);
  assert.equal((await cd.ctrOk(['task', 'exec', '--exec-id', `e${n}`, id, 'echo', 'ok'])).trim(), 'ok');
  await cd.ctrOk(['task', 'pause', id]);
  await cd.ctrOk(['task', 'resume', id]);
  await cd.ctrOk(['task', 'kill', '-s', 'SIGKILL', id]);
  await waitFor(async () => (await taskStatus(cd, id)) === 'STOPPED', WAIT_MS, { what: `${id} stopped` });
  await cd.ctrOk(['task', 'rm', id]);
  await cd.ctrOk(['containers', 'rm', id]);
}

test(`soak: ${LIFECYCLES} lifecycles (run, exec, pause, resume, kill, delete) leave the census as it was`, { timeout: 60 * 60_000 }, async (t) => {
  const cd = suite.containerd();
  const image = suite.image();
  const keeper = uniqueId('soak-keeper');
  await cd.ctrOk(['run', '-d', '--runtime', TSRT_V2, image, keeper, 'sleep', '100000']);
  try {
    for (let i = 0; i < BACKENDS.length; i++) await lifecycle(cd, image, i, 'warm');
    const init = Number((await cd.ctrOk(['task', 'ps', keeper])).split('\n')[1]!.trim().split(/\s+/)[0]);
    const monitor = Number(fs.readFileSync(`/proc/${init}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]);
    const daemon = Number(fs.readFileSync(path.join(tsrtDaemonDir(cd.ttrpcAddress), 'daemon.pid'), 'utf8'));
    // settled: the warm-up's monitors have gone
    let first = census(cd, daemon, monitor);
    await waitFor(() => { const c = census(cd, daemon, monitor); const same = JSON.stringify(c) === JSON.stringify(first); first = c; return same; }, WAIT_MS, { what: 'a settled census' });
    const rssBefore = rssKiB(daemon);
    const heapBefore = await heapUsedKiB(tsrtDaemonDir(cd.ttrpcAddress), daemon);
    const started = Date.now();
    let next = 0;
    await Promise.all(Array.from({ length: PARALLEL }, async () => {
      while (next < LIFECYCLES) await lifecycle(cd, image, next++);
    }));
    const seconds = (Date.now() - started) / 1000;
    // monitors leave shortly after their container's delete
    let last = census(cd, daemon, monitor);
    await waitFor(() => { last = census(cd, daemon, monitor); return JSON.stringify(last) === JSON.stringify(first); }, WAIT_MS, { what: 'the census as before' })
      .catch(() => undefined);
    const rssAfter = rssKiB(daemon);
    const heapAfter = await heapUsedKiB(tsrtDaemonDir(cd.ttrpcAddress), daemon);
    t.diagnostic(`${LIFECYCLES} lifecycles in ${seconds.toFixed(0)} s; daemon RSS ${rssBefore} KiB before, ${rssAfter} KiB after, heap in use ${heapBefore} → ${heapAfter} KiB; ` +
      `daemon fds ${first.fds.daemon}, monitor fds ${first.fds.monitor}; ${first.processes.length} processes, ${first.runTsrt.length} entries under /run/tsrt`);
    assert.deepEqual(last, first);
  } finally {
    await cd.ctr(['task', 'kill', '-s', 'SIGKILL', keeper]);
    await waitFor(async () => ['STOPPED', undefined].includes(await taskStatus(cd, keeper)), WAIT_MS, { what: 'keeper stopped' });
    await cd.ctr(['task', 'rm', keeper]);
    await cd.ctr(['containers', 'rm', keeper]);
  }
});
