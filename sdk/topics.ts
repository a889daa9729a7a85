import { randomUUID } from 'node:crypto';
import { Message } from './gen/inboxd/v1/message.js';
import { PublishRequest } from './gen/inboxd/v1/inbox.js';
import { AddTopicSubscriptionRequest, RemoveTopicSubscriptionRequest, ListTopicsRequest } from './gen/inboxd/v1/queues.js';
import { toMs } from './durations.js';
import type { Payload, SendOptions } from './publisher.js';
import type { CallOptions, Rpc } from './rpc.js';

/** A topic and the queues subscribed to it. */
export interface TopicInfo {
  name: string;
  queues: string[];
}

/** One stored copy of a published message. */
export interface PublishedCopy {
  /** The queue the copy went to. */
  queue: string;
  /** Its id in that queue. */
  id: string;
  /** True when a Publish with the same message id had already stored this copy. */
  duplicate: boolean;
  /** sha256 of the payload (hex). */
  contentHash: string;
}

/** A Message from a payload and send options: what Publisher.send builds, without a queue. */
export function buildMessage(queue: string, payload: Payload, options: SendOptions = {}): Message {
  const bytes = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  // Message fields SendOptions may carry beyond those named here pass through as they are.
  const more = options as { expiresAt?: Date; dedupKey?: string };
  return Message.fromPartial({
    id: options.id ?? randomUUID(),
    queue,
    payload: bytes,
    contentType: options.contentType ?? (typeof payload === 'string' ? 'text/plain; charset=utf-8' : ''),
    headers: options.headers ?? {},
    subject: options.subject ?? '',
    correlationId: options.correlationId ?? '',
    replyTo: options.replyTo ?? '',
    priority: options.priority ?? 0,
    deliverAt: options.deliverAt ?? (options.delay !== undefined ? new Date(Date.now() + toMs(options.delay)) : undefined),
    expiresAt: more.expiresAt,
    dedupKey: more.dedupKey ?? '',
  });
}

/**
 * Publishes one message to a topic: one copy per subscribed queue. The id is chosen here, before
 * the first attempt, so a Publish retried after a lost response stores no copy twice (the server
 * derives each copy's id from it and the queue).
 */
export async function publish(rpc: Rpc, topic: string, payload: Payload, options: SendOptions & CallOptions = {}): Promise<PublishedCopy[]> {
  const req = PublishRequest.fromPartial({ topic, messages: [buildMessage('', payload, options)] });
  const res = await rpc.call(c => [c.inbox, c.inbox.publish], req, { signal: options.signal, retry: options.retry });
  return (res.results[0]?.copies ?? []).map(c => ({ queue: c.queue, id: c.id, duplicate: c.duplicate, contentHash: c.contentHash }));
}

/**
 * Topic subscriptions (the Queues service's topic calls), typed. A topic exists while a queue is
 * subscribed to it; deleting a queue removes its subscriptions.
 */
export class TopicAdmin {
  constructor(private readonly rpc: Rpc) {}

  /** Makes `queue` receive a copy of every message published to `topic`. Idempotent. */
  async subscribe(topic: string, queue: string, options?: CallOptions): Promise<void> {
    await this.rpc.call(c => [c.queues, c.queues.addTopicSubscription], AddTopicSubscriptionRequest.fromPartial({ topic, queue }), options);
  }

  /** Stops the copies; succeeds when there was no such subscription. */
  async unsubscribe(topic: string, queue: string, options?: CallOptions): Promise<void> {
    await this.rpc.call(c => [c.queues, c.queues.removeTopicSubscription], RemoveTopicSubscriptionRequest.fromPartial({ topic, queue }), options);
  }

  /** Every topic with its queues, in name order, page by page. */
  async *list(pageSize = 100, options?: CallOptions): AsyncGenerator<TopicInfo> {
    let pageToken = '';
    do {
      const res = await this.rpc.call(c => [c.queues, c.queues.listTopics], ListTopicsRequest.fromPartial({ pageSize, pageToken }), options);
      for (const t of res.topics) yield { name: t.name, queues: t.queues };
      pageToken = res.nextPageToken;
    } while (pageToken);
  }
}
