/**
 * Queue semantics on a real server: dead letters (nack dead_letter, attempts run out through
 * nacks and through lease expiry), redrive, TTL, dedup keys and content dedup (also across a
 * restart), bounded queues with each overflow policy (drop_oldest under concurrent senders),
 * priority with delay, UpdateQueue, stats counters, and the settings' validation.
 */

import { createHash, randomUUID } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { AckRequest, LeaseRequest, type LeaseResponse, NackRequest, SendRequest, type SendResponse } from '@inboxd/proto/v1/inbox';
import type { Message } from '@inboxd/proto/v1/message';
import {
  CreateQueueRequest,
  DeleteQueueRequest,
  GetQueueStatsRequest,
  OverflowPolicy,
  type QueueConfig,
  type QueueStats,
  RedriveRequest,
  UpdateQueueRequest,
} from '@inboxd/proto/v1/queues';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ServerClock, startTimedServer } from './support/clock.js';
import { counts, expectStatus } from './support/expect.js';
import { type Clients, call, dur, migratedDatabase, sleep, startServer, waitFor } from './support/harness.js';

type Server = Awaited<ReturnType<typeof startServer>>;

function api(c: Clients) {
  const { inbox, queues } = c;
  return {
    create: (name: string, config?: Partial<QueueConfig>) => call(queues, queues.createQueue, CreateQueueRequest.fromPartial({ name, config })),
    update: (name: string, config: Partial<QueueConfig>, updateMask: string[] = []) =>
      call(queues, queues.updateQueue, UpdateQueueRequest.fromPartial({ name, config, updateMask })),
    remove: (name: string) => call(queues, queues.deleteQueue, DeleteQueueRequest.fromPartial({ name })),
    send: (messages: Partial<Message>[]): Promise<SendResponse> => call(inbox, inbox.send, SendRequest.fromPartial({ messages })),
    lease: (queue: string, max = 10, vis = 30): Promise<LeaseResponse> =>
      call(inbox, inbox.lease, LeaseRequest.fromPartial({ queue, maxMessages: max, visibilityTimeout: dur(vis) })),
    ack: (...tokens: string[]) => call(inbox, inbox.ack, AckRequest.fromPartial({ leaseTokens: tokens })),
    nack: (tokens: string[], opts: Partial<NackRequest> = {}) => call(inbox, inbox.nack, NackRequest.fromPartial({ leaseTokens: tokens, ...opts })),
    redrive: (req: Partial<RedriveRequest>) => call(queues, queues.redrive, RedriveRequest.fromPartial(req)),
    stats: async (name: string): Promise<QueueStats> => (await call(queues, queues.getQueueStats, GetQueueStatsRequest.fromPartial({ name }))).stats!,
  };
}

const text = (b: Uint8Array | undefined) => Buffer.from(b ?? []).toString('utf8');
const msg = (queue: string, payload: string, extra: Partial<Message> = {}): Partial<Message> => ({ queue, payload: Buffer.from(payload), ...extra });

let srv: Server;
let a: ReturnType<typeof api>;
let databaseUrl: string;
/** For the tests about time: a server on a database of its own, whose clock the test advances. */
let timed: Awaited<ReturnType<typeof startTimedServer>>;
let t: ReturnType<typeof api>;
let clock: ServerClock;
const fresh = (tag: string) => `${tag}-${randomUUID().slice(0, 8)}`;

beforeAll(async () => {
  databaseUrl = await migratedDatabase();
  [srv, timed] = await Promise.all([startServer(databaseUrl), startTimedServer()]);
  a = api(srv.clients);
  t = api(timed.clients);
  clock = timed.clock;
});
afterAll(async () => {
  await srv?.stop();
  await timed?.stop();
});

/** Leases everything deliverable now from a queue (its payloads, in delivery order). */
async function drain(queue: string, ack = true, on = a): Promise<string[]> {
  const out: string[] = [];
  for (;;) {
    const { deliveries } = await on.lease(queue, 100);
    if (deliveries.length === 0) return out;
    out.push(...deliveries.map(d => text(d.message!.payload)));
    if (ack) await on.ack(...deliveries.map(d => d.leaseToken));
  }
}

