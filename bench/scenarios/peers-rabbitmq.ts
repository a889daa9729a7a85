/**
 * peer_rabbitmq: the e2e_throughput shape on RabbitMQ (BENCH_AMQP_URL, default
 * amqp://guest:guest@127.0.0.1:5672), with amqplib.
 *
 * A durable classic queue, persistent messages published on confirm channels (PUBLISH_WINDOW
 * unconfirmed per producer; RabbitMQ confirms a persistent message once it is on disk or already
 * consumed and acked), consumers with manual acks (one per message) and a prefetch of PREFETCH.
 * Done when every consumer channel has closed (so the broker has processed their acks) and the
 * queue holds nothing.
 */
import { type Channel, type ChannelModel, type ConfirmChannel, connect } from 'amqplib';
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

const NAME = 'peer_rabbitmq';

export async function peerRabbitmq(ctx: Ctx): Promise<Result> {
  const url = process.env.BENCH_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
  const shown = url.replace(/\/\/[^@/]*@/, '//'); // no credentials in results
  // Any connection or channel error fails the run at once instead of leaving it to the deadline.
  let broke!: (err: Error) => void;
  const broken = new Promise<never>((_, reject) => (broke = reject));
  broken.catch(() => {});
  const open = async () => {
    const c = await withTimeout(connect(url, { timeout: CONNECT_TIMEOUT_MS }), CONNECT_TIMEOUT_MS + 500, `connect ${shown}`);
    c.on('error', err => broke(new Error(`${NAME}: connection error: ${err.message}`)));
    return c;
  };
  const watch = <C extends Channel>(ch: C): C => {
    ch.on('error', err => broke(new Error(`${NAME}: channel error: ${err.message}`)));
    return ch;
  };
  let admin: ChannelModel;
  try {
    await probe(url, 5672, CONNECT_TIMEOUT_MS, Buffer.from([65, 77, 81, 80, 0, 0, 9, 1])); // "AMQP" 0-9-1
    admin = await open();
  } catch (err) {
    return skippedResult(NAME, `RabbitMQ not reachable at ${shown} (${(err as Error).message})`, { url: shown });
  }
  const conns: ChannelModel[] = [admin];
  const queue = `bench.peers.${process.pid}`;
  const n = peerCount(ctx);
  let handled = 0;
  let adminCh: Channel | undefined;
  const producers: ConfirmChannel[] = [];
  const consumers: { ch: Channel; tag: string }[] = [];
  try {
    const setup = async () => {
      adminCh = watch(await admin.createChannel());
      await adminCh.deleteQueue(queue); // a leftover of a killed run
      await adminCh.assertQueue(queue, { durable: true, arguments: { 'x-queue-type': 'classic' } });
      for (let i = 0; i < PRODUCERS + CONSUMERS; i++) conns.push(await open());
      for (const c of conns.slice(1, 1 + PRODUCERS)) producers.push(watch(await c.createConfirmChannel()));
    };
    // amqplib's calls have no deadline of their own.
    await withTimeout(Promise.race([setup(), broken]), 10_000, `${NAME} setup`);

    const run = async () => {
      const latencies: number[] = [];
      let allHandled!: () => void;
      const done = new Promise<void>(r => (allHandled = r));
      for (const c of conns.slice(1 + PRODUCERS)) {
        const ch = watch(await c.createChannel());
        await ch.prefetch(PREFETCH);
        const { consumerTag } = await ch.consume(
          queue,
          m => {
            if (!m) return broke(new Error(`${NAME}: consumer cancelled by the broker`));
            latencies.push(performance.now() - stampOf(m.content));
            ch.ack(m);
            if (++handled === n) allHandled();
          },
          { noAck: false },
        );
        consumers.push({ ch, tag: consumerTag });
      }
      const cpu = cpuMeter('beam.smp');
      const started = performance.now();
      const perProducer = (i: number) => Math.floor(n / PRODUCERS) + (i < n % PRODUCERS ? 1 : 0);
      await Promise.all(
        producers.map((ch, i) =>
          windowed(
            perProducer(i),
            PUBLISH_WINDOW,
            () =>
              new Promise<void>(
                (resolve, reject) => void ch.sendToQueue(queue, stampedPayload(), { persistent: true }, err => (err ? reject(err) : resolve())),
              ),
          ),
        ),
      );
      const publishSeconds = (performance.now() - started) / 1000;
      await done;
      // Closing a channel waits for the broker's close-ok, after every ack sent on it.
      for (const { ch, tag } of consumers.splice(0)) {
        await ch.cancel(tag);
        await ch.close();
      }
      const seconds = (performance.now() - started) / 1000;
      const q = await adminCh!.checkQueue(queue);
      if (q.messageCount !== 0) throw new Error(`${NAME}: queue not drained: ${q.messageCount} messages left`);
      const server = admin.connection.serverProperties;
      return peerResult(NAME, n, seconds, publishSeconds, latencies, cpu(), {
        url: shown,
        server: `${server.product ?? 'RabbitMQ'} ${server.version ?? '?'}`,
        client: `amqplib ${packageVersion('amqplib')}`,
        queue: 'durable classic queue, persistent messages (delivery mode 2)',
        consumer: `basic.consume, manual acks (one per message), prefetch ${PREFETCH} per consumer`,
        publishing: `confirm channels, sendToQueue awaiting each confirm, ${PUBLISH_WINDOW} unconfirmed per producer`,
        connections: `one per producer and per consumer (${PRODUCERS + CONSUMERS})`,
      });
    };
    const stop = ticker(ctx, NAME, () => handled, n);
    try {
      return await withTimeout(Promise.race([run(), broken]), deadlineMs(n), `${NAME} (${n} messages)`);
    } catch (err) {
      throw new Error(`${(err as Error).message} (${handled}/${n} handled)`, { cause: err });
    } finally {
      stop();
      for (const { ch } of consumers) await tidy(ctx, 'close consumer channel', () => ch.close());
    }
  } finally {
    if (adminCh) await tidy(ctx, `delete queue ${queue}`, () => adminCh!.deleteQueue(queue));
    for (const c of conns) await tidy(ctx, 'close connection', () => c.close());
  }
}
