import { Channel, type ChannelCredentials, type Client, connectivityState, type Interceptor, Metadata, type ServiceError } from '@grpc/grpc-js';
import { AuthClient } from '@inboxd/proto/v1/auth';
import { InboxClient } from '@inboxd/proto/v1/inbox';
import { QueuesClient } from '@inboxd/proto/v1/queues';
import { InboxdError } from './errors.js';

/** One HTTP/2 connection (a grpc-js channel with its own subchannel) and the clients on it. */
export interface PooledChannel {
  address: string;
  channel: Channel;
  inbox: InboxClient;
  queues: QueuesClient;
  auth: AuthClient;
  /** Streams open on this channel. */
  streams: number;
}

export interface PoolOptions {
  keepaliveMs: number;
  maxStreamsPerChannel: number;
  /** Client interceptors of every call on every channel (the API key's authorization header). */
  interceptors?: Interceptor[];
}

/**
 * `size` channels spread round-robin over the endpoints. Each channel has its own subchannel
 * pool, so each really is its own connection (grpc-js otherwise shares one connection among all
 * channels to one address). Unary calls rotate over the channels; streams go to the channel with
 * the fewest, so no connection carries far more than `maxStreamsPerChannel` while another has room.
 */
export class ChannelPool {
  readonly channels: PooledChannel[];
  private rr = 0;

  constructor(
    private readonly endpoints: string[],
    size: number,
    private readonly creds: ChannelCredentials,
    private readonly opts: PoolOptions,
  ) {
    if (endpoints.length === 0) throw new RangeError('at least one endpoint is required');
    const n = Math.max(size, endpoints.length);
    this.channels = Array.from({ length: n }, (_, i) => this.open(endpoints[i % endpoints.length]!));
  }

  private open(address: string): PooledChannel {
    const keepaliveMs = this.opts.keepaliveMs;
    const channel = new Channel(address, this.creds, {
      'grpc.use_local_subchannel_pool': 1,
      'grpc.keepalive_time_ms': keepaliveMs,
      'grpc.keepalive_timeout_ms': Math.max(1000, Math.min(10_000, keepaliveMs)),
      'grpc.keepalive_permit_without_calls': 1,
      'grpc.max_receive_message_length': 256 * 1024 * 1024,
      'grpc.max_send_message_length': 256 * 1024 * 1024,
      'grpc.initial_reconnect_backoff_ms': 100,
      // A restarted server is found again within a second.
      'grpc.max_reconnect_backoff_ms': 1000,
    });
    const options = { channelOverride: channel, interceptors: this.opts.interceptors ?? [] };
    return {
      address,
      channel,
      inbox: new InboxClient(address, this.creds, options),
      queues: new QueuesClient(address, this.creds, options),
      auth: new AuthClient(address, this.creds, options),
      streams: 0,
    };
  }

  /** The next channel in turn, for a unary call. */
  pick(): PooledChannel {
    // Passes over channels whose server is unreachable (while any other is not): else every call
    // would spend an attempt on a dead replica, and the retry budget would soon run out.
    for (let i = 0; i < this.channels.length; i++) {
      const c = this.nextInTurn();
      if (!isDown(c)) return c;
    }
    return this.nextInTurn();
  }

  private nextInTurn(): PooledChannel {
    // The pool is never empty: the constructor opens at least one channel per endpoint.
    const c = this.channels[this.rr % this.channels.length]!;
    this.rr = (this.rr + 1) % this.channels.length;
    return c;
  }

  /**
   * The least loaded channel, for a stream; call the returned release when the stream ends. When
   * every channel already carries maxStreamsPerChannel, the pool grows by one channel rather than
   * queue streams behind a server's concurrent-stream limit.
   */
  pickForStream(): { channel: PooledChannel; release: () => void } {
    // Reachable channels first: a stream reconnecting after its replica died goes to a live one.
    const up = this.channels.filter(c => !isDown(c));
    let best = (up.length > 0 ? up : this.channels).reduce((a, c) => (c.streams < a.streams ? c : a));
    if (best.streams >= this.opts.maxStreamsPerChannel) {
      best = this.open(this.endpoints[this.channels.length % this.endpoints.length]!);
      this.channels.push(best);
    }
    const channel = best;
    channel.streams++;
    let released = false;
    return {
      channel,
      release: () => {
        if (!released) channel.streams--;
        released = true;
      },
    };
  }

  close(): void {
    for (const c of this.channels) {
      c.inbox.close();
      c.queues.close();
      c.auth.close();
      c.channel.close();
    }
  }
}

/** The channel failed to connect (and has not connected since). */
function isDown(c: PooledChannel): boolean {
  return c.channel.getConnectivityState(false) === connectivityState.TRANSIENT_FAILURE;
}

type UnaryFn<Req, Res> = (req: Req, md: Metadata, opts: { deadline: Date }, cb: (err: ServiceError | null, res: Res) => void) => { cancel(): void };

/** One unary call with a deadline, cancelled when `signal` aborts; rejects with InboxdError. */
export function invoke<Req, Res>(client: Client, fn: UnaryFn<Req, Res>, req: Req, deadline: Date, signal?: AbortSignal): Promise<Res> {
  return new Promise((resolve, reject) => {
    const onAbort = () => call.cancel();
    const call = fn.call(client, req, new Metadata(), { deadline }, (err, res) => {
      signal?.removeEventListener('abort', onAbort);
      if (err) reject(InboxdError.from(err));
      else resolve(res);
    });
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
