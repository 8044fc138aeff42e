// OCI runtime spec → the plan that tsrt-launch carries out (docs/native-launcher.md is the format).
//
// How the native backend uses this file: at Create it reads `<bundle>/config.json`, makes the container's
// cgroups (src/cgroups/write.ts: resolveCgroupsPath, createCgroup, which also applies linux.resources),
// asks the monitor for a console socket when process.terminal is set, and calls createPlan with the spec,
// those cgroup directories (cgroupJoinDirs) and hierarchies (cgroupMountSources), the bundle's file names
// (errfile, pidfile, exec FIFO) and the container's NoPivotRoot option. It writes the plan's text into the
// bundle, logs the warnings in the container's log, and has the monitor spawn `tsrt-launch create <plan>`.
// Exec is the same with execPlan, the exec's OCI Process and the init's pid. Everything here is pure: the
// few facts of the host a plan depends on (AppArmor, SELinux, the cgroup layout) come in as inputs, so
// the rules are unit-tested without a container (test/unit/native-plan.test.ts).
//
// What the launcher cannot do is refused here with the spec field in the message (UnimplementedError);
// a spec that is wrong is an InvalidArgumentError naming the field. Keys this file does not know are
// refused too (KNOWN_*), so a newer spec cannot have a setting dropped on the way to the launcher.
import path from 'node:path';
import { InvalidArgumentError, UnimplementedError } from '../api/errors.js';
import { filterSteps, type DeviceFilter } from '../../cgroups/devices.js';
import type { CapabilitySet, OciIdMapping, OciMount, OciProcess, OciSpec } from './oci.js';

// ---------------------------------------------------------------------------------------------------
// The plan's text

/** Bytes a field may hold as they are (docs/native-launcher.md, Format); the rest is written %XX. */
const PLAIN = /^[A-Za-z0-9._/=,:@+-]$/;
/** A field of plain bytes only, written as it is: most are (paths, names, numbers, syscall names). */
const ALL_PLAIN = /^[A-Za-z0-9._/=,:@+-]+$/;

