/**
 * RabbitMQ beside inboxd (BENCH_AMQP_URL, default amqp://guest:guest@127.0.0.1:5672), with amqplib.
 *
 * Both scenarios use one setup (withRabbitQueue): a durable classic queue, deleted again
 * afterwards, persistent messages published on confirm channels (RabbitMQ confirms a persistent
 * message once it is on disk or already consumed and acked), consumers with manual acks (one per
 * message); any connection or channel error fails the run at once, and a broker that does not
 * answer is skipped.
 *
 * peer_rabbitmq: the e2e_throughput shape, PUBLISH_WINDOW unconfirmed per producer and a prefetch
 * of PREFETCH per consumer. Done when every consumer channel has closed (so the broker has
 * processed their acks) and the queue holds nothing.
 *
 * latency_at_rate_rabbitmq: latency_at_rate's offered load (bench/lib/at-rate.ts): one publisher
 * connection awaiting each confirm, one consumer connection acking each message.
 */
import { type Channel, type ChannelModel, type ConfirmChannel, connect } from 'amqplib';
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

const NAME = 'peer_rabbitmq';
const LATENCY_NAME = 'latency_at_rate_rabbitmq';

/** What withRabbitQueue hands its body: a fresh durable queue. */
interface RabbitQueue {
  queue: string;
  adminCh: Channel;
  /** Rejects on the first connection or channel error (race it against the run). */
  broken: Promise<never>;
  /** A new connection, closed when the scenario ends. */
  open(): Promise<ChannelModel>;
  /** A confirm channel on a new connection. */
  publisher(): Promise<ConfirmChannel>;
  /** A channel with `prefetch` on a new connection consuming the queue with manual acks; `ack` it per message. */
  consumer(prefetch: number, onMessage: (content: Buffer, ack: () => void) => void): Promise<void>;
  /** Cancels every consumer and closes its channel: resolves once the broker has processed the acks sent on them. */
  closeConsumers(): Promise<void>;
  /** Sends one persistent message on `ch`; settles with its confirm. */
  publish(ch: ConfirmChannel, content: Buffer): Promise<void>;
  /** The setup, for the result's extra. */
  describe(consumer: string, publishing: string, connections: string): Record<string, unknown>;
}

/**
 * Connects (or returns `name` skipped, with the reason, when RabbitMQ does not answer), creates the
 * durable classic queue bench.<tag>.<pid>, runs `body`, then closes consumer channels, deletes the
 * queue and closes every connection (each step bounded).
 */
async function withRabbitQueue(ctx: Ctx, name: string, tag: string, body: (q: RabbitQueue) => Promise<Result>): Promise<Result> {
  const url = process.env.BENCH_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
  const shown = url.replace(/\/\/[^@/]*@/, '//'); // no credentials in results
  let broke!: (err: Error) => void;
  const broken = new Promise<never>((_, reject) => (broke = reject));
  broken.catch(() => {});
  const open = async () => {
    const c = await withTimeout(connect(url, { timeout: CONNECT_TIMEOUT_MS }), CONNECT_TIMEOUT_MS + 500, `connect ${shown}`);
    c.on('error', err => broke(new Error(`${name}: connection error: ${err.message}`)));
    return c;
  };
  const watch = <C extends Channel>(ch: C): C => {
    ch.on('error', err => broke(new Error(`${name}: channel error: ${err.message}`)));
    return ch;
  };
  let admin: ChannelModel;
  try {
    await probe(url, 5672, CONNECT_TIMEOUT_MS, Buffer.from([65, 77, 81, 80, 0, 0, 9, 1])); // "AMQP" 0-9-1
    admin = await open();
  } catch (err) {
    return skippedResult(name, `RabbitMQ not reachable at ${shown} (${(err as Error).message})`, { url: shown });
  }
  const conns: ChannelModel[] = [admin];
  const queue = `bench.${tag}.${process.pid}`;
  let adminCh: Channel | undefined;
  const consumers: { ch: Channel; tag: string }[] = [];
  // amqplib's calls have no deadline of their own.
  const bounded = <T>(p: Promise<T>, what: string) => withTimeout(Promise.race([p, broken]), 10_000, `${name}: ${what}`);
  const openTracked = async () => {
    const c = await open();
    conns.push(c);
    return c;
  };
  try {
    adminCh = await bounded(
      (async () => {
        const ch = watch(await admin.createChannel());
        await ch.deleteQueue(queue); // a leftover of a killed run
        await ch.assertQueue(queue, { durable: true, arguments: { 'x-queue-type': 'classic' } });
        return ch;
      })(),
      'setup',
    );
    const server = admin.connection.serverProperties;
    return await body({
      queue,
      adminCh,
      broken,
      open: openTracked,
      publisher: () =>
        bounded(
          openTracked().then(c => c.createConfirmChannel().then(watch)),
          'open publisher',
        ),
      consumer: (prefetch, onMessage) =>
        bounded(
          (async () => {
            const ch = watch(await (await openTracked()).createChannel());
            await ch.prefetch(prefetch);
            const { consumerTag } = await ch.consume(
              queue,
              m => {
                if (!m) return broke(new Error(`${name}: consumer cancelled by the broker`));
                onMessage(m.content, () => ch.ack(m));
              },
              { noAck: false },
            );
            consumers.push({ ch, tag: consumerTag });
          })(),
          'open consumer',
        ),
      closeConsumers: async () => {
        // Closing a channel waits for the broker's close-ok, after every ack sent on it.
        for (const { ch, tag } of consumers.splice(0)) {
          await ch.cancel(tag);
          await ch.close();
        }
      },
      publish: (ch, content) =>
        new Promise<void>((resolve, reject) => void ch.sendToQueue(queue, content, { persistent: true }, err => (err ? reject(err) : resolve()))),
      describe: (consumer, publishing, connections) => ({
        url: shown,
        server: `${server.product ?? 'RabbitMQ'} ${server.version ?? '?'}`,
        client: `amqplib ${packageVersion('amqplib')}`,
        queue: 'durable classic queue, persistent messages (delivery mode 2)',
        consumer,
        publishing,
        connections,
      }),
    });
  } finally {
    for (const { ch } of consumers) await tidy(ctx, 'close consumer channel', () => ch.close());
    if (adminCh) await tidy(ctx, `delete queue ${queue}`, () => adminCh!.deleteQueue(queue));
    for (const c of conns) await tidy(ctx, 'close connection', () => c.close());
  }
}

