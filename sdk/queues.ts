import {
  CreateQueueRequest,
  GetQueueRequest,
  ListQueuesRequest,
  DeleteQueueRequest,
  PurgeQueueRequest,
  GetQueueStatsRequest,
  type Queue as ProtoQueue,
} from './gen/inboxd/v1/queues.js';
import { InboxdError, Code } from './errors.js';
import { toProto, fromProto, type Duration } from './durations.js';
import type { CallOptions, Rpc } from './rpc.js';

/** Queue settings; durations as milliseconds or strings ('30s'). Unset ones take the server's defaults. */
export interface QueueConfig {
  visibilityTimeout?: Duration;
  maxAttempts?: number;
  deadLetterQueue?: string;
  retryDelay?: Duration;
  retryBackoff?: boolean;
  retryDelayMax?: Duration;
  ackedRetention?: Duration;
}

/** A queue as the server describes it, durations in milliseconds. */
export interface QueueInfo {
  name: string;
  visibilityTimeoutMs: number;
  maxAttempts: number;
  deadLetterQueue: string;
  retryDelayMs: number;
  retryBackoff: boolean;
  retryDelayMaxMs: number;
  ackedRetentionMs: number;
  createdAt?: Date;
}

export interface QueueStats {
  queue: string;
  depth: number;
  ready: number;
  delayed: number;
  leased: number;
  deadLettered: number;
  acked: number;
  oldestAgeMs: number;
}

function toInfo(q: ProtoQueue | undefined): QueueInfo {
  const c = q?.config;
  return {
    name: q?.name ?? '',
    visibilityTimeoutMs: fromProto(c?.visibilityTimeout),
    maxAttempts: c?.maxAttempts ?? 0,
    deadLetterQueue: c?.deadLetterQueue ?? '',
    retryDelayMs: fromProto(c?.retryDelay),
    retryBackoff: c?.retryBackoff ?? false,
    retryDelayMaxMs: fromProto(c?.retryDelayMax),
    ackedRetentionMs: fromProto(c?.ackedRetention),
    createdAt: q?.createdAt,
  };
}

const opt = (d: Duration | undefined) => (d === undefined ? undefined : toProto(d));

/** The Queues service, typed. */
export class QueueAdmin {
  constructor(private readonly rpc: Rpc) {}

  async create(name: string, config: QueueConfig = {}, options?: CallOptions): Promise<QueueInfo> {
    const req = CreateQueueRequest.fromPartial({
      name,
      config: {
        visibilityTimeout: opt(config.visibilityTimeout),
        maxAttempts: config.maxAttempts ?? 0,
        deadLetterQueue: config.deadLetterQueue ?? '',
        retryDelay: opt(config.retryDelay),
        retryBackoff: config.retryBackoff ?? false,
        retryDelayMax: opt(config.retryDelayMax),
        ackedRetention: opt(config.ackedRetention),
      },
    });
    return toInfo((await this.rpc.call(c => [c.queues, c.queues.createQueue], req, options)).queue);
  }

  /** Creates the queue unless it exists; either way returns it. */
  async ensure(name: string, config: QueueConfig = {}, options?: CallOptions): Promise<QueueInfo> {
    try {
      return await this.create(name, config, options);
    } catch (err) {
      if (err instanceof InboxdError && err.code === Code.ALREADY_EXISTS) return this.get(name, options);
      throw err;
    }
  }

  async get(name: string, options?: CallOptions): Promise<QueueInfo> {
    return toInfo((await this.rpc.call(c => [c.queues, c.queues.getQueue], GetQueueRequest.fromPartial({ name }), options)).queue);
  }

  /** Every queue, page by page. */
  async *list(pageSize = 100, options?: CallOptions): AsyncGenerator<QueueInfo> {
    let pageToken = '';
    do {
      const res = await this.rpc.call(c => [c.queues, c.queues.listQueues], ListQueuesRequest.fromPartial({ pageSize, pageToken }), options);
      for (const q of res.queues) yield toInfo(q);
      pageToken = res.nextPageToken;
    } while (pageToken);
  }

  async delete(name: string, options?: CallOptions): Promise<void> {
    await this.rpc.call(c => [c.queues, c.queues.deleteQueue], DeleteQueueRequest.fromPartial({ name }), options);
  }

  /** Removes every message of the queue; returns how many. */
  async purge(name: string, options?: CallOptions): Promise<number> {
    return Number((await this.rpc.call(c => [c.queues, c.queues.purgeQueue], PurgeQueueRequest.fromPartial({ name }), options)).purged);
  }

  async stats(name: string, options?: CallOptions): Promise<QueueStats> {
    const s = (await this.rpc.call(c => [c.queues, c.queues.getQueueStats], GetQueueStatsRequest.fromPartial({ name }), options)).stats;
    return {
      queue: s?.queue ?? name,
      depth: Number(s?.depth ?? 0),
      ready: Number(s?.ready ?? 0),
      delayed: Number(s?.delayed ?? 0),
      leased: Number(s?.leased ?? 0),
      deadLettered: Number(s?.deadLettered ?? 0),
      acked: Number(s?.acked ?? 0),
      oldestAgeMs: fromProto(s?.oldestAge),
    };
  }
}