/** Percent-encodes one field; the empty string is `-`, a field that is just `-` is `%2D`. */
export function encodeField(value: string): string {
  if (value === '') return '-';
  if (value === '-') return '%2D';
  if (ALL_PLAIN.test(value)) return value;
  let out = '';
  for (const byte of Buffer.from(value, 'utf8')) {
    const ch = String.fromCharCode(byte);
    out += byte < 0x80 && PLAIN.test(ch) ? ch : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

type Field = string | number | bigint;

/** The plan being written: one `step field…` line each, fields encoded. */
class PlanText {
  private readonly lines: string[] = ['tsrt-plan 1'];
  readonly warnings: string[] = [];

  step(name: string, ...fields: Field[]): void {
    const encoded = fields.map((f) => {
      const s = String(f);
      // the launcher hands fields to system calls as C strings: a NUL would cut a path short
      if (s.includes('\0')) throw new InvalidArgumentError(`a value of the plan's ${name} step holds a NUL byte`);
      return encodeField(s);
    });
    this.lines.push([name, ...encoded].join(' '));
  }

  text(): string {
    return `${this.lines.join('\n')}\n`;
  }
}

// ---------------------------------------------------------------------------------------------------
// Mount options → mount(2) flags

/** mount(2) flags, <linux/mount.h>. */
export const MS = {
  RDONLY: 0x1, NOSUID: 0x2, NODEV: 0x4, NOEXEC: 0x8, SYNCHRONOUS: 0x10, REMOUNT: 0x20, MANDLOCK: 0x40,
  DIRSYNC: 0x80, NOSYMFOLLOW: 0x100, NOATIME: 0x400, NODIRATIME: 0x800, BIND: 0x1000, MOVE: 0x2000,
  REC: 0x4000, SILENT: 0x8000, UNBINDABLE: 0x20000, PRIVATE: 0x40000, SLAVE: 0x80000, SHARED: 0x100000,
  RELATIME: 0x200000, STRICTATIME: 0x1000000, LAZYTIME: 0x2000000,
} as const;

/** Options that set (`clear: false`) or clear a flag, as mount(8) reads them. */
const FLAG_OPTIONS: Readonly<Record<string, { clear: boolean; flag: number }>> = {
  defaults: { clear: false, flag: 0 },
  ro: { clear: false, flag: MS.RDONLY }, rw: { clear: true, flag: MS.RDONLY },
  nosuid: { clear: false, flag: MS.NOSUID }, suid: { clear: true, flag: MS.NOSUID },
  nodev: { clear: false, flag: MS.NODEV }, dev: { clear: true, flag: MS.NODEV },
  noexec: { clear: false, flag: MS.NOEXEC }, exec: { clear: true, flag: MS.NOEXEC },
  sync: { clear: false, flag: MS.SYNCHRONOUS }, async: { clear: true, flag: MS.SYNCHRONOUS },
  remount: { clear: false, flag: MS.REMOUNT },
  mand: { clear: false, flag: MS.MANDLOCK }, nomand: { clear: true, flag: MS.MANDLOCK },
  dirsync: { clear: false, flag: MS.DIRSYNC },
  nosymfollow: { clear: false, flag: MS.NOSYMFOLLOW }, symfollow: { clear: true, flag: MS.NOSYMFOLLOW },
  noatime: { clear: false, flag: MS.NOATIME }, atime: { clear: true, flag: MS.NOATIME },
  nodiratime: { clear: false, flag: MS.NODIRATIME }, diratime: { clear: true, flag: MS.NODIRATIME },
  bind: { clear: false, flag: MS.BIND }, rbind: { clear: false, flag: MS.BIND | MS.REC },
  silent: { clear: false, flag: MS.SILENT }, loud: { clear: true, flag: MS.SILENT },
  relatime: { clear: false, flag: MS.RELATIME }, norelatime: { clear: true, flag: MS.RELATIME },
  strictatime: { clear: false, flag: MS.STRICTATIME }, nostrictatime: { clear: true, flag: MS.STRICTATIME },
  lazytime: { clear: false, flag: MS.LAZYTIME }, nolazytime: { clear: true, flag: MS.LAZYTIME },
};

/** Propagation options (in a mount's options and in linux.rootfsPropagation). */
export const PROPAGATION: Readonly<Record<string, number>> = {
  private: MS.PRIVATE, rprivate: MS.PRIVATE | MS.REC,
  slave: MS.SLAVE, rslave: MS.SLAVE | MS.REC,
  shared: MS.SHARED, rshared: MS.SHARED | MS.REC,
  unbindable: MS.UNBINDABLE, runbindable: MS.UNBINDABLE | MS.REC,
};

/**
 * Options the launcher cannot carry out. Passed on as data they would reach the file system, which
 * refuses them at best (tmpfs: "unknown option"), so they are refused here with their name.
 */
const UNSUPPORTED_OPTIONS: Readonly<Record<string, string>> = {
  idmap: 'idmapped mounts', ridmap: 'idmapped mounts',
  tmpcopyup: 'copying the directory under a tmpfs into it (a runc extension)',
};

export interface MountOptions {
  flags: number;
  /** Options that are not flags, comma-joined in their order (the data string), '' for none. */
  data: string;
  /** Propagation changes, in order, each for a `mountprop` step. */
  propagation: number[];
}

/** A mount's options → flags, data and propagation; `field` names the options in errors. */
export function parseMountOptions(options: readonly string[], field = 'options'): MountOptions {
  let flags = 0;
  const data: string[] = [];
  const propagation: number[] = [];
  for (const opt of options) {
    if (typeof opt !== 'string') throw new InvalidArgumentError(`${field}: every option must be a string`);
    const known = Object.hasOwn(FLAG_OPTIONS, opt) ? FLAG_OPTIONS[opt]! : undefined;
    if (known) flags = known.clear ? flags & ~known.flag : flags | known.flag;
    else if (Object.hasOwn(PROPAGATION, opt)) propagation.push(PROPAGATION[opt]!);
    else if (Object.hasOwn(UNSUPPORTED_OPTIONS, opt)) {
      throw new UnimplementedError(`${field}: "${opt}" (${UNSUPPORTED_OPTIONS[opt]}) is not supported by the native backend yet`);
    } else if (opt !== '') data.push(opt);
  }
  return { flags, data: data.join(','), propagation };
}

// ---------------------------------------------------------------------------------------------------
// Capabilities, rlimits, namespaces

/** Capability names by number, <linux/capability.h> (CAP_CHOWN = 0 … CAP_CHECKPOINT_RESTORE = 40). */
export const CAPABILITIES: readonly string[] = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_DAC_READ_SEARCH', 'CAP_FOWNER', 'CAP_FSETID', 'CAP_KILL', 'CAP_SETGID',
  'CAP_SETUID', 'CAP_SETPCAP', 'CAP_LINUX_IMMUTABLE', 'CAP_NET_BIND_SERVICE', 'CAP_NET_BROADCAST', 'CAP_NET_ADMIN',
  'CAP_NET_RAW', 'CAP_IPC_LOCK', 'CAP_IPC_OWNER', 'CAP_SYS_MODULE', 'CAP_SYS_RAWIO', 'CAP_SYS_CHROOT', 'CAP_SYS_PTRACE',
  'CAP_SYS_PACCT', 'CAP_SYS_ADMIN', 'CAP_SYS_BOOT', 'CAP_SYS_NICE', 'CAP_SYS_RESOURCE', 'CAP_SYS_TIME',
  'CAP_SYS_TTY_CONFIG', 'CAP_MKNOD', 'CAP_LEASE', 'CAP_AUDIT_WRITE', 'CAP_AUDIT_CONTROL', 'CAP_SETFCAP',
  'CAP_MAC_OVERRIDE', 'CAP_MAC_ADMIN', 'CAP_SYSLOG', 'CAP_WAKE_ALARM', 'CAP_BLOCK_SUSPEND', 'CAP_AUDIT_READ',
  'CAP_PERFMON', 'CAP_BPF', 'CAP_CHECKPOINT_RESTORE',
];

const CAP_SETS: readonly CapabilitySet[] = ['bounding', 'effective', 'inheritable', 'permitted', 'ambient'];

/** The hex mask of a capability set (bit n = capability n), lower-case, no prefix. */
export function capabilityMask(names: readonly string[], field: string, warnings: string[]): string {
  let mask = 0n;
  for (const name of names) {
    const n = typeof name === 'string' ? CAPABILITIES.indexOf(name.toUpperCase()) : -1;
    // An unknown name is one this kernel table (or the host) does not have. Leaving it out grants less,
    // never more, and runc does the same with a warning.
    if (n < 0) warnings.push(`${field}: unknown capability ${JSON.stringify(name)} ignored`);
    else mask |= 1n << BigInt(n);
  }
  return mask.toString(16);
}

/** RLIMIT_ numbers, <asm-generic/resource.h>. */
export const RLIMITS: Readonly<Record<string, number>> = {
  RLIMIT_CPU: 0, RLIMIT_FSIZE: 1, RLIMIT_DATA: 2, RLIMIT_STACK: 3, RLIMIT_CORE: 4, RLIMIT_RSS: 5, RLIMIT_NPROC: 6,
  RLIMIT_NOFILE: 7, RLIMIT_MEMLOCK: 8, RLIMIT_AS: 9, RLIMIT_LOCKS: 10, RLIMIT_SIGPENDING: 11, RLIMIT_MSGQUEUE: 12,
  RLIMIT_NICE: 13, RLIMIT_RTPRIO: 14, RLIMIT_RTTIME: 15,
};

const U64_MAX = (1n << 64n) - 1n;

/**
 * An rlimit value as the plan writes it. JSON.parse turns 18446744073709551615 (RLIM_INFINITY) into the
 * double 2^64, so every number from 2^64 − 1 up is `inf`; a caller that parsed with bigints passes those.
 */
function rlimitValue(v: unknown, field: string): string {
  if (typeof v === 'bigint') {
    if (v < 0n || v > U64_MAX) throw new InvalidArgumentError(`${field} is out of range`);
    return v === U64_MAX ? 'inf' : v.toString();
  }
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new InvalidArgumentError(`${field} must be an unsigned integer`);
  return v >= 2 ** 64 - 1 ? 'inf' : BigInt(v).toString();
}

/** OCI namespace types → the plan's. */
export const NAMESPACE_TYPES: Readonly<Record<string, string>> = {
  pid: 'pid', network: 'net', mount: 'mount', ipc: 'ipc', uts: 'uts', user: 'user', cgroup: 'cgroup', time: 'time',
};

interface Namespace { type: string; path: string }

function namespacesOf(spec: OciSpec): Namespace[] {
  const out: Namespace[] = [];
  const seen = new Set<string>();
  (spec.linux?.namespaces ?? []).forEach((ns, i) => {
    const field = `linux.namespaces[${i}]`;
    const type = typeof ns?.type === 'string' && Object.hasOwn(NAMESPACE_TYPES, ns.type) ? NAMESPACE_TYPES[ns.type]! : null;
    if (type === null) throw new InvalidArgumentError(`${field}.type ${JSON.stringify(ns?.type)} is not a namespace type`);
    if (seen.has(type)) throw new InvalidArgumentError(`${field}: namespace ${ns.type} is listed twice`);
    seen.add(type);
    const p = ns.path ?? '';
    if (typeof p !== 'string' || (p !== '' && !path.posix.isAbsolute(p))) throw new InvalidArgumentError(`${field}.path must be an absolute path`);
    // a new time namespace needs clone3 or unshare, which the launcher does not do yet (the legacy clone
    // flag would be taken for the exit signal)
    if (type === 'time' && p === '') throw new UnimplementedError(`${field}: a new time namespace is not supported by the native backend yet`);
    out.push({ type, path: p });
  });
  return out;
}

function idMappings(list: OciIdMapping[] | undefined, field: string): Array<[number, number, number]> {
  return (list ?? []).map((m, i) => {
    const f = `${field}[${i}]`;
    return [uint32(m?.containerID, `${f}.containerID`), uint32(m?.hostID, `${f}.hostID`), uint32(m?.size, `${f}.size`)];
  });
}

function uint32(v: unknown, field: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffffffff) {
    throw new InvalidArgumentError(`${field} must be an unsigned 32-bit integer`);
  }
  return v;
}

