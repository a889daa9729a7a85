/**
 * inboxd's own tables under numbered migrations, and the pg-boss schema it was written for: what
 * an operator sees when starting servers on fresh, old, newer and foreign databases.
 */

import { CreateQueueRequest, GetQueueRequest } from '@inboxd/proto/v1/queues';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { MIGRATIONS } from '../server/queue/migrations/index.js';
import { migrate } from '../server/queue/migrations/migrate.js';
import { checkInstalledPgBoss } from '../server/queue/migrations/pg-boss-schema.js';
import { PGBOSS_SCHEMA_VERSION } from '../server/queue/sql.js';
import { call, createDatabase, dur, startServer } from './support/harness.js';
import { clientTransactions } from './support/transactions.js';

async function query<T = Record<string, unknown>>(url: string, text: string, values: unknown[] = []): Promise<T[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query(text, values)).rows as T[];
  } finally {
    await c.end();
  }
}

type Recorded = { version: number; name: string; applied_at: Date };
const recorded = (url: string) => query<Recorded>(url, 'SELECT version, name, applied_at FROM inboxd.inboxd_migrations ORDER BY version');
const expected = MIGRATIONS.map(m => ({ version: m.version, name: m.name }));

describe('inboxd migrations', () => {
  it('are numbered 1, 2, 3… without gaps, each named once', () => {
    expect(MIGRATIONS.map(m => m.version)).toEqual(MIGRATIONS.map((_, i) => i + 1));
    expect(new Set(MIGRATIONS.map(m => m.name)).size).toBe(MIGRATIONS.length);
  });

  it('a fresh database gets every migration, recorded in order; a second start changes nothing', async () => {
    const url = await createDatabase();
    const first = await startServer(url);
    await first.stop();
    const before = await recorded(url);
    expect(before.map(({ version, name }) => ({ version, name }))).toEqual(expected);

    const second = await startServer(url);
    await second.stop();
    expect(await recorded(url)).toEqual(before);
  });

  it('adopts a database made by the previous release (its tables, no record), keeping what it holds', async () => {
    const url = await createDatabase();
    let srv = await startServer(url);
    const { queues } = srv.clients;
    await call(queues, queues.createQueue, CreateQueueRequest.fromPartial({ name: 'kept', config: { messageTtl: dur(90), maxDepth: '7' } }));
    await srv.stop();
    // What a server before migrations left: the same tables, and nothing saying which version they are.
    await query(url, 'DROP TABLE inboxd.inboxd_migrations');

    srv = await startServer(url);
    try {
      const got = await call(srv.clients.queues, srv.clients.queues.getQueue, GetQueueRequest.fromPartial({ name: 'kept' }));
      expect(got.queue?.config?.messageTtl?.seconds).toBe('90');
      expect(got.queue?.config?.maxDepth).toBe('7');
    } finally {
      await srv.stop();
    }
    expect((await recorded(url)).map(({ version, name }) => ({ version, name }))).toEqual(expected);
  });

  it('two servers starting together on a fresh database both start, and migrate it once', async () => {
    const url = await createDatabase();
    const [a, b] = await Promise.all([startServer(url), startServer(url)]);
    try {
      const { queues } = a.clients;
      await call(queues, queues.createQueue, CreateQueueRequest.fromPartial({ name: 'shared' }));
      const seen = await call(b.clients.queues, b.clients.queues.getQueue, GetQueueRequest.fromPartial({ name: 'shared' }));
      expect(seen.queue?.name).toBe('shared');
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
    expect((await recorded(url)).map(({ version, name }) => ({ version, name }))).toEqual(expected);
  });

  it('a database migrated by a newer inboxd is refused, saying so, and left as it is', async () => {
    const url = await createDatabase();
    await (await startServer(url)).stop();
    await query(url, `INSERT INTO inboxd.inboxd_migrations (version, name) VALUES (99, 'from_the_future')`);
    const before = await recorded(url);

    const latest = MIGRATIONS[MIGRATIONS.length - 1];
    await expect(startServer(url)).rejects.toThrow(
      new RegExp(
        `inboxd's tables in schema "inboxd" are at migration 99 \\(from_the_future, applied .+\\), newer than this build knows: ` +
          `inboxd \\S+ stops at migration ${latest.version} \\(${latest.name}\\)\\. A newer inboxd release upgraded this database`,
      ),
    );
    expect(await recorded(url)).toEqual(before);
  });

  it('a migration that fails keeps nothing of itself and names itself', async () => {
    const url = await createDatabase();
    await (await startServer(url)).stop();
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      const broken = { version: MIGRATIONS.at(-1)!.version + 1, name: 'broken', up: (s: string) => `CREATE TABLE ${s}.half_made (x int); SELECT 1 / 0` };
      await expect(migrate(clientTransactions(c), 'inboxd', [...MIGRATIONS, broken])).rejects.toThrow(
        `inboxd migration ${broken.version} (broken) failed in schema "inboxd", nothing of it kept: division by zero`,
      );
      expect((await c.query(`SELECT to_regclass('inboxd.half_made') AS t`)).rows[0].t).toBeNull();
      // The ones before it are still recorded; nothing is applied twice.
      expect(await migrate(clientTransactions(c), 'inboxd')).toEqual([]);
    } finally {
      await c.end();
    }
    expect((await recorded(url)).map(({ version, name }) => ({ version, name }))).toEqual(expected);
  });
});

describe("pg-boss's schema version", () => {
  it('is checked at start: a database at another one is refused, naming what was found and what would fit', async () => {
    const url = await createDatabase();
    await (await startServer(url)).stop();
    await query(url, 'UPDATE inboxd.version SET version = 99');
    await expect(startServer(url)).rejects.toThrow(
      new RegExp(
        `the pg-boss schema "inboxd" in this database is at version 99; inboxd \\S+ runs on pg-boss schema version ${PGBOSS_SCHEMA_VERSION} ` +
          `\\(pg-boss 12\\.38\\.0\\), the only one its SQL was tested against\\. A newer pg-boss migrated this database .*` +
          'run an inboxd release built on pg-boss schema version 99',
      ),
    );
    expect((await query<{ version: number }>(url, 'SELECT version FROM inboxd.version'))[0].version).toBe(99);
  });

  it('of the pg-boss installed is checked before it may migrate anything', () => {
    expect(() => checkInstalledPgBoss({ inboxd: '0.1.0', pgBoss: '12.99.0', pgBossSchema: PGBOSS_SCHEMA_VERSION + 1 })).toThrow(
      `inboxd 0.1.0 was written for pg-boss schema version ${PGBOSS_SCHEMA_VERSION}, but the pg-boss installed here (12.99.0) uses version ${PGBOSS_SCHEMA_VERSION + 1}`,
    );
    expect(() => checkInstalledPgBoss()).not.toThrow();
  });
});
