import path from 'node:path';
import { parseArgs } from 'node:util';
import type { AppOptions } from './app.js';

export interface Config extends AppOptions {
  /** Unset: start an embedded Postgres in dataDir. */
  databaseUrl: string;
  dataDir: string;
  embeddedPgPort: number;
  logLevel: string;
  /** auto: pretty when stdout is a terminal, JSON lines otherwise. */
  logFormat: 'auto' | 'json' | 'pretty';
  /** Port of the Prometheus endpoint; null: no endpoint. */
  metricsPort: number | null;
  /** Empty: the gRPC host. */
  metricsHost: string;
}

/** Whether `host` is reachable from this machine only. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

type Kind = 'string' | 'int' | 'bool' | 'level' | 'choice';
export interface Setting {
  key: keyof Config;
  flag: string;
  env: string;
  kind: Kind;
  def: string;
  min?: number;
  max?: number;
  /** int: this word is accepted too, and means null (the feature is off). */
  offWord?: string;
  /** choice: the values accepted. */
  choices?: string[];
  help: string;
}

/** Every setting: one row each, the source of docs/configuration.md's table (npm run docs). */
export const SETTINGS: Setting[] = [
  { key: 'host', flag: 'host', env: 'INBOXD_HOST', kind: 'string', def: '127.0.0.1', help: 'Address to listen on (use 0.0.0.0 or :: for all interfaces).' },
  { key: 'port', flag: 'port', env: 'INBOXD_PORT', kind: 'int', def: '50051', min: 0, max: 65535, help: 'gRPC port; 0 picks a free one.' },
  {
    key: 'databaseUrl',
    flag: 'database-url',
    env: 'DATABASE_URL',
    kind: 'string',
    def: '',
    help: 'Postgres connection string. Unset: an embedded Postgres in --data-dir.',
  },
  {
    key: 'dataDir',
    flag: 'data-dir',
    env: 'INBOXD_DATA_DIR',
    kind: 'string',
    def: '.inboxd/postgres',
    help: 'Embedded Postgres data directory (kept across restarts).',
  },
  {
    key: 'embeddedPgPort',
    flag: 'embedded-pg-port',
    env: 'INBOXD_EMBEDDED_PG_PORT',
    kind: 'int',
    def: '54329',
    min: 1,
    max: 65535,
    help: 'Port of the embedded Postgres (on 127.0.0.1).',
  },
  { key: 'schema', flag: 'schema', env: 'INBOXD_SCHEMA', kind: 'string', def: 'inboxd', help: 'Postgres schema holding the pg-boss tables.' },
  {
    key: 'autoCreateQueues',
    flag: 'auto-create-queues',
    env: 'INBOXD_AUTO_CREATE_QUEUES',
    kind: 'bool',
    def: 'false',
    help: 'Create a queue with default settings on first Send instead of answering NOT_FOUND.',
  },
  {
    key: 'maxMessageBytes',
    flag: 'max-message-bytes',
    env: 'INBOXD_MAX_MESSAGE_BYTES',
    kind: 'int',
    def: '1048576',
    min: 1,
    max: 64 * 1024 * 1024,
    help: 'Largest payload accepted.',
  },
  {
    key: 'dbPoolSize',
    flag: 'db-pool-size',
    env: 'INBOXD_DB_POOL_SIZE',
    kind: 'int',
    def: '20',
    min: 2,
    max: 500,
    help: 'Postgres connections in the pool every statement runs on (plus one for LISTEN and one for the health probe).',
  },
  {
    key: 'dbConnectTimeoutMs',
    flag: 'db-connect-timeout-ms',
    env: 'INBOXD_DB_CONNECT_TIMEOUT_MS',
    kind: 'int',
    def: '5000',
    min: 100,
    max: 600_000,
    help: 'A Postgres connection attempt that has not succeeded by then fails (the call answers UNAVAILABLE).',
  },
  {
    key: 'dbStatementTimeoutMs',
    flag: 'db-statement-timeout-ms',
    env: 'INBOXD_DB_STATEMENT_TIMEOUT_MS',
    kind: 'int',
    def: '30000',
    min: 100,
    max: 3_600_000,
    help: 'Postgres cancels a statement running longer (the call answers UNAVAILABLE); the client gives up 2 s later if the server is silent.',
  },
  {
    key: 'dbHealthIntervalMs',
    flag: 'db-health-interval-ms',
    env: 'INBOXD_DB_HEALTH_INTERVAL_MS',
    kind: 'int',
    def: '1000',
    min: 50,
    max: 60_000,
    help: 'How often the health probe asks Postgres; gRPC health turns NOT_SERVING at the first probe that fails and SERVING at the first that answers.',
  },
  {
    key: 'sendMaxBatch',
    flag: 'send-max-batch',
    env: 'INBOXD_SEND_MAX_BATCH',
    kind: 'int',
    def: '2000',
    min: 1,
    max: 100_000,
    help: 'Most messages in one group insert across concurrent Sends.',
  },
  {
    key: 'sendMaxInFlight',
    flag: 'send-max-in-flight',
    env: 'INBOXD_SEND_MAX_IN_FLIGHT',
    kind: 'int',
    def: '4',
    min: 1,
    max: 64,
    help: 'Group inserts running at once; Sends arriving meanwhile share the next one.',
  },
  {
    key: 'dispatchMaxBatch',
    flag: 'dispatch-max-batch',
    env: 'INBOXD_DISPATCH_MAX_BATCH',
    kind: 'int',
    def: '500',
    min: 1,
    max: 10_000,
    help: 'Most messages leased in one fetch for a subscriber.',
  },
  {
    key: 'dispatchParallelFetches',
    flag: 'dispatch-parallel-fetches',
    env: 'INBOXD_DISPATCH_PARALLEL_FETCHES',
    kind: 'int',
    def: '2',
    min: 1,
    max: 16,
    help: 'Fetches one queue runs at once for its subscribers (see Benchmarks).',
  },
  {
    key: 'pollIntervalMs',
    flag: 'poll-interval-ms',
    env: 'INBOXD_POLL_INTERVAL_MS',
    kind: 'int',
    def: '10000',
    min: 10,
    max: 600_000,
    help: 'Safety net: how often waiting consumers look for messages no wake-up announced (a lost notification). Delays and retries wake at their due time.',
  },
  {
    key: 'sweepIntervalMs',
    flag: 'sweep-interval-ms',
    env: 'INBOXD_SWEEP_INTERVAL_MS',
    kind: 'int',
    def: '1000',
    min: 10,
    max: 60_000,
    help: 'How often expired leases are returned to their queue.',
  },
  {
    key: 'hashWorkerThresholdBytes',
    flag: 'hash-worker-threshold-bytes',
    env: 'INBOXD_HASH_WORKER_THRESHOLD_BYTES',
    kind: 'int',
    def: '8388608',
    min: 0,
    max: 1 << 30,
    help: 'Send batches with at least this many payload bytes are hashed on worker threads. bench:workers: the main thread is faster at every size, so the default sits above the largest Send the default limits accept (off); lower it only to keep the event loop free for huge batches.',
  },
  {
    key: 'maxStreams',
    flag: 'max-streams',
    env: 'INBOXD_MAX_STREAMS',
    kind: 'int',
    def: '20000',
    min: 1,
    max: 1_000_000,
    help: 'Streaming calls (Subscribe, SendStream) open at once on this server; one more is refused with RESOURCE_EXHAUSTED (the SDK retries it, on another replica if it has one).',
  },
  {
    key: 'maxStreamsPerConnection',
    flag: 'max-streams-per-connection',
    env: 'INBOXD_MAX_STREAMS_PER_CONNECTION',
    kind: 'int',
    def: '1000',
    min: 1,
    max: 100_000,
    help: 'Calls one client connection may have open at once (HTTP/2 max concurrent streams); the SDK opens another connection past 100 streams.',
  },
  {
    key: 'maxBufferedBytes',
    flag: 'max-buffered-bytes',
    env: 'INBOXD_MAX_BUFFERED_BYTES',
    kind: 'int',
    def: '268435456',
    min: 1024 * 1024,
    max: 64 * 1024 * 1024 * 1024,
    help: 'Bytes of deliveries all Subscribe streams together may hold written and not yet read by their clients; a stream also holds at most 16 MiB. A stream with bytes waiting gets no more past either.',
  },
  {
    key: 'maxReceivingBytes',
    flag: 'max-receiving-bytes',
    env: 'INBOXD_MAX_RECEIVING_BYTES',
    kind: 'int',
    def: '268435456',
    min: 1024 * 1024,
    max: 64 * 1024 * 1024 * 1024,
    help: 'Bytes of requests partly received, held until their last byte, on all calls together; a call that adds past it is refused with RESOURCE_EXHAUSTED (a client that declares a large message and stalls).',
  },
  {
    key: 'auth',
    flag: 'auth',
    env: 'INBOXD_AUTH',
    kind: 'choice',
    choices: ['off', 'required'],
    def: '',
    help: 'required: every call needs a credential (an API key, a JWT or a client certificate) and a grant; off: anyone who reaches the port may do anything. Unset: off when --host is a loopback address (127.0.0.1, ::1, localhost), required otherwise.',
  },
  {
    key: 'adminKey',
    flag: 'admin-key',
    env: 'INBOXD_ADMIN_KEY',
    kind: 'string',
    def: '',
    help: 'A bootstrap admin credential (at least 24 characters; `openssl rand -hex 32`): calls with it act as the admin principal `admin`, to create the first principals, keys and grants.',
  },
  {
    key: 'principalMaxStreams',
    flag: 'principal-max-streams',
    env: 'INBOXD_PRINCIPAL_MAX_STREAMS',
    kind: 'int',
    def: '1000',
    min: 1,
    max: 1_000_000,
    help: "With auth: streams one principal may hold open on this server (a principal's own max_streams overrides it); one more is RESOURCE_EXHAUSTED.",
  },
  {
    key: 'principalSendRate',
    flag: 'principal-send-rate',
    env: 'INBOXD_PRINCIPAL_SEND_RATE',
    kind: 'int',
    def: '0',
    min: 0,
    max: 10_000_000,
    help: "With auth: messages a second one principal may send (Send, SendStream, Publish) through this server, 0 for no limit (a principal's own max_send_rate overrides it); past it, RESOURCE_EXHAUSTED.",
  },
  {
    key: 'tlsCert',
    flag: 'tls-cert',
    env: 'INBOXD_TLS_CERT_FILE',
    kind: 'string',
    def: '',
    help: "PEM file of the server's certificate chain: serve TLS (with --tls-key). Unset: plaintext.",
  },
  { key: 'tlsKey', flag: 'tls-key', env: 'INBOXD_TLS_KEY_FILE', kind: 'string', def: '', help: "PEM file of the server certificate's private key." },
  {
    key: 'tlsClientCa',
    flag: 'tls-client-ca',
    env: 'INBOXD_TLS_CLIENT_CA_FILE',
    kind: 'string',
    def: '',
    help: 'PEM file of the CA that signs client certificates: mutual TLS, every client must present one; with auth, its subject CN names the principal (unless the call carries a bearer credential).',
  },
  {
    key: 'jwtJwksUrl',
    flag: 'jwt-jwks-url',
    env: 'INBOXD_JWT_JWKS_URL',
    kind: 'string',
    def: '',
    help: 'Accept JWTs as bearer credentials, verified with the keys at this JWKS URL; the claim --jwt-claim names an existing principal.',
  },
  {
    key: 'jwtPublicKeyFile',
    flag: 'jwt-public-key',
    env: 'INBOXD_JWT_PUBLIC_KEY_FILE',
    kind: 'string',
    def: '',
    help: 'Accept JWTs verified with this PEM public key (instead of a JWKS URL).',
  },
  { key: 'jwtIssuer', flag: 'jwt-issuer', env: 'INBOXD_JWT_ISSUER', kind: 'string', def: '', help: 'The iss a JWT must carry (unset: not checked).' },
  { key: 'jwtAudience', flag: 'jwt-audience', env: 'INBOXD_JWT_AUDIENCE', kind: 'string', def: '', help: 'The aud a JWT must carry (unset: not checked).' },
  { key: 'jwtClaim', flag: 'jwt-claim', env: 'INBOXD_JWT_CLAIM', kind: 'string', def: 'sub', help: 'The JWT claim naming the principal.' },
  {
    key: 'shutdownTimeoutMs',
    flag: 'shutdown-timeout-ms',
    env: 'INBOXD_SHUTDOWN_TIMEOUT_MS',
    kind: 'int',
    def: '10000',
    min: 0,
    max: 600_000,
    help: 'On SIGTERM, how long in-flight calls may run before they are cut.',
  },
  { key: 'logLevel', flag: 'log-level', env: 'INBOXD_LOG_LEVEL', kind: 'level', def: 'info', help: 'trace, debug, info, warn, error, fatal or silent.' },
  {
    key: 'logFormat',
    flag: 'log-format',
    env: 'INBOXD_LOG_FORMAT',
    kind: 'choice',
    choices: ['auto', 'json', 'pretty'],
    def: 'auto',
    help: 'json (one JSON object a line), pretty (for people), or auto: pretty when stdout is a terminal, else json.',
  },
  {
    key: 'metricsPort',
    flag: 'metrics-port',
    env: 'INBOXD_METRICS_PORT',
    kind: 'int',
    def: '9464',
    min: 0,
    max: 65535,
    offWord: 'off',
    help: 'Port of the Prometheus endpoint (GET /metrics); 0 picks a free one, off serves none.',
  },
  {
    key: 'metricsHost',
    flag: 'metrics-host',
    env: 'INBOXD_METRICS_HOST',
    kind: 'string',
    def: '',
    help: 'Address the metrics endpoint listens on. Unset: the same as --host.',
  },
];

