import { type ServiceError, status } from '@grpc/grpc-js';
import type { Duration } from '@inboxd/proto/google/protobuf/duration';
import { AckRequest, LeaseRequest, NackRequest, SendRequest, type SendResponse } from '@inboxd/proto/v1/inbox';
import type { Message } from '@inboxd/proto/v1/message';
import {
  CreateQueueRequest,
  DeleteQueueRequest,
  GetQueueRequest,
  GetQueueStatsRequest,
  ListQueuesRequest,
  OverflowPolicy,
  PurgeQueueRequest,
  type Queue,
  type QueueConfig,
  type QueueStats,
} from '@inboxd/proto/v1/queues';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ServerClock, startTimedServer } from './support/clock.js';
import { counts, expectStatus, ZERO } from './support/expect.js';
import { type Clients, call, dur, migratedDatabase, startServer } from './support/harness.js';

type Server = Awaited<ReturnType<typeof startServer>>;

function api(c: Clients) {
  const { inbox, queues } = c;
  return {
    create: (name: string, config?: Partial<QueueConfig>) => call(queues, queues.createQueue, CreateQueueRequest.fromPartial({ name, config })),
    get: (name: string) => call(queues, queues.getQueue, GetQueueRequest.fromPartial({ name })),
    list: (pageSize = 0, pageToken = '') => call(queues, queues.listQueues, ListQueuesRequest.fromPartial({ pageSize, pageToken })),
    remove: (name: string) => call(queues, queues.deleteQueue, DeleteQueueRequest.fromPartial({ name })),
    purge: (name: string) => call(queues, queues.purgeQueue, PurgeQueueRequest.fromPartial({ name })),
    stats: async (name: string): Promise<QueueStats> => (await call(queues, queues.getQueueStats, GetQueueStatsRequest.fromPartial({ name }))).stats!,
    send: (messages: Partial<Message>[]): Promise<SendResponse> => call(inbox, inbox.send, SendRequest.fromPartial({ messages })),
    sendTo: (queue: string, n: number) =>
      call(inbox, inbox.send, SendRequest.fromPartial({ messages: Array.from({ length: n }, (_, i) => ({ queue, payload: Buffer.from(`m${i}`) })) })),
    lease: (queue: string, max = 1, vis = 30) => call(inbox, inbox.lease, LeaseRequest.fromPartial({ queue, maxMessages: max, visibilityTimeout: dur(vis) })),
    ack: (...leaseTokens: string[]) => call(inbox, inbox.ack, AckRequest.fromPartial({ leaseTokens })),
    nack: (leaseTokens: string[], delay?: Duration) => call(inbox, inbox.nack, NackRequest.fromPartial({ leaseTokens, delay })),
  };
}

const secs = (d: Duration | undefined) => (d ? Number(d.seconds) + d.nanos / 1e9 : undefined);

const DEFAULTS: QueueConfig = {
  visibilityTimeout: { seconds: '30', nanos: 0 },
  maxAttempts: 5,
  deadLetterQueue: '',
  retryDelay: { seconds: '0', nanos: 0 },
  retryBackoff: false,
  retryDelayMax: undefined,
  ackedRetention: { seconds: '3600', nanos: 0 },
  messageTtl: undefined,
  dedupWindow: { seconds: '300', nanos: 0 },
  contentDedup: false,
  maxDepth: '0',
  overflow: OverflowPolicy.OVERFLOW_POLICY_REJECT,
};

let srv: Server;
let a: ReturnType<typeof api>;
/** For the tests about time (a message's age): a server whose clock the test advances. */
let timed: Awaited<ReturnType<typeof startTimedServer>>;
let t: ReturnType<typeof api>;
let clock: ServerClock;
let qn = 0;
const fresh = (tag: string) => `${tag}-${++qn}`;

beforeAll(async () => {
  [srv, timed] = await Promise.all([startServer(await migratedDatabase()), startTimedServer()]);
  a = api(srv.clients);
  t = api(timed.clients);
  clock = timed.clock;
});
afterAll(async () => {
  await srv?.stop();
  await timed?.stop();
});

