#!/usr/bin/env node
// Builds the vm backend's guest (docs/vm-guest.md) into native/build/guest/:
//
//   vmlinux          Debian's kernel (the linux-image-amd64 package's current image), uncompressed: QEMU's
//                    microvm boots the ELF directly (PVH), which under TCG saves the seconds the kernel's
//                    own xz decompressor would take
//   initramfs.cpio.gz  /init = tsrt-agent (native/agent, static), /lib/tsrt/tsrt-launch (the native
//                    backend's launcher, a static PIE: it sets containers up inside the guest as it does on
//                    a host), the modules the guest needs (virtio mmio and console, 9p and virtiofs, overlay)
//                    and their dependencies, and /lib/tsrt/modules, the load order (dependencies first)
//   manifest.json    the kernel package, its release, the modules
//
//   node scripts/build-guest.mjs [--agent <path>] [--launcher <path>] [--out <dir>]
//
// The .deb is fetched with `apt-get download` (Debian's archive is reachable here) into a cache below
// /var/tmp/tsrt-test-cache/guest, extracted with dpkg-deb; xz (xz-utils) unpacks the kernel image.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const CACHE = process.env.TSRT_GUEST_CACHE ?? '/var/tmp/tsrt-test-cache/guest';
/** What the guest loads, by module name; their dependencies come along. */
const WANTED = ['virtio_mmio', 'virtio_console', '9pnet_virtio', '9p', 'virtiofs', 'overlay'];

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

const run = (cmd, args, opts = {}) => execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...opts });

/** linux-image-amd64's current kernel package, e.g. linux-image-6.1.0-57-amd64. */
function kernelPackage() {
  const deps = run('apt-cache', ['depends', 'linux-image-amd64']);
  const m = /Depends: (linux-image-[0-9][^\s]*-amd64)\b/.exec(deps);
  if (!m) throw new Error(`cannot tell linux-image-amd64's kernel from apt-cache:\n${deps}`);
  return m[1];
}

/** The package fetched and extracted below the cache (once). Returns the extracted tree. */
function fetchKernel(pkg) {
  const dir = join(CACHE, pkg);
  const tree = join(dir, 'tree');
  if (existsSync(join(tree, '.complete'))) return tree;
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  run('apt-get', ['download', pkg], { cwd: dir });
  const deb = readdirSync(dir).find((f) => f.endsWith('.deb'));
  if (!deb) throw new Error(`apt-get download ${pkg} left no .deb in ${dir}`);
  run('dpkg-deb', ['-x', join(dir, deb), tree]);
  writeFileSync(join(tree, '.complete'), '');
  return tree;
}

/** The ELF kernel inside a bzImage: its payload is xz-compressed (Debian's config); unpack it with xz. */
function vmlinux(vmlinuzPath) {
  const z = readFileSync(vmlinuzPath);
  const magic = Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]);
  const at = z.indexOf(magic);
  if (at < 0) throw new Error(`${vmlinuzPath}: no xz payload (is the kernel compressed another way?)`);
  // xz stops at the end of its stream; what follows the payload in the bzImage makes it complain ("trailing
  // garbage"), with the output complete, so the exit status is not what decides
  const r = spawnSync('xz', ['-dc', '--single-stream'], { input: z.subarray(at), maxBuffer: 512 << 20 });
  const out = r.stdout;
  if (!out || out.length < 4 || out.readUInt32BE(0) !== 0x7f454c46) {
    throw new Error(`xz did not give an ELF kernel (${r.error?.message ?? r.stderr?.toString().trim() ?? 'no output'})`);
  }
  return out;
}

/** Module name → .ko path, for every module of the tree (names use '_' where files may use '-'). */
function moduleIndex(modDir) {
  const index = new Map();
  const walk = (d) => {
    for (const e of readdirSync(d)) {
      const p = join(d, e);
      if (statSync(p).isDirectory()) walk(p);
      else if (e.endsWith('.ko')) index.set(e.slice(0, -3).replace(/-/g, '_'), p);
    }
  };
  walk(join(modDir, 'kernel'));
  return index;
}

const dependsOf = (ko) => {
  const m = /depends=([^\0]*)\0/.exec(readFileSync(ko).toString('latin1'));
  return m && m[1] ? m[1].split(',').filter(Boolean).map((n) => n.replace(/-/g, '_')) : [];
};

