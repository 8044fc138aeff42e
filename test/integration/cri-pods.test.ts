// Kubernetes CRI, differential, pod-level options: a shared-PID pod (shareProcessNamespace), a pod in the host's
// network and PID namespaces (hostNetwork, hostPID), and one shim per pod. Each scenario runs with handler `runc`
// (io.containerd.runc.v2, the oracle), `tsrt` and `tsrt-native` (lib/cri-harness.ts); what the kubelet would see is normalised and must be equal,
// and the runc half is checked against what the scenario means. See cri.test.ts for the container scenarios.
//
// When a container's init exits, runc-v2 kills the rest of the container's processes if the container has no PID
// namespace of its own (hostPID, or joined by path as in a shared-PID pod) before it reports the exit; containerd
// 2.x waits for the container's output pipes to close before the container is EXITED, so a process left alive
// holding them would keep it from ever getting there (and StopPodSandbox from finishing).

import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { hostname } from 'node:os';
import { after, before, describe, test } from 'node:test';
import { WAIT_MS, waitFor } from './harness.js';
import { HANDLERS, HANDLER_NAMES, criForFile, sameAsRunc, type Handler, type Pod } from './lib/cri-harness.js';
import { readCmdline, readStat } from './lib/procfs.js';

const suite = criForFile({ before, after });
const SELFTEST = process.env.TSRT_CRI_SELFTEST === '1';

/** Run `fn` in a new pod of each handler (runc first); check the runc result with `expect`, then tsrt's must equal it. */
async function differential<T>(pod: Parameters<typeof suite.runPod>[1], fn: (pod: Pod, h: Handler) => Promise<T>, expect: (runc: T) => void): Promise<void> {
  const out = {} as Record<Handler, T>;
  for (const h of HANDLER_NAMES) {
    const p = await suite.runPod(SELFTEST ? 'runc' : h, { ...pod, name: `${pod.name}-${h}` });
    out[h] = await fn(p, h);
  }
  expect(out.runc);
  sameAsRunc(out);
}

/** Live processes whose argv is exactly `argv` and that are in a cgroup whose path contains `id`. */
function processesOf(id: string, argv: string[]): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    const pid = Number(e);
    if (!Number.isInteger(pid)) continue;
    if (readCmdline(pid).join(' ') !== argv.join(' ')) continue;
    try {
      if (readFileSync(`/proc/${pid}/cgroup`, 'utf8').includes(id)) out.push(pid);
    } catch {
      /* gone */
    }
  }
  return out;
}

/** Stop a running container (timeout 0, i.e. SIGKILL at once) and the pod, then remove it: times and what is left. */
async function stopAndRemove(pod: Pod, running: string[]): Promise<{ stopPodSandbox: string; left: string[]; [stop: string]: unknown }> {
  const out: { stopPodSandbox: string; left: string[]; [stop: string]: unknown } = { stopPodSandbox: '', left: [] };
  for (const id of running) {
    const t0 = Date.now();
    await pod.cri.stopContainer(id, 0);
    const took = Date.now() - t0;
    out[`stop ${pod.containers.get(id)?.name}`] = { state: (await pod.cri.containerStatus(id)).state, took: took < 10_000 ? 'quick' : `${took} ms` };
  }
  const t0 = Date.now();
  await pod.cri.stopPodSandbox(pod.id);
  const took = Date.now() - t0;
  out.stopPodSandbox = took < 10_000 ? 'quick' : `${took} ms`;
  await pod.cri.removePodSandbox(pod.id);
  pod.removed = true;
  out.left = await waitFor(() => (pod.leftovers().length === 0 ? [] : null), WAIT_MS, { what: 'nothing left' }).catch(() => pod.leftovers());
  return out;
}