describe('dead letters and redrive', () => {
  it('nack with dead_letter sends a message straight to the dead-letter queue, whatever attempts remain', async () => {
    const dlq = fresh('dlq');
    const q = fresh('work');
    await a.create(dlq);
    await a.create(q, { maxAttempts: 10, deadLetterQueue: dlq });
    await a.send([msg(q, 'poison')]);
    const [d] = (await a.lease(q)).deliveries;
    const res = await a.nack([d.leaseToken], { deadLetter: true, error: 'cannot parse: unexpected token' });
    expect(res).toEqual({ requeued: 0, deadLettered: 1 });
    expect(counts(await a.stats(q))).toMatchObject({ depth: 0, leased: 0, deadLettered: 1 });
    expect(await drain(dlq)).toEqual(['poison']);
  });

  it('dead_letter with a delay, or an over-long error text, is INVALID_ARGUMENT and changes nothing', async () => {
    const q = fresh('dl-bad');
    await a.create(q);
    await a.send([msg(q, 'x')]);
    const [d] = (await a.lease(q)).deliveries;
    await expectStatus(a.nack([d.leaseToken], { deadLetter: true, delay: dur(5) }), status.INVALID_ARGUMENT, 'dead_letter');
    await expectStatus(a.nack([d.leaseToken], { error: 'e'.repeat(1001) }), status.INVALID_ARGUMENT, 'error is longer than 1000');
    expect(counts(await a.stats(q))).toMatchObject({ leased: 1 });
  });

  it('max_attempts reached through lease expiry (no nack at all) dead-letters the message', async () => {
    const dlq = fresh('dlq-exp');
    const q = fresh('exp');
    await t.create(dlq);
    await t.create(q, { maxAttempts: 2, deadLetterQueue: dlq });
    await t.send([msg(q, 'slow')]);
    for (let attempt = 1; attempt <= 2; attempt++) {
      const got = (await t.lease(q, 1, 1)).deliveries;
      expect(got[0]?.attempt).toBe(attempt);
      // Not acked: the 1 s lease runs out and the sweeper (every 200 ms) fails it.
      await clock.advance(1300);
    }
    expect(Number((await t.stats(dlq)).depth)).toBe(1);
    expect(counts(await t.stats(q))).toMatchObject({ depth: 0, leased: 0, deadLettered: 1 });
  });

  it('a nack after the lease expired is FAILED_PRECONDITION and does not touch the redelivered message', async () => {
    const q = fresh('late-nack');
    await t.create(q);
    await t.send([msg(q, 'm')]);
    const [first] = (await t.lease(q, 1, 1)).deliveries;
    await clock.advance(1300);
    const second = (await t.lease(q, 1, 30)).deliveries;
    expect(second).toHaveLength(1);
    await expectStatus(t.nack([first.leaseToken], { deadLetter: true }), status.FAILED_PRECONDITION, 'stale');
    expect(counts(await t.stats(q))).toMatchObject({ leased: 1, deadLettered: 0 });
    await t.ack(second[0].leaseToken);
  });

  it('redrive moves dead-lettered messages back, by id or all, to their queue or a destination', async () => {
    const dlq = fresh('dlq-r');
    const q = fresh('orig');
    const other = fresh('other');
    await a.create(dlq);
    await a.create(other);
    await a.create(q, { maxAttempts: 1, deadLetterQueue: dlq });
    await a.send(['a', 'b', 'c'].map(p => msg(q, p)));
    const { deliveries } = await a.lease(q);
    await a.nack(
      deliveries.map(d => d.leaseToken),
      { error: 'boom' },
    );
    expect(Number((await a.stats(dlq)).depth)).toBe(3);

    // Browse the dead-letter queue without leasing: lease and nack them straight back.
    const held = (await a.lease(dlq, 10, 30)).deliveries;
    const byPayload = new Map(held.map(d => [text(d.message!.payload), d.message!.id]));
    await a.nack(
      held.map(d => d.leaseToken),
      { delay: dur(0) },
    );

    const one = await a.redrive({ queue: dlq, messageIds: [byPayload.get('a')!] });
    expect(one).toEqual({ redriven: '1', failed: [] });
    expect(await drain(q)).toEqual(['a']);

    const moved = await a.redrive({ queue: dlq, messageIds: [byPayload.get('b')!], destination: other });
    expect(moved.redriven).toBe('1');
    expect(await drain(other)).toEqual(['b']);

    const missing = randomUUID();
    const rest = await a.redrive({ queue: dlq, messageIds: [byPayload.get('c')!, missing] });
    expect(rest.redriven).toBe('1');
    expect(rest.failed.map(f => [f.messageId, status[f.code]])).toEqual([[missing, 'NOT_FOUND']]);
    const redelivered = (await a.lease(q)).deliveries;
    expect(redelivered.map(d => [text(d.message!.payload), d.attempt])).toEqual([['c', 1]]);
    expect(Number((await a.stats(dlq)).depth)).toBe(0);
  });

  it('redrive of a message whose original queue was deleted leaves it in place and says why', async () => {
    const dlq = fresh('dlq-orphan');
    const q = fresh('gone');
    await a.create(dlq);
    await a.create(q, { maxAttempts: 1, deadLetterQueue: dlq });
    await a.send([msg(q, 'orphan')]);
    const [d] = (await a.lease(q)).deliveries;
    await a.nack([d.leaseToken]);
    await waitFor(async () => Number((await a.stats(dlq)).depth) === 1, 5000, 'dead-lettered');
    await a.remove(q);

    const res = await a.redrive({ queue: dlq });
    expect(res.redriven).toBe('0');
    expect(res.failed).toHaveLength(1);
    expect(status[res.failed[0].code]).toBe('FAILED_PRECONDITION');
    expect(res.failed[0].message).toContain(`original queue ${q} no longer exists`);
    expect(Number((await a.stats(dlq)).depth)).toBe(1);

    // With a destination it can go.
    const rescue = fresh('rescue');
    await a.create(rescue);
    expect((await a.redrive({ queue: dlq, destination: rescue })).redriven).toBe('1');
    expect(await drain(rescue)).toEqual(['orphan']);
  });

  it('redrive validates its request', async () => {
    const q = fresh('rv');
    await a.create(q);
    await expectStatus(a.redrive({ queue: fresh('nope') }), status.NOT_FOUND, 'not found');
    await expectStatus(a.redrive({ queue: q, messageIds: ['not-a-uuid'] }), status.INVALID_ARGUMENT, 'message_ids[0]');
    await expectStatus(a.redrive({ queue: q, destination: fresh('nowhere') }), status.NOT_FOUND, 'not found');
  });
});

