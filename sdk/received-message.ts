import type { Delivery } from '@inboxd/proto/v1/message';
import type { Duration } from './durations.js';
import { Code, InboxdError } from './errors.js';
import type { Payload, SendOptions } from './publisher.js';

/** Sends a reply (the client's publisher): resolves with the reply's id once stored. */
export type Replier = (queue: string, payload: Payload, options: SendOptions) => Promise<string>;

/** Options of a reply: those of a send, but its correlation id is the request's. */
export type ReplyOptions = Omit<SendOptions, 'correlationId' | 'inReplyToLeaseToken'>;

/** How a nack returns a message. */
export interface NackOptions {
  /** Deliver again no sooner than this (unset: the queue's retry delay and backoff). */
  delay?: Duration;
  /** Straight to the dead-letter queue, whatever attempts remain (no delay). */
  deadLetter?: boolean;
  /** Why it failed: kept as the message's last_error (at most 1000 characters). */
  error?: string;
}

/** A nack's argument: a delay, or options. */
export function nackOptions(arg: Duration | NackOptions | undefined): NackOptions {
  return arg === undefined ? {} : typeof arg === 'object' ? arg : { delay: arg };
}

/** How a received message settles: through the stream it came on, or through unary calls. */
export interface Settler {
  ack(m: ReceivedMessage): Promise<void>;
  nack(m: ReceivedMessage, options: NackOptions): Promise<void>;
  extend(m: ReceivedMessage, by?: Duration): Promise<Date>;
}

/** A delivered message, with the operations that settle it. */
export class ReceivedMessage {
  readonly id: string;
  readonly queue: string;
  readonly payload: Buffer;
  readonly contentType: string;
  readonly headers: Record<string, string>;
  readonly sender: string;
  readonly subject: string;
  readonly correlationId: string;
  readonly replyTo: string;
  readonly priority: number;
  readonly contentHash: string;
  readonly enqueuedAt?: Date;
  readonly deliverAt?: Date;
  /** 1 on the first delivery. */
  readonly attempt: number;
  /** Names this delivery attempt, for client.ack() and friends; '' when the stream named it by tag. */
  readonly leaseToken: string;
  /** Names this delivery on the stream it came on (subscriber option deliveryTags); 0 when it has a token only. */
  readonly deliveryTag: number;
  leaseExpiresAt: Date;
  /** When this process received it. */
  readonly receivedAt = Date.now();
  /** The lease length it was delivered with (the server's leases are whole seconds): what extend() adds by default. */
  readonly leaseMs: number;
  private settlement?: Promise<void>;

  constructor(
    d: Delivery,
    private readonly settler: Settler,
    private readonly replier?: Replier,
  ) {
    const m = d.message!;
    this.id = m.id;
    this.queue = m.queue;
    this.payload = Buffer.from(m.payload);
    this.contentType = m.contentType;
    this.headers = m.headers;
    this.sender = m.sender;
    this.subject = m.subject;
    this.correlationId = m.correlationId;
    this.replyTo = m.replyTo;
    this.priority = m.priority;
    this.contentHash = m.contentHash;
    this.enqueuedAt = m.enqueuedAt;
    this.deliverAt = m.deliverAt;
    this.attempt = d.attempt;
    this.leaseToken = d.leaseToken;
    this.deliveryTag = d.deliveryTag;
    this.leaseExpiresAt = d.leaseExpiresAt ?? new Date();
    this.leaseMs = Math.max(1000, Math.round((this.leaseExpiresAt.getTime() - this.receivedAt) / 1000) * 1000);
  }

  text(): string {
    return this.payload.toString('utf8');
  }

  json<T = unknown>(): T {
    return JSON.parse(this.text()) as T;
  }

  /** Acked or nacked (or being): later ack()/nack() calls return the first settlement. */
  get settled(): boolean {
    return this.settlement !== undefined;
  }

  /** Done: the message is not delivered again. Resolves once the server confirms. */
  ack(): Promise<void> {
    return (this.settlement ??= this.settler.ack(this));
  }

  /**
   * Not done: deliver again after `delay` (unset: the queue's retry delay), or with
   * `{ deadLetter: true, error }` send it straight to the dead-letter queue.
   */
  nack(arg?: Duration | NackOptions): Promise<void> {
    return (this.settlement ??= this.settler.nack(this, nackOptions(arg)));
  }

  /**
   * Sends `payload` to this message's reply_to, with correlation_id = this message's correlation
   * id (or its id when it has none). Resolves with the reply's id once stored; rejects
   * FAILED_PRECONDITION when the message names no reply_to. Does not settle this message.
   */
  async reply(payload: Payload, options: ReplyOptions = {}): Promise<string> {
    if (!this.replyTo) {
      throw new InboxdError(Code.FAILED_PRECONDITION, `message ${this.id} in ${this.queue} has no reply_to: there is nowhere to send a reply`);
    }
    if (!this.replier) throw new InboxdError(Code.FAILED_PRECONDITION, 'this message was not received through an inboxd client, which reply() sends with');
    return this.replier(this.replyTo, payload, { ...options, correlationId: this.correlationId || this.id, inReplyToLeaseToken: this.leaseToken });
  }

  /** reply() with JSON.stringify(value) as application/json. */
  replyJson(value: unknown, options: ReplyOptions = {}): Promise<string> {
    return this.reply(Buffer.from(JSON.stringify(value), 'utf8'), { contentType: 'application/json', ...options });
  }

  /** Keep the lease `by` longer from now (unset: the subscription's visibility timeout). */
  async extend(by?: Duration): Promise<Date> {
    this.leaseExpiresAt = await this.settler.extend(this, by);
    return this.leaseExpiresAt;
  }
}