/** WANTED and their dependencies, each after what it depends on. */
function loadOrder(index) {
  const order = [];
  const state = new Map();
  const visit = (name, from) => {
    if (state.get(name) === 'done') return;
    if (state.get(name) === 'visiting') throw new Error(`module dependency cycle at ${name}`);
    const ko = index.get(name);
    if (!ko) throw new Error(`module ${name}${from ? ` (needed by ${from})` : ''} is not in the kernel package`);
    state.set(name, 'visiting');
    for (const d of dependsOf(ko)) visit(d, name);
    state.set(name, 'done');
    order.push(name);
  };
  for (const w of WANTED) visit(w);
  return order;
}

/** A cpio "newc" archive of `entries` (directories and regular files), as the kernel unpacks an initramfs. */
function cpio(entries) {
  const parts = [];
  let ino = 1;
  const hex = (n) => n.toString(16).padStart(8, '0');
  const pad4 = (n) => (4 - (n % 4)) % 4;
  const add = (name, mode, data) => {
    const nameBytes = Buffer.from(`${name}\0`);
    const header = `070701${hex(ino++)}${hex(mode)}${hex(0)}${hex(0)}${hex(1)}${hex(0)}${hex(data.length)}` +
      `${hex(0)}${hex(0)}${hex(0)}${hex(0)}${hex(nameBytes.length)}${hex(0)}`;
    parts.push(Buffer.from(header), nameBytes, Buffer.alloc(pad4(110 + nameBytes.length)), data, Buffer.alloc(pad4(data.length)));
  };
  for (const e of entries) add(e.name, e.dir ? 0o040755 : e.mode, e.dir ? Buffer.alloc(0) : e.data);
  add('TRAILER!!!', 0, Buffer.alloc(0));
  return Buffer.concat(parts);
}

function main() {
  const out = resolve(arg('--out', join(ROOT, 'native', 'build', 'guest')));
  const agent = resolve(arg('--agent', join(ROOT, 'native', 'build', 'tsrt-agent')));
  const launcher = resolve(arg('--launcher', join(ROOT, 'native', 'build', 'tsrt-launch')));
  for (const f of [agent, launcher]) if (!existsSync(f)) throw new Error(`${f} is missing: run make -C native first`);
  const pkg = kernelPackage();
  const tree = fetchKernel(pkg);
  const release = pkg.replace(/^linux-image-/, '');
  const modDir = join(tree, 'lib', 'modules', release);
  const order = loadOrder(moduleIndex(modDir));
  const index = moduleIndex(modDir);
  const entries = [
    { name: 'dev', dir: true }, { name: 'proc', dir: true }, { name: 'sys', dir: true }, { name: 'lib', dir: true },
    { name: 'lib/tsrt', dir: true }, { name: 'run', dir: true }, { name: 'tmp', dir: true },
    { name: 'init', mode: 0o100755, data: readFileSync(agent) },
    { name: 'lib/tsrt/tsrt-launch', mode: 0o100755, data: readFileSync(launcher) },
    ...order.map((m) => ({ name: `lib/tsrt/${m}.ko`, mode: 0o100644, data: readFileSync(index.get(m)) })),
    { name: 'lib/tsrt/modules', mode: 0o100644, data: Buffer.from(`${order.join('\n')}\n`) },
  ];
  mkdirSync(out, { recursive: true });
  const cachedVmlinux = join(dirname(tree), 'vmlinux');
  if (!existsSync(cachedVmlinux)) {
    writeFileSync(`${cachedVmlinux}.tmp`, vmlinux(join(tree, 'boot', `vmlinuz-${release}`)));
    renameSync(`${cachedVmlinux}.tmp`, cachedVmlinux);
  }
  writeFileSync(join(out, 'vmlinux'), readFileSync(cachedVmlinux));
  writeFileSync(join(out, 'initramfs.cpio.gz'), gzipSync(cpio(entries), { level: 6 }));
  const manifest = { kernelPackage: pkg, kernelRelease: release, modules: order, agent: 'tsrt-agent' };
  writeFileSync(join(out, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  console.log(`build-guest: ${pkg}, ${order.length} modules -> ${out}`);
}

try {
  main();
} catch (e) {
  console.error(`build-guest: ${e.message}`);
  process.exit(1);
}
