// A host container's cgroups, for backends whose containers are host processes (runc, native): found
// from the init's pid while it lives, watched for OOM kills through the monitor, read for Stats. The
// metrics readers and protos are loaded by the first Stats call only.
import { locateCgroup, memoryCgroup, type CgroupLocation } from '../../cgroups/locate.js';
import { NotFoundError } from '../api/errors.js';
import type { AnyMessage, Logger, ProcessHost } from '../api/index.js';

export class HostCgroups {
  private where: CgroupLocation | undefined;

  constructor(private readonly log: Logger) {}

  /**
   * Finds the cgroups of `pid` (the init, before it is started) and has the monitor watch its memory
   * cgroup for the container `id`, so that no OOM kill is missed. A container without a memory cgroup still runs;
   * runc-v2 only logs that failure too.
   */
  async watch(host: ProcessHost, id: string, pid: number, onOom: () => void): Promise<void> {
    try {
      this.where = locateCgroup(pid);
      const mem = memoryCgroup(this.where);
      await host.oomWatch(id, mem.version, mem.dir, onOom);
    } catch (e) {
      this.log.warn({ err: (e as Error).message }, 'cannot watch the container for OOM kills');
    }
  }

  /**
   * The cgroup v1 or v2 Metrics of the container. `initPid` finds the cgroups when they are not known yet
   * (a restarted daemon): 0 when the init is gone, which is NotFound, as under runc-v2.
   */
  async stats(initPid: number): Promise<AnyMessage> {
    const cg = await import('../../cgroups/stats.js');
    try {
      if (!this.where) {
        if (initPid <= 0) throw new cg.CgroupNotFoundError('cgroup does not exist');
        this.where = locateCgroup(initPid);
      }
      return cg.readStats(this.where, (msg, fields) => this.log.warn(fields, msg));
    } catch (e) {
      if (e instanceof cg.CgroupNotFoundError) throw new NotFoundError(e.message);
      throw e;
    }
  }
}
