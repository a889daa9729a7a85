import { randomUUID } from 'node:crypto';
import { CreateQueueRequest, DeleteQueueRequest } from '@inboxd/proto/v1/queues';
import { type Duration, toMs, toProto } from './durations.js';
import { Code, InboxdError } from './errors.js';
import type { Payload, SendOptions } from './publisher.js';
import type { ReceivedMessage } from './received-message.js';
import type { Rpc } from './rpc.js';
import type { Handler, Subscriber } from './subscriber.js';

export interface RequestOptions extends Omit<SendOptions, 'replyTo'> {
  /** Reject with DEADLINE_EXCEEDED when no reply came within this long. Default 30s. */
  timeout?: Duration;
  /** Abort the wait (rejects with CANCELLED); a reply arriving later is dropped. */
  signal?: AbortSignal;
}

export const DEFAULT_REQUEST_TIMEOUT: Duration = '30s';
/** Replies nobody collects (the client went away without close()) vanish this long after being sent. */
export const REPLY_QUEUE_MESSAGE_TTL: Duration = '5m';

interface Pending {
  resolve: (m: ReceivedMessage) => void;
  reject: (e: unknown) => void;
  done: () => void;
}

/**
 * The client side of request/reply: one private reply queue per client (`reply.<uuid>`, created on
 * the first request, with a short message_ttl, deleted by close()), one subscription on it, and
 * the requests waiting for a reply by correlation id. A reply whose correlation id no request
 * waits for (it came too late, or was never asked for) is acked and dropped.
 */
export class Requests {
  private readonly pending = new Map<string, Pending>();
  private ready?: Promise<string>;
  private sub?: Subscriber;
  private closed = false;

  constructor(
    private readonly rpc: Rpc,
    private readonly subscribe: (queue: string, handler: Handler) => Subscriber,
    private readonly send: (queue: string, payload: Payload, options: SendOptions) => Promise<string>,
  ) {}

  /** The reply queue's name once it exists (undefined before the first request). */
  get replyQueue(): Promise<string> | undefined {
    return this.ready;
  }

  request(queue: string, payload: Payload, options: RequestOptions = {}): Promise<ReceivedMessage> {
    const { timeout, signal, ...send } = options;
    if (this.closed) return Promise.reject(new InboxdError(Code.FAILED_PRECONDITION, 'client is closed'));
    if (signal?.aborted) return Promise.reject(new InboxdError(Code.CANCELLED, 'the caller aborted'));
    const timeoutMs = toMs(timeout ?? DEFAULT_REQUEST_TIMEOUT);
    const correlationId = send.correlationId || randomUUID();
    if (this.pending.has(correlationId)) {
      return Promise.reject(new InboxdError(Code.INVALID_ARGUMENT, `a request with correlation id ${correlationId} is already waiting for its reply`));
    }
    return new Promise<ReceivedMessage>((resolve, reject) => {
      const timer = setTimeout(
        () => fail(new InboxdError(Code.DEADLINE_EXCEEDED, `no reply to request ${correlationId} on ${queue} within ${timeoutMs} ms`)),
        timeoutMs,
      );
      const onAbort = () => fail(new InboxdError(Code.CANCELLED, 'the caller aborted'));
      signal?.addEventListener('abort', onAbort, { once: true });
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        if (this.pending.get(correlationId) === entry) this.pending.delete(correlationId);
      };
      const fail = (err: unknown) => {
        if (this.pending.get(correlationId) !== entry) return;
        done();
        reject(err);
      };
      const entry: Pending = { resolve, reject: fail, done };
      // Waiting before the request goes out: a reply can come before the Send's response does.
      this.pending.set(correlationId, entry);
      this.open()
        .then(replyTo => this.send(queue, payload, { ...send, correlationId, replyTo }))
        .catch(err => fail(InboxdError.from(err)));
    });
  }

  /** Creates the reply queue and subscribes to it, once; a failure lets the next request try again. */
  private open(): Promise<string> {
    this.ready ??= (async () => {
      const name = `reply.${randomUUID()}`;
      const req = CreateQueueRequest.fromPartial({
        name,
        config: { messageTtl: toProto(REPLY_QUEUE_MESSAGE_TTL), ackedRetention: toProto('60s') },
      });
      // A create repeated with the same settings (a retry after a lost answer) returns the queue.
      await this.rpc.call(c => [c.queues, c.queues.createQueue], req);
      if (this.closed) {
        await this.deleteQueue(name);
        throw new InboxdError(Code.FAILED_PRECONDITION, 'client is closed');
      }
      const sub = this.subscribe(name, m => this.onReply(m));
      sub.on('error', (err: InboxdError) => this.onSubscriptionFailed(sub, name, err));
      this.sub = sub;
      return name;
    })().catch(err => {
      this.ready = undefined;
      throw err;
    });
    return this.ready;
  }

  private async onReply(m: ReceivedMessage): Promise<void> {
    const p = this.pending.get(m.correlationId);
    // Unknown or late: returning acks it, and that is all.
    if (!p) return;
    // No longer waiting: a timeout from here on finds nothing to fail.
    p.done();
    await m.ack().catch(() => {});
    p.resolve(m);
  }

  /** The reply subscription ended for good (its queue deleted, …): fail the waiting, start over on the next request. */
  private onSubscriptionFailed(sub: Subscriber, name: string, err: InboxdError): void {
    if (this.sub !== sub) return;
    this.sub = undefined;
    this.ready = undefined;
    for (const p of [...this.pending.values()]) p.reject(err);
    void this.deleteQueue(name);
  }

  private async deleteQueue(name: string): Promise<void> {
    await this.rpc
      .call(c => [c.queues, c.queues.deleteQueue], DeleteQueueRequest.fromPartial({ name, allowMissing: true }), {
        retry: { maxAttempts: 3, totalTimeout: '5s' },
      })
      .catch(() => {});
  }

  /** Fails waiting requests with CANCELLED, ends the subscription and deletes the reply queue. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const p of [...this.pending.values()]) p.reject(new InboxdError(Code.CANCELLED, 'client closed while the request waited for its reply'));
    const name = await this.ready?.catch(() => undefined);
    await this.sub?.close({ behavior: 'nack', timeout: '5s' }).catch(() => {});
    if (name) await this.deleteQueue(name);
  }
}
