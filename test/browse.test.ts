import { randomUUID } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import type { Duration } from '@inboxd/proto/google/protobuf/duration';
import { AckRequest, GetMessageRequest, LeaseRequest, ListMessagesRequest, type ListMessagesResponse, NackRequest, SendRequest } from '@inboxd/proto/v1/inbox';
import { type Message, type MessageInfo, MessageState } from '@inboxd/proto/v1/message';
import { CreateQueueRequest, GetQueueStatsRequest, type QueueConfig } from '@inboxd/proto/v1/queues';
import { Code, createClient, type InboxdClient, InboxdError } from '@inboxd/sdk';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { counts, expectStatus } from './support/expect.js';
import { type Clients, call, dur, migratedDatabase, startServer, waitFor } from './support/harness.js';

type Server = Awaited<ReturnType<typeof startServer>>;

const text = (b: Uint8Array | undefined) => Buffer.from(b ?? []).toString('utf8');

function api(c: Clients) {
  const { inbox, queues } = c;
  return {
    createQueue: (name: string, config?: Partial<QueueConfig>) => call(queues, queues.createQueue, CreateQueueRequest.fromPartial({ name, config })),
    send: (messages: Partial<Message>[]) => call(inbox, inbox.send, SendRequest.fromPartial({ messages })),
    sendTo: async (queue: string, ...payloads: string[]) =>
      (await call(inbox, inbox.send, SendRequest.fromPartial({ messages: payloads.map(p => ({ queue, payload: Buffer.from(p) })) }))).results.map(r => r.id),
    lease: (queue: string, max = 1, vis = 30) => call(inbox, inbox.lease, LeaseRequest.fromPartial({ queue, maxMessages: max, visibilityTimeout: dur(vis) })),
    ack: (...leaseTokens: string[]) => call(inbox, inbox.ack, AckRequest.fromPartial({ leaseTokens })),
    nack: (leaseTokens: string[], o: { delay?: Duration; error?: string } = {}) => call(inbox, inbox.nack, NackRequest.fromPartial({ leaseTokens, ...o })),
    list: (queue: string, o: { state?: MessageState; pageSize?: number; pageToken?: string; newestFirst?: boolean } = {}): Promise<ListMessagesResponse> =>
      call(inbox, inbox.listMessages, ListMessagesRequest.fromPartial({ queue, ...o })),
    get: async (queue: string, id: string): Promise<MessageInfo> =>
      (await call(inbox, inbox.getMessage, GetMessageRequest.fromPartial({ queue, id }))).message!,
    stats: async (name: string) => counts((await call(queues, queues.getQueueStats, GetQueueStatsRequest.fromPartial({ name }))).stats!),
  };
}

let srv: Server;
let a: ReturnType<typeof api>;
let db: pg.Client;
let client: InboxdClient;
let n = 0;
const fresh = (tag: string) => `${tag}-${++n}`;

/** Every message of a listing, through every page. */
async function listAll(queue: string, o: { state?: MessageState; pageSize?: number; newestFirst?: boolean } = {}): Promise<MessageInfo[]> {
  const out: MessageInfo[] = [];
  let pageToken = '';
  do {
    const res = await a.list(queue, { ...o, pageToken });
    out.push(...res.messages);
    pageToken = res.nextPageToken;
  } while (pageToken);
  return out;
}

const idsIn = (infos: MessageInfo[]) => infos.map(i => i.message!.id);

beforeAll(async () => {
  const url = await migratedDatabase();
  srv = await startServer(url);
  a = api(srv.clients);
  db = new pg.Client({ connectionString: url });
  await db.connect();
  client = createClient({ address: srv.app.address, poolSize: 1 });
});
afterAll(async () => {
  await client?.close();
  await db?.end();
  await srv?.stop();
});

