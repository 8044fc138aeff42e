import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { releaseInit } from '../../src/plugins/native/exec-fifo.js';

function fifoIn(dir: string): string {
  const f = path.join(dir, 'exec.fifo');
  execFileSync('mkfifo', [f]);
  return f;
}

/** What the init does once released: opens the FIFO for writing, writes its byte, exits (the writer closes). */
function initWrites(fifo: string): void {
  const w = fs.openSync(fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
  fs.writeSync(w, '0');
  fs.closeSync(w);
}

const exit = { pid: 1, status: 0, at: new Date(0) };

test('an init that wrote its byte and exited before the daemon read the FIFO was started', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrt-fifo-'));
  try {
    const fifo = fifoIn(dir);
    let reaped!: (e: typeof exit) => void;
    const exited = new Promise<typeof exit>((r) => { reaped = r; });
    const released = releaseInit(fifo, exited);
    initWrites(fifo);
    // the exit is handled before the event loop has polled the FIFO
    reaped(exit);
    await released;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('an init that exited without writing was not started', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrt-fifo-'));
  try {
    const fifo = fifoIn(dir);
    await assert.rejects(releaseInit(fifo, Promise.resolve({ ...exit, status: 137 })), /exited with status 137 before it was started/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
