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
}

export interface Stdio {
  /** Monitor stdio specs: '' = /dev/null, `fifo:<path>`, `file:<path>`. */
  stdin: string;
  stdout: string;
  stderr: string;
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
  /** Key under which the monitor keeps this process's stdio keepers. */
  ioKey: string;
}

export interface Backend {
  readonly name: string;
  /** Create the container; its init exists and waits for `start`. Returns the init's host pid. */
  create(req: CreateRequest): Promise<{ pid: number }>;
  /**
   * Take over a container an earlier daemon created (after a daemon restart). `running`: its init has not
   * been seen exiting, so the backend reports its exit through `exited` again.
   */
  adopt(req: { id: string; bundle: string; pid: number; running: boolean }): void;
  start(id: string): Promise<void>;
  /** Signal the init, or with `all` every process of the container. */
  kill(id: string, signal: number, all: boolean): Promise<void>;
  /** Remove the container from the runtime; `force` also kills a container that still runs. */
  delete(id: string, force: boolean): Promise<void>;
  /** Host pids of every process in the container. */
  pids(id: string): Promise<number[]>;
}

export type BackendFactory = (init: BackendInit) => Backend;
