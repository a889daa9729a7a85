import fs from 'node:fs';
import path from 'node:path';
import { embeddedPostgresPids } from '../postgres.js';
import type { Scenario } from '../scenario.js';
import { alive, freePort, kill, leftovers, postmasterPid, sleep, tempDir, waitFor } from '../util.js';
import { createQueues } from './common.js';

/**
 * kill -9 of the server together with the embedded Postgres it started itself (no DATABASE_URL):
 * the server pid and the postmaster pid read from <dataDir>/postmaster.pid with its backends.
 */
export const serverAndPgKill9: Scenario = {
  name: 'server_and_pg_kill9',
  about: 'kill -9 of the server and its embedded Postgres together (×3), restarted on the same ports',
  quick: 'full mode only (time)',
  timeoutMs: () => 240_000,
  async run(ctx) {
    const kills = 3;
    ctx.result.faults = `kill -9 server + its Postgres ×${kills}`;
    const dir = tempDir('inboxd-chaos-embedded-');
    const dataDir = path.join(dir, 'data');
    leftovers.dirs.add(dir);
    leftovers.pgDataDirs.add(dataDir);
    ctx.cleanups.push(async () => {
      const pid = postmasterPid(dataDir);
      if (pid && alive(pid)) {
        kill(pid, 'SIGINT');
        await waitFor(() => !alive(pid), 10_000);
      }
      for (const p of embeddedPostgresPids(dataDir)) kill(p, 'SIGKILL');
      fs.rmSync(dir, { recursive: true, force: true });
      leftovers.dirs.delete(dir);
      leftovers.pgDataDirs.delete(dataDir);
    });
    const server = ctx.server({ name: 'inboxd+pg', port: await freePort(), dataDir, embeddedPgPort: await freePort(), restartOnCrash: true });
    await server.start(120_000);
    const w = ctx.workload({ endpoints: [server.address], queues: [{ name: 'work' }], subscribersPerQueue: 2 });
    await createQueues(w.producer, ctx, [{ name: 'work' }]);
    w.startSubscribers();
    w.startProducers();
    ctx.log(`server ${server.address} (pid ${server.pid}) with its embedded Postgres in ${dataDir}`);
    await sleep(ctx.mode.warmupMs);
    for (let i = 1; i <= kills; i++) {
      const pgPids = embeddedPostgresPids(dataDir);
      if (pgPids.length === 0) ctx.result.notes.push(`kill #${i}: no embedded postmaster found in ${dataDir}`);
      ctx.log(`kill -9 #${i}: server pid ${server.pid}, postmaster ${pgPids[0]} and ${pgPids.length - 1} backends`);
      ctx.faultStarting(`kill #${i}`);
      const gone = server.kill9();
      for (const p of pgPids) kill(p, 'SIGKILL');
      await gone;
      if (!(await waitFor(() => pgPids.every(p => !alive(p)), 10_000, 20)))
        throw new Error(`Postgres pids ${pgPids.filter(alive).join(', ')} survived kill -9`);
      const at = await server.start(60_000);
      ctx.faultEnded(`kill #${i}`, at);
      ctx.log(`  restarted (pid ${server.pid}, postmaster ${postmasterPid(dataDir)})`);
      await sleep(ctx.mode.betweenMs);
    }
    await ctx.finish(w);
  },
};
