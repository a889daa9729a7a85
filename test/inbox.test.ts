import { createHash, randomUUID } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import type { Duration } from '@inboxd/proto/google/protobuf/duration';
import { AckRequest, ExtendLeaseRequest, LeaseRequest, type LeaseResponse, NackRequest, SendRequest, type SendResponse } from '@inboxd/proto/v1/inbox';
import type { Message } from '@inboxd/proto/v1/message';
import { CreateQueueRequest, GetQueueStatsRequest, type QueueConfig, type QueueStats } from '@inboxd/proto/v1/queues';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LeaseTokens } from '../server/queue/lease-token.js';
import { type ServerClock, serverWaits, startTimedServer } from './support/clock.js';
import { counts, expectStatus, ZERO } from './support/expect.js';
import { type Clients, call, dur, migratedDatabase, startServer } from './support/harness.js';

type Server = Awaited<ReturnType<typeof startServer>>;

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const text = (b: Uint8Array | undefined) => Buffer.from(b ?? []).toString('utf8');

/** Helpers bound to one server's clients. */
function api(c: Clients) {
  const { inbox, queues } = c;
  return {
    createQueue: (name: string, config?: Partial<QueueConfig>) => call(queues, queues.createQueue, CreateQueueRequest.fromPartial({ name, config })),
    send: (messages: Partial<Message>[]): Promise<SendResponse> => call(inbox, inbox.send, SendRequest.fromPartial({ messages })),
    sendTo: (queue: string, ...payloads: string[]): Promise<SendResponse> =>
      call(inbox, inbox.send, SendRequest.fromPartial({ messages: payloads.map(p => ({ queue, payload: Buffer.from(p) })) })),
    lease: (queue: string, opts: { max?: number; vis?: number | Duration; wait?: number | Duration } = {}): Promise<LeaseResponse> =>
      call(
        inbox,
        inbox.lease,
        LeaseRequest.fromPartial({
          queue,
          maxMessages: opts.max ?? 0,
          visibilityTimeout: typeof opts.vis === 'number' ? dur(opts.vis) : opts.vis,
          wait: typeof opts.wait === 'number' ? dur(opts.wait) : opts.wait,
        }),
      ),
    ack: (...tokens: string[]) => call(inbox, inbox.ack, AckRequest.fromPartial({ leaseTokens: tokens })),
    nack: (tokens: string[], delay?: Duration) => call(inbox, inbox.nack, NackRequest.fromPartial({ leaseTokens: tokens, delay })),
    extend: (tokens: string[], vis?: Duration) =>
      call(inbox, inbox.extendLease, ExtendLeaseRequest.fromPartial({ leaseTokens: tokens, visibilityTimeout: vis })),
    stats: async (name: string): Promise<QueueStats> => (await call(queues, queues.getQueueStats, GetQueueStatsRequest.fromPartial({ name }))).stats!,
  };
}

let srv: Server;
let a: ReturnType<typeof api>;
let databaseUrl: string;
/** A second server, on a database of its own, whose time moves only when a test advances its clock: for the tests about time. */
let timed: Server;
let t: ReturnType<typeof api>;
let clock: ServerClock;
let qn = 0;
/** A fresh queue name per test, so tests never see each other's messages. */
const fresh = (tag: string) => `${tag}-${++qn}`;

beforeAll(async () => {
  databaseUrl = await migratedDatabase();
  srv = await startServer(databaseUrl);
  a = api(srv.clients);
  const s = await startTimedServer();
  timed = s;
  clock = s.clock;
  t = api(timed.clients);
});
afterAll(async () => {
  await srv?.stop();
  await timed?.stop();
});

/** Starts a long-poll Lease on the timed server and resolves, with its answer to come, once the server waits on the queue. */
async function waitingLease(q: string, opts: { max?: number; vis?: number } = {}): Promise<{ answer: Promise<LeaseResponse> }> {
  const waits = serverWaits(timed.app.core, q);
  const answer = t.lease(q, { ...opts, wait: 30 });
  await waits;
  return { answer };
}

/** A second lease of `q`'s message, once the first one's 1 s lease ran out on the timed server's clock and the sweeper returned it. */
async function afterExpiry(q: string, vis = 30): Promise<LeaseResponse> {
  const { answer } = await waitingLease(q, { vis });
  // 1 s of lease and a sweep (every 200 ms) after it.
  await clock.advance(1400);
  return answer;
}

