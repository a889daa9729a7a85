import type { Overflow, QueueConfig, QueueInfo, QueueStats } from '@inboxd/sdk';
import { Command, InvalidArgumentError } from 'commander';
import { type ClientFlags, parseCount, parseDuration, withClient, withClientOptions } from '../client.js';
import { formatAge, formatDuration, print, table } from '../output.js';

const infoTable = (qs: QueueInfo[]) =>
  table(qs, [
    { header: 'NAME', value: q => q.name },
    { header: 'VISIBILITY', value: q => formatDuration(q.visibilityTimeoutMs), right: true },
    { header: 'MAX ATTEMPTS', value: q => q.maxAttempts, right: true },
    { header: 'DEAD LETTER QUEUE', value: q => q.deadLetterQueue || '-' },
    { header: 'RETRY DELAY', value: q => formatDuration(q.retryDelayMs) + (q.retryBackoff ? ' (backoff)' : ''), right: true },
    { header: 'ACKED RETENTION', value: q => formatDuration(q.ackedRetentionMs), right: true },
    { header: 'TTL', value: q => (q.messageTtlMs ? formatDuration(q.messageTtlMs) : '-'), right: true },
    { header: 'MAX DEPTH', value: q => (q.maxDepth ? `${q.maxDepth} (${q.overflow})` : '-'), right: true },
    { header: 'DEDUP', value: q => `${formatDuration(q.dedupWindowMs)}${q.contentDedup ? ' +content' : ''}`, right: true },
    { header: 'CREATED', value: q => q.createdAt?.toISOString() ?? '' },
  ]);

function parseOverflow(v: string): Overflow {
  if (v === 'reject' || v === 'drop_oldest' || v === 'drop_newest') return v;
  throw new InvalidArgumentError('expected reject, drop_oldest or drop_newest');
}

const statsTable = (ss: QueueStats[]) =>
  table(ss, [
    { header: 'QUEUE', value: s => s.queue },
    { header: 'DEPTH', value: s => s.depth, right: true },
    { header: 'READY', value: s => s.ready, right: true },
    { header: 'DELAYED', value: s => s.delayed, right: true },
    { header: 'LEASED', value: s => s.leased, right: true },
    { header: 'DEAD-LETTERED', value: s => s.deadLettered, right: true },
    { header: 'ACKED', value: s => s.acked, right: true },
    { header: 'OLDEST', value: s => formatAge(s.oldestAgeMs), right: true },
    { header: 'EXPIRED', value: s => s.expired, right: true },
    { header: 'DROPPED', value: s => s.dropped, right: true },
    { header: 'SENT/S', value: s => s.sendRate.toFixed(2), right: true },
    { header: 'ACKED/S', value: s => s.ackRate.toFixed(2), right: true },
  ]);

const jsonInfo = (q: QueueInfo) => ({ ...q, createdAt: q.createdAt?.toISOString() });

