import { createClient } from '@inboxd/sdk';
import { runAtRate } from '../lib/at-rate.js';
import { type Ctx, stampedPayload, stampOf } from '../lib/context.js';
import { benchPostgresCpuSeconds, ownCpuSeconds } from '../lib/cpu.js';
import type { Result } from '../lib/report.js';
import { spawnInboxd } from '../lib/server-process.js';

/**
 * A fixed 1,000 msgs/s offered load (not as fast as possible): latency from the send() call to the
 * start of the subscriber's handler, with the SDK's default publisher and subscriber settings (one
 * client: its publisher and one Subscribe stream). latency_at_rate_nats and
 * latency_at_rate_rabbitmq offer the same load to the peers (bench/lib/at-rate.ts).
 */
export async function latencyAtRate(ctx: Ctx): Promise<Result> {
  const db = await ctx.pg.createDatabase('latency');
  const server = await spawnInboxd(db);
  const client = createClient({ address: server.address });
  try {
    await client.queues.create('lat');
    const latencies: number[] = [];
    const sub = client.subscribe('lat', m => void latencies.push(performance.now() - stampOf(m.payload)));
    try {
      return await runAtRate(ctx, {
        name: 'latency_at_rate',
        send: () => client.send('lat', stampedPayload()),
        latencies,
        cpu: { server: () => server.cpuSeconds(), postgres: benchPostgresCpuSeconds, bench: ownCpuSeconds },
        extra: { target_p99_ms: 10 },
      });
    } finally {
      await sub.close();
    }
  } finally {
    await client.close();
    await server.stop();
  }
}
