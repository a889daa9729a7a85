import type { InboxdClient, QueueConfig } from '@inboxd/sdk';
import type { Context } from '../scenario.js';
import type { InboxdServer } from '../server.js';
import { freePort } from '../util.js';
import type { QueueLoad, Workload } from '../workload.js';

/** A queue of the workload and its settings (all with the mode's visibility timeout). */
export interface QueueSpec extends QueueLoad {
  config?: QueueConfig;
}

export async function createQueues(client: InboxdClient, ctx: Context, queues: QueueSpec[]): Promise<void> {
  for (const q of queues) await client.queues.create(q.name, { visibilityTimeout: ctx.mode.visibilityTimeout, ...q.config });
}

export interface OneServer {
  url: string;
  db: string;
  server: InboxdServer;
  w: Workload;
}

/**
 * The common start of a load scenario: a fresh database in the suite's Postgres, one server on a
 * fixed port (restarted if it crashes), the queues, subscribers and producers running.
 */
export async function loadOnOneServer(
  ctx: Context,
  queues: QueueSpec[],
  o: { env?: Record<string, string>; handlerDelayMs?: number; subscribersPerQueue?: number; produce?: boolean } = {},
): Promise<OneServer> {
  const pg = await ctx.pg();
  const url = await pg.createDatabase(ctx.name);
  const db = new URL(url).pathname.slice(1);
  const server = ctx.server({ name: 'inboxd', port: await freePort(), databaseUrl: url, env: o.env, restartOnCrash: true });
  await server.start();
  const w = ctx.workload({ endpoints: [server.address], queues, subscribersPerQueue: o.subscribersPerQueue ?? 2, handlerDelayMs: o.handlerDelayMs });
  await createQueues(w.producer, ctx, queues);
  w.startSubscribers();
  if (o.produce !== false) w.startProducers();
  ctx.log(`server ${server.address} (pid ${server.pid}) on ${db}; ${queues.map(q => q.name).join(', ')}; ${w.opts.rate} msgs/s`);
  return { url, db, server, w };
}
