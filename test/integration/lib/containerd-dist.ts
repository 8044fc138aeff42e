// Which containerd the integration tests drive. By default the system's (Debian 12: 1.6). Newer releases
// come from Debian's own archive as .deb packages: fetched with apt under a private sources list, lists
// dir, cache and state (the system's apt and packages stay as they are), unpacked with dpkg-deb into a
// cache directory, and run from there (containerd, ctr and that release's containerd-shim-runc-v2, the
// oracle). TSRT_CONTAINERD_BIN names such a directory for the tests; scripts/containerd-matrix.ts
// fetches the releases CI covers and runs the suites on each.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface ContainerdDist {
  /** the directory holding containerd, ctr and containerd-shim-runc-v2 */
  binDir: string;
  /** `containerd --version`'s version field, e.g. 1.6.20~ds1 or 2.1.9+unknown */
  version: string;
  /** major.minor as numbers, e.g. [2, 1] */
  release: [number, number];
  /** where it came from: "system" or the Debian suite and package version */
  source: string;
}

/** The version of the containerd binary in `binDir`. */
export function describeContainerd(binDir: string, source: string): ContainerdDist {
  const bin = join(binDir, 'containerd');
  const out = execFileSync(bin, ['--version'], { encoding: 'utf8' }).trim();
  // "containerd github.com/containerd/containerd/v2 2.1.9+unknown " / "... 1.7.24~ds1 1.7.24~ds1-6+deb13u1"
  const version = out.split(/\s+/)[2] ?? '';
  const m = /^v?(\d+)\.(\d+)/.exec(version);
  if (!m) throw new Error(`cannot read the version of ${bin}: ${out}`);
  for (const b of ['ctr', 'containerd-shim-runc-v2']) {
    if (!existsSync(join(binDir, b))) throw new Error(`${binDir} has no ${b}`);
  }
  return { binDir, version, release: [Number(m[1]), Number(m[2])], source };
}

/** The containerd the tests use: TSRT_CONTAINERD_BIN if set, else the one on PATH (the system's). */
export function containerdUnderTest(): ContainerdDist {
  const dir = process.env.TSRT_CONTAINERD_BIN;
  if (dir) return describeContainerd(dir, process.env.TSRT_CONTAINERD_SOURCE ?? dir);
  const which = execFileSync('sh', ['-c', 'command -v containerd'], { encoding: 'utf8' }).trim();
  return describeContainerd(which.slice(0, which.lastIndexOf('/')), 'system');
}

export interface DebianFetch {
  /** Debian suite, e.g. trixie or sid */
  suite: string;
  /** an exact package version, or a prefix such as "1.7." or "2." that the newest match must have */
  version?: string;
  /** where packages are unpacked, one directory per package version */
  cacheDir: string;
  /** mirror (default: the one the system's own sources use, else deb.debian.org) */
  mirror?: string;
}

function systemMirror(): string {
  for (const f of ['/etc/apt/sources.list.d/debian.sources', '/etc/apt/sources.list']) {
    try {
      const text = execFileSync('cat', [f], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
      const m = /^URIs:\s*(\S+\/debian)\s*$/m.exec(text) ?? /^deb\s+(?:\[[^\]]*\]\s+)?(\S+\/debian)\s/m.exec(text);
      if (m?.[1]) return m[1];
    } catch {
      /* next */
    }
  }
  return 'http://deb.debian.org/debian';
}

/**
 * Fetch containerd from a Debian suite (cached: a package version already unpacked is not fetched again)
 * and return it. Throws with apt's own words when the suite or version cannot be had.
 */
export function fetchDebianContainerd(f: DebianFetch): ContainerdDist {
  const aptDir = join(f.cacheDir, 'apt', f.suite);
  const lists = join(aptDir, 'lists');
  const cache = join(aptDir, 'cache');
  mkdirSync(join(lists, 'partial'), { recursive: true });
  mkdirSync(join(cache, 'archives', 'partial'), { recursive: true });
  const sources = join(aptDir, 'sources.list');
  writeFileSync(sources, `deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${f.mirror ?? systemMirror()} ${f.suite} main\n`);
  const opts = [
    '-o', `Dir::Etc::sourcelist=${sources}`, '-o', 'Dir::Etc::sourceparts=-',
    '-o', `Dir::State::Lists=${lists}`, '-o', `Dir::Cache=${cache}`,
    '-o', 'APT::Get::List-Cleanup=0', '-o', 'Debug::NoLocking=1', '-q',
  ];
  const apt = (cmd: string, args: string[]): string => {
    try {
      return execFileSync(cmd, [...opts, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], cwd: aptDir, timeout: 600_000 });
    } catch (e) {
      const err = e as { stderr?: string; message: string };
      throw new Error(`${cmd} ${args.join(' ')}: ${(err.stderr ?? '').trim() || err.message}`);
    }
  };
  apt('apt-get', ['update']);
  // "containerd | 2.1.9+ds1-5 | http://... sid/main amd64 Packages", newest first
  const versions = apt('apt-cache', ['madison', 'containerd'])
    .split('\n')
    .map((l) => l.split('|').map((s) => s.trim()))
    .filter((c) => c[0] === 'containerd' && c[2]?.includes(` ${f.suite}/`))
    .map((c) => c[1]!);
  const want = f.version;
  const version = versions.find((v) => !want || v === want || v.startsWith(want));
  if (!version) {
    throw new Error(`Debian ${f.suite} has no containerd ${want ?? ''} (it has: ${versions.join(', ') || 'none'})`);
  }
  const dest = join(f.cacheDir, `containerd-${version}`);
  const binDir = join(dest, 'usr', 'bin');
  if (!existsSync(join(binDir, 'containerd'))) {
    apt('apt-get', ['download', `containerd=${version}`]);
    const deb = readdirSync(aptDir).find((n) => n.startsWith('containerd_') && n.endsWith('.deb'));
    if (!deb) throw new Error(`apt-get download containerd=${version} left no .deb in ${aptDir}`);
    const tmp = `${dest}.partial`;
    rmSync(tmp, { recursive: true, force: true });
    execFileSync('dpkg-deb', ['-x', join(aptDir, deb), tmp]);
    rmSync(join(aptDir, deb), { force: true });
    rmSync(dest, { recursive: true, force: true });
    renameSync(tmp, dest);
  }
  return describeContainerd(binDir, `Debian ${f.suite} ${version}`);
}