export class ConfigError extends Error {}

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

function parse(s: Setting, raw: string, source: string): unknown {
  const where = `${source} (${s.env} / --${s.flag})`;
  switch (s.kind) {
    case 'string':
      return raw;
    case 'level':
      if (!LEVELS.includes(raw)) throw new ConfigError(`${where}: ${JSON.stringify(raw)} is not a log level; use one of ${LEVELS.join(', ')}`);
      return raw;
    case 'choice':
      if (raw === '' && s.def === '') return '';
      if (!s.choices!.includes(raw)) throw new ConfigError(`${where}: ${JSON.stringify(raw)} is not one of ${s.choices!.join(', ')}`);
      return raw;
    case 'bool':
      if (['true', '1', 'yes', 'on'].includes(raw.toLowerCase())) return true;
      if (['false', '0', 'no', 'off', ''].includes(raw.toLowerCase())) return false;
      throw new ConfigError(`${where}: ${JSON.stringify(raw)} is not a boolean; use true or false`);
    case 'int': {
      if (s.offWord !== undefined && raw.trim().toLowerCase() === s.offWord) return null;
      const n = Number(raw);
      if (!/^-?\d+$/.test(raw.trim()) || !Number.isSafeInteger(n) || n < s.min! || n > s.max!) {
        const or = s.offWord !== undefined ? `, or ${s.offWord}` : '';
        throw new ConfigError(`${where}: ${JSON.stringify(raw)} must be an integer from ${s.min} to ${s.max}${or}`);
      }
      return n;
    }
  }
}

