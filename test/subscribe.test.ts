import { randomUUID } from 'node:crypto';
import { type ClientDuplexStream, type ServiceError, type StatusObject, status } from '@grpc/grpc-js';
import { type InboxClient, LeaseRequest, NackRequest, SendRequest, type SettleResults, SubscribeRequest, type SubscribeResponse } from '@inboxd/proto/v1/inbox';
import type { Delivery } from '@inboxd/proto/v1/message';
import { CreateQueueRequest } from '@inboxd/proto/v1/queues';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { QueueCore } from '../server/queue/core.js';
import { dispatcherIdle, type ServerClock, startTimedServer } from './support/clock.js';
import { call, dur, migratedDatabase, sleep, startServer, waitFor } from './support/harness.js';

/** A token no server issued: an extend of it is answered (INVALID_ARGUMENT) and changes nothing. */
const PROBE = 'inboxd-test-probe';
const isProbe = (r: SubscribeResponse) => r.extendResults?.failed.some(f => f.leaseToken === PROBE) ?? false;

/**
 * Holds the calls of `fn` that `when` picks until `release()` (`held`: one was held), and passes
 * the others straight on: put `fn` in place of the method `fn` is bound from.
 */
function holdCalls<A extends unknown[], R>(fn: (...args: A) => Promise<R>, when: (...args: A) => boolean) {
  let release!: () => void;
  const gate = new Promise<void>(r => (release = r));
  const hold = {
    held: false,
    release: () => release(),
    fn: async (...args: A): Promise<R> => {
      if (when(...args)) {
        hold.held = true;
        await gate;
      }
      return fn(...args);
    },
  };
  return hold;
}

/**
 * One Subscribe stream as a client sees it: every response recorded in order, the stream's end
 * (status or OK) recorded, and a way to wait for a condition on what arrived.
 */
class Subscriber {
  readonly stream: ClientDuplexStream<SubscribeRequest, SubscribeResponse>;
  readonly responses: SubscribeResponse[] = [];
  readonly deliveries: Delivery[] = [];
  error?: ServiceError;
  /** The status the stream ended with (OK or not): always the last event of a call. */
  final?: StatusObject;
  private readonly listeners = new Set<() => void>();
  /** Called on each response as it arrives, before waiters are woken. */
  onResponse?: (r: SubscribeResponse) => void;

  constructor(
    inbox: InboxClient,
    readonly first: SubscribeRequest,
  ) {
    this.stream = inbox.subscribe();
    this.stream.on('data', (r: SubscribeResponse) => {
      this.responses.push(r);
      this.deliveries.push(...r.deliveries);
      this.onResponse?.(r);
      this.notify();
    });
    this.stream.on('error', (err: ServiceError) => {
      this.error = err;
      this.notify();
    });
    this.stream.on('status', (st: StatusObject) => {
      this.final = st;
      this.notify();
    });
    this.stream.write(first);
  }

  write(req: SubscribeRequest): void {
    this.stream.write(req);
  }

  get closed(): boolean {
    return this.final !== undefined || this.error !== undefined;
  }

  private notify(): void {
    for (const fn of [...this.listeners]) fn();
  }

