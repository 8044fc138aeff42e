// A CRI client for the tests: the runtime.v1 RuntimeService and ImageService over gRPC (@grpc/grpc-js), as the
// kubelet talks to containerd's CRI plugin. The messages come from lib/cri-api.proto (written from the upstream
// field numbers) through @grpc/proto-loader, with these conversions: field names camelCased, enums as their
// names ('CONTAINER_EXITED'), 64-bit integers as JS numbers (nanosecond timestamps lose their last bits, which
// no test looks at), bytes as Buffers, unset fields as their defaults (unset messages as null).
//
// The interfaces below type the fields the tests use; every message accepts more (see the .proto).

import { credentials, loadPackageDefinition, type Client, type ServiceError } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const PROTO = join(dirname(fileURLToPath(import.meta.url)), 'cri-api.proto');

export type NamespaceMode = 'POD' | 'CONTAINER' | 'NODE' | 'TARGET';
export type ContainerState = 'CONTAINER_CREATED' | 'CONTAINER_RUNNING' | 'CONTAINER_EXITED' | 'CONTAINER_UNKNOWN';
export type PodSandboxState = 'SANDBOX_READY' | 'SANDBOX_NOTREADY';

export interface NamespaceOption {
  network?: NamespaceMode;
  pid?: NamespaceMode;
  ipc?: NamespaceMode;
  targetId?: string;
}
export interface SecurityProfile {
  profileType?: 'RuntimeDefault' | 'Unconfined' | 'Localhost';
  localhostRef?: string;
}
export interface LinuxContainerResources {
  cpuPeriod?: number;
  cpuQuota?: number;
  cpuShares?: number;
  memoryLimitInBytes?: number;
  oomScoreAdj?: number;
  cpusetCpus?: string;
  cpusetMems?: string;
  memorySwapLimitInBytes?: number;
  unified?: Record<string, string>;
}
export interface PodSandboxConfig {
  metadata: { name: string; uid: string; namespace: string; attempt?: number };
  hostname?: string;
  logDirectory?: string;
  dnsConfig?: { servers?: string[]; searches?: string[]; options?: string[] };
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  linux?: {
    cgroupParent?: string;
    securityContext?: {
      namespaceOptions?: NamespaceOption;
      runAsUser?: { value: number };
      runAsGroup?: { value: number };
      readonlyRootfs?: boolean;
      supplementalGroups?: number[];
      privileged?: boolean;
      seccomp?: SecurityProfile;
    };
    sysctls?: Record<string, string>;
  };
}
export interface ContainerConfig {
  metadata: { name: string; attempt?: number };
  image: { image: string };
  command?: string[];
  args?: string[];
  workingDir?: string;
  envs?: Array<{ key: string; value: string }>;
  mounts?: Array<{ containerPath: string; hostPath: string; readonly?: boolean }>;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  logPath?: string;
  stdin?: boolean;
  stdinOnce?: boolean;
  tty?: boolean;
  linux?: {
    resources?: LinuxContainerResources;
    securityContext?: {
      capabilities?: { addCapabilities?: string[]; dropCapabilities?: string[] };
      privileged?: boolean;
      namespaceOptions?: NamespaceOption;
      runAsUser?: { value: number };
      runAsGroup?: { value: number };
      runAsUsername?: string;
      readonlyRootfs?: boolean;
      supplementalGroups?: number[];
      noNewPrivs?: boolean;
      maskedPaths?: string[];
      readonlyPaths?: string[];
      seccomp?: SecurityProfile;
    };
  };
}
export interface PodSandboxStatus {
  id: string;
  metadata: { name: string; uid: string; namespace: string; attempt: number };
  state: PodSandboxState;
  createdAt: number;
  network: { ip: string; additionalIps: Array<{ ip: string }> } | null;
  linux: { namespaces: { options: Required<NamespaceOption> | null } | null } | null;
  runtimeHandler: string;
}
export interface ContainerStatus {
  id: string;
  metadata: { name: string; attempt: number };
  state: ContainerState;
  createdAt: number;
  startedAt: number;
  finishedAt: number;
  exitCode: number;
  image: { image: string } | null;
  imageRef: string;
  reason: string;
  message: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  logPath: string;
  resources: { linux: Required<LinuxContainerResources> | null } | null;
}
export interface Container {
  id: string;
  podSandboxId: string;
  metadata: { name: string; attempt: number };
  state: ContainerState;
  createdAt: number;
}
export interface PodSandbox {
  id: string;
  metadata: { name: string; uid: string; namespace: string; attempt: number };
  state: PodSandboxState;
  runtimeHandler: string;
}
type U64 = { value: number } | null;
export interface CpuUsage {
  timestamp: number;
  usageCoreNanoSeconds: U64;
  usageNanoCores: U64;
}
export interface MemoryUsage {
  timestamp: number;
  workingSetBytes: U64;
  availableBytes: U64;
  usageBytes: U64;
  rssBytes: U64;
  pageFaults: U64;
  majorPageFaults: U64;
}
export interface ContainerStats {
  attributes: { id: string; metadata: { name: string; attempt: number } | null } | null;
  cpu: CpuUsage | null;
  memory: MemoryUsage | null;
  writableLayer: { timestamp: number; usedBytes: U64; inodesUsed: U64 } | null;
  swap: { timestamp: number; swapAvailableBytes: U64; swapUsageBytes: U64 } | null;
}
export interface PodSandboxStats {
  attributes: { id: string } | null;
  linux: {
    cpu: CpuUsage | null;
    memory: MemoryUsage | null;
    network: { timestamp: number; defaultInterface: { name: string; rxBytes: U64; txBytes: U64 } | null } | null;
    process: { timestamp: number; processCount: U64 } | null;
    containers: ContainerStats[];
  } | null;
}
export interface ExecSyncResponse {
  stdout: Buffer;
  stderr: Buffer;
  exitCode: number;
}
export interface Image {
  id: string;
  repoTags: string[];
  repoDigests: string[];
  size: number;
  pinned: boolean;
}

