import { type Queue, QueueConfig, type QueuesServer } from '@inboxd/proto/v1/queues';
import type { Caller, CallInfo } from '../auth/auth.js';
import { alreadyExists, InboxdError, invalid } from '../errors.js';
import type { QueueCore } from '../queue/core.js';
import { overflowFromProto, QUEUE_DEFAULTS, type ResolvedQueueConfig, toProtoConfig } from '../queue/queue-config.js';
import type { QueueInfo } from '../queue/queue-registry.js';
import type { CallTracker } from './call-tracker.js';
import { STATUS_OF } from './error-status.js';
import { filteredPage } from './pages.js';
import { topicAdminHandlers } from './topics-service.js';
import * as v from './validate.js';

const DAY_MS = 24 * 3600 * 1000;

/** A private reply queue's name: any authenticated principal may create one, up to MAX_REPLY_QUEUES. */
const REPLY_QUEUE = /^reply\.[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const MAX_REPLY_QUEUES = 100;

/** 0 (an ack deletes), or 1s to 365d rounded up to whole seconds. */
function ackedRetentionSec(d: QueueConfig['ackedRetention']): number {
  const ms = v.durationMs(d, 'config.acked_retention', 0, 365 * DAY_MS, QUEUE_DEFAULTS.ackedRetentionSec * 1000);
  if (ms > 0 && ms < 1000) throw invalid(`config.acked_retention must be 0 (an ack deletes the message) or between 1s and 365d, got ${ms}ms`);
  return Math.ceil(ms / 1000);
}

/** QueueConfig from a request, checked, with defaults for what it leaves unset. */
export function resolveQueueConfig(c: QueueConfig | undefined): ResolvedQueueConfig {
  const d = QUEUE_DEFAULTS;
  const sec = (ms: number) => Math.ceil(ms / 1000);
  const dlq = c?.deadLetterQueue ? v.queueName(c.deadLetterQueue, 'config.dead_letter_queue') : '';
  if (c?.retryDelayMax && !c.retryBackoff) {
    throw invalid('config.retry_delay_max caps the backed-off retry delay: set config.retry_backoff too, or leave retry_delay_max unset');
  }
  return {
    visibilityTimeoutSec: v.leaseSeconds(c?.visibilityTimeout, 'config.visibility_timeout', d.visibilityTimeoutSec),
    maxAttempts: v.count(c?.maxAttempts ?? 0, 'config.max_attempts', 1, 1000, d.maxAttempts),
    deadLetterQueue: dlq,
    retryDelaySec: sec(v.durationMs(c?.retryDelay, 'config.retry_delay', 0, DAY_MS, d.retryDelaySec * 1000)),
    retryBackoff: c?.retryBackoff ?? false,
    retryDelayMaxSec: sec(v.durationMs(c?.retryDelayMax, 'config.retry_delay_max', 1000, 7 * DAY_MS, 0)),
    ackedRetentionSec: ackedRetentionSec(c?.ackedRetention),
    messageTtlSec: sec(v.durationMs(c?.messageTtl, 'config.message_ttl', 0, 365 * DAY_MS, 0)),
    dedupWindowSec: sec(v.durationMs(c?.dedupWindow, 'config.dedup_window', 1000, 7 * DAY_MS, d.dedupWindowSec * 1000)),
    contentDedup: c?.contentDedup ?? false,
    maxDepth: maxDepth(c?.maxDepth),
    overflow: overflow(c),
  };
}

function maxDepth(raw: string | undefined): number {
  const n = Number(raw ?? 0);
  if (!Number.isSafeInteger(n) || n < 0 || n > 100_000_000) throw invalid(`config.max_depth must be 0 (unbounded) or 1..100000000, got ${raw}`);
  return n;
}

function overflow(c: QueueConfig | undefined): ResolvedQueueConfig['overflow'] {
  const o = overflowFromProto(c?.overflow ?? 0);
  if (!o) throw invalid(`config.overflow ${c?.overflow} is not an OverflowPolicy: REJECT, DROP_OLDEST or DROP_NEWEST`);
  if (o !== 'reject' && !Number(c?.maxDepth ?? 0)) throw invalid(`config.overflow ${o.toUpperCase()} needs config.max_depth: the queue is unbounded`);
  return o;
}

/** QueueConfig's fields, by proto name and by JSON (camelCase) name. */
const CONFIG_FIELDS = Object.keys(QueueConfig.fromPartial({})) as (keyof QueueConfig)[];
const camel = (s: string) => s.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());

