/**
 * peer_nats_jetstream: the e2e_throughput shape on NATS JetStream (BENCH_NATS_URL, default
 * nats://127.0.0.1:4222). Client: the maintained v3 packages, @nats-io/transport-node +
 * @nats-io/jetstream (not the older `nats` v2).
 *
 * A file-storage stream with workqueue retention (an acked message is deleted, as an acked inboxd
 * message leaves its queue), one durable pull consumer with explicit acks shared by the consumers
 * (competing, as inboxd subscribers on one queue); producers await each publish's JetStream ack
 * with PUBLISH_WINDOW in flight. Done when the stream is empty: every ack has been applied.
 */

import { AckPolicy, type ConsumerMessages, DeliverPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { type Ctx, stampedPayload, stampOf } from '../lib/context.js';
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

export async function peerNatsJetstream(ctx: Ctx): Promise<Result> {
  const url = process.env.BENCH_NATS_URL ?? 'nats://127.0.0.1:4222';
  const opts = { servers: url, timeout: CONNECT_TIMEOUT_MS, reconnect: false };
  let admin: NatsConnection;
  try {
    await probe(url, 4222, CONNECT_TIMEOUT_MS);
    admin = await withTimeout(connect(opts), CONNECT_TIMEOUT_MS + 500, `connect ${url}`);
  } catch (err) {
    return skippedResult(NAME, `NATS not reachable at ${url} (${(err as Error).message})`, { url });
  }
  const conns: NatsConnection[] = [admin];
  const stream = `BENCH_PEERS_${process.pid}`;
  const subject = `bench.peers.${process.pid}`;
  const durable = 'bench';
  const n = peerCount(ctx);
  let handled = 0;
  const consumes: ConsumerMessages[] = [];
  let created = false;
  try {
    let jsm: Awaited<ReturnType<typeof jetstreamManager>>;
    try {
      jsm = await jetstreamManager(admin, { timeout: CONNECT_TIMEOUT_MS });
    } catch (err) {
      return skippedResult(NAME, `JetStream not available at ${url} (${(err as Error).message})`, { url });
    }
    await jsm.streams.delete(stream).catch(() => false); // a leftover of a killed run
    created = true;
    await jsm.streams.add({ name: stream, subjects: [subject], storage: StorageType.File, retention: RetentionPolicy.Workqueue, num_replicas: 1 });
    await jsm.consumers.add(stream, {
      durable_name: durable,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ack_wait: 60 * 1e9, // ns: e2e's visibilityTimeout
      max_ack_pending: PREFETCH * CONSUMERS,
    });
    for (let i = 0; i < PRODUCERS + CONSUMERS; i++) conns.push(await withTimeout(connect(opts), CONNECT_TIMEOUT_MS + 500, `connect ${url}`));
    const producerConns = conns.slice(1, 1 + PRODUCERS);
    const consumerConns = conns.slice(1 + PRODUCERS);

    const run = async () => {
      const latencies: number[] = [];
      let allHandled!: () => void;
      const done = new Promise<void>(r => (allHandled = r));
      for (const nc of consumerConns) {
        const consumer = await jetstream(nc).consumers.get(stream, durable);
        consumes.push(
          await consumer.consume({
            max_messages: PREFETCH,
            callback: m => {
              latencies.push(performance.now() - stampOf(m.data));
              m.ack();
              if (++handled === n) allHandled();
            },
          }),
        );
      }
      const cpu = cpuMeter('nats-server');
      const started = performance.now();
      const perProducer = (i: number) => Math.floor(n / PRODUCERS) + (i < n % PRODUCERS ? 1 : 0);
      await Promise.all(
        producerConns.map((nc, i) => {
          const js = jetstream(nc);
          return windowed(perProducer(i), PUBLISH_WINDOW, () => js.publish(subject, stampedPayload()));
        }),
      );
      const publishSeconds = (performance.now() - started) / 1000;
      await done;
      // Acks are fire-and-forget publishes: flush them, then wait until the stream has applied them all.
      await Promise.all(consumerConns.map(nc => nc.flush()));
      for (;;) {
        const info = await jsm.streams.info(stream);
        if (info.state.messages === 0) break;
        await new Promise(r => setTimeout(r, 10));
      }
      const seconds = (performance.now() - started) / 1000;
      const ci = await jsm.consumers.info(stream, durable);
      if (ci.num_ack_pending !== 0 || ci.num_pending !== 0)
        throw new Error(`${NAME}: consumer not drained: ${JSON.stringify({ ack_pending: ci.num_ack_pending, pending: ci.num_pending })}`);
      return peerResult(
        NAME,
        n,
        seconds,
        publishSeconds,
        latencies,
        { ...cpu(), redelivered: ci.num_redelivered },
        {
          url,
          server: `nats-server ${admin.info?.version ?? '?'}`,
          client: `@nats-io/transport-node ${packageVersion('@nats-io/transport-node')} + @nats-io/jetstream ${packageVersion('@nats-io/jetstream')}`,
          stream: 'file storage, workqueue retention, 1 replica, server default sync (fsync every 2 min: a publish ack means written, not fsynced)',
          consumer: `one durable pull consumer, explicit acks (one ack() per message), consume() with max_messages ${PREFETCH} per consumer, max_ack_pending ${PREFETCH * CONSUMERS}`,
          publishing: `js.publish() awaiting each PubAck, ${PUBLISH_WINDOW} in flight per producer`,
          connections: `one per producer and per consumer (${PRODUCERS + CONSUMERS})`,
        },
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
  } finally {
    for (const c of consumes) await tidy(ctx, 'stop consume', () => c.close());
    if (created) await tidy(ctx, `delete stream ${stream}`, () => jetstreamManager(admin).then(m => m.streams.delete(stream)));
    for (const nc of conns) await tidy(ctx, 'close connection', () => nc.close());
  }
}
