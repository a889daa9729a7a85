import type { Client, Metadata, ServiceError } from '@grpc/grpc-js';
import { type ChannelPool, invoke, type PooledChannel } from './channel-pool.js';
import type { RetryOptions } from './default-options.js';
import { type Idempotency, idempotencyOf, mayRetry } from './idempotency.js';
import { type RetryBudget, withRetry } from './retry.js';

type UnaryFn<Req, Res> = (req: Req, md: Metadata, opts: { deadline: Date }, cb: (err: ServiceError | null, res: Res) => void) => { cancel(): void };

export interface CallOptions {
  /** Aborts the call at once, retries included (rejects with CANCELLED). */
  signal?: AbortSignal;
  /** Overrides of the client's retry options for this call. */
  retry?: Partial<RetryOptions>;
  /**
   * Declares this call safe to repeat after a lost answer, whatever its method's idempotency_level
   * in the proto says (a Send whose messages all carry ids is). Unset: the proto's level decides.
   */
  idempotent?: boolean;
}

/**
 * Unary calls over the pool with retries: each attempt on the next channel, so a dead replica is
 * passed over. Which failures are retried follows the method's idempotency_level (idempotency.ts).
 * `req` may be a function of the attempt number: a retried delete asks for allow_missing, since
 * its first attempt may have deleted the thing already.
 */
export class Rpc {
  constructor(
    readonly pool: ChannelPool,
    readonly retry: RetryOptions,
    readonly budget: RetryBudget,
  ) {}

  call<Req, Res>(pick: (c: PooledChannel) => [Client, UnaryFn<Req, Res>], req: Req | ((attempt: number) => Req), opts: CallOptions = {}): Promise<Res> {
    let level: Idempotency = 'IDEMPOTENCY_UNKNOWN';
    return withRetry(
      ({ n, deadline }) => {
        const [client, fn] = pick(this.pool.pick());
        // grpc-js puts each method's definition (its path) on the generated client's method.
        level = opts.idempotent ? 'IDEMPOTENT' : idempotencyOf((fn as { path?: string }).path);
        return invoke(client, fn, typeof req === 'function' ? (req as (attempt: number) => Req)(n) : req, deadline, opts.signal);
      },
      { ...this.retry, ...opts.retry },
      this.budget,
      opts.signal,
      err => mayRetry(err, level),
    );
  }
}