function int(v: unknown, field: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v)) throw new InvalidArgumentError(`${field} must be an integer`);
  return v;
}

function absolute(p: unknown, field: string): string {
  if (typeof p !== 'string' || p === '') throw new InvalidArgumentError(`${field} must be a non-empty path`);
  // runc takes a relative destination as relative to the container's "/" as well
  return path.posix.resolve('/', p);
}

// ---------------------------------------------------------------------------------------------------
// Refusals by key

function present(v: unknown): boolean {
  return v !== undefined && v !== null;
}

function refuseUnknown(obj: Record<string, unknown>, known: ReadonlySet<string>, prefix: string): void {
  for (const [key, value] of Object.entries(obj)) {
    if (!known.has(key) && present(value)) throw new UnimplementedError(`${prefix}${key} is not supported by the native backend yet`);
  }
}

const KNOWN_TOP = new Set(['ociVersion', 'process', 'root', 'hostname', 'domainname', 'mounts', 'hooks', 'annotations', 'linux']);
const KNOWN_PROCESS = new Set([
  'terminal', 'consoleSize', 'user', 'args', 'env', 'cwd', 'capabilities', 'rlimits', 'noNewPrivileges',
  'apparmorProfile', 'oomScoreAdj', 'selinuxLabel',
]);
const KNOWN_USER = new Set(['uid', 'gid', 'umask', 'additionalGids', 'username']);
const KNOWN_LINUX = new Set([
  'namespaces', 'uidMappings', 'gidMappings', 'devices', 'cgroupsPath', 'resources', 'rootfsPropagation',
  'maskedPaths', 'readonlyPaths', 'mountLabel', 'sysctl', 'seccomp',
]);
const KNOWN_MOUNT = new Set(['destination', 'type', 'source', 'options']);
const KNOWN_ROOT = new Set(['path', 'readonly']);

/** Facts of the host that decide whether a security setting may be ignored. */
export interface PlanHost {
  /** AppArmor is enabled (/sys/module/apparmor/parameters/enabled is "Y"). */
  apparmor: boolean;
  /** SELinux is enabled (/sys/fs/selinux is mounted). */
  selinux: boolean;
  /** The host has /proc/kcore (runc links /dev/core to it only then; kernels without CONFIG_PROC_KCORE lack it). */
  kcore: boolean;
}

/**
 * A label for a security module the host does not run is ignored with a warning, as runc ignores it: the
 * module confines nothing on this host, for runc's containers either, so nothing is weakened. With the
 * module enabled the launcher would have to apply the label, which it cannot yet: refused.
 */
function securityLabel(value: unknown, field: string, enabled: boolean, module: string, warnings: string[]): void {
  if (!present(value) || value === '') return;
  if (enabled) throw new UnimplementedError(`${field} is not supported by the native backend yet`);
  warnings.push(`${field} ${JSON.stringify(value)} ignored: ${module} is not enabled on this host`);
}

function checkProcess(p: OciProcess, prefix: string, host: PlanHost, warnings: string[]): void {
  refuseUnknown(p, KNOWN_PROCESS, prefix);
  if (present(p.user)) refuseUnknown(p.user as Record<string, unknown>, KNOWN_USER, `${prefix}user.`);
  securityLabel(p.apparmorProfile, `${prefix}apparmorProfile`, host.apparmor, 'AppArmor', warnings);
  securityLabel(p.selinuxLabel, `${prefix}selinuxLabel`, host.selinux, 'SELinux', warnings);
}

// ---------------------------------------------------------------------------------------------------
// The process part, common to create and exec

