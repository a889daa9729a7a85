import type { Queue as BossQueue } from 'pg-boss';
import type { QueueConfig } from '../../sdk/gen/inboxd/v1/queues.js';

/** Queue settings with every default filled in; durations in whole seconds as pg-boss keeps them. */
export interface ResolvedQueueConfig {
  visibilityTimeoutSec: number;
  maxAttempts: number;
  deadLetterQueue: string;
  retryDelaySec: number;
  retryBackoff: boolean;
  retryDelayMaxSec: number; // 0: no cap
  ackedRetentionSec: number;
}

export const QUEUE_DEFAULTS: ResolvedQueueConfig = {
  visibilityTimeoutSec: 30,
  maxAttempts: 5,
  deadLetterQueue: '',
  retryDelaySec: 0,
  retryBackoff: false,
  retryDelayMaxSec: 0,
  ackedRetentionSec: 3600,
};

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
    deleteAfterSeconds: c.ackedRetentionSec,
    retentionSeconds: QUEUED_RETENTION_SEC,
    notify: true,
  };
  // pg-boss rejects keys present with an undefined value.
  for (const k of Object.keys(options) as (keyof typeof options)[]) if (options[k] === undefined) delete options[k];
  return options;
}

export function fromBossOptions(q: BossQueue): ResolvedQueueConfig {
  return {
    visibilityTimeoutSec: q.expireInSeconds ?? QUEUE_DEFAULTS.visibilityTimeoutSec,
    maxAttempts: (q.retryLimit ?? QUEUE_DEFAULTS.maxAttempts - 1) + 1,
    deadLetterQueue: q.deadLetter ?? '',
    retryDelaySec: q.retryDelay ?? 0,
    retryBackoff: q.retryBackoff ?? false,
    retryDelayMaxSec: q.retryDelayMax ?? 0,
    ackedRetentionSec: q.deleteAfterSeconds ?? QUEUE_DEFAULTS.ackedRetentionSec,
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
  };
}