/** A failed CRI call: the gRPC status code (grpc-js `status`) and its details. */
export class CriError extends Error {
  constructor(readonly method: string, readonly code: number, readonly details: string) {
    super(`CRI ${method}: code ${code}: ${details}`);
    this.name = 'CriError';
  }
}

type Callback = (err: ServiceError | null, res: unknown) => void;
type Unary = (req: unknown, opts: { deadline: number }, cb: Callback) => void;
type ServiceCtor = new (address: string, creds: ReturnType<typeof credentials.createInsecure>) => Client;

let ctors: { runtime: ServiceCtor; image: ServiceCtor } | undefined;
function services(): { runtime: ServiceCtor; image: ServiceCtor } {
  if (!ctors) {
    const def = loadSync(PROTO, { keepCase: false, longs: Number, enums: String, bytes: Buffer, defaults: true, oneofs: true });
    const pkg = loadPackageDefinition(def) as unknown as { runtime: { v1: { RuntimeService: ServiceCtor; ImageService: ServiceCtor } } };
    ctors = { runtime: pkg.runtime.v1.RuntimeService, image: pkg.runtime.v1.ImageService };
  }
  return ctors;
}

export class CriClient {
  private readonly runtime: Client;
  private readonly images: Client;

  /** `address`: containerd's gRPC socket path (or a unix:// URI); `timeoutMs`: each call's deadline. */
  constructor(address: string, readonly timeoutMs = 60_000) {
    const target = address.startsWith('unix:') ? address : `unix://${address}`;
    const s = services();
    this.runtime = new s.runtime(target, credentials.createInsecure());
    this.images = new s.image(target, credentials.createInsecure());
  }

