import { spawn } from 'node:child_process';
import { ROOT } from './harness.js';

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the built CLI (dist/cli/main.js) as its own process, on the Node running the tests, to its exit. */
export function runCli(args: string[], opts: { input?: string | Buffer; env?: Record<string, string>; timeoutMs?: number } = {}): Promise<CliResult> {
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
