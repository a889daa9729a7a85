import pg from 'pg';
import { PgBoss } from 'pg-boss';
import { type Ctx, count } from '../lib/context.js';
import type { Result } from '../lib/report.js';
import { runE2E } from './e2e-throughput.js';

/**
 * The e2e shape on a fresh database, then on one whose queue already retains 1,000,000 (quick:
 * 100,000) acked messages: does history slow the queue down? Ratio = with history / fresh.
 */
export async function historyGrowth(ctx: Ctx): Promise<Result[]> {
  const n = count(ctx, 50_000, 10_000);
  const history = count(ctx, 1_000_000, 100_000);
  const fresh = await runE2E(ctx, 'history_fresh', await ctx.pg.createDatabase('hist_fresh'), n);
  const grown = await runE2E(ctx, 'history_growth', await ctx.pg.createDatabase('hist_grown'), n, {
    prepare: async db => {
      // The queue as inboxd creates it (through a short-lived server would do too; pg-boss directly
      // is the same schema), then acked rows written straight in, as a long-running queue would hold.
      const boss = new PgBoss({ connectionString: db, schema: 'inboxd', supervise: false, schedule: false });
      boss.on('error', () => {});
      await boss.start();
      await boss.createQueue('e2e', { expireInSeconds: 60, retentionSeconds: 2_000_000_000, deleteAfterSeconds: 7 * 86400, retryLimit: 4, notify: true });
      await boss.stop({ graceful: false, close: true });
      const c = new pg.Client({ connectionString: db });
      await c.connect();
      ctx.progress(`history_growth: writing ${history} acked messages`);
      for (let done = 0; done < history; done += 100_000) {
        await c.query(
          `INSERT INTO inboxd.job (id, name, data, state, created_on, started_on, completed_on, keep_until)
         SELECT gen_random_uuid(), 'e2e', '{"p":"","n":0,"hash":"","at":0}'::jsonb, 'completed', now(), now(), now(), now() + interval '7 days'
         FROM generate_series(1, $1)`,
          [Math.min(100_000, history - done)],
        );
      }
      await c.query('ANALYZE inboxd.job');
      await c.end();
    },
  });
  grown.baseline = fresh.name;
  grown.ratio = +(grown.msgs_per_sec / fresh.msgs_per_sec).toFixed(3);
  grown.extra = { ...grown.extra, history, target_ratio: 0.9 };
  return [fresh, grown];
}