function processSteps(plan: PlanText, p: OciProcess, prefix: string, consoleSocket: string | undefined): void {
  if (p.terminal) {
    if (!consoleSocket) throw new InvalidArgumentError(`${prefix}terminal is set but no console socket was given`);
    plan.step('console', consoleSocket);
  }
  const seen = new Set<number>();
  (p.rlimits ?? []).forEach((r, i) => {
    const f = `${prefix}rlimits[${i}]`;
    const n = typeof r?.type === 'string' && Object.hasOwn(RLIMITS, r.type) ? RLIMITS[r.type]! : undefined;
    if (n === undefined) throw new InvalidArgumentError(`${f}.type ${JSON.stringify(r?.type)} is not an rlimit`);
    if (seen.has(n)) throw new InvalidArgumentError(`${f}: ${r.type} is listed twice`);
    seen.add(n);
    plan.step('rlimit', n, rlimitValue(r.soft, `${f}.soft`), rlimitValue(r.hard, `${f}.hard`));
  });
  const user = p.user ?? {};
  plan.step('groups', ...(user.additionalGids ?? []).map((g, i) => uint32(g, `${prefix}user.additionalGids[${i}]`)));
  plan.step('user', uint32(user.uid ?? 0, `${prefix}user.uid`), uint32(user.gid ?? 0, `${prefix}user.gid`));
  // runc sets 0022 when the spec has no umask, rather than keeping the launcher's
  const umask = user.umask ?? 0o022;
  if (!Number.isInteger(umask) || umask < 0 || umask > 0o777) throw new InvalidArgumentError(`${prefix}user.umask must be a mode (0 to 0777)`);
  plan.step('umask', umask.toString(8).padStart(4, '0'));
  if (typeof p.cwd !== 'string' || !path.posix.isAbsolute(p.cwd)) throw new InvalidArgumentError(`${prefix}cwd must be an absolute path`);
  plan.step('cwd', p.cwd);
  // No capabilities object leaves the process root's full set, as with runc; an object with a set
  // missing makes that set empty.
  if (present(p.capabilities)) {
    for (const set of CAP_SETS) plan.step('caps', set, capabilityMask(p.capabilities![set] ?? [], `${prefix}capabilities.${set}`, plan.warnings));
  }
  if (p.noNewPrivileges) plan.step('nonewprivs');
  (p.env ?? []).forEach((e, i) => {
    if (typeof e !== 'string') throw new InvalidArgumentError(`${prefix}env[${i}] must be a string`);
    plan.step('env', e);
  });
  if (!Array.isArray(p.args) || p.args.length === 0) throw new InvalidArgumentError(`${prefix}args must name the program to run`);
  p.args.forEach((a, i) => {
    if (typeof a !== 'string') throw new InvalidArgumentError(`${prefix}args[${i}] must be a string`);
    plan.step('arg', a);
  });
}

// ---------------------------------------------------------------------------------------------------
// seccomp: `seccomp-default`, `seccomp-arch`, `seccomp-flag` and `seccomp-rule` steps; syscall names stay
// names (the launcher's libseccomp resolves them, skipping with a warning the ones it does not know)

/** OCI action → the plan's action name; SCMP_ACT_KILL is the thread's kill, as in libseccomp. */
export const SECCOMP_ACTIONS: Readonly<Record<string, string>> = {
  SCMP_ACT_KILL: 'kill-thread', SCMP_ACT_KILL_THREAD: 'kill-thread', SCMP_ACT_KILL_PROCESS: 'kill-process',
  SCMP_ACT_TRAP: 'trap', SCMP_ACT_ERRNO: 'errno', SCMP_ACT_TRACE: 'trace', SCMP_ACT_ALLOW: 'allow', SCMP_ACT_LOG: 'log',
};
/** OCI architecture → libseccomp's name for it. */
export const SECCOMP_ARCHES: Readonly<Record<string, string>> = Object.fromEntries(
  ['X86', 'X86_64', 'X32', 'ARM', 'AARCH64', 'MIPS', 'MIPS64', 'MIPS64N32', 'MIPSEL', 'MIPSEL64', 'MIPSEL64N32',
    'PPC', 'PPC64', 'PPC64LE', 'S390', 'S390X', 'PARISC', 'PARISC64', 'RISCV64'].map((a) => [`SCMP_ARCH_${a}`, a.toLowerCase()]));
export const SECCOMP_FLAGS: Readonly<Record<string, string>> = {
  SECCOMP_FILTER_FLAG_TSYNC: 'tsync', SECCOMP_FILTER_FLAG_LOG: 'log', SECCOMP_FILTER_FLAG_SPEC_ALLOW: 'spec-allow',
};
export const SECCOMP_OPS: Readonly<Record<string, string>> = {
  SCMP_CMP_NE: 'ne', SCMP_CMP_LT: 'lt', SCMP_CMP_LE: 'le', SCMP_CMP_EQ: 'eq', SCMP_CMP_GE: 'ge', SCMP_CMP_GT: 'gt',
  SCMP_CMP_MASKED_EQ: 'masked-eq',
};
const KNOWN_SECCOMP = new Set(['defaultAction', 'defaultErrnoRet', 'architectures', 'flags', 'syscalls']);
const KNOWN_SYSCALL = new Set(['names', 'action', 'errnoRet', 'args']);
const KNOWN_ARG = new Set(['index', 'value', 'valueTwo', 'op']);

/** An action and its return value (errno for errno, the tracer's message for trace, else 0). */
function seccompAction(action: unknown, ret: unknown, field: string, retField: string): [string, number] {
  if (action === 'SCMP_ACT_NOTIFY') throw new UnimplementedError(`${field}: SCMP_ACT_NOTIFY is not supported by the native backend yet`);
  if (typeof action !== 'string' || !Object.hasOwn(SECCOMP_ACTIONS, action)) throw new InvalidArgumentError(`${field} ${JSON.stringify(action)} is not a seccomp action`);
  const name = SECCOMP_ACTIONS[action]!;
  if (name !== 'errno' && name !== 'trace') {
    if (present(ret)) throw new InvalidArgumentError(`${retField} is only for SCMP_ACT_ERRNO and SCMP_ACT_TRACE`);
    return [name, 0];
  }
  // runc's default for both is EPERM
  if (!present(ret)) return [name, 1];
  if (!Number.isInteger(ret) || (ret as number) < 0 || (ret as number) > 0xffff) throw new InvalidArgumentError(`${retField} must be a number from 0 to 65535`);
  return [name, ret as number];
}

