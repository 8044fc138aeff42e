// The native unit tests' stand-in daemons take the test's commands on `<dir>/test.sock`: one JSON line
// per connection, answered with one JSON document before the daemon ends the connection.
import net from 'node:net';
import path from 'node:path';

/** Each stand-in daemon answers in its own shapes, so the caller reads the reply as it knows it. */
export function daemonCmd(dir: string, cmd: object): Promise<any> {
  return new Promise((resolve, reject) => {
    const s = net.connect(path.join(dir, 'test.sock'));
    let buf = '';
    s.on('error', reject);
    s.on('data', (d) => { buf += d; });
    s.on('end', () => { try { resolve(JSON.parse(buf)); } catch (e) { reject(e); } });
    s.write(JSON.stringify(cmd) + '\n');
  });
}
