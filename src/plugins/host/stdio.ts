// Stdio for backends whose processes are host processes (runc, native, gVisor's host-side runsc): turns
// containerd's stdio (FIFO paths, `file://` and `binary://` URIs, a terminal) into the monitor's specs for
// the process to be spawned, starts a `binary://` logger first, and applies IoUid/IoGid. The process gets
// the client's FIFOs themselves (zero copy); src/io/stdio.ts has the rules.
import fs from 'node:fs/promises';
import { stdioFor } from '../../io/stdio.js';
import type { Logger, MonitorStdio, ProcessHost, Stdio } from '../api/index.js';

export interface HostStdioRequest {
  /** The monitor's key for the process's stdio. */
  ioKey: string;
  containerId: string;
  namespace: string;
  stdio: Stdio;
  /** IoUid/IoGid of the container's options: 0/0 leaves the FIFOs as they are. */
  uid: number;
  gid: number;
  log: Logger;
  /** Changes a FIFO's owner (tests bring their own); default fs.chown. */
  chown?: (file: string, uid: number, gid: number) => Promise<void>;
}

/**
 * IoUid/IoGid: runc-v2 chowns the pipes it gives the process for FIFO and file:// stdio (go-runc
 * NewPipeIO), so that a process in a user namespace can reopen /proc/self/fd/N. The process here gets the
 * client's FIFOs themselves, so those are chowned; they are the client's per-process files under a
 * directory only root can enter. A file:// log is handed over as well, and chowning it would give the log
 * file itself to the container's user, so it is left as it is, with a warning. A terminal and binary://
 * logs get no owner under runc-v2 either.
 */
async function chownStdio(req: HostStdioRequest, specs: string[]): Promise<void> {
  const { uid, gid } = req;
  if (!uid && !gid) return;
  const chown = req.chown ?? ((f: string, u: number, g: number) => fs.chown(f, u, g));
  let warned = false;
  for (const spec of specs) {
    if (spec.startsWith('fifo:')) {
      await chown(spec.slice('fifo:'.length), uid, gid);
    } else if (spec.startsWith('file:') && !warned) {
      warned = true;
      req.log.warn({ ioUid: uid, ioGid: gid, file: spec.slice('file:'.length), ioKey: req.ioKey },
        'IoUid/IoGid not applied to a file:// log: tsrt hands the log file to the process itself');
    }
  }
}

/** The monitor specs for a host process's stdio; a `binary://` logger is running when this resolves. */
export async function hostStdio(host: ProcessHost, req: HostStdioRequest): Promise<MonitorStdio> {
  const plan = stdioFor(req.stdio);
  if (!plan.terminal) await chownStdio(req, [plan.stdin, plan.stdout, plan.stderr]);
  if (plan.logger) await host.logger(req.ioKey, req.containerId, req.namespace, plan.logger.argv);
  return { stdin: plan.stdin, stdout: plan.stdout, stderr: plan.stderr, terminal: plan.terminal };
}

/** The stdio of the runtime command that makes a host process: its own, or none with a console socket. */
export interface HostProcessIo {
  /** Monitor specs for host.spawn ('' each when the process gets a terminal: the console copies). */
  io: { stdin: string; stdout: string; stderr: string };
  /** A terminal's console socket (the OCI --console-socket protocol), for the runtime command. */
  consoleSocket?: string;
}

/**
 * hostStdio, then for a terminal the console socket the runtime hands the pty master to: what every
 * host-process backend spawns its runtime command with (wait for the master with host.consoleWait).
 */
export async function hostProcessIo(host: ProcessHost, req: HostStdioRequest): Promise<HostProcessIo> {
  const specs = await hostStdio(host, req);
  if (!specs.terminal) return { io: { stdin: specs.stdin, stdout: specs.stdout, stderr: specs.stderr } };
  const consoleSocket = await host.console(req.ioKey, specs.stdin, specs.stdout);
  return { io: { stdin: '', stdout: '', stderr: '' }, consoleSocket };
}
