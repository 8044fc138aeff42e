// CRI runtime `options` tables for io.containerd.tsrt.v2, through containerd's real CRI plugin, the way the
// kubelet drives it: a host-network pod (no CNI needed) and one container in it, on runtime handlers
// whose options name a ConfigPath or carry the keys themselves. containerd turns the table into
// runtimeoptions.v1.Options: {config_path} when it names ConfigPath; without ConfigPath, 1.7+ sends the
// table as TOML in config_body and 1.6 sends nothing of it (its runtimeoptions has no such field).
//
// The runtime binary is seen through the logging `runc`/`runc-alt` wrappers of lib/runc-wrapper.ts; the
// pod sandbox runs a busybox image whose command sleeps (the pause container's role).
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DEFAULT_IMAGE, DEFAULT_SHIM_DIR, WAIT_MS, buildBusyboxImage, containerdForFile, uniqueId, waitFor } from './harness.js';
import { CriClient, type PodSpec } from './lib/cri-client.js';
import { loggingShimDir } from './lib/runc-wrapper.js';

const wrap = loggingShimDir(DEFAULT_SHIM_DIR);
after(() => wrap.cleanup());
const SANDBOX_IMAGE = 'docker.io/tsrt/busybox-sleep:test';
const fileOptions = join(wrap.dir, 'tsrt-file.toml');
writeFileSync(fileOptions, `BinaryName = "${wrap.runcAlt}"\nNoNewKeyring = true\n`);
for (const d of ['cni/bin', 'cni/conf']) mkdirSync(join(wrap.dir, d), { recursive: true });
const CRI = 'plugins."io.containerd.grpc.v1.cri"';
const runtime = (handler: string, options: string[]) => [
  `[${CRI}.containerd.runtimes.${handler}]`,
  '  runtime_type = "io.containerd.tsrt.v2"',
  `  [${CRI}.containerd.runtimes.${handler}.options]`,
  ...options.map((o) => `    ${o}`),
];
const suite = containerdForFile({ before, after }, {
  shimDir: wrap.dir,
  cri: true,
  extraConfig: [
    `[${CRI}]`,
    `  sandbox_image = "${SANDBOX_IMAGE}"`,
    // the sandbox's oom_score_adj -998 needs CAP_SYS_RESOURCE, which test machines may not have
    '  restrict_oom_score_adj = true',
    `  [${CRI}.cni]`,
    `    bin_dir = "${join(wrap.dir, 'cni/bin')}"`,
    `    conf_dir = "${join(wrap.dir, 'cni/conf')}"`,
    // a runtimes table replaces the default one (runc) on 1.6/1.7, so the default must name one of ours
    `[${CRI}.containerd]`,
    '  default_runtime_name = "tsrt-file"',
    ...runtime('tsrt-file', [`ConfigPath = "${fileOptions}"`]),
    ...runtime('tsrt-table', [`BinaryName = "${wrap.runcAlt}"`, 'NoNewKeyring = true', 'IoUid = 0']),
  ].join('\n'),
});

/** Runs `echo <word>` in a new host-network pod on `handler`; returns what the CRI log shows and the ids. */
async function runInPod(handler: string, word: string): Promise<{ logged: string; sandboxId: string; containerId: string }> {
  const c = suite.containerd();
  const cri = new CriClient(c.address);
  const name = uniqueId(`cri-${handler}`);
  const cgroupParent = `/tsrt-cri-${name}`;
  const pod: PodSpec = { name, uid: name, namespace: 'tsrt-cri', logDirectory: join(c.root, 'pods', name), cgroupParent };
  mkdirSync(pod.logDirectory, { recursive: true });
  let sandboxId = '';
  let containerId = '';
  try {
    sandboxId = await cri.runPodSandbox(pod, handler);
    containerId = await cri.createContainer(sandboxId, pod, { name: 'echo', image: DEFAULT_IMAGE, command: ['echo', word], logPath: 'echo.log' });
    await cri.startContainer(containerId);
    const st = await waitFor(async () => { const s = await cri.containerStatus(containerId); return s.state === 2 ? s : null; },
      WAIT_MS, { what: `${containerId} EXITED` });
    assert.equal(st.exitCode, 0, `${st.reason}: ${st.message}`);
    // CRI log lines: "<time> stdout F <text>"; the copy ends before the exit is reported
    const logged = readFileSync(join(pod.logDirectory, 'echo.log'), 'utf8').split('\n').filter(Boolean)
      .map((l) => l.split(' ').slice(3).join(' ')).join('\n');
    return { logged, sandboxId, containerId };
  } finally {
    if (containerId) await cri.removeContainer(containerId).catch(() => undefined);
    if (sandboxId) {
      await cri.stopPodSandbox(sandboxId).catch(() => undefined);
      await cri.removePodSandbox(sandboxId).catch(() => undefined);
    }
    cri.close();
    // runc removes each container's cgroup; the pod's parent is ours to remove
    for (const h of readdirSync('/sys/fs/cgroup')) {
      const d = join('/sys/fs/cgroup', h, cgroupParent);
      if (existsSync(d)) await waitFor(() => { rmdirSync(d); return true; }, WAIT_MS, { what: `rmdir ${d}` }).catch(() => undefined);
    }
  }
}

describe('CRI runtime options tables for tsrt', { timeout: 300_000 }, () => {
  before(async () => {
    const c = suite.containerd();
    await buildBusyboxImage(c, DEFAULT_IMAGE, 'k8s.io');
    await buildBusyboxImage(c, SANDBOX_IMAGE, 'k8s.io', ['sleep', '2147483647']);
    const cri = new CriClient(c.address);
    try {
      assert.equal(await cri.version(), 'containerd');
    } finally {
      cri.close();
    }
  });

  test('options = { ConfigPath = "<file>" }: the file is read for the sandbox and the container', async () => {
    const r = await runInPod('tsrt-file', 'from-file');
    assert.equal(r.logged, 'from-file');
    for (const id of [r.sandboxId, r.containerId]) {
      const argv = wrap.createArgv(id);
      assert.equal(argv[0], 'runc-alt', 'BinaryName from the file');
      assert.ok(argv.includes('--no-new-keyring'), argv.join(' '));
    }
  });

  test('options = { BinaryName = .., NoNewKeyring = .. } without ConfigPath: 1.7+ passes the table (config_body), 1.6 drops it', async () => {
    const c = suite.containerd();
    const r = await runInPod('tsrt-table', 'from-table');
    assert.equal(r.logged, 'from-table');
    const [major, minor] = c.dist.release;
    const body = major > 1 || minor >= 7;
    for (const id of [r.sandboxId, r.containerId]) {
      const argv = wrap.createArgv(id);
      assert.deepEqual([argv[0], argv.includes('--no-new-keyring')], body ? ['runc-alt', true] : ['runc', false], argv.join(' '));
    }
  });
});
