import type { Scenario } from '../scenario.js';
import { sleep } from '../util.js';
import { codeName } from '../workload.js';
import { createQueues, loadOnOneServer } from './common.js';

const SHUTDOWN_TIMEOUT_MS = 5000;

/**
 * SIGTERM of a server under load with a Lease long-poll in flight and Subscribe streams open:
 * drain time (SIGTERM → exit) against INBOXD_SHUTDOWN_TIMEOUT_MS, when the long-poll was
 * answered, the exit code, and that streams reconnect once the server is back on its port.
 */
export const sigtermDrain: Scenario = {
  name: 'sigterm_drain',
  about: `SIGTERM under load with a 20 s Lease long-poll and open streams (shutdown timeout ${SHUTDOWN_TIMEOUT_MS} ms), then restart`,
  quick: true,
  timeoutMs: m => (m.quick ? 60_000 : 240_000),
  async run(ctx) {
    ctx.result.faults = 'SIGTERM + restart';
    const { server, w } = await loadOnOneServer(ctx, [{ name: 'work' }], { env: { INBOXD_SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS) } });
    await createQueues(w.consumer, ctx, [{ name: 'idle' }]);
    await sleep(ctx.mode.warmupMs);
    // A long-poll on an empty queue, one attempt (no SDK retry): what the server answers, and when.
    let poll: { at: number; outcome: string } | undefined;
    const started = Date.now();
    void w.consumer.lease('idle', { wait: '20s', retry: { maxAttempts: 1 } }).then(
      ms => (poll = { at: Date.now(), outcome: `OK (${ms.length} messages)` }),
      err => (poll = { at: Date.now(), outcome: codeName(err) }),
    );
    await sleep(1000);
    if (poll) ctx.result.notes.push(`the long-poll ended before SIGTERM: ${poll.outcome} after ${poll.at - started} ms`);
    ctx.log(`SIGTERM (pid ${server.pid}) with a long-poll in flight`);
    ctx.faultStarting('SIGTERM');
    const t0 = Date.now();
    const { drainMs, code, signal } = await server.sigterm(SHUTDOWN_TIMEOUT_MS * 4 + 10_000);
    ctx.result.drain_ms = drainMs;
    ctx.result.extra.exit = signal ? `signal ${signal}` : `code ${code}`;
    ctx.result.extra.shutdown_timeout_ms = SHUTDOWN_TIMEOUT_MS;
    ctx.log(`  exited after ${drainMs} ms with ${signal ? `signal ${signal}` : `code ${code}`}`);
    if (drainMs > SHUTDOWN_TIMEOUT_MS) ctx.result.notes.push(`drain took ${drainMs} ms, over the ${SHUTDOWN_TIMEOUT_MS} ms shutdown timeout`);
    const at = await server.start();
    ctx.faultEnded('restart after SIGTERM', at);
    ctx.log(`  restarted (pid ${server.pid})`);
    await sleep(ctx.mode.betweenMs);
    if (poll) {
      ctx.result.extra.long_poll_answered_ms = poll.at - t0;
      ctx.result.extra.long_poll = poll.outcome;
      if (poll.at - t0 > SHUTDOWN_TIMEOUT_MS) ctx.result.notes.push(`the long-poll was answered ${poll.at - t0} ms after SIGTERM (${poll.outcome})`);
    } else {
      ctx.result.extra.long_poll = 'unanswered';
      ctx.result.notes.push(`the long-poll was not answered ${Date.now() - t0} ms after SIGTERM`);
    }
    await ctx.finish(w);
    const r = ctx.result.recoveries[0];
    ctx.result.extra.streams_reconnect_ms = r?.delivery_ms;
  },
};
