import type { PublishRequest, PublishResponse } from '../../sdk/gen/inboxd/v1/inbox.js';
import type {
  AddTopicSubscriptionRequest,
  AddTopicSubscriptionResponse,
  RemoveTopicSubscriptionRequest,
  RemoveTopicSubscriptionResponse,
  ListTopicsRequest,
  ListTopicsResponse,
} from '../../sdk/gen/inboxd/v1/queues.js';
import type { QueueCore } from '../queue/core.js';
import { invalid } from '../errors.js';
import * as v from './validate.js';

/** A topic name: the rule of a queue name. */
const topicName = (name: string) => v.queueName(name, 'topic');

/** Inbox.Publish: one copy of each message per subscribed queue (server/queue/topics.ts). */
export function publishHandler(core: QueueCore, limits: v.SendLimits) {
  return async function publish(req: PublishRequest): Promise<PublishResponse> {
    const topic = topicName(req.topic);
    if (req.messages.length === 0) throw invalid('messages is empty: publish at least one message');
    // Each message is checked as a Send's would be; its queue is ignored (each copy names its own).
    const clientIds = req.messages.map(m => m.id !== '');
    const messages = v.sendBatch(
      req.messages.map(m => ({ ...m, queue: topic })),
      limits,
    );
    const copies = await core.topics.publish(
      topic,
      messages.map((message, i) => ({ message, clientId: clientIds[i] })),
    );
    return { results: copies.map(c => ({ copies: c })) };
  };
}

/** Queues.AddTopicSubscription, RemoveTopicSubscription and ListTopics. */
export function topicAdminHandlers(core: QueueCore) {
  return {
    async addTopicSubscription(req: AddTopicSubscriptionRequest): Promise<AddTopicSubscriptionResponse> {
      await core.topics.subscribe(topicName(req.topic), v.queueName(req.queue));
      return {};
    },

    async removeTopicSubscription(req: RemoveTopicSubscriptionRequest): Promise<RemoveTopicSubscriptionResponse> {
      await core.topics.unsubscribe(topicName(req.topic), v.queueName(req.queue));
      return {};
    },

    async listTopics(req: ListTopicsRequest): Promise<ListTopicsResponse> {
      const size = v.count(req.pageSize, 'page_size', 1, 1000, 100);
      let after: string | undefined;
      if (req.pageToken) {
        after = Buffer.from(req.pageToken, 'base64url').toString('utf8');
        if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/.test(after)) throw invalid('page_token is not one this server issued: pass next_page_token from the previous response');
      }
      const page = await core.topics.list(size + 1, after);
      const topics = page.slice(0, size);
      return {
        topics,
        nextPageToken: page.length > size ? Buffer.from(topics[topics.length - 1].name, 'utf8').toString('base64url') : '',
      };
    },
  };
}