  /** One unary call by method name (e.g. 'RunPodSandbox'), for requests the typed methods below do not cover. */
  call<T = Record<string, unknown>>(method: string, request: object, timeoutMs = this.timeoutMs, service: 'runtime' | 'image' = 'runtime'): Promise<T> {
    const client = (service === 'runtime' ? this.runtime : this.images) as unknown as Record<string, Unary | undefined>;
    const fn = client[method];
    if (typeof fn !== 'function') throw new Error(`CRI ${service} service has no method ${method} in cri-api.proto`);
    return new Promise<T>((resolve, reject) => {
      fn.call(client, request, { deadline: Date.now() + timeoutMs }, (err, res) => {
        if (err) reject(new CriError(method, err.code, err.details || err.message));
        else resolve(res as T);
      });
    });
  }

  // ---- runtime

  async version(): Promise<{ version: string; runtimeName: string; runtimeVersion: string; runtimeApiVersion: string }> {
    return this.call('Version', { version: 'v1' });
  }

  async status(verbose = false): Promise<{ status: { conditions: Array<{ type: string; status: boolean; reason: string; message: string }> } | null; info: Record<string, string> }> {
    return this.call('Status', { verbose });
  }

  async runPodSandbox(config: PodSandboxConfig, runtimeHandler: string): Promise<string> {
    return (await this.call<{ podSandboxId: string }>('RunPodSandbox', { config, runtimeHandler })).podSandboxId;
  }

  async stopPodSandbox(podSandboxId: string): Promise<void> {
    await this.call('StopPodSandbox', { podSandboxId });
  }

  async removePodSandbox(podSandboxId: string): Promise<void> {
    await this.call('RemovePodSandbox', { podSandboxId });
  }

  async podSandboxStatus(podSandboxId: string, verbose = false): Promise<{ status: PodSandboxStatus; info: Record<string, string> }> {
    return this.call('PodSandboxStatus', { podSandboxId, verbose });
  }

  async listPodSandbox(filter: { id?: string; labelSelector?: Record<string, string> } = {}): Promise<PodSandbox[]> {
    return (await this.call<{ items: PodSandbox[] }>('ListPodSandbox', { filter })).items;
  }

  async createContainer(podSandboxId: string, config: ContainerConfig, sandboxConfig: PodSandboxConfig): Promise<string> {
    return (await this.call<{ containerId: string }>('CreateContainer', { podSandboxId, config, sandboxConfig })).containerId;
  }

  async startContainer(containerId: string): Promise<void> {
    await this.call('StartContainer', { containerId });
  }

  /** `timeout`: seconds the container has after its stop signal before SIGKILL. */
  async stopContainer(containerId: string, timeout: number): Promise<void> {
    await this.call('StopContainer', { containerId, timeout }, this.timeoutMs + timeout * 1000);
  }

  async removeContainer(containerId: string): Promise<void> {
    await this.call('RemoveContainer', { containerId });
  }

  async listContainers(filter: { id?: string; podSandboxId?: string; labelSelector?: Record<string, string> } = {}): Promise<Container[]> {
    return (await this.call<{ containers: Container[] }>('ListContainers', { filter })).containers;
  }

  async containerStatus(containerId: string): Promise<ContainerStatus> {
    return (await this.call<{ status: ContainerStatus }>('ContainerStatus', { containerId })).status;
  }

  /** containerd's verbose info about a container (info["info"], JSON): its pid, runtimeSpec, snapshot key, ... */
  async containerInfo(containerId: string): Promise<{ pid: number; runtimeSpec: OciSpec; [k: string]: unknown }> {
    const r = await this.call<{ info: Record<string, string> }>('ContainerStatus', { containerId, verbose: true });
    const text = r.info.info;
    if (!text) throw new Error(`ContainerStatus(verbose) of ${containerId} has no info`);
    return JSON.parse(text) as { pid: number; runtimeSpec: OciSpec };
  }

  /** containerd's verbose info about a sandbox: its pid, runtimeSpec (with the netns path), ... */
  async sandboxInfo(podSandboxId: string): Promise<{ pid: number; runtimeSpec: OciSpec; [k: string]: unknown }> {
    const r = await this.podSandboxStatus(podSandboxId, true);
    const text = r.info.info;
    if (!text) throw new Error(`PodSandboxStatus(verbose) of ${podSandboxId} has no info`);
    return JSON.parse(text) as { pid: number; runtimeSpec: OciSpec };
  }

