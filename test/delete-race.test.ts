/**
 * A DeleteQueue racing Sends to the same queue: a send whose queue is deleted between its check
 * and its commit answers NOT_FOUND, never INTERNAL (the job insert's foreign key to the queue
 * refused it at commit; found by npm run fuzz through a Publish to a topic whose subscribed queue
 * another call deleted).
 */

import { randomBytes } from 'node:crypto';
import { Code, createClient, type InboxdError } from '@inboxd/sdk';
import pg from 'pg';
import { expect, it } from 'vitest';
import { migratedDatabase, startServer, waitFor } from './support/harness.js';

it('sends racing the deletion of their queue end OK or NOT_FOUND, never INTERNAL', async () => {
  const srv = await startServer(await migratedDatabase());
  const c = createClient({ address: srv.app.address, poolSize: 2, retry: { maxAttempts: 1 } });
  try {
    const codes = new Map<string, number>();
    const notFound: string[] = [];
    for (let r = 0; r < 30; r++) {
      const q = `race-${r}`;
      await c.queues.create(q);
      // Sends with dedup keys take the admission path (one transaction); the rest the group insert.
      const ops: Promise<unknown>[] = [];
      for (let i = 0; i < 10; i++) ops.push(c.send(q, `m${i}`, { dedupKey: `k${i}` }));
      for (let i = 0; i < 10; i++) ops.push(c.send(q, `p${i}`));
      ops.splice(
        5,
        0,
        c.queues.delete(q).catch(() => undefined),
      );
      for (const x of await Promise.allSettled(ops)) {
        const code = x.status === 'fulfilled' ? 'OK' : Code[(x.reason as InboxdError).code];
        codes.set(code, (codes.get(code) ?? 0) + 1);
        if (code === 'NOT_FOUND') notFound.push((x as PromiseRejectedResult).reason.details);
      }
    }
    expect(codes.get('INTERNAL') ?? 0, JSON.stringify([...codes])).toBe(0);
    expect([...codes.keys()].filter(k => k !== 'OK' && k !== 'NOT_FOUND')).toEqual([]);
    for (const d of notFound) expect(d).toMatch(/^queue race-\d+ not found/);
  } finally {
    await c.close();
    await srv.stop();
  }
});

it('a key revoked while its principal is being deleted answers NOT_FOUND, never INTERNAL (found by npm run fuzz)', async () => {
  const ADMIN = randomBytes(30).toString('base64url').slice(0, 40);
  const url = await migratedDatabase();
  const srv = await startServer(url, { auth: 'required', adminKey: ADMIN });
  const c = createClient({ address: srv.app.address, apiKey: ADMIN, retry: { maxAttempts: 1 } });
  const db = new pg.Client({ connectionString: url });
  await db.connect();
  try {
    await c.auth.createPrincipal('leaving');
    const { key } = await c.auth.createKey('leaving');
    // The key's row deleted by a transaction not yet committed: RevokeKey reads it (the committed
    // version), then waits on the row for its update, which finds it gone once the delete commits.
    await db.query('BEGIN');
    await db.query('DELETE FROM inboxd.inboxd_api_key WHERE id = $1', [key.id]);
    const revoke = c.auth.revokeKey(key.id).then(
      () => 'OK',
      (err: InboxdError) => Code[err.code],
    );
    await waitFor(
      async () =>
        (
          await srv.app.core.db.exec({
            text: `SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'UPDATE %inboxd_api_key%'`,
            values: [],
          })
        ).rows[0].n === 1,
      5000,
      'RevokeKey waiting on the row',
    );
    await db.query('COMMIT');
    expect(await revoke).toBe('NOT_FOUND');
  } finally {
    await db.end();
    await c.close();
    await srv.stop();
  }
});
