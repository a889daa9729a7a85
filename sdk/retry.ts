import { status } from '@grpc/grpc-js';
import type { RetryBudgetOptions, RetryOptions } from './default-options.js';
import { toMs } from './durations.js';
import { cancelled, InboxdError } from './errors.js';

/**
 * Statuses worth another attempt of a call: the server was unreachable, slow, or in a conflict.
 * Not RESOURCE_EXHAUSTED: inboxd answers it for a full queue (max_depth, overflow REJECT) and a
 * message over the size limit, which an immediate retry does not change; the caller decides.
 */
export const RETRYABLE = new Set<status>([status.UNAVAILABLE, status.DEADLINE_EXCEEDED, status.ABORTED]);

/** Statuses after which a subscription reconnects (with backoff) rather than failing. */
export const STREAM_RETRYABLE = new Set<status>([...RETRYABLE, status.RESOURCE_EXHAUSTED]);

/**
 * Client-wide retry throttling, after gRPC's: each failed attempt costs a token, each success
 * returns `tokenRatio`; while half the tokens or fewer remain, the client is throttled. Throttled
 * retries are slowed to `throttledBackoff`, not refused: a server that is down for long gets a
 * trickle of retries, not a storm, and a call still inside its deadline is not failed for what
 * other calls did (a 3 s restart used to fail thousands of sends once the budget ran dry).
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
  /** How long the next retry of a call waits: its own backoff, or the throttled pace. */
  waitMs(attempt: number, opts: RetryOptions): number {
    if (this.canRetry()) return backoffMs(attempt, opts);
    const step = toMs(this.opts.throttledBackoff);
    return step / 2 + (Math.random() * step) / 2;
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
 * Runs `fn` until it succeeds, fails in a way `retryable` refuses (default: a status not in
 * RETRYABLE), runs out of attempts or time, or `signal` aborts (then it rejects with CANCELLED at
 * once). A throttled budget slows the retries down; it never ends a call early.
 */
export async function withRetry<T>(
  fn: (a: Attempt) => Promise<T>,
  opts: RetryOptions,
  budget: RetryBudget,
  signal?: AbortSignal,
  retryable: (err: InboxdError) => boolean = err => RETRYABLE.has(err.code),
): Promise<T> {
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
      if (!retryable(err)) throw err;
      budget.onFailure();
      // The last try goes just before the deadline rather than not at all.
      const wait = Math.min(budget.waitMs(n, opts), end - Date.now() - 50);
      if (n >= opts.maxAttempts || wait < 0) throw err;
      await sleep(wait, signal);
    }
  }
}