function uint64(v: unknown, field: string): string {
  const ok = (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) || (typeof v === 'bigint' && v >= 0n && v < 1n << 64n);
  if (!ok) throw new InvalidArgumentError(`${field} must be an unsigned 64-bit number`);
  return String(v);
}

function seccompSteps(plan: PlanText, sc: unknown): void {
  if (!present(sc)) return;
  if (typeof sc !== 'object' || Array.isArray(sc)) throw new InvalidArgumentError('linux.seccomp must be an object');
  const s = sc as Record<string, unknown>;
  for (const key of ['listenerPath', 'listenerMetadata']) {
    if (present(s[key]) && s[key] !== '') throw new UnimplementedError(`linux.seccomp.${key} (SCMP_ACT_NOTIFY) is not supported by the native backend yet`);
  }
  refuseUnknown(s, new Set([...KNOWN_SECCOMP, 'listenerPath', 'listenerMetadata']), 'linux.seccomp.');
  const def = seccompAction(s.defaultAction, s.defaultErrnoRet, 'linux.seccomp.defaultAction', 'linux.seccomp.defaultErrnoRet');
  plan.step('seccomp-default', ...def);
  const list = (v: unknown, field: string): unknown[] => {
    if (!present(v)) return [];
    if (!Array.isArray(v)) throw new InvalidArgumentError(`${field} must be a list`);
    return v;
  };
  list(s.architectures, 'linux.seccomp.architectures').forEach((a, i) => {
    if (typeof a !== 'string' || !Object.hasOwn(SECCOMP_ARCHES, a)) throw new InvalidArgumentError(`linux.seccomp.architectures[${i}] ${JSON.stringify(a)} is not a seccomp architecture`);
    plan.step('seccomp-arch', SECCOMP_ARCHES[a]!);
  });
  list(s.flags, 'linux.seccomp.flags').forEach((f, i) => {
    if (typeof f !== 'string' || !Object.hasOwn(SECCOMP_FLAGS, f)) throw new UnimplementedError(`linux.seccomp.flags[${i}] ${JSON.stringify(f)} is not supported by the native backend yet`);
    plan.step('seccomp-flag', SECCOMP_FLAGS[f]!);
  });
  list(s.syscalls, 'linux.seccomp.syscalls').forEach((c, i) => {
    const f = `linux.seccomp.syscalls[${i}]`;
    if (typeof c !== 'object' || c === null || Array.isArray(c)) throw new InvalidArgumentError(`${f} must be an object`);
    const call = c as Record<string, unknown>;
    refuseUnknown(call, KNOWN_SYSCALL, `${f}.`);
    const [action, ret] = seccompAction(call.action, call.errnoRet, `${f}.action`, `${f}.errnoRet`);
    const names = list(call.names, `${f}.names`);
    if (names.length === 0) throw new InvalidArgumentError(`${f}.names must name at least one syscall`);
    names.forEach((n, j) => {
      if (typeof n !== 'string' || !/^[a-z0-9_]+$/.test(n)) throw new InvalidArgumentError(`${f}.names[${j}] ${JSON.stringify(n)} is not a syscall name`);
    });
    const conds = list(call.args, `${f}.args`).map((a, j) => {
      const af = `${f}.args[${j}]`;
      if (typeof a !== 'object' || a === null || Array.isArray(a)) throw new InvalidArgumentError(`${af} must be an object`);
      const arg = a as Record<string, unknown>;
      refuseUnknown(arg, KNOWN_ARG, `${af}.`);
      if (!Number.isInteger(arg.index) || (arg.index as number) < 0 || (arg.index as number) > 5) throw new InvalidArgumentError(`${af}.index must be from 0 to 5`);
      if (typeof arg.op !== 'string' || !Object.hasOwn(SECCOMP_OPS, arg.op)) throw new InvalidArgumentError(`${af}.op ${JSON.stringify(arg.op)} is not a seccomp comparison`);
      return [arg.index as number, SECCOMP_OPS[arg.op]!, uint64(arg.value ?? 0, `${af}.value`), uint64(arg.valueTwo ?? 0, `${af}.valueTwo`)] as const;
    });
    // libseccomp refuses a rule whose action is the default one; runc leaves those out too
    if (action === def[0] && ret === def[1]) return;
    // Conditions on one argument twice cannot be one rule (libseccomp ANDs a rule's conditions, one per
    // argument): then each condition is a rule of its own, as runc does.
    const indexes = conds.map((c) => c[0]);
    const groups = new Set(indexes).size === indexes.length ? [conds] : conds.map((c) => [c]);
    for (const n of names) for (const g of groups) plan.step('seccomp-rule', action, ret, n as string, ...g.flat());
  });
}

// ---------------------------------------------------------------------------------------------------
// create

/** One cgroup hierarchy as the container sees it under a `type: "cgroup"` mount (v1 and hybrid hosts). */
export interface CgroupMountSource {
  /** The directory under the mount's destination: the host mount point's base name ("memory", "systemd", "unified"). */
  name: string;
  fstype: 'cgroup' | 'cgroup2';
  /** The container's own directory in that hierarchy on the host. */
  hostDir: string;
  /** For a `cgroup` (v1) mount inside a cgroup namespace: its data, the controllers ("cpu", "name=systemd"). */
  options: string;
}