describe('GetMessage and ListMessages: states', () => {
  it('a queued message: every field, no attempts yet, and looking does not lease it', async () => {
    const q = fresh('queued');
    await a.createQueue(q);
    const before = Date.now();
    const [r] = (
      await a.send([
        { queue: q, payload: Buffer.from('hello'), contentType: 'text/plain', headers: { h: '1' }, subject: 's', correlationId: 'c', replyTo: q, priority: 2 },
      ])
    ).results;
    const info = await a.get(q, r.id);
    expect(info.state).toBe(MessageState.MESSAGE_STATE_QUEUED);
    expect(info.attempts).toBe(0);
    expect(info.message).toMatchObject({
      id: r.id,
      queue: q,
      contentType: 'text/plain',
      headers: { h: '1' },
      subject: 's',
      correlationId: 'c',
      replyTo: q,
      priority: 2,
      contentHash: r.contentHash,
    });
    expect(text(info.message!.payload)).toBe('hello');
    expect(info.createdAt!.getTime()).toBeGreaterThanOrEqual(before - 5000);
    expect(info.startedAt).toBeUndefined();
    expect(info.completedAt).toBeUndefined();
    expect(info.leaseExpiresAt).toBeUndefined();
    expect(info.lastError).toBe('');
    expect(info.deadLetterOrigin).toBeUndefined();
    // The id may be given in upper case.
    expect((await a.get(q, r.id.toUpperCase())).message!.id).toBe(r.id);

    expect(idsIn((await a.list(q)).messages)).toEqual([r.id]);
    expect(idsIn((await a.list(q, { state: MessageState.MESSAGE_STATE_QUEUED })).messages)).toEqual([r.id]);
    expect((await a.list(q, { state: MessageState.MESSAGE_STATE_LEASED })).messages).toEqual([]);
    // Browsing changed nothing: the message is still there, on its first attempt.
    expect(await a.stats(q)).toMatchObject({ ready: 1, leased: 0 });
    expect((await a.lease(q)).deliveries[0]).toMatchObject({ attempt: 1 });
  });

  it('delayed (deliver_at), leased (with lease_expires_at) and acked', async () => {
    const q = fresh('lifecycle');
    await a.createQueue(q);
    const [later] = (await a.send([{ queue: q, payload: Buffer.from('later'), deliverAt: new Date(Date.now() + 3_600_000) }])).results;
    const [now] = await a.sendTo(q, 'now');
    expect((await a.get(q, later.id)).state).toBe(MessageState.MESSAGE_STATE_DELAYED);
    expect(idsIn((await a.list(q, { state: MessageState.MESSAGE_STATE_DELAYED })).messages)).toEqual([later.id]);

    const d = (await a.lease(q, 1, 30)).deliveries[0];
    expect(d.message!.id).toBe(now);
    const leased = await a.get(q, now);
    expect(leased.state).toBe(MessageState.MESSAGE_STATE_LEASED);
    expect(leased.attempts).toBe(1);
    expect(leased.startedAt).toBeInstanceOf(Date);
    expect(Math.abs(leased.leaseExpiresAt!.getTime() - d.leaseExpiresAt!.getTime())).toBeLessThan(1500);
    expect(idsIn((await a.list(q, { state: MessageState.MESSAGE_STATE_LEASED })).messages)).toEqual([now]);

    await a.ack(d.leaseToken);
    const acked = await a.get(q, now);
    expect(acked.state).toBe(MessageState.MESSAGE_STATE_ACKED);
    expect(acked.attempts).toBe(1);
    expect(acked.completedAt).toBeInstanceOf(Date);
    expect(acked.leaseExpiresAt).toBeUndefined();
    expect(idsIn((await a.list(q, { state: MessageState.MESSAGE_STATE_ACKED })).messages)).toEqual([now]);
    // Unfiltered: both, oldest first.
    expect(idsIn((await a.list(q)).messages)).toEqual([later.id, now]);
  });

  it('a nack with a delay: delayed, with the nack error as last_error and its attempt counted', async () => {
    const q = fresh('nacked');
    await a.createQueue(q);
    const [id] = await a.sendTo(q, 'x');
    const d = (await a.lease(q)).deliveries[0];
    await a.nack([d.leaseToken], { delay: dur(3600), error: 'upstream timed out' });
    const info = await a.get(q, id);
    expect(info.state).toBe(MessageState.MESSAGE_STATE_DELAYED);
    expect(info.attempts).toBe(1);
    expect(info.lastError).toBe('upstream timed out');
    expect(info.leaseExpiresAt).toBeUndefined();
  });

  it('a lease that ran out: queued again, last_error "lease expired"', async () => {
    const q = fresh('expired-lease');
    await a.createQueue(q);
    const [id] = await a.sendTo(q, 'x');
    await a.lease(q, 1, 1);
    await waitFor(async () => (await a.get(q, id)).state === MessageState.MESSAGE_STATE_QUEUED, 10_000, 'the lease to expire');
    const info = await a.get(q, id);
    expect(info.lastError).toBe('lease expired');
    expect(info.attempts).toBe(1);
    expect((await a.lease(q)).deliveries[0].attempt).toBe(2);
    expect((await a.get(q, id)).attempts).toBe(2);
  });

  it('dead-lettered: failed in its queue with last_error, and a copy in the dead-letter queue with its origin', async () => {
    const dlq = fresh('dlq');
    const src = fresh('dlq-src');
    await a.createQueue(dlq);
    await a.createQueue(src, { maxAttempts: 1, deadLetterQueue: dlq });
    const [id] = await a.sendTo(src, 'poison');
    const d = (await a.lease(src)).deliveries[0];
    const res = await a.nack([d.leaseToken], { error: 'handler exploded' });
    expect(res.deadLettered).toBe(1);

    const failed = await a.get(src, id);
    expect(failed.state).toBe(MessageState.MESSAGE_STATE_DEAD_LETTERED);
    expect(failed.attempts).toBe(1);
    expect(failed.lastError).toBe('handler exploded');
    expect(failed.completedAt).toBeInstanceOf(Date);
    expect(idsIn((await a.list(src, { state: MessageState.MESSAGE_STATE_DEAD_LETTERED })).messages)).toEqual([id]);

    const [copy] = (await a.list(dlq)).messages;
    expect(copy.state).toBe(MessageState.MESSAGE_STATE_QUEUED);
    expect(copy.attempts).toBe(0);
    expect(copy.lastError).toBe('');
    expect(copy.message!.queue).toBe(dlq);
    expect(copy.message!.id).not.toBe(id);
    expect(text(copy.message!.payload)).toBe('poison');
    expect(copy.deadLetterOrigin).toMatchObject({ queue: src, messageId: id, attempts: 1, lastError: 'handler exploded' });
    expect(copy.deadLetterOrigin!.enqueuedAt!.getTime()).toBe(failed.createdAt!.getTime());
    expect((await a.get(dlq, copy.message!.id)).deadLetterOrigin).toEqual(copy.deadLetterOrigin);
  });

  it('expired and dropped: pg-boss cancelled, told apart by their output', async () => {
    const q = fresh('cancelled');
    await a.createQueue(q);
    const [exp, drop, live] = await a.sendTo(q, 'expired', 'dropped', 'live');
    // As the TTL sweep and the overflow policy leave them.
    await db.query(`UPDATE inboxd.job SET state = 'cancelled', completed_on = now(), output = '{"expired": true}'::jsonb WHERE name = $1 AND id = $2`, [
      q,
      exp,
    ]);
    await db.query(
      `UPDATE inboxd.job SET state = 'cancelled', completed_on = now(), output = '{"dropped": "drop_oldest"}'::jsonb WHERE name = $1 AND id = $2`,
      [q, drop],
    );

    const e = await a.get(q, exp);
    expect(e.state).toBe(MessageState.MESSAGE_STATE_EXPIRED);
    expect(e.completedAt).toBeInstanceOf(Date);
    expect(e.lastError).toMatch(/expired/);
    const dr = await a.get(q, drop);
    expect(dr.state).toBe(MessageState.MESSAGE_STATE_DROPPED);
    expect(dr.lastError).toMatch(/drop_oldest/);
    expect(idsIn((await a.list(q, { state: MessageState.MESSAGE_STATE_EXPIRED })).messages)).toEqual([exp]);
    expect(idsIn((await a.list(q, { state: MessageState.MESSAGE_STATE_DROPPED })).messages)).toEqual([drop]);
    expect(idsIn((await a.list(q, { state: MessageState.MESSAGE_STATE_QUEUED })).messages)).toEqual([live]);
  });
});

