import { randomUUID } from 'node:crypto';
import type { ChannelCredentials, Interceptor } from '@grpc/grpc-js';
import { AckRequest, ExtendLeaseRequest, LeaseRequest, NackRequest } from '@inboxd/proto/v1/inbox';
import { AuthAdmin } from './auth.js';
import { ChannelPool } from './channel-pool.js';
import { bearerInterceptor, channelCredentials, type TlsOptions } from './credentials.js';
import { type ClientOptions, DEFAULT_CLIENT, type PublisherOptions, type RetryOptions, type SubscriberOptions } from './default-options.js';
import { type Duration, toMs, toProto } from './durations.js';
import { Code, InboxdError } from './errors.js';
import { MessageBrowser } from './messages.js';
import { type Payload, Publisher, type SendOptions } from './publisher.js';
import { QueueAdmin } from './queues.js';
import { type NackOptions, nackOptions, ReceivedMessage, type Replier, type Settler } from './received-message.js';
import { type RequestOptions, Requests } from './request-reply.js';
import { RetryBudget } from './retry.js';
import { type CallOptions, Rpc } from './rpc.js';
import { type Handler, Subscriber } from './subscriber.js';
import { type PublishedCopy, publish, TopicAdmin } from './topics.js';

export interface CreateClientOptions extends Partial<Omit<ClientOptions, 'endpoints' | 'retry' | 'publisher' | 'subscriber'>> {
  /** One server, 'host:port'… */
  address?: string;
  /** …or several replicas sharing one Postgres. */
  endpoints?: string[];
  /**
   * Sent as `authorization: Bearer <apiKey>` on every call, unary and streaming: an API key
   * (`ibx_<id>_<secret>`), the server's bootstrap admin key, or a JWT. Unset: no credential (a
   * server with auth required answers UNAUTHENTICATED, unless a client certificate identifies you).
   */
  apiKey?: string;
  /**
   * TLS: `true` to verify the server with the system's root certificates, or PEM contents (not
   * paths): `ca` to verify it with, `cert` + `key` for a client certificate (mTLS).
   * Default: plaintext, as for a server on localhost. Not with `credentials`.
   */
  tls?: TlsOptions | boolean;
  /** Channel credentials of your own (instead of `tls`). Default: insecure (plaintext). */
  credentials?: ChannelCredentials;
  /** grpc-js client interceptors of every call (tracing, logging), after the one that adds the apiKey. */
  interceptors?: Interceptor[];
  retry?: Partial<RetryOptions>;
  publisher?: Partial<PublisherOptions>;
  subscriber?: Partial<SubscriberOptions>;
}

export interface LeaseOptions extends CallOptions {
  /** 1..1000, default 1. */
  max?: number;
  visibilityTimeout?: Duration;
  /** Long-poll: wait up to this long for a first message. */
  wait?: Duration;
}

type Tokens = string | ReceivedMessage | (string | ReceivedMessage)[];
const tokensOf = (t: Tokens) =>
  (Array.isArray(t) ? t : [t]).map(x => {
    if (typeof x === 'string') return x;
    if (x.leaseToken) return x.leaseToken;
    throw new InboxdError(
      Code.FAILED_PRECONDITION,
      `message ${x.id} came on a subscription that names deliveries by tag: settle it with its own ack(), nack() or extend() (or subscribe with deliveryTags: false for lease tokens)`,
    );
  });

/**
 * The inboxd client: a pool of channels, retries with backoff, a batching publisher, streaming
 * subscribers, pull calls and queue administration.
 *
 *   const inboxd = createClient({ address: '127.0.0.1:50051' });
 *   await inboxd.send('jobs', JSON.stringify({ hello: 'world' }));
 *   const sub = inboxd.subscribe('jobs', async m => console.log(m.json()));
 */
export class InboxdClient {
  readonly queues: QueueAdmin;
  /** Principals, API keys, grants and the audit log (the Auth service). */
  readonly auth: AuthAdmin;
  /** Topic subscriptions (fan-out): subscribe(topic, queue), unsubscribe, list(). */
  readonly topics: TopicAdmin;
  /** Browsing inboxes without leasing: list(queue, { state }), get(queue, id). */
  readonly messages: MessageBrowser;
  readonly pool: ChannelPool;
  private readonly rpc: Rpc;
  private readonly options: ClientOptions;
  private defaultPublisher?: Publisher;
  private readonly subscribers = new Set<Subscriber>();
  private readonly pullSettler: Settler;
  private readonly replier: Replier = (queue, payload, options) => this.send(queue, payload, options);
  private requests?: Requests;