describe('CreateQueue', () => {
  it('fills in the defaults of an empty config and reports when it was created', async () => {
    const name = fresh('defaults');
    const before = Date.now();
    const { queue } = await a.create(name);
    expect(queue!.name).toBe(name);
    expect(queue!.config).toEqual(DEFAULTS);
    expect(queue!.createdAt).toBeInstanceOf(Date);
    expect(queue!.createdAt!.getTime()).toBeGreaterThanOrEqual(before - 5000);
    expect(queue!.createdAt!.getTime()).toBeLessThanOrEqual(Date.now() + 5000);
    // A config with every field at its zero value is the same as none.
    const zero = await a.create(fresh('zero'), { maxAttempts: 0, deadLetterQueue: '', retryBackoff: false });
    expect(zero.queue!.config).toEqual(DEFAULTS);
  });

  it('keeps the values it is given, and GetQueue answers the same', async () => {
    const dlq = fresh('given-dlq');
    await a.create(dlq);
    const name = fresh('given');
    const config: QueueConfig = {
      visibilityTimeout: { seconds: '45', nanos: 0 },
      maxAttempts: 3,
      deadLetterQueue: dlq,
      retryDelay: { seconds: '2', nanos: 0 },
      retryBackoff: true,
      retryDelayMax: { seconds: '60', nanos: 0 },
      ackedRetention: { seconds: '7200', nanos: 0 },
      messageTtl: { seconds: '600', nanos: 0 },
      dedupWindow: { seconds: '120', nanos: 0 },
      contentDedup: true,
      maxDepth: '50',
      overflow: OverflowPolicy.OVERFLOW_POLICY_DROP_OLDEST,
    };
    const created = await a.create(name, config);
    expect(created.queue!.config).toEqual(config);
    const got = await a.get(name);
    expect(got.queue!.name).toBe(name);
    expect(got.queue!.config).toEqual(config);
    expect(got.queue!.createdAt!.getTime()).toBe(created.queue!.createdAt!.getTime());
  });

  it('accepts the limits of each range', async () => {
    const lo = await a.create(fresh('limits-lo'), { maxAttempts: 1, visibilityTimeout: dur(1), ackedRetention: dur(1) });
    expect(lo.queue!.config).toMatchObject({ maxAttempts: 1, visibilityTimeout: { seconds: '1', nanos: 0 }, ackedRetention: { seconds: '1', nanos: 0 } });
    const hi = await a.create(fresh('limits-hi'), { maxAttempts: 1000, visibilityTimeout: dur(12 * 3600) });
    expect(hi.queue!.config).toMatchObject({ maxAttempts: 1000, visibilityTimeout: { seconds: '43200', nanos: 0 } });
    const long = 'q'.repeat(100);
    expect((await a.create(long)).queue!.name).toBe(long);
    expect((await a.get(long)).queue!.name).toBe(long);
  });

  it('rounds fractional durations up to whole seconds', async () => {
    const { queue } = await a.create(fresh('round'), {
      visibilityTimeout: { seconds: '0', nanos: 500_000_000 },
      retryDelay: { seconds: '1', nanos: 1 },
      ackedRetention: { seconds: '10', nanos: 900_000_000 },
    });
    expect(secs(queue!.config!.visibilityTimeout)).toBe(1);
    expect(secs(queue!.config!.retryDelay)).toBe(2);
    expect(secs(queue!.config!.ackedRetention)).toBe(11);
  });

  it('a duplicate create is ALREADY_EXISTS and leaves the queue as it was', async () => {
    const name = fresh('dup');
    await a.create(name, { maxAttempts: 7 });
    await expectStatus(a.create(name, { maxAttempts: 2 }), status.ALREADY_EXISTS, `queue ${name} already exists`);
    await expectStatus(a.create(name), status.ALREADY_EXISTS, 'already exists');
    expect((await a.get(name)).queue!.config!.maxAttempts).toBe(7);
  });

  it('concurrent creates of one name: exactly one succeeds, the others are ALREADY_EXISTS', async () => {
    const name = fresh('race');
    const results = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => a.create(name, { maxAttempts: i + 1 })));
    const ok = results.filter(r => r.status === 'fulfilled');
    const bad = results.filter(r => r.status === 'rejected').map(r => (r as PromiseRejectedResult).reason as ServiceError);
    expect(bad.map(e => status[e.code])).toEqual(Array.from({ length: 7 }, () => 'ALREADY_EXISTS'));
    expect(ok).toHaveLength(1);
    const winner = results.findIndex(r => r.status === 'fulfilled');
    expect((ok[0] as PromiseFulfilledResult<{ queue?: Queue }>).value.queue!.config!.maxAttempts).toBe(winner + 1);
    expect((await a.get(name)).queue!.config!.maxAttempts).toBe(winner + 1);
  });

  it('a dead_letter_queue that does not exist is FAILED_PRECONDITION; the queue is not created', async () => {
    const name = fresh('dlq-missing');
    const missing = fresh('no-such-dlq');
    await expectStatus(a.create(name, { deadLetterQueue: missing }), status.FAILED_PRECONDITION, `dead_letter_queue ${missing} does not exist`);
    await expectStatus(a.get(name), status.NOT_FOUND, 'not found');
  });

  it('a queue cannot be its own dead_letter_queue, and the dead_letter_queue name is checked', async () => {
    const name = fresh('dlq-self');
    await expectStatus(a.create(name, { deadLetterQueue: name }), status.INVALID_ARGUMENT, `queue ${name} cannot be its own dead_letter_queue`);
    await expectStatus(
      a.create(name, { deadLetterQueue: 'bad name!' }),
      status.INVALID_ARGUMENT,
      'config.dead_letter_queue "bad name!" is not a valid queue name',
    );
    await expectStatus(a.get(name), status.NOT_FOUND, 'not found');
  });

  it('refuses bad names and out-of-range config with INVALID_ARGUMENT naming the field', async () => {
    await expectStatus(a.create(''), status.INVALID_ARGUMENT, 'name is required');
    await expectStatus(a.create('bad name!'), status.INVALID_ARGUMENT, 'name "bad name!" is not a valid queue name');
    await expectStatus(a.create('q'.repeat(101)), status.INVALID_ARGUMENT, 'not a valid queue name');
    await expectStatus(a.create('.hidden'), status.INVALID_ARGUMENT, 'starting with a letter or digit');
    await expectStatus(a.create('a/b'), status.INVALID_ARGUMENT, 'not a valid queue name');
    const name = fresh('bad-config');
    await expectStatus(a.create(name, { maxAttempts: 1001 }), status.INVALID_ARGUMENT, 'config.max_attempts must be between 1 and 1000, got 1001');
    await expectStatus(a.create(name, { maxAttempts: -1 }), status.INVALID_ARGUMENT, 'config.max_attempts must be between 1 and 1000, got -1');
    await expectStatus(
      a.create(name, { visibilityTimeout: dur(13 * 3600) }),
      status.INVALID_ARGUMENT,
      /config\.visibility_timeout must be between 1s and (12h|43200s)/,
    );
    await expectStatus(a.create(name, { visibilityTimeout: dur(0) }), status.INVALID_ARGUMENT, 'config.visibility_timeout must be between');
    await expectStatus(
      a.create(name, { visibilityTimeout: { seconds: '-1', nanos: 0 } }),
      status.INVALID_ARGUMENT,
      'config.visibility_timeout must not be negative',
    );
    await expectStatus(a.create(name, { retryDelay: { seconds: '0', nanos: -1 } }), status.INVALID_ARGUMENT, 'config.retry_delay must not be negative');
    await expectStatus(a.create(name, { retryDelay: dur(2 * 24 * 3600) }), status.INVALID_ARGUMENT, 'config.retry_delay must be between');
    await expectStatus(
      a.create(name, { ackedRetention: { seconds: '0', nanos: 500_000_000 } }),
      status.INVALID_ARGUMENT,
      'config.acked_retention must be 0 (an ack deletes the message) or between 1s and 365d, got 500ms',
    );
    await expectStatus(
      a.create(name, { retryBackoff: true, retryDelayMax: dur(8 * 24 * 3600) }),
      status.INVALID_ARGUMENT,
      'config.retry_delay_max must be between',
    );
    // A cap on the backed-off delay means nothing without backoff.
    await expectStatus(
      a.create(name, { retryDelayMax: dur(60) }),
      status.INVALID_ARGUMENT,
      'config.retry_delay_max caps the backed-off retry delay: set config.retry_backoff',
    );
    // None of them created it.
    await expectStatus(a.get(name), status.NOT_FOUND, 'not found');
    expect((await a.create(name)).queue!.config).toEqual(DEFAULTS);
  });
});