describe('ListMessages: paging', () => {
  it('pages oldest first and newest first with no duplicates or gaps while new messages are sent', async () => {
    const q = fresh('paging');
    await a.createQueue(q);
    const original: string[] = [];
    // Single sends (distinct created_on) and batches (one created_on for many rows: the id breaks ties).
    for (let i = 0; i < 6; i++) original.push(...(await a.sendTo(q, `single-${i}`)));
    original.push(...(await a.sendTo(q, ...Array.from({ length: 12 }, (_, i) => `batch-${i}`))));
    for (let i = 0; i < 5; i++) original.push(...(await a.sendTo(q, `tail-${i}`)));

    for (const newestFirst of [false, true]) {
      const seen: MessageInfo[] = [];
      const sentMeanwhile: string[] = [];
      let pageToken = '';
      let pages = 0;
      do {
        const res = await a.list(q, { pageSize: 4, pageToken, newestFirst });
        expect(res.messages.length).toBeLessThanOrEqual(4);
        seen.push(...res.messages);
        pageToken = res.nextPageToken;
        pages++;
        // New messages arrive between pages.
        sentMeanwhile.push(...(await a.sendTo(q, `meanwhile-${newestFirst}-${pages}`)));
      } while (pageToken);
      const ids = idsIn(seen);
      expect(new Set(ids).size).toBe(ids.length);
      for (const id of original) expect(ids).toContain(id);
      expect(pages).toBeGreaterThan(5);
      const times = seen.map(s => s.createdAt!.getTime());
      expect(times).toEqual([...times].sort((x, y) => (newestFirst ? y - x : x - y)));
      if (newestFirst) {
        // Newer than the first page: never reached.
        for (const id of sentMeanwhile) expect(ids).not.toContain(id);
      } else {
        // Oldest first, a message sent meanwhile comes at the end (all but the one sent after the last page).
        for (const id of sentMeanwhile.slice(0, -1)) expect(ids).toContain(id);
      }
      original.push(...sentMeanwhile);
    }
  });

  it('page_size 0 means 100, and the last page has no token', async () => {
    const q = fresh('page-default');
    await a.createQueue(q);
    await a.sendTo(q, ...Array.from({ length: 101 }, (_, i) => `m${i}`));
    const first = await a.list(q);
    expect(first.messages).toHaveLength(100);
    expect(first.nextPageToken).not.toBe('');
    const second = await a.list(q, { pageToken: first.nextPageToken });
    expect(second.messages).toHaveLength(1);
    expect(second.nextPageToken).toBe('');
  });

  it('a state filter pages like the rest', async () => {
    const q = fresh('page-filter');
    await a.createQueue(q);
    await a.sendTo(q, ...Array.from({ length: 10 }, (_, i) => `m${i}`));
    const leased = (await a.lease(q, 5)).deliveries.map(d => d.message!.id);
    expect(idsIn(await listAll(q, { state: MessageState.MESSAGE_STATE_LEASED, pageSize: 2 })).sort()).toEqual([...leased].sort());
    expect(await listAll(q, { state: MessageState.MESSAGE_STATE_QUEUED, pageSize: 3 })).toHaveLength(5);
  });
});

