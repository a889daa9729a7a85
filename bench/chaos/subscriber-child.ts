/**
 * A subscriber in its own process, for the subscriber_kill scenario: subscribes to a queue with
 * maxOutstandingMessages N and a handler that never finishes (so it never acks), and prints one
 * line per delivery, "D <id> <attempt> <leaseToken> <receivedAt>", for the suite to record
 * before it kills this process with SIGKILL.
 *
 *   node dist/bench/chaos/subscriber-child.js <host:port> <queue> <maxOutstanding>
 */
import { createClient } from '@inboxd/sdk';

const [address, queue, max] = process.argv.slice(2);
if (address === undefined || queue === undefined) throw new Error('usage: subscriber-child.js <host:port> <queue> <maxOutstanding>');
const client = createClient({ address });
const sub = client.subscribe(
  queue,
  m => {
    process.stdout.write(`D ${m.id} ${m.attempt} ${m.leaseToken} ${m.receivedAt}\n`);
    return new Promise(() => {});
  },
  { maxOutstandingMessages: Number(max) },
);
sub.on('error', err => process.stdout.write(`E ${(err as Error).message}\n`));
