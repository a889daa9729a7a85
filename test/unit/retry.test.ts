import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { DEFAULT_RETRY, DEFAULT_RETRY_BUDGET } from '../../sdk/default-options.js';
import { InboxdError } from '../../sdk/errors.js';
import { backoffMs, RetryBudget, withRetry } from '../../sdk/retry.js';

const fast = { ...DEFAULT_RETRY, initialBackoff: 1, maxBackoff: 4 };
const fails = (codes: status[]) => {
  let n = 0;
  return async () => {
    const code = codes[n++];
    if (code === undefined) return n;
    throw new InboxdError(code, `attempt ${n}`);
  };
};

describe('retry', () => {
  it('backs off exponentially with equal jitter, capped', () => {
    for (let i = 0; i < 100; i++) {
      const b1 = backoffMs(1, DEFAULT_RETRY);
      expect(b1).toBeGreaterThanOrEqual(50);
      expect(b1).toBeLessThanOrEqual(100);
      const b4 = backoffMs(4, DEFAULT_RETRY);
      expect(b4).toBeGreaterThanOrEqual(400);
      expect(b4).toBeLessThanOrEqual(800);
      expect(backoffMs(30, DEFAULT_RETRY)).toBeLessThanOrEqual(5000);
    }
  });

  it('retries retryable statuses until success', async () => {
    const n = await withRetry(
      fails([status.UNAVAILABLE, status.ABORTED, status.DEADLINE_EXCEEDED, status.UNAVAILABLE]),
      fast,
      new RetryBudget(DEFAULT_RETRY_BUDGET),
    );
    expect(n).toBe(5);
  });

  it.each([
    status.RESOURCE_EXHAUSTED,
    status.INVALID_ARGUMENT,
    status.NOT_FOUND,
    status.PERMISSION_DENIED,
    status.FAILED_PRECONDITION,
    status.ALREADY_EXISTS,
    status.INTERNAL,
  ])('surfaces status %i after one attempt', async code => {
    let attempts = 0;
    const err = await withRetry(async () => (attempts++, Promise.reject(new InboxdError(code, 'no'))), fast, new RetryBudget(DEFAULT_RETRY_BUDGET)).catch(
      e => e,
    );
    expect(err).toBeInstanceOf(InboxdError);
    expect(err.code).toBe(code);
    expect(attempts).toBe(1);
  });

  it('stops after maxAttempts with the last error', async () => {
    let attempts = 0;
    const err = await withRetry(
      async () => (attempts++, Promise.reject(new InboxdError(status.UNAVAILABLE, 'down'))),
      { ...fast, maxAttempts: 3 },
      new RetryBudget(DEFAULT_RETRY_BUDGET),
    ).catch(e => e);
    expect(err.code).toBe(status.UNAVAILABLE);
    expect(attempts).toBe(3);
  });

  it('slows retries down when the client-wide budget is spent, without failing calls inside their deadline; recovers with successes', async () => {
    const budget = new RetryBudget({ maxTokens: 10, tokenRatio: 1, throttledBackoff: 40 });
    let attempts = 0;
    const at: number[] = [];
    // Down for 12 attempts, then up: the budget runs dry after 5, the call still succeeds.
    const flaky = async () => {
      at.push(Date.now());
      if (++attempts <= 12) throw new InboxdError(status.UNAVAILABLE, 'down');
      return 'ok';
    };
    expect(await withRetry(flaky, { ...fast, maxAttempts: Infinity }, budget)).toBe('ok');
    expect(attempts).toBe(13);
    // Throttled retries wait the throttled pace (20–40 ms), far longer than the 1–4 ms backoff.
    const gaps = at.slice(1).map((t, i) => t - at[i]);
    expect(Math.min(...gaps.slice(6))).toBeGreaterThanOrEqual(18);
    expect(budget.canRetry()).toBe(false);
    for (let i = 0; i < 5; i++) budget.onSuccess();
    expect(budget.canRetry()).toBe(true);
  });

  it('with a spent budget a call still ends at its total timeout, with the last error', async () => {
    const budget = new RetryBudget({ maxTokens: 2, tokenRatio: 0.1, throttledBackoff: 50 });
    const started = Date.now();
    const err = await withRetry(
      async () => Promise.reject(new InboxdError(status.UNAVAILABLE, 'down')),
      { ...fast, maxAttempts: Infinity, totalTimeout: 400 },
      budget,
    ).catch(e => e);
    expect(err.code).toBe(status.UNAVAILABLE);
    expect(Date.now() - started).toBeGreaterThan(300);
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it('an abort stops at once with CANCELLED, also during backoff', async () => {
    const ac = new AbortController();
    const slow = { ...DEFAULT_RETRY, initialBackoff: 10_000, maxBackoff: 10_000 };
    const started = Date.now();
    const p = withRetry(async () => Promise.reject(new InboxdError(status.UNAVAILABLE, 'down')), slow, new RetryBudget(DEFAULT_RETRY_BUDGET), ac.signal);
    setTimeout(() => ac.abort(), 20);
    const err = await p.catch(e => e);
    expect(err.code).toBe(status.CANCELLED);
    expect(Date.now() - started).toBeLessThan(2000);
  });
});