  async updateContainerResources(containerId: string, linux: LinuxContainerResources): Promise<void> {
    await this.call('UpdateContainerResources', { containerId, linux });
  }

  async reopenContainerLog(containerId: string): Promise<void> {
    await this.call('ReopenContainerLog', { containerId });
  }

  /** `timeout`: seconds (0: none). The gRPC deadline is that plus the client's timeout. */
  async execSync(containerId: string, cmd: string[], timeout = 0): Promise<ExecSyncResponse> {
    return this.call('ExecSync', { containerId, cmd, timeout }, this.timeoutMs + timeout * 1000);
  }

  async containerStats(containerId: string): Promise<ContainerStats> {
    return (await this.call<{ stats: ContainerStats }>('ContainerStats', { containerId })).stats;
  }

  async listContainerStats(filter: { id?: string; podSandboxId?: string } = {}): Promise<ContainerStats[]> {
    return (await this.call<{ stats: ContainerStats[] }>('ListContainerStats', { filter })).stats;
  }

  async podSandboxStats(podSandboxId: string): Promise<PodSandboxStats> {
    return (await this.call<{ stats: PodSandboxStats }>('PodSandboxStats', { podSandboxId })).stats;
  }

  async listPodSandboxStats(filter: { id?: string } = {}): Promise<PodSandboxStats[]> {
    return (await this.call<{ stats: PodSandboxStats[] }>('ListPodSandboxStats', { filter })).stats;
  }

  // ---- images

  async listImages(): Promise<Image[]> {
    return (await this.call<{ images: Image[] }>('ListImages', { filter: {} }, this.timeoutMs, 'image')).images;
  }

  /** The image, or null when the CRI does not have it. */
  async imageStatus(image: string): Promise<Image | null> {
    return (await this.call<{ image: Image | null }>('ImageStatus', { image: { image } }, this.timeoutMs, 'image')).image;
  }

  async removeImage(image: string): Promise<void> {
    await this.call('RemoveImage', { image: { image } }, this.timeoutMs, 'image');
  }

  async imageFsInfo(): Promise<{ imageFilesystems: Array<{ fsId: { mountpoint: string } | null; usedBytes: U64 }> }> {
    return this.call('ImageFsInfo', {}, this.timeoutMs, 'image');
  }

  close(): void {
    this.runtime.close();
    this.images.close();
  }

  // ---- streaming (lib/cri-stream.ts speaks to the URLs)

  /** CRI Exec: the streaming server's URL for one remotecommand session running `cmd` in the container. */
  async exec(containerId: string, cmd: string[], o: { tty?: boolean; stdin?: boolean; stdout?: boolean; stderr?: boolean } = {}): Promise<string> {
    const req = { containerId, cmd, tty: o.tty ?? false, stdin: o.stdin ?? false, stdout: o.stdout ?? true, stderr: o.stderr ?? !o.tty };
    return (await this.call<{ url: string }>('Exec', req)).url;
  }

  /** CRI Attach: the streaming server's URL for one remotecommand session attached to the container's init. */
  async attach(containerId: string, o: { tty?: boolean; stdin?: boolean; stdout?: boolean; stderr?: boolean } = {}): Promise<string> {
    const req = { containerId, tty: o.tty ?? false, stdin: o.stdin ?? false, stdout: o.stdout ?? true, stderr: o.stderr ?? !o.tty };
    return (await this.call<{ url: string }>('Attach', req)).url;
  }
}

/** The parts of an OCI runtime spec (as containerd's verbose info shows it) that the tests read. */
export interface OciSpec {
  process?: { user?: { uid: number; gid: number }; capabilities?: Record<string, string[]>; oomScoreAdj?: number };
  linux?: {
    cgroupsPath?: string;
    namespaces?: Array<{ type: string; path?: string }>;
    sysctl?: Record<string, string>;
    seccomp?: unknown;
    resources?: { memory?: { limit?: number }; cpu?: { quota?: number; period?: number; shares?: number } };
  };
  annotations?: Record<string, string>;
}
