import type { ReceivedMessage } from '@inboxd/sdk';
import { Command } from 'commander';
import { type ClientFlags, parseCount, parseDuration, withClient, withClientOptions } from '../client.js';
import { payloadJson, preview, print, table } from '../output.js';

/** A received message as JSON: everything a script needs to settle it and read it. */
export function messageJson(m: ReceivedMessage) {
  return {
    id: m.id,
    queue: m.queue,
    attempt: m.attempt,
    leaseToken: m.leaseToken,
    leaseExpiresAt: m.leaseExpiresAt.toISOString(),
    contentType: m.contentType,
    headers: m.headers,
    subject: m.subject || undefined,
    correlationId: m.correlationId || undefined,
    replyTo: m.replyTo || undefined,
    priority: m.priority || undefined,
    contentHash: m.contentHash,
    enqueuedAt: m.enqueuedAt?.toISOString(),
    ...payloadJson(m.payload),
  };
}

const deliveriesTable = (ms: ReceivedMessage[]) =>
  table(ms, [
    { header: 'ID', value: m => m.id },
    { header: 'ATTEMPT', value: m => m.attempt, right: true },
    { header: 'CONTENT TYPE', value: m => m.contentType || '-' },
    { header: 'PAYLOAD', value: m => preview(m.payload) },
    { header: 'LEASE TOKEN', value: m => m.leaseToken },
  ]);

/** `inboxd lease`, `inboxd ack`, `inboxd nack`: pull and settle by hand. */
export function messageCommands(): Command[] {
  const lease = withClientOptions(
    new Command('lease')
      .description('lease messages (pull): print them with the lease tokens that settle them')
      .argument('<queue>')
      .option('-n, --max <n>', 'most messages to lease', parseCount(1, 1000), 1)
      .option('--visibility-timeout <duration>', "lease length (default: the queue's)", parseDuration)
      .option('--wait <duration>', 'wait up to this long for a first message when none is ready (at most 60s)', parseDuration)
      .option('--ack', 'ack what was leased at once (consume it)'),
  ).action(async (queue: string, o: ClientFlags & { max: number; visibilityTimeout?: number; wait?: number; ack?: boolean }) =>
    withClient(o, async (client, out) => {
      // A long-poll may take its whole wait before answering: the timeout counts from after it.
      const retry = { totalTimeout: (o.wait ?? 0) + o.timeout };
      const ms = await client.lease(queue, { max: o.max, visibilityTimeout: o.visibilityTimeout, wait: o.wait, retry });
      if (o.ack && ms.length > 0) await client.ack(ms);
      print(out, ms.map(messageJson), () =>
        ms.length === 0 ? `no messages ready in ${queue}\n` : deliveriesTable(ms) + (o.ack ? `acked ${ms.length}\n` : ''),
      );
    }),
  );

  const ack = withClientOptions(
    new Command('ack').description('ack leased messages: done, never delivered again').argument('<lease-tokens...>', 'lease tokens, as lease printed them'),
  ).action(async (tokens: string[], o: ClientFlags) =>
    withClient(o, async (client, out) => {
      const acked = await client.ack(tokens);
      print(out, { acked }, () => `acked ${acked}\n`);
    }),
  );

  const nack = withClientOptions(
    new Command('nack')
      .description('nack leased messages: back to the queue for another attempt (dead-lettered on their last)')
      .argument('<lease-tokens...>', 'lease tokens, as lease printed them')
      .option('--delay <duration>', "deliver again no sooner than this (default: the queue's retry delay)", parseDuration)
      .option('--dead-letter', 'straight to the dead-letter queue, whatever attempts remain')
      .option('--error <text>', "why they failed: kept as the messages' last error"),
  ).action(async (tokens: string[], o: ClientFlags & { delay?: number; deadLetter?: boolean; error?: string }) =>
    withClient(o, async (client, out) => {
      const r = await client.nack(tokens, { delay: o.delay, deadLetter: o.deadLetter, error: o.error });
      print(out, r, () => `requeued ${r.requeued}, dead-lettered ${r.deadLettered}\n`);
    }),
  );

  return [lease, ack, nack];
}
