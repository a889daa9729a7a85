import type { ServerDuplexStream } from '@grpc/grpc-js';
import type { SettleResults, SubscribeRequest, SubscribeResponse } from '@inboxd/proto/v1/inbox';
import type { Caller } from '../auth/auth.js';
import { InboxdError, invalid, unavailable } from '../errors.js';
import type { QueueCore } from '../queue/core.js';
import { peekLeaseToken } from '../queue/lease-token.js';
import type { SettleItem, TokenOutcome } from '../queue/message-store.js';
import { type FlowLimits, Subscription } from '../queue/subscription.js';
import type { CallTracker } from './call-tracker.js';
import { STATUS_OF } from './error-status.js';
import { throwIfMalformed } from './strict-decode.js';
import * as v from './validate.js';

function flowLimits(fc: SubscribeRequest['flowControl']): FlowLimits {
  return {
    maxMessages: v.count(fc?.maxOutstandingMessages ?? 0, 'flow_control.max_outstanding_messages', 1, v.LIMITS.maxOutstandingMessages, 100),
    maxBytes: (() => {
      const b = Number(fc?.maxOutstandingBytes ?? 0);
      if (!Number.isSafeInteger(b) || b < 0) throw invalid('flow_control.max_outstanding_bytes must not be negative');
      return b;
    })(),
  };
}

/** What became of one delivery tag in a settle. */
type TagOutcome = TokenOutcome & { tag: number };

function results(outcomes: TokenOutcome[], tagged: TagOutcome[]): SettleResults {
  return {
    succeeded: outcomes.filter(o => o.ok).map(o => o.token),
    failed: [
      ...outcomes.flatMap(o => (o.ok ? [] : [{ leaseToken: o.token, code: STATUS_OF[o.kind], message: o.message, deliveryTag: 0 }])),
      ...tagged.flatMap(o => (o.ok ? [] : [{ leaseToken: '', code: STATUS_OF[o.kind], message: o.message, deliveryTag: o.tag }])),
    ],
    succeededTags: tagged.filter(o => o.ok).map(o => o.tag),
  };
}

/**
 * Subscribe streams whose opening (authorization, queue lookup) runs at once, per server; the rest
 * wait their turn in order. Opening costs statements (the queue's settings when not cached, then
 * the first look at the queue), and thousands of streams opening in one burst queued thousands of
 * them on the pool at once, their statements, promises and results all held together: the heap
 * grew to several times what the open streams hold, and kept that size once they were idle. In
 * turns, a burst opens as fast (the pool runs a few statements at a time either way), and an open
 * stream waiting holds only its own state. idle_subscriptions (10,000 at once): RSS 429-501 MB
 * before, 325-348 MB at 32 and 341-345 MB at 256 (p99 31-45 ms at 256, 55-74 ms at 32, box loaded).
 */
export const OPENING_AT_ONCE = 256;

/** Runs async functions at most `max` at once, the others in the order they came. */
export class Turns {
  private running = 0;
  private waiting: (() => void)[] = [];
  private head = 0;

  constructor(private readonly max: number) {}

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.running < this.max) this.running++;
    else await new Promise<void>(resolve => this.waiting.push(resolve));
    try {
      return await fn();
    } finally {
      this.next();
    }
  }

  /** Hands the slot to the next in line, or frees it. */
  private next(): void {
    if (this.head === this.waiting.length) {
      this.running--;
      return;
    }
    const go = this.waiting[this.head++]!;
    // Forget those served once they are most of the array (no shift() of a long array per turn).
    if (this.head > 1024 && this.head * 2 > this.waiting.length) {
      this.waiting = this.waiting.slice(this.head);
      this.head = 0;
    }
    go();
  }
}

const openingTurns = new WeakMap<QueueCore, Turns>();

function turnsOf(core: QueueCore): Turns {
  let t = openingTurns.get(core);
  if (!t) openingTurns.set(core, (t = new Turns(OPENING_AT_ONCE)));
  return t;
}

/**
 * The streaming inbox. States of one stream:
 *
 *   opening --first request valid--> open --client ends / cancels / errors--> closed
 *      \--first request invalid--> failed with its status        server drain --^
 *
 * On closed, every delivery still outstanding is released to the queue at once (a nack with no
 * delay), not left to run out its lease.
 */
