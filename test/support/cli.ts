import { spawn } from 'node:child_process';
import { Readable } from 'node:stream';
import { run } from '../../cli/run.js';
import { ROOT } from './harness.js';

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

interface CliOptions {
  input?: string | Buffer;
  env?: Record<string, string>;
  timeoutMs?: number;
}

/**
 * Runs an `inboxd` command line in this process (cli/run.ts, what the `inboxd` bin runs) on
 * streams of its own, to its exit code: no process to start for each of the suite's hundred
 * commands. The environment is `env` alone (INBOXD_ADDRESS unset unless given). `serve` and
 * `tail` run as processes of their own: spawnCli.
 */
export async function runCli(args: string[], opts: CliOptions = {}): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const stdin = Object.assign(Readable.from([Buffer.from(opts.input ?? '')]), { isTTY: false });
  let timer: NodeJS.Timeout | undefined;
  const limit = opts.timeoutMs ?? 20_000;
  const code = await Promise.race([
    run(args, 'test', {
      stdout: { write: (t: string) => (stdout += t) },
      stderr: { write: (t: string) => (stderr += t) },
      stdin,
      env: { ...opts.env },
    }),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`inboxd ${args.join(' ')} still running after ${limit}ms:\n${stdout}\n${stderr}`)), limit);
    }),
  ]).finally(() => clearTimeout(timer));
  return { code, stdout, stderr };
}

/** Runs the built CLI (dist/cli/main.js) as its own process, on the Node running the tests, to its exit. */
export function spawnCli(args: string[], opts: CliOptions = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const env: NodeJS.ProcessEnv = { ...process.env, ...opts.env };
    if (!opts.env?.INBOXD_ADDRESS) delete env.INBOXD_ADDRESS;
    const proc = spawn(process.execPath, [`${ROOT}/dist/cli/main.js`, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', d => (stdout += d));
    proc.stderr.on('data', d => (stderr += d));
    const t = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`inboxd ${args.join(' ')} still running after ${opts.timeoutMs ?? 20_000}ms:\n${stdout}\n${stderr}`));
    }, opts.timeoutMs ?? 20_000);
    // 'close': exited, and its output read to the end.
    proc.on('close', code => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
    proc.stdin.end(opts.input ?? '');
  });
}
