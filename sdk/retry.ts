import { status } from '@grpc/grpc-js';
import { InboxdError, cancelled } from './errors.js';
import { toMs } from './durations.js';
import type { RetryOptions, RetryBudgetOptions } from './default-options.js';

/**
 * Statuses worth another attempt of a call: the server was unreachable, slow, or in a conflict.
 * Not RESOURCE_EXHAUSTED: inboxd answers it for a full queue (max_depth, overflow REJECT) and a
 * message over the size limit, which an immediate retry does not change; the caller decides.
 */
export const RETRYABLE = new Set<status>([status.UNAVAILABLE, status.DEADLINE_EXCEEDED, status.ABORTED]);

/** Statuses after which a subscription reconnects (with backoff) rather than failing. */
export const STREAM_RETRYABLE = new Set<status>([...RETRYABLE, status.RESOURCE_EXHAUSTED]);

/**
 * Client-wide retry throttling, as gRPC specifies it: each failed attempt costs a token, each
 * success returns `tokenRatio`; retries are allowed only while more than half the tokens remain.
 * A server that is down for long gets a trickle of retries, not a storm.
 */
export class RetryBudget {
  private tokens: number;
  constructor(private readonly opts: RetryBudgetOptions) {
    this.tokens = opts.maxTokens;
  }
  onSuccess(): void {
    this.tokens = Math.min(this.opts.maxTokens, this.tokens + this.opts.tokenRatio);
  }
  onFailure(): void {
    this.tokens = Math.max(0, this.tokens - 1);
  }
  canRetry(): boolean {
    return this.tokens > this.opts.maxTokens / 2;
  }
}

/** Exponential backoff with equal jitter: half the step fixed, half random. */
export function backoffMs(attempt: number, opts: RetryOptions): number {
  const step = Math.min(toMs(opts.maxBackoff), toMs(opts.initialBackoff) * opts.multiplier ** (attempt - 1));
  return step / 2 + (Math.random() * step) / 2;
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(cancelled());
    const onAbort = () => {
      clearTimeout(t);
      reject(cancelled());
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export interface Attempt {
  /** 1 for the first. */
  n: number;
  /** This attempt's deadline. */
  deadline: Date;
}

/**
 * Runs `fn` until it succeeds, fails with a status that is not retryable, runs out of attempts,
 * time or budget, or `signal` aborts (then it rejects with CANCELLED at once).
 */
export async function withRetry<T>(fn: (a: Attempt) => Promise<T>, opts: RetryOptions, budget: RetryBudget, signal?: AbortSignal): Promise<T> {
  const end = Date.now() + toMs(opts.totalTimeout);
  for (let n = 1; ; n++) {
    if (signal?.aborted) throw cancelled();
    const deadline = new Date(Math.min(end, Date.now() + toMs(opts.attemptTimeout)));
    try {
      const out = await fn({ n, deadline });
      budget.onSuccess();
      return out;
    } catch (raw) {
      const err = InboxdError.from(raw);
      if (signal?.aborted) throw cancelled();
      if (!RETRYABLE.has(err.code)) throw err;
      budget.onFailure();
      const wait = backoffMs(n, opts);
      if (n >= opts.maxAttempts || Date.now() + wait >= end || !budget.canRetry()) throw err;
      await sleep(wait, signal);
    }
  }
}
