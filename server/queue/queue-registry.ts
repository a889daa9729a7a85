import { LRUCache } from 'lru-cache';
import type { PgBoss } from 'pg-boss';
import { alreadyExists, failedPrecondition, invalid, notFound } from '../errors.js';
import type { Database } from './database.js';
import { type ExtraQueueConfig, extraOf, fromBossOptions, QUEUE_DEFAULTS, type ResolvedQueueConfig, toBossOptions } from './queue-config.js';
import * as sql from './sql.js';

/** A queue name a client can use (the rule of validate.queueName). */
const ADDRESSABLE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

type Extra = ExtraQueueConfig & { expired: number; dropped: number };

export interface QueueInfo {
  name: string;
  config: ResolvedQueueConfig;
  createdAt: Date;
}

export interface QueueCounts {
  expired: number;
  dropped: number;
  sendRate: number;
  ackRate: number;
  ready: number;
  delayed: number;
  leased: number;
  deadLettered: number;
  acked: number;
  oldestAgeSec: number;
}

/**
 * Queue administration over pg-boss, with the queue metadata every Send and Lease needs held in
 * an LRU cache. A cached entry lives `cacheTtlMs`: a queue deleted through another replica is
 * noticed within that time (and pg-boss refuses the insert anyway).
 */
export class QueueRegistry {
  private readonly cache: LRUCache<string, QueueInfo>;

  constructor(
    private readonly boss: PgBoss,
    private readonly db: Database,
    private readonly schema: string,
    cacheTtlMs = 5000,
  ) {
    this.cache = new LRUCache({ max: 10_000, ttl: cacheTtlMs });
  }