describe('errors', () => {
  it('a bad page token, page size or state is INVALID_ARGUMENT', async () => {
    const q = fresh('errors');
    await a.createQueue(q);
    await a.sendTo(q, 'a', 'b', 'c');
    const { nextPageToken } = await a.list(q, { pageSize: 1 });
    expect(nextPageToken).toMatch(/^[A-Za-z0-9_-]+$/);
    await expectStatus(a.list(q, { pageToken: 'not a token!' }), status.INVALID_ARGUMENT, 'page_token');
    await expectStatus(a.list(q, { pageToken: Buffer.from('a:12:nope').toString('base64url') }), status.INVALID_ARGUMENT, 'page_token');
    await expectStatus(a.list(q, { pageToken: nextPageToken, newestFirst: true }), status.INVALID_ARGUMENT, 'newest_first');
    await expectStatus(a.list(q, { pageSize: 1001 }), status.INVALID_ARGUMENT, 'page_size');
    await expectStatus(a.list(q, { state: 99 as MessageState }), status.INVALID_ARGUMENT, 'state');
    await expectStatus(a.get(q, 'not-a-uuid'), status.INVALID_ARGUMENT, 'id');
    await expectStatus(a.get(q, ''), status.INVALID_ARGUMENT, 'id is required');
    await expectStatus(a.list(''), status.INVALID_ARGUMENT, 'queue is required');
  });

  it('a missing queue or an unknown id is NOT_FOUND', async () => {
    await expectStatus(a.list(fresh('no-such-queue')), status.NOT_FOUND, 'not found');
    await expectStatus(a.get(fresh('no-such-queue'), randomUUID()), status.NOT_FOUND, 'not found');
    const q = fresh('unknown-id');
    await a.createQueue(q);
    // The answer says what the queue keeps of acked messages: the likeliest reason one is gone.
    await expectStatus(a.get(q, randomUUID()), status.NOT_FOUND, 'keeps acked messages for its acked_retention, 1h');
    const none = fresh('unknown-id-none');
    await a.createQueue(none, { ackedRetention: dur(0) });
    await expectStatus(a.get(none, randomUUID()), status.NOT_FOUND, 'keeps no acked messages: an ack deletes it (acked_retention 0)');
  });
});

