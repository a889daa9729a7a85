/**
 * What every connection inboxd opens runs with, whatever the database's defaults say: commits are
 * durable (synchronous_commit on), transactions READ COMMITTED (under a SERIALIZABLE default,
 * concurrent leases and acks failed to serialize: messages dead-lettered, acks lost) and nothing is
 * JIT-compiled (jit off). With JIT on, a Postgres
 * built with LLVM compiled the lease again at every call (its plan passes jit_above_cost): an empty
 * lease took 200 ms on PostgreSQL 15 instead of 0.7 ms. The embedded Postgres the tests run on has
 * no JIT, so the settings are read back here, on a database whose defaults are the bad ones.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migratedDatabase, startServer } from './support/harness.js';

let stop: () => Promise<void>;
let app: Awaited<ReturnType<typeof startServer>>['app'];

beforeAll(async () => {
  const url = await migratedDatabase();
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  const name = new URL(url).pathname.slice(1);
  // What a connection gets unless it says otherwise.
  await admin.query(`ALTER DATABASE ${name} SET jit = on`);
  await admin.query(`ALTER DATABASE ${name} SET jit_above_cost = 0`);
  await admin.query(`ALTER DATABASE ${name} SET synchronous_commit = off`);
  await admin.query(`ALTER DATABASE ${name} SET default_transaction_isolation = 'serializable'`);
  await admin.end();
  ({ app, stop } = await startServer(url));
});

afterAll(async () => {
  await stop?.();
});

const show = async (exec: (text: string) => Promise<pg.QueryResult>, setting: string) => (await exec(`SHOW ${setting}`)).rows[0][setting];

describe('connections inboxd opens', () => {
  it('run without JIT and commit durably on the pool, on every connection of it', async () => {
    const db = app.core.db;
    const exec = (text: string) => db.exec({ text, values: [] });
    // Several at once, so they land on several of the pool's connections.
    const answers = await Promise.all(
      Array.from({ length: 8 }, async () => [await show(exec, 'jit'), await show(exec, 'synchronous_commit'), await show(exec, 'transaction_isolation')]),
    );
    expect(new Set(answers.map(a => a.join()))).toEqual(new Set(['off,on,read committed']));
    // Inside a transaction too (a connection of its own from the pool).
    const inTx = await db.transaction(async tx => [
      (await tx.exec({ text: 'SHOW jit', values: [] })).rows[0].jit,
      (await tx.exec({ text: 'SHOW transaction_isolation', values: [] })).rows[0].transaction_isolation,
    ]);
    expect(inTx).toEqual(['off', 'read committed']);
  });

  it('run without JIT and commit durably on a dedicated connection', async () => {
    const client = await app.core.db.client('inboxd-test', () => {});
    try {
      const exec = (text: string) => client.query(text);
      expect(await show(exec, 'jit')).toBe('off');
      expect(await show(exec, 'synchronous_commit')).toBe('on');
      expect(await show(exec, 'transaction_isolation')).toBe('read committed');
    } finally {
      await client.end();
    }
  });
});