  constructor(o: CreateClientOptions) {
    const endpoints = o.endpoints ?? (o.address ? [o.address] : []);
    if (endpoints.length === 0) throw new RangeError('createClient: give an address or endpoints');
    const { apiKey, tls, credentials, interceptors: own = [], ...rest } = o;
    const creds = channelCredentials({ credentials, tls });
    const interceptors = [...(apiKey === undefined ? [] : [bearerInterceptor(apiKey)]), ...own];
    this.options = {
      ...DEFAULT_CLIENT,
      ...rest,
      endpoints,
      retry: { ...DEFAULT_CLIENT.retry, ...o.retry },
      publisher: { ...DEFAULT_CLIENT.publisher, ...o.publisher },
      subscriber: { ...DEFAULT_CLIENT.subscriber, ...o.subscriber },
    };
    this.pool = new ChannelPool(endpoints, this.options.poolSize, creds, {
      keepaliveMs: toMs(this.options.keepalive),
      maxStreamsPerChannel: this.options.maxStreamsPerChannel,
      interceptors,
    });
    this.rpc = new Rpc(this.pool, this.options.retry, new RetryBudget(this.options.retryBudget));
    this.queues = new QueueAdmin(this.rpc);
    this.auth = new AuthAdmin(this.rpc);
    this.topics = new TopicAdmin(this.rpc);
    this.messages = new MessageBrowser(this.rpc);
    this.pullSettler = {
      ack: async m => void (await this.ack(m)),
      nack: async (m, o) => void (await this.nack(m, o)),
      extend: async (m, by) => {
        // One token in, one lease out (a stale token fails the call instead).
        const [until] = await this.extend(m, by ?? m.leaseMs);
        if (!until) throw new InboxdError(Code.INTERNAL, 'ExtendLease answered no lease for the token it was given');
        return until;
      },
    };
  }

  /** A publisher with its own batching options (the client's send() uses a shared one). */
  publisher(options: Partial<PublisherOptions> = {}, callOptions?: CallOptions): Publisher {
    return new Publisher(this.rpc, { ...this.options.publisher, ...options }, callOptions);
  }

  /** Sends one message through the client's batching publisher; resolves with its id once stored. */
  send(queue: string, payload: Payload, options?: SendOptions): Promise<string> {
    return (this.defaultPublisher ??= this.publisher()).send(queue, payload, options);
  }

  sendJson(queue: string, value: unknown, options?: SendOptions): Promise<string> {
    return (this.defaultPublisher ??= this.publisher()).sendJson(queue, value, options);
  }

  /**
   * Publishes to a topic: one copy per queue subscribed to it (none when no queue is), each with
   * its own id. Resolves with the copies once stored. One Publish call per message (not batched).
   */
  publish(topic: string, payload: Payload, options?: SendOptions & CallOptions): Promise<PublishedCopy[]> {
    return publish(this.rpc, topic, payload, options);
  }

  publishJson(topic: string, value: unknown, options: SendOptions & CallOptions = {}): Promise<PublishedCopy[]> {
    return publish(this.rpc, topic, Buffer.from(JSON.stringify(value), 'utf8'), { contentType: 'application/json', ...options });
  }

  /**
   * Sends a request to `queue` and waits for its reply (a responder calls `message.reply()`).
   * Resolves with the reply, already acked; rejects DEADLINE_EXCEEDED after `timeout` (default
   * 30s), CANCELLED when `signal` aborts. Replies come to this client's private reply queue.
   */
  request(queue: string, payload: Payload, options?: RequestOptions): Promise<ReceivedMessage> {
    this.requests ??= new Requests(this.rpc, (q, handler) => this.subscribe(q, handler), this.replier);
    return this.requests.request(queue, payload, options);
  }

  requestJson(queue: string, value: unknown, options: RequestOptions = {}): Promise<ReceivedMessage> {
    return this.request(queue, Buffer.from(JSON.stringify(value), 'utf8'), { contentType: 'application/json', ...options });
  }

