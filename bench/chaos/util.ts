import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export const sleep = (ms: number) => new Promise<void>(resolve => setTimeout(resolve, ms));

/** A progress line on stderr, with the seconds since the suite started. */
const T0 = Date.now();
export function progress(msg: string): void {
  process.stderr.write(`[chaos +${((Date.now() - T0) / 1000).toFixed(1).padStart(5)}s] ${msg}\n`);
}

/** Resolves with `p`, or rejects after `ms` naming `what`. */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    t = setTimeout(() => reject(new Error(`${what}: no answer after ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(t));
}

/** Polls `check` every `everyMs` until it returns true or `ms` passes; returns whether it did. */
export async function waitFor(check: () => boolean | Promise<boolean>, ms: number, everyMs = 50): Promise<boolean> {
  const end = Date.now() + ms;
  for (;;) {
    if (await check()) return true;
    if (Date.now() >= end) return false;
    await sleep(everyMs);
  }
}

export { freePort } from '../lib/postgres.js';

/** Whether something accepts TCP connections on 127.0.0.1:port. */
export function tcpOpen(port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise(resolve => {
    const s = net.connect({ host: '127.0.0.1', port });
    const done = (ok: boolean) => {
      clearTimeout(t);
      s.removeAllListeners();
      s.on('error', () => {});
      s.destroy();
      resolve(ok);
    };
    const t = setTimeout(() => done(false), timeoutMs);
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

/** Whether pid is a live process (a zombie counts as gone). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/** The pids whose parent is `pid` (from /proc). */
export function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

export function kill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

/**
 * SIGKILL of `pid` and its children at once (children listed first, so none escapes by being
 * reparented); resolves once all are gone (or after `ms`).
 */
export async function killTree(pid: number, ms = 10_000): Promise<number[]> {
  const pids = [pid, ...childrenOf(pid)];
  for (const p of pids) kill(p, 'SIGKILL');
  await waitFor(() => pids.every(p => !alive(p)), ms, 20);
  return pids;
}

/** A temp directory under os.tmpdir() (mode 755: the postgres user must reach it). */
export function tempDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  fs.chmodSync(dir, 0o755);
  return dir;
}

/** Keeps the last `max` lines written to it. */
export class Tail {
  private lines: string[] = [];
  private partial = '';
  constructor(private readonly max = 200) {}
  write(chunk: string | Buffer): void {
    const text = this.partial + String(chunk);
    const parts = text.split('\n');
    this.partial = parts.pop() ?? '';
    for (const l of parts) this.push(l);
    if (this.partial.length > 4000) {
      this.push(this.partial);
      this.partial = '';
    }
  }
  note(line: string): void {
    this.push(line);
  }
  private push(line: string): void {
    this.lines.push(line.length > 2000 ? line.slice(0, 2000) + '…' : line);
    if (this.lines.length > this.max) this.lines.splice(0, this.lines.length - this.max);
  }
  last(n = 30): string[] {
    const all = this.partial ? [...this.lines, this.partial] : this.lines;
    return all.slice(-n);
  }
}

/**
 * Everything the suite started, so that a failure, a timeout or Ctrl-C still ends it: pids to
 * SIGKILL and directories to remove, run synchronously on exit.
 */
export const leftovers = {
  pids: new Set<number>(),
  dirs: new Set<string>(),
  /** Data directories of Postgres clusters that are not our children (a server's embedded one). */
  pgDataDirs: new Set<string>(),
  sweep(): void {
    for (const dir of this.pgDataDirs) {
      const pid = postmasterPid(dir);
      if (pid && alive(pid)) for (const p of [pid, ...childrenOf(pid)]) kill(p, 'SIGKILL');
    }
    for (const pid of this.pids) if (alive(pid)) for (const p of [pid, ...childrenOf(pid)]) kill(p, 'SIGKILL');
    this.pids.clear();
    for (const dir of this.dirs) fs.rmSync(dir, { recursive: true, force: true });
    this.dirs.clear();
    this.pgDataDirs.clear();
  },
};

/** The postmaster pid a data directory's postmaster.pid names, if any. */
export function postmasterPid(dataDir: string): number | undefined {
  try {
    const pid = Number(fs.readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}