export interface CreatePlanInput {
  spec: OciSpec;
  /** The bundle directory (absolute): a relative root.path and bind sources are taken from it. */
  bundle?: string;
  errfile: string;
  pidfile: string;
  execFifo: string;
  /** The container's host cgroup directories, one `cgroup` step each (createCgroup → cgroupJoinDirs). */
  cgroupDirs: readonly string[];
  /** 2 on a unified host; 1 on a legacy or hybrid one, with cgroupSources its hierarchies. */
  cgroupVersion: 1 | 2;
  cgroupSources?: readonly CgroupMountSource[];
  /** cgroup v2: the device filter createCgroup made of linux.resources.devices, attached to `cgroupDirs[0]`. */
  deviceFilter?: DeviceFilter;
  /** The console socket (ProcessHost.console) when process.terminal is set. */
  consoleSocket?: string;
  /** The NoPivotRoot runtime option. */
  noPivotRoot: boolean;
  /** The session keyring to join (runc's `_ses.<id>`); absent with the NoNewKeyring option. */
  sessionKeyring?: string;
  host: PlanHost;
}

export interface Plan {
  text: string;
  /** What was ignored, for the container's log. */
  warnings: string[];
}

/** The device nodes runc makes in every container whose /dev is not bind-mounted from the host. */
const DEFAULT_DEVICES: ReadonlyArray<readonly [string, number, number]> = [
  ['/dev/null', 1, 3], ['/dev/zero', 1, 5], ['/dev/full', 1, 7], ['/dev/random', 1, 8], ['/dev/urandom', 1, 9], ['/dev/tty', 5, 0],
];

/** Namespace-specific sysctls (runc's rule, so that a container never writes the host's settings). */
function checkSysctl(key: string, types: ReadonlySet<string>): void {
  const ipc = key.startsWith('fs.mqueue.') || ['kernel.msgmax', 'kernel.msgmnb', 'kernel.msgmni', 'kernel.sem', 'kernel.shmall',
    'kernel.shmmax', 'kernel.shmmni', 'kernel.shm_rmid_forced'].includes(key);
  const need = ipc ? 'ipc' : key.startsWith('net.') ? 'net' : key === 'kernel.hostname' || key === 'kernel.domainname' ? 'uts' : null;
  if (need === null) throw new InvalidArgumentError(`linux.sysctl: ${key} is not in a separate kernel namespace`);
  if (!types.has(need)) throw new InvalidArgumentError(`linux.sysctl: ${key} needs a ${need} namespace of the container's own`);
}