describe('TTL', () => {
  it('a message past expires_at is never delivered, leaves the queue, and is counted as expired', async () => {
    const q = fresh('ttl');
    await t.create(q);
    // expires_at must be ahead of the wall clock too (the server refuses one that has passed).
    await clock.catchUp();
    await t.send([msg(q, 'short', { expiresAt: new Date(clock.now() + 400) }), msg(q, 'long', { expiresAt: new Date(clock.now() + 60_000) })]);
    await clock.advance(300);
    expect(Number((await t.stats(q)).expired)).toBe(0);
    await clock.advance(600);
    expect(await drain(q, true, t)).toEqual(['long']);
    const s = await t.stats(q);
    expect(Number(s.expired)).toBe(1);
    expect(counts(s)).toMatchObject({ depth: 0, leased: 0 });
  });

  it("the queue's message_ttl applies to messages sent without expires_at", async () => {
    const q = fresh('ttl-q');
    await t.create(q, { messageTtl: dur(1) });
    await t.send([msg(q, 'a'), msg(q, 'b')]);
    await clock.advance(900);
    expect(Number((await t.stats(q)).expired)).toBe(0);
    // Past the ttl, and a sweep after it.
    await clock.advance(400);
    expect(Number((await t.stats(q)).expired)).toBe(2);
    expect(await drain(q, true, t)).toEqual([]);
  });

  it('a message that expires while waiting is never delivered, even before the sweeper runs, which then counts it', async () => {
    const q = fresh('ttl-lease');
    await t.create(q);
    await clock.catchUp();
    await t.send([msg(q, 'gone', { expiresAt: new Date(clock.now() + 300) }), msg(q, 'kept')]);
    // Time passes and no sweep runs: the clock jumps without firing the sweeper's timer.
    await clock.jump(500);
    const { deliveries } = await t.lease(q, 10);
    expect(deliveries.map(d => text(d.message!.payload))).toEqual(['kept']);
    expect(Number((await t.stats(q)).expired)).toBe(0);
    await clock.advance(1000); // the sweeper's turn, and what it started done
    expect(Number((await t.stats(q)).expired)).toBe(1);
  });

  it('expires_at in the past, or not after deliver_at, is INVALID_ARGUMENT', async () => {
    const q = fresh('ttl-bad');
    await a.create(q);
    await expectStatus(a.send([msg(q, 'x', { expiresAt: new Date(Date.now() - 1000) })]), status.INVALID_ARGUMENT, 'messages[0].expires_at');
    const at = new Date(Date.now() + 60_000);
    await expectStatus(a.send([msg(q, 'x', { deliverAt: at, expiresAt: at })]), status.INVALID_ARGUMENT, 'not after deliver_at');
  });
});

