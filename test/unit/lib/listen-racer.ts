// One contender for a unix socket path, for unix-listen.test.ts: listens on argv[2] with listenUnix and
// prints `ready`, then on a byte on stdin one line, `won <dev> <ino>` or `lost SocketInUse: …` (or `lost other: …`), then holds its listener until stdin closes.
import net from 'node:net';
import { SocketInUse, listenUnix } from '../../../src/shim/unix-listen.js';

const server = net.createServer((c) => c.destroy());
const go = async (): Promise<void> => {
  try {
    const id = await listenUnix(server, process.argv[2]!, 0o600);
    process.stdout.write(`won ${id.dev} ${id.ino}\n`);
  } catch (e) {
    process.stdout.write(`lost ${e instanceof SocketInUse ? 'SocketInUse' : 'other'}: ${(e as Error).message}\n`);
  }
};
// Every contender says `ready` and waits for its go-byte on stdin; the test sends it to all at once.
process.stdin.once('data', () => { void go(); });
process.stdout.write('ready\n');
process.stdin.once('end', () => { server.close(); process.exit(0); });
