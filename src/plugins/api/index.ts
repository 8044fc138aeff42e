// The backend API: the whole contract between the shim core and an execution backend (built-in or
// loaded from a plugin), and nothing of the daemon's internals. It mirrors the OCI lifecycle; the core
// never knows which backend it drives and assumes nothing about host processes: processes are named by
// (container id, exec id), their exits, OOM kills and statistics come from the backend, and signals,
// stdin's close and pty resizes go to it. docs/backends.md walks through writing one.
//
// Host-process backends (runc, native) share the helpers in ../host/ (monitor stdio, cgroup stats, OOM
// watch, signals by host pid), so that each of them stays short.
import type { RuntimeConfig } from '../config.js';

import * as errors from './errors.js';
import { HostCgroups } from '../host/cgroup-watch.js';
import { signalHostPid } from '../host/signal.js';
import { writeCleanupCommand } from '../host/cleanup.js';

export * from './errors.js';
export type { RuntimeConfig };

/**
 * The version of this contract. A plugin exports the one it implements; the core refuses another.
 * Bumped when a change would break a backend written against the previous one.
 */
export const BACKEND_API_VERSION = 1;

/**
 * What a plugin gets at run time in `BackendInit.api` (the daemon is one bundled file, so a plugin does
 * not import it): the contract's version, its error classes (each with its wire code), and the helpers
 * of host-process backends (a container's host cgroups: OOM watch and Stats; signals by host pid), and
 * writeCleanupCommand: the command the C `delete` binary runs for the container after its daemon is
 * gone, which every backend writes into the bundle at create.
 */
export const backendApi = {
  version: BACKEND_API_VERSION, errors, host: { HostCgroups, signalHostPid }, writeCleanupCommand,
} as const;
export type BackendApi = typeof backendApi;

/** A pino-compatible logger: an object of fields first, then the message. */
export interface Logger {
  debug(fields: object, msg?: string): void;
  info(fields: object, msg?: string): void;
  warn(fields: object, msg?: string): void;
  error(fields: object, msg?: string): void;
}

export interface Exit {
  /** The process's pid in the backend's own terms (0 when it has none the host could use). */
  pid: number;
  /** Exit code, or 128 + signal number. */
  status: number;
  /** When it exited (a PreciseDate from the monitor carries the nanoseconds). */
  at: Date;
}

/** A process for the monitor to run (and reap): the runtime CLI, a logger. */
export interface SpawnRequest {
  ioKey: string;
  cwd: string;
  stdin: string;
  stdout: string;
  stderr: string;
  argv: string[];
  /** Empty: inherit the monitor's environment. */
  env?: string[];
}

/**
 * What the core lends a backend whose processes live on the host: the container's monitor (a child
 * subreaper) spawns, reaps, keeps stdio and consoles, and watches cgroups for OOM kills.
 */
export interface ProcessHost {
  spawn(req: SpawnRequest): Promise<number>;
  /** The exit of a process the monitor reaps (its own children and adopted orphans alike). */
  waitExit(pid: number): Promise<Exit>;
  /**
   * A console socket for `ioKey` (the OCI `--console-socket` protocol): the monitor receives the pty
   * master sent to it and copies between the master and the given stdin/stdout specs. Returns its path.
   */
  console(ioKey: string, stdin: string, stdout: string): Promise<string>;
  /** Resolves once the pty master of `ioKey` has arrived. */
  consoleWait(ioKey: string, timeoutMs: number): Promise<void>;
  /** TIOCSWINSZ on the master of `ioKey`; resolves false if that key has no console. */
  resize(ioKey: string, width: number, height: number): Promise<boolean>;
  /** Closes the monitor's own end of the stdin of `ioKey`, so the process sees EOF once the client closes. */
  closeIo(ioKey: string): Promise<void>;
  /**
   * The monitor watches a memory cgroup (v1: the directory's memory.oom_control eventfd; v2: memory.events)
   * for the container `containerId` and calls `onOom` once per kernel OOM kill, before it reports the exits
   * the kill caused. The watch ends with the container (its Delete releases it at the monitor).
   */
  oomWatch(containerId: string, version: 1 | 2, dir: string, onOom: () => void): Promise<void>;
}

export interface Stdio {
  /** Monitor stdio specs: '' = /dev/null, `fifo:<path>`, `file:<path>`, `logger:1|2`. */
  stdin: string;
  stdout: string;
  stderr: string;
  /** The process gets a pty; stdin/stdout are then copied to and from its master. */
  terminal: boolean;
}

/** The group a backend instance serves: one pod sandbox (containerd groups a pod into one shim), or one container. */
export interface Group {
  /** The pod sandbox id when containerd groups a pod, else the id of the group's first container. */
  id: string;
  namespace: string;
}

