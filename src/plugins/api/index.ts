// The backend API: the whole contract between the shim core and an execution backend (built-in or
// loaded from a plugin), and nothing of the daemon's internals. It mirrors the OCI lifecycle; the core
// never knows which backend it drives and assumes nothing about host processes: processes are named by
// (container id, exec id), their exits, OOM kills and statistics come from the backend, and signals,
// stdin's close and pty resizes go to it. docs/backends.md walks through writing one.
//
// Host-process backends (runc, native) share the helpers in ../host/ (monitor stdio, rootfs mounts,
// cgroup stats, OOM watch, signals by host pid), so that each of them stays short.
import type { ContainerConfig } from '../config.js';

import * as errors from './errors.js';
import { HostCgroups } from '../host/cgroup-watch.js';
import { signalHostPid } from '../host/signal.js';
import { writeCleanupCommand } from '../host/cleanup.js';
import { hostProcessIo, hostStdio } from '../host/stdio.js';
import { HostRootfs } from '../host/rootfs.js';

export * from './errors.js';
export type { ContainerConfig };

/**
 * The version of this contract. A plugin exports the one it implements; the core refuses another.
 * Bumped when a change would break a backend written against the previous one.
 */
export const BACKEND_API_VERSION = 2;

/**
 * What a plugin gets at run time in `BackendInit.api` (the daemon is one bundled file, so a plugin does
 * not import it): the contract's version, its error classes (each with its wire code), and the helpers
 * of host-process backends (a container's host cgroups: OOM watch and Stats; signals by host pid; its
 * stdio as monitor specs; its rootfs mounts), and
 * writeCleanupCommand: the command the C `delete` binary runs for the container after its daemon is
 * gone, which every backend writes into the bundle at create.
 */
export const backendApi = {
  version: BACKEND_API_VERSION, errors, host: { HostCgroups, HostRootfs, hostProcessIo, hostStdio, signalHostPid }, writeCleanupCommand,
} as const;
export type BackendApi = typeof backendApi;

/**
 * containerd's rule for exec ids (at most 76 characters of an identifier charset). The core refuses any
 * other before a backend sees it, so a backend may use an exec id in a file name.
 */
export const EXEC_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,75}$/;

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

/**
 * The monitor's stdio specs for a process it spawns: '' = /dev/null, `fifo:<path>`, `file:<path>`,
 * `logger:1|2` (the pipes of the io key's binary:// logger). host.hostStdio makes them from containerd's.
 */
export interface MonitorStdio {
  stdin: string;
  stdout: string;
  stderr: string;
  /** The process gets a pty; stdin/stdout are then copied to and from its master (ProcessHost.console). */
  terminal: boolean;
}

/** A process for the monitor to run (and reap): the runtime CLI, a logger. */
export interface SpawnRequest {
  ioKey: string;
  cwd: string;
  /**
   * MonitorStdio specs. stdin may also be `channel:`: a private socket to the monitor, which makes the
   * process an exec server that `ProcessHost.handOff` sends processes to (kept under ioKey until its release).
   */
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
/** A process for an exec server to start (ProcessHost.handOff): its stdio as MonitorStdio specs and the server's request. */
export interface HandOffRequest {
  ioKey: string;
  stdin: string;
  stdout: string;
  stderr: string;
  message: string;
}

export interface ProcessHost {
  spawn(req: SpawnRequest): Promise<number>;
  /**
   * Opens a process's stdio as spawn does (keepers under req.ioKey) and sends it with req.message to the exec
   * server spawned with stdin `channel:` under `channelKey`, which starts the process as a child of the
   * monitor. Resolves with its pid and the warning lines the server sent. Rejects with UnavailableError
   * when the server cannot take the request (there is none under channelKey, it is gone or not reading, the
   * message is too large for one), and with a RuntimeError whose message is the server's error line when
   * the process could not be started.
   */
  handOff(channelKey: string, req: HandOffRequest): Promise<{ pid: number; warnings: string[] }>;
  /** Closes everything the monitor keeps under ioKey: stdio keepers, console, logger, copies, an exec server's channel. */
  release(ioKey: string): Promise<void>;
  /** The exit of a process the monitor reaps (its own children and adopted orphans alike). */
  waitExit(pid: number): Promise<Exit>;
  /**
   * Signals a child of the monitor (one it spawned or adopted) only while it has not exited: a pid that
   * exited and was taken by another process is never signalled. NotFoundError ("process already finished")
   * once it has exited, or if it is not the monitor's child.
   */
  signal(pid: number, signal: number): Promise<void>;
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
  /**
   * Starts the `binary://` logger of `ioKey` (argv: the URI's path, then its query as arguments), which
   * reads what a process spawned with stdout `logger:1` and stderr `logger:2` writes.
   */
  logger(ioKey: string, containerId: string, namespace: string, argv: string[]): Promise<void>;
  /** Mounts on `target` (on top of what is there), as mount(8) with `-t type -o options source target`. */
  mount(type: string, source: string, target: string, options: string[]): Promise<void>;
  /** Takes down every mount stacked on `target`; nothing mounted there is not an error. */
  umount(target: string): Promise<void>;
  /**
   * For processes that are not host children (a VM's agent): the monitor copies, in C and without the
   * daemon, between `endpoint` (`unix:<path>`: a stream socket it connects to; or the path of a FIFO or
   * character device) and one of containerd's stdio streams, `target` (`fifo:<path>`, or `file:<path>`
   * for output). 'out' copies endpoint → target and closes the target at the endpoint's EOF, so the client
   * sees EOF; 'in' copies target (the stdin FIFO) → endpoint (one per io key), and ends once `closeIo(ioKey)`
   * has let go of the monitor's own writer and the client has closed its end: at that EOF the endpoint's
   * write side is shut, with every byte delivered (runc-v2's stdin alike). The copies keep flowing while the
   * daemon is restarted and end with the io key's release at Delete.
   */
  copy(ioKey: string, direction: 'in' | 'out', endpoint: string, target: string): Promise<void>;
}

/**
 * A process's stdio in containerd's terms, as the Create or Exec request gave it. stdin: the path of the
 * client's FIFO, or ''. stdout and stderr: FIFO paths, or stdout a `file:///path` (both streams go to that
 * file) or a `binary:///path?args` logger (the process's output is piped to it; stdin stays unconnected);
 * '' = none. With `terminal`, stderr is unused (the pty merges it). The core has checked the schemes
 * already; host.hostStdio turns this into monitor specs, a VM backend asks for copies (ProcessHost.copy).
 */
export interface Stdio {
  stdin: string;
  stdout: string;
  stderr: string;
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
  /**
   * containerd's rootfs mounts, to be stacked in order on `<bundle>/rootfs` (none: the bundle's rootfs is
   * used as it is). The backend makes them (host.HostRootfs on the host) and its delete takes them down.
   */
  rootfs: Mount[];
  /**
   * This container's runtime options (the runc keys: BinaryName, Root, SystemdCgroup, NoPivotRoot,
   * NoNewKeyring, IoUid, IoGid). The shim's and the daemon's options are not the backend's.
   */
  config: ContainerConfig;
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
  config: ContainerConfig;
  /** The backend's `[backends.<name>]` table, as the container's Create had it. */
  options: Record<string, unknown>;
  log: Logger;
  /** Where the process's stdio lives at the monitor (the init's; an exec's is `<id>/<execId>`). */
  ioKey: string;
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
