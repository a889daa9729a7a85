import {
  CreateQueueRequest,
  DeleteQueueRequest,
  GetQueueRequest,
  GetQueueStatsRequest,
  ListQueuesRequest,
  OverflowPolicy,
  type Queue as ProtoQueue,
  QueueConfig as ProtoQueueConfig,
  PurgeQueueRequest,
  RedriveRequest,
  UpdateQueueRequest,
} from '@inboxd/proto/v1/queues';
import { type Duration, fromProto, toProto } from './durations.js';
import { Code, InboxdError } from './errors.js';
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
  /** Messages sent without an expiry expire this long after sending (unset: never). */
  messageTtl?: Duration;
  /** How long a dedup key (or payload hash) is remembered (default 5m). */
  dedupWindow?: Duration;
  /** Deduplicate on the sha256 of the payload within dedupWindow. */
  contentDedup?: boolean;
  /** Most messages waiting (0 or unset: unbounded)… */
  maxDepth?: number;
  /** …and what a send to a full queue does (default 'reject': RESOURCE_EXHAUSTED). */
  overflow?: Overflow;
}

export type Overflow = 'reject' | 'drop_oldest' | 'drop_newest';

const OVERFLOW: Record<Overflow, OverflowPolicy> = {
  reject: OverflowPolicy.OVERFLOW_POLICY_REJECT,
  drop_oldest: OverflowPolicy.OVERFLOW_POLICY_DROP_OLDEST,
  drop_newest: OverflowPolicy.OVERFLOW_POLICY_DROP_NEWEST,
};
const overflowOf = (p: OverflowPolicy | undefined): Overflow =>
  p === OverflowPolicy.OVERFLOW_POLICY_DROP_OLDEST ? 'drop_oldest' : p === OverflowPolicy.OVERFLOW_POLICY_DROP_NEWEST ? 'drop_newest' : 'reject';

/** QueueConfig's fields by their proto names, for UpdateQueue's mask. */
const PROTO_NAME: Record<keyof QueueConfig, string> = {
  visibilityTimeout: 'visibility_timeout',
  maxAttempts: 'max_attempts',
  deadLetterQueue: 'dead_letter_queue',
  retryDelay: 'retry_delay',
  retryBackoff: 'retry_backoff',
  retryDelayMax: 'retry_delay_max',
  ackedRetention: 'acked_retention',
  messageTtl: 'message_ttl',
  dedupWindow: 'dedup_window',
  contentDedup: 'content_dedup',
  maxDepth: 'max_depth',
  overflow: 'overflow',
};

function toProtoConfig(config: QueueConfig): ProtoQueueConfig {
  return ProtoQueueConfig.fromPartial({
    visibilityTimeout: opt(config.visibilityTimeout),
    maxAttempts: config.maxAttempts ?? 0,
    deadLetterQueue: config.deadLetterQueue ?? '',
    retryDelay: opt(config.retryDelay),
    retryBackoff: config.retryBackoff ?? false,
    retryDelayMax: opt(config.retryDelayMax),
    ackedRetention: opt(config.ackedRetention),
    messageTtl: opt(config.messageTtl),
    dedupWindow: opt(config.dedupWindow),
    contentDedup: config.contentDedup ?? false,
    maxDepth: String(config.maxDepth ?? 0),
    overflow: config.overflow ? OVERFLOW[config.overflow] : OverflowPolicy.OVERFLOW_POLICY_UNSPECIFIED,
  });
}

/** What a redrive did. */
export interface RedriveResult {
  redriven: number;
  /** Messages left where they were, and why (code NOT_FOUND or FAILED_PRECONDITION). */
  failed: { messageId: string; code: Code; message: string }[];
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
  messageTtlMs: number;
  dedupWindowMs: number;
  contentDedup: boolean;
  maxDepth: number;
  overflow: Overflow;
  createdAt?: Date;
  /** The principal that created it (and so holds every verb on it); '' when created with auth off, or by a send (auto-create). */
  owner: string;
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
  /** Since the queue was created. */
  expired: number;
  dropped: number;
  /** Per second, over the last minute. */
  sendRate: number;
  ackRate: number;
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
    messageTtlMs: fromProto(c?.messageTtl),
    dedupWindowMs: fromProto(c?.dedupWindow),
    contentDedup: c?.contentDedup ?? false,
    maxDepth: Number(c?.maxDepth ?? 0),
    overflow: overflowOf(c?.overflow),
    createdAt: q?.createdAt,
    owner: q?.owner ?? '',
  };
}

const opt = (d: Duration | undefined) => (d === undefined ? undefined : toProto(d));

/** The Queues service, typed. */
export class QueueAdmin {
  constructor(private readonly rpc: Rpc) {}

  async create(name: string, config: QueueConfig = {}, options?: CallOptions): Promise<QueueInfo> {
    const req = CreateQueueRequest.fromPartial({ name, config: toProtoConfig(config) });
    return toInfo((await this.rpc.call(c => [c.queues, c.queues.createQueue], req, options)).queue);
  }

  /** Changes the settings given (others keep their values); returns the queue as it now is. */
  async update(name: string, config: QueueConfig, options?: CallOptions): Promise<QueueInfo> {
    const fields = (Object.keys(config) as (keyof QueueConfig)[]).filter(k => config[k] !== undefined);
    const req = UpdateQueueRequest.fromPartial({ name, config: toProtoConfig(config), updateMask: fields.map(f => PROTO_NAME[f]) });
    return toInfo((await this.rpc.call(c => [c.queues, c.queues.updateQueue], req, options)).queue);
  }

  /**
   * Moves dead-lettered messages from dead-letter queue `queue` back to the queues they failed in
   * (or to `destination`): all (up to `limit`, default 1000) or those with the given ids.
   */
  async redrive(queue: string, opts: { ids?: string[]; destination?: string; limit?: number } = {}, options?: CallOptions): Promise<RedriveResult> {
    const req = RedriveRequest.fromPartial({ queue, messageIds: opts.ids ?? [], destination: opts.destination ?? '', limit: opts.limit ?? 0 });
    const res = await this.rpc.call(c => [c.queues, c.queues.redrive], req, options);
    return { redriven: Number(res.redriven), failed: res.failed.map(f => ({ messageId: f.messageId, code: f.code as Code, message: f.message })) };
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

  /**
   * Deletes the queue and its messages. NOT_FOUND when there is none, unless `allowMissing`. A
   * retry after a lost answer asks for allowMissing itself: the first attempt may have deleted it.
   */
  async delete(name: string, options?: CallOptions & { allowMissing?: boolean }): Promise<void> {
    const req = (attempt: number) => DeleteQueueRequest.fromPartial({ name, allowMissing: options?.allowMissing || attempt > 1 });
    await this.rpc.call(c => [c.queues, c.queues.deleteQueue], req, options);
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
      expired: Number(s?.expired ?? 0),
      dropped: Number(s?.dropped ?? 0),
      sendRate: s?.sendRate ?? 0,
      ackRate: s?.ackRate ?? 0,
    };
  }
}
