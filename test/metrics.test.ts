/**
 * The Prometheus endpoint of a server process: scraped before and after traffic, the counters
 * moved by what was done, and the gauges read from the database.
 */

import { randomUUID } from 'node:crypto';
import {
  LeaseRequest,
  NackRequest,
  SendRequest,
  SendStreamRequest,
  type SendStreamResponse,
  SubscribeRequest,
  type SubscribeResponse,
} from '@inboxd/proto/v1/inbox';
import { CreateQueueRequest } from '@inboxd/proto/v1/queues';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Clients, call, connect, dur, migratedDatabase, type ServerProcess, spawnServer, waitFor } from './support/harness.js';

/** Samples of a Prometheus text exposition: name, labels, value. */
function samples(text: string): { name: string; labels: Record<string, string>; value: number }[] {
  const out: { name: string; labels: Record<string, string>; value: number }[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, k, v] of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[k] = v;
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

describe('metrics endpoint', () => {
  let server: ServerProcess;
  let c: Clients;
  let url: string;

  beforeAll(async () => {
    server = await spawnServer(await migratedDatabase());
    url = /"metrics":"(http:\/\/[^"]+)"/.exec(server.output())![1];
    c = connect(server.address);
  });
  afterAll(async () => {
    c?.close();
    server?.proc.kill('SIGTERM');
    await server?.exited;
  });

  const scrape = async () => {
    const res = await fetch(url);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/plain');
    return samples(await res.text());
  };
  /** The value of `name` with exactly these labels (0 when absent: a counter not yet moved). */
  const value = (s: ReturnType<typeof samples>, name: string, labels: Record<string, string> = {}) =>
    s.find(x => x.name === name && Object.keys(x.labels).length === Object.keys(labels).length && Object.entries(labels).every(([k, v]) => x.labels[k] === v))
      ?.value ?? 0;

  it('logs its address at start, serves GET /metrics, and 404 elsewhere', async () => {
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    expect(server.output()).toContain(`"msg":"metrics on ${url}"`);
    expect((await fetch(url.replace('/metrics', '/'))).status).toBe(404);
    const s = await scrape();
    // Process metrics and pool sizes are there from the start.
    expect(value(s, 'process_cpu_seconds_total')).toBeGreaterThan(0);
    expect(s.some(x => x.name === 'nodejs_eventloop_lag_seconds')).toBe(true);
    expect(value(s, 'inboxd_db_pool_connections', { pool: 'pgboss', state: 'max' })).toBe(20);
    expect(value(s, 'inboxd_database_up')).toBe(1);
    expect(value(s, 'inboxd_db_pool_connections', { pool: 'pgboss', state: 'total' })).toBeGreaterThan(0);
  });

  it('counts messages sent, leased, acked, nacked, dead-lettered and expired per queue; depths, latencies and streams', async () => {
    const a = `m-a-${randomUUID().slice(0, 6)}`;
    const b = `m-b-${randomUUID().slice(0, 6)}`;
    const before = await scrape();
    for (const q of [a, b]) expect(value(before, 'inboxd_messages_sent_total', { queue: q })).toBe(0);
    const sendsBefore = value(before, 'inboxd_rpc_duration_seconds_count', { method: 'Inbox/Send' });

    await call(c.queues, c.queues.createQueue, CreateQueueRequest.fromPartial({ name: a, config: { maxAttempts: 1 } }));
    await call(c.queues, c.queues.createQueue, CreateQueueRequest.fromPartial({ name: b }));
    const ids = [randomUUID(), randomUUID(), randomUUID()];
    await call(c.inbox, c.inbox.send, SendRequest.fromPartial({ messages: ids.map(id => ({ id, queue: a, payload: Buffer.from('x') })) }));
    // A resend of one id stores nothing new.
    await call(c.inbox, c.inbox.send, SendRequest.fromPartial({ messages: [{ id: ids[0], queue: a, payload: Buffer.from('x') }] }));
    await call(c.inbox, c.inbox.send, SendRequest.fromPartial({ messages: [0, 1, 2].map(() => ({ queue: b, payload: Buffer.from('y') })) }));

    // a: lease 2; ack one, nack the other (its only attempt: dead-lettered); lease the third for 1s and let it expire (dead-lettered too).
    const two = (await call(c.inbox, c.inbox.lease, LeaseRequest.fromPartial({ queue: a, maxMessages: 2, visibilityTimeout: dur(30) }))).deliveries;
    expect(two).toHaveLength(2);
    await call(c.inbox, c.inbox.ack, { leaseTokens: [two[0].leaseToken] });
    expect((await call(c.inbox, c.inbox.nack, NackRequest.fromPartial({ leaseTokens: [two[1].leaseToken] }))).deadLettered).toBe(1);
    expect((await call(c.inbox, c.inbox.lease, LeaseRequest.fromPartial({ queue: a, visibilityTimeout: dur(1) }))).deliveries).toHaveLength(1);

    // b: lease one and nack it for a minute (delayed); a Subscribe stream holds another.
    const one = (await call(c.inbox, c.inbox.lease, LeaseRequest.fromPartial({ queue: b }))).deliveries;
    await call(c.inbox, c.inbox.nack, NackRequest.fromPartial({ leaseTokens: [one[0].leaseToken], delay: dur(60) }));
    const stream = c.inbox.subscribe();
    const held: SubscribeResponse[] = [];
    stream.on('data', (r: SubscribeResponse) => held.push(r));
    stream.on('error', () => {});
    stream.write(SubscribeRequest.fromPartial({ queue: b, flowControl: { maxOutstandingMessages: 1 } }));
    await waitFor(() => held.some(r => r.deliveries.length > 0), 10_000, 'a delivery on the stream');

    await waitFor(async () => value(await scrape(), 'inboxd_leases_expired_total', { queue: a }) === 1, 10_000, 'the 1s lease to expire');
    const s = await scrape();
    expect({
      sent: value(s, 'inboxd_messages_sent_total', { queue: a }),
      duplicate: value(s, 'inboxd_messages_duplicate_total', { queue: a }),
      leased: value(s, 'inboxd_messages_leased_total', { queue: a }),
      acked: value(s, 'inboxd_messages_acked_total', { queue: a }),
      nacked: value(s, 'inboxd_messages_nacked_total', { queue: a }),
      deadLettered: value(s, 'inboxd_messages_dead_lettered_total', { queue: a }),
      expired: value(s, 'inboxd_leases_expired_total', { queue: a }),
    }).toEqual({ sent: 3, duplicate: 1, leased: 3, acked: 1, nacked: 0, deadLettered: 2, expired: 1 });
    expect({
      sent: value(s, 'inboxd_messages_sent_total', { queue: b }),
      leased: value(s, 'inboxd_messages_leased_total', { queue: b }),
      nacked: value(s, 'inboxd_messages_nacked_total', { queue: b }),
      depth: value(s, 'inboxd_queue_depth', { queue: b }),
      ready: value(s, 'inboxd_queue_ready', { queue: b }),
      delayed: value(s, 'inboxd_queue_delayed', { queue: b }),
      leasedNow: value(s, 'inboxd_queue_leased', { queue: b }),
    }).toEqual({ sent: 3, leased: 2, nacked: 1, depth: 2, ready: 1, delayed: 1, leasedNow: 1 });
    expect(value(s, 'inboxd_queue_oldest_age_seconds', { queue: b })).toBeGreaterThan(0);
    expect(value(s, 'inboxd_queue_depth', { queue: a })).toBe(0);
    expect(value(s, 'inboxd_queue_dead_lettered', { queue: a })).toBe(2);

    // Latency histograms and call counts, by method; the open stream.
    expect(value(s, 'inboxd_rpc_duration_seconds_count', { method: 'Inbox/Send' }) - sendsBefore).toBe(3);
    expect(value(s, 'inboxd_rpc_duration_seconds_bucket', { method: 'Inbox/Send', le: '+Inf' })).toBe(
      value(s, 'inboxd_rpc_duration_seconds_count', { method: 'Inbox/Send' }),
    );
    expect(value(s, 'inboxd_rpc_duration_seconds_sum', { method: 'Inbox/Lease' })).toBeGreaterThan(0);
    expect(value(s, 'inboxd_rpc_duration_seconds_count', { method: 'Inbox/Ack' })).toBe(1);
    expect(value(s, 'inboxd_rpc_handled_total', { method: 'Queues/CreateQueue', code: 'OK' })).toBe(2);
    expect(value(s, 'inboxd_open_streams', { method: 'Inbox/Subscribe' })).toBe(1);

    // The stream closes: its held message is released (not a client nack), the stream count drops.
    stream.end();
    await waitFor(async () => value(await scrape(), 'inboxd_open_streams', { method: 'Inbox/Subscribe' }) === 0, 10_000, 'the stream to close');
    await waitFor(async () => value(await scrape(), 'inboxd_messages_released_total', { queue: b }) === 1, 10_000, 'the held message to be released');
    const end = await scrape();
    expect(value(end, 'inboxd_messages_nacked_total', { queue: b })).toBe(1);
    expect(value(end, 'inboxd_rpc_handled_total', { method: 'Inbox/Subscribe', code: 'OK' })).toBe(1);

    // Message TTL: an expired message is counted (in Postgres, read at scrape time).
    const t = `m-t-${randomUUID().slice(0, 6)}`;
    await call(c.queues, c.queues.createQueue, CreateQueueRequest.fromPartial({ name: t, config: { messageTtl: dur(1) } }));
    await call(
      c.inbox,
      c.inbox.send,
      SendRequest.fromPartial({
        messages: [
          { queue: t, payload: Buffer.from('z') },
          { queue: t, payload: Buffer.from('z') },
        ],
      }),
    );
    await waitFor(async () => value(await scrape(), 'inboxd_messages_expired_total', { queue: t }) === 2, 10_000, 'two messages to expire by TTL');
    const ttl = await scrape();
    expect(value(ttl, 'inboxd_queue_depth', { queue: t })).toBe(0);
    expect(value(ttl, 'inboxd_messages_dropped_total', { queue: t })).toBe(0);
    expect(ttl.find(x => x.name === 'inboxd_messages_dropped_total' && x.labels.queue === t)).toBeDefined();

    // A failed call is counted with its code.
    await call(c.inbox, c.inbox.lease, LeaseRequest.fromPartial({ queue: 'no-such-queue' })).catch(() => {});
    expect(value(await scrape(), 'inboxd_rpc_handled_total', { method: 'Inbox/Lease', code: 'NOT_FOUND' })).toBe(1);
  });

  it('times each SendStream batch, stored or refused, as the SDK sends there', async () => {
    const q = `m-s-${randomUUID().slice(0, 6)}`;
    await call(c.queues, c.queues.createQueue, CreateQueueRequest.fromPartial({ name: q }));
    const before = value(await scrape(), 'inboxd_rpc_duration_seconds_count', { method: 'Inbox/SendStream' });
    const stream = c.inbox.sendStream();
    const answers: SendStreamResponse[] = [];
    stream.on('data', (r: SendStreamResponse) => answers.push(r));
    stream.write(SendStreamRequest.fromPartial({ sequence: '1', messages: [{ queue: q, payload: Buffer.from('a') }] }));
    stream.write(SendStreamRequest.fromPartial({ sequence: '2', messages: [{ queue: 'no-such-queue', payload: Buffer.from('b') }] }));
    await waitFor(() => answers.length === 2, 10_000, 'both batches answered');
    stream.end();
    expect(answers.map(a => [a.sequence, a.errorCode]).sort()).toEqual([
      ['1', 0],
      ['2', 5],
    ]);
    const s = await scrape();
    expect(value(s, 'inboxd_rpc_duration_seconds_count', { method: 'Inbox/SendStream' }) - before).toBe(2);
    expect(value(s, 'inboxd_rpc_duration_seconds_sum', { method: 'Inbox/SendStream' })).toBeGreaterThan(0);
  });
});
