import { Command, InvalidArgumentError, Option } from 'commander';
import { createClient, type InboxdClient, type Duration } from '../sdk/index.js';
import type { Output } from './output.js';

export const DEFAULT_ADDRESS = '127.0.0.1:50051';

/** The options every command that talks to a server takes. */
export interface ClientFlags {
  address: string;
  timeout: number;
  json?: boolean;
}

/** '30s', '250ms', '5m', '1h', or a bare number of seconds → milliseconds. */
export function parseDuration(raw: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(raw.trim());
  if (!m) throw new InvalidArgumentError(`${JSON.stringify(raw)} is not a duration: use e.g. 250ms, 30s, 5m, 1h`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h'];
  return Math.round(Number(m[1]) * unit);
}

/** A whole number within [min, max]. */
export function parseCount(min: number, max: number) {
  return (raw: string): number => {
    const n = Number(raw);
    if (!/^\d+$/.test(raw.trim()) || n < min || n > max) throw new InvalidArgumentError(`${JSON.stringify(raw)} must be a whole number from ${min} to ${max}`);
    return n;
  };
}

/** Adds --address, --timeout and --json to a command. */
export function withClientOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('-a, --address <host:port>', 'inboxd server to talk to').env('INBOXD_ADDRESS').default(DEFAULT_ADDRESS))
    .addOption(new Option('--timeout <duration>', 'give up on a call after this long').argParser(parseDuration).default(10_000, '10s'))
    .option('--json', 'print JSON for scripts instead of tables');
}

/**
 * A client for one command: few, quick retries (a CLI must say "server down" in about a second,
 * not after the SDK's two minutes of retrying) and the command's timeout as every deadline.
 */
export function connect(flags: ClientFlags): InboxdClient {
  return createClient({
    address: flags.address,
    poolSize: 1,
    retry: { maxAttempts: 3, initialBackoff: 100, maxBackoff: 400, attemptTimeout: flags.timeout as Duration, totalTimeout: flags.timeout as Duration },
  });
}

/** Runs `fn` with a client, closing it after. */
export async function withClient<T>(flags: ClientFlags, fn: (client: InboxdClient, out: Output) => Promise<T>): Promise<T> {
  const client = connect(flags);
  try {
    return await fn(client, { json: flags.json === true });
  } finally {
    client.pool.close();
  }
}
