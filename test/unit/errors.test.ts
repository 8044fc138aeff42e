import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WIRE_CODES, NotFoundError, RuntimeError, withClass } from '../../src/plugins/api/errors.js';
import { Code } from '../../src/ttrpc/codes.js';

test('every shim error class travels with the code in the wire table', () => {
  // with the text of the errdefs class a Go shim's message ends in (none for Unknown)
  const expected = new Map<string, [Code, string]>([
    ['NotFoundError', [Code.NotFound, 'boom: not found']],
    ['AlreadyExistsError', [Code.AlreadyExists, 'boom: already exists']],
    ['InvalidArgumentError', [Code.InvalidArgument, 'boom: invalid argument']],
    ['FailedPreconditionError', [Code.FailedPrecondition, 'boom: failed precondition']],
    ['UnimplementedError', [Code.Unimplemented, 'boom: not implemented']],
    ['UnavailableError', [Code.Unavailable, 'boom: unavailable']],
    ['DeadlineExceededError', [Code.DeadlineExceeded, 'boom: deadline exceeded']],
    ['RuntimeError', [Code.Unknown, 'boom']],
  ]);
  assert.equal(WIRE_CODES.length, expected.size);
  for (const [Class, code] of WIRE_CODES) {
    const e = new Class('boom');
    assert.equal(e.code, code, Class.name);
    assert.deepEqual(expected.get(Class.name), [code, e.message], Class.name);
    assert.ok(e instanceof Error);
  }
});

test('the class suffix is added once', () => {
  assert.equal(new NotFoundError('process does not exist x: not found').message, 'process does not exist x: not found');
  assert.equal(new NotFoundError('not found').message, 'not found');
  assert.equal(new NotFoundError('').message, 'not found');
  assert.equal(withClass('a: not found: b', 'not found'), 'a: not found: b: not found');
});

test('runc-v2 semantics: unknown ids are NotFound, wrong-state errors are Unknown', () => {
  assert.equal(new NotFoundError('container x: container not created').code, 5);
  assert.equal(new RuntimeError('cannot delete a running process').code, 2);
});