describe('CRI pods: runc vs tsrt (runc and native backends)', { timeout: 900_000 }, () => {
  test('shared PID namespace: containers see each other and the pause process as PID 1; an init\'s exit ends its other processes', async () => {
    await differential({ name: 'shared-pid', namespaceOptions: { pid: 'POD' } }, async (pod) => {
      const sleeper = await pod.start('sleeper', { command: ['sh', '-c', 'echo ready; exec sleep 100001'] });
      await pod.waitLog(sleeper, /^ready$/);
      const looker = await pod.runToExit('looker', {
        command: ['sh', '-c', 'tr "\\0" " " < /proc/1/cmdline; echo; grep -l 100001 /proc/[0-9]*/cmdline >/dev/null && echo sees-sleeper; echo pid=$$'],
      });
      // the init exits at once; its child would sleep on
      const forker = await pod.runToExit('forker', { command: ['sh', '-c', 'sleep 3333 & echo started; exit 0'] });
      const leftAfterExit = processesOf(forker.id, ['sleep', '3333']).length;
      return {
        looker: { exitCode: looker.status.exitCode, log: pod.logText(looker.id).map((l) => l.replace(/^pid=\d+$/, 'pid=N')) },
        forker: { exitCode: forker.status.exitCode, reason: forker.status.reason, log: pod.logText(forker.id), leftAfterExit },
        ...(await stopAndRemove(pod, [sleeper])),
      };
    }, (r) => {
      assert.deepEqual(r.looker, { exitCode: 0, log: ['/catatonit -P ', 'sees-sleeper', 'pid=N'] });
      assert.deepEqual(r.forker, { exitCode: 0, reason: 'Completed', log: ['started'], leftAfterExit: 0 });
      assert.deepEqual(r.left, []);
    });
  });

  test('host network and host PID: the node\'s hostname, interfaces and processes; an init\'s exit ends its other processes', async () => {
    await differential({ name: 'host-ns', namespaceOptions: { network: 'NODE', pid: 'NODE' } }, async (pod) => {
      const script = `hostname; test -d /proc/${process.pid} && echo host-pids; grep -q '${suite.network.bridge}:' /proc/net/dev && echo host-net; echo ready; exec sleep 100002`;
      const id = await pod.start('on-host', { command: ['sh', '-c', script] });
      await pod.waitLog(id, /^ready$/);
      const sandboxNetns = pod.netnsPath;
      const forker = await pod.runToExit('forker', { command: ['sh', '-c', 'sleep 3334 & echo started; exit 0'] });
      const leftAfterExit = processesOf(forker.id, ['sleep', '3334']).length;
      return {
        log: pod.logText(id),
        sandboxNetns,
        forker: { exitCode: forker.status.exitCode, reason: forker.status.reason, leftAfterExit },
        ...(await stopAndRemove(pod, [id])),
      };
    }, (r) => {
      assert.deepEqual(r.log, [hostname(), 'host-pids', 'host-net', 'ready']);
      assert.deepEqual(r.forker, { exitCode: 0, reason: 'Completed', leftAfterExit: 0 });
      assert.deepEqual(r.left, []);
    });
  });

  test('one shim per pod: the pause container and two app containers share one shim, a container\'s removal keeps it, the pod\'s removal ends it', async () => {
    await differential({ name: 'one-shim' }, async (pod) => {
      const c = suite.containerd();
      const a = await pod.start('a', { command: ['sh', '-c', 'echo ready; exec sleep 100003'] });
      const b = await pod.start('b', { command: ['sh', '-c', 'echo ready; exec sleep 100004'] });
      await pod.waitLog(a, /^ready$/);
      await pod.waitLog(b, /^ready$/);
      const shims = pod.shimPids();
      // the shim (runc-v2) or monitor (tsrt) is the subreaper its containers' inits are children of
      const parents = new Set<number>();
      for (const id of [a, b]) parents.add(readStat(await pod.pid(id))?.ppid ?? -1);
      parents.add(readStat((await pod.cri.sandboxInfo(pod.id)).pid)?.ppid ?? -1);
      // containerd 1.x: <bundle>/address, written by the shim's start; 2.x: bootstrap.json, written by containerd
      // from start's reply (and tsrt's start writes address there too)
      const address = (id: string) => {
        const dir = c.bundleDir(id, 'k8s.io');
        if (existsSync(join(dir, 'bootstrap.json'))) return (JSON.parse(readFileSync(join(dir, 'bootstrap.json'), 'utf8')) as { address: string }).address;
        return readFileSync(join(dir, 'address'), 'utf8').trim();
      };
      const addresses = new Set([pod.id, a, b].map(address));
      const runtimeTypes = new Set([String((await pod.cri.sandboxInfo(pod.id)).runtimeType), ...await Promise.all([a, b].map(async (id) => String((await pod.cri.containerInfo(id)).runtimeType)))]);
      await pod.removeContainer(a, 0);
      const afterRemoval = pod.shimPids();
      const bStillServed = (await pod.cri.execSync(b, ['echo', 'served'])).stdout.toString();
      return {
        runtimeType: runtimeTypes.size === 1 && runtimeTypes.has(HANDLERS[pod.handler as Handler]) ? "the handler's" : [...runtimeTypes].join(' '),
        shimsWhileRunning: shims.length,
        initsParent: parents.size === 1 && parents.has(shims[0] ?? 0) ? 'the shim' : [...parents].join(' '),
        addresses: addresses.size,
        addressIsPodSocket: [...addresses][0] === `unix://${pod.shimSocket()}`,
        afterContainerRemoval: afterRemoval.length === 1 && afterRemoval[0] === shims[0] ? 'the same shim' : afterRemoval.join(' '),
        bStillServed,
        ...(await stopAndRemove(pod, [b])),
        shimsAfterPodRemoval: pod.shimPids().length,
      };
    }, (r) => {
      assert.deepEqual(r, {
        runtimeType: "the handler's", shimsWhileRunning: 1, initsParent: 'the shim', addresses: 1, addressIsPodSocket: true, afterContainerRemoval: 'the same shim', bStillServed: 'served\n',
        'stop b': { state: 'CONTAINER_EXITED', took: 'quick' }, stopPodSandbox: 'quick', left: [], shimsAfterPodRemoval: 0,
      });
    });
  });
});