describe('Send', () => {
  it('stores a batch and answers one result per message, in order, with ids and content hashes', async () => {
    const q = fresh('send-batch');
    await a.createQueue(q);
    const payloads = ['first', 'second', 'third', 'fourth', ''];
    const res = await a.sendTo(q, ...payloads);
    expect(res.results).toHaveLength(payloads.length);
    const ids = res.results.map(r => r.id);
    for (const id of ids) expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(new Set(ids).size).toBe(payloads.length);
    expect(res.results.map(r => r.duplicate)).toEqual(payloads.map(() => false));
    expect(res.results.map(r => r.contentHash)).toEqual(payloads.map(p => sha256(Buffer.from(p))));

    // Results are in request order: each id leases back with the payload at its position.
    const leased = await a.lease(q, { max: 10, vis: 30 });
    expect(leased.deliveries).toHaveLength(payloads.length);
    const byId = new Map(leased.deliveries.map(d => [d.message!.id, text(d.message!.payload)]));
    ids.forEach((id, i) => expect(byId.get(id)).toBe(payloads[i]));
  });

  it('round-trips every field of a message through Lease', async () => {
    const q = fresh('send-fields');
    await a.createQueue(q);
    const payload = Buffer.from([0, 1, 2, 255, 254, 10, 13, 0, 0x7f]);
    const id = randomUUID();
    const before = Date.now();
    const msg: Partial<Message> = {
      id,
      queue: q,
      payload,
      contentType: 'application/octet-stream',
      headers: { 'x-trace': 'abc123', tenant: 'acme', empty: '', ünïcode: 'välüe ✓' },
      subject: 'orders.created',
      correlationId: 'corr-42',
      replyTo: 'replies.q-1',
      priority: 7,
      // Fields the server owns: whatever the client puts here is ignored.
      contentHash: 'deadbeef',
      enqueuedAt: new Date('2001-01-01T00:00:00Z'),
    };
    const res = await a.send([msg]);
    expect(res.results).toEqual([{ id, duplicate: false, contentHash: sha256(payload), queue: q }]);

    const leased = await a.lease(q, { vis: 30 });
    expect(leased.deliveries).toHaveLength(1);
    const d = leased.deliveries[0];
    const m = d.message!;
    expect(m.id).toBe(id);
    expect(m.queue).toBe(q);
    expect(Buffer.from(m.payload).equals(payload)).toBe(true);
    expect(m.contentType).toBe('application/octet-stream');
    expect(m.headers).toEqual({ 'x-trace': 'abc123', tenant: 'acme', empty: '', ünïcode: 'välüe ✓' });
    expect(m.subject).toBe('orders.created');
    expect(m.correlationId).toBe('corr-42');
    expect(m.replyTo).toBe('replies.q-1');
    expect(m.priority).toBe(7);
    expect(m.contentHash).toBe(sha256(payload));
    expect(m.contentHash).toMatch(/^[0-9a-f]{64}$/);
    expect(m.deliverAt).toBeUndefined();
    expect(m.enqueuedAt).toBeInstanceOf(Date);
    expect(m.enqueuedAt!.getTime()).toBeGreaterThanOrEqual(before - 5000);
    expect(m.enqueuedAt!.getTime()).toBeLessThanOrEqual(Date.now() + 5000);
    expect(d.attempt).toBe(1);
    expect(d.leaseToken).not.toBe('');
    expect(d.leaseExpiresAt!.getTime()).toBeGreaterThan(Date.now() + 20_000);
    expect(d.leaseExpiresAt!.getTime()).toBeLessThanOrEqual(Date.now() + 31_000);
  });

  it('round-trips a message with no optional fields as empty values', async () => {
    const q = fresh('send-bare');
    await a.createQueue(q);
    const [r] = (await a.send([{ queue: q }])).results;
    expect(r.contentHash).toBe(sha256(Buffer.alloc(0)));
    const m = (await a.lease(q, { vis: 30 })).deliveries[0].message!;
    expect(m).toMatchObject({ id: r.id, queue: q, contentType: '', headers: {}, subject: '', correlationId: '', replyTo: '', priority: 0 });
    expect(m.payload.length).toBe(0);
  });

  it('a resend of a client-supplied id reports duplicate with the same id, and stores nothing new', async () => {
    const q = fresh('send-dup');
    await a.createQueue(q);
    const id = randomUUID();
    const first = await a.send([{ id, queue: q, payload: Buffer.from('original') }]);
    expect(first.results).toEqual([{ id, duplicate: false, contentHash: sha256(Buffer.from('original')), queue: q }]);

    const again = await a.send([{ id, queue: q, payload: Buffer.from('original') }]);
    expect(again.results).toHaveLength(1);
    expect(again.results[0]).toMatchObject({ id, duplicate: true });

    // The same id in upper case is the same UUID.
    const upper = await a.send([{ id: id.toUpperCase(), queue: q, payload: Buffer.from('original') }]);
    expect(upper.results[0]).toMatchObject({ id, duplicate: true });

    expect(counts(await a.stats(q))).toMatchObject({ depth: 1, ready: 1 });
    const leased = await a.lease(q, { max: 10, vis: 30 });
    expect(leased.deliveries).toHaveLength(1);
    expect(leased.deliveries[0].message!.id).toBe(id);
    expect(text(leased.deliveries[0].message!.payload)).toBe('original');
  });

  it('a resend of an id that was already leased and acked is still a duplicate, not a new message', async () => {
    const q = fresh('send-dup-acked');
    await a.createQueue(q);
    const id = randomUUID();
    await a.send([{ id, queue: q, payload: Buffer.from('x') }]);
    const d = (await a.lease(q, { vis: 30 })).deliveries[0];
    await a.ack(d.leaseToken);
    const again = await a.send([{ id, queue: q, payload: Buffer.from('x') }]);
    expect(again.results[0]).toMatchObject({ id, duplicate: true });
    expect((await a.lease(q, { max: 10 })).deliveries).toHaveLength(0);
    expect(counts(await a.stats(q))).toMatchObject({ depth: 0, acked: 1 });
  });

  it('the same id twice in one batch: the first is stored, the second reports duplicate', async () => {
    const q = fresh('send-dup-batch');
    await a.createQueue(q);
    const id = randomUUID();
    const other = randomUUID();
    const res = await a.send([
      { id, queue: q, payload: Buffer.from('one') },
      { id: other, queue: q, payload: Buffer.from('other') },
      { id, queue: q, payload: Buffer.from('two') },
    ]);
    expect(res.results.map(r => [r.id, r.duplicate])).toEqual([
      [id, false],
      [other, false],
      [id, true],
    ]);
    const leased = await a.lease(q, { max: 10, vis: 30 });
    expect(leased.deliveries).toHaveLength(2);
    const stored = leased.deliveries.find(d => d.message!.id === id)!;
    expect(text(stored.message!.payload)).toBe('one');
  });

  it('ids are per queue: the same client id in two queues stores one message in each', async () => {
    const q1 = fresh('id-scope-a');
    const q2 = fresh('id-scope-b');
    await a.createQueue(q1);
    await a.createQueue(q2);
    const id = randomUUID();
    expect((await a.send([{ id, queue: q1, payload: Buffer.from('1') }])).results[0]).toMatchObject({ id, duplicate: false });
    expect((await a.send([{ id, queue: q2, payload: Buffer.from('2') }])).results[0]).toMatchObject({ id, duplicate: false });
    expect(text((await a.lease(q1, { vis: 30 })).deliveries[0].message!.payload)).toBe('1');
    expect(text((await a.lease(q2, { vis: 30 })).deliveries[0].message!.payload)).toBe('2');
  });

  it('one batch may span several queues; every message lands in its own queue', async () => {
    const q1 = fresh('send-multi-a');
    const q2 = fresh('send-multi-b');
    await a.createQueue(q1);
    await a.createQueue(q2);
    const res = await a.send([
      { queue: q1, payload: Buffer.from('a1') },
      { queue: q2, payload: Buffer.from('b1') },
      { queue: q1, payload: Buffer.from('a2') },
    ]);
    expect(res.results).toHaveLength(3);
    const l1 = await a.lease(q1, { max: 10, vis: 30 });
    const l2 = await a.lease(q2, { max: 10, vis: 30 });
    expect(l1.deliveries.map(d => text(d.message!.payload)).sort()).toEqual(['a1', 'a2']);
    expect(l2.deliveries.map(d => text(d.message!.payload))).toEqual(['b1']);
    expect(l1.deliveries.map(d => d.message!.id).sort()).toEqual([res.results[0].id, res.results[2].id].sort());
    expect(l2.deliveries[0].message!.id).toBe(res.results[1].id);
  });

  it('50 concurrent Sends of 20 messages each are all stored exactly once', async () => {
    const q = fresh('send-concurrent');
    await a.createQueue(q);
    const calls = 50;
    const per = 20;
    const responses = await Promise.all(Array.from({ length: calls }, (_, c) => a.sendTo(q, ...Array.from({ length: per }, (_, i) => `c${c}-m${i}`))));
    const ids = responses.flatMap(r => r.results.map(x => x.id));
    expect(ids).toHaveLength(calls * per);
    expect(new Set(ids).size).toBe(calls * per);
    expect(responses.flatMap(r => r.results).filter(r => r.duplicate)).toHaveLength(0);
    // Each call got its own results, in its own order.
    responses.forEach((r, c) => expect(r.results.map(x => x.contentHash)).toEqual(Array.from({ length: per }, (_, i) => sha256(Buffer.from(`c${c}-m${i}`)))));

    expect(counts(await a.stats(q))).toMatchObject({ depth: calls * per, ready: calls * per });
    const leased = await a.lease(q, { max: 1000, vis: 60 });
    expect(leased.deliveries).toHaveLength(calls * per);
    expect(new Set(leased.deliveries.map(d => d.message!.id))).toEqual(new Set(ids));
    const payloadById = new Map(leased.deliveries.map(d => [d.message!.id, text(d.message!.payload)]));
    responses.forEach((r, c) => r.results.forEach((x, i) => expect(payloadById.get(x.id)).toBe(`c${c}-m${i}`)));
    expect((await a.lease(q, { max: 10 })).deliveries).toHaveLength(0);
  });

  it('concurrent Sends racing with the same client ids store each id exactly once', async () => {
    const q = fresh('send-race');
    await a.createQueue(q);
    const idSets = Array.from({ length: 25 }, () => Array.from({ length: 20 }, () => randomUUID()));
    // Every set is sent by two calls at once, the second in reverse order: 50 calls, 500 distinct ids.
    const batches = [...idSets, ...idSets.map(ids => [...ids].reverse())].map(ids => ids.map(id => ({ id, queue: q, payload: Buffer.from(id) })));
    const responses = await Promise.all(batches.map(b => a.send(b)));
    const fresh1 = new Map<string, number>();
    for (const r of responses.flatMap(r => r.results)) if (!r.duplicate) fresh1.set(r.id, (fresh1.get(r.id) ?? 0) + 1);
    expect(fresh1.size).toBe(500);
    expect([...fresh1.values()].every(n => n === 1)).toBe(true);
    responses.forEach((r, i) => expect(r.results.map(x => x.id)).toEqual(batches[i].map(m => m.id)));
    expect(counts(await a.stats(q))).toMatchObject({ depth: 500, ready: 500 });
  });
});

