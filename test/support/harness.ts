import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { type Client, credentials, Metadata, type ServiceError } from '@grpc/grpc-js';
import { InboxClient } from '@inboxd/proto/v1/inbox';
import { QueuesClient } from '@inboxd/proto/v1/queues';
import pg from 'pg';
import { pino } from 'pino';
import { inject } from 'vitest';
import { type App, type AppOptions, startApp } from '../../server/app.js';
import { loadConfig } from '../../server/config.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** A fresh, empty database for one test file, in the run's Postgres. */
export async function createDatabase(template?: string): Promise<string> {
  const admin = inject('pgAdminUrl');
  const name = `inboxd_t_${randomBytes(6).toString('hex')}`;
  const c = new pg.Client({ connectionString: admin });
  await c.connect();
  await c.query(`CREATE DATABASE ${name}${template ? ` TEMPLATE ${template}` : ''}`);
  await c.end();
  const url = new URL(admin);
  url.pathname = `/${name}`;
  return url.toString();
}

/**
 * A fresh database for one test file with inboxd's schema already in it (pg-boss's and inboxd's
 * own tables): a copy of one the server migrated at the start of the run. For tests that are not
 * about a first start on an empty database, which use createDatabase().
 */
export function migratedDatabase(): Promise<string> {
  return createDatabase(inject('migratedTemplate'));
}

/** Settings for servers under test: the real defaults, with short intervals so tests run fast. */
export function testOptions(databaseUrl: string, overrides: Partial<AppOptions> = {}): AppOptions {
  const base = loadConfig([], {});
  return {
    ...base,
    databaseUrl,
    host: '127.0.0.1',
    port: 0,
    sweepIntervalMs: 200,
    // Far above any test's wait: deliveries must come from wake-ups and due-time timers, not polling.
    pollIntervalMs: 60_000,
    shutdownTimeoutMs: 5000,
    ...overrides,
  };
}

export interface Clients {
  inbox: InboxClient;
  queues: QueuesClient;
  close(): void;
}

export function connect(address: string): Clients {
  const inbox = new InboxClient(address, credentials.createInsecure());
  const queues = new QueuesClient(address, credentials.createInsecure());
  return { inbox, queues, close: () => (inbox.close(), queues.close()) };
}

/** A server in this process, on 127.0.0.1:0, and clients for it. */
export async function startServer(databaseUrl: string, overrides: Partial<AppOptions> = {}): Promise<{ app: App; clients: Clients; stop(): Promise<void> }> {
  const app = await startApp(testOptions(databaseUrl, overrides), pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }));
  const clients = connect(app.address);
  return {
    app,
    clients,
    stop: async () => {
      clients.close();
      await app.stop();
    },
  };
}

type UnaryMethod<Req, Res> = (req: Req, md: Metadata, opts: { deadline?: number }, cb: (err: ServiceError | null, res: Res) => void) => unknown;

/** Calls a unary method of a generated client and returns a promise. */
export function call<Req, Res>(client: Client, method: UnaryMethod<Req, Res>, req: Req, timeoutMs = 30_000): Promise<Res> {
  return new Promise((resolve, reject) =>
    method.call(client, req, new Metadata(), { deadline: Date.now() + timeoutMs }, (err, res) => (err ? reject(err) : resolve(res))),
  );
}

export interface ServerProcess {
  proc: ChildProcess;
  address: string;
  output: () => string;
  exited: Promise<number | null>;
}

/** The built server (dist/server/main.js) as a child process on 127.0.0.1:0. */
export async function spawnServer(databaseUrl: string, env: Record<string, string> = {}): Promise<ServerProcess> {
  const proc = spawn(process.execPath, [`${ROOT}/dist/server/main.js`], {
    env: {
      ...process.env,
      DATABASE_URL: databaseUrl,
      INBOXD_PORT: '0',
      INBOXD_METRICS_PORT: '0',
      INBOXD_SWEEP_INTERVAL_MS: '200',
      INBOXD_POLL_INTERVAL_MS: '60000',
      INBOXD_LOG_LEVEL: 'info',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout!.on('data', d => (out += d));
  proc.stderr!.on('data', d => (out += d));
  const exited = new Promise<number | null>(resolve => proc.on('exit', code => resolve(code)));
  const address = await new Promise<string>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`server did not start:\n${out}`)), 30_000);
    const check = () => {
      const m = /inboxd listening on (\S+?)"/.exec(out);
      if (m) {
        clearTimeout(t);
        resolve(m[1]);
      }
    };
    proc.stdout!.on('data', check);
    void exited.then(code => reject(new Error(`server exited with ${code}:\n${out}`)));
  });
  return { proc, address, output: () => out, exited };
}

export const sleep = (ms: number) => new Promise(r => setTimeout(r, ms));

/** Waits for `p`, or `ms` at most (then resolves undefined): a cleanup that must not hold the next test. */
export function bounded<T>(p: Promise<T> | T, ms: number): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([Promise.resolve(p), new Promise<undefined>(resolve => (timer = setTimeout(() => resolve(undefined), ms)))]).finally(() =>
    clearTimeout(timer),
  );
}

/** Resolves once `cond` holds, checking every 20 ms; rejects after `timeoutMs` naming `what`. */
export async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}`);
    await sleep(20);
  }
}

export const dur = (seconds: number) => ({ seconds: String(Math.floor(seconds)), nanos: Math.round((seconds % 1) * 1e9) });
