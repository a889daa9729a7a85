/**
 * An agent: subscribes to its inbox and works through the tasks sent to it, printing each and
 * acking it once done. Flow control keeps at most MAX_OUTSTANDING tasks on hand; leases are
 * extended while a task runs, so a task may take longer than the visibility timeout.
 *
 *   INBOXD_ADDRESS=127.0.0.1:50051 npm run example:agent      (Ctrl-C to stop: drains, then exits)
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { createClient, type InboxdError, type ReceivedMessage } from '@inboxd/sdk';

const ADDRESS = process.env.INBOXD_ADDRESS ?? '127.0.0.1:50051';
const QUEUE = process.env.INBOXD_QUEUE ?? 'agent.inbox';
const MAX_OUTSTANDING = 4;

/** What the producer sends (examples/producer.ts). */
interface Task {
  n: number;
  task: string;
  url: string;
  /** How long the (simulated) work takes. */
  workMs: number;
}

const log = (line: string) => console.log(`${new Date().toISOString()} agent: ${line}`);

const inboxd = createClient({ address: ADDRESS });
// The producer creates the queue too; whichever starts first does it.
await inboxd.queues.ensure(QUEUE, { visibilityTimeout: '30s', maxAttempts: 5 });

async function handle(m: ReceivedMessage): Promise<void> {
  const t = m.json<Task>();
  log(`task #${t.n} ${t.task} ${t.url} (id ${m.id}, attempt ${m.attempt}, ${sub.outstanding} on hand)`);
  await sleep(t.workMs); // the work; its lease is extended meanwhile if it runs long
  await m.ack();
  log(`task #${t.n} done in ${t.workMs} ms, acked`);
}

const sub = inboxd.subscribe(QUEUE, handle, {
  maxOutstandingMessages: MAX_OUTSTANDING, // flow control: the server never has more than this delivered and unacked
  visibilityTimeout: '30s', // each delivery's lease…
  maxExtension: '10m', // …extended at half its length while the handler runs, for up to 10 minutes
});
sub.on('error', (err: InboxdError) => {
  log(`subscription ended: ${err.message}`);
  process.exit(1);
});
sub.on('reconnecting', ({ error, inMs }: { error?: InboxdError; inMs: number }) =>
  log(`stream lost (${error?.message ?? 'ended'}), reconnecting in ${Math.round(inMs)} ms`),
);
sub.on('handlerError', (err: unknown, m: ReceivedMessage) => log(`task ${m.id} failed (nacked): ${err}`));
sub.on('extendError', (err: unknown, m: ReceivedMessage) => log(`could not extend the lease of ${m.id}: ${err}`));

log(`subscribed to ${QUEUE} on ${ADDRESS} (at most ${MAX_OUTSTANDING} at once); Ctrl-C to stop`);

let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, async () => {
    if (stopping) return;
    stopping = true;
    log(`${signal}: finishing the tasks on hand…`);
    await sub.close({ behavior: 'drain', timeout: '30s' });
    await inboxd.close();
    log('stopped');
    process.exit(0);
  });
}
