/**
 * NATS JetStream beside inboxd (BENCH_NATS_URL, default nats://127.0.0.1:4222). Client: the
 * maintained v3 packages, @nats-io/transport-node + @nats-io/jetstream (not the older `nats` v2).
 *
 * Both scenarios use one setup (withNatsStream): a file-storage stream with workqueue retention (an
 * acked message is deleted, as an acked inboxd message leaves its queue) and one durable pull
 * consumer with explicit acks, deleted again afterwards; a broker that does not answer is skipped.
 *
 * peer_nats_jetstream: the e2e_throughput shape. The consumer is shared by the consumers
 * (competing, as inboxd subscribers on one queue); producers await each publish's JetStream ack
 * with PUBLISH_WINDOW in flight. Done when the stream is empty: every ack has been applied.
 *
 * latency_at_rate_nats: latency_at_rate's offered load (bench/lib/at-rate.ts): one publisher
 * connection awaiting each publish's PubAck, one consumer connection acking each message.
 */

import {
  AckPolicy,
  type ConsumerMessages,
  DeliverPolicy,
  type JetStreamManager,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
} from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { runAtRate } from '../lib/at-rate.js';
import { type Ctx, stampedPayload, stampOf } from '../lib/context.js';
import { benchPostgresCpuSeconds, cpuSecondsOf, ownCpuSeconds } from '../lib/cpu.js';
import type { Result } from '../lib/report.js';
import {
  CONNECT_TIMEOUT_MS,
  CONSUMERS,
  cpuMeter,
  deadlineMs,
  PREFETCH,
  PRODUCERS,
  PUBLISH_WINDOW,
  packageVersion,
  peerCount,
  peerResult,
  probe,
  skippedResult,
  ticker,
  tidy,
  windowed,
  withTimeout,
} from './peers.js';

const NAME = 'peer_nats_jetstream';
const LATENCY_NAME = 'latency_at_rate_nats';

/** What withNatsStream hands its body: a fresh stream with its durable consumer. */
interface NatsStream {
  url: string;
  admin: NatsConnection;
  jsm: JetStreamManager;
  stream: string;
  subject: string;
  durable: string;
  /** A new connection, closed when the scenario ends. */
  open(): Promise<NatsConnection>;
  /** Starts consuming the durable consumer on `nc` (stopped when the scenario ends). */
  consume(nc: NatsConnection, maxMessages: number, callback: (m: { data: Uint8Array; ack(): void }) => void): Promise<ConsumerMessages>;
  /** The setup, for the result's extra. */
  describe(consumer: string, publishing: string, connections: string): Record<string, unknown>;
}

/**
 * Connects (or returns `name` skipped, with the reason, when NATS or JetStream does not answer),
 * creates stream BENCH_<tag>_<pid> and its durable consumer, runs `body`, then stops consuming,
 * deletes the stream and closes every connection (each step bounded).
 */
async function withNatsStream(ctx: Ctx, name: string, tag: string, maxAckPending: number, body: (s: NatsStream) => Promise<Result>): Promise<Result> {
  const url = process.env.BENCH_NATS_URL ?? 'nats://127.0.0.1:4222';
  const opts = { servers: url, timeout: CONNECT_TIMEOUT_MS, reconnect: false };
  const open = () => withTimeout(connect(opts), CONNECT_TIMEOUT_MS + 500, `connect ${url}`);
  let admin: NatsConnection;
  try {
    await probe(url, 4222, CONNECT_TIMEOUT_MS);
    admin = await open();
  } catch (err) {
    return skippedResult(name, `NATS not reachable at ${url} (${(err as Error).message})`, { url });
  }
  const conns: NatsConnection[] = [admin];
  const stream = `BENCH_${tag}_${process.pid}`;
  const subject = `bench.${tag.toLowerCase()}.${process.pid}`;
  const durable = 'bench';
  const consumes: ConsumerMessages[] = [];
  let created = false;
  try {
    let jsm: JetStreamManager;
    try {
      jsm = await jetstreamManager(admin, { timeout: CONNECT_TIMEOUT_MS });
    } catch (err) {
      return skippedResult(name, `JetStream not available at ${url} (${(err as Error).message})`, { url });
    }
    await jsm.streams.delete(stream).catch(() => false); // a leftover of a killed run
    created = true;
    await jsm.streams.add({ name: stream, subjects: [subject], storage: StorageType.File, retention: RetentionPolicy.Workqueue, num_replicas: 1 });
    await jsm.consumers.add(stream, {
      durable_name: durable,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ack_wait: 60 * 1e9, // ns: e2e's visibilityTimeout
      max_ack_pending: maxAckPending,
    });
    return await body({
      url,
      admin,
      jsm,
      stream,
      subject,
      durable,
      open: async () => {
        const nc = await open();
        conns.push(nc);
        return nc;
      },
      consume: async (nc, maxMessages, callback) => {
        const consumer = await jetstream(nc).consumers.get(stream, durable);
        const c = await consumer.consume({ max_messages: maxMessages, callback });
        consumes.push(c);
        return c;
      },
      describe: (consumer, publishing, connections) => ({
        url,
        server: `nats-server ${admin.info?.version ?? '?'}`,
        client: `@nats-io/transport-node ${packageVersion('@nats-io/transport-node')} + @nats-io/jetstream ${packageVersion('@nats-io/jetstream')}`,
        stream: 'file storage, workqueue retention, 1 replica, server default sync (fsync every 2 min: a publish ack means written, not fsynced)',
        consumer,
        publishing,
        connections,
      }),
    });
  } finally {
    for (const c of consumes) await tidy(ctx, 'stop consume', () => c.close());
    if (created) await tidy(ctx, `delete stream ${stream}`, () => jetstreamManager(admin).then(m => m.streams.delete(stream)));
    for (const nc of conns) await tidy(ctx, 'close connection', () => nc.close());
  }
}

