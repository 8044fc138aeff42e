// A very small client for the CRI RuntimeService (runtime.v1, k8s.io/cri-api api.proto), enough to run a
// host-network pod and one container in it the way the kubelet would: RunPodSandbox (with a runtime
// handler), CreateContainer, StartContainer, ContainerStatus, and the teardown calls. Messages are encoded
// by hand with protobufjs's Writer/Reader, only the fields used here (numbers from api.proto).

import { Client, Metadata, credentials } from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { unaryBytes } from './grpc-bytes.js';

const { Writer, Reader } = protobuf;
type W = protobuf.Writer;

const SERVICE = '/runtime.v1.RuntimeService';

export class CriError extends Error {
  constructor(readonly method: string, readonly code: number, readonly details: string) {
    super(`CRI ${method}: code ${code}: ${details}`);
    this.name = 'CriError';
  }
}

function str(w: W, field: number, v: string | undefined): void {
  if (v) w.uint32((field << 3) | 2).string(v);
}
function msg(w: W, field: number, m: Uint8Array): void {
  w.uint32((field << 3) | 2).bytes(m);
}
function varint(w: W, field: number, v: number): void {
  if (v) w.uint32(field << 3).int64(v);
}

/** Field number → raw values (strings as bytes, varints as numbers) of a message, every occurrence. */
function fieldsOf(buf: Uint8Array): Map<number, Array<number | Uint8Array>> {
  const r = Reader.create(buf);
  const out = new Map<number, Array<number | Uint8Array>>();
  const add = (f: number, v: number | Uint8Array) => out.set(f, [...(out.get(f) ?? []), v]);
  while (r.pos < r.len) {
    const tag = r.uint32();
    if ((tag & 7) === 0) {
      const v = r.int64() as unknown as number | { toNumber(): number };
      add(tag >>> 3, typeof v === 'number' ? v : v.toNumber());
    } else if ((tag & 7) === 2) add(tag >>> 3, r.bytes());
    else r.skipType(tag & 7);
  }
  return out;
}
const text = (v: number | Uint8Array | undefined): string => (v instanceof Uint8Array ? Buffer.from(v).toString('utf8') : '');

export interface PodSpec {
  name: string;
  uid: string;
  namespace: string;
  /** pod log directory (absolute); container log paths are relative to it */
  logDirectory: string;
  /** cgroup parent of the pod (cgroupfs driver: a path such as /tsrt-cri) */
  cgroupParent: string;
}

/** PodSandboxConfig with host networking (NamespaceMode NODE = 2), so no CNI is needed. */
function podSandboxConfig(p: PodSpec): Uint8Array {
  const meta = Writer.create();
  str(meta, 1, p.name);
  str(meta, 2, p.uid);
  str(meta, 3, p.namespace);
  const nsOpts = Writer.create();
  varint(nsOpts, 1, 2); // network: NODE
  const sec = Writer.create();
  msg(sec, 1, nsOpts.finish());
  const linux = Writer.create();
  str(linux, 1, p.cgroupParent);
  msg(linux, 2, sec.finish());
  const w = Writer.create();
  msg(w, 1, meta.finish());
  str(w, 3, p.logDirectory);
  msg(w, 8, linux.finish());
  return w.finish();
}

export interface ContainerStatus {
  /** CONTAINER_CREATED 0, RUNNING 1, EXITED 2, UNKNOWN 3 */
  state: number;
  exitCode: number;
  reason: string;
  message: string;
}

export class CriClient {
  private readonly client: Client;

  constructor(address: string, private readonly timeoutMs = 60_000) {
    this.client = new Client(address.startsWith('unix:') ? address : `unix://${address}`, credentials.createInsecure());
  }

  call(method: string, request: Uint8Array): Promise<Uint8Array> {
    return unaryBytes(this.client, `${SERVICE}/${method}`, request, new Metadata(), this.timeoutMs,
      (err) => new CriError(method, err.code, err.details || err.message));
  }

  /** The CRI's runtime name, e.g. "containerd" (proves the plugin serves). */
  async version(): Promise<string> {
    const w = Writer.create();
    str(w, 1, 'v1');
    return text(fieldsOf(await this.call('Version', w.finish())).get(2)?.[0]);
  }

  async runPodSandbox(p: PodSpec, runtimeHandler: string): Promise<string> {
    const w = Writer.create();
    msg(w, 1, podSandboxConfig(p));
    str(w, 2, runtimeHandler);
    return text(fieldsOf(await this.call('RunPodSandbox', w.finish())).get(1)?.[0]);
  }

  async createContainer(podId: string, p: PodSpec, c: { name: string; image: string; command: string[]; logPath: string }): Promise<string> {
    const meta = Writer.create();
    str(meta, 1, c.name);
    const image = Writer.create();
    str(image, 1, c.image);
    const cfg = Writer.create();
    msg(cfg, 1, meta.finish());
    msg(cfg, 2, image.finish());
    for (const a of c.command) cfg.uint32((3 << 3) | 2).string(a);
    str(cfg, 11, c.logPath);
    const w = Writer.create();
    str(w, 1, podId);
    msg(w, 2, cfg.finish());
    msg(w, 3, podSandboxConfig(p));
    return text(fieldsOf(await this.call('CreateContainer', w.finish())).get(1)?.[0]);
  }

  async startContainer(id: string): Promise<void> {
    const w = Writer.create();
    str(w, 1, id);
    await this.call('StartContainer', w.finish());
  }

  async containerStatus(id: string): Promise<ContainerStatus> {
    const w = Writer.create();
    str(w, 1, id);
    const status = fieldsOf(await this.call('ContainerStatus', w.finish())).get(1)?.[0];
    const f = status instanceof Uint8Array ? fieldsOf(status) : new Map<number, Array<number | Uint8Array>>();
    const num = (n: number) => { const v = f.get(n)?.[0]; return typeof v === 'number' ? v : 0; };
    return { state: num(3), exitCode: num(7), reason: text(f.get(10)?.[0]), message: text(f.get(11)?.[0]) };
  }

  async removeContainer(id: string): Promise<void> {
    const w = Writer.create();
    str(w, 1, id);
    await this.call('RemoveContainer', w.finish());
  }

  async stopPodSandbox(id: string): Promise<void> {
    const w = Writer.create();
    str(w, 1, id);
    await this.call('StopPodSandbox', w.finish());
  }

  async removePodSandbox(id: string): Promise<void> {
    const w = Writer.create();
    str(w, 1, id);
    await this.call('RemovePodSandbox', w.finish());
  }

  close(): void {
    this.client.close();
  }
}
