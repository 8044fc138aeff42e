// Builds one-layer OCI image-layout archives: busybox from the host's static busybox, and the CRI tests' pause
// image from Debian's static catatonit.
// Deterministic: the same busybox binary and ref always give the same bytes and digests.

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, realpathSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { makeTar, type TarEntry } from './tar.js';

/** Bump when the image layout produced below changes. */
const BUILDER_VERSION = '1';

export const DEFAULT_PATH_ENV = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

function goArch(): string {
  switch (process.arch) {
    case 'x64':
      return 'amd64';
    case 'ia32':
      return '386';
    default:
      return process.arch; // arm64, arm, ppc64, s390x, riscv64 already match
  }
}

export interface BusyboxImageFile {
  /** path of the OCI image-layout tar */
  path: string;
  ref: string;
  manifestDigest: string;
  configDigest: string;
}

function rootfsEntries(busyboxPath: string): TarEntry[] {
  const bin = readFileSync(busyboxPath);
  const applets = execFileSync(busyboxPath, ['--list-full'], { encoding: 'utf8' })
    .split('\n')
    .map((s) => s.trim().replace(/^\/+/, ''))
    .filter((s) => s.includes('/') && s !== 'bin/busybox');

  const dirs = new Map<string, number>([
    ['bin', 0o755],
    ['sbin', 0o755],
    ['usr', 0o755],
    ['usr/bin', 0o755],
    ['usr/sbin', 0o755],
    ['etc', 0o755],
    ['dev', 0o755],
    ['proc', 0o555],
    ['sys', 0o555],
    ['tmp', 0o1777],
    ['root', 0o700],
    ['home', 0o755],
    ['var', 0o755],
    ['var/tmp', 0o1777],
    ['run', 0o755],
  ]);
  for (const a of applets) {
    const parts = a.split('/');
    for (let i = 1; i < parts.length; i++) {
      const d = parts.slice(0, i).join('/');
      if (!dirs.has(d)) dirs.set(d, 0o755);
    }
  }
  const entries: TarEntry[] = [];
  for (const [path, mode] of [...dirs].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    entries.push({ type: 'dir', path, mode });
  }
  entries.push({ type: 'file', path: 'bin/busybox', data: bin, mode: 0o755 });
  for (const a of [...new Set(applets)].sort()) {
    entries.push({ type: 'symlink', path: a, target: '/bin/busybox' });
  }
  entries.push({
    type: 'file',
    path: 'etc/passwd',
    data: 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n',
  });
  entries.push({ type: 'file', path: 'etc/group', data: 'root:x:0:\nnobody:x:65534:\n' });
  entries.push({ type: 'file', path: 'etc/hostname', data: 'busybox\n' });
  return entries;
}

/**
 * Build (or reuse from `cacheDir`) the OCI image-layout tar for `ref`.
 * The cache file name is derived from the busybox binary's digest, the ref and the builder version.
 */
export function buildBusyboxImageFile(ref: string, cacheDir: string, busyboxPath = '/bin/busybox', cmd: string[] = ['sh']): BusyboxImageFile {
  const real = realpathSync(busyboxPath);
  const cmdKey = cmd.length === 1 && cmd[0] === 'sh' ? '' : `\0${JSON.stringify(cmd)}`;
  const key = sha256(`${BUILDER_VERSION}\0${ref}\0${goArch()}\0${sha256(readFileSync(real))}${cmdKey}`).slice(0, 24);
  return cachedImageFile(cacheDir, `busybox-oci-${key}`, ref, () => rootfsEntries(real), {
    cmd,
    env: [DEFAULT_PATH_ENV],
    history: 'tsrt test harness: busybox-static rootfs',
  });
}

/**
 * The pause image of the CRI tests: Debian's catatonit (a static binary, checked here) as the sandbox's
 * process, `catatonit -P` (pause mode: it sleeps until signalled and, as PID 1 of a shared-PID pod, reaps).
 */
export function buildCatatonitImageFile(ref: string, cacheDir: string, catatonitPath = '/usr/bin/catatonit'): BusyboxImageFile {
  const real = realpathSync(catatonitPath);
  const bin = readFileSync(real);
  // a dynamically linked ELF has a PT_INTERP program header; a static one has none
  if (hasInterpreter(bin)) {
    throw new Error(`${real} is dynamically linked; the pause image expects a static catatonit (Debian's package)`);
  }
  const key = sha256(`${BUILDER_VERSION}\0${ref}\0${goArch()}\0${sha256(bin)}`).slice(0, 24);
  const entries = (): TarEntry[] => [
    ...['dev', 'etc', 'proc', 'sys'].map((path): TarEntry => ({ type: 'dir', path, mode: path === 'proc' || path === 'sys' ? 0o555 : 0o755 })),
    { type: 'file', path: 'catatonit', data: bin, mode: 0o755 },
  ];
  return cachedImageFile(cacheDir, `catatonit-oci-${key}`, ref, entries, {
    cmd: ['/catatonit', '-P'],
    env: [DEFAULT_PATH_ENV],
    history: 'tsrt test harness: catatonit pause image',
  });
}