describe('priority and deliver_at', () => {
  it('leases higher priority first', async () => {
    const q = fresh('prio');
    await a.createQueue(q);
    await a.send([
      { queue: q, payload: Buffer.from('low'), priority: -5 },
      { queue: q, payload: Buffer.from('normal') },
      { queue: q, payload: Buffer.from('urgent'), priority: 1_000_000 },
      { queue: q, payload: Buffer.from('high'), priority: 10 },
    ]);
    const order: string[] = [];
    for (let i = 0; i < 4; i++) {
      const l = await a.lease(q, { max: 1, vis: 30 });
      expect(l.deliveries).toHaveLength(1);
      order.push(text(l.deliveries[0].message!.payload));
    }
    expect(order).toEqual(['urgent', 'high', 'normal', 'low']);
  });

  it('a message whose deliver_at is in the future is not leased before then', async () => {
    const q = fresh('deliver-at');
    await t.createQueue(q);
    const deliverAt = new Date(clock.now() + 2000);
    const [r] = (await t.send([{ queue: q, payload: Buffer.from('later'), deliverAt }])).results;
    await t.sendTo(q, 'now');

    const now = await t.lease(q, { max: 10, vis: 30 });
    expect(now.deliveries.map(d => text(d.message!.payload))).toEqual(['now']);
    expect(counts(await t.stats(q))).toMatchObject({ depth: 1, ready: 0, delayed: 1, leased: 1 });
    expect((await t.lease(q, { max: 10 })).deliveries).toHaveLength(0);

    // A long poll waits across the due time.
    const { answer } = await waitingLease(q, { max: 10, vis: 30 });
    await clock.advance(1990);
    expect((await t.lease(q, { max: 10 })).deliveries).toHaveLength(0);
    expect(counts(await t.stats(q))).toMatchObject({ delayed: 1 });
    const due = Date.now();
    await clock.advance(20);
    const later = await answer;
    // Answered by the due-time wake-up (the server polls once a minute), not at the end of its wait.
    expect(Date.now() - due).toBeLessThan(5000);
    expect(clock.now()).toBeGreaterThanOrEqual(deliverAt.getTime());
    expect(later.deliveries).toHaveLength(1);
    const m = later.deliveries[0].message!;
    expect(m.id).toBe(r.id);
    expect(text(m.payload)).toBe('later');
    expect(Math.abs(m.deliverAt!.getTime() - deliverAt.getTime())).toBeLessThan(2);
  });

  it('a deliver_at in the past is deliverable at once', async () => {
    const q = fresh('deliver-past');
    await a.createQueue(q);
    await a.send([{ queue: q, payload: Buffer.from('past'), deliverAt: new Date(Date.now() - 60_000) }]);
    const l = await a.lease(q, { vis: 30 });
    expect(l.deliveries.map(d => text(d.message!.payload))).toEqual(['past']);
  });
});

describe('Lease', () => {
  it('honours max_messages (0 means 1)', async () => {
    const q = fresh('lease-max');
    await a.createQueue(q);
    await a.sendTo(q, 'a', 'b', 'c', 'd', 'e', 'f');
    expect((await a.lease(q, { max: 3, vis: 30 })).deliveries).toHaveLength(3);
    expect((await a.lease(q, { max: 0, vis: 30 })).deliveries).toHaveLength(1);
    expect((await a.lease(q, { max: 10, vis: 30 })).deliveries).toHaveLength(2);
    expect((await a.lease(q, { max: 10, vis: 30 })).deliveries).toHaveLength(0);
    expect(counts(await a.stats(q))).toMatchObject({ depth: 0, leased: 6 });
  });

  it('uses the queue visibility_timeout when the request names none, and rounds a given one up to whole seconds', async () => {
    const q = fresh('lease-vis');
    await a.createQueue(q, { visibilityTimeout: dur(7) });
    await a.sendTo(q, 'a', 'b');
    const t0 = Date.now();
    const d1 = (await a.lease(q)).deliveries[0];
    const left1 = d1.leaseExpiresAt!.getTime() - t0;
    expect(left1).toBeGreaterThan(5000);
    expect(left1).toBeLessThanOrEqual(8000);
    const t1 = Date.now();
    const d2 = (await a.lease(q, { vis: { seconds: '2', nanos: 100_000_000 } })).deliveries[0];
    const left2 = d2.leaseExpiresAt!.getTime() - t1;
    expect(left2).toBeGreaterThan(2200); // 2.1s became 3s
    expect(left2).toBeLessThanOrEqual(4000);
  });

  it('returns empty at once on an empty queue when no wait is given', async () => {
    const q = fresh('lease-empty');
    await a.createQueue(q);
    const t0 = Date.now();
    const l = await a.lease(q, { max: 10 });
    expect(l.deliveries).toEqual([]);
    expect(Date.now() - t0).toBeLessThan(1000);
  });

  it('with wait, a Send during the wait makes Lease return that message promptly', async () => {
    const q = fresh('lease-wait');
    await a.createQueue(q);
    const waits = serverWaits(srv.app.core, q);
    const pending = a.lease(q, { max: 10, vis: 30, wait: 5 });
    // The Lease found nothing and waits: then the Send.
    await waits;
    const t0 = Date.now();
    const [sent] = (await a.sendTo(q, 'wake up')).results;
    const l = await pending;
    const elapsed = Date.now() - t0;
    expect(l.deliveries).toHaveLength(1);
    expect(l.deliveries[0].message!.id).toBe(sent.id);
    expect(text(l.deliveries[0].message!.payload)).toBe('wake up');
    expect(elapsed).toBeLessThan(3000);
  });

  it('with wait, returns empty when nothing arrives before the wait ends', async () => {
    const q = fresh('lease-wait-empty');
    await a.createQueue(q);
    const t0 = Date.now();
    const l = await a.lease(q, { max: 10, wait: 1 });
    const elapsed = Date.now() - t0;
    expect(l.deliveries).toEqual([]);
    expect(elapsed).toBeGreaterThanOrEqual(900);
    expect(elapsed).toBeLessThan(4000);
  });

  it('a message sent to another queue does not end a wait', async () => {
    const q = fresh('lease-wait-own');
    const other = fresh('lease-wait-other');
    await a.createQueue(q);
    await a.createQueue(other);
    const waits = serverWaits(srv.app.core, q);
    const pending = a.lease(q, { max: 10, wait: 1 });
    await waits;
    await a.sendTo(other, 'not for you');
    expect((await pending).deliveries).toEqual([]);
    expect((await a.lease(other, { vis: 30 })).deliveries).toHaveLength(1);
  });
});

