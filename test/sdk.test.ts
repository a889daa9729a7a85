import { randomUUID } from 'node:crypto';
import { Code, createClient, type Handler, type InboxdClient, InboxdError, type ReceivedMessage, type Subscriber, type SubscriberOptions } from '@inboxd/sdk';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { PooledChannel } from '../sdk/channel-pool.js';
import { dispatcherIdle, serverWaits } from './support/clock.js';
import { migratedDatabase, sleep, startServer, waitFor } from './support/harness.js';
import { connectionsTo } from './support/net.js';

/** Streaming calls the server has open now (its inboxd_open_streams gauge). */
async function openStreams(srv: { app: { metrics: { openStreams: { get(): Promise<{ values: { value: number }[] }> } } } }): Promise<number> {
  return (await srv.app.metrics.openStreams.get()).values.reduce((sum, v) => sum + v.value, 0);
}

import { rejection } from './support/expect.js';

type Server = Awaited<ReturnType<typeof startServer>>;

let n = 0;
const queueName = (prefix: string) => `${prefix}-${++n}-${randomUUID().slice(0, 6)}`;

/** A promise handlers wait on (`hold`) until the test lets them go (`release`). */
function gate(): { hold: Promise<void>; release: () => void } {
  let release!: () => void;
  const hold = new Promise<void>(r => (release = r));
  return { hold, release };
}
/** For the tests that count acked messages (stats.acked): kept as history, not deleted by the ack (the default). */
const KEEP_ACKED = { ackedRetention: '1h' } as const;

/**
 * Counts the calls of one method (unary attempts actually started, or streams opened) over every
 * channel of a client's pool; `onCall` sees what each call returned (its call or stream).
 */
function countAttempts(client: InboxdClient, service: 'inbox' | 'queues', method: string, onCall?: (call: unknown) => void): { count: number } {
  const counter = { count: 0 };
  for (const c of client.pool.channels as PooledChannel[]) {
    const svc = c[service] as unknown as Record<string, (...a: unknown[]) => unknown>;
    const orig = svc[method];
    svc[method] = function (this: unknown, ...args: unknown[]) {
      counter.count++;
      const call = orig.apply(this, args);
      onCall?.(call);
      return call;
    };
  }
  return counter;
}

/**
 * Counts the batches a client's publishers send: unary Sends (`sends`), SendStreams opened
 * (`streams`) and batches written on them (`streamed`). `attempts`: every batch sent, either way.
 */
function countBatches(client: InboxdClient): { readonly sends: number; readonly streams: number; readonly streamed: number; readonly attempts: number } {
  let streamed = 0;
  const sends = countAttempts(client, 'inbox', 'send');
  const streams = countAttempts(client, 'inbox', 'sendStream', call => {
    const stream = call as { write: (...a: unknown[]) => boolean };
    const write = stream.write;
    stream.write = (...a: unknown[]) => {
      streamed++;
      return write.apply(stream, a);
    };
  });
  return {
    get sends() {
      return sends.count;
    },
    get streams() {
      return streams.count;
    },
    get streamed() {
      return streamed;
    },
    get attempts() {
      return sends.count + streamed;
    },
  };
}

