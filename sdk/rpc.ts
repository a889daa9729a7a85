import type { Client, Metadata, ServiceError } from '@grpc/grpc-js';
import { invoke, type ChannelPool, type PooledChannel } from './channel-pool.js';
import { withRetry, type RetryBudget } from './retry.js';
import type { RetryOptions } from './default-options.js';

type UnaryFn<Req, Res> = (req: Req, md: Metadata, opts: { deadline: Date }, cb: (err: ServiceError | null, res: Res) => void) => { cancel(): void };

export interface CallOptions {
  /** Aborts the call at once, retries included (rejects with CANCELLED). */
  signal?: AbortSignal;
  /** Overrides of the client's retry options for this call. */
  retry?: Partial<RetryOptions>;
}

/** Unary calls over the pool with retries: each attempt on the next channel, so a dead replica is passed over. */
export class Rpc {
  constructor(
    readonly pool: ChannelPool,
    readonly retry: RetryOptions,
    readonly budget: RetryBudget,
  ) {}

  call<Req, Res>(pick: (c: PooledChannel) => [Client, UnaryFn<Req, Res>], req: Req, opts: CallOptions = {}): Promise<Res> {
    return withRetry(
      ({ deadline }) => {
        const [client, fn] = pick(this.pool.pick());
        return invoke(client, fn, req, deadline, opts.signal);
      },
      { ...this.retry, ...opts.retry },
      this.budget,
      opts.signal,
    );
  }
}