describe('lease expiry and redelivery', () => {
  // Both ways an ack can go: a completed row kept (history), or the row deleted (acked_retention 0),
  // where the ack's record alone tells the stale token from the ack repeated.
  it.each([
    ['keeps acked history', 3600],
    ['deletes on ack', 0],
  ])('redelivers an unacked message after its lease ends, as attempt 2 under a new token; the old token is stale (queue %s)', async (_, retention) => {
    const q = fresh('expiry');
    await t.createQueue(q, { ackedRetention: dur(retention) });
    const acked = retention > 0 ? 1 : 0;
    const [sent] = (await t.sendTo(q, 'retry me')).results;
    const first = (await t.lease(q, { vis: 1 })).deliveries[0];
    expect(first.attempt).toBe(1);
    expect(first.message!.id).toBe(sent.id);

    // Not redelivered while the lease runs.
    expect((await t.lease(q, { max: 10 })).deliveries).toHaveLength(0);
    const { answer } = await waitingLease(q, { vis: 30 });
    await clock.advance(900);
    expect((await t.lease(q, { max: 10 })).deliveries).toHaveLength(0);

    await clock.advance(500);
    const second = (await answer).deliveries[0];
    expect(second).toBeDefined();
    expect(clock.now()).toBeGreaterThanOrEqual(first.leaseExpiresAt!.getTime());
    expect(second.message!.id).toBe(sent.id);
    expect(text(second.message!.payload)).toBe('retry me');
    expect(second.attempt).toBe(2);
    expect(second.leaseToken).not.toBe(first.leaseToken);

    // The old token settles nothing.
    await expectStatus(t.ack(first.leaseToken), status.FAILED_PRECONDITION, 'stale');
    await expectStatus(t.nack([first.leaseToken]), status.FAILED_PRECONDITION, 'stale');
    await expectStatus(t.extend([first.leaseToken], dur(60)), status.FAILED_PRECONDITION, 'stale');
    expect(counts(await t.stats(q))).toMatchObject({ depth: 0, leased: 1, acked: 0 });
    expect((await t.lease(q, { max: 10 })).deliveries).toHaveLength(0);

    // The current token still works, and an ack repeated with it succeeds again.
    expect((await t.ack(second.leaseToken)).acked).toBe(1);
    expect((await t.ack(second.leaseToken)).acked).toBe(1);
    expect(counts(await t.stats(q))).toMatchObject({ depth: 0, leased: 0, acked });

    // The stale token stays stale after the message is done, for an ack as for a nack or an extend.
    await expectStatus(t.ack(first.leaseToken), status.FAILED_PRECONDITION, 'stale');
    await expectStatus(t.nack([first.leaseToken]), status.FAILED_PRECONDITION, 'stale');
    await expectStatus(t.extend([first.leaseToken], dur(60)), status.FAILED_PRECONDITION, 'stale');
    // Stale next to the repeat in one call: the repeat succeeds, the stale one does not.
    await expectStatus(t.ack(first.leaseToken, second.leaseToken), status.FAILED_PRECONDITION, '1 of 2 lease tokens are stale');
    // The repeat is answered from the database, not from this replica's memory: as another replica would.
    expect((await t.ack(second.leaseToken)).acked).toBe(1);
  });

  it('an ack mixing a stale token with a good one acks the good one and fails FAILED_PRECONDITION naming how many', async () => {
    const q = fresh('expiry-mixed');
    await t.createQueue(q);
    await t.sendTo(q, 'will expire');
    const stale = (await t.lease(q, { vis: 1 })).deliveries[0];
    const redelivered = (await afterExpiry(q)).deliveries[0];
    expect(redelivered.message!.id).toBe(stale.message!.id);
    await t.sendTo(q, 'fine');
    const good = (await t.lease(q, { vis: 30 })).deliveries[0];
    expect(text(good.message!.payload)).toBe('fine');

    const err = await expectStatus(t.ack(stale.leaseToken, good.leaseToken), status.FAILED_PRECONDITION, '1 of 2 lease tokens are stale');
    expect(err.details).toContain('the other 1 were acked');
    expect(counts(await t.stats(q))).toMatchObject({ leased: 1, acked: 1 });
    // The good one really was acked: acking it again is an idempotent success.
    expect((await t.ack(good.leaseToken)).acked).toBe(1);
    expect((await t.ack(redelivered.leaseToken)).acked).toBe(1);
  });

  it("a stale token next to the same message's current token in one ack: only the current one counts", async () => {
    const q = fresh('expiry-same');
    await t.createQueue(q);
    await t.sendTo(q, 'twice leased');
    const old = (await t.lease(q, { vis: 1 })).deliveries[0];
    const cur = (await afterExpiry(q)).deliveries[0];
    expect(cur.message!.id).toBe(old.message!.id);
    const err = await expectStatus(t.ack(old.leaseToken, cur.leaseToken), status.FAILED_PRECONDITION, '1 of 2 lease tokens are stale');
    expect(err.details).toContain(old.leaseToken);
    expect(counts(await t.stats(q))).toMatchObject({ leased: 0, acked: 1 });
    expect((await t.ack(cur.leaseToken)).acked).toBe(1);
  });

  it('acking several tokens at once acks them all, including a token repeated in the call', async () => {
    const q = fresh('ack-many');
    await a.createQueue(q);
    await a.sendTo(q, '1', '2', '3');
    const ds = (await a.lease(q, { max: 3, vis: 30 })).deliveries;
    const tokens = ds.map(d => d.leaseToken);
    expect((await a.ack(...tokens, tokens[0])).acked).toBe(4);
    expect(counts(await a.stats(q))).toMatchObject({ depth: 0, leased: 0, acked: 3 });
  });
});

