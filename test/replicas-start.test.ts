/**
 * Replicas started together on a fresh database each make the shared server secret (API key
 * hashes, lease-token signatures) at once. `npm run chaos` found the second of two replicas
 * failing to start: its insert waited on the first one's and then, with ON CONFLICT DO NOTHING,
 * returned no row, while its own snapshot could not see the first one's either. Here the race is
 * made deterministic: the first insert is held uncommitted while the second runs.
 */

import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { auth } from '../server/queue/migrations/002-auth.js';
import * as sql from '../server/queue/sql.js';
import { createDatabase, waitFor } from './support/harness.js';

describe('the shared server secret', () => {
  it('a replica whose insert races another one still gets the secret, the same one', async () => {
    const db = await createDatabase();
    const first = new pg.Client({ connectionString: db });
    const second = new pg.Client({ connectionString: db });
    await first.connect();
    await second.connect();
    try {
      await first.query('CREATE SCHEMA inboxd');
      await first.query(auth.up('inboxd'));
      const a = sql.serverSecret('inboxd', 'auth', randomBytes(32));
      const b = sql.serverSecret('inboxd', 'auth', randomBytes(32));
      const secondPid = (await second.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;
      await first.query('BEGIN');
      const mine = (await first.query(a.text, a.values)).rows[0].value as Buffer;
      const theirs = second.query(b.text, b.values); // waits on the first one's row
      // Until Postgres shows the second session waiting on a lock (the first one's row).
      await waitFor(
        async () => (await first.query('SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1', [secondPid])).rows[0]?.wait_event_type === 'Lock',
        10_000,
        "the second insert to wait on the first one's row",
      );
      await first.query('COMMIT');
      const got = (await theirs).rows[0]?.value as Buffer | undefined;
      expect(got?.toString('hex')).toBe(mine.toString('hex'));
    } finally {
      await first.end();
      await second.end();
    }
  });
});