describe('GetQueue', () => {
  it('NOT_FOUND for a queue that does not exist, INVALID_ARGUMENT for a bad name', async () => {
    const name = fresh('nobody');
    await expectStatus(a.get(name), status.NOT_FOUND, `queue ${name} not found`);
    await expectStatus(a.get(''), status.INVALID_ARGUMENT, 'name is required');
    await expectStatus(a.get('bad name!'), status.INVALID_ARGUMENT, 'not a valid queue name');
  });
});

describe('ListQueues', () => {
  // Its own database: the listing is exactly the queues made here.
  let lsrv: Server;
  let l: ReturnType<typeof api>;
  const names = ['alpha', 'Beta', 'gamma-1', 'gamma_2', 'gamma.3', 'Z9', '0zero'];
  beforeAll(async () => {
    lsrv = await startServer(await migratedDatabase());
    l = api(lsrv.clients);
    for (const n of names) await l.create(n, n === 'alpha' ? { maxAttempts: 9 } : undefined);
  });
  afterAll(() => lsrv?.stop());

  it('an empty page_size lists all of them on one page', async () => {
    const page = await l.list();
    expect(page.queues.map(q => q.name).sort()).toEqual([...names].sort());
    expect(page.nextPageToken).toBe('');
    // Each carries its effective config.
    expect(page.queues.find(q => q.name === 'alpha')!.config!.maxAttempts).toBe(9);
    expect(page.queues.find(q => q.name === 'Beta')!.config).toEqual(DEFAULTS);
  });

  it('pages through with page_size 3: pages of 3, 3 and 1, each name once, no token on the last page', async () => {
    const sizes: number[] = [];
    const seen: string[] = [];
    let token = '';
    for (let i = 0; i < 10; i++) {
      const page = await l.list(3, token);
      sizes.push(page.queues.length);
      seen.push(...page.queues.map(q => q.name));
      token = page.nextPageToken;
      if (!token) break;
    }
    expect(sizes).toEqual([3, 3, 1]);
    expect(seen).toHaveLength(names.length);
    expect([...seen].sort()).toEqual([...names].sort());
    expect(token).toBe('');
  });

  it('a page_size equal to the count ends with an empty token, not an empty extra page', async () => {
    const page = await l.list(7);
    expect(page.queues).toHaveLength(7);
    expect(page.nextPageToken).toBe('');
    const first = await l.list(6);
    expect(first.queues).toHaveLength(6);
    expect(first.nextPageToken).not.toBe('');
    const last = await l.list(6, first.nextPageToken);
    expect(last.queues).toHaveLength(1);
    expect(last.nextPageToken).toBe('');
  });

  it('a queue created between pages shows up later without repeating earlier ones', async () => {
    const first = await l.list(4);
    expect(first.queues).toHaveLength(4);
    await l.create('zzz-late');
    try {
      const rest: string[] = [];
      let token = first.nextPageToken;
      while (token) {
        const page = await l.list(4, token);
        rest.push(...page.queues.map(q => q.name));
        token = page.nextPageToken;
      }
      const all = [...first.queues.map(q => q.name), ...rest];
      expect(new Set(all).size).toBe(all.length);
      expect(all).toContain('zzz-late');
      expect(all).toHaveLength(names.length + 1);
    } finally {
      await l.remove('zzz-late');
    }
  });

  it('refuses a bad page_token and an out-of-range page_size', async () => {
    for (const token of ['garbage!!', '%%%', Buffer.from('bad name!').toString('base64url'), Buffer.from([0xff, 0xfe, 0x00]).toString('base64')]) {
      await expectStatus(l.list(3, token), status.INVALID_ARGUMENT, 'page_token is not one this server issued');
    }
    await expectStatus(l.list(1001), status.INVALID_ARGUMENT, 'page_size must be between 1 and 1000, got 1001');
    await expectStatus(l.list(-1), status.INVALID_ARGUMENT, 'page_size must be between 1 and 1000');
    expect((await l.list(1000)).queues).toHaveLength(names.length);
  });
});

