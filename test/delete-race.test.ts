/**
 * A DeleteQueue racing Sends to the same queue: a send whose queue is deleted between its check
 * and its commit answers NOT_FOUND, never INTERNAL (the job insert's foreign key to the queue
 * refused it at commit; found by npm run fuzz through a Publish to a topic whose subscribed queue
 * another call deleted).
 */

import { Code, createClient, type InboxdError } from '@inboxd/sdk';
import { expect, it } from 'vitest';
import { migratedDatabase, startServer } from './support/harness.js';

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