export async function peerRabbitmq(ctx: Ctx): Promise<Result> {
  const n = peerCount(ctx);
  let handled = 0;
  return withRabbitQueue(ctx, NAME, 'peers', async q => {
    const producers: ConfirmChannel[] = [];
    for (let i = 0; i < PRODUCERS; i++) producers.push(await q.publisher());
    const run = async () => {
      const latencies: number[] = [];
      let allHandled!: () => void;
      const done = new Promise<void>(r => (allHandled = r));
      for (let i = 0; i < CONSUMERS; i++)
        await q.consumer(PREFETCH, (content, ack) => {
          latencies.push(performance.now() - stampOf(content));
          ack();
          if (++handled === n) allHandled();
        });
      const cpu = cpuMeter('beam.smp');
      const started = performance.now();
      const perProducer = (i: number) => Math.floor(n / PRODUCERS) + (i < n % PRODUCERS ? 1 : 0);
      await Promise.all(producers.map((ch, i) => windowed(perProducer(i), PUBLISH_WINDOW, () => q.publish(ch, stampedPayload()))));
      const publishSeconds = (performance.now() - started) / 1000;
      await done;
      await q.closeConsumers();
      const seconds = (performance.now() - started) / 1000;
      const info = await q.adminCh.checkQueue(q.queue);
      if (info.messageCount !== 0) throw new Error(`${NAME}: queue not drained: ${info.messageCount} messages left`);
      return peerResult(
        NAME,
        n,
        seconds,
        publishSeconds,
        latencies,
        cpu(),
        q.describe(
          `basic.consume, manual acks (one per message), prefetch ${PREFETCH} per consumer`,
          `confirm channels, sendToQueue awaiting each confirm, ${PUBLISH_WINDOW} unconfirmed per producer`,
          `one per producer and per consumer (${PRODUCERS + CONSUMERS})`,
        ),
      );
    };
    const stop = ticker(ctx, NAME, () => handled, n);
    try {
      return await withTimeout(Promise.race([run(), q.broken]), deadlineMs(n), `${NAME} (${n} messages)`);
    } catch (err) {
      throw new Error(`${(err as Error).message} (${handled}/${n} handled)`, { cause: err });
    } finally {
      stop();
    }
  });
}

/**
 * latency_at_rate_rabbitmq: 1,000 msgs/s offered through one publisher connection (a confirm
 * channel, persistent messages, each confirm awaited, as many unconfirmed as the schedule makes) to
 * one consumer connection acking each message manually; latency from publish call to consumer
 * callback.
 */
export async function latencyAtRateRabbitmq(ctx: Ctx): Promise<Result> {
  return withRabbitQueue(ctx, LATENCY_NAME, 'lat', async q => {
    const pub = await q.publisher();
    const latencies: number[] = [];
    await q.consumer(PREFETCH, (content, ack) => {
      latencies.push(performance.now() - stampOf(content));
      ack();
    });
    return Promise.race([
      runAtRate(ctx, {
        name: LATENCY_NAME,
        send: () => q.publish(pub, stampedPayload()),
        latencies,
        cpu: { broker: () => cpuSecondsOf('beam.smp'), postgres: benchPostgresCpuSeconds, bench: ownCpuSeconds },
        extra: {
          setup: q.describe(
            `basic.consume, manual acks (one per message), prefetch ${PREFETCH}`,
            'a confirm channel, sendToQueue awaiting each confirm',
            'one publisher, one consumer',
          ),
        },
      }),
      q.broken,
    ]);
  });
}