/** The plan of a container's init. */
export function createPlan(input: CreatePlanInput): Plan {
  const { spec, host } = input;
  const plan = new PlanText();
  const warnings = plan.warnings;

  if (typeof spec !== 'object' || spec === null) throw new InvalidArgumentError('config.json must hold an object');
  refuseUnknown(spec, KNOWN_TOP, '');
  const linux = spec.linux ?? {};
  refuseUnknown(linux, KNOWN_LINUX, 'linux.');
  if (present(spec.root)) refuseUnknown(spec.root as Record<string, unknown>, KNOWN_ROOT, 'root.');
  for (const [name, list] of Object.entries(spec.hooks ?? {})) {
    // an empty list is what some tools write for "no hooks"
    if (present(list) && (!Array.isArray(list) || list.length > 0)) throw new UnimplementedError(`hooks.${name} is not supported by the native backend yet`);
  }
  if (!present(spec.process)) throw new InvalidArgumentError('process is missing');
  const proc = spec.process!;
  checkProcess(proc, 'process.', host, warnings);
  securityLabel(linux.mountLabel, 'linux.mountLabel', host.selinux, 'SELinux', warnings);

  const namespaces = namespacesOf(spec);
  const types = new Set(namespaces.map((n) => n.type));
  const newUserns = namespaces.some((n) => n.type === 'user' && n.path === '');
  const uidMap = idMappings(linux.uidMappings, 'linux.uidMappings');
  const gidMap = idMappings(linux.gidMappings, 'linux.gidMappings');
  if (newUserns && (uidMap.length === 0 || gidMap.length === 0)) {
    throw new InvalidArgumentError('linux.uidMappings and linux.gidMappings are needed for a new user namespace');
  }
  if (!types.has('user') && (uidMap.length > 0 || gidMap.length > 0)) {
    throw new InvalidArgumentError('linux.uidMappings/gidMappings are given without a user namespace');
  }
  if (!types.has('mount')) throw new InvalidArgumentError('linux.namespaces: the native backend needs a mount namespace of the container\'s own');

  plan.step('errfile', input.errfile);
  plan.step('pidfile', input.pidfile);
  if (input.deviceFilter) {
    if (input.cgroupVersion !== 2 || input.cgroupDirs.length !== 1) throw new InvalidArgumentError('a device filter is for the one cgroup v2 directory of a container');
    for (const st of filterSteps(input.cgroupDirs[0]!, input.deviceFilter)) plan.step(...st);
  }
  for (const dir of input.cgroupDirs) plan.step('cgroup', dir);
  if (input.sessionKeyring) plan.step('keyring', input.sessionKeyring);
  for (const ns of namespaces) plan.step('ns', ns.type, ns.path);
  // The maps are written only for a namespace the launcher makes; a joined one (a CRI pod's) was mapped
  // when it was made, and the spec repeats those maps for information.
  if (newUserns) {
    for (const m of uidMap) plan.step('uidmap', ...m);
    for (const m of gidMap) plan.step('gidmap', ...m);
  }
  if (present(proc.oomScoreAdj)) plan.step('oomscore', int(proc.oomScoreAdj, 'process.oomScoreAdj'));

  let root = spec.root?.path;
  if (typeof root !== 'string' || root === '') throw new InvalidArgumentError('root.path is missing');
  if (!path.posix.isAbsolute(root)) {
    if (!input.bundle) throw new InvalidArgumentError(`root.path ${JSON.stringify(root)} is relative and no bundle was given`);
    root = path.posix.resolve(input.bundle, root);
  }
  plan.step('rootfs', root);

  // runc's default is rslave: mounts the host takes down go away in the container too and are not pinned
  let rootprop = MS.SLAVE | MS.REC;
  if (present(linux.rootfsPropagation) && linux.rootfsPropagation !== '') {
    const p = Object.hasOwn(PROPAGATION, linux.rootfsPropagation!) ? PROPAGATION[linux.rootfsPropagation!] : undefined;
    if (p === undefined) throw new InvalidArgumentError(`linux.rootfsPropagation ${JSON.stringify(linux.rootfsPropagation)} is not a propagation type`);
    rootprop = p;
  }
  plan.step('rootprop', rootprop);

  const mounts = spec.mounts ?? [];
  const props: Array<[string, number]> = [];
  mounts.forEach((m, i) => mountSteps(plan, m, `mounts[${i}]`, input, types, props));

  // runc makes no nodes and links when the host's /dev is bound in: they are the host's then
  const devBound = mounts.some((m) => m.destination && path.posix.resolve('/', m.destination) === '/dev' &&
    (m.type === 'bind' || (m.options ?? []).some((o) => o === 'bind' || o === 'rbind')));
  const specDevices = new Set<string>();
  (linux.devices ?? []).forEach((d, i) => {
    const f = `linux.devices[${i}]`;
    const p = absolute(d?.path, `${f}.path`);
    const kind = d.type === 'u' ? 'c' : d.type;
    if (kind !== 'c' && kind !== 'b' && kind !== 'p') throw new InvalidArgumentError(`${f}.type ${JSON.stringify(d.type)} is not c, b, u or p`);
    const major = kind === 'p' ? (d.major ?? 0) : d.major;
    const minor = kind === 'p' ? (d.minor ?? 0) : d.minor;
    // runc makes a node without fileMode 0666
    const mode = d.fileMode ?? 0o666;
    if (!Number.isInteger(mode) || mode < 0 || mode > 0o7777) throw new InvalidArgumentError(`${f}.fileMode must be a permission mode`);
    specDevices.add(p);
    plan.step('device', p, kind, uint32(major, `${f}.major`), uint32(minor, `${f}.minor`), mode, uint32(d.uid ?? 0, `${f}.uid`), uint32(d.gid ?? 0, `${f}.gid`));
  });
  if (!devBound) {
    for (const [p, major, minor] of DEFAULT_DEVICES) if (!specDevices.has(p)) plan.step('device', p, 'c', major, minor, 0o666, 0, 0);
    plan.step('symlink', '/proc/self/fd', '/dev/fd');
    plan.step('symlink', '/proc/self/fd/0', '/dev/stdin');
    plan.step('symlink', '/proc/self/fd/1', '/dev/stdout');
    plan.step('symlink', '/proc/self/fd/2', '/dev/stderr');
    const mountedAt = (type: string, dest: string) => mounts.some((m) => m.type === type && m.destination && path.posix.resolve('/', m.destination) === dest);
    if (mountedAt('devpts', '/dev/pts')) plan.step('symlink', 'pts/ptmx', '/dev/ptmx');
    if (mountedAt('proc', '/proc') && input.host.kcore) plan.step('symlink', '/proc/kcore', '/dev/core');
  }
  for (const [dest, flags] of props) plan.step('mountprop', dest, flags);

  plan.step('pivot', input.noPivotRoot ? 0 : 1);
  if (spec.root?.readonly) plan.step('readonlyroot');
  (linux.maskedPaths ?? []).forEach((p, i) => plan.step('mask', absolute(p, `linux.maskedPaths[${i}]`)));
  (linux.readonlyPaths ?? []).forEach((p, i) => plan.step('readonly', absolute(p, `linux.readonlyPaths[${i}]`)));
  for (const [field, value] of [['hostname', spec.hostname], ['domainname', spec.domainname]] as const) {
    if (!present(value) || value === '') continue;
    if (typeof value !== 'string') throw new InvalidArgumentError(`${field} must be a string`);
    if (!types.has('uts')) throw new InvalidArgumentError(`${field} needs a uts namespace of the container's own`);
    plan.step(field, value);
  }
  for (const [key, value] of Object.entries(linux.sysctl ?? {})) {
    checkSysctl(key, types);
    if (typeof value !== 'string') throw new InvalidArgumentError(`linux.sysctl.${key} must be a string`);
    plan.step('sysctl', key, value);
  }
  processSteps(plan, proc, 'process.', input.consoleSocket);
  seccompSteps(plan, linux.seccomp);
  plan.step('execfifo', input.execFifo);
  return { text: plan.text(), warnings };
}

/**
 * One spec mount → `mount` steps, and its propagation options → `props` (emitted after every mount).
 *
 * `type: "cgroup"` is no file system to mount as given. On a v1 (or hybrid) host runc puts a tmpfs at the
 * destination and in it, per hierarchy, the container's own cgroup directory bound read-only from the host
 * (with a cgroup namespace: a fresh mount of that hierarchy, which the namespace roots at the container's
 * cgroup), then remounts the tmpfs read-only when the mount asks for `ro`. That is what the steps below
 * spell out; the hierarchies, and the container's directory in each, come from the backend
 * (cgroupSources), which made them. On a unified host the destination gets a cgroup2 mount, which a
 * cgroup namespace roots at the container's cgroup.
 */
