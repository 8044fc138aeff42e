// The contract between the shim core and an execution backend. It mirrors the OCI lifecycle; the core
// never knows which backend it drives. Exits are reported by (container id, exec id) so that backends
// whose processes are not children of the monitor (a VM's agent) fit the same shape.
import type { Exit, SpawnRequest } from '../shim/monitor-link.js';
import type { Logger } from '../shim/log.js';
import type { RuntimeConfig } from './config.js';

export type { Exit };

/** What the core lends a backend: processes spawned by (and reaped by) the container's monitor. */
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
}

export interface Stdio {
  /** Monitor stdio specs: '' = /dev/null, `fifo:<path>`, `file:<path>`, `logger:1|2`. */
  stdin: string;
  stdout: string;
  stderr: string;
  /** The process gets a pty; stdin/stdout are then copied to and from its master. */
  terminal: boolean;
}

export interface BackendInit {
  namespace: string;
  config: RuntimeConfig;
  host: ProcessHost;
  log: Logger;
  /** Called once per process when it has exited; execId '' is the container's init. */
  exited(containerId: string, execId: string, exit: Exit): void;
}

export interface CreateRequest {
  id: string;
  bundle: string;
  stdio: Stdio;
  /** Key under which the monitor keeps this process's stdio (keepers, console). */
  ioKey: string;
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
  pid: number;
  /** Its init has not been seen exiting, so the backend reports its exit through `exited` again. */
  running: boolean;
  /** Execs started by the earlier daemon that have not been seen exiting. */
  runningExecs: Array<{ execId: string; pid: number }>;
}

export interface Backend {
  readonly name: string;
  /** Create the container; its init exists and waits for `start`. Returns the init's host pid. */
  create(req: CreateRequest): Promise<{ pid: number }>;
  /** Take over a container an earlier daemon created (after a daemon restart). */
  adopt(req: AdoptRequest): void;
  start(id: string): Promise<void>;
  /** Run an extra process in the running container; returns its host pid. Its exit comes via `exited`. */
  exec(req: ExecRequest): Promise<{ pid: number }>;
  /** Forget what the backend kept for an exec (pid files). */
  deleteExec(id: string, execId: string): Promise<void>;
  /** Signal the init, or with `all` every process of the container. */
  kill(id: string, signal: number, all: boolean): Promise<void>;
  /** Remove the container from the runtime; `force` also kills a container that still runs. */
  delete(id: string, force: boolean): Promise<void>;
  /** Host pids of every process in the container. */
  pids(id: string): Promise<number[]>;
  /** Freeze / thaw every process of the container. */
  pause(id: string): Promise<void>;
  resume(id: string): Promise<void>;
  /** Apply an OCI `LinuxResources` object to the running container. */
  update(id: string, resources: Record<string, unknown>): Promise<void>;
  /** Resize the pty of the process whose stdio lives under `ioKey` (no-op if it has none). */
  resizePty(ioKey: string, width: number, height: number): Promise<void>;
}

export type BackendFactory = (init: BackendInit) => Backend;
