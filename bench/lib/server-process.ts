import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { SERVER_NODE_FLAGS } from '../../server/node-flags.js';

const MAIN = fileURLToPath(new URL('../../server/main.js', import.meta.url));

export interface InboxdProcess {
  address: string;
  proc: ChildProcess;
  /** Resident set size now, bytes. */
  rssBytes(): number;
  /** CPU time used so far (user + system), seconds. */
  cpuSeconds(): number;
  stop(): Promise<void>;
}

const TICKS = 100; // USER_HZ on Linux

/** The built server as its own process (as users run it, with its Node flags), on a free port, against `databaseUrl`. */
export async function spawnInboxd(databaseUrl: string, env: Record<string, string> = {}, nodeArgs: string[] = []): Promise<InboxdProcess> {
  // BENCH_PROFILE_DIR=dir: the server writes a V8 CPU profile there when it exits.
  const prof = process.env.BENCH_PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE_DIR}`] : [];
  // The server's Node flags as `inboxd serve` runs it; BENCH_SERVER_NODE_ARGS='--flag …' instead:
  // other flags for the server only, to compare (NODE_OPTIONS would reach the bench's clients too).
  const flags = process.env.BENCH_SERVER_NODE_ARGS !== undefined ? process.env.BENCH_SERVER_NODE_ARGS.split(' ').filter(Boolean) : SERVER_NODE_FLAGS;
  const proc = spawn(process.execPath, [...prof, ...flags, ...nodeArgs, MAIN], {
    env: {
      ...process.env,
      DATABASE_URL: databaseUrl,
      INBOXD_PORT: '0',
      INBOXD_METRICS_PORT: process.env.INBOXD_METRICS_PORT ?? '0',
      INBOXD_LOG_LEVEL: 'info',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const address = await new Promise<string>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`inboxd did not start:\n${out}`)), 30_000);
    const onData = (d: Buffer) => {
      out += d;
      const m = /inboxd listening on (\S+?)"/.exec(out);
      if (m?.[1]) {
        clearTimeout(t);
        resolve(m[1]);
      }
    };
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', onData);
    proc.on('exit', code => reject(new Error(`inboxd exited with ${code}:\n${out}`)));
  });
  // BENCH_SERVER_LOG_DIR=dir: the server's output (its log, and what flags such as --trace-gc print) kept there, a file per server.
  if (process.env.BENCH_SERVER_LOG_DIR) {
    const file = fs.createWriteStream(`${process.env.BENCH_SERVER_LOG_DIR}/inboxd-${proc.pid}.log`);
    file.write(out);
    proc.stdout!.pipe(file);
    proc.stderr!.pipe(file);
  } else {
    proc.stdout!.resume();
    proc.stderr!.resume();
  }
  const stat = () => (fs.readFileSync(`/proc/${proc.pid}/stat`, 'utf8').split(') ')[1] ?? '').split(' ');
  return {
    address,
    proc,
    rssBytes: () => Number(stat()[21]) * 4096,
    cpuSeconds: () => (Number(stat()[11]) + Number(stat()[12])) / TICKS,
    stop: () =>
      new Promise(resolve => {
        if (proc.exitCode !== null) return resolve();
        proc.on('exit', () => resolve());
        proc.kill('SIGTERM');
      }),
  };
}
