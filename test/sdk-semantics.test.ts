/**
 * The queue-semantics features through the SDK: TTL and dedup keys on send, nack straight to the
 * dead-letter queue with an error (on a stream and pulled), redrive, queue settings and update,
 * and the stats counters.
 */

import { randomUUID } from 'node:crypto';
import { Code, createClient, type InboxdClient, InboxdError, type ReceivedMessage } from '@inboxd/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migratedDatabase, sleep, startServer, waitFor } from './support/harness.js';

describe('SDK: queue semantics', () => {
  let srv: Awaited<ReturnType<typeof startServer>>;
  let client: InboxdClient;
  const fresh = (tag: string) => `${tag}-${randomUUID().slice(0, 8)}`;

  beforeAll(async () => {
    srv = await startServer(await migratedDatabase());
    client = createClient({ address: srv.app.address });
  });
  afterAll(async () => {
    await client?.close();
    await srv?.stop();
  });

  it('creates a queue with every setting and reads them back; update changes only what it names', async () => {
    const name = fresh('cfg');
    const info = await client.queues.create(name, {
      messageTtl: '10m',
      dedupWindow: '2m',
      contentDedup: true,
      maxDepth: 100,
      overflow: 'drop_oldest',
      maxAttempts: 4,
    });
    expect(info).toMatchObject({ messageTtlMs: 600_000, dedupWindowMs: 120_000, contentDedup: true, maxDepth: 100, overflow: 'drop_oldest', maxAttempts: 4 });
    const updated = await client.queues.update(name, { maxDepth: 0, overflow: 'reject', contentDedup: false });
    expect(updated).toMatchObject({ maxDepth: 0, overflow: 'reject', contentDedup: false, messageTtlMs: 600_000, maxAttempts: 4 });
    expect(await client.queues.get(name)).toMatchObject({ maxDepth: 0, contentDedup: false });
    const bad = await client.queues.update(name, { maxAttempts: 5000 }).catch(e => e as InboxdError);
    expect(bad).toBeInstanceOf(InboxdError);
    expect((bad as InboxdError).code).toBe(Code.INVALID_ARGUMENT);
  });

  it('send with dedupKey resolves a repeat with the first id; ttl expires what is not taken in time', async () => {
    const q = fresh('send-opts');
    await client.queues.create(q);
    const first = await client.send(q, 'charge card', { dedupKey: 'payment-77' });
    const again = await client.send(q, 'charge card (retry)', { dedupKey: 'payment-77' });
    expect(again).toBe(first);
    await client.send(q, 'stale soon', { ttl: 300 });
    // Real time: the SDK sets expires_at from the client's wall clock (300 ms: room for a slow Send).
    await sleep(350);
    const got = await client.lease(q, { max: 10 });
    expect(got.map(m => m.text())).toEqual(['charge card']);
    await Promise.all(got.map(m => m.ack()));
    // Never delivered; ended and counted by the sweeper.
    await waitFor(async () => (await client.queues.stats(q)).expired === 1, 5000, 'the sweeper counting the expired message');
  });

  it('a handler nacks straight to the dead-letter queue with its error; redrive brings it back', async () => {
    const dlq = fresh('sdk-dlq');
    const q = fresh('sdk-work');
    await client.queues.create(dlq);
    await client.queues.create(q, { maxAttempts: 5, deadLetterQueue: dlq });
    await client.send(q, 'not json');
    const seen: ReceivedMessage[] = [];
    const sub = client.subscribe(q, async m => {
      seen.push(m);
      await m.nack({ deadLetter: true, error: 'SyntaxError: Unexpected token' });
    });
    await waitFor(async () => (await client.queues.stats(dlq)).depth === 1, 10_000, 'the message in the dead-letter queue');
    await sub.close();
    expect(seen).toHaveLength(1);
    expect(await client.queues.stats(q)).toMatchObject({ depth: 0, deadLettered: 1 });

    const res = await client.queues.redrive(dlq);
    expect(res).toEqual({ redriven: 1, failed: [] });
    const [back] = await client.lease(q, { max: 1 });
    expect(back.text()).toBe('not json');
    expect(back.attempt).toBe(1);
    // Pulled and nacked to the dead letter through the unary call this time.
    await back.nack({ deadLetter: true, error: 'still broken' });
    await waitFor(async () => (await client.queues.stats(dlq)).depth === 1, 10_000, 'dead-lettered again');
  });

  it('a send to a full REJECT queue rejects with RESOURCE_EXHAUSTED', async () => {
    const q = fresh('full');
    await client.queues.create(q, { maxDepth: 1 });
    await client.send(q, 'one');
    const err = await client.send(q, 'two').catch(e => e as InboxdError);
    expect(err).toBeInstanceOf(InboxdError);
    expect((err as InboxdError).code).toBe(Code.RESOURCE_EXHAUSTED);
    expect((err as InboxdError).details).toContain(`queue ${q} is full: max_depth 1`);
  });
});
