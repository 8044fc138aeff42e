// Runtime options: what containerd passes in CreateTaskRequest.options, turned into one RuntimeConfig.
// For `io.containerd.tsrt.v2` containerd sends runtimeoptions.v1.Options: `config_path` names a TOML file
// (CRI `options.ConfigPath`, `ctr --runtime-config-path`), and from 1.7 on a CRI `options` table without
// ConfigPath arrives as `config_body`, the table itself as TOML. Both take the keys runc-v2 users know
// (containerd.runc.v1.Options by their Go names: BinaryName, Root, SystemdCgroup, NoPivotRoot, NoNewKeyring,
// IoUid, IoGid, ShimCgroup, ...) plus tsrt's own (Backend, PluginDir, MetricsAddress, LogLevel, Transport,
// and [backends.<name>] tables, each backend's own options, which that backend checks).
//
// One document holds options of three scopes, kept apart where they are used:
//   per container (ContainerConfig, what a backend gets): BinaryName, Root, SystemdCgroup, NoPivotRoot,
//     NoNewKeyring, IoUid, IoGid; and, read by the core, Backend, PluginDir, [backends.<name>];
//   per shim (the group's monitor): ShimCgroup, read at the group's first Create; Transport, read by `start`;
//   daemon-wide (DaemonOptions): MetricsAddress, LogLevel: the daemon serves every shim of the host, so the
//     first Create that sets one decides, and a later Create asking for another value gets a warning. runc-v2's own Options type
// (what ctr 2.x sends as task options for --no-pivot and --uidmap) and ctr 1.6's legacy CreateOptions are
// accepted too, so configurations written for runc-v2 keep working.
//
// What runc-v2 does with each runc option, and what tsrt does:
//   NoPivotRoot, NoNewKeyring   `runc create --no-pivot / --no-new-keyring`: the same.
//   SystemdCgroup, BinaryName, Root   the same (`--systemd-cgroup`, the binary, `--root <Root>/<namespace>`).
//   IoUid, IoGid   runc-v2 chowns the pipes it gives the process for FIFO and file:// stdio; tsrt hands the
//                  client FIFOs to the process itself and chowns those (task-service.ts, stdioOf).
//   ShimCgroup     runc-v2 moves the shim into it at `start`; tsrt moves the monitor at the first Create.
//   CriuPath, CriuImagePath, CriuWorkPath   checkpoint/restore: tsrt has none, so a warning.
//   TaskApiAddress, TaskApiVersion   read by containerd (sandbox task API), not by a shim: a warning.
// A key that is set but that tsrt does not act on is logged as a warning (the `warn` callback), never
// dropped silently; an unknown key is an error, so that a typo does not pass unnoticed.
import fs from 'node:fs';
import path from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { containerd, runtimeoptions, google } from '../gen/proto.js';
import { InvalidArgumentError } from './api/errors.js';

/** The options a backend gets for one container (CreateRequest.config). */
export interface ContainerConfig {
  /** runc-compatible binary: runc, crun, or a path. */
  binaryName: string;
  /** State root of the runtime binary; the namespace is appended. */
  root: string;
  systemdCgroup: boolean;
  noPivotRoot: boolean;
  /** `runc create --no-new-keyring`: no session keyring of its own for the container. */
  noNewKeyring: boolean;
  /** Owner given to the process's stdio FIFOs (0/0: left as they are). */
  ioUid: number;
  ioGid: number;
  /**
   * How long one runtime command (`runc create`, `kill`, `delete` …, the native launcher) may take before
   * it is killed and its request fails with DeadlineExceeded (RuntimeTimeout, in seconds).
   */
  runtimeTimeoutMs: number;
}

/** A logger level LogLevel may name; '' leaves the daemon's (TSRT_LOG_LEVEL, else info). */
export type LogLevel = '' | 'debug' | 'info' | 'warn' | 'error';
const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];

/** The options of the one daemon that serves every shim of the host. */
export interface DaemonOptions {
  /**
   * Where the daemon serves Prometheus metrics (`unix:///path.sock` or a loopback `host:port`, see
   * parseMetricsAddress); '' = no endpoint. Records written before this key existed lack it.
   */
  metricsAddress: string;
  /** The level of the daemon's log and of every container's `log` lines; records of older daemons lack it. */
  logLevel: LogLevel;
}