describe('DeleteQueue', () => {
  it('removes the queue: GetQueue, Send, Lease and stats are NOT_FOUND afterwards', async () => {
    const name = fresh('doomed');
    await a.create(name);
    await a.sendTo(name, 3);
    expect(await a.remove(name)).toEqual({});
    await expectStatus(a.get(name), status.NOT_FOUND, `queue ${name} not found`);
    await expectStatus(a.sendTo(name, 1), status.NOT_FOUND, 'not found');
    await expectStatus(a.lease(name), status.NOT_FOUND, 'not found');
    await expectStatus(a.stats(name), status.NOT_FOUND, 'not found');
    await expectStatus(a.purge(name), status.NOT_FOUND, 'not found');
    await expectStatus(a.remove(name), status.NOT_FOUND, 'not found');
    expect((await a.list(1000)).queues.map(q => q.name)).not.toContain(name);
  });

  it('leases held when their queue is deleted are stale: Ack, Nack and ExtendLease answer FAILED_PRECONDITION', async () => {
    const gone = fresh('gone');
    const live = fresh('live');
    await a.create(gone);
    await a.create(live);
    await a.sendTo(gone, 1);
    await a.sendTo(live, 1);
    const held = (await a.lease(gone)).deliveries[0];
    const other = (await a.lease(live)).deliveries[0];
    await a.remove(gone);
    await expectStatus(a.ack(held.leaseToken), status.FAILED_PRECONDITION, 'stale');
    await expectStatus(a.nack([held.leaseToken]), status.FAILED_PRECONDITION, 'stale');
    await expectStatus(
      call(srv.clients.inbox, srv.clients.inbox.extendLease, { leaseTokens: [held.leaseToken], visibilityTimeout: dur(5) }),
      status.FAILED_PRECONDITION,
      'stale',
    );
    // Mixed with a live token: the live one is acked, the call says which part failed.
    const err = await expectStatus(a.ack(held.leaseToken, other.leaseToken), status.FAILED_PRECONDITION, '1 of 2 lease tokens are stale');
    expect(err.details).toContain('the other 1 were acked');
    expect(counts(await a.stats(live))).toMatchObject({ leased: 0, acked: 1 });
  });

  it('a queue created again under a deleted name starts empty, with its new config', async () => {
    const name = fresh('reborn');
    await a.create(name, { maxAttempts: 2 });
    await a.sendTo(name, 4);
    const d = (await a.lease(name)).deliveries[0];
    await a.remove(name);
    const again = await a.create(name, { maxAttempts: 9 });
    expect(again.queue!.config!.maxAttempts).toBe(9);
    expect(counts(await a.stats(name))).toEqual(ZERO);
    expect((await a.lease(name, 10)).deliveries).toHaveLength(0);
    // The lease taken before the delete settles nothing in the new queue.
    await expectStatus(a.ack(d.leaseToken), status.FAILED_PRECONDITION, 'stale');
    await a.sendTo(name, 1);
    expect(counts(await a.stats(name))).toMatchObject({ depth: 1, ready: 1 });
  });

  it("refuses to delete another queue's dead_letter_queue with FAILED_PRECONDITION, and deletes it once unused", async () => {
    const dlq = fresh('in-use-dlq');
    const work = fresh('uses-dlq');
    await a.create(dlq);
    await a.create(work, { deadLetterQueue: dlq });
    await a.sendTo(dlq, 2);
    const err = await expectStatus(a.remove(dlq), status.FAILED_PRECONDITION, `queue ${dlq} is the dead_letter_queue of another queue`);
    expect(err.details).toContain(work);
    // Nothing was deleted: the queue and its messages are all there.
    expect((await a.get(dlq)).queue!.name).toBe(dlq);
    expect(counts(await a.stats(dlq))).toMatchObject({ depth: 2, ready: 2 });
    await a.remove(work);
    await a.remove(dlq);
    await expectStatus(a.get(dlq), status.NOT_FOUND, 'not found');
  });

  it('refuses bad names', async () => {
    await expectStatus(a.remove(''), status.INVALID_ARGUMENT, 'name is required');
    await expectStatus(a.remove('bad name!'), status.INVALID_ARGUMENT, 'not a valid queue name');
  });
});

