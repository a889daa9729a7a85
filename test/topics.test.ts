import { createHash, randomUUID } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { GetMessageRequest, LeaseRequest, PublishRequest, type PublishResponse, SendRequest } from '@inboxd/proto/v1/inbox';
import type { Message } from '@inboxd/proto/v1/message';
import {
  AddTopicSubscriptionRequest,
  CreateQueueRequest,
  DeleteQueueRequest,
  GetQueueStatsRequest,
  ListTopicsRequest,
  type QueueConfig,
  RemoveTopicSubscriptionRequest,
  type Topic,
} from '@inboxd/proto/v1/queues';
import { Code, createClient, type InboxdClient, InboxdError, type ReceivedMessage } from '@inboxd/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { counts, expectStatus } from './support/expect.js';
import { type Clients, call, dur, migratedDatabase, startServer, waitFor } from './support/harness.js';

type Server = Awaited<ReturnType<typeof startServer>>;

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const text = (b: Uint8Array | undefined) => Buffer.from(b ?? []).toString('utf8');

function api(c: Clients) {
  const { inbox, queues } = c;
  return {
    createQueue: (name: string, config?: Partial<QueueConfig>) => call(queues, queues.createQueue, CreateQueueRequest.fromPartial({ name, config })),
    deleteQueue: (name: string) => call(queues, queues.deleteQueue, DeleteQueueRequest.fromPartial({ name })),
    subscribe: (topic: string, queue: string) => call(queues, queues.addTopicSubscription, AddTopicSubscriptionRequest.fromPartial({ topic, queue })),
    unsubscribe: (topic: string, queue: string) => call(queues, queues.removeTopicSubscription, RemoveTopicSubscriptionRequest.fromPartial({ topic, queue })),
    listTopics: (pageSize = 0, pageToken = '') => call(queues, queues.listTopics, ListTopicsRequest.fromPartial({ pageSize, pageToken })),
    publish: (topic: string, messages: Partial<Message>[]): Promise<PublishResponse> =>
      call(inbox, inbox.publish, PublishRequest.fromPartial({ topic, messages })),
    send: (messages: Partial<Message>[]) => call(inbox, inbox.send, SendRequest.fromPartial({ messages })),
    lease: (queue: string, max = 100) => call(inbox, inbox.lease, LeaseRequest.fromPartial({ queue, maxMessages: max, visibilityTimeout: dur(30) })),
    get: (queue: string, id: string) => call(inbox, inbox.getMessage, GetMessageRequest.fromPartial({ queue, id })),
    stats: async (name: string) => counts((await call(queues, queues.getQueueStats, GetQueueStatsRequest.fromPartial({ name }))).stats!),
  };
}

let srv: Server;
let a: ReturnType<typeof api>;
let client: InboxdClient;
let n = 0;
const fresh = (tag: string) => `${tag}-${++n}`;

/** Every topic, through every page. */
async function allTopics(pageSize = 0): Promise<Topic[]> {
  const out: Topic[] = [];
  let token = '';
  do {
    const res = await a.listTopics(pageSize, token);
    out.push(...res.topics);
    token = res.nextPageToken;
  } while (token);
  return out;
}

beforeAll(async () => {
  srv = await startServer(await migratedDatabase());
  a = api(srv.clients);
  client = createClient({ address: srv.app.address, poolSize: 1 });
});
afterAll(async () => {
  await client?.close();
  await srv?.stop();
});