describe('deduplication', () => {
  it('a dedup_key seen in the window answers duplicate with the first id, also within one batch; after the window it is new', async () => {
    const q = fresh('dedup');
    await a.create(q, { dedupWindow: dur(1) });
    const first = await a.send([msg(q, 'one', { dedupKey: 'order-1' }), msg(q, 'two', { dedupKey: 'order-1' }), msg(q, 'other', { dedupKey: 'order-2' })]);
    const [r1, r2, r3] = first.results;
    expect([r1.duplicate, r2.duplicate, r3.duplicate]).toEqual([false, true, false]);
    expect(r2.id).toBe(r1.id);
    const again = await a.send([msg(q, 'three', { dedupKey: 'order-1' })]);
    expect(again.results[0]).toMatchObject({ id: r1.id, duplicate: true });
    expect(Number((await a.stats(q)).depth)).toBe(2);

    // Real time: the dedup window is kept by the database's own clock (now()), not the test clock.
    await sleep(1200);
    const later = await a.send([msg(q, 'four', { dedupKey: 'order-1' })]);
    expect(later.results[0].duplicate).toBe(false);
    expect(later.results[0].id).not.toBe(r1.id);
    expect((await drain(q)).sort()).toEqual(['four', 'one', 'other']);
  });

  it('content_dedup deduplicates on the payload hash; concurrent senders of one payload store it once', async () => {
    const q = fresh('cdedup');
    await a.create(q, { contentDedup: true });
    const sends = await Promise.all(Array.from({ length: 8 }, () => a.send([msg(q, 'same body')])));
    const ids = new Set(sends.map(s => s.results[0].id));
    expect(ids.size).toBe(1);
    expect(sends.filter(s => !s.results[0].duplicate)).toHaveLength(1);
    const other = await a.send([msg(q, 'different body')]);
    expect(other.results[0].duplicate).toBe(false);
    expect((await drain(q)).sort()).toEqual(['different body', 'same body']);
  });

  it('dedup holds across a server restart', async () => {
    const q = fresh('dedup-restart');
    const s1 = await startServer(databaseUrl);
    const b1 = api(s1.clients);
    await b1.create(q);
    const first = await b1.send([msg(q, 'once', { dedupKey: 'k' })]);
    await s1.stop();
    const s2 = await startServer(databaseUrl);
    try {
      const again = await api(s2.clients).send([msg(q, 'twice', { dedupKey: 'k' })]);
      expect(again.results[0]).toMatchObject({ id: first.results[0].id, duplicate: true });
    } finally {
      await s2.stop();
    }
  });

  it('content hashes are the same when batches go to worker threads (threshold 1 byte): content_dedup still matches', async () => {
    const workers = await startServer(databaseUrl, { hashWorkerThresholdBytes: 1 });
    try {
      const b = api(workers.clients);
      const q = fresh('cdedup-workers');
      await b.create(q, { contentDedup: true });
      const first = await b.send([msg(q, 'hashed on a worker')]);
      expect(first.results[0].contentHash).toBe(createHash('sha256').update('hashed on a worker').digest('hex'));
      // Hashed on the main thread by the other server: the same key.
      const again = await a.send([msg(q, 'hashed on a worker')]);
      expect(again.results[0]).toMatchObject({ id: first.results[0].id, duplicate: true });
    } finally {
      await workers.stop();
    }
  });

  it('a dedup_key over 200 characters is INVALID_ARGUMENT', async () => {
    const q = fresh('dedup-long');
    await a.create(q);
    await expectStatus(a.send([msg(q, 'x', { dedupKey: 'k'.repeat(201) })]), status.INVALID_ARGUMENT, 'dedup_key is longer than 200');
  });
});

