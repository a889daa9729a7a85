import * as sql from '../sql.js';
import { thisBuild } from './build.js';
import { MIGRATIONS, type Migration } from './index.js';

/** Statements inside one transaction (a Database transaction is one). */
export interface Statements {
  exec(q: sql.Sql): Promise<{ rows: any[] }>;
}

/** Where the migrations run: a transaction on one connection per call (Database is one). */
export interface Transactions {
  transaction<T>(fn: (tx: Statements) => Promise<T>): Promise<T>;
}

interface Applied {
  version: number;
  name: string;
  appliedAt: Date;
}

/**
 * Brings inboxd's own tables in `schema` (pg-boss's, already installed) up to this build's newest
 * migration, and returns those this call applied (none when another replica got there first).
 *
 * One migration per transaction: under the schema's advisory lock, it reads inboxd_migrations
 * (made here when missing), applies the first migration not recorded, and records it. Replicas
 * starting together take turns, and each finds what the one before it recorded; a migration that
 * fails leaves neither its tables nor its record. A database migrated further than this build
 * knows is refused before anything changes: inboxd never runs on tables newer than its SQL.
 */
export async function migrate(db: Transactions, schema: string, migrations: readonly Migration[] = MIGRATIONS): Promise<Migration[]> {
  const done: Migration[] = [];
  for (;;) {
    const next = await db.transaction(async tx => {
      const run = (q: sql.Sql) => tx.exec(q);
      await run(sql.lockMigrations(schema));
      await run(sql.ensureMigrationsTable(schema));
      const applied = (await run(sql.appliedMigrations(schema))).rows as Applied[];
      refuseNewer(applied, migrations, schema);
      const recorded = new Set(applied.map(a => a.version));
      const m = migrations.find(m => !recorded.has(m.version));
      if (!m) return undefined;
      try {
        await tx.exec({ text: m.up(schema), values: [] });
      } catch (err) {
        throw new Error(`inboxd migration ${m.version} (${m.name}) failed in schema "${schema}", nothing of it kept: ${(err as Error).message}`, {
          cause: err,
        });
      }
      await run(sql.recordMigration(schema, m.version, m.name));
      return m;
    });
    if (!next) return done;
    done.push(next);
  }
}

function refuseNewer(applied: Applied[], migrations: readonly Migration[], schema: string): void {
  const known = migrations.at(-1);
  const newest = applied.at(-1);
  if (!newest || !known || newest.version <= known.version) return;
  throw new Error(
    `inboxd's tables in schema "${schema}" are at migration ${newest.version} (${newest.name}, applied ${new Date(newest.appliedAt).toISOString()}), ` +
      `newer than this build knows: inboxd ${thisBuild().inboxd} stops at migration ${known.version} (${known.name}). ` +
      'A newer inboxd release upgraded this database; run that release or a later one (inboxd does not downgrade its tables).',
  );
}
