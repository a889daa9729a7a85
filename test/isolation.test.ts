import { randomBytes } from 'node:crypto';
import http2 from 'node:http2';
import { type ServiceError, status } from '@grpc/grpc-js';
import { LeaseRequest, SendRequest, SubscribeRequest } from '@inboxd/proto/v1/inbox';
import type { Delivery } from '@inboxd/proto/v1/message';
import { createClient, type InboxdClient } from '@inboxd/sdk';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { dispatcherIdle } from './support/clock.js';
import { bounded, type Clients, call, connect, dur, migratedDatabase, spawnServer, startServer, waitFor } from './support/harness.js';

/** Streaming calls a server in this process has open now (its inboxd_open_streams gauge). */
async function openStreams(srv: Srv): Promise<number> {
  return (await srv.app.metrics.openStreams.get()).values.reduce((sum, v) => sum + v.value, 0);
}

type Srv = Awaited<ReturnType<typeof startServer>>;

describe('isolation: big messages and stuck consumers', () => {
  let srv: Srv;
  const closers: (() => unknown)[] = [];
  let n = 0;
  const fresh = (p: string) => `${p}-${++n}-${randomBytes(3).toString('hex')}`;

  beforeAll(async () => {
    srv = await startServer(await migratedDatabase(), { sweepIntervalMs: 100 });
  });
  afterAll(async () => {
    await srv?.stop();
  });
  afterEach(async () => {
    for (const c of closers.splice(0).reverse()) await bounded(c(), 5000);
  });
  const sdk = (): InboxdClient => {
    const c = createClient({ address: srv.app.address });
    closers.push(() => c.close());
    return c;
  };
  const raw = (): Clients => {
    const c = connect(srv.app.address);
    closers.push(() => c.close());
    return c;
  };

  it('delivers 200 × 64 KiB and 20 × 1 MiB (the size limit) through Subscribe with SDK defaults, none dead-lettered', async () => {
    const client = sdk();
    for (const [count, size] of [
      [200, 64 * 1024],
      [20, 1024 * 1024],
    ]) {
      const queue = fresh('big-sub');
      await client.queues.create(queue, { maxAttempts: 2 });
      const payload = randomBytes(size);
      const ids = new Set(await Promise.all(Array.from({ length: count }, () => client.send(queue, payload))));
      const got = new Set<string>();
      let attempts = 0;
      const sub = client.subscribe(queue, async m => {
        expect(m.payload.length).toBe(size);
        attempts = Math.max(attempts, m.attempt);
        got.add(m.id);
      });
      closers.push(() => sub.close());
      await waitFor(() => got.size === ids.size, 30_000, `${count} messages of ${size} bytes through Subscribe`);
      expect(attempts).toBe(1);
      expect((await client.queues.stats(queue)).deadLettered).toBe(0);
    }
  });

  it('Lease answers within the response budget: each big message delivered once, on its first attempt, also to a client with 4 MiB frames', async () => {
    const client = sdk();
    const queue = fresh('big-lease');
    await client.queues.create(queue);
    const payload = randomBytes(64 * 1024);
    const ids = new Set(await Promise.all(Array.from({ length: 200 }, () => client.send(queue, payload))));
    // The generated client with grpc-js defaults (4 MiB per response), as grpcurl has.
    const { inbox } = raw();
    const seen = new Set<string>();
    for (let round = 0; round < 20 && seen.size < ids.size; round++) {
      const res = await call(inbox, inbox.lease, LeaseRequest.fromPartial({ queue, maxMessages: 1000, visibilityTimeout: dur(60) }));
      expect(res.deliveries.length).toBeGreaterThan(0);
      expect(res.deliveries.length).toBeLessThan(60); // 3 MiB of 64 KiB messages
      for (const d of res.deliveries) {
        expect(d.attempt).toBe(1);
        expect(seen.has(d.message!.id)).toBe(false);
        seen.add(d.message!.id);
      }
      await call(inbox, inbox.ack, { leaseTokens: res.deliveries.map(d => d.leaseToken) });
    }
    expect(seen).toEqual(ids);
    // And through the SDK's lease().
    const q2 = fresh('big-lease-sdk');
    await client.queues.create(q2);
    await Promise.all(Array.from({ length: 20 }, () => client.send(q2, randomBytes(1024 * 1024))));
    const got = await client.lease(q2, { max: 20 });
    expect(got.length).toBeGreaterThanOrEqual(1);
    expect(got.length).toBeLessThanOrEqual(3);
    expect(got.every(m => m.attempt === 1 && m.payload.length === 1024 * 1024)).toBe(true);
  });

  it('200 streams that never read next to 1 healthy subscriber: the healthy one handles every message, none is dead-lettered', async () => {
    const client = sdk();
    const queue = fresh('stuck');
    await client.queues.create(queue, { maxAttempts: 3, visibilityTimeout: '2s' });
    // 200 Subscribe streams over 4 connections that ask for 100 messages each and never read a byte.
    const stuck = Array.from({ length: 4 }, () => raw());
    for (let i = 0; i < 200; i++) {
      const { inbox } = stuck[i % 4];
      const s = inbox.subscribe();
      s.on('error', () => {});
      s.write(SubscribeRequest.fromPartial({ queue, flowControl: { maxOutstandingMessages: 100 } }));
    }
    await waitFor(async () => (await openStreams(srv)) >= 200, 10_000, 'the 200 streams open on the server');
    const handled = new Set<string>();
    const sub = client.subscribe(queue, async m => void handled.add(m.id));
    closers.push(() => sub.close());
    const ids = await Promise.all(Array.from({ length: 2000 }, (_, i) => client.send(queue, `m${i}`)));
    await waitFor(() => handled.size === ids.length, 45_000, `the healthy subscriber to handle all 2,000 (has ${handled.size})`);
    const stats = await client.queues.stats(queue);
    expect(stats.deadLettered).toBe(0);
  });

  it('a stream whose client never settles keeps its credit held after leases run out: the message goes to another consumer, and a late (stale) ack frees the slot', async () => {
    const client = sdk();
    const queue = fresh('held');
    await client.queues.create(queue);
    const [id] = await Promise.all([client.send(queue, 'one')]);
    const { inbox } = raw();
    const stream = inbox.subscribe();
    const deliveries: { token: string; id: string; attempt: number }[] = [];
    let ackAnswers = 0;
    stream.on('data', (r: { deliveries: { leaseToken: string; attempt: number; message?: { id: string } }[]; ackResults?: unknown }) => {
      r.deliveries.forEach(d => deliveries.push({ token: d.leaseToken, id: d.message!.id, attempt: d.attempt }));
      if (r.ackResults) ackAnswers++;
    });
    stream.on('error', (_: ServiceError) => {});
    stream.write(SubscribeRequest.fromPartial({ queue, flowControl: { maxOutstandingMessages: 1 }, visibilityTimeout: dur(1) }));
    await waitFor(() => deliveries.length === 1, 5000, 'the first delivery');
    // The lease runs out; the message is free for others, not pushed again to the stream that holds it.
    let again: Delivery | undefined;
    await waitFor(
      async () => {
        again = (await call(inbox, inbox.lease, LeaseRequest.fromPartial({ queue, maxMessages: 1, visibilityTimeout: dur(30) }))).deliveries[0];
        return again !== undefined;
      },
      10_000,
      'the redelivery to a Lease call',
    );
    expect(again!.message!.id).toBe(id);
    expect(again!.attempt).toBe(2);
    expect(deliveries).toHaveLength(1);
    // A late ack of the expired delivery is stale, and gives the stream its slot back.
    stream.write(SubscribeRequest.fromPartial({ ackLeaseTokens: [deliveries[0].token] }));
    await waitFor(() => ackAnswers === 1, 5000, 'the answer to the late ack');
    const [next] = await Promise.all([client.send(queue, 'two')]);
    await waitFor(() => deliveries.length === 2, 5000, 'a new message pushed to the freed slot');
    expect(deliveries[1]).toMatchObject({ id: next, attempt: 1 });
    stream.end();
  });

  it('refuses a stream past INBOXD_MAX_STREAMS with RESOURCE_EXHAUSTED, and admits one again when another ends', async () => {
    const own = await startServer(await migratedDatabase(), { maxStreams: 3 });
    try {
      const c = connect(own.app.address);
      await call(c.queues, c.queues.createQueue, { name: 'few' });
      // A stream is admitted once a request after its first is answered (an extend of a token no
      // server issued); refused, it ends with an error instead.
      const open = (): { stream: ReturnType<typeof c.inbox.subscribe>; err: Promise<ServiceError | undefined> } => {
        const stream = c.inbox.subscribe();
        const err = new Promise<ServiceError | undefined>(resolve => {
          stream.on('error', (e: ServiceError) => resolve(e));
          stream.on('data', (r: { extendResults?: unknown }) => r.extendResults && resolve(undefined));
        });
        stream.write(SubscribeRequest.fromPartial({ queue: 'few', flowControl: { maxOutstandingMessages: 10 } }));
        stream.write(SubscribeRequest.fromPartial({ extendLeaseTokens: ['probe'] }));
        return { stream, err };
      };
      const three = [open(), open(), open()];
      for (const s of three) expect(await s.err).toBeUndefined();
      const fourth = open();
      const refused = await fourth.err;
      expect(refused?.code).toBe(status.RESOURCE_EXHAUSTED);
      expect(refused?.details).toContain('INBOXD_MAX_STREAMS');
      for (const s of three) expect(await s.err).toBeUndefined();
      three[0].stream.cancel();
      await waitFor(async () => (await openStreams(own)) === 2, 5000, 'the cancelled stream to end on the server');
      const fifth = open();
      expect(await fifth.err).toBeUndefined();
      for (const s of [...three, fifth]) s.stream.cancel();
      c.close();
    } finally {
      await own.stop();
    }
  });

  it('a stream that stops reading holds at most 16 MiB written and unsent; the rest of the queue stays untouched for others', async () => {
    const client = sdk();
    const queue = fresh('unread');
    await client.queues.create(queue);
    const payload = randomBytes(1024 * 1024);
    await Promise.all(Array.from({ length: 100 }, () => client.send(queue, payload)));
    // Asks for 30 (more than 16 MiB of them: the window is not what stops it; a window of 1,000
    // only made each fetch read the whole queue to keep one) and never reads a byte: a bare HTTP/2
    // stream whose data nobody consumes, so flow control holds the server back. (grpc-js would go
    // on reading into its own buffers for an application that does not: a reader, to the server.)
    const session = http2.connect(`http://${srv.app.address}`).on('error', () => {});
    closers.push(() => session.destroy());
    const stream = session.request({ ':method': 'POST', ':path': '/inboxd.v1.Inbox/Subscribe', 'content-type': 'application/grpc', te: 'trailers' });
    stream.on('error', () => {});
    const first = Buffer.from(
      SubscribeRequest.encode(SubscribeRequest.fromPartial({ queue, flowControl: { maxOutstandingMessages: 30 }, visibilityTimeout: dur(60) })).finish(),
    );
    const frame = Buffer.alloc(5);
    frame.writeUInt32BE(first.length, 1);
    stream.write(Buffer.concat([frame, first]));
    await waitFor(() => srv.app.core.dispatcher.buffers.used > 0, 10_000, 'deliveries written and left unread');
    // Until the dispatcher stops on its own: all it would write to the stream is written.
    await dispatcherIdle(srv.app.core, queue, 30_000);
    await dispatcherIdle(srv.app.core, queue, 30_000);
    const buffered = srv.app.core.dispatcher.buffers.used;
    expect(buffered).toBeLessThanOrEqual(16 * 1024 * 1024 + 3 * 1024 * 1024);
    const stats = await client.queues.stats(queue);
    expect(stats.leased).toBeLessThanOrEqual(20);
    expect(stats.ready).toBeGreaterThanOrEqual(80);
    stream.close();
    await waitFor(() => srv.app.core.dispatcher.buffers.used === 0, 5000, 'the buffer to be freed when the stream ends');
  });

  it('requests partly received are capped in all: past INBOXD_MAX_RECEIVING_BYTES a stalling call is RESOURCE_EXHAUSTED, others are served', async () => {
    const p = await spawnServer(await migratedDatabase(), { INBOXD_MAX_RECEIVING_BYTES: String(8 * 1024 * 1024), INBOXD_AUTO_CREATE_QUEUES: 'true' });
    // One connection each: Node's HTTP/2 already caps one connection's memory (about 10 MB),
    // the server-wide cap is for many connections.
    const sessions = Array.from({ length: 20 }, () => http2.connect(`http://${p.address}`).on('error', () => {}));
    try {
      // 20 Sends that each declare a 3 MB message, send 1 MB of it, and stall. Once 11 are refused,
      // at most 9 can be held; a call neither refused nor ended within 5 s is held (-1).
      let finished = 0;
      let enoughRefused!: () => void;
      const decided = new Promise<void>(resolve => (enoughRefused = resolve));
      const statuses = sessions.map(session => {
        const req = session.request({ ':method': 'POST', ':path': '/inboxd.v1.Inbox/Send', 'content-type': 'application/grpc', te: 'trailers' });
        let outcome: number | undefined = -1;
        const end = (code: number | undefined) => {
          if (outcome !== -1) return;
          outcome = code;
          if (++finished >= 11) enoughRefused();
        };
        req.on('trailers', t => end(Number(t['grpc-status'])));
        req.on('response', h => h['grpc-status'] !== undefined && end(Number(h['grpc-status'])));
        req.on('error', () => end(undefined));
        req.on('close', () => end(undefined));
        const done = () => outcome;
        req.on('data', () => {});
        const header = Buffer.alloc(5);
        header.writeUInt32BE(3_000_000, 1);
        req.write(Buffer.concat([header, Buffer.alloc(1024 * 1024, 1)]));
        return { req, done };
      });
      await bounded(decided, 5000);
      const codes = statuses.map(s => s.done());
      const refused = codes.filter(c => c === status.RESOURCE_EXHAUSTED).length;
      const stalled = codes.filter(c => c === -1).length;
      // About 8 MiB of the 20 MiB sent is held; the calls that went past it were refused.
      expect(refused).toBeGreaterThanOrEqual(10);
      expect(stalled).toBeLessThanOrEqual(9);
      // Meanwhile an ordinary call on another connection is served.
      const c = connect(p.address);
      const res = await call(c.inbox, c.inbox.send, SendRequest.fromPartial({ messages: [{ queue: 'canary', payload: Buffer.from('ok') }] }));
      expect(res.results).toHaveLength(1);
      c.close();
      for (const s of statuses) s.req.close();
    } finally {
      for (const session of sessions) session.destroy();
      p.proc.kill('SIGKILL');
      await p.exited;
    }
  });
});
