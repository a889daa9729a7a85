import type { EventEmitter } from 'node:events';
import type { ServerUnaryCall, ServiceError, sendUnaryData } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { Auth, Caller, CallInfo } from '../auth/auth.js';
import { InboxdError, unavailable } from '../errors.js';
import { toServiceError } from './error-status.js';
import { throwIfMalformed } from './strict-decode.js';

/** Trailer on a refusal that did nothing; the SDK retries such calls whatever their idempotency (sdk/idempotency.ts). */
export const NOT_APPLIED_HEADER = 'inboxd-not-applied';

/** A stream the server can end on shutdown, releasing what it holds. */
export interface Closable {
  close(reason: string): Promise<void>;
}

/**
 * Knows which calls are in flight, so shutdown can refuse new ones, let unary calls finish, and
 * close streams (which never finish by themselves).
 */
export class CallTracker {
  accepting = true;
  /** Aborted when the server starts draining: long-polls answer with what they have, at once. */
  private readonly draining = new AbortController();
  private inFlight = 0;
  private readonly streams = new Set<Closable>();
  private idle?: () => void;

  /** Streaming calls open now (admitted by enterStream, not yet ended). */
  private openCalls = 0;

  constructor(
    readonly log: Logger,
    /** Who calls, and what they may do (with auth off, every caller is anonymous with every right). */
    readonly auth: Auth,
    private readonly limits: { maxStreams: number } = { maxStreams: Infinity },
  ) {}

  /** The caller of `call` (UNAUTHENTICATED when auth is required and it has no valid credential). */
  authenticate(call: CallInfo): Promise<Caller> {
    return this.auth.authenticate(call);
  }

  /**
   * Admits a streaming call, or says why not (shutting down: UNAVAILABLE; the server's stream limit
   * reached: RESOURCE_EXHAUSTED). Counted until the call ends, however it ends.
   */
  enterStream(call: EventEmitter): ServiceError | undefined {
    if (!this.accepting) return this.refusal();
    if (this.openCalls >= this.limits.maxStreams) {
      return this.toError(
        new InboxdError(
          'resource_exhausted',
          `this server has ${this.openCalls} streams open, its limit (INBOXD_MAX_STREAMS): close streams you do not need, or retry later or on another replica`,
        ),
      );
    }
    this.openCalls++;
    let counted = true;
    const leave = () => {
      if (!counted) return;
      counted = false;
      this.openCalls--;
    };
    for (const e of ['cancelled', 'error', 'finish', 'close']) call.once(e, leave);
    return undefined;
  }

  /**
   * Wraps an async unary handler: refusal while shutting down, authentication (before anything
   * of the request is looked at), error mapping, drain accounting.
   */
  unary<Req, Res>(fn: (req: Req, call: ServerUnaryCall<Req, Res>, caller: Caller) => Promise<Res>) {
    return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => {
      if (!this.accepting) return callback(this.refusal());
      this.inFlight++;
      Promise.resolve()
        .then(() => this.authenticate(call))
        .then(caller => (throwIfMalformed(call.request), fn(call.request, call, caller)))
        .then(res => callback(null, res))
        .catch(err => callback(this.toError(err)))
        .finally(() => this.done());
    };
  }

  toError(err: unknown): ServiceError {
    return toServiceError(err, this.log) as ServiceError;
  }

  /**
   * A call refused while shutting down: UNAVAILABLE, marked as not applied so that a client may
   * send even a call that is not idempotent (a Lease) again, to another replica.
   */
  private refusal(): ServiceError {
    const err = this.toError(unavailable('server is shutting down'));
    err.metadata.set(NOT_APPLIED_HEADER, '1');
    return err;
  }

  /** Registers a stream; returns its unregister function. */
  openStream(s: Closable): () => void {
    this.streams.add(s);
    return () => this.streams.delete(s);
  }

  private done(): void {
    this.inFlight--;
    if (this.inFlight === 0) this.idle?.();
  }

  /** A signal for a call that waits (a long-poll): aborted when the call is cancelled or the server drains. */
  waitSignal(call: { on(event: 'cancelled', fn: () => void): unknown }): AbortSignal {
    const cancelled = new AbortController();
    call.on('cancelled', () => cancelled.abort());
    return AbortSignal.any([cancelled.signal, this.draining.signal]);
  }

  /**
   * Stops accepting, answers long-polls, closes every stream (telling its client UNAVAILABLE, so
   * the SDK reconnects elsewhere), and waits up to `timeoutMs` for unary calls in flight.
   */
  async drain(timeoutMs: number): Promise<void> {
    this.accepting = false;
    this.draining.abort();
    await Promise.all([...this.streams].map(s => s.close('server is shutting down').catch(err => this.log.warn({ err }, 'closing a stream failed'))));
    if (this.inFlight === 0) return;
    await new Promise<void>(resolve => {
      const t = setTimeout(resolve, timeoutMs);
      this.idle = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }
}
