// Errors the shim returns to containerd. Each class carries the ttrpc status code it travels with;
// WIRE_CODES is the one table of that mapping (tested in test/unit/errors.test.ts).
//
// A classified error's message ends in its class, as a Go shim's does: runc-v2 returns
// `fmt.Errorf("%s: %w", msg, errdefs.ErrNotFound)`, whose text "msg: not found" is the status message.
// containerd 1.x strips a trailing class and adds it back, so it printed the same either way; containerd
// 2.x (errgrpc.ToNative) prints the message as it came, so without the suffix `ctr` would say less than
// it does with runc-v2.
import { Code, StatusError } from '../../ttrpc/codes.js';

/** `message: class`, unless the message already ends so (or is the class itself). */
export function withClass(message: string, cls: string): string {
  return message === cls || message.endsWith(`: ${cls}`) ? message : message ? `${message}: ${cls}` : cls;
}

/** Unknown container or exec id, kill of a finished process, delete of a deleted one. */
export class NotFoundError extends StatusError {
  constructor(message: string) { super(Code.NotFound, withClass(message, 'not found')); }
}
/** Duplicate exec id. */
export class AlreadyExistsError extends StatusError {
  constructor(message: string) { super(Code.AlreadyExists, withClass(message, 'already exists')); }
}
/** Bad request: malformed options, unsupported stdio scheme, invalid signal. */
export class InvalidArgumentError extends StatusError {
  constructor(message: string) { super(Code.InvalidArgument, withClass(message, 'invalid argument')); }
}
/** The process is in the wrong state for the request (runc-v2: "container must be created", exec into stopped). */
export class FailedPreconditionError extends StatusError {
  constructor(message: string) { super(Code.FailedPrecondition, withClass(message, 'failed precondition')); }
}
/** A feature a later release brings. */
export class UnimplementedError extends StatusError {
  constructor(message: string) { super(Code.Unimplemented, withClass(message, 'not implemented')); }
}
/** A component the request needs cannot be reached now (a guest agent whose VM is gone or not up). */
export class UnavailableError extends StatusError {
  constructor(message: string) { super(Code.Unavailable, withClass(message, 'unavailable')); }
}
/** A runtime command or a backend call that did not finish in time (RuntimeTimeout); it was stopped. */
export class DeadlineExceededError extends StatusError {
  constructor(message: string) { super(Code.DeadlineExceeded, withClass(message, 'deadline exceeded')); }
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
  [UnavailableError, Code.Unavailable],
  [DeadlineExceededError, Code.DeadlineExceeded],
  [RuntimeError, Code.Unknown],
];