describe('PurgeQueue', () => {
  it('removes every message, queued, delayed, leased or acked, returns the count, and stats go to zero', async () => {
    const name = fresh('purge');
    await a.create(name);
    await a.sendTo(name, 6);
    await a.send([
      { queue: name, payload: Buffer.from('later-1'), deliverAt: new Date(Date.now() + 3600_000) },
      { queue: name, payload: Buffer.from('later-2'), deliverAt: new Date(Date.now() + 3600_000) },
    ]);
    const leased = (await a.lease(name, 2)).deliveries;
    expect(leased).toHaveLength(2);
    await a.ack(leased[0].leaseToken);
    expect(counts(await a.stats(name))).toEqual({ depth: 6, ready: 4, delayed: 2, leased: 1, deadLettered: 0, acked: 1 });

    const res = await a.purge(name);
    expect(Number(res.purged)).toBe(8);
    const after = await a.stats(name);
    expect(counts(after)).toEqual(ZERO);
    expect(secs(after.oldestAge)).toBe(0);
    expect((await a.lease(name, 10)).deliveries).toHaveLength(0);
    // The lease held across the purge settles nothing.
    await expectStatus(a.ack(leased[1].leaseToken), status.FAILED_PRECONDITION, 'stale');
    // The queue itself is still there and works.
    expect((await a.get(name)).queue!.name).toBe(name);
    await a.sendTo(name, 1);
    expect(counts(await a.stats(name))).toMatchObject({ depth: 1, ready: 1 });
    expect(Number((await a.purge(name)).purged)).toBe(1);
    expect(Number((await a.purge(name)).purged)).toBe(0);
  });

  it('purging one queue leaves the others alone', async () => {
    const p = fresh('purge-me');
    const keep = fresh('keep-me');
    await a.create(p);
    await a.create(keep);
    await a.sendTo(p, 3);
    await a.sendTo(keep, 2);
    expect(Number((await a.purge(p)).purged)).toBe(3);
    expect(counts(await a.stats(keep))).toMatchObject({ depth: 2, ready: 2 });
  });

  it('NOT_FOUND for a missing queue', async () => {
    await expectStatus(a.purge(fresh('purge-missing')), status.NOT_FOUND, 'not found');
  });
});

