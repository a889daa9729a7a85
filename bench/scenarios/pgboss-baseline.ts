import { PgBoss } from 'pg-boss';
import { type Ctx, count, PAYLOAD_BYTES } from '../lib/context.js';
import { measureCpu } from '../lib/cpu.js';
import { percentiles, type Result, rate } from '../lib/report.js';
import { CONSUMERS, PRODUCERS } from './e2e-throughput.js';

const INSERT_BATCH = 1000;
const FETCH_BATCH = 500;

/**
 * The e2e scenario's work done in-process with pg-boss directly, tuned as a good engineer would:
 * a partitioned queue (no shared-partition cliff), inserts of 1000, fetches of 500, completes by
 * id arrays, consumers that poll again at once while there is work and every 5 ms when not.
 */
export async function pgbossBaseline(ctx: Ctx): Promise<Result> {
  const n = count(ctx, 100_000, 20_000);
  const db = await ctx.pg.createDatabase('pgboss');
  const boss = new PgBoss({ connectionString: db, schema: 'bench', max: 12, supervise: false, schedule: false });
  boss.on('error', () => {});
  await boss.start();
  try {
    await boss.createQueue('base', { partition: true, retentionSeconds: 2_000_000_000 });
    const payload = Buffer.alloc(PAYLOAD_BYTES, 120).toString('base64');
    const latencies: number[] = [];
    let consumed = 0;
    const started = performance.now();
    const produce = async (share: number) => {
      for (let sent = 0; sent < share; sent += INSERT_BATCH) {
        const size = Math.min(INSERT_BATCH, share - sent);
        const t = performance.now();
        await boss.insert(
          'base',
          Array.from({ length: size }, () => ({ data: { p: payload, t } })),
        );
      }
    };
    const consume = async () => {
      while (consumed < n) {
        const jobs = await boss.fetch<{ p: string; t: number }>('base', { batchSize: FETCH_BATCH });
        if (jobs.length === 0) {
          await new Promise(r => setTimeout(r, 5));
          continue;
        }
        const now = performance.now();
        for (const j of jobs) latencies.push(now - j.data.t);
        await boss.complete(
          'base',
          jobs.map(j => j.id),
        );
        consumed += jobs.length;
      }
    };
    const tick = setInterval(() => ctx.progress(`pgboss_baseline: ${consumed}/${n} completed`), 1000);
    const share = Math.ceil(n / PRODUCERS);
    const { cpu } = await measureCpu(() =>
      Promise.all([...Array.from({ length: PRODUCERS }, (_, i) => produce(Math.min(share, n - i * share))), ...Array.from({ length: CONSUMERS }, consume)]),
    );
    clearInterval(tick);
    const seconds = (performance.now() - started) / 1000;
    return {
      name: 'pgboss_baseline',
      messages: n,
      seconds,
      msgs_per_sec: rate(n, seconds),
      ...percentiles(latencies),
      extra: { producers: PRODUCERS, consumers: CONSUMERS, insert_batch: INSERT_BATCH, fetch_batch: FETCH_BATCH, partitioned: true, ...cpu },
    };
  } finally {
    await boss.stop({ graceful: false, close: true });
  }
}