/** Whether an ELF file has a PT_INTERP program header (is dynamically linked). 64-bit little-endian only. */
function hasInterpreter(elf: Buffer): boolean {
  if (elf.length < 64 || elf.readUInt32BE(0) !== 0x7f454c46) throw new Error('not an ELF file');
  if (elf[4] !== 2 || elf[5] !== 1) throw new Error('not a 64-bit little-endian ELF file');
  const phoff = Number(elf.readBigUInt64LE(0x20));
  const phentsize = elf.readUInt16LE(0x36);
  const phnum = elf.readUInt16LE(0x38);
  for (let i = 0; i < phnum; i++) {
    if (elf.readUInt32LE(phoff + i * phentsize) === 3 /* PT_INTERP */) return true;
  }
  return false;
}

interface ImageConfig {
  cmd: string[];
  env: string[];
  history: string;
}

/** The image-layout tar `<cacheDir>/<name>.tar` (and its `.json` facts), built from `entries` unless cached. */
function cachedImageFile(cacheDir: string, name: string, ref: string, entries: () => TarEntry[], cfg: ImageConfig): BusyboxImageFile {
  mkdirSync(cacheDir, { recursive: true });
  const out = join(cacheDir, `${name}.tar`);
  const meta = join(cacheDir, `${name}.json`);
  if (existsSync(out) && existsSync(meta)) {
    const m = JSON.parse(readFileSync(meta, 'utf8')) as Omit<BusyboxImageFile, 'path'>;
    return { ...m, path: out };
  }

  const layerTar = makeTar(entries());
  const diffId = sha256(layerTar);
  const layer = gzipSync(layerTar, { level: 6 });
  const layerDigest = sha256(layer);

  const config = Buffer.from(
    JSON.stringify({
      architecture: goArch(),
      os: 'linux',
      config: { Env: cfg.env, Cmd: cfg.cmd, WorkingDir: '/' },
      rootfs: { type: 'layers', diff_ids: [`sha256:${diffId}`] },
      history: [{ created_by: cfg.history }],
    }),
  );
  const configDigest = sha256(config);

  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: {
        mediaType: 'application/vnd.oci.image.config.v1+json',
        digest: `sha256:${configDigest}`,
        size: config.length,
      },
      layers: [
        {
          mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
          digest: `sha256:${layerDigest}`,
          size: layer.length,
        },
      ],
    }),
  );
  const manifestDigest = sha256(manifest);

  // containerd's importer takes the full name from io.containerd.image.name; the OCI ref.name
  // annotation conventionally holds only the tag.
  const tag = /:([^/:@]+)$/.exec(ref)?.[1] ?? 'latest';
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          digest: `sha256:${manifestDigest}`,
          size: manifest.length,
          annotations: {
            'io.containerd.image.name': ref,
            'org.opencontainers.image.ref.name': tag,
          },
          platform: { architecture: goArch(), os: 'linux' },
        },
      ],
    }),
  );

  const archive = makeTar([
    { type: 'file', path: 'oci-layout', data: JSON.stringify({ imageLayoutVersion: '1.0.0' }) },
    { type: 'file', path: 'index.json', data: index },
    { type: 'dir', path: 'blobs' },
    { type: 'dir', path: 'blobs/sha256' },
    { type: 'file', path: `blobs/sha256/${configDigest}`, data: config },
    { type: 'file', path: `blobs/sha256/${layerDigest}`, data: layer },
    { type: 'file', path: `blobs/sha256/${manifestDigest}`, data: manifest },
  ]);

  const info = { ref, manifestDigest: `sha256:${manifestDigest}`, configDigest: `sha256:${configDigest}` };
  const tmp = `${out}.${process.pid}.tmp`;
  writeFileSync(tmp, archive);
  renameSync(tmp, out);
  const tmpMeta = `${meta}.${process.pid}.tmp`;
  writeFileSync(tmpMeta, JSON.stringify(info));
  renameSync(tmpMeta, meta);
  return { ...info, path: out };
}
