// ttrpc status codes (the gRPC code space, shim-v2.md §3.7) and the error type that carries one.

export enum Code {
  OK = 0,
  Canceled = 1,
  Unknown = 2,
  InvalidArgument = 3,
  DeadlineExceeded = 4,
  NotFound = 5,
  AlreadyExists = 6,
  PermissionDenied = 7,
  ResourceExhausted = 8,
  FailedPrecondition = 9,
  Aborted = 10,
  OutOfRange = 11,
  Unimplemented = 12,
  Internal = 13,
  Unavailable = 14,
  DataLoss = 15,
  Unauthenticated = 16,
}

/** One entry of google.rpc.Status.details (a google.protobuf.Any). */
export interface StatusDetail {
  typeUrl: string;
  value: Uint8Array;
}

/** True for an integer that names a defined, non-OK code. */
export function isErrorCode(value: unknown): value is Code {
  return typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= 16;
}

/** "NotFound", "Unknown", … ; "Code(42)" for values outside the enum. */
export function codeName(code: number): string {
  const name = (Code as unknown as Record<number, string | undefined>)[code];
  return typeof name === 'string' ? name : `Code(${code})`;
}

/**
 * An error with a wire status code. The ttrpc server sends `code` and `message` for any thrown
 * object that has a numeric `code`, so subclasses (or other error classes with a numeric `code`)
 * work too; the client rejects failed calls with a StatusError.
 */
export class StatusError extends Error {
  readonly code: Code;
  readonly details?: StatusDetail[];

  constructor(code: Code, message: string, options?: { details?: StatusDetail[]; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    if (options?.details !== undefined && options.details.length > 0) this.details = options.details;
  }

  /** "<CodeName>: <message>", for logs. */
  describe(): string {
    return `${codeName(this.code)}: ${this.message}`;
  }
}

/** True if `err` is an object carrying a usable (non-OK, in-range) numeric `code`. */
export function hasStatusCode(err: unknown): err is { code: Code; message?: unknown } {
  return typeof err === 'object' && err !== null && isErrorCode((err as { code?: unknown }).code);
}
