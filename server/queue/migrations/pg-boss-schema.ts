import { PGBOSS_SCHEMA_VERSION } from '../sql.js';
import { type Build, thisBuild } from './build.js';

/**
 * Before pg-boss starts: the pg-boss installed must be the one inboxd's SQL was written for, or
 * starting it would migrate the database to a schema that SQL never saw. (package.json pins it
 * exactly; this catches an install that drifted from the lock file.)
 */
export function checkInstalledPgBoss(build: Build = thisBuild()): void {
  if (build.pgBossSchema === PGBOSS_SCHEMA_VERSION) return;
  throw new Error(
    `inboxd ${build.inboxd} was written for pg-boss schema version ${PGBOSS_SCHEMA_VERSION}, but the pg-boss installed here ` +
      `(${build.pgBoss}) uses version ${build.pgBossSchema}. Install the pg-boss version package.json pins (npm ci); ` +
      'nothing was changed in the database.',
  );
}

/**
 * After pg-boss started (it installs its schema, or migrates an older one, but leaves a newer one
 * as it is): the database's pg-boss schema version, `found`, must be the one inboxd's SQL was
 * written and tested for.
 */
export function checkPgBossSchema(found: number | null, schema: string, build: Build = thisBuild()): void {
  if (found === PGBOSS_SCHEMA_VERSION) return;
  const expected = `inboxd ${build.inboxd} runs on pg-boss schema version ${PGBOSS_SCHEMA_VERSION} (pg-boss ${build.pgBoss}), the only one its SQL was tested against`;
  const why =
    found !== null && found > PGBOSS_SCHEMA_VERSION
      ? 'A newer pg-boss migrated this database (a newer inboxd release, or another program using pg-boss on this schema): ' +
        `run an inboxd release built on pg-boss schema version ${found}, or give this server a schema of its own (--schema, INBOXD_SCHEMA).`
      : `pg-boss did not bring it to version ${PGBOSS_SCHEMA_VERSION}: check that nothing else manages this schema, then start again.`;
  throw new Error(`the pg-boss schema "${schema}" in this database is at version ${found ?? 'none'}; ${expected}. ${why}`);
}