  /** `owner`: the principal creating it (auth on), recorded in the same statement. */
  async create(name: string, config: ResolvedQueueConfig, owner = ''): Promise<QueueInfo> {
    if (config.deadLetterQueue) {
      if (config.deadLetterQueue === name) throw invalid(`queue ${name} cannot be its own dead_letter_queue`);
      await this.get(config.deadLetterQueue).catch(() => {
        throw failedPrecondition(`dead_letter_queue ${config.deadLetterQueue} does not exist: create it first`);
      });
    }
    if (await this.boss.getQueue(name)) throw alreadyExists(`queue ${name} already exists`);
    // Not boss.createQueue(): it answers success when the queue already exists, so of two creates
    // racing for one name both would "win". This one fails unless it inserted the queue itself.
    const q = sql.createQueue(this.schema, name, { ...toBossOptions(config), policy: 'standard' }, extraOf(config), owner);
    try {
      await this.db.exec(q);
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === '23505') throw alreadyExists(`queue ${name} already exists`);
      if (code === '23503') throw failedPrecondition(`dead_letter_queue ${config.deadLetterQueue} does not exist: create it first`);
      throw err;
    }
    this.cache.delete(name);
    return this.get(name);
  }

  /** Creates the queue with default settings unless it exists. */
  async ensure(name: string): Promise<QueueInfo> {
    const found = await this.find(name);
    if (found) return found;
    // As CreateQueue makes one, with its settings row: acked_retention 0 (the default) is one of
    // inboxd's own settings, which pg-boss's createQueue alone would leave out (a queue without a
    // row keeps its acked messages for pg-boss's deletion time). Of ensures racing, one creates,
    // the others find its queue.
    try {
      await this.db.exec(sql.createQueue(this.schema, name, { ...toBossOptions(QUEUE_DEFAULTS), policy: 'standard' }, extraOf(QUEUE_DEFAULTS)));
    } catch (err) {
      if ((err as { code?: string }).code !== '23505') throw err;
    }
    this.cache.delete(name);
    return this.get(name);
  }

  async find(name: string): Promise<QueueInfo | undefined> {
    const hit = this.cache.get(name);
    if (hit) return hit;
    const q = await this.boss.getQueue(name);
    if (!q) return undefined;
    const info = toInfo(q, await this.extra(name));
    this.cache.set(name, info);
    return info;
  }

  private async extra(name: string): Promise<Extra | undefined> {
    return (await this.extras([name])).get(name);
  }

  /** Several queues' own settings and counters in one statement. */
  private async extras(names: string[]): Promise<Map<string, Extra>> {
    if (names.length === 0) return new Map();
    const { text, values } = sql.queueExtras(this.schema, names);
    const { rows } = await this.db.exec({ text, values });
    return new Map((rows as (Extra & { name: string })[]).map(r => [r.name, r]));
  }

  /** Applies a validated new configuration; replicas' caches see it within their cache TTL. */
  async update(name: string, config: ResolvedQueueConfig): Promise<QueueInfo> {
    await this.get(name);
    if (config.deadLetterQueue) {
      if (config.deadLetterQueue === name) throw invalid(`queue ${name} cannot be its own dead_letter_queue`);
      await this.get(config.deadLetterQueue).catch(() => {
        throw failedPrecondition(`dead_letter_queue ${config.deadLetterQueue} does not exist: create it first`);
      });
    }
    const { policy: _policy, ...options } = { policy: undefined, ...toBossOptions(config) };
    // pg-boss's updateQueue cannot unset a dead letter queue by leaving it out: say null.
    await this.boss.updateQueue(name, { ...options, deadLetter: config.deadLetterQueue || null } as Parameters<PgBoss['updateQueue']>[1]);
    const { text, values } = sql.upsertQueueExtra(this.schema, name, extraOf(config));
    await this.db.exec({ text, values });
    this.cache.delete(name);
    return this.get(name);
  }

  async get(name: string): Promise<QueueInfo> {
    const info = await this.find(name);
    if (!info) throw notFound(`queue ${name} not found`);
    return info;
  }

  /**
   * Queues in name order, after `after`. pg-boss's own queues (`__pgboss__…`) and any other name
   * inboxd cannot address are left out: a client could do nothing with them.
   */
  async list(limit: number, after?: string): Promise<QueueInfo[]> {
    const out: QueueInfo[] = [];
    let cursor = after || undefined;
    for (;;) {
      const qs = await this.boss.getQueues(undefined, { limit, after: cursor });
      const extras = await this.extras(qs.filter(q => ADDRESSABLE.test(q.name)).map(q => q.name));
      for (const q of qs) if (ADDRESSABLE.test(q.name)) out.push(toInfo(q, extras.get(q.name)));
      const last = qs.at(-1);
      if (out.length >= limit || qs.length < limit || !last) return out.slice(0, limit);
      cursor = last.name;
    }
  }

  async delete(name: string): Promise<void> {
    await this.get(name);
    try {
      await this.boss.deleteQueue(name);
      const { text, values } = sql.deleteQueueExtra(this.schema, name);
      await this.db.exec({ text, values });
    } catch (err) {
      const msg = (err as Error).message ?? '';
      if (/dead letter|dead_letter|foreign key/i.test(msg)) {
        throw failedPrecondition(`queue ${name} is the dead_letter_queue of another queue or holds its messages: ${msg}`);
      }
      throw err;
    } finally {
      this.cache.delete(name);
    }
  }

  async purge(name: string): Promise<number> {
    await this.get(name);
    return (await this.boss.deleteAllJobs(name)) ?? 0;
  }

  async counts(name: string): Promise<QueueCounts> {
    await this.get(name);
    const { text, values } = sql.queueCounts(this.schema, name);
    const [{ rows }, extra] = await Promise.all([this.db.exec({ text, values }), this.extra(name)]);
    const r = rows[0] as Record<string, string>;
    return {
      expired: Number(extra?.expired ?? 0),
      dropped: Number(extra?.dropped ?? 0),
      sendRate: Number(r.send_rate),
      ackRate: Number(r.ack_rate),
      ready: Number(r.ready),
      delayed: Number(r.delayed),
      leased: Number(r.leased),
      deadLettered: Number(r.dead_lettered),
      acked: Number(r.acked),
      oldestAgeSec: Number(r.oldest_age_s),
    };
  }
}

function toInfo(q: { name: string; createdOn?: Date } & Parameters<typeof fromBossOptions>[0], extra?: Partial<ExtraQueueConfig>): QueueInfo {
  return { name: q.name, config: fromBossOptions(q, extra && pickExtra(extra)), createdAt: q.createdOn ?? new Date(0) };
}

function pickExtra(e: Partial<ExtraQueueConfig>): Partial<ExtraQueueConfig> {
  return {
    messageTtlSec: e.messageTtlSec,
    dedupWindowSec: e.dedupWindowSec,
    contentDedup: e.contentDedup,
    maxDepth: e.maxDepth,
    overflow: e.overflow,
    deleteOnAck: e.deleteOnAck,
  };
}
