// One micro-VM: QEMU started with the guest kernel and initramfs (scripts/build-guest.mjs), reached through
// its agent (agent-link.ts). This module boots it, waits for the agent's hello, and stops it: a power-off
// asked of the agent, then SIGKILL of QEMU if it has not ended by the deadline. What starts QEMU is given
// (`QemuLauncher`), so that the backend can have the monitor spawn it (the VM then outlives a daemon) and
// tests can start it themselves.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { RuntimeError, UnavailableError } from '../api/errors.js';
import { AgentLink, type AgentHello } from './agent-link.js';
import { chooseAccel, qemuArgs, tscKhz, type Accel } from './qemu.js';

export const AGENT_PORT = 'tsrt.agent';
export const QEMU_BIN = 'qemu-system-x86_64';

export interface GuestImage { kernel: string; initrd: string; kernelRelease: string }

/** The built guest below `dir` (native/build/guest), checked to be there. */
export function guestImage(dir: string): GuestImage {
  const manifest = path.join(dir, 'manifest.json');
  let m: { kernelRelease?: string };
  try {
    m = JSON.parse(fs.readFileSync(manifest, 'utf8')) as { kernelRelease?: string };
  } catch (e) {
    throw new RuntimeError(`no guest image at ${dir} (${(e as Error).message}); npm run build:guest makes it`);
  }
  const img = { kernel: path.join(dir, 'vmlinux'), initrd: path.join(dir, 'initramfs.cpio.gz'), kernelRelease: m.kernelRelease ?? '' };
  for (const f of [img.kernel, img.initrd]) if (!fs.existsSync(f)) throw new RuntimeError(`guest image file ${f} is missing; npm run build:guest makes it`);
  return img;
}

export interface QemuProcess {
  pid: number;
  /** Resolves when QEMU has ended: its exit code, or the signal that ended it. */
  exited: Promise<{ code: number | null; signal: string | null }>;
  kill(signal: NodeJS.Signals): void;
}

/** Starts QEMU with `args`, its serial console (the guest's log) appended to `consoleLog`. */
export type QemuLauncher = (args: string[], consoleLog: string) => QemuProcess;

/** A launcher for tools and tests: QEMU as a child of this process. */
export const childQemu: QemuLauncher = (args, consoleLog) => {
  const out = fs.openSync(consoleLog, 'a');
  try {
    const child = spawn(QEMU_BIN, args, { stdio: ['ignore', out, out] });
    const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => {
      child.once('exit', (code, signal) => resolve({ code, signal }));
      child.once('error', () => resolve({ code: null, signal: null }));
    });
    if (child.pid === undefined) throw new RuntimeError(`cannot start ${QEMU_BIN}`);
    return { pid: child.pid, exited, kill: (s) => { child.kill(s); } };
  } finally {
    fs.closeSync(out);
  }
};

export interface BootOptions {
  image: GuestImage;
  /** Where the guest's files live: the agent's socket and the console log. */
  dir: string;
  memoryMiB?: number;
  vcpus?: number;
  accel?: Accel;
  bootTimeoutMs?: number;
  launcher?: QemuLauncher;
  /** Host directories shared with the guest over 9p, by tag. */
  shares?: ReadonlyArray<{ tag: string; path: string }>;
}

export class Guest {
  private constructor(
    readonly qemu: QemuProcess,
    private link: AgentLink,
    readonly hello: AgentHello,
    readonly accel: Accel,
    readonly socket: string,
    readonly consoleLog: string,
    /** Milliseconds from QEMU's start to the agent's hello. */
    readonly bootMs: number,
  ) {}

  static async boot(o: BootOptions): Promise<Guest> {
    const accel = o.accel ?? chooseAccel().accel;
    const socket = path.join(o.dir, 'agent.sock');
    const consoleLog = path.join(o.dir, 'console.log');
    fs.mkdirSync(o.dir, { recursive: true });
    fs.rmSync(socket, { force: true });
    const args = qemuArgs({
      kernel: o.image.kernel, initrd: o.image.initrd, memoryMiB: o.memoryMiB ?? 128, vcpus: o.vcpus ?? 1, accel,
      agentSocket: socket, portName: AGENT_PORT, shares: o.shares, tscKhz: accel === 'tcg' ? tscKhz(fs.readFileSync('/proc/cpuinfo', 'utf8')) : undefined,
    });
    const t0 = Date.now();
    const qemu = (o.launcher ?? childQemu)(args, consoleLog);
    let ended = false;
    void qemu.exited.then(() => { ended = true; });
    const timeoutMs = o.bootTimeoutMs ?? 60_000;
    try {
      const agent = await AgentLink.connect(socket, timeoutMs, () => !ended);
      const hello = await agent.hello(Math.max(1, timeoutMs - (Date.now() - t0))).catch((e: Error) => {
        agent.close();
        throw e;
      });
      return new Guest(qemu, agent, hello, accel, socket, consoleLog, Date.now() - t0);
    } catch (e) {
      qemu.kill('SIGKILL');
      await qemu.exited;
      fs.rmSync(socket, { force: true });
      const tail = consoleTail(consoleLog);
      throw new UnavailableError(`guest did not come up: ${(e as Error).message}${tail ? `; its console ended with: ${tail}` : ''}`);
    }
  }

  get agent(): AgentLink { return this.link; }

  /**
   * A new connection to the agent in place of the current one (QEMU's socket serves one at a time), as a
   * restarted daemon needs; the agent's hello is asked again.
   */
  async reconnect(timeoutMs = 10_000): Promise<AgentHello> {
    this.link.close();
    this.link = await AgentLink.connect(this.socket, timeoutMs);
    return this.link.hello(timeoutMs);
  }

  /** Powers the guest off through its agent; kills QEMU if it has not ended within `timeoutMs`. */
  async stop(timeoutMs = 10_000): Promise<{ code: number | null; signal: string | null; killed: boolean }> {
    let killed = false;
    await this.link.request('poweroff', [], timeoutMs).catch(() => undefined);
    this.link.close();
    const t = setTimeout(() => { killed = true; this.qemu.kill('SIGKILL'); }, timeoutMs);
    const end = await this.qemu.exited;
    clearTimeout(t);
    fs.rmSync(this.socket, { force: true });
    return { ...end, killed };
  }
}

function consoleTail(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8').trim().split('\n').slice(-3).join(' | ');
  } catch {
    return '';
  }
}
