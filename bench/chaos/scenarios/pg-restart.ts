import type { Scenario } from '../scenario.js';
import { sleep } from '../util.js';
import { loadOnOneServer } from './common.js';

/** Postgres stopped (fast shutdown) for a while and started again, under load. */
export const pgRestart: Scenario = {
  name: 'pg_restart',
  about: 'Postgres stopped for 5 s and restarted (×2; quick: 3 s ×1) while producers and subscribers run',
  quick: true,
  timeoutMs: m => (m.quick ? 60_000 : 240_000),
  async run(ctx) {
    const reps = ctx.mode.quick ? 1 : 2;
    const downMs = ctx.mode.quick ? 3000 : 5000;
    ctx.result.faults = `Postgres down ${downMs / 1000} s ×${reps}`;
    const pg = await ctx.pg();
    const { w } = await loadOnOneServer(ctx, [{ name: 'work' }]);
    await sleep(ctx.mode.warmupMs);
    for (let i = 1; i <= reps; i++) {
      ctx.log(`stopping Postgres #${i}`);
      ctx.faultStarting(`restart #${i}`);
      await pg.stop();
      await sleep(downMs);
      const at = await pg.start();
      ctx.faultEnded(`restart #${i}`, at);
      ctx.log(`  Postgres accepts connections again`);
      await sleep(ctx.mode.betweenMs);
    }
    await ctx.finish(w);
  },
};

/**
 * Postgres crashed (SIGKILL of the postmaster and every backend) while subscribers hold leases
 * (handlers take 100 ms before acking), then restarted: a lease lost in the crash must not be
 * handed out again under the same token or attempt.
 */
export const pgCrash: Scenario = {
  name: 'pg_crash',
  about: 'Postgres killed -9 (postmaster and backends) while subscribers hold leases, restarted after 1 s (×2; quick ×1)',
  quick: true,
  timeoutMs: m => (m.quick ? 60_000 : 240_000),
  async run(ctx) {
    const reps = ctx.mode.quick ? 1 : 2;
    ctx.result.faults = `Postgres kill -9 ×${reps}`;
    const pg = await ctx.pg();
    const { w } = await loadOnOneServer(ctx, [{ name: 'work' }], { handlerDelayMs: 100 });
    await sleep(ctx.mode.warmupMs);
    const held: number[] = [];
    for (let i = 1; i <= reps; i++) {
      const c = w.ledger.counts();
      held.push(c.deliveries - c.acks_ok - c.acks_failed);
      ctx.log(`kill -9 of Postgres #${i} (${held[i - 1]} deliveries unsettled)`);
      ctx.faultStarting(`crash #${i}`);
      await pg.crash();
      await sleep(1000);
      const at = await pg.start();
      ctx.faultEnded(`crash #${i}`, at);
      ctx.log(`  Postgres recovered and accepts connections`);
      await sleep(ctx.mode.betweenMs);
    }
    ctx.result.extra.leases_held_at_crash = held.join(',');
    await ctx.finish(w);
  },
};
