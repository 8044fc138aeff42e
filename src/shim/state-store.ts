// The daemon's per-container state on disk, so that a daemon that crashed and was started again by the
// monitors serves the containers it had. One JSON file per container under
// `<daemon dir>/state/<monitor id>/<namespace>/<container id>.json`, complete at every moment.
// No fsync: the records only need to outlive the daemon, not the machine.
//
// A record is saved several times per exec (Exec, exit, Delete), so a save is one system call where it
// can be: the file stays open and the new record is written over the old one at offset 0, padded with
// spaces to the old one's length (JSON allows trailing white space, and no truncate is needed). That is
// safe only while both fit in the file's first page: the kernel copies a write into the page cache page
// by page and stops between pages when the writer is killed, so a write within one page lands whole or
// not at all, and a daemon SIGKILLed in the middle never leaves half a record. A larger record, a file
// that was unlinked behind our back, and the first save of a container take the slow way:
//
// The slow save writes `<id>.json.tmp` in full, unlinks `<id>.json` and renames the new file to it, so a
// complete record is on disk at every moment: `<id>.json`, or, between the unlink and the rename,
// `<id>.json.tmp` (load takes that one when `<id>.json` is missing). The target is unlinked rather than
// replaced by the rename because ext4 (which holds /run on hosts without a tmpfs there, the reference
// machine among them) starts writeback of a file renamed over another one (auto_da_alloc).
import fs from 'node:fs';
import path from 'node:path';
import type { RuntimeConfig } from '../plugins/config.js';
import type { ProcessStatus, ProcessStdio } from './process.js';

export interface ProcessRecord { pid: number; status: ProcessStatus; exitStatus: number; exitedAt: string | null }

export interface ExecRecord extends ProcessRecord {
  execId: string;
  stdio: ProcessStdio;
  /** The OCI Process of an exec not started yet. */
  spec: Record<string, unknown> | null;
}

export interface ContainerRecord {
  id: string;
  namespace: string;
  bundle: string;
  backend: string;
  config: RuntimeConfig;
  /** The container has no pid namespace of its own (optional in records of older daemons). */
  sharedPidNs?: boolean;
  stdio: ProcessStdio;
  init: ProcessRecord;
  /** The init's exit while it waits for its execs to exit first (task-service.ts, "Event order"). */
  heldInitExit?: { status: number; at: string } | null;
  execs?: ExecRecord[];
  /** What the backend's stateOf returned (JSON), handed back to it at adopt. */
  backendState?: unknown;
}

/** Records up to this size are written in place: within one page (x86-64's and arm64's smallest). */
const IN_PLACE_MAX = 4096;

/** A record file kept open for in-place saves, and the length of what it holds. */
interface OpenRecord { fd: number; size: number }

export class StateStore {
  /**
   * Namespace directories made (or found) by this store: a record is saved several times per exec, and
   * the mkdir with its stat is a third of a save's system calls. Dropped when remove() takes one away.
   */
  private readonly made = new Set<string>();
  /** Record files open for in-place saves, by path. */
  private readonly open = new Map<string, OpenRecord>();

  constructor(private readonly dir: string) {}

  private file(namespace: string, id: string): string {
    return path.join(this.dir, namespace, `${id}.json`);
  }

  private makeDir(dir: string): void {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.made.add(dir);
  }

  save(r: ContainerRecord): void {
    const f = this.file(r.namespace, r.id);
    const text = Buffer.from(JSON.stringify(r));
    const o = this.open.get(f);
    if (o && text.length <= IN_PLACE_MAX && o.size <= IN_PLACE_MAX && this.writeInPlace(o, text)) return;
    if (o) this.close(f);
    this.replace(f, text);
    if (text.length > IN_PLACE_MAX) return;
    try {
      this.open.set(f, { fd: fs.openSync(f, fs.constants.O_WRONLY), size: text.length });
    } catch { /* the next save takes the slow way again */ }
  }

  /** One write over the old record, padded to its length; false if the file is no longer linked. */
  private writeInPlace(o: OpenRecord, text: Buffer): boolean {
    if (fs.fstatSync(o.fd).nlink === 0) return false;
    const buf = text.length >= o.size ? text : Buffer.concat([text, Buffer.alloc(o.size - text.length, 0x20)]);
    if (fs.writeSync(o.fd, buf, 0, buf.length, 0) !== buf.length) return false;
    o.size = buf.length;
    return true;
  }

  /** The slow save: a new file in full, then renamed to the record's name (see the top of this file). */
  private replace(f: string, text: Buffer): void {
    const dir = path.dirname(f);
    if (!this.made.has(dir)) this.makeDir(dir);
    const tmp = `${f}.tmp`;
    try {
      fs.writeFileSync(tmp, text, { mode: 0o600 });
    } catch (e) {
      // the directory went away behind our back: made again, as before the first save
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      this.makeDir(dir);
      fs.writeFileSync(tmp, text, { mode: 0o600 });
    }
    unlinkIfThere(f);
    fs.renameSync(tmp, f);
  }

  private close(f: string): void {
    const o = this.open.get(f);
    if (!o) return;
    this.open.delete(f);
    try {
      fs.closeSync(o.fd);
    } catch { /* closed already */ }
  }

  remove(namespace: string, id: string): void {
    const f = this.file(namespace, id);
    this.close(f);
    unlinkIfThere(f);
    // left behind by a daemon that died in the middle of a save, it would bring the container back
    unlinkIfThere(`${f}.tmp`);
    try {
      fs.rmdirSync(path.join(this.dir, namespace));
      this.made.delete(path.join(this.dir, namespace));
      fs.rmdirSync(this.dir);
    } catch { /* not empty */ }
  }

  /** Every record of this monitor; unreadable files are skipped and reported. */
  load(onBad: (file: string, err: Error) => void): ContainerRecord[] {
    const out: ContainerRecord[] = [];
    let namespaces: string[];
    try {
      namespaces = fs.readdirSync(this.dir);
    } catch {
      return out;
    }
    for (const ns of namespaces) {
      let files: string[];
      try {
        const names = fs.readdirSync(path.join(this.dir, ns));
        const records = new Set(names.filter((f) => f.endsWith('.json')));
        // a save interrupted between its unlink and its rename left the complete new record as .tmp
        const interrupted = names.filter((f) => f.endsWith('.json.tmp') && !records.has(f.slice(0, -'.tmp'.length)));
        files = [...records, ...interrupted];
      } catch {
        continue;
      }
      for (const f of files) {
        const file = path.join(this.dir, ns, f);
        try {
          out.push(JSON.parse(fs.readFileSync(file, 'utf8')) as ContainerRecord);
          // the interrupted save is finished, so that the next one does not truncate the only copy
          if (f.endsWith('.tmp')) fs.renameSync(file, file.slice(0, -'.tmp'.length));
        } catch (e) {
          onBad(file, e as Error);
        }
      }
    }
    return out;
  }

  /** Drops the whole monitor's directory (the monitor is gone). */
  clear(): void {
    for (const f of [...this.open.keys()]) this.close(f);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

function unlinkIfThere(file: string): void {
  try {
    fs.unlinkSync(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}
