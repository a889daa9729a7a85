import type { InboxdError, ReceivedMessage } from '@inboxd/sdk';
import { Command } from 'commander';
import { type ClientFlags, connect, parseCount, parseDuration, withClientOptions } from '../client.js';
import { io } from '../io.js';
import { preview, printLine } from '../output.js';
import { messageJson } from './messages.js';

interface TailFlags extends ClientFlags {
  ack?: boolean;
  count?: number;
  maxOutstanding: number;
  visibilityTimeout?: number;
}

const line = (m: ReceivedMessage) =>
  `${(m.enqueuedAt ?? new Date()).toISOString()}  ${m.id}  attempt ${m.attempt}  ${m.contentType || '-'}  ${preview(m.payload)}\n`;

/**
 * `inboxd tail <queue>`: follows a queue through a Subscribe stream and prints each message as it
 * arrives. With --ack it consumes them; without, it holds them (their leases extended) and gives
 * them all back when it stops — but it sees no more than --max-outstanding messages, and each one
 * shown has used a delivery attempt (one on its last attempt is dead-lettered when given back).
 */
export function tailCommand(): Command {
  return withClientOptions(
    new Command('tail')
      .description('follow a queue: print each message as it arrives (Ctrl-C to stop)')
      .argument('<queue>')
      .option(
        '--ack',
        'ack each message once printed (consume it); without --ack, messages go back to the queue when tail stops, each having used one delivery attempt',
      )
      .option('-n, --count <n>', 'stop after this many messages', parseCount(1, 1_000_000_000))
      .option('--max-outstanding <n>', 'messages held at once; without --ack, the most tail shows', parseCount(1, 10_000), 1000)
      .option('--visibility-timeout <duration>', "lease length of each delivery (default: the queue's; extended while held)", parseDuration),
  ).action(async (queue: string, o: TailFlags) => {
    const client = connect(o);
    try {
      // Fail fast, with the right exit code, on a missing queue or a server that is not there:
      // a subscription would only keep reconnecting.
      await client.queues.get(queue);
      const sub = client.subscribe(queue, { maxOutstandingMessages: o.maxOutstanding, visibilityTimeout: o.visibilityTimeout, maxExtension: '24h' });
      if (io().stderr.isTTY)
        io().stderr.write(
          `tailing ${queue}${o.ack ? ', acking each message' : ' (not acking: messages go back when tail stops; --ack consumes)'}; Ctrl-C to stop\n`,
        );
      sub.on('reconnecting', ({ error }: { error?: InboxdError }) => io().stderr.write(`inboxd: stream lost (${error?.message ?? 'ended'}); reconnecting\n`));

      const failed = new Promise<never>((_, reject) => sub.on('error', reject));
      failed.catch(() => {});
      let onSignal = () => {};
      const stop = new Promise<void>(resolve => {
        onSignal = resolve;
        process.once('SIGINT', onSignal);
        process.once('SIGTERM', onSignal);
      });
      let seen = 0;
      // Not `for await`: leaving that loop would close the subscription the default way (drain),
      // which waits for held messages to be settled — without --ack, they never are.
      const messages = sub[Symbol.asyncIterator]();
      const follow = (async () => {
        for (;;) {
          const next = await messages.next();
          if (next.done) return;
          const m = next.value;
          if (o.json) printLine(messageJson(m));
          else io().stdout.write(line(m));
          if (o.ack) m.ack().catch(err => io().stderr.write(`inboxd: ack of ${m.id} failed: ${(err as Error).message}\n`));
          if (o.count !== undefined && ++seen >= o.count) return;
        }
      })();
      await Promise.race([follow, stop, failed]);
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      // Acks in flight are answered before the stream ends; held messages go back at once.
      await sub.close({ behavior: o.ack ? 'drain' : 'nack', timeout: '5s' });
    } finally {
      client.pool.close();
    }
  });
}