/** `inboxd queues …`: create, list, get, delete, purge, stats. */
export function queuesCommand(): Command {
  const queues = new Command('queues').description('create, list, inspect, purge and delete queues');

  withClientOptions(
    queues
      .command('create')
      .description('create a queue (settings left out take the server defaults)')
      .argument('<name>', 'queue name: letters, digits, . _ -, at most 100 characters')
      .option('--visibility-timeout <duration>', 'lease length when a consumer asks for none (default 30s)', parseDuration)
      .option('--max-attempts <n>', 'deliveries before a message is dead-lettered (default 5)', parseCount(1, 1000))
      .option('--dead-letter-queue <queue>', 'where messages out of attempts go (an existing queue)')
      .option('--retry-delay <duration>', 'wait before a failed message is delivered again (default 0s)', parseDuration)
      .option('--retry-backoff', 'double the retry delay on each attempt, with jitter')
      .option('--retry-delay-max <duration>', 'cap of the backed-off retry delay (needs --retry-backoff)', parseDuration)
      .option('--acked-retention <duration>', 'how long acked messages are kept (default 1h; 0s: an ack deletes the message)', parseDuration)
      .option('--message-ttl <duration>', 'messages sent without an expiry expire this long after sending (default never)', parseDuration)
      .option('--dedup-window <duration>', 'how long dedup keys are remembered (default 5m)', parseDuration)
      .option('--content-dedup', 'deduplicate on the sha256 of the payload')
      .option('--max-depth <n>', 'most messages waiting (default unbounded)', parseCount(1, 100_000_000))
      .option('--overflow <policy>', 'a send to a full queue: reject (default), drop_oldest, drop_newest', parseOverflow)
      .option('--if-not-exists', 'succeed when the queue already exists (and print it)'),
  ).action(async (name: string, o: ClientFlags & Record<string, unknown>) =>
    withClient(o, async (client, out) => {
      const config: QueueConfig = {
        visibilityTimeout: o.visibilityTimeout as number | undefined,
        maxAttempts: o.maxAttempts as number | undefined,
        deadLetterQueue: o.deadLetterQueue as string | undefined,
        retryDelay: o.retryDelay as number | undefined,
        retryBackoff: o.retryBackoff as boolean | undefined,
        retryDelayMax: o.retryDelayMax as number | undefined,
        ackedRetention: o.ackedRetention as number | undefined,
        messageTtl: o.messageTtl as number | undefined,
        dedupWindow: o.dedupWindow as number | undefined,
        contentDedup: o.contentDedup as boolean | undefined,
        maxDepth: o.maxDepth as number | undefined,
        overflow: o.overflow as Overflow | undefined,
      };
      const q = o.ifNotExists ? await client.queues.ensure(name, config) : await client.queues.create(name, config);
      print(out, jsonInfo(q), () => infoTable([q]));
    }),
  );

  withClientOptions(
    queues.command('list').alias('ls').description('list queues, by name').option('--limit <n>', 'most queues to list', parseCount(1, 1_000_000), 1000),
  ).action(async (o: ClientFlags & { limit: number }) =>
    withClient(o, async (client, out) => {
      const all: QueueInfo[] = [];
      for await (const q of client.queues.list(Math.min(o.limit, 1000))) {
        all.push(q);
        if (all.length >= o.limit) break;
      }
      print(out, all.map(jsonInfo), () => (all.length === 0 ? 'no queues\n' : infoTable(all)));
    }),
  );

  withClientOptions(queues.command('get').description("show a queue's settings").argument('<name>')).action(async (name: string, o: ClientFlags) =>
    withClient(o, async (client, out) => {
      const q = await client.queues.get(name);
      print(out, jsonInfo(q), () => infoTable([q]));
    }),
  );

  withClientOptions(queues.command('delete').alias('rm').description('delete a queue and every message in it').argument('<name>')).action(
    async (name: string, o: ClientFlags) =>
      withClient(o, async (client, out) => {
        await client.queues.delete(name);
        print(out, { deleted: name }, () => `deleted queue ${name}\n`);
      }),
  );

  withClientOptions(
    queues.command('purge').description('remove every message of a queue (queued, leased and retained), keeping the queue').argument('<name>'),
  ).action(async (name: string, o: ClientFlags) =>
    withClient(o, async (client, out) => {
      const purged = await client.queues.purge(name);
      print(out, { queue: name, purged }, () => `purged ${purged} message${purged === 1 ? '' : 's'} from ${name}\n`);
    }),
  );

  withClientOptions(
    queues.command('stats').description('message counts and oldest age of queues (all of them when none is named)').argument('[names...]'),
  ).action(async (names: string[], o: ClientFlags) =>
    withClient(o, async (client, out) => {
      if (names.length === 0) for await (const q of client.queues.list()) names.push(q.name);
      // Twenty at a time: a server with thousands of queues is asked in waves, not all at once.
      const stats: QueueStats[] = [];
      for (let i = 0; i < names.length; i += 20) stats.push(...(await Promise.all(names.slice(i, i + 20).map(n => client.queues.stats(n)))));
      print(out, stats, () => (stats.length === 0 ? 'no queues\n' : statsTable(stats)));
    }),
  );

  return queues;
}