describe('Publish', () => {
  it('stores one copy of each message in every subscribed queue, each a full message with its own id', async () => {
    const topic = fresh('orders');
    const [q1, q2, other] = [fresh('billing'), fresh('shipping'), fresh('unsubscribed')];
    for (const q of [q1, q2, other]) await a.createQueue(q);
    await a.subscribe(topic, q1);
    await a.subscribe(topic, q2);

    const res = await a.publish(topic, [
      {
        payload: Buffer.from('first'),
        contentType: 'text/plain',
        headers: { trace: 't-1' },
        subject: 'order.created',
        correlationId: 'c-1',
        replyTo: other,
        priority: 3,
        queue: 'ignored-anyway',
      },
      { payload: Buffer.from('second') },
    ]);

    expect(res.results).toHaveLength(2);
    for (const [i, r] of res.results.entries()) {
      // One copy per subscribed queue, in queue name order, each naming its queue.
      expect(r.copies.map(c => c.queue)).toEqual([q1, q2].sort());
      expect(r.copies.every(c => !c.duplicate)).toBe(true);
      expect(r.copies.every(c => c.contentHash === sha256(Buffer.from(i === 0 ? 'first' : 'second')))).toBe(true);
    }
    const ids = res.results.flatMap(r => r.copies.map(c => c.id));
    expect(new Set(ids).size).toBe(4);

    for (const q of [q1, q2]) {
      const leased = (await a.lease(q)).deliveries.map(d => d.message!);
      expect(leased.map(m => text(m.payload)).sort()).toEqual(['first', 'second']);
      const first = leased.find(m => text(m.payload) === 'first')!;
      expect(first).toMatchObject({
        queue: q,
        contentType: 'text/plain',
        headers: { trace: 't-1' },
        subject: 'order.created',
        correlationId: 'c-1',
        replyTo: other,
        priority: 3,
        contentHash: sha256(Buffer.from('first')),
      });
      expect(first.enqueuedAt).toBeInstanceOf(Date);
      // The id each copy reports is the id it has in its queue.
      const copy = res.results[0].copies.find(c => c.queue === q)!;
      expect(first.id).toBe(copy.id);
    }
    expect(await a.stats(other)).toMatchObject({ depth: 0 });
  });

  it('a topic nobody subscribed to stores nothing: one result per message, with no copies', async () => {
    const q = fresh('bystander');
    await a.createQueue(q);
    const res = await a.publish(fresh('nobody-listens'), [{ payload: Buffer.from('x') }, { payload: Buffer.from('y') }]);
    expect(res.results).toEqual([{ copies: [] }, { copies: [] }]);
    expect(await a.stats(q)).toMatchObject({ depth: 0 });
  });

  it('a queue subscribed twice gets one copy: a repeated add is idempotent', async () => {
    const topic = fresh('twice');
    const q = fresh('twice-q');
    await a.createQueue(q);
    await a.subscribe(topic, q);
    await a.subscribe(topic, q);
    const res = await a.publish(topic, [{ payload: Buffer.from('once') }]);
    expect(res.results[0].copies.map(c => c.queue)).toEqual([q]);
    expect(await a.stats(q)).toMatchObject({ depth: 1 });
    expect((await allTopics()).find(t => t.name === topic)).toEqual({ name: topic, queues: [q] });
  });

  it('a client-chosen id makes a retried Publish idempotent: every copy reports duplicate, nothing is stored twice', async () => {
    const topic = fresh('retry');
    const [q1, q2] = [fresh('retry-a'), fresh('retry-b')];
    for (const q of [q1, q2]) {
      await a.createQueue(q);
      await a.subscribe(topic, q);
    }
    const id = randomUUID();
    const first = await a.publish(topic, [{ id, payload: Buffer.from('p') }]);
    const again = await a.publish(topic, [{ id, payload: Buffer.from('p') }]);
    expect(first.results[0].copies.map(c => c.duplicate)).toEqual([false, false]);
    expect(again.results[0].copies.map(c => c.duplicate)).toEqual([true, true]);
    expect(again.results[0].copies.map(c => c.id)).toEqual(first.results[0].copies.map(c => c.id));
    // Each copy has an id of its own, derived from the client's.
    const [c1, c2] = first.results[0].copies;
    expect(c1.id).not.toBe(c2.id);
    expect(c1.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(await a.stats(q1)).toMatchObject({ depth: 1 });
    expect(await a.stats(q2)).toMatchObject({ depth: 1 });
  });

  it('copies take the send path: each queue applies its own settings (message_ttl stamps expires_at)', async () => {
    const topic = fresh('ttl');
    const [plain, short] = [fresh('ttl-plain'), fresh('ttl-short')];
    await a.createQueue(plain);
    await a.createQueue(short, { messageTtl: dur(600) });
    await a.subscribe(topic, plain);
    await a.subscribe(topic, short);
    const before = Date.now();
    const [r] = (await a.publish(topic, [{ payload: Buffer.from('t') }])).results;
    const byQueue = new Map(r.copies.map(c => [c.queue, c.id]));
    const p = (await a.get(plain, byQueue.get(plain)!)).message!.message!;
    const s = (await a.get(short, byQueue.get(short)!)).message!.message!;
    expect(p.expiresAt).toBeUndefined();
    expect(s.expiresAt!.getTime()).toBeGreaterThanOrEqual(before + 600_000 - 5000);
    expect(s.expiresAt!.getTime()).toBeLessThanOrEqual(Date.now() + 600_000 + 5000);
  });

  it('wakes subscribers of every subscribed queue at once (no polling)', async () => {
    const topic = fresh('wake');
    const queues = [fresh('wake-a'), fresh('wake-b'), fresh('wake-c')];
    const got = new Map<string, ReceivedMessage>();
    const subs = [];
    for (const q of queues) {
      await client.queues.create(q);
      await client.topics.subscribe(topic, q);
      subs.push(client.subscribe(q, m => void got.set(q, m)));
    }
    const copies = await client.publishJson(topic, { hello: 'agents' });
    expect(copies.map(c => c.queue)).toEqual([...queues].sort());
    // The harness polls every 60 s: only wake-ups can deliver this fast.
    await waitFor(() => got.size === 3, 5000, 'a copy on every subscription');
    for (const q of queues) {
      expect(got.get(q)!.json()).toEqual({ hello: 'agents' });
      expect(got.get(q)!.contentType).toBe('application/json');
      expect(got.get(q)!.id).toBe(copies.find(c => c.queue === q)!.id);
    }
    await Promise.all(subs.map(s => s.close()));
  });

  it('rejects a bad topic name, an empty batch and invalid messages with INVALID_ARGUMENT', async () => {
    await expectStatus(a.publish('', [{ payload: Buffer.from('x') }]), status.INVALID_ARGUMENT, 'topic is required');
    await expectStatus(a.publish('bad topic!', [{ payload: Buffer.from('x') }]), status.INVALID_ARGUMENT, 'topic "bad topic!" is not a valid queue name');
    await expectStatus(a.publish(fresh('t'), []), status.INVALID_ARGUMENT, 'messages is empty');
    await expectStatus(a.publish(fresh('t'), [{ id: 'not-a-uuid' }]), status.INVALID_ARGUMENT, 'messages[0].id');
  });
});

describe('topic subscriptions', () => {
  it('adding a subscription for a missing queue is NOT_FOUND; bad names are INVALID_ARGUMENT', async () => {
    await expectStatus(a.subscribe(fresh('t'), fresh('no-such-queue')), status.NOT_FOUND, 'not found');
    await expectStatus(a.subscribe('-bad', 'q'), status.INVALID_ARGUMENT, 'topic');
    await expectStatus(a.subscribe('good', 'bad name'), status.INVALID_ARGUMENT, 'queue');
  });

  it('unsubscribing stops the copies; removing a subscription that does not exist succeeds', async () => {
    const topic = fresh('unsub');
    const [q1, q2] = [fresh('unsub-a'), fresh('unsub-b')];
    for (const q of [q1, q2]) {
      await a.createQueue(q);
      await a.subscribe(topic, q);
    }
    await a.unsubscribe(topic, q1);
    await a.unsubscribe(topic, q1);
    await a.unsubscribe(fresh('never-was'), q1);
    const res = await a.publish(topic, [{ payload: Buffer.from('after') }]);
    expect(res.results[0].copies.map(c => c.queue)).toEqual([q2]);
    expect(await a.stats(q1)).toMatchObject({ depth: 0 });
    expect(await a.stats(q2)).toMatchObject({ depth: 1 });
    // A topic whose last queue left is no longer listed.
    await a.unsubscribe(topic, q2);
    expect((await allTopics()).map(t => t.name)).not.toContain(topic);
  });

  it('deleting a subscribed queue removes its subscriptions', async () => {
    const [t1, t2] = [fresh('del-t1'), fresh('del-t2')];
    const [gone, stays] = [fresh('del-gone'), fresh('del-stays')];
    await a.createQueue(gone);
    await a.createQueue(stays);
    await a.subscribe(t1, gone);
    await a.subscribe(t1, stays);
    await a.subscribe(t2, gone);
    await a.deleteQueue(gone);

    const topics = await allTopics();
    expect(topics.find(t => t.name === t1)).toEqual({ name: t1, queues: [stays] });
    expect(topics.find(t => t.name === t2)).toBeUndefined();
    expect((await a.publish(t1, [{ payload: Buffer.from('x') }])).results[0].copies.map(c => c.queue)).toEqual([stays]);
    expect((await a.publish(t2, [{ payload: Buffer.from('x') }])).results[0].copies).toEqual([]);

    // A queue created again under the same name starts with no subscriptions.
    await a.createQueue(gone);
    expect((await a.publish(t2, [{ payload: Buffer.from('x') }])).results[0].copies).toEqual([]);
    expect(await a.stats(gone)).toMatchObject({ depth: 0 });
  });

  it('ListTopics pages through topics in name order, each with its queues', async () => {
    const prefix = `pages-${randomUUID().slice(0, 8)}`;
    const q = fresh('pages-q');
    const q2 = fresh('pages-q2');
    await a.createQueue(q);
    await a.createQueue(q2);
    const names = Array.from({ length: 5 }, (_, i) => `${prefix}.${i}`);
    for (const t of names) await a.subscribe(t, q);
    await a.subscribe(names[2], q2);

    const first = await a.listTopics(2);
    expect(first.topics).toHaveLength(2);
    expect(first.nextPageToken).not.toBe('');
    const all = await allTopics(2);
    const mine = all.filter(t => t.name.startsWith(prefix));
    expect(mine.map(t => t.name)).toEqual(names);
    expect(mine[2].queues).toEqual([q, q2].sort());
    const sorted = all.map(t => t.name);
    expect(sorted).toEqual([...sorted].sort());
    expect(new Set(sorted).size).toBe(sorted.length);

    await expectStatus(a.listTopics(0, '!!!'), status.INVALID_ARGUMENT, 'page_token');
    await expectStatus(a.listTopics(1001), status.INVALID_ARGUMENT, 'page_size');
  });
});

describe('SDK: client.topics and client.publish', () => {
  it('subscribe, list, publish and unsubscribe', async () => {
    const topic = fresh('sdk-topic');
    const [q1, q2] = [fresh('sdk-a'), fresh('sdk-b')];
    await client.queues.create(q1);
    await client.queues.create(q2);
    await client.topics.subscribe(topic, q1);
    await client.topics.subscribe(topic, q2);
    await client.topics.subscribe(topic, q2);

    const listed = [];
    for await (const t of client.topics.list(1)) listed.push(t);
    expect(listed.find(t => t.name === topic)).toEqual({ name: topic, queues: [q1, q2].sort() });

    const copies = await client.publish(topic, 'hi', { subject: 's', headers: { k: 'v' } });
    expect(copies.map(c => c.queue)).toEqual([q1, q2].sort());
    expect(copies.every(c => !c.duplicate && c.contentHash === sha256(Buffer.from('hi')))).toBe(true);
    const [m] = await client.lease(q1);
    expect(m).toMatchObject({ id: copies.find(c => c.queue === q1)!.id, subject: 's', headers: { k: 'v' } });
    expect(m.text()).toBe('hi');
    await m.ack();

    // The SDK chooses the message id, so a retried publish stores no copy twice.
    const id = randomUUID();
    const once = await client.publish(topic, 'x', { id });
    const twice = await client.publish(topic, 'x', { id });
    expect(twice.map(c => c.duplicate)).toEqual([true, true]);
    expect(twice.map(c => c.id)).toEqual(once.map(c => c.id));

    await client.topics.unsubscribe(topic, q1);
    expect((await client.publish(topic, 'y')).map(c => c.queue)).toEqual([q2]);
    expect(await client.publish(fresh('empty-topic'), 'z')).toEqual([]);

    const err = await client.topics.subscribe(topic, fresh('missing')).catch(e => e);
    expect(err).toBeInstanceOf(InboxdError);
    expect(err.code).toBe(Code.NOT_FOUND);
  });

  it("an agent group: a topic whose queues are its members' inboxes", async () => {
    const group = fresh('team.research');
    const members = ['agent.alice', 'agent.bob', 'agent.carol'].map(fresh);
    for (const inbox of members) {
      await client.queues.ensure(inbox);
      await client.topics.subscribe(group, inbox);
    }
    const copies = await client.publishJson(group, { task: 'summarise', url: 'https://example.com' });
    expect(copies).toHaveLength(3);
    for (const inbox of members) {
      const [m] = await client.lease(inbox);
      expect(m.json()).toEqual({ task: 'summarise', url: 'https://example.com' });
      await m.ack();
    }
    // A direct message to one member still goes to that inbox alone.
    await client.send(members[0], 'just for alice');
    expect(await client.queues.stats(members[0])).toMatchObject({ depth: 1 });
    expect(await client.queues.stats(members[1])).toMatchObject({ depth: 0 });
  });
});
