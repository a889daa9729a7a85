import { createHash } from 'node:crypto';
import type { SendResult } from '@inboxd/proto/v1/inbox';
import type { Message } from '@inboxd/proto/v1/message';
import { newMessageId } from '@inboxd/sdk';
import type { PgBoss } from 'pg-boss';
import { InboxdError, isQueueNotFound, notFound } from '../errors.js';
import type { Database } from './database.js';
import type { QueueRegistry } from './queue-registry.js';
import * as sql from './sql.js';

export interface TopicInfo {
  name: string;
  queues: string[];
}

/** A message to publish: validated, and whether its id was the client's (else the server's). */
export interface PublishItem {
  message: Message;
  clientId: boolean;
}

/**
 * Fan-out over pg-boss's own subscription table (event = topic, name = queue): subscribe and
 * unsubscribe are boss.subscribe()/unsubscribe(), and the table's foreign key to the queue
 * (ON DELETE CASCADE) drops a deleted queue's subscriptions with it. Publishing does not use
 * boss.publish(), which would store pg-boss jobs without inboxd's codec: it resolves the
 * subscribed queues as boss.publish() does and hands one copy per queue to inboxd's send path
 * (`send`: QueueCore.send, the send batcher), so each copy is a full inboxd message.
 */
export class Topics {
  constructor(
    private readonly boss: PgBoss,
    private readonly db: Database,
    private readonly schema: string,
    private readonly registry: QueueRegistry,
    private readonly send: (messages: Message[], sender: string) => Promise<SendResult[]>,
  ) {}

  private exec(q: sql.Sql) {
    return this.db.exec(q);
  }

  /** Subscribes `queue` to `topic`; a repeat is a no-op. NOT_FOUND when the queue does not exist. */
  async subscribe(topic: string, queue: string): Promise<void> {
    await this.registry.get(queue);
    try {
      await this.boss.subscribe(topic, queue);
    } catch (err) {
      // The queue was deleted since (or through another replica, with our cache not yet aware).
      if ((err as { code?: string }).code === '23503') throw notFound(`queue ${queue} not found`);
      throw err;
    }
  }

  /** Removes the subscription; removing one that does not exist succeeds. */
  async unsubscribe(topic: string, queue: string): Promise<void> {
    await this.boss.unsubscribe(topic, queue);
  }

  /** Topics with at least one subscribed queue, in name order, after `after`. */
  async list(limit: number, after?: string): Promise<TopicInfo[]> {
    const { rows } = await this.exec(sql.listTopics(this.schema, limit, after));
    return rows.map(r => ({ name: r.topic as string, queues: r.queues as string[] }));
  }

  /** The queues subscribed to `topic`, in name order. */
  async subscribers(topic: string): Promise<string[]> {
    const { rows } = await this.exec(sql.topicQueues(this.schema, topic));
    return rows.map(r => r.name as string);
  }

  /**
   * Sends a copy of every message to every queue subscribed to `topic`: one result list per
   * message, in request order, one SendResult per copy (in queue name order). A copy's id is
   * fresh, or, when the client chose the message's id, derived from it and the queue (a UUID v5),
   * so a Publish retried with the same ids stores nothing twice: every copy reports duplicate.
   */
  async publish(topic: string, items: PublishItem[], sender = '', allowed: (queues: string[]) => Promise<string[]> = async q => q): Promise<SendResult[][]> {
    // One id per (message, queue), kept across the retry below.
    const ids = items.map(() => new Map<string, string>());
    const idOf = (i: number, queue: string) => {
      const mine = ids[i]!;
      const item = items[i]!;
      let id = mine.get(queue);
      if (!id) mine.set(queue, (id = item.clientId ? copyId(item.message.id, queue) : newMessageId()));
      return id;
    };
    for (let attempt = 0; ; attempt++) {
      // Only to the queues the publisher may send to (with auth on): a subscription is no way around a grant.
      const queues = await allowed(await this.subscribers(topic));
      if (queues.length === 0) return items.map(() => []);
      const copies: Message[] = [];
      items.forEach(({ message }, i) => {
        for (const queue of queues) copies.push({ ...message, queue, id: idOf(i, queue) });
      });
      try {
        const results = await this.send(copies, sender);
        return items.map((_, i) => results.slice(i * queues.length, (i + 1) * queues.length));
      } catch (err) {
        // A subscribed queue deleted between resolving and sending took its subscription with it:
        // resolve again, once. Copies stored by the first try keep their ids (and now report duplicate).
        if (attempt === 0 && isNotFound(err)) continue;
        throw err;
      }
    }
  }
}

function isNotFound(err: unknown): boolean {
  return (err instanceof InboxdError && err.kind === 'not_found') || isQueueNotFound(err);
}

/** A UUID v5 (RFC 9562) in the namespace of the client's message id, named by the queue. */
export function copyId(id: string, queue: string): string {
  const ns = Buffer.from(id.replace(/-/g, ''), 'hex');
  const h = createHash('sha1').update(ns).update(queue, 'utf8').digest().subarray(0, 16);
  h[6] = (h[6]! & 0x0f) | 0x50;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const x = h.toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}
