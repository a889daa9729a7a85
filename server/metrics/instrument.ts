import type { QueueCore } from '../queue/core.js';
import type { TokenOutcome } from '../queue/message-store.js';
import { peekLeaseToken } from '../queue/lease-token.js';
import type { Metrics } from './metrics.js';

/** Adds `n` per queue of `items` to `counter`. */
function countBy<T>(items: T[], queueOf: (t: T) => string | undefined, inc: (queue: string, n: number) => void): void {
  const by = new Map<string, number>();
  for (const it of items) {
    const q = queueOf(it);
    if (q !== undefined) by.set(q, (by.get(q) ?? 0) + 1);
  }
  for (const [q, n] of by) inc(q, n);
}

const queueOfToken = (o: TokenOutcome) => peekLeaseToken(o.token)?.queue;

/**
 * Counts messages as the queue core moves them, by wrapping its entry points on this one
 * instance: every path goes through them (Send and SendStream through core.send; Lease and the
 * subscribers' dispatcher through store.lease; unary and streamed settles through store.ack and
 * store.nack; the sweeper through store.expire), so the transport and the core stay free of
 * metrics calls. Each wrapper counts what its call reports done, after it resolves.
 */
export function instrumentCore(core: QueueCore, m: Metrics): void {
  const store = core.store;

  const send = core.send.bind(core);
  core.send = async (messages, ...rest) => {
    const results = await send(messages, ...rest);
    countBy(results.map((r, i) => ({ r, queue: messages[i].queue })).filter(x => !x.r.duplicate), x => x.queue, (q, n) => m.sent.inc({ queue: q }, n));
    countBy(results.map((r, i) => ({ r, queue: messages[i].queue })).filter(x => x.r.duplicate), x => x.queue, (q, n) => m.duplicates.inc({ queue: q }, n));
    return results;
  };

  const lease = store.lease.bind(store);
  store.lease = async (queue, ...rest) => {
    const got = await lease(queue, ...rest);
    if (got.length > 0) m.leased.inc({ queue }, got.length);
    return got;
  };

  const ack = store.ack.bind(store);
  store.ack = async (...args) => {
    const outcomes = await ack(...args);
    countBy(outcomes.filter(o => o.ok), queueOfToken, (q, n) => m.acked.inc({ queue: q }, n));
    return outcomes;
  };

  const nack = store.nack.bind(store);
  store.nack = async (tokens, delayMs, as, reason, ...rest) => {
    const outcomes = await nack(tokens, delayMs, as, reason, ...rest);
    const ok = outcomes.filter(o => o.ok);
    // A nack is the client's (reason unset); the server's own (a stream closing, a subscriber gone) is a release.
    const back = reason === undefined ? m.nacked : m.released;
    countBy(ok.filter(o => !o.deadLettered), queueOfToken, (q, n) => back.inc({ queue: q }, n));
    countBy(ok.filter(o => o.deadLettered), queueOfToken, (q, n) => m.deadLettered.inc({ queue: q }, n));
    return outcomes;
  };

  const expire = store.expire.bind(store);
  store.expire = async (queue, refs, ...rest) => {
    const done = await expire(queue, refs, ...rest);
    if (done > 0) {
      m.leasesExpired.inc({ queue }, done);
      // pg-boss dead-letters a failed job whose retry_count reached its retry limit (max_attempts - 1).
      const info = await core.registry.find(queue).catch(() => undefined);
      if (info) {
        const last = refs.filter(r => r.retryCount >= info.config.maxAttempts - 1).length;
        if (last > 0) m.deadLettered.inc({ queue }, Math.min(last, done));
      }
    }
    return done;
  };
}
