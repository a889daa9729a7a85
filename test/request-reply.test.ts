import { randomUUID } from 'node:crypto';
import { GetQueueRequest } from '@inboxd/proto/v1/queues';
import { Code, createClient, type InboxdClient, type ReceivedMessage, type Subscriber } from '@inboxd/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rejection } from './support/expect.js';
import { call, migratedDatabase, sleep, startServer, waitFor } from './support/harness.js';

type Server = Awaited<ReturnType<typeof startServer>>;

let srv: Server;
/** The side that asks. */
let requester: InboxdClient;
/** The side that answers, with its own channels. */
let responder: InboxdClient;
let n = 0;
const fresh = (tag: string) => `${tag}-${++n}`;

/** A service on `queue` answering each request with `answer(request)` after `delayMs(request)`. */
async function serve(queue: string, answer: (m: ReceivedMessage) => unknown, delayMs: (m: ReceivedMessage) => number = () => 0): Promise<Subscriber> {
  await responder.queues.ensure(queue);
  return responder.subscribe(queue, async m => {
    const ms = delayMs(m);
    if (ms > 0) await sleep(ms);
    await m.replyJson(answer(m));
  });
}

/** Acked messages in the requester's reply queue (named by the responder's view of any request). */
async function ackedSoFar(): Promise<number> {
  let name = '';
  for await (const q of requester.queues.list()) if (q.name.startsWith('reply.')) name = q.name;
  return name ? (await requester.queues.stats(name)).acked : 0;
}

beforeAll(async () => {
  srv = await startServer(await migratedDatabase());
  requester = createClient({ address: srv.app.address, poolSize: 1 });
  responder = createClient({ address: srv.app.address, poolSize: 1 });
});
afterAll(async () => {
  await requester?.close();
  await responder?.close();
  await srv?.stop();
});

