import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

export { freePort } from '../../bench/lib/postgres.js';

/** ESTABLISHED TCP connections of this process to `port` (sockets in /proc/self/fd matched in /proc/net/tcp{,6}). */
export function connectionsTo(port: number): number {
  const mine = new Set<string>();
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`));
      if (m) mine.add(m[1]);
    } catch {
      // closed meanwhile
    }
  }
  let count = 0;
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 10) continue;
      const remotePort = parseInt(cols[2].split(':')[1], 16);
      if (remotePort === port && cols[3] === '01' && mine.has(cols[9])) count++;
    }
  }
  return count;
}