describe('bounded queues', () => {
  it('REJECT: a send that does not fit fails RESOURCE_EXHAUSTED naming the queue and limit, and stores nothing', async () => {
    const q = fresh('bound-reject');
    await a.create(q, { maxDepth: '3', overflow: OverflowPolicy.OVERFLOW_POLICY_REJECT });
    await a.send([msg(q, '1'), msg(q, '2')]);
    const err = await expectStatus(a.send([msg(q, '3'), msg(q, '4')]), status.RESOURCE_EXHAUSTED, `queue ${q} is full: max_depth 3`);
    expect(err.details).toContain('2 waiting');
    expect(Number((await a.stats(q)).depth)).toBe(2);
    await a.send([msg(q, '3')]);
    expect(Number((await a.stats(q)).depth)).toBe(3);
    // Leased messages do not count: taking one out makes room.
    const [d] = (await a.lease(q, 1)).deliveries;
    await a.send([msg(q, '4')]);
    await a.ack(d.leaseToken);
    expect(Number((await a.stats(q)).depth)).toBe(3);
  });

  it('DROP_NEWEST keeps what is there and drops the new messages that do not fit, counting them', async () => {
    const q = fresh('bound-newest');
    await a.create(q, { maxDepth: '2', overflow: OverflowPolicy.OVERFLOW_POLICY_DROP_NEWEST });
    const res = await a.send([msg(q, 'a'), msg(q, 'b'), msg(q, 'c')]);
    expect(res.results.map(r => r.duplicate)).toEqual([false, false, false]);
    await a.send([msg(q, 'd')]);
    const s = await a.stats(q);
    expect(Number(s.dropped)).toBe(2);
    expect((await drain(q)).sort()).toEqual(['a', 'b']);
  });

  it('DROP_OLDEST under concurrent senders: depth never passes max_depth, the newest stay, the rest are counted dropped', async () => {
    const q = fresh('bound-oldest');
    const max = 20;
    await a.create(q, { maxDepth: String(max), overflow: OverflowPolicy.OVERFLOW_POLICY_DROP_OLDEST });
    const senders = 6;
    const rounds = 10;
    let peak = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        peak = Math.max(peak, Number((await a.stats(q)).depth));
        await sleep(5);
      }
    })();
    await Promise.all(
      Array.from({ length: senders }, async (_, s) => {
        for (let r = 0; r < rounds; r++) await a.send([msg(q, `s${s}-r${r}-a`), msg(q, `s${s}-r${r}-b`)]);
      }),
    );
    sampling = false;
    await sampler;
    const total = senders * rounds * 2;
    const s = await a.stats(q);
    expect(peak).toBeLessThanOrEqual(max);
    expect(Number(s.depth)).toBe(max);
    expect(Number(s.dropped)).toBe(total - max);
    // The oldest went first: nothing of the first rounds survives.
    const left = await drain(q);
    expect(left).toHaveLength(max);
    expect(left.filter(p => /-r[0-2]-/.test(p))).toEqual([]);
  });

  it('a batch bigger than max_depth under DROP_OLDEST keeps its newest max_depth messages', async () => {
    const q = fresh('bound-big');
    await a.create(q, { maxDepth: '2', overflow: OverflowPolicy.OVERFLOW_POLICY_DROP_OLDEST });
    await a.send([msg(q, 'old')]);
    await a.send(['1', '2', '3', '4'].map(p => msg(q, p)));
    expect((await drain(q)).sort()).toEqual(['3', '4']);
    expect(Number((await a.stats(q)).dropped)).toBe(3);
  });
});

