/**
 * Replicas started together on a fresh database each make the shared server secret (API key
 * hashes, lease-token signatures) at once. `npm run chaos` found the second of two replicas
 * failing to start: its insert waited on the first one's and then, with ON CONFLICT DO NOTHING,
 * returned no row, while its own snapshot could not see the first one's either. Here the race is
 * made deterministic: the first insert is held uncommitted while the second runs.
 */
import { describe, it, expect } from 'vitest';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import * as sql from '../server/queue/sql.js';
import { auth } from '../server/queue/migrations/002-auth.js';
import { createDatabase } from './support/harness.js';

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
      await first.query('BEGIN');
      const mine = (await first.query(a.text, a.values)).rows[0].value as Buffer;
      const theirs = second.query(b.text, b.values); // waits on the first one's row
      await new Promise(r => setTimeout(r, 200));
      await first.query('COMMIT');
      const got = (await theirs).rows[0]?.value as Buffer | undefined;
      expect(got?.toString('hex')).toBe(mine.toString('hex'));
    } finally {
      await first.end();
      await second.end();
    }
  });
});
