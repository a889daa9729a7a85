import type { ServerDuplexStream } from '@grpc/grpc-js';
import type { InboxServer, SendStreamRequest, SendStreamResponse } from '@inboxd/proto/v1/inbox';
import type { Message } from '@inboxd/proto/v1/message';
import type { Caller, CallInfo } from '../auth/auth.js';
import { failedPrecondition, InboxdError } from '../errors.js';
import type { QueueCore } from '../queue/core.js';
import type { LeaseRef } from '../queue/lease-token.js';
import type { TokenOutcome } from '../queue/message-store.js';
import { browseHandlers } from './browse-service.js';
import type { CallTracker } from './call-tracker.js';
import { LeaseReplays } from './lease-replays.js';
import { throwIfMalformed } from './strict-decode.js';
import { handleSubscribe } from './subscribe-stream.js';
import { publishHandler } from './topics-service.js';
import * as v from './validate.js';

export interface InboxServiceOptions {
  maxMessageBytes: number;
  /** Each SendStream batch answered, seconds from its arrival (stored or refused): timed as a unary call is. */
  batchAnswered?: (seconds: number) => void;
}

/** Unary settle calls are all or nothing in their answer: any stale token fails the call. */
function throwIfStale(outcomes: TokenOutcome[], verb: string): void {
  const bad = outcomes.filter(o => !o.ok);
  const first = bad[0];
  if (first === undefined) return;
  const others = outcomes.length - bad.length;
  throw failedPrecondition(
    `${bad.length} of ${outcomes.length} lease tokens are stale (lease expired and the message was released or redelivered); ` +
      `nothing was done for them${others > 0 ? `, the other ${others} were ${verb}` : ''}. First stale token: ${first.token}`,
  );
}

