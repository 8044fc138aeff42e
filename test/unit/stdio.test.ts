import { test } from 'node:test';
import assert from 'node:assert/strict';
import { stdioFor } from '../../src/io/stdio.js';
import { Code } from '../../src/ttrpc/codes.js';

const req = (stdout: string, extra: Partial<{ stdin: string; stderr: string; terminal: boolean }> = {}) =>
  ({ stdin: extra.stdin ?? '', stdout, stderr: extra.stderr ?? '', terminal: extra.terminal ?? false });

test('plain paths are client FIFOs, empty strings are /dev/null', () => {
  assert.deepEqual(stdioFor(req('/f/out', { stdin: '/f/in', stderr: '/f/err' })),
    { stdin: 'fifo:/f/in', stdout: 'fifo:/f/out', stderr: 'fifo:/f/err' });
  assert.deepEqual(stdioFor(req('')), { stdin: '', stdout: '', stderr: '' });
});

test('file:// sends stdout and stderr to one file', () => {
  assert.deepEqual(stdioFor(req('file:///var/log/a%20b.log', { stderr: 'file:///var/log/a%20b.log' })),
    { stdin: '', stdout: 'file:/var/log/a b.log', stderr: 'file:/var/log/a b.log' });
});

test('unknown schemes are InvalidArgument, not-yet features Unimplemented', () => {
  assert.throws(() => stdioFor(req('ftp://x/y')), (e: { code: number }) => e.code === Code.InvalidArgument);
  assert.throws(() => stdioFor(req('binary:///usr/bin/logger')), (e: { code: number }) => e.code === Code.Unimplemented);
  assert.throws(() => stdioFor(req('/f/out', { terminal: true })), (e: { code: number }) => e.code === Code.Unimplemented);
});
