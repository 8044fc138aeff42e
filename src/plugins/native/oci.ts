// The parts of the OCI runtime spec (config.json, runtime-spec 1.0–1.2) the native backend reads. Every
// field is optional because the file comes from outside: plan.ts checks what it needs and names the field
// when something is missing. Fields the backend does not know are not listed; plan.ts refuses them by
// key (KNOWN_* there), so a spec newer than this file cannot slip a setting past the launcher.

export interface OciSpec {
  ociVersion?: string;
  process?: OciProcess;
  root?: { path?: string; readonly?: boolean };
  hostname?: string;
  domainname?: string;
  mounts?: OciMount[];
  hooks?: Record<string, unknown[] | undefined>;
  annotations?: Record<string, string>;
  linux?: OciLinux;
  [key: string]: unknown;
}

export interface OciProcess {
  terminal?: boolean;
  consoleSize?: { height?: number; width?: number };
  user?: { uid?: number; gid?: number; umask?: number; additionalGids?: number[]; username?: string };
  args?: string[];
  commandLine?: string;
  env?: string[];
  cwd?: string;
  capabilities?: Partial<Record<CapabilitySet, string[]>>;
  rlimits?: Array<{ type?: string; soft?: number | bigint; hard?: number | bigint }>;
  noNewPrivileges?: boolean;
  apparmorProfile?: string;
  oomScoreAdj?: number;
  selinuxLabel?: string;
  [key: string]: unknown;
}

export type CapabilitySet = 'bounding' | 'effective' | 'inheritable' | 'permitted' | 'ambient';

export interface OciMount {
  destination?: string;
  type?: string;
  source?: string;
  options?: string[];
  uidMappings?: OciIdMapping[];
  gidMappings?: OciIdMapping[];
  [key: string]: unknown;
}

export interface OciIdMapping { containerID?: number; hostID?: number; size?: number }

export interface OciDevice {
  type?: string;
  path?: string;
  major?: number;
  minor?: number;
  fileMode?: number;
  uid?: number;
  gid?: number;
}

export interface OciDeviceRule { allow?: boolean; type?: string; major?: number | null; minor?: number | null; access?: string }

export interface OciResources {
  devices?: OciDeviceRule[];
  memory?: {
    limit?: number; reservation?: number; swap?: number; kernel?: number; kernelTCP?: number;
    swappiness?: number; disableOOMKiller?: boolean; useHierarchy?: boolean; checkBeforeUpdate?: boolean;
  };
  cpu?: {
    shares?: number; quota?: number; burst?: number; period?: number; realtimeRuntime?: number; realtimePeriod?: number;
    cpus?: string; mems?: string; idle?: number;
  };
  pids?: { limit?: number };
  blockIO?: {
    weight?: number; leafWeight?: number;
    weightDevice?: Array<{ major?: number; minor?: number; weight?: number; leafWeight?: number }>;
    throttleReadBpsDevice?: OciThrottle[]; throttleWriteBpsDevice?: OciThrottle[];
    throttleReadIOPSDevice?: OciThrottle[]; throttleWriteIOPSDevice?: OciThrottle[];
  };
  hugepageLimits?: Array<{ pageSize?: string; limit?: number }>;
  network?: { classID?: number; priorities?: Array<{ name?: string; priority?: number }> };
  rdma?: Record<string, { hcaHandles?: number; hcaObjects?: number }>;
  unified?: Record<string, string>;
}

export interface OciThrottle { major?: number; minor?: number; rate?: number }

export interface OciLinux {
  namespaces?: Array<{ type?: string; path?: string }>;
  uidMappings?: OciIdMapping[];
  gidMappings?: OciIdMapping[];
  devices?: OciDevice[];
  cgroupsPath?: string;
  resources?: OciResources;
  rootfsPropagation?: string;
  maskedPaths?: string[];
  readonlyPaths?: string[];
  mountLabel?: string;
  sysctl?: Record<string, string>;
  [key: string]: unknown;
}