export async function peerNatsJetstream(ctx: Ctx): Promise<Result> {
  const n = peerCount(ctx);
  let handled = 0;
  return withNatsStream(ctx, NAME, 'PEERS', PREFETCH * CONSUMERS, async s => {
    const producerConns: NatsConnection[] = [];
    const consumerConns: NatsConnection[] = [];
    for (let i = 0; i < PRODUCERS; i++) producerConns.push(await s.open());
    for (let i = 0; i < CONSUMERS; i++) consumerConns.push(await s.open());

    const run = async () => {
      const latencies: number[] = [];
      let allHandled!: () => void;
      const done = new Promise<void>(r => (allHandled = r));
      for (const nc of consumerConns)
        await s.consume(nc, PREFETCH, m => {
          latencies.push(performance.now() - stampOf(m.data));
          m.ack();
          if (++handled === n) allHandled();
        });
      const cpu = cpuMeter('nats-server');
      const started = performance.now();
      const perProducer = (i: number) => Math.floor(n / PRODUCERS) + (i < n % PRODUCERS ? 1 : 0);
      await Promise.all(
        producerConns.map((nc, i) => {
          const js = jetstream(nc);
          return windowed(perProducer(i), PUBLISH_WINDOW, () => js.publish(s.subject, stampedPayload()));
        }),
      );
      const publishSeconds = (performance.now() - started) / 1000;
      await done;
      // Acks are fire-and-forget publishes: flush them, then wait until the stream has applied them all.
      await Promise.all(consumerConns.map(nc => nc.flush()));
      for (;;) {
        const info = await s.jsm.streams.info(s.stream);
        if (info.state.messages === 0) break;
        await new Promise(r => setTimeout(r, 10));
      }
      const seconds = (performance.now() - started) / 1000;
      const ci = await s.jsm.consumers.info(s.stream, s.durable);
      if (ci.num_ack_pending !== 0 || ci.num_pending !== 0)
        throw new Error(`${NAME}: consumer not drained: ${JSON.stringify({ ack_pending: ci.num_ack_pending, pending: ci.num_pending })}`);
      return peerResult(
        NAME,
        n,
        seconds,
        publishSeconds,
        latencies,
        { ...cpu(), redelivered: ci.num_redelivered },
        s.describe(
          `one durable pull consumer, explicit acks (one ack() per message), consume() with max_messages ${PREFETCH} per consumer, max_ack_pending ${PREFETCH * CONSUMERS}`,
          `js.publish() awaiting each PubAck, ${PUBLISH_WINDOW} in flight per producer`,
          `one per producer and per consumer (${PRODUCERS + CONSUMERS})`,
        ),
      );
    };
    const stop = ticker(ctx, NAME, () => handled, n);
    try {
      return await withTimeout(run(), deadlineMs(n), `${NAME} (${n} messages)`);
    } catch (err) {
      throw new Error(`${(err as Error).message} (${handled}/${n} handled)`, { cause: err });
    } finally {
      stop();
    }
  });
}

/**
 * latency_at_rate_nats: 1,000 msgs/s offered through one publisher connection (js.publish, each
 * PubAck awaited, as many in flight as the schedule makes) to one consumer connection acking each
 * message explicitly; latency from publish call to consumer callback.
 */
export async function latencyAtRateNats(ctx: Ctx): Promise<Result> {
  return withNatsStream(ctx, LATENCY_NAME, 'LAT', PREFETCH, async s => {
    const pub = jetstream(await s.open());
    const latencies: number[] = [];
    await s.consume(await s.open(), PREFETCH, m => {
      latencies.push(performance.now() - stampOf(m.data));
      m.ack();
    });
    return runAtRate(ctx, {
      name: LATENCY_NAME,
      send: () => pub.publish(s.subject, stampedPayload()),
      latencies,
      cpu: { broker: () => cpuSecondsOf('nats-server'), postgres: benchPostgresCpuSeconds, bench: ownCpuSeconds },
      extra: {
        setup: s.describe(
          `one durable pull consumer, explicit acks (one ack() per message), consume() with max_messages ${PREFETCH}`,
          'js.publish() awaiting each PubAck',
          'one publisher, one consumer',
        ),
      },
    });
  });
}
