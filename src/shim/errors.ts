// Errors the shim returns to containerd. Each class carries the ttrpc status code it travels with;
// WIRE_CODES is the one table of that mapping (tested in test/unit/errors.test.ts).
import { Code, StatusError } from '../ttrpc/codes.js';

/** Unknown container or exec id, kill of a finished process, delete of a deleted one. */
export class NotFoundError extends StatusError {
  constructor(message: string) { super(Code.NotFound, message); }
}
/** Duplicate exec id. */
export class AlreadyExistsError extends StatusError {
  constructor(message: string) { super(Code.AlreadyExists, message); }
}
/** Bad request: malformed options, unsupported stdio scheme, invalid signal. */
export class InvalidArgumentError extends StatusError {
  constructor(message: string) { super(Code.InvalidArgument, message); }
}
/** The process is in the wrong state for the request (runc-v2: "container must be created", exec into stopped). */
export class FailedPreconditionError extends StatusError {
  constructor(message: string) { super(Code.FailedPrecondition, message); }
}
/** A feature a later release brings. */
export class UnimplementedError extends StatusError {
  constructor(message: string) { super(Code.Unimplemented, message); }
}
/**
 * Everything runc-v2 reports as a plain error (wrong state transitions, "OCI runtime create failed: …"):
 * containerd sees code Unknown, exactly as with the reference shim.
 */
export class RuntimeError extends StatusError {
  constructor(message: string) { super(Code.Unknown, message); }
}

export const WIRE_CODES: ReadonlyArray<readonly [new (message: string) => StatusError, Code]> = [
  [NotFoundError, Code.NotFound],
  [AlreadyExistsError, Code.AlreadyExists],
  [InvalidArgumentError, Code.InvalidArgument],
  [FailedPreconditionError, Code.FailedPrecondition],
  [UnimplementedError, Code.Unimplemented],
  [RuntimeError, Code.Unknown],
];