export function handleSubscribe(call: ServerDuplexStream<SubscribeRequest, SubscribeResponse>, core: QueueCore, calls: CallTracker): void {
  let sub: Subscription | undefined;
  let closing: Promise<void> | undefined;
  let unregister = () => {};
  /** Set once the stream is authenticated, before its first request is handled. */
  let caller: Caller | undefined;
  let releaseQuota = () => {};
  let unwatch = () => {};
  const auth = calls.auth;
  // Requests are handled one at a time, in order, so an ack never overtakes the request before it.
  let chain: Promise<void> = Promise.resolve();
  /** Off once the server drains: requests arriving later are not applied (the client resends them elsewhere). */
  let intake = true;

  const fail = (err: unknown) => {
    const e = calls.toError(err);
    void close().then(() => call.emit('error', e));
  };

  const close = (): Promise<void> => {
    closing ??= (async () => {
      unregister();
      unwatch();
      releaseQuota();
      if (!sub) return;
      sub.close();
      core.dispatcher.remove(sub);
      const held = sub.release();
      if (held.length > 0) {
        await core.nack(held, 0, null, 'subscriber stream closed').catch(err => calls.log.warn({ err }, 'releasing leases failed'));
      }
    })();
    return closing;
  };

  const open = async (req: SubscribeRequest) => {
    const c = caller!;
    const queue = v.queueName(req.queue);
    const opened = await turnsOf(core).run(async () => {
      if (closing) return undefined;
      await auth.require(c, 'consume', queue, call);
      const limits = flowLimits(req.flowControl);
      const info = await core.registry.get(queue);
      const leaseSec = req.visibilityTimeout ? v.leaseSeconds(req.visibilityTimeout, 'visibility_timeout', 0) : info.config.visibilityTimeoutSec;
      return { limits, leaseSec };
    });
    if (closing || !opened) return;
    // The server began draining while this stream waited its turn: the drain did not see it.
    if (!calls.accepting) throw unavailable('server is shutting down');
    const { limits, leaseSec } = opened;
    releaseQuota = auth.enterStream(c, call);
    // Ended when its credential is revoked or expires, or its consume grant is taken away.
    unwatch = auth.watch(c, 'consume', queue, fail, call);
    sub = new Subscription(
      queue,
      leaseSec,
      c.principal,
      { tags: req.deliveryTags, issue: ref => core.issue(ref) },
      limits,
      (deliveries, sent) => call.write({ deliveries }, () => sent()),
      fail,
      core.dispatcher.buffers,
      () => core.dispatcher.credit(queue),
    );
    const s = sub;
    call.on('drain', () => {
      s.unblocked();
      core.dispatcher.credit(s.queue);
    });
    unregister = calls.openStream({
      close: async reason => {
        // Acks and nacks the client sent before the drain are applied first: released instead,
        // their messages would be delivered again although the client had settled them.
        intake = false;
        await chain.catch(() => {});
        await close();
        call.emit('error', calls.toError(new InboxdError('unavailable', reason)));
      },
    });
    core.dispatcher.add(sub);
  };

  /**
   * Settles tokens as this stream's principal: those of another queue it may no longer consume are
   * refused (PERMISSION_DENIED) and not applied; the store refuses forged and foreign ones.
   */
  const settle = async (tokens: string[], op: (items: SettleItem[]) => Promise<TokenOutcome[]>): Promise<TokenOutcome[]> => {
    if (tokens.length === 0) return [];
    const s = sub!;
    const denied = new Set<string>();
    // An admin may consume anywhere (auth off: everyone): no token needs looking into.
    if (!caller!.admin) {
      // A token this stream delivered names its queue; only others need looking into.
      const queueOf = new Map(tokens.filter(t => !s.holds(t)).map(t => [t, peekLeaseToken(t)?.queue]));
      const allowed = new Map<string, boolean>();
      for (const [t, q] of queueOf) {
        if (!q || q === s.queue) continue;
        if (!allowed.has(q)) allowed.set(q, await auth.can(caller!, 'consume', q));
        if (!allowed.get(q)) denied.add(t);
      }
    }
    const done = denied.size === 0 ? await op(tokens) : await op(tokens.filter(t => !denied.has(t)));
    let i = 0;
    // `done` answers the tokens not denied, in order: one each.
    const out: TokenOutcome[] =
      denied.size === 0
        ? done
        : tokens.map(t =>
            denied.has(t)
              ? {
                  token: t,
                  ok: false as const,
                  kind: 'permission_denied' as const,
                  message: `principal ${caller!.principal} may not consume on queue ${peekLeaseToken(t)?.queue}`,
                }
              : done[i++]!,
          );
    // Someone else's tokens: denials like any other (audited, counted).
    for (const o of out)
      if (!o.ok && o.kind === 'permission_denied' && !denied.has(o.token)) auth.deniedToken(caller!, o.message, call, peekLeaseToken(o.token)?.queue);
    return out;
  };

  /** Settles deliveries by the tags this stream gave them: a tag it does not hold settles nothing. */
  const settleTags = async (tags: number[], op: (items: SettleItem[]) => Promise<TokenOutcome[]>): Promise<TagOutcome[]> => {
    if (tags.length === 0) return [];
    const s = sub!;
    const items = tags.map(t => s.itemOf(t));
    const known = items.filter((i): i is SettleItem => i !== undefined);
    const done = known.length > 0 ? await op(known) : [];
    let i = 0;
    return tags.map((tag, k): TagOutcome => {
      if (items[k] !== undefined) return { ...done[i++]!, tag };
      return s.tags
        ? {
            tag,
            token: '',
            ok: false,
            kind: 'failed_precondition',
            message: `delivery tag ${tag} is not held by this stream: never delivered on it, or already settled`,
          }
        : {
            tag,
            token: '',
            ok: false,
            kind: 'invalid',
            message: `delivery tag ${tag} on a stream opened without delivery_tags: set delivery_tags on its first request`,
          };
    });
  };

  /**
   * One kind of settle of a request, by token and by tag, answered per entry. An ack or nack
   * frees what it names on this stream whatever its outcome (see Subscription); an extension
   * moves the lease ends it reports.
   */
  const apply = async (
    tokens: string[],
    tags: number[],
    op: (items: SettleItem[]) => Promise<TokenOutcome[]>,
    kind: 'settle' | 'extend' = 'settle',
  ): Promise<SettleResults | undefined> => {
    if (tokens.length === 0 && tags.length === 0) return undefined;
    const s = sub!;
    const outcomes = await settle(tokens, op);
    const tagged = await settleTags(tags, op);
    if (kind === 'settle') {
      s.settled(tokens);
      s.settled(tags);
    } else {
      for (const o of outcomes) if (o.ok && o.expiresAt) s.extended(o.token, o.expiresAt);
      for (const o of tagged) if (o.ok && o.expiresAt) s.extended(o.tag, o.expiresAt);
    }
    return results(outcomes, tagged);
  };

  const update = async (req: SubscribeRequest) => {
    const s = sub!;
    const as = caller!.settleAs;
    if (req.queue && req.queue !== s.queue) throw invalid(`queue is set only on the first request of a stream (this stream reads ${s.queue})`);
    if (req.deliveryTags && !s.tags) throw invalid('delivery_tags is set only on the first request of a stream');
    v.streamSettles({
      ack_lease_tokens: req.ackLeaseTokens,
      nack_lease_tokens: req.nackLeaseTokens,
      extend_lease_tokens: req.extendLeaseTokens,
      ack_tags: req.ackTags,
      nack_tags: req.nackTags,
      extend_tags: req.extendTags,
    });
    if (req.flowControl) s.limits = flowLimits(req.flowControl);
    if (req.drain) s.draining = true;
    const out: SubscribeResponse = { deliveries: [] };
    out.ackResults = await apply(req.ackLeaseTokens, req.ackTags, items => core.ack(items, as));
    if (req.nackLeaseTokens.length > 0 || req.nackTags.length > 0) {
      const delayMs = req.nackDelay ? v.durationMs(req.nackDelay, 'nack_delay', 0, v.LIMITS.maxNackDelayMs, 0) : undefined;
      const opts = v.nackOptions(req.nackDeadLetter, req.nackError, delayMs, 'nack_');
      out.nackResults = await apply(req.nackLeaseTokens, req.nackTags, items => core.nack(items, delayMs, as, undefined, opts));
    }
    if (req.extendLeaseTokens.length > 0 || req.extendTags.length > 0) {
      const sec = req.extendVisibilityTimeout ? v.leaseSeconds(req.extendVisibilityTimeout, 'extend_visibility_timeout', 0) : s.leaseSec;
      out.extendResults = await apply(req.extendLeaseTokens, req.extendTags, items => core.extend(items, sec, as), 'extend');
    }
    if (out.ackResults || out.nackResults || out.extendResults) call.write(out);
    core.dispatcher.credit(s.queue);
  };

  const refused = calls.enterStream(call);
  if (refused) {
    call.emit('error', refused);
    return;
  }
  // Authenticated as it opens, whether or not a request ever comes: a stream refused ends at once.
  chain = calls.authenticate(call).then(c => {
    caller = c;
  }, fail);
  let first = true;
  call.on('data', (req: SubscribeRequest) => {
    const isFirst = first;
    first = false;
    chain = chain.then(() => (closing || !intake ? undefined : (throwIfMalformed(req), isFirst ? open(req) : update(req)))).catch(fail);
  });
  call.on('end', () => {
    void chain.then(close).then(() => call.end());
  });
  call.on('cancelled', () => void close());
  call.on('error', () => void close());
}
