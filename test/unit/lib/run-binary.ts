// Runs a binary of the native build (the shim's start, delete, -info) to its end, with what it printed.
import { spawn } from 'node:child_process';

export interface RunResult { code: number | null; stdout: Buffer; stderr: string }

/** Runs `bin args` in `cwd` with `env`; `stdin` is written and closed (empty by default). */
export function runBinary(bin: string, args: string[], opts: { cwd: string; env: NodeJS.ProcessEnv; stdin?: Buffer }): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { cwd: opts.cwd, env: opts.env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.on('error', reject);
    child.stdin.on('error', () => { /* EPIPE: a subcommand that does not read stdin */ });
    child.on('close', (code) => resolve({ code, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString() }));
    child.stdin.end(opts.stdin ?? Buffer.alloc(0));
  });
}
