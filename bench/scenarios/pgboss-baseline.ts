import pg from 'pg';
import { PgBoss } from 'pg-boss';
import { type Ctx, count, PAYLOAD_BYTES } from '../lib/context.js';
import { measureCpu } from '../lib/cpu.js';
import { percentiles, type Result, rate } from '../lib/report.js';
import { CONSUMERS, PRODUCERS } from './e2e-throughput.js';

const INSERT_BATCH = 1000;
const FETCH_BATCH = 500;
/** The lease-plan fix: the fetch's ordered index scan, forced for the fetch connections' sessions. */
const PLANFIX_OPTIONS = '-c enable_bitmapscan=off -c enable_sort=off';

/**
 * pgboss_baseline: the e2e scenario's work done in-process with pg-boss directly, tuned as a good
 * engineer would: a partitioned queue (no shared-partition cliff), inserts of 1000, fetches of 500,
 * completes by id arrays, consumers that poll again at once while there is work and every 5 ms
 * when not. pg-boss plans its fetch as the planner likes (the default).
 */
export function pgbossBaseline(ctx: Ctx): Promise<Result> {
  return runPgbossBaseline(ctx, 'pgboss_baseline', false);
}

/**
 * pgboss_baseline_planfix: the same pipeline, but the fetch connections run with bitmap scans and
 * sorts disabled, so the fetch takes the queue's ordered index in order and stops after its batch
 * instead of collecting and sorting the whole waiting backlog (the lease-plan fix).
 */
export function pgbossBaselinePlanfix(ctx: Ctx): Promise<Result> {
  return runPgbossBaseline(ctx, 'pgboss_baseline_planfix', true);
}

async function runPgbossBaseline(ctx: Ctx, name: string, planfix: boolean): Promise<Result> {
  const n = count(ctx, 100_000, 20_000);
  const db = await ctx.pg.createDatabase(planfix ? 'pgbossfix' : 'pgboss');
  const boss = new PgBoss({ connectionString: db, schema: 'bench', max: 12, supervise: false, schedule: false });
  boss.on('error', () => {});
  // Both variants fetch on a pool of their own, one connection per consumer, differing only in
  // the session settings; inserts and completes go through pg-boss's pool.
  const fetchPool = new pg.Pool({ connectionString: db, max: CONSUMERS, ...(planfix ? { options: PLANFIX_OPTIONS } : {}) });
  fetchPool.on('error', () => {});
  const fetchDb = { executeSql: (text: string, values?: unknown[]) => fetchPool.query(text, values) };
  await boss.start();
  try {
    await boss.createQueue('base', { partition: true, retentionSeconds: 2_000_000_000 });
    // The same, stated statistics for both variants: the planner's choice for the fetch depends on
    // them, and left alone it depends on whether autovacuum happened to analyze the new table
    // (its naptime is 1 min, runs take ~10 s). So: ANALYZE the job table while empty, as it is
    // right after createQueue (the case where the default plan sorts the whole waiting backlog on
    // every fetch), and keep autovacuum from re-analyzing it during the run. Checked with EXPLAIN
    // ANALYZE on 20,000 waiting jobs so analyzed: the default fetch bitmap-scans all 20,000 and
    // sorts them for its 500 (31 ms); with PLANFIX_OPTIONS it reads the index in order, 500 rows (7 ms).
    const { rows } = await fetchPool.query<{ table_name: string }>(`SELECT table_name FROM bench.queue WHERE name = 'base'`);
    const table = `bench.${pg.escapeIdentifier(rows[0]!.table_name)}`;
    await fetchPool.query(`ANALYZE ${table}`);
    await fetchPool.query(`ALTER TABLE ${table} SET (autovacuum_analyze_threshold = 2147483647)`);

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
        const jobs = await boss.fetch<{ p: string; t: number }>('base', { batchSize: FETCH_BATCH, db: fetchDb });
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
    const tick = setInterval(() => ctx.progress(`${name}: ${consumed}/${n} completed`), 1000);
    const share = Math.ceil(n / PRODUCERS);
    const { cpu } = await measureCpu(() =>
      Promise.all([...Array.from({ length: PRODUCERS }, (_, i) => produce(Math.min(share, n - i * share))), ...Array.from({ length: CONSUMERS }, consume)]),
    );
    clearInterval(tick);
    const seconds = (performance.now() - started) / 1000;
    return {
      name,
      messages: n,
      seconds,
      msgs_per_sec: rate(n, seconds),
      ...percentiles(latencies),
      extra: {
        producers: PRODUCERS,
        consumers: CONSUMERS,
        insert_batch: INSERT_BATCH,
        fetch_batch: FETCH_BATCH,
        partitioned: true,
        fetch_plan: planfix ? `ordered index scan forced (${PLANFIX_OPTIONS})` : 'planner default',
        stats: 'job table analyzed empty after createQueue, no auto-analyze during the run',
        ...cpu,
      },
    };
  } finally {
    await boss.stop({ graceful: false, close: true });
    await fetchPool.end();
  }
}
