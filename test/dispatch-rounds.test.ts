/**
 * What the dispatcher asks the database for at a low rate: a subscriber acking each message after
 * the queue ran dry must not make the server lease again (an empty lease per ack was 35–50 % of
 * all leases at 1,000 msgs/s); a message sent, a nack and a new subscriber still do.
 */
import { createClient, type InboxdClient } from '@inboxd/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migratedDatabase, startServer } from './support/harness.js';

describe('dispatch at a low rate', () => {
  let srv: Awaited<ReturnType<typeof startServer>>;
  let client: InboxdClient;
  /** Leases the server ran, and how many of them came back empty. */
  const leases = { all: 0, empty: 0 };

  beforeAll(async () => {
    srv = await startServer(await migratedDatabase());
    const store = srv.app.core.store;
    const lease = store.lease.bind(store);
    store.lease = async (...args) => {
      const got = await lease(...args);
      leases.all++;
      if (got.length === 0) leases.empty++;
      return got;
    };
    client = createClient({ address: srv.app.address });
  });
  afterAll(async () => {
    await client?.close();
    await srv?.stop();
  });

  it('one message at a time, each acked: handed off as stored, no lease per message, no empty lease per ack', async () => {
    const q = 'low-rate';
    await client.queues.create(q);
    const handled: string[] = [];
    let next: (() => void) | undefined;
    const sub = client.subscribe(q, async m => {
      handled.push(m.payload.toString());
      next?.();
    });
    // The subscriber's first lease (at open, on an empty queue) is the one empty lease expected.
    const ROUNDS = 40;
    for (let i = 0; i < ROUNDS; i++) {
      const got = new Promise<void>(resolve => (next = resolve));
      await client.send(q, `m${i}`);
      await got;
    }
    await sub.close(); // acks in flight answered first
    expect(handled).toHaveLength(ROUNDS);
    // A send to the drained queue the subscriber waits on is handed to it as it is stored (no
    // lease); an ack after that finds the queue drained: no lease either. Only the opening one.
    expect(leases.empty).toBeLessThanOrEqual(3);
    expect(leases.all).toBeLessThanOrEqual(3);
  });

  it('after the queue ran dry, a nack (the message back) and a new send are still delivered at once', async () => {
    const q = 'low-rate-nack';
    await client.queues.create(q);
    const attempts: number[] = [];
    const sub = client.subscribe(q, async m => {
      attempts.push(m.attempt);
      if (m.attempt === 1) await m.nack();
      else await m.ack();
    });
    await client.send(q, 'again');
    const t0 = Date.now();
    while (attempts.length < 2) await new Promise(r => setTimeout(r, 5));
    expect(Date.now() - t0).toBeLessThan(1000); // the ready poll is a minute away in tests
    expect(attempts).toEqual([1, 2]);
    await sub.close();
  });
});
