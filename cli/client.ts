import { readFileSync } from 'node:fs';
import { checkApiKey, createClient, type Duration, type InboxdClient, type TlsOptions } from '@inboxd/sdk';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { usage } from './exit-codes.js';
import type { Output } from './output.js';

export const DEFAULT_ADDRESS = '127.0.0.1:50051';

/** The options every command that talks to a server takes. */
export interface ClientFlags {
  address: string;
  timeout: number;
  json?: boolean;
  /** --api-key / INBOXD_API_KEY. */
  apiKey?: string;
  /** --tls: TLS with the system's root certificates. */
  tls?: boolean;
  /** --tls-ca, --tls-cert, --tls-key (INBOXD_TLS_CA, …): PEM file paths. */
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
}

/** '30s', '250ms', '5m', '1h', '7d', or a bare number of seconds → milliseconds. */
export function parseDuration(raw: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(raw.trim());
  if (!m) throw new InvalidArgumentError(`${JSON.stringify(raw)} is not a duration: use e.g. 250ms, 30s, 5m, 1h, 7d`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h' | 'd'];
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

/** Adds --address, --timeout, --json, and the credentials (--api-key, --tls…) to a command. */
export function withClientOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('-a, --address <host:port>', 'inboxd server to talk to').env('INBOXD_ADDRESS').default(DEFAULT_ADDRESS))
    .addOption(new Option('--timeout <duration>', 'give up on a call after this long').argParser(parseDuration).default(10_000, '10s'))
    .option('--json', 'print JSON for scripts instead of tables')
    .addOption(new Option('--api-key <key>', 'API key to call with (ibx_…), sent as authorization: Bearer').env('INBOXD_API_KEY'))
    .addOption(new Option('--tls', "connect with TLS, verifying the server with the system's root certificates"))
    .addOption(new Option('--tls-ca <file>', 'connect with TLS, verifying the server with this CA certificate (PEM)').env('INBOXD_TLS_CA'))
    .addOption(new Option('--tls-cert <file>', 'client certificate (PEM) for mTLS; needs --tls-key').env('INBOXD_TLS_CERT'))
    .addOption(new Option('--tls-key <file>', "the client certificate's private key (PEM)").env('INBOXD_TLS_KEY'));
}

function readPem(flag: string, env: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw usage(`${flag} (${env}): cannot read ${JSON.stringify(path)} (${why})`);
  }
}

/**
 * The credentials the flags ask for: the API key (trimmed; empty is none) and TLS — any of
 * --tls-ca, --tls-cert, --tls-key implies TLS; --tls alone uses the system's roots. Files are
 * read here: one missing or unreadable is a usage error naming the flag and the path.
 */
export function credentialsOf(flags: ClientFlags): { apiKey?: string; tls?: TlsOptions | true } {
  const apiKey = flags.apiKey?.trim() || undefined;
  if (apiKey !== undefined) {
    try {
      checkApiKey(apiKey);
    } catch (err) {
      throw usage(`--api-key (INBOXD_API_KEY): ${(err as Error).message.replace(/^createClient: /, '')}`);
    }
  }
  const { tlsCa, tlsCert, tlsKey } = flags;
  if (tlsCert && !tlsKey) throw usage('--tls-cert (INBOXD_TLS_CERT) needs --tls-key (INBOXD_TLS_KEY): a client certificate goes with its private key');
  if (tlsKey && !tlsCert) throw usage('--tls-key (INBOXD_TLS_KEY) needs --tls-cert (INBOXD_TLS_CERT): a private key goes with its client certificate');
  if (!tlsCa && !tlsCert) return { apiKey, tls: flags.tls ? true : undefined };
  return {
    apiKey,
    tls: {
      ca: tlsCa ? readPem('--tls-ca', 'INBOXD_TLS_CA', tlsCa) : undefined,
      cert: tlsCert ? readPem('--tls-cert', 'INBOXD_TLS_CERT', tlsCert) : undefined,
      key: tlsKey ? readPem('--tls-key', 'INBOXD_TLS_KEY', tlsKey) : undefined,
    },
  };
}

/**
 * A client for one command: few, quick retries (a CLI must say "server down" in about a second,
 * not after the SDK's two minutes of retrying) and the command's timeout as every deadline.
 */
export function connect(flags: ClientFlags): InboxdClient {
  return createClient({
    address: flags.address,
    ...credentialsOf(flags),
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
