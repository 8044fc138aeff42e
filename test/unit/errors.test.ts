import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WIRE_CODES, NotFoundError, RuntimeError } from '../../src/shim/errors.js';
import { Code } from '../../src/ttrpc/codes.js';

test('every shim error class travels with the code in the wire table', () => {
  const expected = new Map<string, Code>([
    ['NotFoundError', Code.NotFound],
    ['AlreadyExistsError', Code.AlreadyExists],
    ['InvalidArgumentError', Code.InvalidArgument],
    ['FailedPreconditionError', Code.FailedPrecondition],
    ['UnimplementedError', Code.Unimplemented],
    ['RuntimeError', Code.Unknown],
  ]);
  assert.equal(WIRE_CODES.length, expected.size);
  for (const [Class, code] of WIRE_CODES) {
    const e = new Class('boom');
    assert.equal(e.code, code, Class.name);
    assert.equal(expected.get(Class.name), code, Class.name);
    assert.equal(e.message, 'boom');
    assert.ok(e instanceof Error);
  }
});

test('runc-v2 semantics: unknown ids are NotFound, wrong-state errors are Unknown', () => {
  assert.equal(new NotFoundError('container x: container not created').code, 5);
  assert.equal(new RuntimeError('cannot delete a running process').code, 2);
});