/**
 * `current` with the fields of `update` named in `mask` (proto or JSON names, "config." prefix
 * allowed); an empty mask takes every field `update` sets (a scalar at its zero value counts as
 * unset: name it in the mask to set it to zero or false).
 */
export function withUpdates(current: QueueConfig, update: QueueConfig, mask: string[]): QueueConfig {
  const empty = QueueConfig.fromPartial({});
  const fields =
    mask.length > 0
      ? mask.map(p => {
          const f = camel(p.replace(/^config\./, '')) as keyof QueueConfig;
          if (!CONFIG_FIELDS.includes(f))
            throw invalid(`update_mask path ${JSON.stringify(p)} is not a QueueConfig field: ${CONFIG_FIELDS.map(snake).join(', ')}`);
          return f;
        })
      : CONFIG_FIELDS.filter(f => update[f] !== undefined && JSON.stringify(update[f]) !== JSON.stringify(empty[f]));
  if (fields.length === 0) throw invalid('nothing to update: set fields in config (or name them in update_mask)');
  const out: QueueConfig = { ...current };
  for (const f of fields) (out as unknown as Record<string, unknown>)[f] = update[f];
  return out;
}

const snake = (s: string) => s.replace(/[A-Z]/g, c => `_${c.toLowerCase()}`);

/**
 * Queues.* handlers. Each checks its verb on the queue named before anything about the queue is
 * looked at, so a refusal never tells whether the queue exists: create, update, purge, delete and
 * redrive need `admin`; get and stats `browse`; a dead-letter queue or redrive destination named
 * needs `send` on it (messages will go there); a list shows the queues the caller holds any verb on.
 */
