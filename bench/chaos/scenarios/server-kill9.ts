import type { Scenario } from '../scenario.js';
import { sleep } from '../util.js';
import { loadOnOneServer } from './common.js';

/** kill -9 of the server under load, restarted on the same port each time; Postgres is the suite's own. */
export const serverKill9: Scenario = {
  name: 'server_kill9',
  about: 'kill -9 of the server under load (×5; quick ×2), restarted on the same port; Postgres separate',
  quick: true,
  timeoutMs: m => (m.quick ? 60_000 : 240_000),
  async run(ctx) {
    const kills = ctx.mode.quick ? 2 : 5;
    ctx.result.faults = `kill -9 server ×${kills}`;
    const { server, w } = await loadOnOneServer(ctx, [{ name: 'work' }]);
    await sleep(ctx.mode.warmupMs);
    for (let i = 1; i <= kills; i++) {
      ctx.log(`kill -9 #${i} (pid ${server.pid})`);
      ctx.faultStarting(`kill #${i}`);
      await server.kill9();
      const at = await server.start();
      ctx.faultEnded(`kill #${i}`, at);
      ctx.log(`  restarted (pid ${server.pid})`);
      await sleep(ctx.mode.betweenMs);
    }
    await ctx.finish(w);
  },
};
