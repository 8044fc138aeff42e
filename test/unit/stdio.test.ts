import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loggerArgv, stdioFor } from '../../src/io/stdio.js';
import { Code } from '../../src/ttrpc/codes.js';

const req = (stdout: string, extra: Partial<{ stdin: string; stderr: string; terminal: boolean }> = {}) =>
  ({ stdin: extra.stdin ?? '', stdout, stderr: extra.stderr ?? '', terminal: extra.terminal ?? false });

test('plain paths are client FIFOs, empty strings are /dev/null', () => {
  assert.deepEqual(stdioFor(req('/f/out', { stdin: '/f/in', stderr: '/f/err' })),
    { stdin: 'fifo:/f/in', stdout: 'fifo:/f/out', stderr: 'fifo:/f/err', terminal: false, logger: null });
  assert.deepEqual(stdioFor(req('')), { stdin: '', stdout: '', stderr: '', terminal: false, logger: null });
});

test('a terminal has stdin and stdout only (stderr is never opened)', () => {
  assert.deepEqual(stdioFor(req('/f/out', { stdin: '/f/in', stderr: '/f/err', terminal: true })),
    { stdin: 'fifo:/f/in', stdout: 'fifo:/f/out', stderr: '', terminal: true, logger: null });
});

test('file:// sends stdout and stderr to one file, stdin still comes from its FIFO', () => {
  assert.deepEqual(stdioFor(req('file:///var/log/a%20b.log', { stdin: '/f/in', stderr: 'file:///var/log/a%20b.log' })),
    { stdin: 'fifo:/f/in', stdout: 'file:/var/log/a b.log', stderr: 'file:/var/log/a b.log', terminal: false, logger: null });
});

test('binary:// starts a logger fed by the logger pipes; stdin is not connected', () => {
  assert.deepEqual(stdioFor(req('binary:///usr/bin/my-logger?a=1&flag=&b=two%20words', { stdin: '/f/in' })), {
    stdin: '', stdout: 'logger:1', stderr: 'logger:2', terminal: false,
    logger: { argv: ['/usr/bin/my-logger', 'a', '1', 'flag', 'b', 'two words'] },
  });
  assert.deepEqual(loggerArgv('binary:///opt/l'), ['/opt/l']);
});

test('bad URIs are InvalidArgument, a terminal with a logger Unimplemented', () => {
  assert.throws(() => stdioFor(req('ftp://x/y')), (e: { code: number }) => e.code === Code.InvalidArgument);
  assert.throws(() => stdioFor(req('file://relative')), (e: { code: number }) => e.code === Code.InvalidArgument);
  assert.throws(() => stdioFor(req('binary://host/usr/bin/l')), (e: { code: number }) => e.code === Code.InvalidArgument);
  assert.throws(() => stdioFor(req('binary:///usr/bin/l', { terminal: true })), (e: { code: number }) => e.code === Code.Unimplemented);
});