export function queuesService(core: QueueCore, calls: CallTracker): QueuesServer {
  const reg = () => core.registry;
  const auth = calls.auth;
  const toQueue = async (q: QueueInfo): Promise<Queue> => ({
    name: q.name,
    config: toProtoConfig(q.config),
    createdAt: q.createdAt,
    owner: await auth.ownerOf(q.name),
  });
  const admin = async (raw: string, call: CallInfo, caller: Caller, field = 'name') => {
    const name = v.queueName(raw, field);
    await auth.require(caller, 'admin', name, call);
    return name;
  };
  const replyQueue = async (name: string, call: CallInfo, caller: Caller) => {
    const n = await core.replyQueuesOwnedBy(caller.principal);
    if (n >= MAX_REPLY_QUEUES) {
      throw auth.deny(
        caller,
        'admin',
        name,
        call,
        `principal ${caller.principal} owns ${n} reply queues, the most one may: delete those it no longer uses`,
        'quota',
        'resource_exhausted',
      );
    }
    return name;
  };
  const deadLetterTo = async (config: ResolvedQueueConfig, call: CallInfo, caller: Caller) => {
    if (config.deadLetterQueue) await auth.require(caller, 'send', config.deadLetterQueue, call);
    return config;
  };
  /** `existing`, when it has the settings and the owner a create asks for; else ALREADY_EXISTS naming what differs. */
  const sameQueue = async (existing: QueueInfo, config: ResolvedQueueConfig, caller: Caller): Promise<Queue> => {
    const queue = await toQueue(existing);
    const want = QueueConfig.toJSON(toProtoConfig(config)) as Record<string, unknown>;
    const have = QueueConfig.toJSON(queue.config!) as Record<string, unknown>;
    const differ = [...new Set([...Object.keys(want), ...Object.keys(have)])].filter(k => JSON.stringify(want[k]) !== JSON.stringify(have[k]));
    if (queue.owner !== caller.principal) differ.push('owner');
    if (differ.length === 0) return queue;
    const snake = (k: string) => k.replace(/[A-Z]/g, c => `_${c.toLowerCase()}`);
    throw alreadyExists(`queue ${existing.name} already exists with other settings (${differ.map(snake).join(', ')}): UpdateQueue changes settings`);
  };
  return {
    createQueue: calls.unary(async (req, call, caller) => {
      // A private reply queue (reply.<uuid>, as the SDK's request() makes) needs no grant: any
      // principal may make a few, and owns them (only it may read them).
      const name = REPLY_QUEUE.test(req.name) && caller.principal ? await replyQueue(req.name, call, caller) : await admin(req.name, call, caller);
      const config = await deadLetterTo(resolveQueueConfig(req.config), call, caller);
      // A create repeated with the same settings (a retry after a lost answer) returns the queue,
      // as SQS's CreateQueue does; another create of the name is ALREADY_EXISTS.
      const existing = await reg().find(name);
      if (existing) return { queue: await sameQueue(existing, config, caller) };
      let created: QueueInfo;
      try {
        // Its creator owns it: every verb on it, without a grant.
        created = await reg().create(name, config, caller.principal);
      } catch (err) {
        // Another create of the name won a race since the find.
        const raced = err instanceof InboxdError && err.kind === 'already_exists' ? await reg().find(name) : undefined;
        if (raced) return { queue: await sameQueue(raced, config, caller) };
        throw err;
      }
      if (caller.principal) await auth.announce();
      return { queue: await toQueue(created) };
    }),
    getQueue: calls.unary(async (req, call, caller) => {
      const name = v.queueName(req.name, 'name');
      await auth.require(caller, 'browse', name, call);
      return { queue: await toQueue(await reg().get(name)) };
    }),
    listQueues: calls.unary(async (req, _call, caller) => {
      const size = v.count(req.pageSize, 'page_size', 1, 1000, 100);
      const { items, nextPageToken } = await filteredPage(
        size,
        req.pageToken,
        (limit, after) => reg().list(limit, after),
        async q => ((await auth.canSee(caller, q.name)) ? q : undefined),
      );
      await auth.ownersOf(items.map(q => q.name)); // one statement for the page's owners, then cached
      return { queues: await Promise.all(items.map(toQueue)), nextPageToken };
    }),
    deleteQueue: calls.unary(async (req, call, caller) => {
      const name = await admin(req.name, call, caller);
      if (req.allowMissing && !(await reg().find(name))) return {};
      const owned = (await auth.ownerOf(name)) !== '';
      await reg().delete(name);
      if (owned) await auth.announce();
      return {};
    }),
    purgeQueue: calls.unary(async (req, call, caller) => ({ purged: String(await reg().purge(await admin(req.name, call, caller))) })),
    getQueueStats: calls.unary(async (req, call, caller) => {
      const name = v.queueName(req.name, 'name');
      await auth.require(caller, 'browse', name, call);
      const c = await reg().counts(name);
      const age = Math.max(0, c.oldestAgeSec);
      return {
        stats: {
          queue: name,
          depth: String(c.ready + c.delayed),
          ready: String(c.ready),
          delayed: String(c.delayed),
          leased: String(c.leased),
          deadLettered: String(c.deadLettered),
          acked: String(c.acked),
          oldestAge: { seconds: String(Math.floor(age)), nanos: Math.round((age % 1) * 1e9) },
          expired: String(c.expired),
          dropped: String(c.dropped),
          sendRate: c.sendRate,
          ackRate: c.ackRate,
        },
      };
    }),
    updateQueue: calls.unary(async (req, call, caller) => {
      const name = await admin(req.name, call, caller);
      const current = toProtoConfig((await reg().get(name)).config);
      const merged = withUpdates(current, req.config ?? QueueConfig.fromPartial({}), req.updateMask ?? []);
      return { queue: await toQueue(await reg().update(name, await deadLetterTo(resolveQueueConfig(merged), call, caller))) };
    }),
    redrive: calls.unary(async (req, call, caller) => {
      const queue = await admin(req.queue, call, caller, 'queue');
      const ids = v.messageIds(req.messageIds, 'message_ids');
      const destination = req.destination ? v.queueName(req.destination, 'destination') : undefined;
      if (destination) await auth.require(caller, 'send', destination, call);
      const limit = v.count(req.limit, 'limit', 1, 100_000, 1000);
      const r = await core.redrive(queue, ids, destination, limit);
      return { redriven: String(r.redriven), failed: r.failed.map(f => ({ messageId: f.messageId, code: STATUS_OF[f.kind], message: f.message })) };
    }),
    addTopicSubscription: calls.unary(topicAdminHandlers(core, auth).addTopicSubscription),
    removeTopicSubscription: calls.unary(topicAdminHandlers(core, auth).removeTopicSubscription),
    listTopics: calls.unary(topicAdminHandlers(core, auth).listTopics),
  };
}
