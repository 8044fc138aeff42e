// Runtime options: what containerd passes in CreateTaskRequest.options, turned into one RuntimeConfig.
// For `io.containerd.tsrt.v2` containerd (CRI `options.ConfigPath`, `ctr --runtime-config-path`) sends
// runtimeoptions.v1.Options{config_path}: a TOML file with the keys runc-v2 users know (BinaryName, Root,
// SystemdCgroup) plus tsrt's own (Backend, MetricsAddress). runc-v2's own Options type and ctr's legacy
// CreateOptions are accepted too, so configurations written for runc-v2 keep working.
import fs from 'node:fs';
import path from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { containerd, runtimeoptions, google } from '../gen/proto.js';
import { InvalidArgumentError } from '../shim/errors.js';

export interface RuntimeConfig {
  /** runc-compatible binary: runc, crun, or a path. */
  binaryName: string;
  /** State root of the runtime binary; the namespace is appended. */
  root: string;
  systemdCgroup: boolean;
  noPivotRoot: boolean;
  /** Backend used when the spec's `io.tsrt.backend` annotation does not name one. */
  backend: string;
  /**
   * Where the daemon serves Prometheus metrics (`unix:///path.sock` or a loopback `host:port`, see
   * parseMetricsAddress); '' = no endpoint. Records written before this key existed lack it.
   */
  metricsAddress: string;
}

export const DEFAULT_CONFIG: Readonly<RuntimeConfig> = {
  binaryName: 'runc',
  root: '/run/tsrt/runc',
  systemdCgroup: false,
  noPivotRoot: false,
  backend: 'runc',
  metricsAddress: '',
};

const KEYS: Record<string, (c: RuntimeConfig, v: unknown, file: string) => void> = {
  BinaryName: (c, v, f) => { c.binaryName = str(v, 'BinaryName', f); },
  Root: (c, v, f) => { c.root = str(v, 'Root', f); },
  SystemdCgroup: (c, v, f) => { c.systemdCgroup = bool(v, 'SystemdCgroup', f); },
  NoPivotRoot: (c, v, f) => { c.noPivotRoot = bool(v, 'NoPivotRoot', f); },
  Backend: (c, v, f) => { c.backend = str(v, 'Backend', f); },
  MetricsAddress: (c, v, f) => { c.metricsAddress = metricsAddress(v, f); },
};

function str(v: unknown, key: string, file: string): string {
  if (typeof v !== 'string' || v === '') throw new InvalidArgumentError(`${file}: ${key} must be a non-empty string`);
  return v;
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

/** Reads a tsrt options file. Unknown keys are refused so that a typo does not pass silently. */
export function readConfigFile(file: string, into: RuntimeConfig = { ...DEFAULT_CONFIG }): RuntimeConfig {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new InvalidArgumentError(`cannot read runtime config ${file}: ${(e as Error).message}`);
  }
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(text) as Record<string, unknown>;
  } catch (e) {
    throw new InvalidArgumentError(`runtime config ${file} is not valid TOML: ${(e as Error).message}`);
  }
  for (const [k, v] of Object.entries(doc)) {
    const set = KEYS[k];
    if (!set) throw new InvalidArgumentError(`runtime config ${file}: unknown key ${k} (known: ${Object.keys(KEYS).join(', ')})`);
    set(into, v, file);
  }
  return into;
}

function bareTypeName(typeUrl: string): string {
  const slash = typeUrl.lastIndexOf('/');
  return slash >= 0 ? typeUrl.slice(slash + 1) : typeUrl;
}

/** Turns CreateTaskRequest.options into a RuntimeConfig; absent options give the defaults. */
export function configFromOptions(options: google.protobuf.IAny | null | undefined): RuntimeConfig {
  const config: RuntimeConfig = { ...DEFAULT_CONFIG };
  if (!options || !options.typeUrl) return config;
  const value = options.value ?? new Uint8Array();
  const type = bareTypeName(options.typeUrl);
  try {
    switch (type) {
      case 'runtimeoptions.v1.Options': {
        const o = runtimeoptions.v1.Options.decode(value);
        if (o.configPath) readConfigFile(o.configPath, config);
        return config;
      }
      case 'containerd.runc.v1.Options': {
        const o = containerd.runc.v1.Options.decode(value);
        if (o.binaryName) config.binaryName = o.binaryName;
        if (o.root) config.root = o.root;
        config.systemdCgroup = o.systemdCgroup;
        config.noPivotRoot = o.noPivotRoot;
        return config;
      }
      case 'containerd.linux.runc.CreateOptions': {
        const o = containerd.linux.runc.CreateOptions.decode(value);
        config.noPivotRoot = o.noPivotRoot;
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