describe('sdk against an in-process server', () => {
  let db: string;
  let srv: Server;
  let client: InboxdClient;
  const extra: InboxdClient[] = [];
  const subs: Subscriber[] = [];
  const newClient = (o: Parameters<typeof createClient>[0]) => {
    const c = createClient(o);
    extra.push(c);
    return c;
  };

  beforeAll(async () => {
    db = await migratedDatabase();
    srv = await startServer(db);
    client = createClient({ address: srv.app.address, poolSize: 2 });
  });
  const cleanup = async () => {
    await Promise.all(subs.splice(0).map(s => s.close({ behavior: 'nack', timeout: 2000 }).catch(() => {})));
    await Promise.all(extra.splice(0).map(c => c.close({ timeout: 2000 }).catch(() => {})));
  };
  afterEach(cleanup);
  afterAll(async () => {
    await client?.close({ timeout: 2000 });
    await srv?.stop();
  });

  function subscribe(c: InboxdClient, queue: string, a?: Handler | Partial<SubscriberOptions>, b?: Partial<SubscriberOptions>): Subscriber {
    const s = typeof a === 'function' ? c.subscribe(queue, a, b) : c.subscribe(queue, a);
    subs.push(s);
    return s;
  }

  const sendMany = async (queue: string, count: number, c = client) => Promise.all(Array.from({ length: count }, (_, i) => c.send(queue, `m${i}`)));

  /**
   * Leases (and acks) what the queue holds: waiting (up to 5 s each time) until `expect` messages
   * came, then whatever else is ready, until a lease finds nothing.
   */
  const leaseAll = async (queue: string, expect: number): Promise<ReceivedMessage[]> => {
    const out: ReceivedMessage[] = [];
    for (;;) {
      const waiting = out.length < expect;
      const got = await client.lease(queue, { max: 1000, visibilityTimeout: '60s', wait: waiting ? '5s' : 0 });
      // Nothing in 5 s while short of `expect`, or nothing ready past it: that is all.
      if (got.length === 0) return out;
      out.push(...got);
      await client.ack(got);
    }
  };

  describe('channel pool', () => {
    // Each test has a server of its own (on the same database): its only clients are the test's.
    let own: Server | undefined;
    afterEach(async () => {
      await cleanup();
      await own?.stop();
      own = undefined;
    });

    it('puts streams on the least loaded channel, each channel its own connection', async () => {
      own = await startServer(db);
      const c = newClient({ address: own.app.address, poolSize: 3 });
      const queue = queueName('pool-streams');
      await c.queues.create(queue);
      expect(c.pool.channels).toHaveLength(3);
      const s1 = [0, 1, 2].map(() => subscribe(c, queue, () => {}));
      expect(c.pool.channels.map(ch => ch.streams)).toEqual([1, 1, 1]);
      const s2 = [0, 1, 2].map(() => subscribe(c, queue, () => {}));
      expect(c.pool.channels.map(ch => ch.streams)).toEqual([2, 2, 2]);
      // Streams on three channels ride three TCP connections (the server is in this process: only
      // sockets whose remote port is the server's are the client's). Once all six are open, every
      // connection they use is there.
      await waitFor(async () => (await openStreams(own!)) === 6, 10_000, 'six streams open on the server');
      expect(connectionsTo(own.app.port)).toBe(3);
      await Promise.all([...s1, ...s2].map(s => s.close()));
      expect(c.pool.channels.map(ch => ch.streams)).toEqual([0, 0, 0]);
    });

    it('poolSize 1 carries every call and stream on one connection', async () => {
      own = await startServer(db);
      const c = newClient({ address: own.app.address, poolSize: 1 });
      const queue = queueName('pool-one');
      await c.queues.create(queue);
      for (let i = 0; i < 4; i++) await c.queues.stats(queue);
      [0, 1, 2].map(() => subscribe(c, queue, () => {}));
      expect(c.pool.channels.map(ch => ch.streams)).toEqual([3]);
      await waitFor(async () => (await openStreams(own!)) === 3, 10_000, 'three streams open on the server');
      expect(connectionsTo(own.app.port)).toBe(1);
    });
  });

  describe('errors and retries', () => {
    it('NOT_FOUND and INVALID_ARGUMENT reject at once with InboxdError, after a single attempt', async () => {
      // A retry would first sleep at least half the initial backoff (5s): a quick answer was one attempt.
      const c = newClient({ address: srv.app.address, poolSize: 2, retry: { initialBackoff: '10s', maxBackoff: '10s' } });
      const leases = countAttempts(c, 'inbox', 'lease');
      const gets = countAttempts(c, 'queues', 'getQueue');
      const creates = countAttempts(c, 'queues', 'createQueue');
      const sends = countBatches(c);

      let t0 = Date.now();
      const missing = await rejection(c.lease(queueName('missing')));
      expect(missing.code).toBe(Code.NOT_FOUND);
      expect(missing.details).toContain('not found');
      expect(Date.now() - t0).toBeLessThan(4000);
      expect(leases.count).toBe(1);

      t0 = Date.now();
      const gone = await rejection(c.queues.get(queueName('missing')));
      expect(gone.code).toBe(Code.NOT_FOUND);
      expect(gets.count).toBe(1);

      const bad = await rejection(c.queues.create('bad name!'));
      expect(bad.code).toBe(Code.INVALID_ARGUMENT);
      expect(bad.details).toContain('not a valid queue name');
      expect(creates.count).toBe(1);

      const badSend = await rejection(c.send('no spaces allowed', 'x'));
      expect(badSend.code).toBe(Code.INVALID_ARGUMENT);
      expect(sends.attempts).toBe(1);

      const noQueue = await rejection(c.send(queueName('missing'), 'x'));
      expect(noQueue.code).toBe(Code.NOT_FOUND);
      expect(sends.attempts).toBe(2);
      // Answered on the publisher's stream: final there, not sent again as a Send.
      expect(sends).toMatchObject({ streamed: 2, sends: 0 });
      expect(Date.now() - t0).toBeLessThan(4000);
    });

    it('retries UNAVAILABLE (the control: the same counting sees every attempt)', async () => {
      // Nothing listens on this port: every attempt fails UNAVAILABLE and is retried up to maxAttempts.
      const net = await import('node:net');
      const port = await new Promise<number>(resolve => {
        const s = net.createServer().listen(0, '127.0.0.1', () => {
          const p = (s.address() as import('node:net').AddressInfo).port;
          s.close(() => resolve(p));
        });
      });
      const c = newClient({ address: `127.0.0.1:${port}`, poolSize: 2, retry: { initialBackoff: 20, maxBackoff: 50, maxAttempts: 4 } });
      const gets = countAttempts(c, 'queues', 'getQueue');
      const err = await rejection(c.queues.get('anything'));
      expect(err.code).toBe(Code.UNAVAILABLE);
      expect(gets.count).toBe(4);
    });

    it('aborting a long-poll lease rejects at once with CANCELLED, and the server stops leasing for it', async () => {
      const queue = queueName('abort');
      await client.queues.create(queue);
      const ac = new AbortController();
      const t0 = Date.now();
      const waits = serverWaits(srv.app.core, queue);
      const pending = client.lease(queue, { wait: '30s', signal: ac.signal });
      const { left } = await waits;
      ac.abort();
      const err = await rejection(pending);
      expect(err.code).toBe(Code.CANCELLED);
      expect(Date.now() - t0).toBeLessThan(5000);

      // The abandoned long poll does not take the next message: it is there to lease, first attempt.
      // (The server stopped waiting: the cancel reached it.)
      await left;
      const id = await client.send(queue, 'after abort');
      const got = await client.lease(queue, { wait: '5s' });
      expect(got.map(m => [m.id, m.attempt])).toEqual([[id, 1]]);
      await got[0].ack();

      // An already aborted signal: no attempt at all.
      const leases = countAttempts(client, 'inbox', 'lease');
      const err2 = await rejection(client.lease(queue, { wait: '30s', signal: AbortSignal.abort() }));
      expect(err2.code).toBe(Code.CANCELLED);
      expect(leases.count).toBe(0);
    });
  });

  describe('publisher', () => {
    it('batches 1000 sends into few batches, on one SendStream; each resolves with its own id, each stored once', async () => {
      const queue = queueName('batch');
      await client.queues.create(queue);
      const c = newClient({ address: srv.app.address });
      const sends = countBatches(c);
      const ids = await Promise.all(Array.from({ length: 1000 }, (_, i) => c.send(queue, `m${i}`)));
      expect(new Set(ids).size).toBe(1000);
      for (const id of ids) expect(id).toMatch(/^[0-9a-f-]{36}$/);
      expect(sends.attempts).toBeGreaterThan(0);
      expect(sends.attempts).toBeLessThanOrEqual(20);
      expect(sends).toMatchObject({ streams: 1, sends: 0 });
      expect(await client.queues.stats(queue)).toMatchObject({ depth: 1000, leased: 0 });
      const got = await leaseAll(queue, 1000);
      expect(got).toHaveLength(1000);
      expect(new Set(got.map(m => m.id))).toEqual(new Set(ids));
      // Payloads arrive with their ids: message i carries `m${i}`.
      const byId = new Map(got.map(m => [m.id, m.text()]));
      ids.forEach((id, i) => expect(byId.get(id)).toBe(`m${i}`));
    });

    it('a SendStream refused (no stream to be had on the server) sends its batch as a Send, and the next ones too for a while', async () => {
      // One stream on the whole server, held by a subscriber: the publisher's stream is refused.
      const one = await startServer(db, { maxStreams: 1 });
      try {
        const c = newClient({ address: one.app.address });
        const queue = queueName('stream-refused');
        await c.queues.create(queue);
        const got: string[] = [];
        subscribe(c, queue, m => void got.push(m.id));
        await waitFor(async () => (await openStreams(one)) === 1, 10_000, 'the subscriber open');
        const batches = countBatches(c);
        const first = await c.send(queue, 'a');
        expect(batches).toMatchObject({ streams: 1, streamed: 1, sends: 1 });
        const second = await c.send(queue, 'b');
        // Not tried again at once: a Send straight away.
        expect(batches).toMatchObject({ streams: 1, streamed: 1, sends: 2 });
        await waitFor(() => got.length === 2, 10_000, 'both delivered');
        expect(got.sort()).toEqual([first, second].sort());
      } finally {
        await one.stop();
      }
    });

    it('a batch its stream does not answer within the attempt timeout goes again as a Send: it resolves, stored once', async () => {
      const own = await startServer(db);
      try {
        const queue = queueName('stream-slow');
        const c = newClient({ address: own.app.address, retry: { attemptTimeout: '300ms' } });
        await c.queues.create(queue);
        // The first store (the stream's batch) is held past the client's attempt timeout.
        const core = own.app.core;
        const store = core.send;
        let release!: () => void;
        const held = new Promise<void>(r => (release = r));
        let calls = 0;
        core.send = async (...args) => {
          if (calls++ === 0) await held;
          return store.apply(core, args);
        };
        const batches = countBatches(c);
        const id = await c.send(queue, 'slow');
        expect(batches).toMatchObject({ streamed: 1, sends: 1 });
        release();
        await waitFor(() => calls === 2, 5000, 'both stores');
        await sleep(200);
        core.send = store;
        // The same id both ways: stored once.
        expect(await c.queues.stats(queue)).toMatchObject({ depth: 1 });
        expect((await c.lease(queue, { max: 10, visibilityTimeout: '60s' })).map(m => m.id)).toEqual([id]);
      } finally {
        await own.stop();
      }
    });

    it('flush() sends what waits for a batch and resolves once it is stored', async () => {
      const queue = queueName('flush');
      await client.queues.create(queue);
      const pub = client.publisher({ maxDelay: '1m', linger: true, maxMessages: 1000 });
      let resolved = 0;
      const sends = [0, 1, 2].map(i => pub.send(queue, `f${i}`).then(id => (resolved++, id)));
      await sleep(100);
      expect(resolved).toBe(0);
      expect((await client.queues.stats(queue)).depth).toBe(0);
      await pub.flush();
      expect((await client.queues.stats(queue)).depth).toBe(3);
      expect(new Set(await Promise.all(sends)).size).toBe(3);
      await pub.close();
      const closed = await rejection(pub.send(queue, 'late'));
      expect(closed.code).toBe(Code.FAILED_PRECONDITION);

      // Called right after send(), flush() waits for those messages too…
      const pub2 = client.publisher({ maxDelay: '1m', linger: true, maxMessages: 1000 });
      const quick = [0, 1].map(i => pub2.send(queue, `q${i}`));
      await pub2.flush();
      expect((await client.queues.stats(queue)).depth).toBe(5);
      await Promise.all(quick);
      // …and for those still waiting for room under backpressure.
      const pub3 = client.publisher({ maxDelay: '1m', linger: true, maxMessages: 1000, maxPendingBytes: 2048 });
      const held = Array.from({ length: 6 }, (_, i) => pub3.send(queue, Buffer.alloc(1024, i)));
      await pub3.flush();
      expect((await client.queues.stats(queue)).depth).toBe(11);
      await Promise.all(held);

      // The client's shared publisher too.
      const shared = [0, 1].map(i => client.send(queue, `s${i}`));
      await client.flush();
      expect((await client.queues.stats(queue)).depth).toBe(13);
      await Promise.all(shared);
    });

    it('backpressure: no more than maxPendingBytes of payload is ever unsettled; the rest waits, then everything is stored', async () => {
      const queue = queueName('backpressure');
      await client.queues.create(queue);
      const core = srv.app.core;
      const orig = core.send;
      const index = new Map<string, number>();
      let resolved = 0;
      let atServer = 0;
      let inServer = 0;
      let maxInServer = 0;
      const violations: string[] = [];
      let gate!: () => void;
      const gated = new Promise<void>(r => (gate = r));
      let slow = false;
      core.send = async (messages, sender) => {
        if (!messages.some(m => index.has(m.id))) return orig.call(core, messages, sender);
        for (const m of messages) {
          const i = index.get(m.id)!;
          // Message i may leave the client only once messages 0..i-10 are settled (10 x 1 KiB fit).
          if (i >= resolved + 10) violations.push(`message ${i} reached the server with only ${resolved} settled`);
        }
        atServer += messages.length;
        inServer += messages.length;
        maxInServer = Math.max(maxInServer, inServer);
        try {
          await gated;
          if (slow) await sleep(15);
          return await orig.call(core, messages, sender);
        } finally {
          inServer -= messages.length;
        }
      };
      try {
        const pub = client.publisher({ maxPendingBytes: 10 * 1024, maxDelay: 0 });
        const total = 80;
        const ids = Array.from({ length: total }, () => randomUUID());
        ids.forEach((id, i) => index.set(id, i));
        const sends = ids.map((id, i) =>
          pub.send(queue, Buffer.alloc(1024, i), { id }).then(got => {
            resolved++;
            return got;
          }),
        );
        // The server holds every Send: only the first 10 KiB ever leave the client.
        await waitFor(() => atServer > 0, 5000, 'a first Send');
        await sleep(100);
        expect(atServer).toBeGreaterThan(0);
        expect(atServer).toBeLessThanOrEqual(10);
        expect(resolved).toBe(0);
        // Let them through, slowly: the bound holds all along.
        slow = true;
        gate();
        expect(await Promise.all(sends)).toEqual(ids);
        expect(violations).toEqual([]);
        expect(maxInServer).toBeLessThanOrEqual(10);
        expect(atServer).toBe(total);
      } finally {
        core.send = orig;
      }
      expect(await client.queues.stats(queue)).toMatchObject({ depth: 80 });
    });

    it('a send to a missing queue or with a bad name fails alone, not the messages batched with it', async () => {
      const queue = queueName('batch-mates');
      await client.queues.create(queue);
      const pub = client.publisher({ maxDelay: 50 });
      const outcomes = await Promise.allSettled([
        pub.send(queue, 'a'),
        pub.send(queueName('missing'), 'b'),
        pub.send(queue, 'c'),
        pub.send('bad name', 'd'),
        pub.send(queue, 'e'),
      ]);
      const codes = outcomes.map(o => (o.status === 'fulfilled' ? 'OK' : Code[(o.reason as InboxdError).code]));
      expect(codes).toEqual(['OK', 'NOT_FOUND', 'OK', 'INVALID_ARGUMENT', 'OK']);
      const bad = (outcomes[3] as PromiseRejectedResult).reason as InboxdError;
      expect(bad).toBeInstanceOf(InboxdError);
      expect(bad.details).toContain('"bad name"');
      const got = await leaseAll(queue, 3);
      expect(got.map(m => m.text()).sort()).toEqual(['a', 'c', 'e']);
    });

    it('sendJson stores application/json and round-trips the value', async () => {
      const queue = queueName('json');
      await client.queues.create(queue);
      const value = { hello: 'wörld', n: 42, list: [1, 2, { deep: true }] };
      const id = await client.sendJson(queue, value, { subject: 'greeting', headers: { k: 'v' } });
      const [m] = await client.lease(queue, { wait: '5s' });
      expect(m.id).toBe(id);
      expect(m.contentType).toBe('application/json');
      expect(m.json()).toEqual(value);
      expect(m.subject).toBe('greeting');
      expect(m.headers).toEqual({ k: 'v' });
      await m.ack();
    });

    it('a client-supplied id sent again reports the same id and stores the message once', async () => {
      const queue = queueName('dup');
      await client.queues.create(queue);
      const id = randomUUID();
      expect(await client.send(queue, 'once', { id })).toBe(id);
      expect(await client.send(queue, 'once', { id })).toBe(id);
      // Twice in one batch, too.
      expect(await Promise.all([client.send(queue, 'once', { id }), client.send(queue, 'once', { id })])).toEqual([id, id]);
      expect(await client.queues.stats(queue)).toMatchObject({ depth: 1 });
      const got = await leaseAll(queue, 1);
      expect(got.map(m => m.id)).toEqual([id]);
    });
  });

  describe('subscriber', () => {
    it('names deliveries by tag with deliveryTags (no token to sign or send); by default, by lease token', async () => {
      const queue = queueName('tags');
      await client.queues.create(queue, KEEP_ACKED);
      await sendMany(queue, 5);
      const seen: ReceivedMessage[] = [];
      const sub = subscribe(client, queue, (m: ReceivedMessage) => void seen.push(m), { deliveryTags: true });
      await waitFor(async () => (await client.queues.stats(queue)).acked === 5, 5000, 'every ack, by tag');
      expect(seen.map(m => m.deliveryTag).sort()).toEqual([1, 2, 3, 4, 5]);
      expect(seen.every(m => m.leaseToken === '')).toBe(true);
      // Such a message has no token for the unary calls: the SDK says what to do instead.
      const e = await rejection(client.ack(seen[0]!));
      expect([e.code, e.message]).toEqual([Code.FAILED_PRECONDITION, expect.stringMatching(/settle it with its own ack\(\)/)]);
      await sub.close();

      const plain = queueName('tokens');
      await client.queues.create(plain, KEEP_ACKED);
      await sendMany(plain, 3);
      const withTokens: ReceivedMessage[] = [];
      subscribe(client, plain, (m: ReceivedMessage) => void withTokens.push(m));
      await waitFor(async () => (await client.queues.stats(plain)).acked === 3, 5000, 'every ack, by token');
      expect(withTokens.map(m => [m.deliveryTag, m.leaseToken.length > 0])).toEqual([
        [0, true],
        [0, true],
        [0, true],
      ]);
    });

    it("never settles a message by tag on a stream other than the one that delivered it (the next stream's tags start at 1 again)", async () => {
      const queue = queueName('tagstreams');
      await client.queues.create(queue, KEEP_ACKED);
      const [id] = await sendMany(queue, 1);
      const gates: { m: ReceivedMessage; g: ReturnType<typeof gate> }[] = [];
      const settleErrors: InboxdError[] = [];
      const sub = subscribe(
        client,
        queue,
        async (m: ReceivedMessage) => {
          const g = gate();
          gates.push({ m, g });
          await g.hold;
        },
        { maxOutstandingMessages: 1, deliveryTags: true },
      );
      sub.on('settleError', err => settleErrors.push(err));
      await waitFor(() => gates.length === 1, 5000, 'the first delivery');
      expect([gates[0]!.m.id, gates[0]!.m.attempt, gates[0]!.m.deliveryTag]).toEqual([id, 1, 1]);

      // The stream breaks (as a network would end it) while the handler runs: the server releases
      // the message, and the next stream delivers it again, under the same tag number, 1.
      (sub as unknown as { stream: { cancel(): void } }).stream.cancel();
      await waitFor(() => gates.length === 2, 10_000, 'the delivery on the next stream');
      expect([gates[1]!.m.id, gates[1]!.m.attempt, gates[1]!.m.deliveryTag]).toEqual([id, 2, 1]);

      // The first handler finishes: its ack is not sent (tag 1 on this stream is the second delivery).
      gates[0]!.g.release();
      await waitFor(() => settleErrors.length === 1, 5000, 'the first ack refused');
      expect(settleErrors[0]!.code).toBe(Code.UNAVAILABLE);
      await dispatcherIdle(srv.app.core, queue);
      expect(await client.queues.stats(queue)).toMatchObject({ leased: 1, acked: 0 });

      gates[1]!.g.release();
      await waitFor(async () => (await client.queues.stats(queue)).acked === 1, 5000, 'the second ack');
      expect(await client.queues.stats(queue)).toMatchObject({ depth: 0, leased: 0, acked: 1 });
    });

    it('never runs more handlers at once than maxOutstandingMessages, nor holds more', async () => {
      const queue = queueName('flow');
      await client.queues.create(queue, KEEP_ACKED);
      const ids = await sendMany(queue, 60);
      let running = 0;
      let maxRunning = 0;
      const seen = new Set<string>();
      const sub = subscribe(
        client,
        queue,
        async (m: ReceivedMessage) => {
          running++;
          maxRunning = Math.max(maxRunning, running);
          await sleep(10 + Math.random() * 20);
          seen.add(m.id);
          running--;
        },
        { maxOutstandingMessages: 4 },
      );
      await waitFor(() => seen.size === 60, 30_000, 'every message handled');
      await sub.close();
      expect(new Set(ids)).toEqual(seen);
      expect(maxRunning).toBeLessThanOrEqual(4);
      expect(maxRunning).toBeGreaterThanOrEqual(2);
      expect(sub.maxHeld).toBeLessThanOrEqual(4);
      expect(await client.queues.stats(queue)).toMatchObject({ depth: 0, leased: 0, acked: 60 });
    });

    it('extends the lease while a handler runs 3x the visibility timeout: no redelivery, the ack lands', async () => {
      const queue = queueName('extend');
      await client.queues.create(queue, { visibilityTimeout: '1s', ...KEEP_ACKED });
      const id = await client.send(queue, 'slow');
      const deliveries: string[] = [];
      const extendErrors: unknown[] = [];
      let finished = false;
      const sub = subscribe(
        client,
        queue,
        async (m: ReceivedMessage) => {
          deliveries.push(`sub:${m.id}:${m.attempt}`);
          if (m.attempt > 1) return;
          // Real time: the SDK keeps the lease on the wall clock while the handler runs.
          await sleep(3500);
          finished = true;
        },
        { visibilityTimeout: '1s' },
      );
      sub.on('extendError', err => extendErrors.push(err));
      await waitFor(() => deliveries.length > 0, 5000, 'the delivery');

      // Meanwhile another subscriber (another client) and unary leases look for the message.
      const other = newClient({ address: srv.app.address, poolSize: 1 });
      subscribe(other, queue, (m: ReceivedMessage) => void deliveries.push(`other:${m.id}:${m.attempt}`));
      const poller = (async () => {
        while (!finished) {
          const got = await other.lease(queue, { visibilityTimeout: '1s', wait: 300 });
          for (const m of got) deliveries.push(`lease:${m.id}:${m.attempt}`);
        }
      })();
      await waitFor(() => finished, 10_000, 'the slow handler');
      await poller;
      await waitFor(async () => (await client.queues.stats(queue)).acked === 1, 5000, 'the ack');
      await dispatcherIdle(srv.app.core, queue);
      expect(deliveries).toEqual([`sub:${id}:1`]);
      expect(extendErrors).toEqual([]);
      expect(await client.queues.stats(queue)).toMatchObject({ depth: 0, leased: 0, acked: 1 });
    });

    it('sends a batch of acks at once when it frees half the window: a long maxDelay never starves the stream', async () => {
      const queue = queueName('ackwindow');
      await client.queues.create(queue, KEEP_ACKED);
      await sendMany(queue, 40);
      let handled = 0;
      const started = Date.now();
      // Window 4, acks held up to 5 s: were they held for maxDelay, 40 messages would take ~50 s.
      subscribe(client, queue, () => void handled++, { maxOutstandingMessages: 4, ackBatching: { maxMessages: 1000, maxDelay: '5s' } });
      await waitFor(async () => (await client.queues.stats(queue)).acked === 40, 4000, 'every ack, by count');
      expect(handled).toBe(40);
      expect(Date.now() - started).toBeLessThan(4000);

      // By bytes: a window of ~3 messages of 1,000 bytes, a message count that never fills.
      const big = queueName('ackbytes');
      await client.queues.create(big, KEEP_ACKED);
      await Promise.all(Array.from({ length: 30 }, () => client.send(big, Buffer.alloc(1000, 1))));
      subscribe(client, big, () => {}, { maxOutstandingMessages: 100, maxOutstandingBytes: 3000, ackBatching: { maxMessages: 1000, maxDelay: '5s' } });
      await waitFor(async () => (await client.queues.stats(big)).acked === 30, 4000, 'every ack, by bytes');
    });

    it('keeps the leases of many held messages, received at different times, with one keeper: each delivered once', async () => {
      const queue = queueName('keeper');
      await client.queues.create(queue, { visibilityTimeout: '1s', ...KEEP_ACKED });
      const attempts: number[] = [];
      const extendErrors: unknown[] = [];
      const sub = subscribe(
        client,
        queue,
        async (m: ReceivedMessage) => {
          attempts.push(m.attempt);
          await sleep(3000);
        },
        { visibilityTimeout: '1s', maxOutstandingMessages: 30 },
      );
      sub.on('extendError', err => extendErrors.push(err));
      // Three waves 400 ms apart: their extensions fall due at different times, interleaved.
      for (let wave = 0; wave < 3; wave++) {
        await sendMany(queue, 8);
        await sleep(400);
      }
      await waitFor(async () => (await client.queues.stats(queue)).acked === 24, 15_000, 'every ack');
      await sub.close();
      expect(attempts).toEqual(Array(24).fill(1));
      expect(extendErrors).toEqual([]);
    });

    it('stops extending at maxExtension after receipt: the message then goes to another consumer', async () => {
      const queue = queueName('maxext');
      await client.queues.create(queue, { visibilityTimeout: '1s', ...KEEP_ACKED });
      await client.send(queue, 'too slow');
      let received = 0;
      const { hold, release } = gate();
      const sub = subscribe(
        client,
        queue,
        async () => {
          received = Date.now();
          await hold;
        },
        { visibilityTimeout: '1s', maxExtension: '2s' },
      );
      await waitFor(() => received > 0, 5000, 'the delivery');
      // Kept ~2 s (maxExtension) and one lease more, then released: not before, and not forever.
      let again: ReceivedMessage | undefined;
      while (!again && Date.now() - received < 10_000) [again] = await client.lease(queue, { visibilityTimeout: '10s', wait: 300 });
      expect(again?.attempt).toBe(2);
      expect(Date.now() - received).toBeGreaterThanOrEqual(2000);
      release();
      await again!.ack();
      await sub.close({ behavior: 'nack', timeout: '2s' });
    });

    it("close({ behavior: 'drain' }) waits for running handlers and their acks; nothing new is delivered", async () => {
      const queue = queueName('drain');
      await client.queues.create(queue, KEEP_ACKED);
      await sendMany(queue, 10);
      let started = 0;
      let finished = 0;
      const { hold, release } = gate();
      const sub = subscribe(
        client,
        queue,
        async () => {
          started++;
          await hold;
          finished++;
        },
        { maxOutstandingMessages: 3, visibilityTimeout: '30s' },
      );
      await waitFor(() => started === 3, 5000, 'three handlers');
      let closed = false;
      const closing = sub.close().then(() => (closed = true));
      // While the handlers run, close() waits (a round trip to the server and back, and it still waits).
      await client.queues.stats(queue);
      expect(closed).toBe(false);
      release();
      await closing;
      expect(finished).toBe(3);
      expect(started).toBe(3);
      // Their acks landed before close() resolved.
      expect(await client.queues.stats(queue)).toMatchObject({ depth: 7, leased: 0, acked: 3 });
    });

    it("close({ behavior: 'nack' }) returns held messages at once, for another attempt", async () => {
      const queue = queueName('nack');
      await client.queues.create(queue, KEEP_ACKED);
      const ids = await sendMany(queue, 3);
      const { hold, release } = gate();
      let started = 0;
      const sub = subscribe(
        client,
        queue,
        async () => {
          started++;
          await hold;
        },
        { maxOutstandingMessages: 3, visibilityTimeout: '30s' },
      );
      try {
        await waitFor(() => started === 3, 5000, 'three handlers');
        const t0 = Date.now();
        await sub.close({ behavior: 'nack' });
        const got: ReceivedMessage[] = [];
        while (got.length < 3 && Date.now() - t0 < 10_000) got.push(...(await client.lease(queue, { max: 3, wait: '2s' })));
        // Well before the 30s leases would have run out.
        expect(Date.now() - t0).toBeLessThan(10_000);
        expect(new Set(got.map(m => m.id))).toEqual(new Set(ids));
        expect(got.map(m => m.attempt)).toEqual([2, 2, 2]);
        await client.ack(got);
      } finally {
        release();
      }
      expect(await client.queues.stats(queue)).toMatchObject({ depth: 0, leased: 0, acked: 3 });
    });

    it('close({ timeout }) bounds the wait for a handler that never finishes; its lease is released', async () => {
      const queue = queueName('close-timeout');
      await client.queues.create(queue);
      const [id] = await sendMany(queue, 1);
      const { hold, release } = gate();
      let started = false;
      const sub = subscribe(
        client,
        queue,
        async () => {
          started = true;
          await hold;
        },
        { visibilityTimeout: '30s' },
      );
      try {
        await waitFor(() => started, 5000, 'the handler');
        const t0 = Date.now();
        await sub.close({ timeout: '1s' });
        const waited = Date.now() - t0;
        expect(waited).toBeGreaterThanOrEqual(900);
        expect(waited).toBeLessThan(5000);
        const got = await client.lease(queue, { wait: '5s' });
        expect(got.map(m => [m.id, m.attempt])).toEqual([[id, 2]]);
        await got[0].ack();
      } finally {
        release();
      }
    });

    it('close() resolves as soon as the last answer arrives, an extension answered after the ack included', async () => {
      const queue = queueName('close-extend');
      await client.queues.create(queue, KEEP_ACKED);
      await sendMany(queue, 1);
      const sub = subscribe(client, queue, { visibilityTimeout: '30s' });
      const it = sub[Symbol.asyncIterator]();
      const { value: m } = await it.next();
      const t0 = Date.now();
      const closing = sub.close();
      const acked = m.ack();
      // An extension from the user's own keep-alive, racing the ack: the server answers it last (stale).
      const extended = m.extend('10s').then(
        () => 'extended',
        (e: InboxdError) => Code[e.code],
      );
      await acked;
      expect(await extended).toBe('FAILED_PRECONDITION');
      await closing;
      expect(Date.now() - t0).toBeLessThan(5000);
      expect(await client.queues.stats(queue)).toMatchObject({ depth: 0, leased: 0, acked: 1 });
    });

    it('iterator mode: for await over the subscription, ack each, break after N; the rest go back', async () => {
      const queue = queueName('iter');
      await client.queues.create(queue, KEEP_ACKED);
      const ids = await sendMany(queue, 10);
      const sub = subscribe(client, queue, { maxOutstandingMessages: 4, visibilityTimeout: '30s' });
      const acked: string[] = [];
      for await (const m of sub) {
        await m.ack();
        acked.push(m.id);
        if (acked.length === 5) break;
      }
      expect(acked).toHaveLength(5);
      expect(sub.maxHeld).toBeLessThanOrEqual(4);
      const t0 = Date.now();
      const rest = await leaseAll(queue, 5);
      expect(Date.now() - t0).toBeLessThan(10_000);
      expect(new Set([...acked, ...rest.map(m => m.id)])).toEqual(new Set(ids));
      expect(rest).toHaveLength(5);
      expect(await client.queues.stats(queue)).toMatchObject({ depth: 0, leased: 0, acked: 10 });
    });
  });

  describe('pull API', () => {
    it('lease, then ack/nack/extend through the messages and through the client with tokens', async () => {
      const queue = queueName('pull');
      await client.queues.create(queue, KEEP_ACKED);
      const ids = await Promise.all(['a', 'b', 'c', 'd'].map(p => client.send(queue, p)));
      const ms = await client.lease(queue, { max: 4, visibilityTimeout: '5s', wait: '1s' });
      expect(ms.map(m => m.id).sort()).toEqual([...ids].sort());
      const by = new Map(ms.map(m => [m.text(), m]));
      for (const m of ms) {
        expect(m.attempt).toBe(1);
        expect(m.leaseExpiresAt.getTime()).toBeGreaterThan(Date.now() + 2000);
        expect(m.leaseExpiresAt.getTime()).toBeLessThan(Date.now() + 8000);
      }

      await by.get('a')!.ack();
      await by.get('b')!.nack();
      const until = await by.get('c')!.extend('30s');
      expect(until.getTime()).toBeGreaterThan(Date.now() + 25_000);
      expect(by.get('c')!.leaseExpiresAt).toEqual(until);
      const [until2] = await client.extend([by.get('d')!.leaseToken], '20s');
      expect(until2.getTime()).toBeGreaterThan(Date.now() + 15_000);
      expect(until2.getTime()).toBeLessThan(Date.now() + 25_000);
      expect(await client.ack(by.get('d')!.leaseToken)).toBe(1);
      expect(await client.nack([by.get('c')!], 0)).toEqual({ requeued: 1, deadLettered: 0 });

      // b and c are back, on their second attempt; on 1s leases left to run out…
      const again = await client.lease(queue, { max: 10, visibilityTimeout: '1s', wait: '2s' });
      while (again.length < 2) again.push(...(await client.lease(queue, { max: 10, visibilityTimeout: '1s', wait: '2s' })));
      expect(again.map(m => [m.text(), m.attempt]).sort()).toEqual([
        ['b', 2],
        ['c', 2],
      ]);
      // …they come back once more, and the old tokens are stale.
      const third: ReceivedMessage[] = [];
      const deadline = Date.now() + 10_000;
      while (third.length < 2 && Date.now() < deadline) third.push(...(await client.lease(queue, { max: 10, visibilityTimeout: '30s', wait: '1s' })));
      expect(third.map(m => [m.text(), m.attempt]).sort()).toEqual([
        ['b', 3],
        ['c', 3],
      ]);
      const acks = countAttempts(client, 'inbox', 'ack');
      const stale = await rejection(client.ack(again.map(m => m.leaseToken)));
      expect(stale.code).toBe(Code.FAILED_PRECONDITION);
      expect(stale.details).toContain('stale');
      expect(acks.count).toBe(1);
      const stale2 = await rejection(again[0].ack());
      expect(stale2.code).toBe(Code.FAILED_PRECONDITION);
      const stale3 = await rejection(client.extend(again[1], '10s'));
      expect(stale3.code).toBe(Code.FAILED_PRECONDITION);

      expect(await client.ack(third)).toBe(2);
      expect(await client.queues.stats(queue)).toMatchObject({ depth: 0, leased: 0, acked: 4 });
    });

    it('extend() without a duration keeps extending by the lease length, not more', async () => {
      const queue = queueName('pull-extend');
      await client.queues.create(queue);
      await client.send(queue, 'x');
      const [m] = await client.lease(queue, { visibilityTimeout: '10s' });
      for (let i = 0; i < 3; i++) {
        const until = await m.extend();
        // Each time: now + 10s (rounded up to whole seconds by the server), not a growing span.
        expect(until.getTime() - Date.now()).toBeGreaterThan(8000);
        expect(until.getTime() - Date.now()).toBeLessThan(12_000);
      }
      await m.ack();
    });
  });

  describe('queue admin', () => {
    it('create, ensure, get, list (every page), purge, stats, delete', async () => {
      const prefix = `admin-${randomUUID().slice(0, 6)}`;
      const info = await client.queues.create(`${prefix}-0`, { visibilityTimeout: '45s', maxAttempts: 7, retryDelay: '2s', ackedRetention: '2h' });
      expect(info).toMatchObject({
        name: `${prefix}-0`,
        visibilityTimeoutMs: 45_000,
        maxAttempts: 7,
        retryDelayMs: 2000,
        ackedRetentionMs: 7_200_000,
        deadLetterQueue: '',
      });
      expect(info.createdAt).toBeInstanceOf(Date);

      const dup = await rejection(client.queues.create(`${prefix}-0`));
      expect(dup.code).toBe(Code.ALREADY_EXISTS);
      // ensure() of an existing queue returns it as it is…
      expect(await client.queues.ensure(`${prefix}-0`, { visibilityTimeout: '5s' })).toMatchObject({ visibilityTimeoutMs: 45_000, maxAttempts: 7 });
      // …and creates a missing one.
      expect(await client.queues.ensure(`${prefix}-1`, { maxAttempts: 3 })).toMatchObject({ name: `${prefix}-1`, maxAttempts: 3, visibilityTimeoutMs: 30_000 });
      for (let i = 2; i < 7; i++) await client.queues.create(`${prefix}-${i}`);
      expect(await client.queues.get(`${prefix}-0`)).toMatchObject({ name: `${prefix}-0`, visibilityTimeoutMs: 45_000 });

      const lists = countAttempts(client, 'queues', 'listQueues');
      const names: string[] = [];
      for await (const q of client.queues.list(2)) names.push(q.name);
      expect(new Set(names).size).toBe(names.length);
      expect(names.filter(nm => nm.startsWith(prefix)).sort()).toEqual(Array.from({ length: 7 }, (_, i) => `${prefix}-${i}`));
      // Pages of two: one call per page.
      expect(lists.count).toBe(Math.ceil(names.length / 2));
      expect(lists.count).toBeGreaterThanOrEqual(4);

      await sendMany(`${prefix}-2`, 5);
      expect(await client.queues.stats(`${prefix}-2`)).toMatchObject({
        queue: `${prefix}-2`,
        depth: 5,
        ready: 5,
        delayed: 0,
        leased: 0,
        acked: 0,
        deadLettered: 0,
      });
      expect(await client.queues.purge(`${prefix}-2`)).toBe(5);
      expect(await client.queues.stats(`${prefix}-2`)).toMatchObject({ depth: 0, ready: 0 });

      await client.queues.delete(`${prefix}-3`);
      expect((await rejection(client.queues.get(`${prefix}-3`))).code).toBe(Code.NOT_FOUND);
      expect((await rejection(client.queues.stats(`${prefix}-3`))).code).toBe(Code.NOT_FOUND);
      const after: string[] = [];
      for await (const q of client.queues.list(3)) after.push(q.name);
      expect(after).not.toContain(`${prefix}-3`);
      expect(after).toContain(`${prefix}-4`);
    });
  });
});
