import { randomBytes } from 'node:crypto';
import { type CreateClientOptions, createClient, type QueueConfig, type SubscriberOptions } from '@inboxd/sdk';
import { type Ctx, count, stampedPayload, stampOf } from '../lib/context.js';
import { measureCpu } from '../lib/cpu.js';
import { percentiles, type Result, rate } from '../lib/report.js';
import { spawnInboxd } from '../lib/server-process.js';

export const PRODUCERS = 2;
export const CONSUMERS = 2;

/**
 * Producers (SDK publishers) -> one queue -> subscribers (SDK, Subscribe streams) acking; 256-byte
 * payloads, durable. The server runs as its own process, as users run it. Seconds run from the
 * first send to the last ack confirmed; latency is send() call to handler start.
 */
export async function e2eThroughput(ctx: Ctx): Promise<Result> {
  return runE2E(ctx, 'e2e_throughput', await ctx.pg.createDatabase('e2e'), count(ctx, 100_000, 20_000));
}

/**
 * e2e_throughput_auth: the same, with auth required: every call carries an API key of a principal
 * that holds send and consume grants on the queue (not the admin key, which skips the grant check),
 * so each call pays for authentication and authorization, and each token is signed and verified.
 */
export async function e2eThroughputAuth(ctx: Ctx): Promise<Result> {
  return runE2E(ctx, 'e2e_throughput_auth', await ctx.pg.createDatabase('e2eauth'), count(ctx, 100_000, 20_000), { auth: true });
}

/**
 * e2e_throughput_tags: the same, the subscribers naming deliveries by delivery tag
 * (`deliveryTags: true`) instead of lease tokens: what signing, sending and checking a token per
 * delivery costs.
 */
export async function e2eThroughputTags(ctx: Ctx): Promise<Result> {
  return runE2E(ctx, 'e2e_throughput_tags', await ctx.pg.createDatabase('e2etags'), count(ctx, 100_000, 20_000), { subscriber: { deliveryTags: true } });
}

/**
 * The e2e queue's settings. BENCH_ACKED_RETENTION (a duration, e.g. 0s or 1h) sets its
 * acked_retention, to compare an ack that deletes with one that keeps history; unset, the default.
 */
function e2eQueueConfig(): QueueConfig {
  const retention = process.env.BENCH_ACKED_RETENTION as QueueConfig['ackedRetention'];
  return { visibilityTimeout: '60s', ...(retention ? { ackedRetention: retention } : {}) };
}

/** With auth: a principal `bench` with send and consume on 'e2e', and its key. */
async function benchPrincipal(address: string, adminKey: string): Promise<string> {
  const admin = createClient({ address, apiKey: adminKey, poolSize: 1 });
  try {
    await admin.queues.ensure('e2e', e2eQueueConfig());
    await admin.auth.createPrincipal('bench');
    await admin.auth.addGrant('bench', 'e2e', ['send', 'consume', 'browse']);
    return (await admin.auth.createKey('bench')).secret;
  } finally {
    await admin.close();
  }
}

/**
 * The e2e shape on database `db`: `n` messages through queue 'e2e' (created unless `prepare`
 * made it, e.g. with history already in it); with `auth`, the server requires credentials;
 * `subscriber`: options of the subscribers beyond the scenario's own.
 */
export async function runE2E(
  ctx: Ctx,
  name: string,
  db: string,
  n: number,
  { prepare, auth = false, subscriber = {} }: { prepare?: (db: string) => Promise<void>; auth?: boolean; subscriber?: Partial<SubscriberOptions> } = {},
): Promise<Result> {
  if (prepare) await prepare(db);
  const adminKey = randomBytes(24).toString('hex');
  const server = await spawnInboxd(db, auth ? { INBOXD_AUTH: 'required', INBOXD_ADMIN_KEY: adminKey } : {});
  const creds: Partial<CreateClientOptions> = auth ? { apiKey: await benchPrincipal(server.address, adminKey) } : {};
  const client = createClient({ address: server.address, poolSize: 4, ...creds });
  try {
    // With auth, the admin made it (benchPrincipal): `bench` may use it, not create queues.
    if (!auth) await client.queues.ensure('e2e', e2eQueueConfig());
    const latencies: number[] = [];
    let handled = 0;
    let allHandled!: () => void;
    const done = new Promise<void>(r => (allHandled = r));
    const subs = Array.from({ length: CONSUMERS }, () =>
      client.subscribe(
        'e2e',
        m => {
          latencies.push(performance.now() - stampOf(m.payload));
          if (++handled === n) allHandled();
        },
        { maxOutstandingMessages: 2000, ...subscriber },
      ),
    );
    const started = performance.now();
    const publishers = Array.from({ length: PRODUCERS }, () => client.publisher());
    const tick = setInterval(() => ctx.progress(`${name}: ${handled}/${n} handled`), 1000);
    let publishSeconds = 0;
    const { cpu } = await measureCpu(async () => {
      const sends: Promise<string>[] = [];
      for (let i = 0; i < n; i++) sends.push(publishers[i % PRODUCERS]!.send('e2e', stampedPayload()));
      await Promise.all(sends);
      publishSeconds = (performance.now() - started) / 1000;
      await done;
      await Promise.all(subs.map(s => s.close({ behavior: 'drain' })));
    }, server);
    const seconds = (performance.now() - started) / 1000;
    clearInterval(tick);
    const stats = await client.queues.stats('e2e');
    if (stats.depth !== 0 || stats.leased !== 0) throw new Error(`${name}: queue not drained: ${JSON.stringify(stats)}`);
    return {
      name,
      messages: n,
      seconds,
      msgs_per_sec: rate(n, seconds),
      ...percentiles(latencies),
      extra: {
        auth: auth ? 'required' : 'off',
        acked_retention_ms: (await client.queues.get('e2e')).ackedRetentionMs,
        producers: PRODUCERS,
        subscribers: CONSUMERS,
        publish_msgs_per_sec: rate(n, publishSeconds),
        server_rss_mb: Math.round(server.rssBytes() / 2 ** 20),
        ...cpu,
      },
    };
  } finally {
    await client.close();
    await server.stop();
  }
}