describe('priority and delay', () => {
  it('a delayed high-priority message goes before earlier low-priority ones once it is due, and not before', async () => {
    const q = fresh('prio-delay');
    await t.create(q);
    // (Within one Send, messages of equal priority share created_on and go in id order: distinct priorities here.)
    await t.send([msg(q, 'low-1', { priority: 2 }), msg(q, 'high', { priority: 9, deliverAt: new Date(clock.now() + 800) }), msg(q, 'low-2', { priority: 1 })]);
    expect((await t.lease(q, 1)).deliveries.map(d => text(d.message!.payload))).toEqual(['low-1']);
    await clock.advance(1000);
    expect((await t.lease(q, 10)).deliveries.map(d => text(d.message!.payload))).toEqual(['high', 'low-2']);
  });
});

describe('acked_retention 0: an ack deletes', () => {
  it('deletes the acked message at once: nothing acked stored or counted; a repeated ack succeeds; a stale token fails while the record of the later ack lasts', async () => {
    const q = fresh('keep-none');
    const created = await a.create(q, { ackedRetention: dur(0) });
    expect(created.queue!.config!.ackedRetention).toEqual({ seconds: '0', nanos: 0 });
    await a.send([msg(q, 'one'), msg(q, 'two'), msg(q, 'three')]);
    const { deliveries } = await a.lease(q, 10, 1);
    const by = new Map(deliveries.map(d => [text(d.message!.payload), d]));
    const [one, two, three] = [by.get('one')!, by.get('two')!, by.get('three')!];
    expect((await a.ack(one.leaseToken)).acked).toBe(1);
    const rows = async () =>
      (await srv.app.core.db.exec({ text: 'SELECT count(*)::int AS n FROM inboxd.job WHERE name = $1', values: [q] })).rows[0].n as number;
    expect(await rows()).toBe(2);
    // A client retrying a lost answer: the message is gone, acked at its first attempt, no other
    // attempt had a token: the ack is done.
    expect((await a.ack(one.leaseToken)).acked).toBe(1);
    // A nack still returns the message; its old token is stale once it is leased again.
    await a.nack([two.leaseToken]);
    const again = (await a.lease(q, 10)).deliveries;
    expect(again.map(d => [text(d.message!.payload), d.attempt])).toEqual([['two', 2]]);
    await expectStatus(a.ack(two.leaseToken), status.FAILED_PRECONDITION, 'stale');
    await a.ack(again[0].leaseToken, three.leaseToken);
    expect(await rows()).toBe(0);
    // Gone, acked at attempt 2: its record tells the repeat (success) from attempt 1's token (stale).
    expect((await a.ack(again[0].leaseToken)).acked).toBe(1);
    await expectStatus(a.ack(two.leaseToken), status.FAILED_PRECONDITION, 'stale');
    // Past the record's window (an hour at least) the message is gone and nothing says how: the
    // ack succeeds, as SQS's DeleteMessage of a deleted message does.
    await srv.app.core.db.exec({ text: `UPDATE inboxd.inboxd_acked SET keep_until = now() - interval '1 second' WHERE id = $1`, values: [two.message!.id] });
    expect((await a.ack(two.leaseToken)).acked).toBe(1);
    expect(counts(await a.stats(q))).toMatchObject({ depth: 0, leased: 0, acked: 0 });
    // Back to keeping an hour of history: acks mark, as before.
    await a.update(q, { ackedRetention: dur(3600) }, ['acked_retention']);
    await a.send([msg(q, 'four')]);
    const [four] = (await a.lease(q, 10)).deliveries;
    await a.ack(four.leaseToken);
    expect(counts(await a.stats(q))).toMatchObject({ acked: 1 });
  });
});