describe('Nack', () => {
  it('without a delay, the message is redelivered at once as the next attempt', async () => {
    const q = fresh('nack-now');
    await a.createQueue(q);
    await a.sendTo(q, 'again');
    const first = (await a.lease(q, { vis: 30 })).deliveries[0];
    expect(await a.nack([first.leaseToken])).toEqual({ requeued: 1, deadLettered: 0 });
    const second = (await a.lease(q, { vis: 30 })).deliveries[0];
    expect(second).toBeDefined();
    expect(second.message!.id).toBe(first.message!.id);
    expect(second.attempt).toBe(2);
    expect(second.leaseToken).not.toBe(first.leaseToken);
    // The nacked token is spent.
    await expectStatus(a.ack(first.leaseToken), status.FAILED_PRECONDITION, 'stale');
    expect((await a.ack(second.leaseToken)).acked).toBe(1);
  });

  it('a nack wakes a Lease waiting on the queue', async () => {
    const q = fresh('nack-wake');
    await a.createQueue(q);
    await a.sendTo(q, 'x');
    const d = (await a.lease(q, { vis: 30 })).deliveries[0];
    const waits = serverWaits(srv.app.core, q);
    const pending = a.lease(q, { vis: 30, wait: 5 });
    await waits;
    await a.nack([d.leaseToken]);
    const got = await pending;
    expect(got.deliveries.map(x => x.message!.id)).toEqual([d.message!.id]);
  });

  it('with a delay, the message is not deliverable until the delay has passed', async () => {
    const q = fresh('nack-delay');
    await t.createQueue(q);
    await t.sendTo(q, 'later');
    const first = (await t.lease(q, { vis: 30 })).deliveries[0];
    const nackedAt = clock.now();
    expect(await t.nack([first.leaseToken], dur(2))).toEqual({ requeued: 1, deadLettered: 0 });
    expect((await t.lease(q, { max: 10 })).deliveries).toHaveLength(0);
    expect(counts(await t.stats(q))).toMatchObject({ depth: 1, ready: 0, delayed: 1, leased: 0 });

    const { answer } = await waitingLease(q, { vis: 30 });
    await clock.advance(1900);
    expect((await t.lease(q, { max: 10 })).deliveries).toHaveLength(0);
    const due = Date.now();
    await clock.advance(200);
    const second = (await answer).deliveries[0];
    expect(second).toBeDefined();
    // Woken at the due time, not at the end of the wait.
    expect(Date.now() - due).toBeLessThan(5000);
    expect(clock.now() - nackedAt).toBeGreaterThanOrEqual(2000);
    expect(second.message!.id).toBe(first.message!.id);
    expect(second.attempt).toBe(2);
  });

  it('on the last attempt, a nack moves the message to the dead-letter queue', async () => {
    const dlq = fresh('dlq-nack');
    const q = fresh('work-nack');
    await a.createQueue(dlq);
    await a.createQueue(q, { maxAttempts: 2, deadLetterQueue: dlq });
    const payload = Buffer.from('poison pill');
    const [sent] = (await a.send([{ queue: q, payload, subject: 'bad', headers: { k: 'v' } }])).results;

    const d1 = (await a.lease(q, { vis: 30 })).deliveries[0];
    expect(d1.attempt).toBe(1);
    expect(await a.nack([d1.leaseToken])).toEqual({ requeued: 1, deadLettered: 0 });
    const d2 = (await a.lease(q, { vis: 30 })).deliveries[0];
    expect(d2.attempt).toBe(2);
    expect(await a.nack([d2.leaseToken])).toEqual({ requeued: 0, deadLettered: 1 });

    expect((await a.lease(q, { max: 10 })).deliveries).toHaveLength(0);
    // Kept in the work queue as failed, and copied to the dead-letter queue.
    expect(counts(await a.stats(q))).toEqual({ ...ZERO, deadLettered: 1 });
    expect(counts(await a.stats(dlq))).toEqual({ ...ZERO, depth: 1, ready: 1 });

    const dead = (await a.lease(dlq, { vis: 30 })).deliveries;
    expect(dead).toHaveLength(1);
    const m = dead[0].message!;
    expect(Buffer.from(m.payload).equals(payload)).toBe(true);
    expect(m.contentHash).toBe(sent.contentHash);
    expect(m.subject).toBe('bad');
    expect(m.headers).toEqual({ k: 'v' });
    expect(m.queue).toBe(dlq);
    expect(dead[0].attempt).toBe(1);
    expect((await a.ack(dead[0].leaseToken)).acked).toBe(1);
  });

  it('on the last attempt, an expired lease moves the message to the dead-letter queue', async () => {
    const dlq = fresh('dlq-expiry');
    const q = fresh('work-expiry');
    await t.createQueue(dlq);
    await t.createQueue(q, { maxAttempts: 2, deadLetterQueue: dlq, visibilityTimeout: dur(1) });
    const payload = Buffer.from('never acked');
    await t.send([{ queue: q, payload }]);

    const d1 = (await t.lease(q)).deliveries[0];
    expect(d1.attempt).toBe(1);
    const { answer } = await waitingLease(q);
    await clock.advance(1400);
    const d2 = (await answer).deliveries[0];
    expect(d2).toBeDefined();
    expect(d2.attempt).toBe(2);
    expect(d2.message!.id).toBe(d1.message!.id);

    // Its second lease runs out too: no third attempt, the dead-letter queue gets it (and wakes its waiters).
    const waitingDead = await waitingLease(dlq, { vis: 30 });
    const t0 = Date.now();
    await clock.advance(1400);
    const dead = (await waitingDead.answer).deliveries;
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(dead).toHaveLength(1);
    expect(Buffer.from(dead[0].message!.payload).equals(payload)).toBe(true);
    expect((await t.lease(q, { max: 10 })).deliveries).toHaveLength(0);
    expect(counts(await t.stats(q))).toEqual({ ...ZERO, deadLettered: 1 });
    await expectStatus(t.ack(d2.leaseToken), status.FAILED_PRECONDITION, 'stale');
  });

  it('without a dead-letter queue, a message out of attempts stays counted as dead_lettered', async () => {
    const q = fresh('no-dlq');
    await a.createQueue(q, { maxAttempts: 2 });
    await a.sendTo(q, 'doomed');
    const d1 = (await a.lease(q, { vis: 30 })).deliveries[0];
    expect(await a.nack([d1.leaseToken])).toEqual({ requeued: 1, deadLettered: 0 });
    const d2 = (await a.lease(q, { vis: 30 })).deliveries[0];
    expect(await a.nack([d2.leaseToken], dur(5))).toEqual({ requeued: 0, deadLettered: 1 });
    expect((await a.lease(q, { max: 10 })).deliveries).toHaveLength(0);
    expect(counts(await a.stats(q))).toEqual({ ...ZERO, deadLettered: 1 });
  });

  it("the queue's retry_delay applies to nacks without a delay and to expired leases; an explicit delay overrides it", async () => {
    const q = fresh('retry-delay');
    await t.createQueue(q, { retryDelay: dur(2) });
    await t.sendTo(q, 'r');
    // Nack with no delay: the queue's retry_delay (2s) applies.
    const d1 = (await t.lease(q, { vis: 30 })).deliveries[0];
    await t.nack([d1.leaseToken]);
    expect((await t.lease(q, { max: 10 })).deliveries).toHaveLength(0);
    expect(counts(await t.stats(q))).toMatchObject({ delayed: 1, ready: 0 });
    await clock.advance(1900);
    expect((await t.lease(q, { max: 10 })).deliveries).toHaveLength(0);
    await clock.advance(200);
    const d2 = (await t.lease(q, { vis: 1 })).deliveries[0];
    expect(d2.attempt).toBe(2);
    // Lease expiry (found by a sweep within 200 ms of it): the retry_delay applies again before attempt 3.
    const expiredAt = d2.leaseExpiresAt!.getTime();
    await clock.advance(expiredAt + 1900 - clock.now());
    expect((await t.lease(q, { max: 10 })).deliveries).toHaveLength(0);
    expect(counts(await t.stats(q))).toMatchObject({ delayed: 1, leased: 0 });
    await clock.advance(500);
    const d3 = (await t.lease(q, { vis: 30 })).deliveries[0];
    expect(d3.attempt).toBe(3);
    expect(clock.now() - expiredAt).toBeGreaterThanOrEqual(1900);
    // An explicit zero delay redelivers at once.
    await t.nack([d3.leaseToken], dur(0));
    const d4 = (await t.lease(q, { vis: 30 })).deliveries[0];
    expect(d4?.attempt).toBe(4);
  });

  it("with retry_backoff, a nack without a delay waits the queue's backed-off retry delay", async () => {
    const q = fresh('retry-backoff');
    await a.createQueue(q, { retryDelay: dur(30), retryBackoff: true, retryDelayMax: dur(60) });
    await a.sendTo(q, 'b');
    const d1 = (await a.lease(q, { vis: 30 })).deliveries[0];
    expect(await a.nack([d1.leaseToken])).toEqual({ requeued: 1, deadLettered: 0 });
    expect((await a.lease(q, { max: 10 })).deliveries).toHaveLength(0);
    expect(counts(await a.stats(q))).toMatchObject({ depth: 1, delayed: 1, ready: 0 });
  });

  it('a nack repeated with the same token (a retry after a lost answer) succeeds and does not requeue twice', async () => {
    const q = fresh('nack-twice');
    await a.createQueue(q);
    await a.sendTo(q, 'once');
    const d = (await a.lease(q, { vis: 30 })).deliveries[0];
    expect(await a.nack([d.leaseToken], dur(60))).toMatchObject({ requeued: 1 });
    // The repeat changes nothing: the message stays delayed by the first nack's 60 s.
    expect(await a.nack([d.leaseToken])).toMatchObject({ requeued: 1 });
    expect(counts(await a.stats(q))).toMatchObject({ depth: 1, delayed: 1, ready: 0 });
  });
});