describe('SDK: client.messages', () => {
  it('list iterates every page as typed MessageInfo; get returns one', async () => {
    const q = fresh('sdk-browse');
    await client.queues.create(q);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await client.sendJson(q, { i }));
    await client.flush();
    const [m] = await client.lease(q);
    await m.nack(3_600_000);

    const all = [];
    for await (const info of client.messages.list(q, { pageSize: 2 })) all.push(info);
    expect(all.map(i => i.message.id).sort()).toEqual([...ids].sort());
    const newest = [];
    for await (const info of client.messages.list(q, { pageSize: 2, newestFirst: true })) newest.push(info.message.id);
    expect(newest).toEqual(all.map(i => i.message.id).reverse());

    const delayed = [];
    for await (const info of client.messages.list(q, { state: 'delayed' })) delayed.push(info);
    expect(delayed).toHaveLength(1);
    expect(delayed[0]).toMatchObject({ state: 'delayed', attempts: 1, lastError: 'nacked', message: { id: m.id, queue: q, contentType: 'application/json' } });
    expect(JSON.parse(delayed[0].message.payload.toString())).toEqual(m.json());

    const page = await client.messages.page(q, { state: 'queued', pageSize: 3 });
    expect(page.messages).toHaveLength(3);
    expect(page.messages.every(i => i.state === 'queued')).toBe(true);
    expect((await client.messages.page(q, { state: 'queued', pageSize: 3, pageToken: page.nextPageToken })).messages).toHaveLength(1);

    const got = await client.messages.get(q, ids[0]);
    expect(got.message.id).toBe(ids[0]);
    expect(got.createdAt).toBeInstanceOf(Date);

    const err = await client.messages.get(q, randomUUID()).catch(e => e);
    expect(err).toBeInstanceOf(InboxdError);
    expect(err.code).toBe(Code.NOT_FOUND);
    await expect(client.messages.page(q, { state: 'bogus' as never })).rejects.toThrow(RangeError);
  });
});
