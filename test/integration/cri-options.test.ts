// CRI runtime `options` tables for io.containerd.tsrt.v2, through containerd's real CRI plugin, the way the
// kubelet drives it: a host-network pod (no CNI needed) and one container in it, on runtime handlers
// whose options name a ConfigPath or carry the keys themselves. containerd turns the table into
// runtimeoptions.v1.Options: {config_path} when it names ConfigPath; without ConfigPath, 1.7+ sends the
// table as TOML in config_body and 1.6 sends nothing of it (its runtimeoptions has no such field).
//
// The runtime binary is seen through the logging `runc`/`runc-alt` wrappers of lib/runc-wrapper.ts; containerd
// with CRI, the pause image and the CRI client are lib/cri-harness.ts's (the pods use the host's network).
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DEFAULT_SHIM_DIR } from './harness.js';
import { criForFile } from './lib/cri-harness.js';
import { loggingShimDir } from './lib/runc-wrapper.js';

const wrap = loggingShimDir(DEFAULT_SHIM_DIR);
after(() => wrap.cleanup());
const fileOptions = join(wrap.dir, 'tsrt-file.toml');
writeFileSync(fileOptions, `BinaryName = "${wrap.runcAlt}"\nNoNewKeyring = true\n`);
const suite = criForFile({ before, after }, {
  shimDir: wrap.dir,
  runtimes: {
    'tsrt-file': ['runtime_type = "io.containerd.tsrt.v2"', '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.tsrt-file.options]',
      `  ConfigPath = "${fileOptions}"`],
    'tsrt-table': ['runtime_type = "io.containerd.tsrt.v2"', '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.tsrt-table.options]',
      `  BinaryName = "${wrap.runcAlt}"`, '  NoNewKeyring = true', '  IoUid = 0'],
  },
});

/** Runs `echo <word>` in a new host-network pod on `handler`; returns what the CRI log shows and the ids. */
async function runInPod(handler: string, word: string): Promise<{ logged: string; sandboxId: string; containerId: string }> {
  const pod = await suite.runPod(handler, { name: `cri-${handler}`, namespaceOptions: { network: 'NODE' } });
  try {
    const r = await pod.runToExit('echo', { command: ['echo', word] });
    assert.equal(r.status.exitCode, 0, `${r.status.reason}: ${r.status.message}`);
    // the copy of the output ends before the exit is reported
    return { logged: pod.logText(r.id).join('\n'), sandboxId: pod.id, containerId: r.id };
  } finally {
    await pod.remove();
  }
}

describe('CRI runtime options tables for tsrt', { timeout: 300_000 }, () => {
  before(async () => {
    assert.equal((await suite.cri().version()).runtimeName, 'containerd');
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