/** Everything one options document says (what a container's record keeps). */
export interface RuntimeConfig extends ContainerConfig, DaemonOptions {
  /** cgroup the monitor (what containerd knows as the shim) is moved into at its first Create; '' = stay. */
  shimCgroup: string;
  /** Backend used when the spec's `io.tsrt.backend` annotation does not name one. */
  backend: string;
  /** Where external backend plugins are found (registry.ts); records written before this key lack it. */
  pluginDir: string;
  /**
   * `[backends.<name>]` tables: each backend's own options, handed to it as they are (CreateRequest.options)
   * and checked by the backend itself, so that a plugin brings its own schema.
   */
  backendOptions: Record<string, Record<string, unknown>>;
  /**
   * How containerd reaches the shim: 'ttrpc', or 'grpc' where containerd can take it (1.7; see
   * docs/grpc-transport.md). `start` reads it (native/shim/transport.c) before any Create; here it is only
   * validated. Records written before this key existed lack it.
   */
  transport: 'ttrpc' | 'grpc';
}

export const DEFAULT_CONFIG: Readonly<RuntimeConfig> = {
  binaryName: 'runc',
  root: '/run/tsrt/runc',
  systemdCgroup: false,
  noPivotRoot: false,
  noNewKeyring: false,
  ioUid: 0,
  ioGid: 0,
  runtimeTimeoutMs: 120_000,
  shimCgroup: '',
  backend: 'runc',
  pluginDir: '/etc/tsrt/plugins',
  backendOptions: {},
  metricsAddress: '',
  logLevel: '',
  transport: 'ttrpc',
};

/** The container's own options, without the core's, the shim's and the daemon's. */
export function containerConfig(c: RuntimeConfig): ContainerConfig {
  return {
    binaryName: c.binaryName, root: c.root, systemdCgroup: c.systemdCgroup, noPivotRoot: c.noPivotRoot,
    noNewKeyring: c.noNewKeyring, ioUid: c.ioUid, ioGid: c.ioGid,
    // records of daemons older than the key lack it
    runtimeTimeoutMs: c.runtimeTimeoutMs ?? DEFAULT_CONFIG.runtimeTimeoutMs,
  };
}

/** The daemon-wide options of a document (records of older daemons may lack them). */
export function daemonOptions(c: Partial<RuntimeConfig>): DaemonOptions {
  return { metricsAddress: c.metricsAddress ?? '', logLevel: c.logLevel ?? '' };
}

/** An option that was set but that tsrt does not act on: the message says which and why. */
export type ConfigWarn = (message: string, fields: Record<string, unknown>) => void;

const NO_CHECKPOINT = 'tsrt does not checkpoint or restore (see README, "Checkpoint"); ignored';
const FOR_CONTAINERD = 'containerd reads it to reach a sandbox\'s task API, a shim does not use it; ignored';

/** runc options tsrt accepts and ignores (with a warning), by their TOML (Go) names. */
const IGNORED: Record<string, string> = {
  CriuPath: NO_CHECKPOINT,
  CriuImagePath: NO_CHECKPOINT,
  CriuWorkPath: NO_CHECKPOINT,
  TaskApiAddress: FOR_CONTAINERD,
  TaskApiVersion: FOR_CONTAINERD,
};

function ignored(key: string, value: unknown, where: string, warn: ConfigWarn | undefined): void {
  warn?.(`runtime option ${key} is not supported by tsrt: ${IGNORED[key] ?? 'ignored'}`, { option: key, value, from: where });
}

type Setter = (c: RuntimeConfig, v: unknown, where: string, warn: ConfigWarn | undefined) => void;

