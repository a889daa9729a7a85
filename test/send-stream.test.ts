import { status } from '@grpc/grpc-js';
import { LeaseRequest, SendStreamRequest, type SendStreamResponse } from '@inboxd/proto/v1/inbox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, dur, migratedDatabase, startServer } from './support/harness.js';

describe('SendStream', () => {
  let srv: Awaited<ReturnType<typeof startServer>>;
  beforeAll(async () => {
    srv = await startServer(await migratedDatabase());
    await call(srv.clients.queues, srv.clients.queues.createQueue, { name: 'piped' });
  });
  afterAll(() => srv?.stop());

  it('answers pipelined batches by sequence, fails only the bad batch, and ends when the client does', async () => {
    const { inbox } = srv.clients;
    const stream = inbox.sendStream();
    const responses: SendStreamResponse[] = [];
    stream.on('data', (r: SendStreamResponse) => responses.push(r));
    const ended = new Promise<void>((resolve, reject) => {
      stream.on('end', resolve);
      stream.on('error', reject);
    });
    // 20 batches of 25 written back to back without waiting; batch 7 names a missing queue and
    // batch 11 an invalid one.
    for (let seq = 1; seq <= 20; seq++) {
      const queue = seq === 7 ? 'nowhere' : seq === 11 ? 'bad name' : 'piped';
      stream.write(
        SendStreamRequest.fromPartial({
          sequence: String(seq),
          messages: Array.from({ length: 25 }, (_, i) => ({ queue, payload: Buffer.from(`${seq}:${i}`) })),
        }),
      );
    }
    stream.end();
    await ended;

    expect(responses.map(r => Number(r.sequence)).sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    const bySeq = new Map(responses.map(r => [Number(r.sequence), r]));
    expect(bySeq.get(7)!.errorCode).toBe(status.NOT_FOUND);
    expect(bySeq.get(7)!.errorMessage).toContain('nowhere');
    expect(bySeq.get(11)!.errorCode).toBe(status.INVALID_ARGUMENT);
    expect(bySeq.get(11)!.errorMessage).toContain('not a valid queue name');
    const good = responses.filter(r => r.errorCode === 0);
    expect(good).toHaveLength(18);
    for (const r of good) expect(r.results).toHaveLength(25);
    const ids = new Set(good.flatMap(r => r.results.map(x => x.id)));
    expect(ids.size).toBe(18 * 25);

    // Every acknowledged message is there, once.
    const leased = new Set<string>();
    for (;;) {
      const { deliveries } = await call(inbox, inbox.lease, LeaseRequest.fromPartial({ queue: 'piped', maxMessages: 1000, visibilityTimeout: dur(60) }));
      if (deliveries.length === 0) break;
      for (const d of deliveries) leased.add(d.message!.id);
    }
    expect(leased).toEqual(ids);
  });
});
