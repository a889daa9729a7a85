import { createClient, type InboxdClient } from '@inboxd/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migratedDatabase, startServer } from './support/harness.js';

describe('sdk smoke', () => {
  let srv: Awaited<ReturnType<typeof startServer>>;
  let client: InboxdClient;
  beforeAll(async () => {
    srv = await startServer(await migratedDatabase());
    client = createClient({ address: srv.app.address, poolSize: 2 });
  });
  afterAll(async () => {
    await client?.close();
    await srv?.stop();
  });

  it('publishes in batches and a subscriber handles every message once', async () => {
    await client.queues.create('sdk-smoke', { ackedRetention: '1h' }); // counted acked below
    const ids = await Promise.all(Array.from({ length: 1000 }, (_, i) => client.sendJson('sdk-smoke', { i })));
    expect(new Set(ids).size).toBe(1000);
    const seen = new Set<string>();
    let done!: () => void;
    const all = new Promise<void>(r => (done = r));
    const sub = client.subscribe(
      'sdk-smoke',
      m => {
        seen.add(m.id);
        if (seen.size === 1000) done();
      },
      { maxOutstandingMessages: 50 },
    );
    await all;
    await sub.close();
    expect(sub.maxHeld).toBeLessThanOrEqual(50);
    const stats = await client.queues.stats('sdk-smoke');
    expect(stats).toMatchObject({ depth: 0, leased: 0, acked: 1000 });
  });
});
