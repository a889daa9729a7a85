import { createClient } from '@inboxd/sdk';
import { type Ctx, stampedPayload, stampOf } from '../lib/context.js';
import { percentiles, type Result, rate } from '../lib/report.js';
import { spawnInboxd } from '../lib/server-process.js';

const RATE = 1000; // messages per second, offered
const TICK_MS = 5; // sends go out in small bursts, RATE / (1000 / TICK_MS) each

/**
 * A fixed 1,000 msgs/s offered load (not as fast as possible): latency from the send() call to the
 * start of the subscriber's handler, with the SDK's default publisher and subscriber settings.
 */
export async function latencyAtRate(ctx: Ctx): Promise<Result> {
  const seconds = (ctx.quick ? 5 : 20) * ctx.scale;
  const db = await ctx.pg.createDatabase('latency');
  const server = await spawnInboxd(db);
  const client = createClient({ address: server.address });
  try {
    await client.queues.create('lat');
    const latencies: number[] = [];
    const sub = client.subscribe('lat', m => void latencies.push(performance.now() - stampOf(m.payload)));
    // Warm up: connections, prepared plans, the first wake-up.
    for (let i = 0; i < 50; i++) await client.send('lat', stampedPayload());
    while (latencies.length < 50) await new Promise(r => setTimeout(r, 10));
    latencies.length = 0;

    const total = Math.round(RATE * seconds);
    const perTick = (RATE * TICK_MS) / 1000;
    const started = performance.now();
    let sent = 0;
    const sends: Promise<string>[] = [];
    await new Promise<void>(resolve => {
      const tick = () => {
        // Catch up to the schedule, so timer lateness does not lower the offered rate.
        const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * RATE) + perTick);
        while (sent < due) {
          sends.push(client.send('lat', stampedPayload()));
          sent++;
        }
        if (sent >= total) return resolve();
        setTimeout(tick, TICK_MS);
      };
      tick();
    });
    await Promise.all(sends);
    while (latencies.length < total) await new Promise(r => setTimeout(r, 20));
    const elapsed = (performance.now() - started) / 1000;
    await sub.close();
    return {
      name: 'latency_at_rate',
      messages: total,
      seconds: elapsed,
      msgs_per_sec: rate(total, elapsed),
      ...percentiles(latencies),
      extra: { offered_msgs_per_sec: RATE, target_p99_ms: 10 },
    };
  } finally {
    await client.close();
    await server.stop();
  }
}
