import { PublishRequest } from '@inboxd/proto/v1/inbox';
import { AddTopicSubscriptionRequest, ListTopicsRequest, RemoveTopicSubscriptionRequest } from '@inboxd/proto/v1/queues';
import { buildMessage, type Payload, type SendOptions } from './publisher.js';
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

/**
 * Publishes one message to a topic: one copy per subscribed queue. The id is chosen here, before
 * the first attempt, so a Publish retried after a lost response stores no copy twice (the server
 * derives each copy's id from it and the queue).
 */
export async function publish(rpc: Rpc, topic: string, payload: Payload, options: SendOptions & CallOptions = {}): Promise<PublishedCopy[]> {
  const req = PublishRequest.fromPartial({ topic, messages: [buildMessage('', payload, options)] });
  const res = await rpc.call(c => [c.inbox, c.inbox.publish], req, { signal: options.signal, retry: options.retry, idempotent: true });
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
