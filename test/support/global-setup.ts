import pg from 'pg';
import { pino } from 'pino';
import type { TestProject } from 'vitest/node';
import { startBenchPostgres } from '../../bench/lib/postgres.js';
import { loadConfig } from '../../server/config.js';
import { QueueCore } from '../../server/queue/core.js';

declare module 'vitest' {
  export interface ProvidedContext {
    pgAdminUrl: string;
    /** A database with inboxd's schema in it, to copy (migratedDatabase()). */
    migratedTemplate: string;
  }
}

/**
 * One Postgres for the whole run, the same the benchmarks use: DATABASE_URL when set, else an
 * embedded one in a temp directory. Each test file creates its own database in it: empty
 * (createDatabase), or a copy of one the server migrated once here (migratedDatabase), which costs
 * Postgres a file copy instead of the few hundred statements of pg-boss's schema and inboxd's.
 */
export default async function setup(project: TestProject) {
  const server = await startBenchPostgres('inboxd-test-pg-');
  project.provide('pgAdminUrl', server.adminUrl);
  if (!process.env.DATABASE_URL) {
    // Our own throwaway Postgres: no flushes to disk. Durability across a Postgres crash is
    // tested against a Postgres of its own with fsync on (test/faults.test.ts, ChaosPostgres).
    const c = new pg.Client({ connectionString: server.adminUrl });
    await c.connect();
    await c.query('ALTER SYSTEM SET fsync = off');
    await c.query('ALTER SYSTEM SET full_page_writes = off');
    await c.query('SELECT pg_reload_conf()');
    await c.end();
  }
  const url = await server.createDatabase('migrated');
  const core = new QueueCore({ ...loadConfig([], {}), databaseUrl: url }, pino({ level: 'silent' }));
  await core.start();
  await core.stop();
  const name = new URL(url).pathname.slice(1);
  const admin = new pg.Client({ connectionString: server.adminUrl });
  await admin.connect();
  // Nobody connects to it again: a database being copied must have no sessions.
  await admin.query(`ALTER DATABASE ${name} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false`);
  await admin.end();
  project.provide('migratedTemplate', name);
  return async () => {
    if (process.env.DATABASE_URL) {
      const c = new pg.Client({ connectionString: server.adminUrl });
      await c.connect();
      await c.query(`ALTER DATABASE ${name} WITH IS_TEMPLATE false`);
      await c.query(`DROP DATABASE IF EXISTS ${name}`);
      await c.end();
    }
    await server.stop();
  };
}
