import type { Scenario } from '../scenario.js';
import { freePort, sleep } from '../util.js';
import { createQueues } from './common.js';

/** Two replicas on one database, the client given both endpoints; one killed -9 mid-load, not restarted. */
export const replicaKill: Scenario = {
  name: 'replica_kill',
  about: 'two replicas on one database, SDK given both endpoints; one killed -9 mid-load and left down',
  quick: true,
  timeoutMs: m => (m.quick ? 60_000 : 240_000),
  async run(ctx) {
    ctx.result.faults = 'kill -9 one of 2 replicas';
    const pg = await ctx.pg();
    const url = await pg.createDatabase(ctx.name);
    const a = ctx.server({ name: 'replica-a', port: await freePort(), databaseUrl: url });
    const b = ctx.server({ name: 'replica-b', port: await freePort(), databaseUrl: url });
    await Promise.all([a.start(), b.start()]);
    const w = ctx.workload({ endpoints: [a.address, b.address], queues: [{ name: 'work' }], subscribersPerQueue: 4 });
    await createQueues(w.producer, ctx, [{ name: 'work' }]);
    w.startSubscribers();
    w.startProducers();
    ctx.log(`replicas ${a.address} (pid ${a.pid}) and ${b.address} (pid ${b.pid})`);
    await sleep(ctx.mode.warmupMs);
    ctx.log(`kill -9 of replica-a (pid ${a.pid})`);
    ctx.faultStarting('replica-a killed');
    await a.kill9();
    ctx.faultEnded('replica-a killed', Date.now());
    await sleep(ctx.mode.betweenMs * 2);
    await ctx.finish(w);
  },
};
