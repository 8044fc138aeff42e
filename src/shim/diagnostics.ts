// The daemon's answer to SIGUSR1: a diagnostic report for an operator chasing a stuck or leaking daemon.
// Node's own report (JavaScript stack, libuv handles, heap and resource usage) and the daemon's tables
// (which monitors it serves, whether each is connected, their containers), as one object for the log.

/** One monitor's share of the daemon's state, as the report lists it. */
export interface GroupSummary {
  monitor: string;
  pid: number;
  connected: boolean;
  containers: string[];
  /** Exits read from the monitor and not yet acknowledged to it (not yet settled by the core). */
  exitsUnacknowledged: number;
}

type Report = Record<string, unknown> & {
  header?: Record<string, unknown>;
  javascriptHeap?: Record<string, unknown>;
};

function pick(from: Record<string, unknown> | undefined, keys: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of keys) if (from && k in from) out[k] = from[k];
  return out;
}

/** The report logged on SIGUSR1. Node's parts keep their names in `process.report`'s format. */
export function diagnosticReport(groups: GroupSummary[]): Record<string, unknown> {
  // a daemon run with --expose-gc (TSRT_NODE naming a wrapper, as the soak test can) reports its live heap
  (globalThis as { gc?: () => void }).gc?.();
  const r = process.report.getReport() as unknown as Report;
  return {
    groups,
    header: pick(r.header, ['nodejsVersion', 'processId', 'cwd', 'commandLine', 'dumpEventTimeStamp']),
    javascriptStack: r.javascriptStack,
    javascriptHeap: pick(r.javascriptHeap, ['totalMemory', 'totalCommittedMemory', 'usedMemory', 'availableMemory', 'memoryLimit']),
    resourceUsage: r.resourceUsage,
    libuv: r.libuv,
  };
}