describe('queue settings', () => {
  it('UpdateQueue changes the fields in update_mask (or those set) and keeps the rest; the new settings apply', async () => {
    const q = fresh('upd');
    await a.create(q, { maxAttempts: 3, maxDepth: '5' });
    const r1 = await a.update(q, { maxAttempts: 7 }, ['max_attempts']);
    expect(r1.queue!.config).toMatchObject({ maxAttempts: 7, maxDepth: '5' });
    const r2 = await a.update(q, { maxDepth: '1', overflow: OverflowPolicy.OVERFLOW_POLICY_REJECT });
    expect(r2.queue!.config).toMatchObject({ maxAttempts: 7, maxDepth: '1' });
    await a.send([msg(q, 'a')]);
    await waitFor(
      async () => {
        try {
          await a.send([msg(q, 'b')]);
          return false;
        } catch (err) {
          return (err as { code: number }).code === status.RESOURCE_EXHAUSTED;
        }
      },
      10_000,
      'the new max_depth to apply',
    );
    // Unbounded again through the mask with a zero value.
    const r3 = await a.update(q, { maxDepth: '0' }, ['config.max_depth']);
    expect(r3.queue!.config!.maxDepth).toBe('0');
  });

  it('UpdateQueue refuses bad values, unknown mask paths, empty updates and missing queues', async () => {
    const q = fresh('upd-bad');
    await a.create(q);
    await expectStatus(a.update(q, { maxAttempts: 5000 }), status.INVALID_ARGUMENT, 'config.max_attempts');
    await expectStatus(a.update(q, { maxAttempts: 2 }, ['max_attemps']), status.INVALID_ARGUMENT, 'update_mask path "max_attemps"');
    await expectStatus(a.update(q, {}), status.INVALID_ARGUMENT, 'nothing to update');
    await expectStatus(a.update(fresh('nope'), { maxAttempts: 2 }), status.NOT_FOUND, 'not found');
  });

  it.each([
    [{ messageTtl: dur(-1) }, 'config.message_ttl'],
    [{ dedupWindow: { seconds: '0', nanos: 0 } }, 'config.dedup_window'],
    [{ dedupWindow: dur(8 * 24 * 3600) }, 'config.dedup_window'],
    [{ maxDepth: '-1' }, 'config.max_depth'],
    [{ overflow: OverflowPolicy.OVERFLOW_POLICY_DROP_OLDEST }, 'needs config.max_depth'],
    [{ maxDepth: '5', overflow: 42 as OverflowPolicy }, 'config.overflow'],
  ] as [Partial<QueueConfig>, string][])('CreateQueue refuses %j with INVALID_ARGUMENT naming the setting', async (config, text) => {
    await expectStatus(a.create(fresh('bad-cfg'), config), status.INVALID_ARGUMENT, text);
  });
});

describe('stats', () => {
  it('count expired and dropped, and report send and ack rates over the last minute', async () => {
    const q = fresh('rates');
    await a.create(q, { maxDepth: '30', overflow: OverflowPolicy.OVERFLOW_POLICY_DROP_NEWEST });
    await a.send(Array.from({ length: 30 }, (_, i) => msg(q, `m${i}`)));
    await a.send([msg(q, 'overflow')]);
    const { deliveries } = await a.lease(q, 12);
    await a.ack(...deliveries.map(d => d.leaseToken));
    const s = await a.stats(q);
    expect(Number(s.dropped)).toBe(1);
    expect(s.sendRate).toBeCloseTo(30 / 60, 5);
    expect(s.ackRate).toBeCloseTo(12 / 60, 5);
  });
});