const KEYS: Record<string, Setter> = {
  BinaryName: (c, v, f) => { c.binaryName = str(v, 'BinaryName', f); },
  Root: (c, v, f) => { c.root = str(v, 'Root', f); },
  SystemdCgroup: (c, v, f) => { c.systemdCgroup = bool(v, 'SystemdCgroup', f); },
  NoPivotRoot: (c, v, f) => { c.noPivotRoot = bool(v, 'NoPivotRoot', f); },
  NoNewKeyring: (c, v, f) => { c.noNewKeyring = bool(v, 'NoNewKeyring', f); },
  IoUid: (c, v, f) => { c.ioUid = uint32(v, 'IoUid', f); },
  IoGid: (c, v, f) => { c.ioGid = uint32(v, 'IoGid', f); },
  RuntimeTimeout: (c, v, f) => { c.runtimeTimeoutMs = seconds(v, 'RuntimeTimeout', f) * 1000; },
  ShimCgroup: (c, v, f) => { c.shimCgroup = cgroupPath(v, 'ShimCgroup', f); },
  Backend: (c, v, f) => { c.backend = str(v, 'Backend', f); },
  PluginDir: (c, v, f) => { c.pluginDir = absolutePath(v, 'PluginDir', f); },
  backends: (c, v, f) => { c.backendOptions = backendTables(v, f); },
  MetricsAddress: (c, v, f) => { c.metricsAddress = metricsAddress(v, f); },
  LogLevel: (c, v, f) => { c.logLevel = logLevel(v, f); },
  Transport: (c, v, f) => { c.transport = transport(v, f); },
  // runc's keys that tsrt cannot honour: type-checked, then a warning when set
  CriuPath: (_c, v, f, w) => { if (str(v, 'CriuPath', f, true)) ignored('CriuPath', v, f, w); },
  CriuImagePath: (_c, v, f, w) => { if (str(v, 'CriuImagePath', f, true)) ignored('CriuImagePath', v, f, w); },
  CriuWorkPath: (_c, v, f, w) => { if (str(v, 'CriuWorkPath', f, true)) ignored('CriuWorkPath', v, f, w); },
  TaskApiAddress: (_c, v, f, w) => { if (str(v, 'TaskApiAddress', f, true)) ignored('TaskApiAddress', v, f, w); },
  TaskApiVersion: (_c, v, f, w) => { if (uint32(v, 'TaskApiVersion', f)) ignored('TaskApiVersion', v, f, w); },
};

function str(v: unknown, key: string, file: string, emptyOk = false): string {
  if (typeof v !== 'string' || (v === '' && !emptyOk)) {
    throw new InvalidArgumentError(`${file}: ${key} must be a ${emptyOk ? '' : 'non-empty '}string`);
  }
  return v;
}
function uint32(v: unknown, key: string, file: string): number {
  const n = typeof v === 'bigint' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > 0xffffffff) {
    throw new InvalidArgumentError(`${file}: ${key} must be an integer from 0 to 4294967295`);
  }
  return n;
}
/** A cgroup path as runc-v2 takes ShimCgroup: inside the hierarchy, so absolute ("/system.slice/shims"). */
function cgroupPath(v: unknown, key: string, file: string): string {
  const p = str(v, key, file, true);
  if (p !== '' && (!p.startsWith('/') || p.split('/').includes('..'))) {
    throw new InvalidArgumentError(`${file}: ${key} must be an absolute cgroup path without "..", e.g. "/tsrt-shims"`);
  }
  return p;
}
const isTable = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);

