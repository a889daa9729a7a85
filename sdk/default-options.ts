import type { Duration } from './durations.js';

/** Retries of one call (see retry.ts). */
export interface RetryOptions {
  /** Attempts in all, the first included (default: as many as totalTimeout allows). */
  maxAttempts: number;
  initialBackoff: Duration;
  maxBackoff: Duration;
  multiplier: number;
  /** Each attempt's deadline. */
  attemptTimeout: Duration;
  /** The whole call's deadline, retries included. */
  totalTimeout: Duration;
}

// A server restart or a Postgres failover takes seconds: calls ride it out within totalTimeout,
// retrying at least once a second, so work resumes within about a second of the server's return.
export const DEFAULT_RETRY: RetryOptions = {
  maxAttempts: Infinity,
  initialBackoff: 100,
  maxBackoff: 1000,
  multiplier: 2,
  attemptTimeout: '30s',
  totalTimeout: '2m',
};

/** A client-wide brake on retries, as gRPC's retry throttling: while more calls fail than succeed, retries slow down. */
export interface RetryBudgetOptions {
  maxTokens: number;
  /** Tokens a successful call gives back. */
  tokenRatio: number;
  /** While throttled, each retry waits about this long (half fixed, half random) instead of its backoff. */
  throttledBackoff: Duration;
}

export const DEFAULT_RETRY_BUDGET: RetryBudgetOptions = { maxTokens: 100, tokenRatio: 0.1, throttledBackoff: 2000 };

export interface PublisherOptions {
  /** Send a batch once it holds this many messages… */
  maxMessages: number;
  /** …or this many payload bytes… */
  maxBytes: number;
  /** …or once its first message has waited this long. 0: send on the next tick. */
  maxDelay: Duration;
  /**
   * false (default): while fewer than maxInFlight Sends are in flight, a batch goes on the next
   * tick (sends made in one tick share it), so a message pays no batching delay; once all are in
   * flight, messages gather until one returns, or maxMessages/maxBytes/maxDelay. true: every
   * batch waits for maxMessages, maxBytes or maxDelay (fewest calls, added latency).
   */
  linger: boolean;
  /** Bound on payload bytes accepted and not yet stored: send() waits beyond it. */
  maxPendingBytes: number;
  /** Batches in flight at once. */
  maxInFlight: number;
  /**
   * true (default): batches go on one SendStream per publisher, opened on first use and closed
   * 250 ms after its last answer (it counts in the principal's max_streams while open); refused, or
   * failed, batches go as unary Sends. false: a unary Send per batch.
   */
  stream: boolean;
}

export const DEFAULT_PUBLISHER: PublisherOptions = {
  maxMessages: 500,
  maxBytes: 1024 * 1024,
  maxDelay: 5,
  linger: false,
  maxPendingBytes: 64 * 1024 * 1024,
  maxInFlight: 8,
  stream: true,
};

export interface SubscriberOptions {
  /** Deliveries held and not yet acked or nacked; the server never sends more. */
  maxOutstandingMessages: number;
  /** Payload bytes held likewise (0: no limit). At least one message is always delivered. */
  maxOutstandingBytes: number;
  /** Lease of each delivery; the subscriber extends it while the handler runs. Unset: the queue's. */
  visibilityTimeout?: Duration;
  /** Stop extending a lease this long after the message arrived (it then expires and comes back). */
  maxExtension: Duration;
  /**
   * Acks and nacks are sent in batches of up to maxMessages, at most maxDelay after the first, and
   * at once when a batch would free half of maxOutstandingMessages (or maxOutstandingBytes).
   */
  ackBatching: { maxMessages: number; maxDelay: Duration };
  /**
   * True: the stream names deliveries by delivery tag (a number valid on that stream only) instead
   * of a signed lease token, cheaper for client and server (docs/benchmarks.md). Messages then have
   * no `leaseToken` (unless they ask for a reply): settle them with their own ack()/nack()/extend(),
   * not client.ack(). The cost: an ack a stream did not answer before it broke (the server or
   * Postgres restarting) cannot be sent again on the next stream, so the message comes again
   * (with tokens, the ack is retried there and lands while the lease runs). Default false.
   */
  deliveryTags: boolean;
}

export const DEFAULT_SUBSCRIBER: SubscriberOptions = {
  maxOutstandingMessages: 100,
  maxOutstandingBytes: 0,
  maxExtension: '60m',
  ackBatching: { maxMessages: 1000, maxDelay: 50 },
  deliveryTags: false,
};

export interface ClientOptions {
  /** Server addresses ('host:port'); several replicas on one Postgres spread the load. */
  endpoints: string[];
  /** Channels (HTTP/2 connections) in the pool, spread over the endpoints. */
  poolSize: number;
  /** Streams per channel before another channel is preferred (servers cap concurrent streams at ~100). */
  maxStreamsPerChannel: number;
  /** HTTP/2 keepalive ping interval: how fast a dead connection is noticed. */
  keepalive: Duration;
  retry: RetryOptions;
  retryBudget: RetryBudgetOptions;
  publisher: PublisherOptions;
  subscriber: SubscriberOptions;
}

export const DEFAULT_CLIENT: Omit<ClientOptions, 'endpoints'> = {
  poolSize: 4,
  maxStreamsPerChannel: 100,
  keepalive: '10s',
  retry: DEFAULT_RETRY,
  retryBudget: DEFAULT_RETRY_BUDGET,
  publisher: DEFAULT_PUBLISHER,
  subscriber: DEFAULT_SUBSCRIBER,
};