export function inboxService(core: QueueCore, calls: CallTracker, opts: InboxServiceOptions): InboxServer {
  const limits = { maxMessageBytes: opts.maxMessageBytes };
  const auth = calls.auth;
  const replays = new LeaseReplays();
  /**
   * A reply without a send grant: every message to `queue` answers a request (its lease token,
   * issued to this caller) that named `queue` as reply_to and was sent by `queue`'s owner. So an
   * agent may answer whoever asked it, on the queue the asker owns, and nowhere else.
   */
  const repliesAllowed = async (queue: string, msgs: Message[], caller: Caller): Promise<boolean> => {
    if (!caller.principal || msgs.some(m => !m.inReplyToLeaseToken)) return false;
    let refs: LeaseRef[];
    try {
      refs = core.verifyTokens(
        msgs.map(m => m.inReplyToLeaseToken),
        caller.principal,
      );
    } catch {
      return false;
    }
    const owner = await auth.ownerOf(queue);
    if (!owner) return false;
    const requests = await core.replyRequests(refs);
    return refs.every(r => requests.get(r.id)?.replyTo === queue && requests.get(r.id)?.sender === owner);
  };
  /** Checks a batch: valid, `send` allowed on each queue (or a reply), within the caller's rate; stores it with the caller as sender. */
  const send = async (messages: Message[], caller: Caller, call: CallInfo) => {
    const batch = v.sendBatch(messages, limits);
    for (const q of new Set(batch.map(m => m.queue))) {
      if (
        (await auth.can(caller, 'send', q)) ||
        (await repliesAllowed(
          q,
          batch.filter(m => m.queue === q),
          caller,
        ))
      )
        continue;
      await auth.require(caller, 'send', q, call);
    }
    auth.takeSend(caller, batch.length, call);
    return core.send(batch, caller.principal);
  };
  /** The attempts `tokens` name, each issued to `caller`, on queues it may still consume; throws for the first that is not. */
  const ownTokens = async (tokens: string[], caller: Caller, call: CallInfo) => {
    let refs: LeaseRef[];
    try {
      refs = core.verifyTokens(v.leaseTokens(tokens), caller.settleAs);
    } catch (err) {
      // Someone else's token: a denial like any other (audited, counted).
      if ((err as InboxdError).kind === 'permission_denied') auth.deniedToken(caller, (err as InboxdError).message, call);
      throw err;
    }
    for (const q of new Set(refs.map(r => r.queue))) await auth.require(caller, 'consume', q, call);
    return tokens;
  };
  return {
    send: calls.unary(async (req, call, caller) => ({ results: await send(req.messages, caller, call) })),

    sendStream(call: ServerDuplexStream<SendStreamRequest, SendStreamResponse>) {
      const overLimit = calls.enterStream(call);
      if (overLimit) {
        call.emit('error', overLimit);
        return;
      }
      let pending = 0;
      let ended = false;
      let refused = false;
      let unwatch = () => {};
      const finish = () => ended && pending === 0 && call.end();
      const unregister = calls.openStream({
        close: async () => {
          ended = true;
          await core.drainSends();
          finish();
        },
      });
      /** Ends the stream with `err`'s status; batches not yet handled are dropped. */
      const refuse = (err: unknown) => {
        if (refused) return;
        refused = true;
        unregister();
        unwatch();
        call.emit('error', calls.toError(err));
      };
      // Admitted once authenticated and within the principal's stream quota (counted until it ends);
      // every batch waits for that, and each is then checked like a Send. The credential is checked
      // again on every change, as a Subscribe's is: revoked or expired, the stream ends.
      const admitted: Promise<Caller | undefined> = calls
        .authenticate(call)
        .then(c => {
          const release = auth.enterStream(c, call);
          for (const e of ['cancelled', 'error', 'finish', 'close']) call.once(e, release);
          unwatch = auth.watch(c, null, '', refuse, call);
          return c;
        })
        .catch(err => {
          refuse(err);
          return undefined;
        });
      call.on('data', (req: SendStreamRequest) => {
        if (refused) return;
        pending++;
        const arrived = performance.now();
        admitted
          .then(c => {
            if (!c || refused) return;
            return Promise.resolve()
              .then(() => (throwIfMalformed(req), send(req.messages, c, call)))
              .then(
                results => call.write({ sequence: req.sequence, results, errorCode: 0, errorMessage: '' }),
                err => {
                  const e = calls.toError(err);
                  call.write({ sequence: req.sequence ?? '0', results: [], errorCode: e.code, errorMessage: e.details });
                },
              )
              .finally(() => opts.batchAnswered?.((performance.now() - arrived) / 1000));
          })
          .finally(() => {
            pending--;
            finish();
          });
      });
      call.on('end', () => {
        ended = true;
        unregister();
        unwatch();
        finish();
      });
      call.on('error', () => {
        unregister();
        unwatch();
      });
    },

    lease: calls.unary(async (req, call, caller) => {
      const queue = v.queueName(req.queue);
      await auth.require(caller, 'consume', queue, call);
      const max = v.count(req.maxMessages, 'max_messages', 1, v.LIMITS.batch, 1);
      const leaseSec = req.visibilityTimeout ? v.leaseSeconds(req.visibilityTimeout, 'visibility_timeout', 0) : undefined;
      const waitMs = v.durationMs(req.wait, 'wait', 0, v.LIMITS.maxWaitMs, 0);
      const requestId = v.requestId(req.requestId, 'request_id');
      // A repeat is the same caller's, on the same queue: anyone else's request id leases anew.
      const key = requestId === undefined ? undefined : `${caller.principal}\n${queue}\n${requestId}`;
      return { deliveries: await replays.lease(key, () => core.lease(queue, max, leaseSec, waitMs, caller.principal, calls.waitSignal(call))) };
    }),

    subscribe: call => handleSubscribe(call, core, calls),

    ack: calls.unary(async (req, call, caller) => {
      const outcomes = await core.ack(await ownTokens(req.leaseTokens, caller, call), caller.settleAs);
      throwIfStale(outcomes, 'acked');
      return { acked: outcomes.length };
    }),

    nack: calls.unary(async (req, call, caller) => {
      const tokens = await ownTokens(req.leaseTokens, caller, call);
      // Unset: the queue's retry_delay (QueueConfig: it applies to a message "nacked without delay").
      const delayMs = req.delay ? v.durationMs(req.delay, 'delay', 0, v.LIMITS.maxNackDelayMs, 0) : undefined;
      const opts = v.nackOptions(req.deadLetter, req.error, delayMs, '');
      const outcomes = await core.nack(tokens, delayMs, caller.settleAs, undefined, opts);
      throwIfStale(outcomes, 'nacked');
      const dead = outcomes.filter(o => o.ok && o.deadLettered).length;
      return { requeued: outcomes.length - dead, deadLettered: dead };
    }),

    extendLease: calls.unary(async (req, call, caller) => {
      const tokens = await ownTokens(req.leaseTokens, caller, call);
      if (!req.visibilityTimeout) throw new InboxdError('invalid', 'visibility_timeout is required: the new lease length from now');
      const sec = v.leaseSeconds(req.visibilityTimeout, 'visibility_timeout', 0);
      const outcomes = await core.extend(tokens, sec, caller.settleAs);
      throwIfStale(outcomes, 'extended');
      return { leases: outcomes.map(o => ({ leaseToken: o.token, leaseExpiresAt: o.ok ? o.expiresAt : undefined })) };
    }),

    publish: calls.unary(publishHandler(core, auth, limits)),
    listMessages: calls.unary(browseHandlers(core, auth).listMessages),
    getMessage: calls.unary(browseHandlers(core, auth).getMessage),
  };
}