/** `[backends.<name>]`: a table of tables, one per backend name. */
function backendTables(v: unknown, file: string): Record<string, Record<string, unknown>> {
  if (!isTable(v)) throw new InvalidArgumentError(`${file}: backends must be a table of [backends.<name>] tables`);
  const out: Record<string, Record<string, unknown>> = {};
  for (const [name, table] of Object.entries(v)) {
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(name)) throw new InvalidArgumentError(`${file}: [backends.${name}]: not a backend name`);
    if (!isTable(table)) throw new InvalidArgumentError(`${file}: backends.${name} must be a table ([backends.${name}])`);
    out[name] = plain(table) as Record<string, unknown>;
  }
  return out;
}
/** The TOML parser's null-prototype tables as ordinary objects, all the way down. */
function plain(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(plain);
  if (isTable(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  return v;
}
function absolutePath(v: unknown, key: string, file: string): string {
  const p = str(v, key, file);
  if (!path.isAbsolute(p)) throw new InvalidArgumentError(`${file}: ${key} must be an absolute path`);
  return path.normalize(p);
}
function transport(v: unknown, file: string): 'ttrpc' | 'grpc' {
  if (v !== 'ttrpc' && v !== 'grpc') {
    throw new InvalidArgumentError(`${file}: Transport must be "ttrpc" or "grpc" (got ${typeof v === 'bigint' ? String(v) : JSON.stringify(v)})`);
  }
  return v;
}
function logLevel(v: unknown, file: string): LogLevel {
  if (typeof v !== 'string' || !(LOG_LEVELS as readonly string[]).includes(v)) {
    throw new InvalidArgumentError(`${file}: LogLevel must be one of ${LOG_LEVELS.map((l) => JSON.stringify(l)).join(', ')}`);
  }
  return v as LogLevel;
}
/** A positive number of seconds, at most a day. */
function seconds(v: unknown, key: string, file: string): number {
  const n = typeof v === 'bigint' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isFinite(n) || n <= 0 || n > 86_400) {
    throw new InvalidArgumentError(`${file}: ${key} must be a number of seconds above 0 (at most 86400)`);
  }
  return n;
}
function bool(v: unknown, key: string, file: string): boolean {
  if (typeof v !== 'boolean') throw new InvalidArgumentError(`${file}: ${key} must be true or false`);
  return v;
}

/** Where the metrics endpoint listens: a unix socket, or a TCP port on the loopback interface. */
export type MetricsListen =
  | { kind: 'unix'; path: string }
  | { kind: 'tcp'; host: '127.0.0.1' | '::1'; port: number };

const METRICS_FORMS = 'unix:///absolute/path.sock, 127.0.0.1:<port>, [::1]:<port> or localhost:<port>';

/**
 * Parses a MetricsAddress. Only loopback hosts are accepted: the endpoint has no authentication, and a
 * shim must not open a port to the network because of a runtime option. `localhost` means 127.0.0.1,
 * so that the address a scraper is given does not depend on how the host resolves the name.
 */
export function parseMetricsAddress(address: string): MetricsListen {
  const bad = (why: string): InvalidArgumentError =>
    new InvalidArgumentError(`MetricsAddress ${JSON.stringify(address)}: ${why} (expected ${METRICS_FORMS})`);
  if (address.startsWith('unix://')) {
    const p = address.slice('unix://'.length);
    if (!path.isAbsolute(p)) throw bad('the socket path must be absolute');
    if (p.endsWith('/')) throw bad('the socket path names a directory');
    // sun_path holds 108 bytes with the terminating NUL; a longer path would only fail at listen.
    if (Buffer.byteLength(p) > 107) throw bad('the socket path is longer than 107 bytes');
    return { kind: 'unix', path: path.normalize(p) };
  }
  const m = /^(\[::1\]|127\.0\.0\.1|localhost):(\d{1,5})$/.exec(address);
  if (!m) {
    const host = /^(\[[^\]]*\]|[^:]*):\d+$/.exec(address)?.[1];
    throw bad(host ? `host ${host} is not allowed, the endpoint listens on loopback only` : 'not a unix socket or a loopback host:port');
  }
  const port = Number(m[2]);
  if (port < 1 || port > 65535) throw bad(`port ${m[2]} is out of range 1-65535`);
  return { kind: 'tcp', host: m[1] === '[::1]' ? '::1' : '127.0.0.1', port };
}

function metricsAddress(v: unknown, file: string): string {
  if (typeof v !== 'string') throw new InvalidArgumentError(`${file}: MetricsAddress must be a string`);
  // '' says "no endpoint" explicitly; anything else must parse, so that a typo fails the Create.
  if (v !== '') {
    try {
      parseMetricsAddress(v);
    } catch (e) {
      throw new InvalidArgumentError(`${file}: ${(e as Error).message}`);
    }
  }
  return v;
}

/**
 * Keys of a TOML options document applied to `into`; `where` names the document in messages ("runtime
 * config /etc/tsrt/x.toml"), `short` in those about one key (the file's path).
 */
function applyToml(text: string, where: string, short: string, into: RuntimeConfig, warn: ConfigWarn | undefined, body: boolean): void {
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(text) as Record<string, unknown>;
  } catch (e) {
    throw new InvalidArgumentError(`${where} is not valid TOML: ${(e as Error).message}`);
  }
  for (const [k, v] of Object.entries(doc)) {
    // A CRI options table is runtimeoptions.v1.Options' own TOML too: its TypeUrl and (empty) ConfigPath
    // keys come along in the body.
    if (body && (k === 'TypeUrl' || k === 'ConfigPath')) {
      if (v !== '') warn?.(`runtime option ${k} in the options table is not used by tsrt; ignored`, { option: k, value: v, from: short });
      continue;
    }
    const set = KEYS[k];
    if (!set) throw new InvalidArgumentError(`${where}: unknown key ${k} (known: ${Object.keys(KEYS).join(', ')})`);
    set(into, v, short, warn);
  }
}

/** Reads a tsrt options file. Unknown keys are refused so that a typo does not pass silently. */
export function readConfigFile(file: string, into: RuntimeConfig = { ...DEFAULT_CONFIG }, warn?: ConfigWarn): RuntimeConfig {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new InvalidArgumentError(`cannot read runtime config ${file}: ${(e as Error).message}`);
  }
  applyToml(text, `runtime config ${file}`, file, into, warn, false);
  return into;
}