  /** Resolves with fn's first truthy result, checked now and after every event on the stream. */
  until<T>(fn: () => T | undefined | false | null, what: string, timeoutMs = 10_000): Promise<T> {
    return new Promise((resolve, reject) => {
      const check = () => {
        let v: T | undefined | false | null;
        try {
          v = fn();
        } catch (err) {
          done();
          reject(err);
          return;
        }
        if (v) {
          done();
          resolve(v);
        }
      };
      const t = setTimeout(() => {
        done();
        reject(new Error(`timed out after ${timeoutMs}ms waiting for ${what}; got ${this.deliveries.length} deliveries, error ${this.error?.code}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(t);
        this.listeners.delete(check);
      };
      this.listeners.add(check);
      check();
    });
  }

  /** Waits for at least n deliveries in total and returns all of them. */
  async deliveredAtLeast(n: number, timeoutMs = 10_000): Promise<Delivery[]> {
    await this.until(() => this.deliveries.length >= n, `${n} deliveries`, timeoutMs);
    return this.deliveries;
  }

  /** The settle results of the next response after `from` responses carrying `kind`. */
  async results(kind: 'ackResults' | 'nackResults' | 'extendResults', from: number): Promise<SettleResults> {
    return this.until(() => this.responses.slice(from).find(r => r[kind] && !isProbe(r))?.[kind], kind);
  }

  /**
   * A round trip: resolves once the answer to a request written now arrives (an extend of a token
   * no server issued), so whatever the server wrote to the stream before has arrived too.
   */
  async probe(): Promise<void> {
    const from = this.responses.length;
    this.write(SubscribeRequest.fromPartial({ extendLeaseTokens: [PROBE] }));
    await this.until(() => this.responses.slice(from).some(isProbe), 'the answer to a probe');
  }

  /**
   * Everything the server would push now has arrived: it heard every notification, finished the
   * fetches they and the test's requests started, and a round trip on this stream came back. The
   * check for "nothing more arrives", without waiting on the wall clock.
   */
  async quiet(core: QueueCore): Promise<void> {
    // A stream's requests are handled in order: once a probe is answered its first request was
    // too, so the server knows the subscriber and its first fetch has begun. Looked at before
    // that, a stream still opening (its grant and its queue's settings being read) had nothing to
    // wait for, and "quiet" came while that fetch was yet to run.
    await this.probe();
    await dispatcherIdle(core, this.first.queue);
    await this.probe();
  }

  /** Waits for the stream to end with an error status; returns it. */
  async failure(timeoutMs = 10_000): Promise<ServiceError> {
    const st = await this.until(() => this.final, 'the stream to end', timeoutMs);
    if (st.code === status.OK || !this.error) throw new Error(`stream ended with ${st.code}, expected an error status`);
    return this.error;
  }

  cancel(): void {
    this.stream.cancel();
  }
}

interface FirstRequest {
  queue?: string;
  deliveryTags?: boolean;
  flowControl?: { maxOutstandingMessages?: number; maxOutstandingBytes?: string };
  visibilityTimeout?: { seconds: string; nanos: number };
}

describe('Subscribe', () => {
  let srv: Awaited<ReturnType<typeof startServer>>;
  let databaseUrl: string;
  /** For the tests about time: a server on a database of its own, whose clock the test advances. */
  let timed: Awaited<ReturnType<typeof startTimedServer>>;
  let clock: ServerClock;
  const open: Subscriber[] = [];

  beforeAll(async () => {
    databaseUrl = await migratedDatabase();
    [srv, timed] = await Promise.all([startServer(databaseUrl), startTimedServer()]);
    clock = timed.clock;
  });
  afterEach(() => {
    for (const s of open.splice(0)) if (!s.closed) s.cancel();
  });
  afterAll(async () => {
    await srv?.stop();
    await timed?.stop();
  });

  const subscribe = (req: FirstRequest, inbox: InboxClient = srv.clients.inbox) => {
    const first: SubscribeRequest = {
      ...SubscribeRequest.fromPartial({}),
      ...req,
      flowControl: req.flowControl && { maxOutstandingMessages: 0, maxOutstandingBytes: '0', ...req.flowControl },
    };
    const s = new Subscriber(inbox, first);
    open.push(s);
    return s;
  };

  /** `keepAcked`: acked messages kept as history (counted in stats.acked), not deleted by the ack (the default). */
  const createQueue = async (c = srv.clients, keepAcked = false) => {
    const name = `sub-${randomUUID().slice(0, 8)}`;
    await call(c.queues, c.queues.createQueue, CreateQueueRequest.fromPartial({ name, config: keepAcked ? { ackedRetention: dur(3600) } : undefined }));
    return name;
  };

  /** Sends n messages to queue (payloads "<tag>-<i>"); returns their ids in order. */
  const send = async (queue: string, n: number, tag = 'm', c = srv.clients): Promise<string[]> => {
    const ids: string[] = [];
    for (let start = 0; start < n; start += 500) {
      const messages = Array.from({ length: Math.min(500, n - start) }, (_, i) => ({ queue, payload: Buffer.from(`${tag}-${start + i}`) }));
      const res = await call(c.inbox, c.inbox.send, SendRequest.fromPartial({ messages }));
      ids.push(...res.results.map(r => r.id));
    }
    return ids;
  };

  const stats = async (name: string, c = srv.clients) => (await call(c.queues, c.queues.getQueueStats, { name })).stats!;

  const leaseAll = (queue: string, maxMessages: number, waitSec: number, visibility = 30, c = srv.clients) =>
    call(c.inbox, c.inbox.lease, LeaseRequest.fromPartial({ queue, maxMessages, wait: dur(waitSec), visibilityTimeout: dur(visibility) }));

  /** A queue of four messages that stream `a` holds (delivered, unsettled), and stream `b` open with room beside it, quiet. */
  const aHoldsFourBWaits = async () => {
    const queue = await createQueue();
    const ids = await send(queue, 4);
    const a = subscribe({ queue, flowControl: { maxOutstandingMessages: 10 }, visibilityTimeout: dur(30) });
    await a.deliveredAtLeast(4);
    const b = subscribe({ queue, flowControl: { maxOutstandingMessages: 10 }, visibilityTimeout: dur(30) });
    await b.quiet(srv.app.core);
    return { queue, ids, a, b };
  };

  it('(the harness) quiet() waits for a stream still opening and for its first fetch', async () => {
    const queue = await createQueue();
    // Opening reads the queue's settings, and the first fetch runs once it is open: both slowed.
    const core = srv.app.core;
    const { registry, store } = core;
    const get = registry.get;
    const lease = store.lease;
    let fetched = false;
    registry.get = async (...args) => {
      if (args[0] === queue) await sleep(200);
      return get.apply(registry, args);
    };
    store.lease = async (...args) => {
      if (args[0] === queue) await sleep(200);
      try {
        return await lease.apply(store, args);
      } finally {
        if (args[0] === queue) fetched = true;
      }
    };
    try {
      const sub = subscribe({ queue, flowControl: { maxOutstandingMessages: 5 }, visibilityTimeout: dur(30) });
      await sub.quiet(core);
      const queues = (core.dispatcher as unknown as { queues: Map<string, { pumping: boolean }> }).queues;
      expect(queues.has(queue)).toBe(true);
      expect(fetched).toBe(true);
      expect(queues.get(queue)!.pumping).toBe(false);
    } finally {
      registry.get = get;
      store.lease = lease;
    }
  });

  it('pushes messages sent after the stream opened, without the client asking again', async () => {
    const queue = await createQueue();
    const sub = subscribe({ queue, flowControl: { maxOutstandingMessages: 100 }, visibilityTimeout: dur(30) });
    // The stream is open and idle on an empty queue.
    await sub.quiet(srv.app.core);
    expect(sub.deliveries).toHaveLength(0);
    expect(sub.closed).toBe(false);

    const first = await send(queue, 3, 'a');
    await sub.deliveredAtLeast(3);
    expect(sub.deliveries.map(d => d.message!.id).sort()).toEqual([...first].sort());
    for (const d of sub.deliveries) {
      expect(d.attempt).toBe(1);
      expect(d.leaseToken).not.toBe('');
      expect(d.message!.queue).toBe(queue);
      // The lease is about the 30s asked for.
      const left = d.leaseExpiresAt!.getTime() - Date.now();
      expect(left).toBeGreaterThan(20_000);
      expect(left).toBeLessThanOrEqual(31_000);
    }
    expect(sub.deliveries.map(d => Buffer.from(d.message!.payload).toString()).sort()).toEqual(['a-0', 'a-1', 'a-2']);

    // Later sends keep arriving on the same stream, with nothing written by the client.
    await sub.quiet(srv.app.core);
    const second = await send(queue, 2, 'b');
    await sub.deliveredAtLeast(5);
    expect(new Set(sub.deliveries.map(d => d.message!.id))).toEqual(new Set([...first, ...second]));
    expect(sub.closed).toBe(false);
  });

  it('pushes on a send, not on a poll: a server polling once a minute delivers at once, also for sends through another server', async () => {
    const slow = await startServer(databaseUrl, { pollIntervalMs: 60_000 });
    try {
      const queue = await createQueue();
      const sub = subscribe({ queue, flowControl: { maxOutstandingMessages: 100 }, visibilityTimeout: dur(30) }, slow.clients.inbox);
      await sub.quiet(slow.app.core);
      expect(sub.deliveries).toHaveLength(0);

      // Sent through the same server: its own wake-up.
      const [local] = await call(
        slow.clients.inbox,
        slow.clients.inbox.send,
        SendRequest.fromPartial({ messages: [{ queue, payload: Buffer.from('x') }] }),
      ).then(r => r.results.map(x => x.id));
      await sub.deliveredAtLeast(1, 10_000);
      expect(sub.deliveries[0].message!.id).toBe(local);

      // Sent through another server on the same database: woken through Postgres.
      const [remote] = await send(queue, 1);
      await sub.deliveredAtLeast(2, 10_000);
      expect(sub.deliveries[1].message!.id).toBe(remote);
      sub.cancel();
    } finally {
      await slow.stop();
    }
  });

  it('delivers delayed messages at their due time without polling: deliver_at through this server and another, a nack delay, a retry delay after a lease expired', async () => {
    // Two servers on one database and one clock, both polling once a minute (the harness's
    // setting): only due-time wake-ups can be on time. Time moves when the test advances it.
    const other = await startTimedServer({}, { clock, databaseUrl: timed.databaseUrl });
    try {
      const queue = `sub-${randomUUID().slice(0, 8)}`;
      await call(
        timed.clients.queues,
        timed.clients.queues.createQueue,
        CreateQueueRequest.fromPartial({ name: queue, config: { retryDelay: dur(1), maxAttempts: 5 } }),
      );
      const sub = subscribe({ queue, flowControl: { maxOutstandingMessages: 10 }, visibilityTimeout: dur(1) }, other.clients.inbox);
      // When each delivery was leased for the stream, on the servers' clock: its 1 s lease's end less 1 s.
      const leasedAt = new Map<string, number[]>();
      sub.onResponse = r =>
        r.deliveries.forEach(d => leasedAt.set(d.message!.id, [...(leasedAt.get(d.message!.id) ?? []), d.leaseExpiresAt!.getTime() - 1000]));
      const sendAt = async (inbox: InboxClient, at: Date) =>
        (await call(inbox, inbox.send, SendRequest.fromPartial({ messages: [{ queue, payload: Buffer.from('d'), deliverAt: at }] }))).results[0].id;
      const onTime = (got: number | undefined, due: number, what: string) => {
        expect(got, `${what}: delivered`).toBeDefined();
        expect(got! - due, `${what}: not before its due time`).toBeGreaterThanOrEqual(0);
        expect(got! - due, `${what}: soon after its due time`).toBeLessThan(50);
      };
      await sub.quiet(other.app.core);

      // deliver_at, sent through the subscriber's server and through the other one; the later one first.
      const t0 = clock.now();
      const late = await sendAt(timed.clients.inbox, new Date(t0 + 1600));
      const early = await sendAt(other.clients.inbox, new Date(t0 + 800));
      await clock.advance(700);
      await sub.quiet(other.app.core);
      expect(sub.deliveries).toHaveLength(0);
      await clock.advance(1000);
      await sub.deliveredAtLeast(2, 5000);
      onTime(leasedAt.get(early)![0], t0 + 800, 'deliver_at through the same server');
      onTime(leasedAt.get(late)![0], t0 + 1600, 'deliver_at through another server');

      // A nack with a delay.
      const first = sub.deliveries.find(d => d.message!.id === early)!;
      sub.write(SubscribeRequest.fromPartial({ ackLeaseTokens: [sub.deliveries.find(d => d.message!.id === late)!.leaseToken] }));
      const r = sub.responses.length;
      const nackedAt = clock.now();
      sub.write(SubscribeRequest.fromPartial({ nackLeaseTokens: [first.leaseToken], nackDelay: dur(0.9) }));
      await sub.results('nackResults', r);
      await clock.advance(800);
      await sub.quiet(other.app.core);
      expect(sub.deliveries).toHaveLength(2);
      await clock.advance(200);
      await sub.deliveredAtLeast(3, 5000);
      onTime(leasedAt.get(early)![1], nackedAt + 900, 'nack delay');

      // Not acked: its 1 s lease runs out, the sweeper fails it, and the queue's 1 s retry delay runs.
      // The stream is stalled while it holds the expired delivery: a late (stale) ack frees it, as
      // the SDK sends once its handler ends.
      const third = sub.deliveries[2];
      const leaseEnd = new Date(third.leaseExpiresAt!).getTime();
      await clock.advance(leaseEnd + 300 - clock.now());
      sub.write(SubscribeRequest.fromPartial({ ackLeaseTokens: [third.leaseToken] }));
      await clock.advance(600);
      await sub.quiet(other.app.core);
      expect(sub.deliveries).toHaveLength(3);
      await clock.advance(1200);
      await sub.deliveredAtLeast(4, 5000);
      const redelivered = leasedAt.get(early)![2];
      expect(redelivered - leaseEnd, 'retry delay after expiry: not before lease end + retry delay').toBeGreaterThanOrEqual(1000);
      expect(redelivered - leaseEnd, 'retry delay after expiry: soon after (sweep interval + delay)').toBeLessThan(1000 + 200 + 50);
      expect(sub.deliveries[3].attempt).toBe(3);
    } finally {
      await other.stop();
    }
  });

  it('never has more deliveries outstanding than max_outstanding_messages, and delivers everything exactly once', async () => {
    const queue = await createQueue(undefined, true);
    const ids = await send(queue, 50);
    const sub = subscribe({ queue, flowControl: { maxOutstandingMessages: 5 }, visibilityTimeout: dur(30) });

    // Outstanding on the client: delivered and not yet confirmed acked by the server.
    const outstanding = new Set<string>();
    const acked = new Set<string>();
    const deliveredIds: string[] = [];
    let maxOutstanding = 0;
    const violations: string[] = [];
    sub.onResponse = r => {
      for (const t of r.ackResults?.succeeded ?? []) {
        outstanding.delete(t);
        acked.add(t);
      }
      for (const d of r.deliveries) {
        outstanding.add(d.leaseToken);
        deliveredIds.push(d.message!.id);
      }
      maxOutstanding = Math.max(maxOutstanding, outstanding.size);
      if (outstanding.size > 5) violations.push(`${outstanding.size} outstanding after ${deliveredIds.length} deliveries`);
    };

    // Ack slowly, one or two at a time, oldest first.
    const ackLoop = (async () => {
      const sentAcks = new Set<string>();
      while (acked.size < 50 && !sub.closed) {
        await sleep(25);
        const toAck = [...outstanding].filter(t => !sentAcks.has(t)).slice(0, 1 + (sentAcks.size % 2));
        for (const t of toAck) sentAcks.add(t);
        if (toAck.length > 0) sub.write(SubscribeRequest.fromPartial({ ackLeaseTokens: toAck }));
      }
    })();
    await sub.until(() => acked.size === 50, '50 acks', 30_000);
    await ackLoop;

    expect(violations).toEqual([]);
    // The window was actually used, not trickled one at a time.
    expect(maxOutstanding).toBe(5);
    expect(deliveredIds).toHaveLength(50);
    expect(new Set(deliveredIds)).toEqual(new Set(ids));
    // No ack failed.
    expect(sub.responses.flatMap(r => r.ackResults?.failed ?? [])).toEqual([]);

    // Nothing more arrives, and the queue is empty.
    await sub.quiet(srv.app.core);
    expect(sub.deliveries).toHaveLength(50);
    const st = await stats(queue);
    expect(Number(st.depth)).toBe(0);
    expect(Number(st.leased)).toBe(0);
    expect(Number(st.acked)).toBe(50);
  });

  it('raises the window on a later flow_control, and pauses when lowered to what is outstanding', async () => {
    const queue = await createQueue();
    await send(queue, 30);
    const sub = subscribe({ queue, flowControl: { maxOutstandingMessages: 3 }, visibilityTimeout: dur(30) });
    await sub.deliveredAtLeast(3);
    await sub.quiet(srv.app.core);
    expect(sub.deliveries).toHaveLength(3);

    // Raise the window: more deliveries, up to the new window.
    sub.write(SubscribeRequest.fromPartial({ flowControl: { maxOutstandingMessages: 8 } }));
    await sub.deliveredAtLeast(8);
    await sub.quiet(srv.app.core);
    expect(sub.deliveries).toHaveLength(8);

    // Lower it to 2 with 8 outstanding, then ack 5: 3 still outstanding, over the window: paused.
    sub.write(SubscribeRequest.fromPartial({ flowControl: { maxOutstandingMessages: 2 } }));
    const r1 = sub.responses.length;
    sub.write(SubscribeRequest.fromPartial({ ackLeaseTokens: sub.deliveries.slice(0, 5).map(d => d.leaseToken) }));
    expect((await sub.results('ackResults', r1)).succeeded).toHaveLength(5);
    await sub.quiet(srv.app.core);
    expect(sub.deliveries).toHaveLength(8);

    // Ack 2 more: 1 outstanding, under the window of 2: exactly one more arrives.
    const r2 = sub.responses.length;
    sub.write(SubscribeRequest.fromPartial({ ackLeaseTokens: sub.deliveries.slice(5, 7).map(d => d.leaseToken) }));
    expect((await sub.results('ackResults', r2)).succeeded).toHaveLength(2);
    await sub.deliveredAtLeast(9);
    await sub.quiet(srv.app.core);
    expect(sub.deliveries).toHaveLength(9);
    expect(new Set(sub.deliveries.map(d => d.message!.id)).size).toBe(9);
    expect(sub.closed).toBe(false);
  });

  it('limits outstanding payload bytes with max_outstanding_bytes', async () => {
    const queue = await createQueue();
    const messages = Array.from({ length: 8 }, () => ({ queue, payload: Buffer.alloc(1000, 7) }));
    await call(srv.clients.inbox, srv.clients.inbox.send, SendRequest.fromPartial({ messages }));
    // 2500 bytes of 1000-byte messages: two fit; a third may start while under the limit; never more.
    const sub = subscribe({ queue, flowControl: { maxOutstandingMessages: 100, maxOutstandingBytes: '2500' }, visibilityTimeout: dur(30) });
    await sub.deliveredAtLeast(2);
    await sub.quiet(srv.app.core);
    const held = sub.deliveries.length;
    expect(held).toBeGreaterThanOrEqual(2);
    expect(held).toBeLessThanOrEqual(3);

    // Ack two: room for two more, and no more than that.
    const r = sub.responses.length;
    sub.write(SubscribeRequest.fromPartial({ ackLeaseTokens: sub.deliveries.slice(0, 2).map(d => d.leaseToken) }));
    expect((await sub.results('ackResults', r)).succeeded).toHaveLength(2);
    await sub.deliveredAtLeast(held + 2);
    await sub.quiet(srv.app.core);
    expect(sub.deliveries).toHaveLength(held + 2);
  });

  it('delivers a message bigger than max_outstanding_bytes alone', async () => {
    const queue = await createQueue();
    const messages = Array.from({ length: 3 }, () => ({ queue, payload: Buffer.alloc(1000, 7) }));
    await call(srv.clients.inbox, srv.clients.inbox.send, SendRequest.fromPartial({ messages }));
    const sub = subscribe({ queue, flowControl: { maxOutstandingMessages: 100, maxOutstandingBytes: '10' }, visibilityTimeout: dur(30) });
    await sub.deliveredAtLeast(1);
    await sub.quiet(srv.app.core);
    expect(sub.deliveries).toHaveLength(1);
    const r = sub.responses.length;
    sub.write(SubscribeRequest.fromPartial({ ackLeaseTokens: [sub.deliveries[0].leaseToken] }));
    expect((await sub.results('ackResults', r)).succeeded).toHaveLength(1);
    await sub.deliveredAtLeast(2);
    await sub.quiet(srv.app.core);
    expect(sub.deliveries).toHaveLength(2);
  });

  it('acks in-band and reports each token: succeeded, stale (FAILED_PRECONDITION), malformed (INVALID_ARGUMENT)', async () => {
    const queue = await createQueue();
    const [id] = await send(queue, 1);

    // A token made stale: leased, then nacked, so its attempt is over.
    const staleQueue = await createQueue();
    const [staleId] = await send(staleQueue, 1);
    const leased = await leaseAll(staleQueue, 1, 5);
    expect(leased.deliveries.map(d => d.message!.id)).toEqual([staleId]);
    const staleToken = leased.deliveries[0].leaseToken;
    await call(srv.clients.inbox, srv.clients.inbox.nack, NackRequest.fromPartial({ leaseTokens: [staleToken] }));

    const sub = subscribe({ queue, flowControl: { maxOutstandingMessages: 10 }, visibilityTimeout: dur(30) });
    const [d] = await sub.deliveredAtLeast(1);
    expect(d.message!.id).toBe(id);

    const malformed = 'not-a-lease-token';
    const r = sub.responses.length;
    sub.write(SubscribeRequest.fromPartial({ ackLeaseTokens: [d.leaseToken, staleToken, malformed] }));
    const res = await sub.results('ackResults', r);
    expect(res.succeeded).toEqual([d.leaseToken]);
    const byToken = new Map(res.failed.map(f => [f.leaseToken, f]));
    expect(byToken.size).toBe(2);
    expect(byToken.get(staleToken)?.code).toBe(status.FAILED_PRECONDITION);
    expect(byToken.get(malformed)?.code).toBe(status.INVALID_ARGUMENT);
    expect(byToken.get(staleToken)?.message).not.toBe('');

    // The stream goes on after failed tokens, and the acked message is gone.
    expect(sub.closed).toBe(false);
    const st = await stats(queue);
    expect(Number(st.depth) + Number(st.leased)).toBe(0);
    // The stale one is still in its queue for another attempt, untouched by the failed ack.
    const again = await leaseAll(staleQueue, 1, 5);
    expect(again.deliveries.map(x => [x.message!.id, x.attempt])).toEqual([[staleId, 2]]);
  });

  it('nacks in-band: the message comes back on the stream as attempt 2', async () => {
    const queue = await createQueue();
    const [id] = await send(queue, 1);
    const sub = subscribe({ queue, flowControl: { maxOutstandingMessages: 10 }, visibilityTimeout: dur(30) });
    const [d] = await sub.deliveredAtLeast(1);
    expect(d.attempt).toBe(1);

    const r = sub.responses.length;
    sub.write(SubscribeRequest.fromPartial({ nackLeaseTokens: [d.leaseToken] }));
    const res = await sub.results('nackResults', r);
    expect(res.succeeded).toEqual([d.leaseToken]);
    expect(res.failed).toEqual([]);

    const all = await sub.deliveredAtLeast(2);
    expect(all[1].message!.id).toBe(id);
    expect(all[1].attempt).toBe(2);
    expect(all[1].leaseToken).not.toBe(d.leaseToken);

    // The first attempt's token no longer settles anything; the second's does.
    const r2 = sub.responses.length;
    sub.write(SubscribeRequest.fromPartial({ ackLeaseTokens: [d.leaseToken, all[1].leaseToken] }));
    const acks = await sub.results('ackResults', r2);
    expect(acks.succeeded).toEqual([all[1].leaseToken]);
    expect(acks.failed.map(f => [f.leaseToken, f.code])).toEqual([[d.leaseToken, status.FAILED_PRECONDITION]]);
  });

  it('nack_delay holds the message back before redelivery', async () => {
    const queue = await createQueue(timed.clients);
    await send(queue, 1, 'm', timed.clients);
    const sub = subscribe({ queue, flowControl: { maxOutstandingMessages: 10 }, visibilityTimeout: dur(30) }, timed.clients.inbox);
    const [d] = await sub.deliveredAtLeast(1);
    const r = sub.responses.length;
    sub.write(SubscribeRequest.fromPartial({ nackLeaseTokens: [d.leaseToken], nackDelay: dur(2) }));
    expect((await sub.results('nackResults', r)).succeeded).toEqual([d.leaseToken]);
    await clock.advance(1900);
    await sub.quiet(timed.app.core);
    expect(sub.deliveries).toHaveLength(1);
    expect(Number((await stats(queue, timed.clients)).delayed)).toBe(1);
    await clock.advance(200);
    const all = await sub.deliveredAtLeast(2, 5000);
    expect(all[1].message!.id).toBe(d.message!.id);
    expect(all[1].attempt).toBe(2);
  });

  it('extends a lease in-band: a 1s lease extended stays held past 1s', async () => {
    const queue = await createQueue(timed.clients);
    const [id] = await send(queue, 1, 'm', timed.clients);
    const sub = subscribe({ queue, flowControl: { maxOutstandingMessages: 10 }, visibilityTimeout: dur(1) }, timed.clients.inbox);
    const [d] = await sub.deliveredAtLeast(1);
    expect(d.leaseExpiresAt!.getTime() - clock.now()).toBeLessThanOrEqual(1000);

    const r = sub.responses.length;
    sub.write(SubscribeRequest.fromPartial({ extendLeaseTokens: [d.leaseToken], extendVisibilityTimeout: dur(20) }));
    const res = await sub.results('extendResults', r);
    expect(res.succeeded).toEqual([d.leaseToken]);
    expect(res.failed).toEqual([]);

    // Well past the original 1s (and many sweeps): not redelivered, not leasable, still leased.
    await clock.advance(10_000);
    await sub.quiet(timed.app.core);
    expect(sub.deliveries).toHaveLength(1);
    const other = await leaseAll(queue, 10, 0, 30, timed.clients);
    expect(other.deliveries).toEqual([]);
    expect(Number((await stats(queue, timed.clients)).leased)).toBe(1);

    // And the original token still acks it.
    const r2 = sub.responses.length;
    sub.write(SubscribeRequest.fromPartial({ ackLeaseTokens: [d.leaseToken] }));
    expect((await sub.results('ackResults', r2)).succeeded).toEqual([d.leaseToken]);
    expect(sub.deliveries.map(x => x.message!.id)).toEqual([id]);
  });

  it('extend without extend_visibility_timeout uses the subscription lease; stale tokens fail', async () => {
    const queue = await createQueue(timed.clients);
    await send(queue, 1, 'm', timed.clients);
    const sub = subscribe({ queue, flowControl: { maxOutstandingMessages: 10 }, visibilityTimeout: dur(2) }, timed.clients.inbox);
    const [d] = await sub.deliveredAtLeast(1);
    // Keep extending every 1.5 s for 9 s: the 2 s lease never runs out.
    for (let i = 0; i < 6; i++) {
      await clock.advance(1500);
      const r = sub.responses.length;
      sub.write(SubscribeRequest.fromPartial({ extendLeaseTokens: [d.leaseToken, 'bad token'] }));
      const res = await sub.results('extendResults', r);
      expect(res.succeeded).toEqual([d.leaseToken]);
      expect(res.failed.map(f => f.code)).toEqual([status.INVALID_ARGUMENT]);
    }
    // Far past the lease it was delivered with, and never let go.
    expect(clock.now() - d.leaseExpiresAt!.getTime()).toBeGreaterThan(5000);
    await sub.quiet(timed.app.core);
    expect(sub.deliveries).toHaveLength(1);
    const r = sub.responses.length;
    sub.write(SubscribeRequest.fromPartial({ ackLeaseTokens: [d.leaseToken] }));
    expect((await sub.results('ackResults', r)).succeeded).toEqual([d.leaseToken]);
  });

  it('releases unacked deliveries at once when the subscriber cancels its stream', async () => {
    const queue = await createQueue();
    const ids = await send(queue, 3);
    const sub = subscribe({ queue, flowControl: { maxOutstandingMessages: 10 }, visibilityTimeout: dur(30) });
    await sub.deliveredAtLeast(3);
    expect(Number((await stats(queue)).leased)).toBe(3);
    sub.cancel();

    // Leasable again long before their 30s leases would have run out.
    const got = new Map<string, number>();
    const deadline = Date.now() + 10_000;
    while (got.size < 3 && Date.now() < deadline) {
      const res = await leaseAll(queue, 10, 2);
      for (const d of res.deliveries) got.set(d.message!.id, d.attempt);
    }
    expect([...got.keys()].sort()).toEqual([...ids].sort());
    expect([...got.values()]).toEqual([2, 2, 2]);
  });

  it('releases unacked deliveries to another subscriber when the stream is ended by the client', async () => {
    const { ids, a, b } = await aHoldsFourBWaits();
    expect(b.deliveries).toHaveLength(0);

    a.stream.end();
    const st = await a.until(() => a.final, 'a to end');
    expect(st.code).toBe(status.OK);

    await b.deliveredAtLeast(4, 10_000);
    expect(b.deliveries.map(d => d.message!.id).sort()).toEqual([...ids].sort());
    expect(b.deliveries.map(d => d.attempt)).toEqual([2, 2, 2, 2]);
  });

  it('a stream that ends while a fetch for it runs gets none of it: its share goes to the other subscriber, no attempt spent', async () => {
    const { queue, ids, a, b } = await aHoldsFourBWaits();

    // A round counts both streams' credit and fetches for them; the fetch is held until a has
    // ended and released what it held, so it leases those four again.
    const store = srv.app.core.store;
    const lease = store.lease;
    const hold = holdCalls(lease.bind(store), q => q === queue);
    store.lease = hold.fn;
    const released: number[] = [];
    const off = srv.app.core.events.on('settled', e => {
      if (e.queue === queue && e.outcome === 'released') released.push(e.count);
    });
    try {
      srv.app.core.dispatcher.pump(queue);
      await waitFor(() => hold.held, 10_000, 'the round to fetch');
      a.stream.end();
      await a.until(() => a.final, 'a to end');
      expect(released).toEqual([4]);
      hold.release();
      const got = await b.deliveredAtLeast(4);
      await b.quiet(srv.app.core);
      expect(got.map(d => d.message!.id).sort()).toEqual([...ids].sort());
      expect(got.map(d => d.attempt)).toEqual([2, 2, 2, 2]);
      // Nothing dealt to the ended stream and put back again.
      expect(released).toEqual([4]);
    } finally {
      store.lease = lease;
      off();
      hold.release();
    }
  });

  it('shares one queue between two subscribers with no message delivered to both', async () => {
    const queue = await createQueue(undefined, true);
    const a = subscribe({ queue, flowControl: { maxOutstandingMessages: 15 }, visibilityTimeout: dur(30) });
    const b = subscribe({ queue, flowControl: { maxOutstandingMessages: 15 }, visibilityTimeout: dur(30) });
    // Both streams are open (a round trip on each) before the messages come.
    await Promise.all([a.probe(), b.probe()]);
    const ids = await send(queue, 20);
    // until() re-checks on its own stream's events only: wait on the two streams together.
    await waitFor(() => a.deliveries.length + b.deliveries.length >= 20, 10_000, '20 deliveries across both');
    await a.quiet(srv.app.core);
    await b.probe();

    const aIds = a.deliveries.map(d => d.message!.id);
    const bIds = b.deliveries.map(d => d.message!.id);
    // Each holds at most its window, so each got some.
    expect(aIds.length).toBeLessThanOrEqual(15);
    expect(bIds.length).toBeLessThanOrEqual(15);
    expect(aIds.length + bIds.length).toBe(20);
    expect(aIds.filter(x => bIds.includes(x))).toEqual([]);
    expect(new Set([...aIds, ...bIds])).toEqual(new Set(ids));

    // After both ack everything, nothing else arrives.
    const ra = a.responses.length;
    const rb = b.responses.length;
    a.write(SubscribeRequest.fromPartial({ ackLeaseTokens: a.deliveries.map(d => d.leaseToken) }));
    b.write(SubscribeRequest.fromPartial({ ackLeaseTokens: b.deliveries.map(d => d.leaseToken) }));
    expect((await a.results('ackResults', ra)).succeeded).toHaveLength(aIds.length);
    expect((await b.results('ackResults', rb)).succeeded).toHaveLength(bIds.length);
    await a.quiet(srv.app.core);
    await b.probe();
    expect(a.deliveries.length + b.deliveries.length).toBe(20);
    expect(Number((await stats(queue)).acked)).toBe(20);
  });

  it('fails the stream with NOT_FOUND when the queue does not exist', async () => {
    const sub = subscribe({ queue: `missing-${randomUUID().slice(0, 8)}` });
    const err = await sub.failure();
    expect(err.code).toBe(status.NOT_FOUND);
  });

  it.each([
    ['an empty queue name', { queue: '' }],
    ['a bad queue name', { queue: '-not a queue!' }],
    ['a negative window', { flowControl: { maxOutstandingMessages: -1 } }],
    ['a window over 10000', { flowControl: { maxOutstandingMessages: 10_001 } }],
    ['negative max bytes', { flowControl: { maxOutstandingMessages: 5, maxOutstandingBytes: '-1' } }],
    ['a visibility timeout over 12h', { visibilityTimeout: dur(13 * 3600) }],
  ])('fails the stream with INVALID_ARGUMENT for %s in the first request', async (_what, req) => {
    const queue = await createQueue();
    const sub = subscribe({ queue, ...req });
    const err = await sub.failure();
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(err.details).not.toBe('');
  });

  it('fails the stream with INVALID_ARGUMENT on a bad later flow_control, releasing what it held', async () => {
    const queue = await createQueue();
    const ids = await send(queue, 2);
    const sub = subscribe({ queue, flowControl: { maxOutstandingMessages: 5 }, visibilityTimeout: dur(30) });
    await sub.deliveredAtLeast(2);
    sub.write(SubscribeRequest.fromPartial({ flowControl: { maxOutstandingMessages: 20_000 } }));
    const err = await sub.failure();
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    const res = await leaseAll(queue, 10, 5);
    expect(res.deliveries.map(d => d.message!.id).sort()).toEqual([...ids].sort());
  });

  it('a lease that expires unacked is redelivered once the stream settles what it held (a stale ack frees the slot)', async () => {
    const queue = await createQueue(timed.clients);
    const [id] = await send(queue, 1, 'm', timed.clients);
    // A window of one: while the expired delivery is held, the stream is stalled.
    const sub = subscribe({ queue, flowControl: { maxOutstandingMessages: 1 }, visibilityTimeout: dur(1) }, timed.clients.inbox);
    const [d1] = await sub.deliveredAtLeast(1);
    expect(d1.attempt).toBe(1);
    // Past the lease and the sweep that returns the message: it is ready, and not pushed to the stalled stream.
    await clock.advance(2500);
    await sub.quiet(timed.app.core);
    expect(sub.deliveries).toHaveLength(1);
    expect(Number((await stats(queue, timed.clients)).ready)).toBe(1);

    // The expired token is stale, and acking it gives the slot back: the message comes again.
    const r = sub.responses.length;
    sub.write(SubscribeRequest.fromPartial({ ackLeaseTokens: [d1.leaseToken] }));
    const res = await sub.results('ackResults', r);
    expect(res.failed.map(f => [f.leaseToken, f.code])).toEqual([[d1.leaseToken, status.FAILED_PRECONDITION]]);
    const all = await sub.deliveredAtLeast(2, 15_000);
    const d2 = all[1];
    expect(d2.message!.id).toBe(id);
    expect(d2.attempt).toBe(2);
    expect(d2.leaseToken).not.toBe(d1.leaseToken);
    const r2 = sub.responses.length;
    sub.write(SubscribeRequest.fromPartial({ ackLeaseTokens: [d2.leaseToken] }));
    expect((await sub.results('ackResults', r2)).succeeded).toEqual([d2.leaseToken]);

    // With the window free again, a new message is pushed.
    const [next] = await send(queue, 1, 'm', timed.clients);
    const after = await sub.deliveredAtLeast(3);
    expect(after[2].message!.id).toBe(next);
    expect(after[2].attempt).toBe(1);
  });

  describe('delivery tags (delivery_tags on the first request)', () => {
    const tagged = (queue: string, max = 10, lease = 30, c = srv.clients) =>
      subscribe({ queue, deliveryTags: true, flowControl: { maxOutstandingMessages: max }, visibilityTimeout: dur(lease) }, c.inbox);

    it('names deliveries 1, 2, 3 on the stream, with no token; ack_tags settle them, answered by tag', async () => {
      const queue = await createQueue();
      const ids = await send(queue, 3);
      const sub = tagged(queue);
      const ds = await sub.deliveredAtLeast(3);
      expect(ds.map(d => [d.deliveryTag, d.leaseToken])).toEqual([
        [1, ''],
        [2, ''],
        [3, ''],
      ]);
      expect(ds.map(d => d.message!.id).sort()).toEqual([...ids].sort());

      const r = sub.responses.length;
      sub.write(SubscribeRequest.fromPartial({ ackTags: [1, 2, 99] }));
      const res = await sub.results('ackResults', r);
      expect(res.succeededTags).toEqual([1, 2]);
      expect(res.succeeded).toEqual([]);
      expect(res.failed.map(f => [f.deliveryTag, f.leaseToken, f.code])).toEqual([[99, '', status.FAILED_PRECONDITION]]);
      expect(res.failed[0].message).toMatch(/not held by this stream/);
      const st = await stats(queue);
      expect([Number(st.depth), Number(st.leased)]).toEqual([0, 1]);

      // A tag settled is a tag no longer held: acked again, it settles nothing.
      const r2 = sub.responses.length;
      sub.write(SubscribeRequest.fromPartial({ ackTags: [1] }));
      expect((await sub.results('ackResults', r2)).failed.map(f => [f.deliveryTag, f.code])).toEqual([[1, status.FAILED_PRECONDITION]]);
      expect(sub.closed).toBe(false);
    });

    it('nack_tags return a message (attempt 2, under a new tag); extend_tags keep a 1s lease past 1s', async () => {
      const queue = await createQueue(timed.clients);
      const [id] = await send(queue, 1, 'm', timed.clients);
      const sub = tagged(queue, 10, 1, timed.clients);
      const [d] = await sub.deliveredAtLeast(1);
      const r = sub.responses.length;
      sub.write(SubscribeRequest.fromPartial({ nackTags: [d.deliveryTag] }));
      expect((await sub.results('nackResults', r)).succeededTags).toEqual([1]);
      const all = await sub.deliveredAtLeast(2);
      expect(all.map(x => [x.message!.id, x.attempt, x.deliveryTag])).toEqual([
        [id, 1, 1],
        [id, 2, 2],
      ]);

      const r2 = sub.responses.length;
      sub.write(SubscribeRequest.fromPartial({ extendTags: [2], extendVisibilityTimeout: dur(20) }));
      const ext = await sub.results('extendResults', r2);
      expect([ext.succeededTags, ext.failed]).toEqual([[2], []]);
      await clock.advance(10_000);
      await sub.quiet(timed.app.core);
      expect(sub.deliveries).toHaveLength(2);
      expect(Number((await stats(queue, timed.clients)).leased)).toBe(1);
      const r3 = sub.responses.length;
      sub.write(SubscribeRequest.fromPartial({ ackTags: [2] }));
      expect((await sub.results('ackResults', r3)).succeededTags).toEqual([2]);
    });

    it('a message asking for a reply comes with its lease token too; either settles it', async () => {
      const queue = await createQueue();
      await call(
        srv.clients.inbox,
        srv.clients.inbox.send,
        SendRequest.fromPartial({
          messages: [
            { queue, payload: Buffer.from('q'), replyTo: 'reply.x' },
            { queue, payload: Buffer.from('plain') },
          ],
        }),
      );
      const sub = tagged(queue);
      const ds = await sub.deliveredAtLeast(2);
      const byText = new Map(ds.map(d => [Buffer.from(d.message!.payload).toString(), d]));
      expect(byText.get('q')!.leaseToken).not.toBe('');
      expect(byText.get('plain')!.leaseToken).toBe('');
      expect([byText.get('q')!.deliveryTag, byText.get('plain')!.deliveryTag].sort()).toEqual([1, 2]);
      const r = sub.responses.length;
      sub.write(SubscribeRequest.fromPartial({ ackTags: [byText.get('q')!.deliveryTag, byText.get('plain')!.deliveryTag] }));
      expect((await sub.results('ackResults', r)).succeededTags).toHaveLength(2);
      const st = await stats(queue);
      expect(Number(st.depth) + Number(st.leased)).toBe(0);
    });

    it('a tag names a delivery on its own stream only; a stream that ends releases what it held by tag', async () => {
      const queue = await createQueue();
      const ids = await send(queue, 4);
      const a = tagged(queue);
      await a.deliveredAtLeast(4);
      const b = tagged(queue);
      await b.quiet(srv.app.core);
      expect(b.deliveries).toHaveLength(0);

      // b holds nothing: a's tag 1 is nothing on b.
      const r = b.responses.length;
      b.write(SubscribeRequest.fromPartial({ ackTags: [1], nackTags: [2] }));
      expect((await b.results('ackResults', r)).failed.map(f => [f.deliveryTag, f.code])).toEqual([[1, status.FAILED_PRECONDITION]]);
      expect((await b.results('nackResults', r)).failed.map(f => [f.deliveryTag, f.code])).toEqual([[2, status.FAILED_PRECONDITION]]);
      expect(Number((await stats(queue)).leased)).toBe(4);

      a.stream.end();
      await b.deliveredAtLeast(4);
      expect(b.deliveries.map(d => d.message!.id).sort()).toEqual([...ids].sort());
      expect(b.deliveries.map(d => [d.attempt, d.deliveryTag])).toEqual([
        [2, 1],
        [2, 2],
        [2, 3],
        [2, 4],
      ]);
    });

    it('a request settles at most 10,000 tags (or tokens) a list: more fails the stream with INVALID_ARGUMENT, before any result is built', async () => {
      const queue = await createQueue();
      await send(queue, 1);
      const sub = tagged(queue);
      await sub.deliveredAtLeast(1);
      // As many as a stream can hold: answered, each.
      const r = sub.responses.length;
      sub.write(SubscribeRequest.fromPartial({ extendTags: Array.from({ length: 10_000 }, (_, i) => i + 2) }));
      expect((await sub.results('extendResults', r)).failed).toHaveLength(10_000);
      // 300,000 (1.5 MB of request): refused whole. Answered one by one, the results would be ~27 MB.
      sub.write(SubscribeRequest.fromPartial({ ackTags: Array.from({ length: 300_000 }, (_, i) => i + 1) }));
      const err = await sub.failure();
      expect(err.code).toBe(status.INVALID_ARGUMENT);
      expect(err.details).toMatch(/ack_tags has 300000 entries: at most 10000 in one request/);
      // Nothing was settled: the stream's end released the delivery.
      await waitFor(async () => Number((await stats(queue)).depth) === 1, 5000, 'the delivery released');
    });

    it('tags on a stream opened without delivery_tags answer INVALID_ARGUMENT; delivery_tags on a later request fails the stream', async () => {
      const queue = await createQueue();
      await send(queue, 1);
      const sub = subscribe({ queue, flowControl: { maxOutstandingMessages: 10 }, visibilityTimeout: dur(30) });
      const [d] = await sub.deliveredAtLeast(1);
      expect([d.deliveryTag, d.leaseToken === '']).toEqual([0, false]);
      const r = sub.responses.length;
      sub.write(SubscribeRequest.fromPartial({ ackTags: [1] }));
      const res = await sub.results('ackResults', r);
      expect(res.failed.map(f => [f.deliveryTag, f.code])).toEqual([[1, status.INVALID_ARGUMENT]]);
      expect(res.failed[0].message).toMatch(/set delivery_tags on its first request/);
      expect(Number((await stats(queue)).leased)).toBe(1);

      sub.write(SubscribeRequest.fromPartial({ deliveryTags: true }));
      const err = await sub.failure();
      expect(err.code).toBe(status.INVALID_ARGUMENT);
      expect(err.details).toMatch(/delivery_tags is set only on the first request/);
    });
  });

  describe('the direct hand-off: a send to a drained queue a subscriber waits on', () => {
    /**
     * Counts the fetches (inboxd_lease) of `queue` the server runs while `fn` does. Of that queue
     * only: the server is shared with the tests before, whose streams may still fetch (a delayed
     * message of theirs coming due, a lease of theirs running out).
     */
    const fetchesDuring = async (queue: string, fn: () => Promise<void>): Promise<number> => {
      const store = srv.app.core.store;
      const lease = store.lease;
      let n = 0;
      store.lease = (...args) => {
        if (args[0] === queue) n++;
        return lease.apply(store, args);
      };
      try {
        await fn();
      } finally {
        store.lease = lease;
      }
      return n;
    };

    it('is stored leased and pushed without a fetch: within the window, highest priority first; the rest waits for credit', async () => {
      const queue = await createQueue();
      const sub = subscribe({ queue, flowControl: { maxOutstandingMessages: 2 }, visibilityTimeout: dur(30) });
      await sub.quiet(srv.app.core);
      const priorities = [0, 0, 5, 0, 0];
      let ids: string[] = [];
      const fetches = await fetchesDuring(queue, async () => {
        const messages = priorities.map((priority, i) => ({ queue, priority, payload: Buffer.from(`h-${i}`) }));
        ids = (await call(srv.clients.inbox, srv.clients.inbox.send, SendRequest.fromPartial({ messages }))).results.map(r => r.id);
        await sub.deliveredAtLeast(2);
        await sub.quiet(srv.app.core);
      });
      // Stored leased by the insert: no fetch ran, for these two or for the three left waiting (no credit).
      expect(fetches).toBe(0);
      const payloads = () => sub.deliveries.map(d => Buffer.from(d.message!.payload).toString());
      expect(payloads()).toEqual(['h-2', 'h-0']);
      for (const d of sub.deliveries) {
        expect(d.attempt).toBe(1);
        const left = d.leaseExpiresAt!.getTime() - Date.now();
        expect(left).toBeGreaterThan(20_000);
        expect(left).toBeLessThanOrEqual(31_000);
      }
      expect(await stats(queue)).toMatchObject({ depth: '3', leased: '2' });

      // Their tokens are leases like any: acked, the slots go to the messages waiting, in order.
      const from = sub.responses.length;
      sub.write(SubscribeRequest.fromPartial({ ackLeaseTokens: sub.deliveries.map(d => d.leaseToken) }));
      expect((await sub.results('ackResults', from)).failed).toEqual([]);
      await sub.deliveredAtLeast(4);
      sub.write(SubscribeRequest.fromPartial({ ackLeaseTokens: sub.deliveries.slice(2).map(d => d.leaseToken) }));
      await sub.deliveredAtLeast(5);
      await sub.quiet(srv.app.core);
      // Stored by one insert, the three share their age: any order among them.
      expect(payloads().slice(0, 2)).toEqual(['h-2', 'h-0']);
      expect(payloads().slice(2).sort()).toEqual(['h-1', 'h-3', 'h-4']);
      expect(new Set(sub.deliveries.map(d => d.message!.id))).toEqual(new Set(ids));
    });

    it('to a stream that ended while the insert ran: the message goes back to the queue, for the next subscriber', async () => {
      const queue = await createQueue();
      const a = subscribe({ queue, flowControl: { maxOutstandingMessages: 5 }, visibilityTimeout: dur(30) });
      await a.quiet(srv.app.core);
      // Hold the insert that stores leased until the stream is gone.
      const store = srv.app.core.store as unknown as { exec: (q: { text: string; values?: unknown[] }) => Promise<unknown> };
      const exec = store.exec;
      const hold = holdCalls(exec.bind(store), q => q.text.includes('inboxd_insert') && ((q.values?.[5] ?? []) as boolean[]).some(Boolean));
      store.exec = hold.fn;
      try {
        const sent = send(queue, 1, 'gone');
        await waitFor(() => hold.held, 10_000, 'the insert to be offered to the subscriber');
        a.cancel();
        const queues = (srv.app.core.dispatcher as unknown as { queues: Map<string, unknown> }).queues;
        await waitFor(() => !queues.has(queue), 10_000, 'the server to see the stream end');
        hold.release();
        const [id] = await sent;
        // Back in the queue at once (not at its 30 s lease's end), as attempt 2.
        const b = subscribe({ queue, flowControl: { maxOutstandingMessages: 5 }, visibilityTimeout: dur(30) });
        const [d] = await b.deliveredAtLeast(1);
        expect(d!.message!.id).toBe(id);
        expect(d!.attempt).toBe(2);
        expect(a.deliveries).toHaveLength(0);
      } finally {
        store.exec = exec;
        hold.release();
      }
    });
  });
});