function mountSteps(plan: PlanText, m: OciMount, field: string, input: CreatePlanInput, types: ReadonlySet<string>, props: Array<[string, number]>): void {
  if (typeof m !== 'object' || m === null) throw new InvalidArgumentError(`${field} must be an object`);
  refuseUnknownMountKeys(m, field);
  const dest = absolute(m.destination, `${field}.destination`);
  const opts = parseMountOptions(m.options ?? [], `${field}.options`);
  for (const p of opts.propagation) props.push([dest, p]);
  const type = m.type ?? '';
  if (type === 'cgroup') {
    const flags = opts.flags & ~(MS.BIND | MS.REC);
    if (input.cgroupVersion === 2) {
      plan.step('mount', dest, 'cgroup2', 'cgroup2', flags, '');
      return;
    }
    const sources = input.cgroupSources;
    if (!sources) throw new InvalidArgumentError(`${field}: a cgroup mount on a v1 host needs the container's cgroup hierarchies`);
    const tmpfsFlags = MS.NOSUID | MS.NODEV | MS.NOEXEC;
    plan.step('mount', dest, 'tmpfs', 'tmpfs', tmpfsFlags, 'mode=755');
    for (const s of sources) {
      const sub = path.posix.join(dest, s.name);
      if (types.has('cgroup')) plan.step('mount', sub, s.fstype, s.fstype, flags, s.fstype === 'cgroup' ? s.options : '');
      else plan.step('mount', sub, 'bind', s.hostDir, flags | MS.BIND, '');
    }
    if (flags & MS.RDONLY) plan.step('mount', dest, 'tmpfs', 'tmpfs', MS.REMOUNT | MS.RDONLY | tmpfsFlags, 'mode=755');
    return;
  }
  let flags = opts.flags;
  // a `type: "bind"` mount is a bind mount whatever its options say (crun and runc 1.2 alike)
  if (type === 'bind') flags |= MS.BIND;
  let source = m.source ?? '';
  if (typeof source !== 'string') throw new InvalidArgumentError(`${field}.source must be a string`);
  if (flags & MS.BIND) {
    if (source === '') throw new InvalidArgumentError(`${field}.source is missing for a bind mount`);
    if (!path.posix.isAbsolute(source)) {
      if (!input.bundle) throw new InvalidArgumentError(`${field}.source ${JSON.stringify(source)} is relative and no bundle was given`);
      source = path.posix.resolve(input.bundle, source);
    }
  }
  plan.step('mount', dest, type, source, flags, opts.data);
}

function refuseUnknownMountKeys(m: OciMount, field: string): void {
  for (const key of ['uidMappings', 'gidMappings'] as const) {
    const v = m[key];
    if (present(v) && (!Array.isArray(v) || v.length > 0)) throw new UnimplementedError(`${field}.${key} (idmapped mounts) is not supported by the native backend yet`);
  }
  for (const [key, value] of Object.entries(m)) {
    if (!KNOWN_MOUNT.has(key) && key !== 'uidMappings' && key !== 'gidMappings' && present(value)) {
      throw new UnimplementedError(`${field}.${key} is not supported by the native backend yet`);
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// exec

export interface ExecPlanInput {
  /** The container's spec (its namespaces are the ones the exec enters). */
  spec: OciSpec;
  /** The exec's process (ExecRequest's OCI Process). */
  process: OciProcess;
  /** The init's host pid: the exec joins /proc/<pid>/ns/<type> for every namespace the spec lists. */
  initPid: number;
  errfile: string;
  pidfile: string;
  /** The container's host cgroup directories (the exec joins them, like the init). */
  cgroupDirs: readonly string[];
  consoleSocket?: string;
  /** The init's session keyring, which the exec joins too (absent with NoNewKeyring). */
  sessionKeyring?: string;
  host: PlanHost;
}

/** The namespaces an exec joins: the init's, whether it made them or joined them. */
function joinSteps(plan: PlanText, spec: OciSpec, initPid: number): void {
  if (!Number.isInteger(initPid) || initPid <= 0) throw new InvalidArgumentError(`init pid ${initPid} is not a pid`);
  // /proc/<pid>/ns names the mount namespace `mnt`
  for (const ns of namespacesOf(spec)) plan.step('ns', ns.type, `/proc/${initPid}/ns/${ns.type === 'mount' ? 'mnt' : ns.type}`);
}

/** The process steps of an exec: what the launcher and the exec server's child both apply. */
function execProcessSteps(plan: PlanText, input: Omit<ExecPlanInput, 'errfile' | 'pidfile' | 'cgroupDirs' | 'initPid'>): void {
  if (input.sessionKeyring) plan.step('keyring', input.sessionKeyring);
  if (present(input.process.oomScoreAdj)) plan.step('oomscore', int(input.process.oomScoreAdj, 'process.oomScoreAdj'));
  processSteps(plan, input.process, 'process.', input.consoleSocket);
  // an exec'd process gets the container's filter, as with runc
  seccompSteps(plan, input.spec.linux?.seccomp);
}

function checkedProcess(input: { process: OciProcess; host: PlanHost }, plan: PlanText): void {
  if (typeof input.process !== 'object' || input.process === null) throw new InvalidArgumentError('process is missing');
  checkProcess(input.process, 'process.', input.host, plan.warnings);
}

/** The plan of a process started in a running container. */
export function execPlan(input: ExecPlanInput): Plan {
  const plan = new PlanText();
  if (!Number.isInteger(input.initPid) || input.initPid <= 0) throw new InvalidArgumentError(`init pid ${input.initPid} is not a pid`);
  checkedProcess(input, plan);
  plan.step('errfile', input.errfile);
  plan.step('pidfile', input.pidfile);
  for (const dir of input.cgroupDirs) plan.step('cgroup', dir);
  joinSteps(plan, input.spec, input.initPid);
  execProcessSteps(plan, input);
  return { text: plan.text(), warnings: plan.warnings };
}

/**
 * The request of one exec to the container's exec server (`tsrt-launch serve`): the exec plan's process
 * steps only, since the server has joined the namespaces and holds the cgroups, and answers in place of
 * the errfile and the pidfile.
 */
export function servedExecPlan(input: Omit<ExecPlanInput, 'errfile' | 'pidfile' | 'cgroupDirs' | 'initPid' | 'consoleSocket'>): Plan {
  const plan = new PlanText();
  checkedProcess(input, plan);
  execProcessSteps(plan, input);
  return { text: plan.text(), warnings: plan.warnings };
}

/** The plan of the container's exec server: its errfile, the cgroups its children go into, the namespaces it joins. */
export function servePlan(input: { spec: OciSpec; initPid: number; errfile: string; cgroupDirs: readonly string[] }): Plan {
  const plan = new PlanText();
  plan.step('errfile', input.errfile);
  for (const dir of input.cgroupDirs) plan.step('cgroup', dir);
  joinSteps(plan, input.spec, input.initPid);
  return { text: plan.text(), warnings: plan.warnings };
}
