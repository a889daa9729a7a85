import type { TestProject } from 'vitest/node';
import { startBenchPostgres } from '../../bench/lib/postgres.js';

declare module 'vitest' {
  export interface ProvidedContext {
    pgAdminUrl: string;
  }
}

/**
 * One Postgres for the whole run, the same the benchmarks use: DATABASE_URL when set, else an
 * embedded one in a temp directory. Each test file creates its own database in it.
 */
export default async function setup(project: TestProject) {
  const pg = await startBenchPostgres('inboxd-test-pg-');
  project.provide('pgAdminUrl', pg.adminUrl);
  return () => pg.stop();
}