describe('ExtendLease', () => {
  it('extends a 1s lease to 5s: not redelivered meanwhile, and the original token still acks', async () => {
    const q = fresh('extend');
    await t.createQueue(q);
    await t.sendTo(q, 'slow work');
    const d = (await t.lease(q, { vis: 1 })).deliveries[0];
    const t0 = clock.now();
    const res = await t.extend([d.leaseToken], dur(5));
    expect(res.leases).toHaveLength(1);
    expect(res.leases[0].leaseToken).toBe(d.leaseToken);
    const exp = res.leases[0].leaseExpiresAt!.getTime();
    expect(exp).toBeGreaterThanOrEqual(t0 + 4000);
    expect(exp).toBeLessThanOrEqual(clock.now() + 6000);

    // Past the 1 s it was leased for and many sweeps, not past the 5 s it was extended to.
    await clock.advance(4500);
    expect((await t.lease(q, { max: 10 })).deliveries).toHaveLength(0);
    expect(counts(await t.stats(q))).toMatchObject({ depth: 0, leased: 1 });
    expect((await t.ack(d.leaseToken)).acked).toBe(1);
    expect(counts(await t.stats(q))).toMatchObject({ leased: 0, acked: 1 });
  });

  it('rejects a stale token with FAILED_PRECONDITION', async () => {
    const q = fresh('extend-stale');
    await a.createQueue(q);
    await a.sendTo(q, 'x');
    const d = (await a.lease(q, { vis: 30 })).deliveries[0];
    await a.ack(d.leaseToken);
    await expectStatus(a.extend([d.leaseToken], dur(5)), status.FAILED_PRECONDITION, 'stale');
  });

  it('requires visibility_timeout, within 1s..12h', async () => {
    const q = fresh('extend-bad');
    await a.createQueue(q);
    await a.sendTo(q, 'x');
    const d = (await a.lease(q, { vis: 30 })).deliveries[0];
    await expectStatus(a.extend([d.leaseToken]), status.INVALID_ARGUMENT, 'visibility_timeout is required');
    await expectStatus(a.extend([d.leaseToken], dur(13 * 3600)), status.INVALID_ARGUMENT, 'visibility_timeout must be between');
    await expectStatus(a.extend([d.leaseToken], { seconds: '-1', nanos: 0 }), status.INVALID_ARGUMENT, 'visibility_timeout must not be negative');
    await expectStatus(a.extend([], dur(5)), status.INVALID_ARGUMENT, 'lease_tokens is empty');
    await expectStatus(a.extend(['garbage'], dur(5)), status.INVALID_ARGUMENT, 'malformed lease token');
    // Still leased under the same token.
    expect((await a.ack(d.leaseToken)).acked).toBe(1);
  });
});