/**
 * What the core gives a backend's factory. There is one backend instance per group and backend name:
 * the factory is called when the group's first container that uses the backend is created (or adopted
 * by a restarted daemon), and `close` when its last one is deleted.
 */
export interface BackendInit {
  api: BackendApi;
  group: Group;
  host: ProcessHost;
  /** The daemon's log; each container's own log comes with its CreateRequest. */
  log: Logger;
  /** Called once per process when it has exited; execId '' is the container's init. */
  exited(containerId: string, execId: string, exit: Exit): void;
  /** Called once per OOM kill in the container, before the exits it caused are reported. */
  oom(containerId: string): void;
  /** What `stateOf` returns for the container has changed: the core records it now. */
  stateChanged(containerId: string): void;
}

/** A rootfs mount as containerd sends it in CreateTaskRequest. */
export interface Mount {
  type: string;
  source: string;
  options: string[];
}

export interface CreateRequest {
  id: string;
  bundle: string;
  namespace: string;
  /** This container's runtime options (the runc keys and tsrt's own, as the options file gave them). */
  config: RuntimeConfig;
  /**
   * The options file's `[backends.<this backend's name>]` table ({} when there is none). The backend checks
   * it: an unknown key or a wrong value is an InvalidArgumentError naming it, before anything is made.
   */
  options: Record<string, unknown>;
  /** This container's log (its bundle's `log` FIFO, every line with its id). */
  log: Logger;
  stdio: Stdio;
  /** Key under which the monitor keeps this process's stdio (keepers, console). */
  ioKey: string;
  /** CRI's `io.kubernetes.cri.container-type` ('sandbox' or 'container'); '' outside CRI. */
  containerType: string;
}

export interface ExecRequest {
  id: string;
  execId: string;
  /** The OCI `Process` of the exec (from ExecProcessRequest.spec), `terminal` already set. */
  spec: Record<string, unknown>;
  stdio: Stdio;
  ioKey: string;
}

export interface AdoptRequest {
  id: string;
  bundle: string;
  namespace: string;
  config: RuntimeConfig;
  log: Logger;
  pid: number;
  /** Its init has not been seen exiting, so the backend reports its exit through `exited` again. */
  running: boolean;
  /** Execs started by the earlier daemon that have not been seen exiting. */
  runningExecs: Array<{ execId: string; pid: number }>;
  /** What `stateOf` returned for the container when the earlier daemon last recorded it. */
  state: unknown;
}

/** google.protobuf.Any: the metrics message of a Stats reply, already encoded. */
export interface AnyMessage {
  typeUrl: string;
  value: Uint8Array;
}

export interface Backend {
  readonly name: string;
  /**
   * Create the container; its init exists and waits for `start`. Returns the init's pid. Before anything
   * is made that outlives the daemon, write the command that removes it (api.writeCleanupCommand).
   */
  create(req: CreateRequest): Promise<{ pid: number }>;
  /** Take over a container an earlier daemon created (after a daemon restart). */
  adopt(req: AdoptRequest): void;
  start(id: string): Promise<void>;
  /** Run an extra process in the running container; returns its pid. Its exit comes via `exited`. */
  exec(req: ExecRequest): Promise<{ pid: number }>;
  /** Forget what the backend kept for an exec. */
  deleteExec(id: string, execId: string): Promise<void>;
  /**
   * Signal a process: the init (execId ''), with `all` every process of the container, or one exec.
   * A process that has already finished is a NotFoundError('process already finished').
   */
  signal(id: string, execId: string, signal: number, all: boolean): Promise<void>;
  /** Remove the container from the runtime; `force` also kills a container that still runs. */
  delete(id: string, force: boolean): Promise<void>;
  /** Pids of every process in the container. */
  pids(id: string): Promise<number[]>;
  /** Freeze / thaw every process of the container. */
  pause(id: string): Promise<void>;
  resume(id: string): Promise<void>;
  /** Apply an OCI `LinuxResources` object to the running container. */
  update(id: string, resources: Record<string, unknown>): Promise<void>;
  /** The container's metrics (cgroup v1 or v2 Metrics, or the backend's own); NotFoundError once it has none. */
  stats(id: string): Promise<AnyMessage>;
  /** Resize the pty of the process whose stdio lives under `ioKey` (no-op if it has none). */
  resizePty(ioKey: string, width: number, height: number): Promise<void>;
  /** The client closed the process's stdin (CloseIO with stdin): the process must see EOF. */
  closeIo(ioKey: string): Promise<void>;
  /** Anything the backend needs back after a daemon restart (JSON-serialisable); the core persists it. */
  stateOf?(id: string): unknown;
  /** The group's last container of this backend is gone: release what the instance holds. */
  close?(): Promise<void>;
}

export type BackendFactory = (init: BackendInit) => Backend;
