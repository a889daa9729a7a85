import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/**
 * What this build is made of, for messages a person acts on: inboxd's version and the pg-boss
 * installed beside it (its version, and the schema version it installs and migrates to).
 */
export interface Build {
  inboxd: string;
  pgBoss: string;
  pgBossSchema: number;
}

export function thisBuild(): Build {
  const own = require('inboxd/package.json') as { version: string };
  const boss = require('pg-boss/package.json') as { version: string; pgboss: { schema: number } };
  return { inboxd: own.version, pgBoss: boss.version, pgBossSchema: boss.pgboss.schema };
}