/** Resolves every setting once: flag, else environment, else default. Throws ConfigError on a bad value. */
export function loadConfig(argv: string[], env: NodeJS.ProcessEnv): Config {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: Object.fromEntries(SETTINGS.map(s => [s.flag, { type: 'string' as const }])),
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw new ConfigError(`${(err as Error).message}. Settings: ${SETTINGS.map(s => `--${s.flag}`).join(' ')}`);
  }
  const cfg: Record<string, unknown> = {};
  for (const s of SETTINGS) {
    const flag = values[s.flag];
    if (typeof flag === 'string') cfg[s.key] = parse(s, flag, `flag --${s.flag}`);
    else if (env[s.env] !== undefined && env[s.env] !== '') cfg[s.key] = parse(s, env[s.env]!, `environment ${s.env}`);
    else cfg[s.key] = parse(s, s.def, 'default');
  }
  cfg.dataDir = path.resolve(cfg.dataDir as string);
  if (!cfg.metricsHost) cfg.metricsHost = cfg.host;
  if (!cfg.auth) cfg.auth = isLoopback(cfg.host as string) ? 'off' : 'required';
  const adminKey = cfg.adminKey as string;
  if (adminKey && (adminKey.length < 24 || /\s/.test(adminKey))) {
    throw new ConfigError('INBOXD_ADMIN_KEY / --admin-key must be at least 24 characters without spaces (e.g. `openssl rand -hex 32`)');
  }
  if (Boolean(cfg.tlsCert) !== Boolean(cfg.tlsKey))
    throw new ConfigError('--tls-cert and --tls-key (INBOXD_TLS_CERT_FILE, INBOXD_TLS_KEY_FILE) go together: set both, or neither for plaintext');
  if (cfg.tlsClientCa && !cfg.tlsCert) throw new ConfigError('--tls-client-ca (mutual TLS) needs --tls-cert and --tls-key: the server must serve TLS');
  if (cfg.jwtJwksUrl && cfg.jwtPublicKeyFile) throw new ConfigError('--jwt-jwks-url and --jwt-public-key are two ways to give the JWT keys: set one');
  if (cfg.jwtJwksUrl) {
    try {
      new URL(cfg.jwtJwksUrl as string);
    } catch {
      throw new ConfigError(`--jwt-jwks-url ${JSON.stringify(cfg.jwtJwksUrl)} is not a URL`);
    }
  }
  return cfg as unknown as Config;
}