  /** Sends what the shared publisher holds. */
  async flush(): Promise<void> {
    await this.defaultPublisher?.flush();
  }

  /**
   * A streaming subscription. With a handler: each message is handled (up to
   * maxOutstandingMessages at once), acked when the handler resolves, nacked when it throws.
   * Without one: iterate with `for await (const m of sub)` and ack/nack each message.
   */
  subscribe(queue: string, handler: Handler, options?: Partial<SubscriberOptions>): Subscriber;
  subscribe(queue: string, options?: Partial<SubscriberOptions>): Subscriber;
  subscribe(queue: string, a?: Handler | Partial<SubscriberOptions>, b?: Partial<SubscriberOptions>): Subscriber {
    const handler = typeof a === 'function' ? a : undefined;
    const o = typeof a === 'function' ? b : a;
    const sub = new Subscriber(this.pool, queue, { ...this.options.subscriber, ...o }, this.options.retry, handler, this.replier);
    this.subscribers.add(sub);
    return sub;
  }

  /**
   * Pulls up to `max` messages (Lease). Settle them with their ack()/nack()/extend(). Each call
   * carries a request id of its own, so a retry after a lost answer gets the same deliveries.
   */
  async lease(queue: string, options: LeaseOptions = {}): Promise<ReceivedMessage[]> {
    const req = LeaseRequest.fromPartial({
      queue,
      maxMessages: options.max ?? 1,
      visibilityTimeout: options.visibilityTimeout === undefined ? undefined : toProto(options.visibilityTimeout),
      wait: options.wait === undefined ? undefined : toProto(options.wait),
      requestId: randomUUID(),
    });
    const waitMs = options.wait === undefined ? 0 : toMs(options.wait);
    const retry = { attemptTimeout: Math.max(toMs(this.options.retry.attemptTimeout), waitMs + 10_000), ...options.retry };
    const res = await this.rpc.call(c => [c.inbox, c.inbox.lease], req, { idempotent: true, ...options, retry });
    return res.deliveries.map(d => new ReceivedMessage(d, this.pullSettler, this.replier));
  }

  /** Acks lease tokens (or messages). Rejects FAILED_PRECONDITION if any was stale; the rest are acked. */
  async ack(tokens: Tokens, options?: CallOptions): Promise<number> {
    return (await this.rpc.call(c => [c.inbox, c.inbox.ack], AckRequest.fromPartial({ leaseTokens: tokensOf(tokens) }), options)).acked;
  }

  /**
   * Returns messages to their queue after `delay` (unset: the queue's retry delay), or with
   * `{ deadLetter: true, error }` straight to the dead-letter queue.
   */
  async nack(tokens: Tokens, arg?: Duration | NackOptions, options?: CallOptions): Promise<{ requeued: number; deadLettered: number }> {
    const o = nackOptions(arg);
    const req = NackRequest.fromPartial({
      leaseTokens: tokensOf(tokens),
      delay: o.delay === undefined ? undefined : toProto(o.delay),
      deadLetter: o.deadLetter ?? false,
      error: o.error ?? '',
    });
    return this.rpc.call(c => [c.inbox, c.inbox.nack], req, options);
  }

  /** Extends leases to now + `by`; returns the new lease ends, in order. */
  async extend(tokens: Tokens, by: Duration, options?: CallOptions): Promise<Date[]> {
    const req = ExtendLeaseRequest.fromPartial({ leaseTokens: tokensOf(tokens), visibilityTimeout: toProto(by) });
    const res = await this.rpc.call(c => [c.inbox, c.inbox.extendLease], req, options);
    return res.leases.map(l => l.leaseExpiresAt ?? new Date());
  }

  /**
   * Flushes the shared publisher, fails requests still waiting for a reply (CANCELLED), closes
   * subscribers (draining), deletes the reply queue, and closes the channels.
   */
  async close(options: { timeout?: Duration } = {}): Promise<void> {
    await this.defaultPublisher?.close().catch(() => {});
    const requests = this.requests?.close();
    await Promise.all([...this.subscribers].map(s => s.close({ timeout: options.timeout }).catch(() => {})));
    await requests;
    this.pool.close();
  }
}

export function createClient(options: CreateClientOptions): InboxdClient {
  return new InboxdClient(options);
}
