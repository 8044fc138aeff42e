// `npm run demo`: a container started by a real containerd 1.6 through containerd-shim-tsrt-v2, with no
// system setup. Starts a private containerd (temp dir, own sockets), imports a busybox image built from
// busybox-static, runs one container with --runtime io.containerd.tsrt.v2, and tears everything down.
import { TSRT_V2, buildBusyboxImage, startContainerd, uniqueId } from '../test/integration/harness.js';

const c = await startContainerd();
let code = 1;
try {
  const image = await buildBusyboxImage(c);
  const args = ['run', '--rm', '--runtime', TSRT_V2, image, uniqueId('demo'), 'sh', '-c', 'echo "hello from tsrt: $(uname -s) pid $$"'];
  process.stdout.write(`$ ctr ${args.join(" ")}\n`);
  const r = await c.ctr(args, { timeoutMs: 30_000 });
  process.stdout.write(r.stdout);
  process.stderr.write(r.stderr);
  code = r.code ?? 1;
} finally {
  await c.stop();
}
process.exit(code);