describe('request/reply', () => {
  it('request() resolves with the reply a responder sends with msg.reply(), acked', async () => {
    const q = fresh('echo');
    let seen: ReceivedMessage | undefined;
    const sub = await serve(q, m => {
      seen = m;
      return { echo: m.json(), correlationId: m.correlationId };
    });
    const reply = await requester.requestJson(q, { hello: 'world' }, { timeout: '10s', headers: { trace: 't1' } });
    expect(reply.json()).toEqual({ echo: { hello: 'world' }, correlationId: seen!.correlationId });
    expect(reply.contentType).toBe('application/json');
    // The request carried the private reply queue and a correlation id; the reply matches it.
    expect(seen!.replyTo).toMatch(/^reply\.[0-9a-f-]{36}$/);
    expect(seen!.headers).toEqual({ trace: 't1' });
    expect(reply.queue).toBe(seen!.replyTo);
    expect(reply.correlationId).toBe(seen!.correlationId);
    expect(reply.settled).toBe(true);
    await waitFor(async () => (await requester.queues.stats(seen!.replyTo)).acked === 1, 5000, 'the reply to be acked');
    expect(await requester.queues.stats(seen!.replyTo)).toMatchObject({ depth: 0, leased: 0 });
    // Replies nobody collects do not pile up: the reply queue has a short message_ttl.
    const { queue } = await call(srv.clients.queues, srv.clients.queues.getQueue, GetQueueRequest.fromPartial({ name: seen!.replyTo }));
    expect(queue!.config!.messageTtl).toEqual({ seconds: '300', nanos: 0 });
    await sub.close();
  });

  it('a reply that never comes rejects DEADLINE_EXCEEDED after the timeout; the late reply is then acked and dropped', async () => {
    const q = fresh('slow');
    let replyTo = '';
    let replied = 0;
    // The responder answers once the requester has given up.
    let late!: () => void;
    const gaveUp = new Promise<void>(resolve => (late = resolve));
    const sub = await responder.queues.ensure(q).then(() =>
      responder.subscribe(q, async m => {
        replyTo = m.replyTo;
        await gaveUp;
        await m.reply('too late');
        replied++;
      }),
    );
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown) => unhandled.push(e);
    process.on('unhandledRejection', onUnhandled);
    try {
      // This client's one reply queue has served earlier tests: count from where it stands.
      const ackedBefore = await ackedSoFar();
      const started = Date.now();
      const err = await rejection(requester.request(q, 'anyone?', { timeout: 400 }));
      const took = Date.now() - started;
      expect(err.code).toBe(Code.DEADLINE_EXCEEDED);
      expect(err.details).toMatch(/no reply/);
      expect(took).toBeGreaterThanOrEqual(390);
      expect(took).toBeLessThan(1100);
      late();

      await waitFor(() => replied === 1, 5000, 'the late reply to be sent');
      await waitFor(async () => (await requester.queues.stats(replyTo)).acked === ackedBefore + 1, 5000, 'the late reply to be acked and dropped');
      expect(await requester.queues.stats(replyTo)).toMatchObject({ depth: 0, leased: 0 });
      // The client still works: the next request gets its own reply, not the stale one.
      const quick = await serve(fresh('quick'), m => m.text());
      const reply = await requester.request(quick.queue, 'ping', { timeout: '5s' });
      expect(reply.json()).toBe('ping');
      await quick.close();
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
      await sub.close();
    }
  });

  it('concurrent requests are each matched with their own reply by correlation id', async () => {
    const q = fresh('concurrent');
    // Answers in a scrambled order: later requests are answered first.
    const sub = await serve(
      q,
      m => ({ n: m.json<{ n: number }>().n * 10 }),
      m => 96 - m.json<{ n: number }>().n * 4,
    );
    const replies = await Promise.all(Array.from({ length: 25 }, (_, i) => requester.requestJson(q, { n: i }, { timeout: '10s' })));
    expect(replies.map(r => r.json<{ n: number }>().n)).toEqual(Array.from({ length: 25 }, (_, i) => i * 10));
    expect(new Set(replies.map(r => r.correlationId)).size).toBe(25);
    await sub.close();
  });

  it('a caller-chosen correlation id is kept; a second request with it while the first waits is refused', async () => {
    const q = fresh('own-cid');
    const sub = await serve(
      q,
      m => m.correlationId,
      () => 300,
    );
    const cid = `order-${randomUUID()}`;
    const first = requester.request(q, 'a', { correlationId: cid, timeout: '5s' });
    const dup = await rejection(requester.request(q, 'b', { correlationId: cid, timeout: '5s' }));
    expect(dup.code).toBe(Code.INVALID_ARGUMENT);
    const reply = await first;
    expect(reply.correlationId).toBe(cid);
    expect(reply.json()).toBe(cid);
    await sub.close();
  });

  it('an aborted request rejects CANCELLED at once', async () => {
    const q = fresh('abort');
    await responder.queues.ensure(q);
    const ac = new AbortController();
    const p = requester.request(q, 'x', { signal: ac.signal, timeout: '10s' });
    setTimeout(() => ac.abort(), 100);
    expect((await rejection(p)).code).toBe(Code.CANCELLED);
    expect((await rejection(requester.request(q, 'x', { signal: ac.signal }))).code).toBe(Code.CANCELLED);
  });

  it('a request to a missing queue rejects NOT_FOUND', async () => {
    expect((await rejection(requester.request(fresh('nobody-home'), 'x', { timeout: '5s' }))).code).toBe(Code.NOT_FOUND);
  });

  it('reply() without reply_to rejects FAILED_PRECONDITION; without correlation_id it correlates on the id', async () => {
    const q = fresh('plain');
    const replies = fresh('replies');
    await responder.queues.create(q);
    await responder.queues.create(replies);
    await responder.send(q, 'no reply_to');
    const [m] = await responder.lease(q);
    const err = await rejection(m.reply('hello?'));
    expect(err.code).toBe(Code.FAILED_PRECONDITION);
    expect(err.details).toMatch(/no reply_to/);
    await m.ack();

    const id = await responder.send(q, 'reply here', { replyTo: replies });
    const [req] = await responder.lease(q);
    expect(req.correlationId).toBe('');
    const replyId = await req.reply('done', { subject: 'result' });
    await req.ack();
    const [r] = await responder.lease(replies);
    expect(r).toMatchObject({ id: replyId, correlationId: id, subject: 'result', queue: replies });
    expect(r.text()).toBe('done');
    await r.ack();
  });

  it('close() fails waiting requests with CANCELLED and deletes the reply queue', async () => {
    const q = fresh('closing');
    const own = createClient({ address: srv.app.address, poolSize: 1 });
    let replyTo = '';
    const sub = await responder.queues.ensure(q).then(() => responder.subscribe(q, m => void (replyTo = m.replyTo)));
    const waiting = own.request(q, 'x', { timeout: '30s' });
    await waitFor(() => replyTo !== '', 5000, 'the request to arrive');
    expect(await own.queues.get(replyTo)).toMatchObject({ name: replyTo });
    const failed = rejection(waiting);
    await own.close();
    expect((await failed).code).toBe(Code.CANCELLED);
    expect((await rejection(responder.queues.get(replyTo))).code).toBe(Code.NOT_FOUND);
    await sub.close();
  });
});
