// Shared helpers for the cgroup stats readers (stats-v1.ts, stats-v2.ts): reading the tiny kernel
// files synchronously and parsing numbers the way containerd/cgroups (v1.0.x/v1.1.x, the library
// runc-v2 in containerd 1.6 uses) parses them, so the Metrics we return match runc-v2's.
import fs from 'node:fs';
import type Long from 'long';
import { toLong } from '../ttrpc/proto-helpers.js';

/** 2^64 - 1: what upstream reports for "max" in several v2 files. */
export const U64_MAX = (1n << 64n) - 1n;
export const U32_MAX = (1n << 32n) - 1n;

/**
 * Thrown when the cgroup (or the process whose cgroup was asked for) does not exist. The task
 * service maps it to NotFound "cgroup does not exist", as runc-v2 does.
 */
export class CgroupNotFoundError extends Error {
  readonly code = 'ENOENT';
  constructor(message: string) {
    super(message);
    this.name = 'CgroupNotFoundError';
  }
}

/** A parse error in a cgroup file; upstream fails the whole Stats call on these. */
export class CgroupFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CgroupFormatError';
  }
}

export function isNotExist(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === 'ENOENT';
}

export function readText(path: string): string {
  return fs.readFileSync(path, 'utf8');
}

/** File contents, or null when the file does not exist; other errors are thrown. */
export function readTextIfExists(path: string): string | null {
  try {
    return fs.readFileSync(path, 'utf8');
  } catch (err) {
    if (isNotExist(err)) return null;
    throw err;
  }
}

export function exists(path: string): boolean {
  try {
    fs.lstatSync(path);
    return true;
  } catch (err) {
    if (isNotExist(err)) return false;
    throw err;
  }
}

/**
 * The lines a Go bufio.Scanner yields: split on "\n", a trailing "\r" dropped, and no empty last
 * line for a file that ends in a newline.
 */
export function scanLines(text: string): string[] {
  if (text === '') return [];
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return lines.map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
}

/** Go strings.Fields: split on runs of whitespace, no empty fields. */
export function fields(s: string): string[] {
  return s.split(/\s+/).filter((f) => f !== '');
}

/**
 * Go strconv.ParseUint(s, 10, bits): digits only, no sign, in range. Returns null on any error
 * (syntax or range).
 */
export function strictParseUint(s: string, bits = 64): bigint | null {
  if (!/^[0-9]+$/.test(s)) return null;
  const v = BigInt(s);
  return v <= (1n << BigInt(bits)) - 1n ? v : null;
}

/**
 * containerd/cgroups' parseUint: strconv.ParseUint, except that any negative decimal integer
 * (in or out of the int64 range) gives 0 instead of an error, since some kernels report -1.
 * Throws CgroupFormatError for anything else that is not a number.
 */
export function parseUint(s: string, bits = 64): bigint {
  const v = strictParseUint(s, bits);
  if (v !== null) return v;
  if (/^-[0-9]+$/.test(s)) return 0n;
  throw new CgroupFormatError(`cannot parse ${JSON.stringify(s)} as an unsigned integer`);
}

/** containerd/cgroups' readUint: whole file, trimmed, through parseUint. */
export function readUint(path: string): bigint {
  const text = readText(path).trim();
  try {
    return parseUint(text);
  } catch (err) {
    throw new CgroupFormatError(`${path}: ${(err as Error).message}`);
  }
}

/** An unsigned Long for a uint64 field (exact over the whole range). */
export function u64(v: bigint): Long {
  return toLong(v, true);
}

/** Zero as an unsigned Long. */
export function u64Zero(): Long {
  return toLong(0n, true);
}

/**
 * RDMA "device hca_handle=N hca_object=M" lines (rdma.current / rdma.max), same rules in v1 and
 * v2 upstream: lines without exactly three fields are skipped, "max" means 2^32-1, an
 * unparsable value leaves that field 0.
 */
export interface RdmaEntryValue {
  device: string;
  hcaHandles: number;
  hcaObjects: number;
}

export function parseRdmaLines(lines: string[]): RdmaEntryValue[] {
  const out: RdmaEntryValue[] = [];
  for (const line of lines) {
    const parts = fields(line);
    if (parts.length !== 3) continue;
    const entry: RdmaEntryValue = { device: parts[0]!, hcaHandles: 0, hcaObjects: 0 };
    for (const kv of parts.slice(1)) {
      const pair = kv.split('=');
      if (pair.length !== 2) continue;
      let value: bigint;
      if (pair[1] === 'max') value = U32_MAX;
      else {
        try {
          value = parseUint(pair[1]!, 32);
        } catch {
          continue;
        }
      }
      if (pair[0] === 'hca_handle') entry.hcaHandles = Number(value);
      else if (pair[0] === 'hca_object') entry.hcaObjects = Number(value);
    }
    out.push(entry);
  }
  return out;
}
