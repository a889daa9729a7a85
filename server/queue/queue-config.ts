import { OverflowPolicy, type QueueConfig } from '@inboxd/proto/v1/queues';
import type { Queue as BossQueue } from 'pg-boss';

export type Overflow = 'reject' | 'drop_oldest' | 'drop_newest';

/** Queue settings with every default filled in; durations in whole seconds as pg-boss keeps them. */
export interface ResolvedQueueConfig {
  visibilityTimeoutSec: number;
  maxAttempts: number;
  deadLetterQueue: string;
  retryDelaySec: number;
  retryBackoff: boolean;
  retryDelayMaxSec: number; // 0: no cap
  ackedRetentionSec: number; // 0: an ack deletes the message
  messageTtlSec: number; // 0: messages never expire unless they say so
  dedupWindowSec: number;
  contentDedup: boolean;
  maxDepth: number; // 0: unbounded
  overflow: Overflow;
}

/**
 * The settings pg-boss has no column for: kept in inboxd's own queue table (sql.ts).
 * `deleteOnAck`: acked_retention 0, which pg-boss cannot say (its 0 is "keep forever").
 */
export type ExtraQueueConfig = Pick<ResolvedQueueConfig, 'messageTtlSec' | 'dedupWindowSec' | 'contentDedup' | 'maxDepth' | 'overflow'> & {
  deleteOnAck: boolean;
};

export const QUEUE_DEFAULTS: ResolvedQueueConfig = {
  visibilityTimeoutSec: 30,
  maxAttempts: 5,
  deadLetterQueue: '',
  retryDelaySec: 0,
  retryBackoff: false,
  retryDelayMaxSec: 0,
  ackedRetentionSec: 3600,
  messageTtlSec: 0,
  dedupWindowSec: 300,
  contentDedup: false,
  maxDepth: 0,
  overflow: 'reject',
};

export function extraOf(c: ResolvedQueueConfig): ExtraQueueConfig {
  return {
    messageTtlSec: c.messageTtlSec,
    dedupWindowSec: c.dedupWindowSec,
    contentDedup: c.contentDedup,
    maxDepth: c.maxDepth,
    overflow: c.overflow,
    deleteOnAck: c.ackedRetentionSec === 0,
  };
}

const OVERFLOW_TO_PROTO: Record<Overflow, OverflowPolicy> = {
  reject: OverflowPolicy.OVERFLOW_POLICY_REJECT,
  drop_oldest: OverflowPolicy.OVERFLOW_POLICY_DROP_OLDEST,
  drop_newest: OverflowPolicy.OVERFLOW_POLICY_DROP_NEWEST,
};

export function overflowFromProto(p: OverflowPolicy): Overflow | undefined {
  if (p === OverflowPolicy.OVERFLOW_POLICY_UNSPECIFIED || p === OverflowPolicy.OVERFLOW_POLICY_REJECT) return 'reject';
  if (p === OverflowPolicy.OVERFLOW_POLICY_DROP_OLDEST) return 'drop_oldest';
  if (p === OverflowPolicy.OVERFLOW_POLICY_DROP_NEWEST) return 'drop_newest';
  return undefined;
}

// pg-boss deletes jobs still queued after retentionSeconds. A queue must never drop a message
// silently, so queued messages are kept for as long as pg-boss can express: ~68 years.
export const QUEUED_RETENTION_SEC = 2_000_000_000;

export function toBossOptions(c: ResolvedQueueConfig): Omit<BossQueue, 'name'> {
  const options: Omit<BossQueue, 'name'> = {
    expireInSeconds: c.visibilityTimeoutSec,
    retryLimit: c.maxAttempts - 1,
    deadLetter: c.deadLetterQueue || undefined,
    retryDelay: c.retryDelaySec,
    retryBackoff: c.retryBackoff,
    retryDelayMax: c.retryDelayMaxSec || undefined,
    // Acked retention 0: acks delete; what else ends (dead-lettered, expired, dropped) goes at
    // pg-boss's next maintenance.
    deleteAfterSeconds: c.ackedRetentionSec || 1,
    retentionSeconds: QUEUED_RETENTION_SEC,
    notify: true,
  };
  // pg-boss rejects keys present with an undefined value.
  for (const k of Object.keys(options) as (keyof typeof options)[]) if (options[k] === undefined) delete options[k];
  return options;
}

export function fromBossOptions(q: BossQueue, extra: Partial<ExtraQueueConfig> = {}): ResolvedQueueConfig {
  const { deleteOnAck, ...own } = extra;
  return {
    ...QUEUE_DEFAULTS,
    ...own,
    visibilityTimeoutSec: q.expireInSeconds ?? QUEUE_DEFAULTS.visibilityTimeoutSec,
    maxAttempts: (q.retryLimit ?? QUEUE_DEFAULTS.maxAttempts - 1) + 1,
    deadLetterQueue: q.deadLetter ?? '',
    retryDelaySec: q.retryDelay ?? 0,
    retryBackoff: q.retryBackoff ?? false,
    retryDelayMaxSec: q.retryDelayMax ?? 0,
    // Acks that do not delete keep what they acked for pg-boss's deletion time (NOT NULL in its
    // queue table): a queue without inboxd's row (auto-created before 0 was the default) keeps its.
    ackedRetentionSec: deleteOnAck ? 0 : (q.deleteAfterSeconds as number),
  };
}

const dur = (s: number) => ({ seconds: String(s), nanos: 0 });

export function toProtoConfig(c: ResolvedQueueConfig): QueueConfig {
  return {
    visibilityTimeout: dur(c.visibilityTimeoutSec),
    maxAttempts: c.maxAttempts,
    deadLetterQueue: c.deadLetterQueue,
    retryDelay: dur(c.retryDelaySec),
    retryBackoff: c.retryBackoff,
    retryDelayMax: c.retryDelayMaxSec ? dur(c.retryDelayMaxSec) : undefined,
    ackedRetention: dur(c.ackedRetentionSec),
    messageTtl: c.messageTtlSec ? dur(c.messageTtlSec) : undefined,
    dedupWindow: dur(c.dedupWindowSec),
    contentDedup: c.contentDedup,
    maxDepth: String(c.maxDepth),
    overflow: OVERFLOW_TO_PROTO[c.overflow],
  };
}
