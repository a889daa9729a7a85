import { connectionKinds, terminateKind } from '../postgres.js';
import type { Scenario } from '../scenario.js';
import { sleep } from '../util.js';
import { loadOnOneServer } from './common.js';

/**
 * pg_terminate_backend of each kind of inboxd connection in turn (application_name inboxd*),
 * while producers send to a plain queue, a dedup queue and a bounded queue (those two go
 * through the server's own transactions), and subscribers consume.
 */
export const pgTerminate: Scenario = {
  name: 'pg_terminate',
  about: 'pg_terminate_backend of every backend of each inboxd connection kind in turn (rounds: 3; quick 1), load on plain, dedup and bounded queues',
  quick: true,
  timeoutMs: m => (m.quick ? 60_000 : 240_000),
  async run(ctx) {
    const rounds = ctx.mode.quick ? 1 : 3;
    const pauseMs = ctx.mode.quick ? 1200 : 2000;
    const pg = await ctx.pg();
    const { db, w } = await loadOnOneServer(
      ctx,
      [
        { name: 'plain' },
        { name: 'dedup', dedup: true, config: { dedupWindow: '5m' } },
        { name: 'bounded', config: { maxDepth: 1_000_000, overflow: 'reject' } },
      ],
      { subscribersPerQueue: 1 },
    );
    await sleep(ctx.mode.warmupMs);
    const terminated: Record<string, number> = {};
    for (let r = 1; r <= rounds; r++) {
      const kinds = await connectionKinds(pg, db);
      ctx.log(`round ${r}: kinds ${[...kinds].map(([k, n]) => `${k}×${n}`).join(' ')}`);
      for (const kind of kinds.keys()) {
        ctx.faultStarting(`${kind} r${r}`);
        const n = await terminateKind(pg, db, kind);
        terminated[kind] = (terminated[kind] ?? 0) + n;
        ctx.faultEnded(`${kind} r${r}`, Date.now());
        ctx.log(`  terminated ${n} ${kind} backends`);
        await sleep(pauseMs);
      }
    }
    ctx.result.faults = `terminate ${Object.keys(terminated).length} kinds ×${rounds}`;
    ctx.result.extra.terminated = Object.entries(terminated)
      .map(([k, n]) => `${k}:${n}`)
      .join(' ');
    await ctx.finish(w);
  },
};
