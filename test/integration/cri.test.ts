// Kubernetes CRI, differential: containerd's CRI plugin drives pods and containers the way the kubelet does
// (lib/cri-client.ts over gRPC), each scenario once with runtime handler `runc` (io.containerd.runc.v2, the
// oracle), once with `tsrt` (io.containerd.tsrt.v2, runc backend) and once with `tsrt-native` (the same shim
// whose options file selects the native backend, as a second RuntimeClass handler would). What a kubelet would
// see is normalised (no ids, pids or times, but their order and sizes) and must be equal for all three; the runc
// half is also checked against what the scenario means, so that equally wrong halves cannot pass.
//
// One pod per handler (CNI network, sysctls) serves the container scenarios; each scenario removes its own
// containers. The last test removes the pods and checks that nothing of them is left. Pod-level options
// (shared PID, host namespaces, one shim per pod) are in cri-pods.test.ts.
//
// TSRT_CRI_SELFTEST=1 runs the "tsrt" half on handler runc as well (every test must then pass, which checks the
// comparisons themselves).

import assert from 'node:assert/strict';
import { appendFileSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { WAIT_MS, waitFor } from './harness.js';
import { CriError, type ContainerStats } from './lib/cri-client.js';
import { HANDLERS, HANDLER_NAMES, criForFile, sameAsRunc, type Handler, type Pod } from './lib/cri-harness.js';

const suite = criForFile({ before, after });
const SELFTEST = process.env.TSRT_CRI_SELFTEST === '1';
const handlerOf = (h: Handler): string => (SELFTEST ? 'runc' : h);

const SYSCTLS = { 'kernel.shm_rmid_forced': '1', 'net.core.somaxconn': '777' };
const pods = {} as Record<Handler, Pod>;

/** Run `fn` for runc then tsrt; the runc result is checked with `expect`, then tsrt's must equal it. */
async function differential<T>(fn: (pod: Pod, h: Handler) => Promise<T>, expect: (runc: T) => void): Promise<Record<Handler, T>> {
  const out = {} as Record<Handler, T>;
  for (const h of HANDLER_NAMES) out[h] = await fn(pods[h], h);
  if (process.env.TSRT_CRI_DUMP) appendFileSync(process.env.TSRT_CRI_DUMP, `${JSON.stringify(out)}\n`);
  expect(out.runc);
  sameAsRunc(out);
  return out;
}

/**
 * Remove containers of a scenario, whatever state they are in (best effort, each call bounded by WAIT_MS; the
 * pod's removal checks the rest).
 */
async function cleanup(pod: Pod, ids: string[]): Promise<void> {
  for (const id of ids) {
    await pod.cri.call('StopContainer', { containerId: id, timeout: 0 }, WAIT_MS).catch(() => undefined);
    await pod.cri.call('RemoveContainer', { containerId: id }, WAIT_MS).catch(() => undefined);
  }
}

/** The error of a CRI call as the kubelet would classify it: its gRPC code, or 'ok'. */
async function outcome(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (e) {
    if (e instanceof CriError) return `code ${e.code}`;
    throw e;
  }
}

/** A host cgroup v1 file of a running container (hierarchy `ctl`, the path from the container's /proc/pid/cgroup). */
function cgroupFile(pid: number, ctl: string, file: string): string {
  const line = readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n').find((l) => l.split(':')[1]?.split(',').includes(ctl));
  if (!line) throw new Error(`pid ${pid} is in no ${ctl} cgroup`);
  const path = line.slice(line.indexOf(':', line.indexOf(':') + 1) + 1);
  return readFileSync(join('/sys/fs/cgroup', ctl, path, file), 'utf8').trim();
}

const present = (v: { value: number } | null | undefined) => (v ? (v.value > 0 ? '>0' : '0') : 'absent');

describe('CRI: runc vs tsrt (runc and native backends)', { timeout: 900_000 }, () => {
  before(async () => {
    for (const h of HANDLER_NAMES) {
      pods[h] = await suite.runPod(handlerOf(h), { name: `cri-${h}`, sysctls: SYSCTLS });
    }
  });

  test('RunPodSandbox: READY, an address of the test network, the handler recorded, catatonit as the sandbox process', async () => {
    await differential(async (pod) => {
      const { status } = await pod.cri.podSandboxStatus(pod.id);
      const info = await pod.cri.sandboxInfo(pod.id);
      const listed = (await pod.cri.listPodSandbox({ id: pod.id })).map((p) => ({ state: p.state, handler: p.runtimeHandler === pod.handler }));
      const [net, bits] = suite.network.subnet.split('/');
      const prefix = net!.split('.').slice(0, Number(bits) / 8).join('.') + '.';
      return {
        state: status.state,
        handlerRecorded: status.runtimeHandler === pod.handler,
        ipInSubnet: status.network?.ip.startsWith(prefix) ?? false,
        namespaces: status.linux?.namespaces?.options,
        sandboxProcess: readFileSync(`/proc/${info.pid}/cmdline`, 'utf8').split('\0').filter(Boolean),
        // what the README tells users to look at: the runtime type containerd runs the pod with
        runtimeType: info.runtimeType === HANDLERS[pod.handler as Handler] ? "the handler's" : info.runtimeType,
        listed,
      };
    }, (r) => {
      assert.equal(r.state, 'SANDBOX_READY');
      assert.ok(r.ipInSubnet, 'the pod has an address of the test network');
      assert.deepEqual(r.sandboxProcess, ['/catatonit', '-P']);
      assert.equal(r.runtimeType, "the handler's");
      assert.deepEqual(r.listed, [{ state: 'SANDBOX_READY', handler: true }]);
    });
  });

  test('ContainerStatus after exit: exit code, reason Completed / Error, timestamps in order; the CRI log of both streams', async () => {
    const times: string[] = [];
    await differential(async (pod) => {
      const runs = await Promise.all([
        pod.start('ok', { command: ['sh', '-c', 'echo hello; echo to-stderr >&2; exit 0'] }),
        pod.start('fail', { command: ['sh', '-c', 'echo bye; printf "no newline" >&2; exit 3'] }),
      ]);
      try {
        const out = [];
        for (const id of runs) {
          const s = await pod.waitState(id, 'CONTAINER_EXITED');
          times.push(`${pod.handler} ${s.metadata.name}: ${s.createdAt} ${s.startedAt} ${s.finishedAt}`);
          out.push({
            name: s.metadata.name,
            exitCode: s.exitCode,
            reason: s.reason,
            message: s.message,
            // containerd stamps startedAt when the task's start returns, finishedAt is the exit's time from the shim:
            // a quick exit can come first
            timesInOrder: s.createdAt > 0 && s.createdAt <= s.startedAt && s.createdAt <= s.finishedAt && s.finishedAt > s.startedAt - 1e9,
            logPath: s.logPath.slice(pod.logDir.length),
            log: pod.log(id).map((l) => `${l.stream} ${l.tag} ${l.text}`).sort(),
          });
        }
        return out;
      } finally {
        await cleanup(pod, runs);
      }
    }, (r) => {
      assert.deepEqual(r.map((x) => [x.exitCode, x.reason, x.timesInOrder]), [[0, 'Completed', true], [3, 'Error', true]], times.join('; '));
      assert.deepEqual(r[0]!.log, ['stderr F to-stderr', 'stdout F hello']);
      assert.ok(r[1]!.log.includes('stdout F bye'), r[1]!.log.join('; '));
    });
  });

  test('StopContainer: a container that handles SIGTERM exits in time; one that ignores it is killed after the timeout', async () => {
    await differential(async (pod) => {
      const handles = await pod.start('handles-term', { command: ['sh', '-c', "trap 'echo got TERM; exit 0' TERM; echo ready; while :; do sleep 0.1; done"] });
      const ignores = await pod.start('ignores-term', { command: ['sh', '-c', "trap '' TERM; echo ready; while :; do sleep 0.1; done"] });
      try {
        await pod.waitLog(handles, /^ready$/);
        await pod.waitLog(ignores, /^ready$/);
        const stop = async (id: string, timeout: number) => {
          const t0 = Date.now();
          await pod.cri.stopContainer(id, timeout);
          const took = Date.now() - t0;
          const s = await pod.cri.containerStatus(id);
          return { state: s.state, exitCode: s.exitCode, reason: s.reason, took, log: pod.logText(id) };
        };
        const h = await stop(handles, 20);
        const i = await stop(ignores, 2);
        return {
          handles: { ...h, took: h.took < 10_000 ? 'before the timeout' : `${h.took} ms` },
          ignores: { ...i, took: i.took >= 1900 ? 'the timeout or more' : `${i.took} ms` },
        };
      } finally {
        await cleanup(pod, [handles, ignores]);
      }
    }, (r) => {
      assert.deepEqual(r.handles, { state: 'CONTAINER_EXITED', exitCode: 0, reason: 'Completed', took: 'before the timeout', log: ['ready', 'got TERM'] });
      assert.deepEqual(r.ignores, { state: 'CONTAINER_EXITED', exitCode: 137, reason: 'Error', took: 'the timeout or more', log: ['ready'] });
    });
  });

  test('a container with a terminal: its output in the log, its exit reported, its pod removed', async () => {
    // a pod of its own: a container that never gets to EXITED would keep its pod from stopping
    await differential(async (_shared, h) => {
      const pod = await suite.runPod(handlerOf(h), { name: `cri-tty-${h}` });
      const id = await pod.start('tty', { tty: true, command: ['sh', '-c', 'echo on-the-tty; exit 4'] });
      const s = await pod.waitState(id, 'CONTAINER_EXITED');
      const r = { exitCode: s.exitCode, reason: s.reason, log: pod.log(id).map((l) => `${l.stream} ${l.tag} ${l.text.replace(/\r$/, '')}`) };
      await pod.remove();
      return r;
    }, (r) => assert.deepEqual(r, { exitCode: 4, reason: 'Error', log: ['stdout F on-the-tty'] }));
  });

  test('ExecSync: output, exit code, a missing binary, and the timeout', async () => {
    await differential(async (pod) => {
      const id = await pod.start('exec', { command: ['sh', '-c', 'echo ready; exec sleep 100000'] });
      try {
        await pod.waitLog(id, /^ready$/);
        const r = await pod.cri.execSync(id, ['sh', '-c', 'echo out; echo err >&2; exit 5']);
        const big = await pod.cri.execSync(id, ['sh', '-c', 'head -c 300000 /dev/zero | tr "\\0" y']);
        const missing = await pod.cri.execSync(id, ['/no/such/binary']).then((x) => `exit ${x.exitCode}`,
          (e: unknown) => (e instanceof CriError ? `code ${e.code}` : Promise.reject(e)));
        const t0 = Date.now();
        const timedOut = await outcome(pod.cri.execSync(id, ['sleep', '30'], 1));
        const took = Date.now() - t0;
        // the container lives on after all of it
        const after = await pod.cri.execSync(id, ['echo', 'still here']);
        return {
          stdout: r.stdout.toString(),
          stderr: r.stderr.toString(),
          exitCode: r.exitCode,
          bigBytes: big.stdout.length,
          missing,
          timedOut,
          timeoutTook: took < 10_000 ? 'about the timeout' : `${took} ms`,
          after: after.stdout.toString(),
          state: (await pod.cri.containerStatus(id)).state,
        };
      } finally {
        await cleanup(pod, [id]);
      }
    }, (r) => {
      assert.deepEqual([r.stdout, r.stderr, r.exitCode, r.bigBytes], ['out\n', 'err\n', 5, 300000]);
      assert.equal(r.timeoutTook, 'about the timeout');
      assert.equal(r.after, 'still here\n');
      assert.equal(r.state, 'CONTAINER_RUNNING');
    });
  });

  test('logs: the CRI format, and ReopenContainerLog after the file was rotated away', async () => {
    await differential(async (pod) => {
      const id = await pod.start('logger', { command: ['sh', '-c', 'i=0; while :; do i=$((i+1)); echo "line $i"; sleep 0.05; done'] });
      try {
        const path = pod.containers.get(id)!.logPath;
        await pod.waitLog(id, /^line 3$/);
        renameSync(path, `${path}.1`);
        await pod.cri.reopenContainerLog(id);
        // lines keep coming into the new file
        await waitFor(() => pod.logText(id).length >= 3, WAIT_MS, { what: 'lines in the reopened log' });
        await pod.cri.stopContainer(id, 0);
        const old = pod.logText(id, 'stdout', `${path}.1`);
        const now = pod.logText(id, 'stdout');
        const numbers = [...old, ...now].map((l) => Number(/^line (\d+)$/.exec(l)?.[1] ?? NaN));
        const reopenStopped = await outcome(pod.cri.reopenContainerLog(id));
        return {
          format: [...pod.log(id, `${path}.1`), ...pod.log(id)].every((l) => l.stream === 'stdout' && l.tag === 'F' && !Number.isNaN(Date.parse(l.time))),
          // every line once, in order, across the two files (the stop may cut the last one)
          consecutive: numbers.every((n, i) => n === i + 1),
          bothFilesHaveLines: old.length >= 3 && now.length >= 3,
          reopenStopped,
        };
      } finally {
        await cleanup(pod, [id]);
      }
    }, (r) => assert.deepEqual(r, { format: true, consecutive: true, bothFilesHaveLines: true, reopenStopped: 'code 2' }));
  });

  test('ContainerStats, ListContainerStats, PodSandboxStats of a running container', async () => {
    await differential(async (pod) => {
      // some CPU time and a few MB of memory, then idle
      const id = await pod.start('busy', { command: ['sh', '-c', 'i=0; while [ $i -lt 50000 ]; do i=$((i+1)); done; head -c 8000000 /dev/zero > /dev/shm/fill; echo ready; exec sleep 100000'] });
      try {
        await pod.waitLog(id, /^ready$/);
        const shape = (s: ContainerStats | undefined) => s && {
          id: s.attributes?.id === id,
          name: s.attributes?.metadata?.name,
          cpu: present(s.cpu?.usageCoreNanoSeconds),
          memoryWorkingSet: present(s.memory?.workingSetBytes),
          memoryUsage: present(s.memory?.usageBytes),
          memoryRss: present(s.memory?.rssBytes),
          writableLayer: s.writableLayer ? 'present' : 'absent',
        };
        const one = await pod.cri.containerStats(id);
        const list = (await pod.cri.listContainerStats({ podSandboxId: pod.id })).filter((x) => x.attributes?.id === id);
        const podStats = await pod.cri.podSandboxStats(pod.id);
        const linux = podStats.linux;
        return {
          one: shape(one),
          workingSetOver8MB: (one.memory?.workingSetBytes?.value ?? 0) > 8_000_000,
          listed: list.map(shape),
          pod: {
            id: podStats.attributes?.id === pod.id,
            cpu: present(linux?.cpu?.usageCoreNanoSeconds),
            memory: present(linux?.memory?.workingSetBytes),
            network: linux?.network?.defaultInterface?.name ?? 'absent',
            processes: present(linux?.process?.processCount),
            containers: linux?.containers.filter((x) => x.attributes?.id === id).map(shape),
          },
        };
      } finally {
        await cleanup(pod, [id]);
      }
    }, (r) => {
      assert.deepEqual(r.one, { id: true, name: 'busy', cpu: '>0', memoryWorkingSet: '>0', memoryUsage: '>0', memoryRss: '>0', writableLayer: 'present' });
      assert.ok(r.workingSetOver8MB, 'the 8 MB in /dev/shm count');
      assert.deepEqual(r.listed, [r.one]);
      assert.equal(r.pod.cpu, '>0');
    });
  });

  test('UpdateContainerResources: the kernel limits of the container change', async () => {
    const MiB = 1024 * 1024;
    await differential(async (pod) => {
      const id = await pod.start('resized', {
        command: ['sh', '-c', 'echo ready; exec sleep 100000'],
        linux: { resources: { memoryLimitInBytes: 64 * MiB, cpuPeriod: 100000, cpuQuota: 20000, cpuShares: 256 } },
      });
      try {
        await pod.waitLog(id, /^ready$/);
        const pid = await pod.pid(id);
        const read = () => ({
          memory: Number(cgroupFile(pid, 'memory', 'memory.limit_in_bytes')) / MiB,
          quota: Number(cgroupFile(pid, 'cpu', 'cpu.cfs_quota_us')),
          period: Number(cgroupFile(pid, 'cpu', 'cpu.cfs_period_us')),
          shares: Number(cgroupFile(pid, 'cpu', 'cpu.shares')),
        });
        const before = read();
        await pod.cri.updateContainerResources(id, { memoryLimitInBytes: 96 * MiB, cpuPeriod: 100000, cpuQuota: 50000, cpuShares: 512 });
        const after = read();
        const reported = (await pod.cri.containerStatus(id)).resources?.linux;
        return {
          before,
          after,
          reported: reported ? { memory: reported.memoryLimitInBytes / MiB, quota: reported.cpuQuota, shares: reported.cpuShares } : 'absent',
        };
      } finally {
        await cleanup(pod, [id]);
      }
    }, (r) => {
      assert.deepEqual(r.before, { memory: 64, quota: 20000, period: 100000, shares: 256 });
      assert.deepEqual(r.after, { memory: 96, quota: 50000, period: 100000, shares: 512 });
    });
  });

  test('security: run-as user and group, read-only rootfs, capabilities, no_new_privs, seccomp RuntimeDefault and Localhost; pod sysctls', async () => {
    const profiles = join(suite.dir, 'seccomp');
    mkdirSync(profiles, { recursive: true });
    const denyMkdir = join(profiles, 'deny-mkdir.json');
    writeFileSync(denyMkdir, JSON.stringify({
      defaultAction: 'SCMP_ACT_ALLOW',
      architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'],
      syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO' }],
    }));
    const status = "grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp):' /proc/self/status";
    await differential(async (pod) => {
      const cases = {
        user: { command: ['sh', '-c', 'id -u; id -g; id -G'], linux: { securityContext: { runAsUser: { value: 1234 }, runAsGroup: { value: 5678 }, supplementalGroups: [4242] } } },
        readonly: { command: ['sh', '-c', 'touch /x 2>/dev/null; echo root=$?; touch /dev/shm/x; echo shm=$?'], linux: { securityContext: { readonlyRootfs: true } } },
        caps: { command: ['sh', '-c', status], linux: { securityContext: { capabilities: { dropCapabilities: ['ALL'], addCapabilities: ['NET_BIND_SERVICE', 'CHOWN'] }, noNewPrivs: true } } },
        defaults: { command: ['sh', '-c', status] },
        seccompDefault: { command: ['sh', '-c', `${status}; unshare -U true 2>/dev/null; echo unshare=$?`], linux: { securityContext: { seccomp: { profileType: 'RuntimeDefault' as const } } } },
        seccompLocal: { command: ['sh', '-c', `grep Seccomp: /proc/self/status; mkdir /tmp/d 2>&1; echo mkdir=$?; touch /tmp/f; echo touch=$?`], linux: { securityContext: { seccomp: { profileType: 'Localhost' as const, localhostRef: denyMkdir } } } },
        sysctls: { command: ['sh', '-c', 'cat /proc/sys/kernel/shm_rmid_forced /proc/sys/net/core/somaxconn'] },
      };
      const ids: Record<string, string> = {};
      try {
        for (const [name, cfg] of Object.entries(cases)) ids[name] = await pod.start(name, cfg);
        const out: Record<string, { exitCode: number; reason: string; stdout: string[] }> = {};
        for (const [name, id] of Object.entries(ids)) {
          const s = await pod.waitState(id, 'CONTAINER_EXITED');
          out[name] = { exitCode: s.exitCode, reason: s.reason, stdout: pod.logText(id, 'stdout') };
        }
        return out;
      } finally {
        await cleanup(pod, Object.values(ids));
      }
    }, (r) => {
      assert.deepEqual(r.user!.stdout, ['1234', '5678', '5678 4242']);
      assert.deepEqual(r.readonly!.stdout, ['root=1', 'shm=0']);
      // NET_BIND_SERVICE (10) and CHOWN (0)
      assert.ok(r.caps!.stdout.includes('CapEff:\t0000000000000401'), r.caps!.stdout.join('; '));
      assert.ok(r.caps!.stdout.includes('NoNewPrivs:\t1'), r.caps!.stdout.join('; '));
      assert.ok(r.seccompDefault!.stdout.includes('Seccomp:\t2'), r.seccompDefault!.stdout.join('; '));
      assert.deepEqual(r.seccompLocal!.stdout, ['Seccomp:\t2', "mkdir: can't create directory '/tmp/d': Operation not permitted", 'mkdir=1', 'touch=0']);
      assert.deepEqual(r.sysctls!.stdout, ['1', '777']);
    });
  });

  test('a container over its memory limit is OOM-killed: exit 137, reason OOMKilled', async () => {
    const MiB = 1024 * 1024;
    await differential(async (pod) => {
      const id = await pod.start('oom', {
        // dd's 64 MiB block buffer does not fit under the 24 MiB limit
        command: ['dd', 'if=/dev/zero', 'of=/dev/null', 'bs=64M', 'count=1'],
        linux: { resources: { memoryLimitInBytes: 24 * MiB, memorySwapLimitInBytes: 24 * MiB } },
      });
      try {
        const s = await pod.waitState(id, 'CONTAINER_EXITED');
        return { exitCode: s.exitCode, reason: s.reason };
      } finally {
        await cleanup(pod, [id]);
      }
    }, (r) => assert.deepEqual(r, { exitCode: 137, reason: 'OOMKilled' }));
  });

  test('a crash-looping container: each restart a new container attempt, as the kubelet does', async () => {
    await differential(async (pod) => {
      const attempts = [];
      let previous = '';
      const shims = new Set<number>();
      try {
        for (let attempt = 0; attempt < 4; attempt++) {
          const r = await pod.runToExit('crash', { attempt, command: ['sh', '-c', 'echo attempt; exit 1'] });
          for (const p of pod.shimPids()) shims.add(p);
          // the kubelet keeps the last dead container and removes the one before it
          if (previous) await pod.cri.removeContainer(previous);
          previous = r.id;
          const listed = (await pod.cri.listContainers({ podSandboxId: pod.id })).filter((c) => c.metadata.name === 'crash');
          attempts.push({
            attempt: r.status.metadata.attempt,
            exitCode: r.status.exitCode,
            reason: r.status.reason,
            log: pod.logText(r.id),
            listed: listed.map((c) => `${c.metadata.attempt} ${c.state}`).sort(),
          });
        }
        return { attempts, shimProcesses: shims.size };
      } finally {
        if (previous) await cleanup(pod, [previous]);
      }
    }, (r) => {
      assert.deepEqual(r.attempts.map((a) => [a.attempt, a.exitCode, a.reason, a.log]), [0, 1, 2, 3].map((n) => [n, 1, 'Error', ['attempt']]));
      assert.deepEqual(r.attempts[3]!.listed, ['3 CONTAINER_EXITED']);
      assert.equal(r.shimProcesses, 1, 'one shim for the pod through every attempt');
    });
  });

  test('StopPodSandbox and RemovePodSandbox: the pod and its containers are gone, nothing of them left behind', async () => {
    await differential(async (pod, h) => {
      // a container still running when the pod stops, as after a node drain
      const id = await pod.start('left-running', { command: ['sh', '-c', 'echo ready; exec sleep 100000'] });
      await pod.waitLog(id, /^ready$/);
      // what the check below looks for is there while the pod runs (so it can see what removal leaves)
      let whileRunning = [...new Set(pod.leftovers().map((l) => l.split(' ')[0]))].sort();
      if (h === 'tsrt-native') {
        // no runtime binary, so no runtime state directory (runc's --root): the one kind it cannot have
        assert.ok(!whileRunning.includes('runtime'), 'the native backend keeps no runc state');
        whileRunning = [...whileRunning, 'runtime'].sort();
      }
      const t0 = Date.now();
      await pod.cri.stopPodSandbox(pod.id);
      const stopTook = Date.now() - t0;
      const afterStop = { pod: (await pod.cri.podSandboxStatus(pod.id)).status.state, container: (await pod.cri.containerStatus(id)).state };
      await pod.cri.removePodSandbox(pod.id);
      pod.removed = true;
      const listed = await pod.cri.listPodSandbox({ id: pod.id });
      const gone = await outcome(pod.cri.containerStatus(id));
      const left = await waitFor(() => (pod.leftovers().length === 0 ? [] : null), WAIT_MS, { what: 'nothing left' }).catch(() => pod.leftovers());
      return { whileRunning, afterStop, stopTook: stopTook < 15_000 ? 'quick' : `${stopTook} ms`, listed: listed.length, containerStatus: gone, left };
    }, (r) => assert.deepEqual(r, { whileRunning: ['cgroup', 'file', 'mount', 'netns', 'runtime', 'shim'], afterStop: { pod: 'SANDBOX_NOTREADY', container: 'CONTAINER_EXITED' }, stopTook: 'quick', listed: 0, containerStatus: 'code 5', left: [] }));
  });
});