describe('GetQueueStats', () => {
  it('is all zeros for a new queue', async () => {
    const name = fresh('stats-empty');
    await a.create(name);
    const s = await a.stats(name);
    expect(s.queue).toBe(name);
    expect(counts(s)).toEqual(ZERO);
    expect(secs(s.oldestAge)).toBe(0);
  });

  it('counts ready, delayed, leased, dead-lettered and acked messages, and the age of the oldest waiting one', async () => {
    const name = fresh('stats');
    await t.create(name, { maxAttempts: 1 });
    await t.sendTo(name, 5);
    await t.send([{ queue: name, payload: Buffer.from('later'), deliverAt: new Date(clock.now() + 3600_000) }]);
    const ds = (await t.lease(name, 3)).deliveries;
    expect(ds).toHaveLength(3);
    await t.ack(ds[0].leaseToken);
    // max_attempts 1: a nack is its last attempt.
    expect(await t.nack([ds[1].leaseToken])).toEqual({ requeued: 0, deadLettered: 1 });
    await clock.advance(400);
    const s = await t.stats(name);
    expect(s.queue).toBe(name);
    expect(counts(s)).toEqual({ depth: 3, ready: 2, delayed: 1, leased: 1, deadLettered: 1, acked: 1 });
    const age = secs(s.oldestAge)!;
    expect(age).toBeGreaterThan(0.3);
    expect(age).toBeLessThan(60);
  });

  it('oldest_age grows while a message waits, and goes to zero when nothing waits', async () => {
    const name = fresh('stats-age');
    await t.create(name);
    await t.sendTo(name, 1);
    await clock.advance(300);
    const a1 = secs((await t.stats(name)).oldestAge)!;
    await clock.advance(700);
    const a2 = secs((await t.stats(name)).oldestAge)!;
    expect(a1).toBeGreaterThan(0.2);
    expect(a2).toBeGreaterThan(a1 + 0.5);
    const d = (await t.lease(name)).deliveries[0];
    expect(secs((await t.stats(name)).oldestAge)).toBe(0);
    await t.ack(d.leaseToken);
    expect(counts(await t.stats(name))).toEqual({ ...ZERO, acked: 1 });
  });

  it('NOT_FOUND for a missing queue, INVALID_ARGUMENT for a bad name', async () => {
    await expectStatus(a.stats(fresh('stats-missing')), status.NOT_FOUND, 'not found');
    await expectStatus(a.stats('bad name!'), status.INVALID_ARGUMENT, 'not a valid queue name');
  });
});