/** A CRI `options` table that containerd 1.7+ sent as TOML (runtimeoptions.v1.Options.config_body). */
export function readConfigBody(body: Uint8Array, into: RuntimeConfig = { ...DEFAULT_CONFIG }, warn?: ConfigWarn): RuntimeConfig {
  applyToml(Buffer.from(body).toString('utf8'), 'runtime options table', 'runtime options table', into, warn, true);
  return into;
}

/** A field of a runc options message that tsrt ignores, when it is set. */
function ignoredFields(o: Record<string, unknown>, names: Record<string, string>, where: string, warn: ConfigWarn | undefined): void {
  for (const [field, key] of Object.entries(names)) {
    const v = o[field];
    const set = Array.isArray(v) ? v.length > 0 : Boolean(v);
    if (set) warn?.(`runtime option ${key} is not supported by tsrt: ${IGNORED[key] ?? NO_CHECKPOINT}`, { option: key, value: v, from: where });
  }
}

function bareTypeName(typeUrl: string): string {
  const slash = typeUrl.lastIndexOf('/');
  return slash >= 0 ? typeUrl.slice(slash + 1) : typeUrl;
}

/**
 * Turns CreateTaskRequest.options into a RuntimeConfig; absent options give the defaults. Options that are
 * set but that tsrt does not act on go to `warn` (the caller logs them to the container's log).
 */
export function configFromOptions(options: google.protobuf.IAny | null | undefined, warn?: ConfigWarn): RuntimeConfig {
  const config: RuntimeConfig = { ...DEFAULT_CONFIG };
  if (!options || !options.typeUrl) return config;
  const value = options.value ?? new Uint8Array();
  const type = bareTypeName(options.typeUrl);
  try {
    switch (type) {
      case 'runtimeoptions.v1.Options': {
        const o = runtimeoptions.v1.Options.decode(value);
        if (o.typeUrl) warn?.('runtime option TypeUrl is not used by tsrt; ignored', { option: 'TypeUrl', value: o.typeUrl, from: type });
        if (o.configPath) readConfigFile(o.configPath, config, warn);
        else if (o.configBody.length > 0) readConfigBody(o.configBody, config, warn);
        return config;
      }
      case 'containerd.runc.v1.Options': {
        const o = containerd.runc.v1.Options.decode(value);
        if (o.binaryName) config.binaryName = o.binaryName;
        if (o.root) config.root = o.root;
        config.systemdCgroup = o.systemdCgroup;
        config.noPivotRoot = o.noPivotRoot;
        config.noNewKeyring = o.noNewKeyring;
        config.ioUid = o.ioUid;
        config.ioGid = o.ioGid;
        config.shimCgroup = cgroupPath(o.shimCgroup, 'ShimCgroup', type);
        ignoredFields(o as unknown as Record<string, unknown>, {
          criuPath: 'CriuPath', criuImagePath: 'CriuImagePath', criuWorkPath: 'CriuWorkPath',
          taskApiAddress: 'TaskApiAddress', taskApiVersion: 'TaskApiVersion',
        }, type, warn);
        return config;
      }
      case 'containerd.linux.runc.CreateOptions': {
        // ctr 1.6's task options for runtimes other than runc (--no-pivot, --uidmap/--gidmap)
        const o = containerd.linux.runc.CreateOptions.decode(value);
        config.noPivotRoot = o.noPivotRoot;
        config.noNewKeyring = o.noNewKeyring;
        config.ioUid = o.ioUid;
        config.ioGid = o.ioGid;
        config.shimCgroup = cgroupPath(o.shimCgroup, 'ShimCgroup', type);
        ignoredFields(o as unknown as Record<string, unknown>, {
          openTcp: 'OpenTcp', externalUnixSockets: 'ExternalUnixSockets', terminal: 'Terminal', fileLocks: 'FileLocks',
          emptyNamespaces: 'EmptyNamespaces', cgroupsMode: 'CgroupsMode', criuWorkPath: 'CriuWorkPath',
          criuImagePath: 'CriuImagePath',
        }, type, warn);
        return config;
      }
      default:
        throw new InvalidArgumentError(`unsupported runtime options type ${options.typeUrl}`);
    }
  } catch (e) {
    if (e instanceof InvalidArgumentError) throw e;
    throw new InvalidArgumentError(`cannot decode runtime options ${options.typeUrl}: ${(e as Error).message}`);
  }
}
