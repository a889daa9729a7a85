import { status } from '@grpc/grpc-js';
import { LeaseRequest, SendRequest } from '@inboxd/proto/v1/inbox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { failure } from './support/expect.js';
import { call, dur, migratedDatabase, startServer } from './support/harness.js';

describe('smoke', () => {
  let srv: Awaited<ReturnType<typeof startServer>>;
  beforeAll(async () => {
    srv = await startServer(await migratedDatabase());
  });
  afterAll(() => srv?.stop());

  it('creates a queue, sends, leases and acks', async () => {
    const { inbox, queues } = srv.clients;
    await call(queues, queues.createQueue, { name: 'smoke' });
    const sent = await call(inbox, inbox.send, SendRequest.fromPartial({ messages: [{ queue: 'smoke', payload: Buffer.from('hi') }] }));
    expect(sent.results).toHaveLength(1);
    const leased = await call(inbox, inbox.lease, LeaseRequest.fromPartial({ queue: 'smoke', maxMessages: 10, visibilityTimeout: dur(5) }));
    expect(leased.deliveries).toHaveLength(1);
    expect(Buffer.from(leased.deliveries[0].message!.payload).toString()).toBe('hi');
    const acked = await call(inbox, inbox.ack, { leaseTokens: [leased.deliveries[0].leaseToken] });
    expect(acked.acked).toBe(1);
    const err = await failure(call(inbox, inbox.send, SendRequest.fromPartial({ messages: [{ queue: 'missing', payload: Buffer.from('x') }] })));
    expect(err.code).toBe(status.NOT_FOUND);
  });
});
