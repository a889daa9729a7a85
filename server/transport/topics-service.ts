import type { PublishRequest, PublishResponse } from '@inboxd/proto/v1/inbox';
import type {
  AddTopicSubscriptionRequest,
  AddTopicSubscriptionResponse,
  ListTopicsRequest,
  ListTopicsResponse,
  RemoveTopicSubscriptionRequest,
  RemoveTopicSubscriptionResponse,
} from '@inboxd/proto/v1/queues';
import type { Auth, Caller, CallInfo } from '../auth/auth.js';
import { invalid } from '../errors.js';
import type { QueueCore } from '../queue/core.js';
import { filteredPage } from './pages.js';
import * as v from './validate.js';

/** A topic name: the rule of a queue name. */
const topicName = (name: string) => v.queueName(name, 'topic');

/** Inbox.Publish: one copy of each message per subscribed queue (server/queue/topics.ts). */
export function publishHandler(core: QueueCore, auth: Auth, limits: v.SendLimits) {
  return async function publish(req: PublishRequest, call: CallInfo, caller: Caller): Promise<PublishResponse> {
    const topic = topicName(req.topic);
    await auth.require(caller, 'send', topic, call, 'topic');
    if (req.messages.length === 0) throw invalid('messages is empty: publish at least one message');
    // Each message is checked as a Send's would be; its queue is ignored (each copy names its own).
    const clientIds = req.messages.map(m => m.id !== '');
    const messages = v.sendBatch(
      req.messages.map(m => ({ ...m, queue: topic })),
      limits,
    );
    auth.takeSend(caller, messages.length, call);
    // Copies go only to the subscribed queues the publisher may send to.
    const allowed = async (queues: string[]) => {
      const ok: string[] = [];
      for (const q of queues) if (await auth.can(caller, 'send', q)) ok.push(q);
      return ok;
    };
    const copies = await core.topics.publish(
      topic,
      messages.map((message, i) => ({ message, clientId: clientIds[i] ?? false })),
      caller.principal,
      allowed,
    );
    return { results: copies.map(c => ({ copies: c })) };
  };
}

/** Queues.AddTopicSubscription, RemoveTopicSubscription and ListTopics. */
export function topicAdminHandlers(core: QueueCore, auth: Auth) {
  return {
    /**
     * Needs `admin` on the queue (it is the queue's settings) and `consume` on the topic's name:
     * reading a topic is granted by whoever administers that name, as reading a queue is.
     */
    async addTopicSubscription(req: AddTopicSubscriptionRequest, call: CallInfo, caller: Caller): Promise<AddTopicSubscriptionResponse> {
      const topic = topicName(req.topic);
      const queue = v.queueName(req.queue);
      await auth.require(caller, 'admin', queue, call);
      await auth.require(caller, 'consume', topic, call, 'topic');
      await core.topics.subscribe(topic, queue);
      return {};
    },

    async removeTopicSubscription(req: RemoveTopicSubscriptionRequest, call: CallInfo, caller: Caller): Promise<RemoveTopicSubscriptionResponse> {
      const topic = topicName(req.topic);
      const queue = v.queueName(req.queue);
      await auth.require(caller, 'admin', queue, call);
      await core.topics.unsubscribe(topic, queue);
      return {};
    },

    /** Topics whose name the caller holds a grant on, with the queues of theirs it may see. */
    async listTopics(req: ListTopicsRequest, _call: CallInfo, caller: Caller): Promise<ListTopicsResponse> {
      const size = v.count(req.pageSize, 'page_size', 1, 1000, 100);
      const { items, nextPageToken } = await filteredPage(
        size,
        req.pageToken,
        (limit, after) => core.topics.list(limit, after),
        async t => {
          if (!(await auth.canSee(caller, t.name))) return undefined;
          const queues: string[] = [];
          for (const q of t.queues) if (await auth.canSee(caller, q)) queues.push(q);
          return { name: t.name, queues };
        },
      );
      return { topics: items, nextPageToken };
    },
  };
}
