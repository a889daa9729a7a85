/**
 * A producer: makes sure the agent's inbox exists, then sends it a few JSON tasks through a
 * batching publisher, waits until all are stored, and exits.
 *
 *   INBOXD_ADDRESS=127.0.0.1:50051 npm run example:producer          (5 tasks)
 *   npm run example:producer -- 20                                   (20 tasks)
 *   npm run example:producer -- 1 45000        (1 task of 45 s: longer than the 30 s lease, which the agent extends)
 */
import { createClient } from '@inboxd/sdk';

const ADDRESS = process.env.INBOXD_ADDRESS ?? '127.0.0.1:50051';
const QUEUE = process.env.INBOXD_QUEUE ?? 'agent.inbox';
const COUNT = Number(process.argv[2] ?? 5);
/** Unset: 200-600 ms per task. */
const WORK_MS = process.argv[3] === undefined ? undefined : Number(process.argv[3]);
if (!Number.isSafeInteger(COUNT) || COUNT < 1 || (WORK_MS !== undefined && !(WORK_MS >= 0))) {
  throw new Error(`usage: producer [count] [work-ms]; got ${process.argv.slice(2).join(' ')}`);
}

const log = (line: string) => console.log(`${new Date().toISOString()} producer: ${line}`);

const inboxd = createClient({ address: ADDRESS });
try {
  const q = await inboxd.queues.ensure(QUEUE, { visibilityTimeout: '30s', maxAttempts: 5 });
  log(`queue ${q.name} ready (visibility timeout ${q.visibilityTimeoutMs / 1000} s, max attempts ${q.maxAttempts})`);

  // Batches sends into Send calls by count (100 here), bytes (1 MiB) and delay (10 ms).
  const publisher = inboxd.publisher({ maxMessages: 100, maxDelay: 10 });
  const tasks = ['summarise', 'translate', 'classify', 'extract-links', 'screenshot'];
  const sends = Array.from({ length: COUNT }, (_, i) => {
    const task = { n: i + 1, task: tasks[i % tasks.length], url: `https://example.com/page/${i + 1}`, workMs: WORK_MS ?? 200 + 100 * (i % 5) };
    return publisher.sendJson(QUEUE, task, { headers: { source: 'examples/producer' } }).then(id => log(`task #${task.n} ${task.task} stored as ${id}`));
  });
  await publisher.flush(); // everything sent so far is stored (or failed)
  await Promise.all(sends);
  await publisher.close();

  const stats = await inboxd.queues.stats(QUEUE);
  log(`sent ${COUNT} tasks; ${QUEUE} now has ${stats.ready} ready, ${stats.leased} leased`);
} finally {
  await inboxd.close();
}
