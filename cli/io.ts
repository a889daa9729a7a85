import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * Where a command reads and writes: the process's own streams when `inboxd` runs, others when a
 * program (or a test) runs the CLI in its own process (cli/run.ts). Commands write through io().
 */
export interface CliIo {
  stdout: { write(text: string): unknown; isTTY?: boolean };
  stderr: { write(text: string): unknown; isTTY?: boolean };
  stdin: AsyncIterable<Buffer | string> & { isTTY?: boolean };
  /** The environment the flags' variables (INBOXD_ADDRESS, INBOXD_API_KEY, …) are read from. */
  env: Record<string, string | undefined>;
}

export const processIo = (): CliIo => ({ stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, env: process.env });

const current = new AsyncLocalStorage<CliIo>();

/** The streams of the command running now. */
export function io(): CliIo {
  return current.getStore() ?? processIo();
}

/** Runs `fn` (and everything it starts) with `streams` as its io(). */
export function withIo<T>(streams: CliIo, fn: () => T): T {
  return current.run(streams, fn);
}