describe('bad input', () => {
  it('Send: empty batch, too many messages', async () => {
    const q = fresh('bad-send');
    await a.createQueue(q);
    await expectStatus(a.send([]), status.INVALID_ARGUMENT, 'messages is empty');
    const many = Array.from({ length: 1001 }, () => ({ queue: q, payload: Buffer.from('x') }));
    await expectStatus(a.send(many), status.INVALID_ARGUMENT, 'too many messages in one Send: 1001, at most 1000');
    // Exactly 1000 is fine.
    expect((await a.send(many.slice(0, 1000))).results).toHaveLength(1000);
    expect(counts(await a.stats(q))).toMatchObject({ depth: 1000 });
  });

  it('Send: bad queue names name the message and the rule, and nothing of the batch is stored', async () => {
    const q = fresh('bad-name');
    await a.createQueue(q);
    await expectStatus(
      a.send([{ queue: 'bad name!', payload: Buffer.from('x') }]),
      status.INVALID_ARGUMENT,
      'messages[0].queue "bad name!" is not a valid queue name',
    );
    await expectStatus(a.send([{ queue: '', payload: Buffer.from('x') }]), status.INVALID_ARGUMENT, 'messages[0].queue is required');
    await expectStatus(a.send([{ queue: 'a'.repeat(101) }]), status.INVALID_ARGUMENT, 'not a valid queue name');
    await expectStatus(a.send([{ queue: '-leading-dash' }]), status.INVALID_ARGUMENT, 'starting with a letter or digit');
    await expectStatus(
      a.send([
        { queue: q, payload: Buffer.from('ok') },
        { queue: 'nope/slash', payload: Buffer.from('x') },
      ]),
      status.INVALID_ARGUMENT,
      'messages[1].queue',
    );
    await expectStatus(a.send([{ queue: q, replyTo: 'bad reply!' }]), status.INVALID_ARGUMENT, 'messages[0].reply_to');
    expect(counts(await a.stats(q))).toEqual(ZERO);
  });

  it('Send: a non-UUID id, an out-of-range priority, oversized headers and text fields', async () => {
    const q = fresh('bad-fields');
    await a.createQueue(q);
    await expectStatus(a.send([{ queue: q, id: 'order-17' }]), status.INVALID_ARGUMENT, 'messages[0].id "order-17" must be a UUID');
    await expectStatus(a.send([{ queue: q, id: randomUUID() + 'x' }]), status.INVALID_ARGUMENT, 'must be a UUID');
    await expectStatus(a.send([{ queue: q, priority: 1_000_001 }]), status.INVALID_ARGUMENT, 'messages[0].priority must be between -1000000 and 1000000');
    await expectStatus(a.send([{ queue: q, priority: -1_000_001 }]), status.INVALID_ARGUMENT, 'priority must be between');
    const headers = Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`h${i}`, 'v']));
    await expectStatus(a.send([{ queue: q, headers }]), status.INVALID_ARGUMENT, 'messages[0].headers has 65 entries, at most 64');
    await expectStatus(a.send([{ queue: q, headers: { big: 'x'.repeat(9000) } }]), status.INVALID_ARGUMENT, 'messages[0].headers total');
    await expectStatus(a.send([{ queue: q, subject: 's'.repeat(1025) }]), status.INVALID_ARGUMENT, 'messages[0].subject is longer than 1024');
    await expectStatus(a.send([{ queue: q, correlationId: 'c'.repeat(1025) }]), status.INVALID_ARGUMENT, 'messages[0].correlation_id is longer than 1024');
    await expectStatus(a.send([{ queue: q, contentType: 't'.repeat(1025) }]), status.INVALID_ARGUMENT, 'messages[0].content_type is longer than 1024');
    expect(counts(await a.stats(q))).toEqual(ZERO);
  });

  it('Send: a payload over the max message size', async () => {
    const small = await startServer(databaseUrl, { maxMessageBytes: 1024 });
    try {
      const s = api(small.clients);
      const q = fresh('bad-size');
      await s.createQueue(q);
      await expectStatus(
        s.send([
          { queue: q, payload: Buffer.alloc(10) },
          { queue: q, payload: Buffer.alloc(1025) },
        ]),
        status.INVALID_ARGUMENT,
        "messages[1].payload is 1025 bytes, over the server's max message size of 1024 bytes",
      );
      expect(counts(await s.stats(q))).toEqual(ZERO);
      const ok = await s.send([{ queue: q, payload: Buffer.alloc(1024, 7) }]);
      expect(ok.results[0].contentHash).toBe(sha256(Buffer.alloc(1024, 7)));
      const m = (await s.lease(q, { vis: 30 })).deliveries[0].message!;
      expect(Buffer.from(m.payload).equals(Buffer.alloc(1024, 7))).toBe(true);
    } finally {
      await small.stop();
    }
  });

  it('Send: with the default max message size (1 MiB), one byte over is INVALID_ARGUMENT, not a transport error', async () => {
    const q = fresh('bad-size-default');
    await a.createQueue(q);
    await expectStatus(a.send([{ queue: q, payload: Buffer.alloc(1024 * 1024 + 1) }]), status.INVALID_ARGUMENT, 'max message size of 1048576 bytes');
    expect((await a.send([{ queue: q, payload: Buffer.alloc(1024 * 1024) }])).results).toHaveLength(1);
  });

  it('Send: a large batch of large payloads round-trips intact', async () => {
    const q = fresh('big-batch');
    await a.createQueue(q);
    // 8 x 300 KiB: over the worker-hashing threshold, under the 4 MiB frame.
    const payloads = Array.from({ length: 8 }, (_, i) => Buffer.alloc(300 * 1024, i + 1));
    const res = await a.send(payloads.map(payload => ({ queue: q, payload })));
    expect(res.results.map(r => r.contentHash)).toEqual(payloads.map(sha256));
    const got = new Map<string, Buffer>();
    for (let i = 0; i < 8; i++) {
      const d = (await a.lease(q, { vis: 30 })).deliveries[0];
      got.set(d.message!.id, Buffer.from(d.message!.payload));
    }
    res.results.forEach((r, i) => expect(got.get(r.id)?.equals(payloads[i])).toBe(true));
  });

  it('Ack, Nack, ExtendLease: malformed or missing lease tokens are INVALID_ARGUMENT and nothing is settled', async () => {
    const q = fresh('bad-tokens');
    await a.createQueue(q);
    await a.sendTo(q, 'keep me');
    const d = (await a.lease(q, { vis: 30 })).deliveries[0];

    for (const bad of ['garbage', '', 'not a token!', Buffer.from('q\nnot-a-uuid\n0').toString('base64url')]) {
      await expectStatus(a.ack(d.leaseToken, bad), status.INVALID_ARGUMENT, 'malformed lease token');
      await expectStatus(a.nack([d.leaseToken, bad]), status.INVALID_ARGUMENT, 'malformed lease token');
      await expectStatus(a.extend([d.leaseToken, bad], dur(60)), status.INVALID_ARGUMENT, 'malformed lease token');
    }
    const err = await expectStatus(a.ack('garbage'), status.INVALID_ARGUMENT, 'pass a lease_token exactly as a delivery returned it');
    expect(err.details).toContain('"garbage"');

    await expectStatus(a.ack(), status.INVALID_ARGUMENT, 'lease_tokens is empty');
    await expectStatus(a.nack([]), status.INVALID_ARGUMENT, 'lease_tokens is empty');
    await expectStatus(a.ack(...Array.from({ length: 1001 }, () => d.leaseToken)), status.INVALID_ARGUMENT, 'too many lease_tokens: 1001, at most 1000');

    // Nothing was acked, nacked or extended: the message is still leased, and its token acks.
    expect(counts(await a.stats(q))).toMatchObject({ depth: 0, leased: 1, acked: 0 });
    expect((await a.ack(d.leaseToken)).acked).toBe(1);
  });

  it('a token signed by this server for a message that never existed is FAILED_PRECONDITION', async () => {
    const q = fresh('ghost');
    await a.createQueue(q);
    const ghost = new LeaseTokens(srv.app.core.subkey('lease-token')).encode({ queue: q, id: randomUUID(), retryCount: 0, principal: '' });
    await expectStatus(a.ack(ghost), status.FAILED_PRECONDITION, 'stale');
    await expectStatus(a.nack([ghost]), status.FAILED_PRECONDITION, 'stale');
  });

  it('a token made up (the unsigned form of the first release) is INVALID_ARGUMENT and settles nothing', async () => {
    const q = fresh('forged');
    await a.createQueue(q);
    await a.sendTo(q, 'held');
    const d = (await a.lease(q)).deliveries[0];
    const [, id, attempt] = Buffer.from(d.leaseToken.split('.')[0], 'base64url').toString().split('\n');
    const unsigned = Buffer.from(`${q}\n${id}\n${attempt}`).toString('base64url');
    await expectStatus(a.ack(unsigned), status.INVALID_ARGUMENT, 'malformed lease token');
    const resigned = `${Buffer.from(`${q}\n${id}\n${attempt}\n`).toString('base64url')}.${'A'.repeat(22)}`;
    await expectStatus(a.ack(resigned), status.INVALID_ARGUMENT, 'not issued by this server');
    expect(counts(await a.stats(q))).toMatchObject({ leased: 1, acked: 0 });
    await a.ack(d.leaseToken);
    expect(counts(await a.stats(q))).toMatchObject({ leased: 0, acked: 1 });
  });

  it('Lease: out-of-range max_messages, visibility_timeout and wait', async () => {
    const q = fresh('bad-lease');
    await a.createQueue(q);
    await a.sendTo(q, 'untouched');
    await expectStatus(a.lease(q, { max: 1001 }), status.INVALID_ARGUMENT, 'max_messages must be between 1 and 1000, got 1001');
    await expectStatus(a.lease(q, { max: -1 }), status.INVALID_ARGUMENT, 'max_messages must be between 1 and 1000, got -1');
    await expectStatus(a.lease(q, { vis: 13 * 3600 }), status.INVALID_ARGUMENT, /visibility_timeout must be between 1s and (12h|43200s).*got (13h|46800s)/);
    await expectStatus(a.lease(q, { vis: { seconds: '-5', nanos: 0 } }), status.INVALID_ARGUMENT, 'visibility_timeout must not be negative');
    await expectStatus(a.lease(q, { vis: { seconds: '0', nanos: 0 } }), status.INVALID_ARGUMENT, 'visibility_timeout must be between');
    await expectStatus(a.lease(q, { wait: 61 }), status.INVALID_ARGUMENT, 'wait must be between 0s and 60s, got 61s');
    await expectStatus(a.lease(q, { wait: { seconds: '0', nanos: -1 } }), status.INVALID_ARGUMENT, 'wait must not be negative');
    await expectStatus(a.lease('bad name!'), status.INVALID_ARGUMENT, 'queue "bad name!" is not a valid queue name');
    await expectStatus(a.lease(''), status.INVALID_ARGUMENT, 'queue is required');
    // None of these leased anything.
    expect(counts(await a.stats(q))).toMatchObject({ ready: 1, leased: 0 });
  });

  it('Nack: negative or too-long delay', async () => {
    const q = fresh('bad-nack');
    await a.createQueue(q);
    await a.sendTo(q, 'x');
    const d = (await a.lease(q, { vis: 30 })).deliveries[0];
    await expectStatus(a.nack([d.leaseToken], { seconds: '0', nanos: -500 }), status.INVALID_ARGUMENT, 'delay must not be negative');
    await expectStatus(a.nack([d.leaseToken], { seconds: '-3', nanos: 0 }), status.INVALID_ARGUMENT, 'delay must not be negative');
    await expectStatus(a.nack([d.leaseToken], dur(8 * 24 * 3600)), status.INVALID_ARGUMENT, /delay must be between 0s and (168h|604800s).*got (192h|691200s)/);
    expect(counts(await a.stats(q))).toMatchObject({ leased: 1, depth: 0 });
    expect(await a.nack([d.leaseToken], dur(7 * 24 * 3600))).toEqual({ requeued: 1, deadLettered: 0 });
    expect(counts(await a.stats(q))).toMatchObject({ leased: 0, delayed: 1 });
  });

  it('Send and Lease on a queue that does not exist are NOT_FOUND', async () => {
    const q = fresh('missing');
    await expectStatus(a.sendTo(q, 'x'), status.NOT_FOUND, `queue ${q} not found: create it with CreateQueue first`);
    await expectStatus(a.lease(q), status.NOT_FOUND, `queue ${q} not found`);
    await expectStatus(a.lease(q, { wait: 1 }), status.NOT_FOUND, 'not found');
    // A batch naming one missing queue stores nothing, not even the messages for queues that exist.
    const real = fresh('present');
    await a.createQueue(real);
    await expectStatus(
      a.send([
        { queue: real, payload: Buffer.from('a') },
        { queue: q, payload: Buffer.from('b') },
      ]),
      status.NOT_FOUND,
      q,
    );
    expect(counts(await a.stats(real))).toEqual(ZERO);
  });

  it('with autoCreateQueues, Send to a new queue creates it with default settings', async () => {
    const auto = await startServer(databaseUrl, { autoCreateQueues: true });
    try {
      const s = api(auto.clients);
      const q = fresh('auto');
      const res = await s.sendTo(q, 'hello', 'world');
      expect(res.results).toHaveLength(2);
      const got = await call(auto.clients.queues, auto.clients.queues.getQueue, { name: q });
      expect(got.queue!.name).toBe(q);
      expect(got.queue!.config).toMatchObject({ visibilityTimeout: { seconds: '30', nanos: 0 }, maxAttempts: 5, deadLetterQueue: '' });
      const l = await s.lease(q, { max: 10, vis: 30 });
      expect(l.deliveries.map(d => text(d.message!.payload)).sort()).toEqual(['hello', 'world']);
      // A second Send to it reuses the queue.
      await s.sendTo(q, 'again');
      expect(counts(await s.stats(q))).toMatchObject({ ready: 1, leased: 2 });
      // Names are still checked.
      await expectStatus(s.sendTo('bad name!', 'x'), status.INVALID_ARGUMENT, 'not a valid queue name');
      // Lease does not create queues.
      await expectStatus(s.lease(fresh('auto-lease')), status.NOT_FOUND, 'not found');
    } finally {
      await auto.stop();
    }
    // The server without auto-create still refuses unknown queues.
    await expectStatus(a.sendTo(fresh('not-auto'), 'x'), status.NOT_FOUND, 'not found');
  });
});

describe('after all of the above', () => {
  it('the server still serves Send and Lease', async () => {
    const q = fresh('final');
    await a.createQueue(q);
    const [r] = (await a.sendTo(q, 'still here')).results;
    const d = (await a.lease(q, { vis: 30 })).deliveries[0];
    expect(d.message!.id).toBe(r.id);
    expect(text(d.message!.payload)).toBe('still here');
    expect((await a.ack(d.leaseToken)).acked).toBe(1);
  });
});
