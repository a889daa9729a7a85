import { createHmac, randomBytes } from 'node:crypto';
import type { SendResult } from '@inboxd/proto/v1/inbox';
import type { Delivery, Message } from '@inboxd/proto/v1/message';
import { type Clock, PgBoss, systemClock } from 'pg-boss';
import type { Logger } from 'pino';
import { type ErrorKind, notFound } from '../errors.js';
import { Admission, needsAdmission } from './admission.js';
import { Browser } from './browse.js';
import { type LeasedDelivery, type OutgoingMessage, toStored } from './codec.js';
import { Database } from './database.js';
import { Dispatcher } from './dispatcher.js';
import { type CoreEventMap, CoreEvents } from './events.js';
import { Hasher } from './hasher.js';
import { type LeaseRef, LeaseTokens } from './lease-token.js';
import type { InsertResult, SettleItem, TokenOutcome } from './message-store.js';
import { MessageStore } from './message-store.js';
import { migrate } from './migrations/migrate.js';
import { checkInstalledPgBoss, checkPgBossSchema } from './migrations/pg-boss-schema.js';
import type { ResolvedQueueConfig } from './queue-config.js';
import { QueueRegistry } from './queue-registry.js';
import { RESPONSE_BUDGET_BYTES } from './response-budget.js';
import { SendBatcher } from './send-batcher.js';
import * as sql from './sql.js';
import { Sweeper } from './sweeper.js';
import { Topics } from './topics.js';
import { Wakeups } from './wakeups.js';

export interface CoreOptions {
  databaseUrl: string;
  schema: string;
  autoCreateQueues: boolean;
  sendMaxBatch: number;
  sendMaxInFlight: number;
  dispatchMaxBatch: number;
  dispatchParallelFetches: number;
  pollIntervalMs: number;
  sweepIntervalMs: number;
  hashWorkerThresholdBytes: number;
  dbPoolSize: number;
  dbConnectTimeoutMs: number;
  dbStatementTimeoutMs: number;
  dbHealthIntervalMs: number;
  maxBufferedBytes: number;
  /** What leases, delays and expiry are timed by, in JavaScript and in SQL (pg-boss's job_now()); tests pass pg-boss's TestClock. Unset: the system clock. */
  clock?: Clock;
}

/**
 * The queue core: pg-boss and the parts around it, wired once. Handlers call it; it never sees
 * gRPC types beyond the generated messages.
 */
/** A message a redrive could not move, and why. */
export interface RedriveFailure {
  messageId: string;
  kind: ErrorKind;
  message: string;
}

export class QueueCore {
  readonly boss: PgBoss;
  /** Owns every connection to Postgres and knows whether the database answers. */
  readonly db: Database;
  readonly clock: Clock;
  registry!: QueueRegistry;
  store!: MessageStore;
  dispatcher!: Dispatcher;
  wakeups!: Wakeups;
  topics!: Topics;
  browser!: Browser;
  private batcher!: SendBatcher;
  private admission!: Admission;
  private sweeper!: Sweeper;
  private readonly hasher: Hasher;
  /** The random secret every replica on this database shares; keys API key hashes and token signatures. */
  secret!: Buffer;
  /** What the core does, as it happens: metrics and logs listen here (events.ts). */
  readonly events: CoreEvents;

  constructor(
    private readonly opts: CoreOptions,
    private readonly log: Logger,
  ) {
    this.events = new CoreEvents((err, event) => this.log.warn({ err, event }, 'a listener of core events failed'));
    this.clock = opts.clock ?? systemClock;
    this.db = new Database(
      {
        url: opts.databaseUrl,
        poolSize: opts.dbPoolSize,
        connectTimeoutMs: opts.dbConnectTimeoutMs,
        statementTimeoutMs: opts.dbStatementTimeoutMs,
        healthIntervalMs: opts.dbHealthIntervalMs,
      },
      log,
    );
    this.boss = new PgBoss({
      ...this.db.poolConfig(),
      schema: opts.schema,
      useListenNotify: false, // inboxd listens itself (Wakeups); pg-boss runs no workers here
      registerInstance: false,
      // pg-boss resolves job dependencies (flows) every 5 s by default: a read of every queue and a
      // statement per 100 of them. inboxd stores no dependencies, and at 10,000 queues that pass was
      // most of an idle server's work (20 of its 25 statements a second). Once a day is the floor it keeps.
      flowIntervalSeconds: 86_400,
      clock: this.clock,
    } as ConstructorParameters<typeof PgBoss>[0]);
    // A pooled connection that dies while idle: the pool drops it, the next call opens another.
    this.boss.on('error', err => this.log.debug({ err }, 'pg-boss error'));
    this.hasher = new Hasher(opts.hashWorkerThresholdBytes);
    // Back from an outage: every replica's waiters look now (the LISTEN connection is new, and
    // sends made elsewhere meanwhile were announced to nobody here).
    this.db.on('up', () => {
      this.wakeups?.reconnectNow();
      this.wakeups?.emitAll();
    });
  }

  async start(): Promise<void> {
    checkInstalledPgBoss();
    await this.boss.start();
    this.db.attach(this.boss);
    const { schema } = this.opts;
    try {
      checkPgBossSchema(await this.boss.schemaVersion(), schema);
      const applied = await migrate(this.db, schema);
      if (applied.length > 0)
        this.log.info({ migrations: applied.map(m => `${m.version} ${m.name}`) }, `applied inboxd migrations up to ${applied.at(-1)?.version}`);
    } catch (err) {
      await this.stop().catch(() => {});
      throw err;
    }
    const channel = (await this.db.exec(sql.notifyChannel(schema))).rows[0].channel as string;
    this.secret = (await this.db.exec(sql.serverSecret(schema, 'auth', randomBytes(32)))).rows[0].value as Buffer;
    this.registry = new QueueRegistry(this.boss, this.db, schema);
    this.topics = new Topics(this.boss, this.db, schema, this.registry, (messages, sender) => this.send(messages, sender));
    this.browser = new Browser(this.db, schema, this.registry);
    const registry = this.registry;
    this.store = new MessageStore(
      this.boss,
      this.db,
      schema,
      channel,
      new LeaseTokens(this.subkey('lease-token')),
      this.events,
      this.clock,
      async queue => (await registry.find(queue))?.config.ackedRetentionSec === 0,
    );
    this.admission = new Admission(this.db, schema);
    this.wakeups = new Wakeups(this.db, channel, queues => this.store.queuesDue(queues, true), this.log, this.clock);
    await this.wakeups.start();
    this.dispatcher = new Dispatcher(
      this.store,
      this.wakeups,
      {
        maxBatch: this.opts.dispatchMaxBatch,
        parallelFetches: this.opts.dispatchParallelFetches,
        pollIntervalMs: this.opts.pollIntervalMs,
        maxBufferedBytes: this.opts.maxBufferedBytes,
      },
      this.log,
      this.clock,
    );
    this.dispatcher.start();
    this.batcher = new SendBatcher(
      this.store,
      { maxBatch: this.opts.sendMaxBatch, maxInFlight: this.opts.sendMaxInFlight },
      (queue, msgs) => this.inserted(queue, msgs),
      (queue, sizes) => this.dispatcher.offer(queue, sizes),
    );
    this.sweeper = new Sweeper(this.store, this.opts.sweepIntervalMs, queue => this.released(queue), this.log, this.clock);
    this.sweeper.start();
  }

  /**
   * Messages were stored. Those ready now wake waiters on every replica, this one too, through
   * the NOTIFY pg-boss sends in the insert's transaction (heard here as soon as the insert is
   * answered): waking local waiters here as well made every send two wake-ups, and the second an
   * empty lease. For messages delivered later, arm a wake-up for the earliest on every replica.
   */
  private inserted(queue: string, msgs: OutgoingMessage[]): void {
    const now = this.clock.now();
    let due = Infinity;
    for (const m of msgs) {
      const at = m.deliverAt ? m.deliverAt.getTime() : 0;
      if (at > now && at < due) due = at;
    }
    if (due !== Infinity) this.store.wake(queue, due - now).catch(err => this.log.debug({ err }, 'notify failed'));
  }

  /**
   * Leases ran out and their messages went back through the queue's retry policy: wake waiters
   * on every replica now, and again when a retry delay runs out.
   */
  released(queue: string): void {
    this.wakeups.emit(queue);
    this.store
      .wake(queue)
      .then(() => this.store.queuesDue([queue], true))
      .then(due => (due.has(queue) ? this.store.wake(queue, due.get(queue)) : undefined))
      .catch(err => this.log.debug({ err }, 'notify failed'));
    // Those out of attempts went to the dead-letter queue: its waiters look too (else not before their poll).
    this.registry
      .find(queue)
      .then(info => (info?.config.deadLetterQueue ? this.store.wake(info.config.deadLetterQueue) : undefined))
      .catch(err => this.log.debug({ err }, 'notify failed'));
  }

  /** Stores validated messages (ids assigned). Resolves once every one is durable. */
  async send(messages: Message[], sender = ''): Promise<SendResult[]> {
    const configs = new Map<string, ResolvedQueueConfig>();
    for (const q of new Set(messages.map(m => m.queue))) {
      const info = this.opts.autoCreateQueues ? await this.registry.ensure(q) : await this.registry.find(q);
      if (!info) throw notFound(`queue ${q} not found: create it with CreateQueue first`);
      configs.set(q, info.config);
    }
    const hashes = await this.hasher.hash(messages.map(m => m.payload));
    const now = this.clock.now();
    const outgoing: OutgoingMessage[] = messages.map((m, i) => {
      const ttl = configs.get(m.queue)!.messageTtlSec;
      const expiresAt = m.expiresAt ? m.expiresAt.getTime() : ttl > 0 ? now + ttl * 1000 : undefined;
      // The hasher answers one hash per payload, in order.
      return { id: m.id, queue: m.queue, priority: m.priority, deliverAt: m.deliverAt, data: toStored(m, hashes[i]!, sender, now, expiresAt) };
    });
    // Queues with dedup keys or a bound go through admission (one transaction each); the rest
    // share group inserts with concurrent Sends.
    const byQueue = new Map<string, number[]>();
    outgoing.forEach((m, i) => {
      const idx = byQueue.get(m.queue);
      if (idx) idx.push(i);
      else byQueue.set(m.queue, [i]);
    });
    const results: InsertResult[] = new Array(messages.length);
    const plain: number[] = [];
    const stored: Promise<void>[] = [];
    for (const [queue, idx] of byQueue) {
      const msgs = idx.map(i => outgoing[i]!);
      if (!needsAdmission(msgs, configs.get(queue)!)) {
        plain.push(...idx);
        continue;
      }
      stored.push(
        this.admission.send(queue, msgs, configs.get(queue)!).then(({ results: r, stored: kept }) => {
          for (const [j, i] of idx.entries()) results[i] = r[j]!;
          if (kept.length > 0) this.inserted(queue, kept);
        }),
      );
    }
    if (plain.length > 0) {
      stored.push(
        this.batcher.send(plain.map(i => outgoing[i]!)).then(r => {
          for (const [j, i] of plain.entries()) results[i] = r[j]!;
        }),
      );
    }
    await Promise.all(stored);
    // Every message has its result now: each index was filled by the admission or the batcher.
    const out = results.map((r, i) => ({ id: r.id, duplicate: r.duplicate, contentHash: hashes[i]!, queue: messages[i]!.queue }));
    const counts = new Map<string, CoreEventMap['sent']>();
    for (const r of out) {
      const c = counts.get(r.queue) ?? counts.set(r.queue, { queue: r.queue, stored: 0, duplicates: 0 }).get(r.queue)!;
      if (r.duplicate) c.duplicates++;
      else c.stored++;
    }
    for (const c of counts.values()) this.events.emit('sent', c);
    return out;
  }

  /** Marks deliveries done, `as` the principal settling (null: the server itself). */
  ack(tokens: SettleItem[], as: string | null): Promise<TokenOutcome[]> {
    return this.store.ack(tokens, as);
  }

  /** Returns deliveries to their queue after `delayMs` (undefined: the queue's retry policy), or dead-letters them. */
  nack(
    tokens: SettleItem[],
    delayMs: number | undefined,
    as: string | null,
    reason?: string,
    opts?: { deadLetter?: boolean; error?: string },
  ): Promise<TokenOutcome[]> {
    return this.store.nack(tokens, delayMs, as, reason, opts);
  }

  /** Pushes leases out to now + `leaseSec`. */
  extend(tokens: SettleItem[], leaseSec: number, as: string | null): Promise<TokenOutcome[]> {
    return this.store.extend(tokens, leaseSec, as);
  }

  /** A delivery with its signed lease token, as a Lease call or a stream without tags hands it out. */
  named(d: LeasedDelivery): Delivery {
    d.leaseToken = this.issue(d.ref);
    return d;
  }

  /** A signed lease token for an attempt leased here. */
  issue(ref: LeaseRef): string {
    return this.store.issue(ref);
  }

  /** The deliveries lease tokens name, checked: their signature, and that `as` leased them. */
  verifyTokens(tokens: string[], as: string | null): LeaseRef[] {
    return this.store.verifyTokens(tokens, as);
  }

  /** For the requests `refs` name: the reply_to each asked for and who sent it, by id. */
  replyRequests(refs: LeaseRef[]): Promise<Map<string, { replyTo: string | null; sender: string }>> {
    return this.store.replyRequests(refs);
  }

  /** How many reply queues (reply.<uuid>) `principal` owns. */
  async replyQueuesOwnedBy(principal: string): Promise<number> {
    return Number((await this.db.exec(sql.ownedReplyQueues(this.opts.schema, principal))).rows[0]?.n ?? 0);
  }

  get schema(): string {
    return this.opts.schema;
  }

  /** A key for one purpose, derived from the shared secret. */
  subkey(purpose: string): Buffer {
    return createHmac('sha256', this.secret).update(`inboxd ${purpose}`).digest();
  }

  /** Leases up to `max` for `principal`; with `waitMs`, waits for a first message until then (or abort). */
  async lease(queue: string, max: number, leaseSec: number | undefined, waitMs: number, principal: string, signal?: AbortSignal): Promise<Delivery[]> {
    const info = await this.registry.get(queue);
    const sec = leaseSec ?? info.config.visibilityTimeoutSec;
    const deadline = Date.now() + waitMs;
    for (;;) {
      // One response: what fits in the byte budget, the rest stays in the queue untouched.
      const got = await this.store.lease(queue, max, sec, principal, RESPONSE_BUDGET_BYTES);
      const left = deadline - Date.now();
      if (got.length > 0 || left <= 0 || signal?.aborted) return got.map(d => this.named(d));
      // Wake on a send, and look again at least every poll interval for delayed messages.
      await this.wakeups.wait(queue, Math.min(left, this.opts.pollIntervalMs), signal);
      if (signal?.aborted) return [];
    }
  }

  /**
   * Moves dead-lettered messages from dead-letter queue `queue` back to the queues they failed in
   * (or to `destination`) as new messages with fresh attempts, through pg-boss's redrive. Those
   * with nowhere to go (their queue was deleted) stay and are reported, as are ids not waiting here.
   */
  async redrive(queue: string, ids: string[], destination: string | undefined, limit: number): Promise<{ redriven: number; failed: RedriveFailure[] }> {
    await this.registry.get(queue);
    if (destination) await this.registry.get(destination);
    const exec = (s: sql.Sql) => this.db.exec(s);
    const waiting = ids.length > 0 ? new Set((await exec(sql.waitingIds(this.opts.schema, queue, ids))).rows.map(r => r.id as string)) : undefined;
    const filter = { ids: ids.length > 0 ? ids : undefined, destination, limit };
    const preview = await this.boss.previewRedrive(queue, filter);
    const redriven = preview.total > 0 ? await this.boss.redrive(queue, filter) : 0;
    for (const d of preview.destinations) {
      this.wakeups.emit(d.name);
      this.store.wake(d.name).catch(err => this.log.debug({ err }, 'notify failed'));
    }
    const failed: RedriveFailure[] = [];
    for (const id of ids) {
      if (!waiting!.has(id)) failed.push({ messageId: id, kind: 'not_found', message: `no dead-lettered message ${id} waits in ${queue}` });
    }
    if (!destination) {
      const stuck = (await exec(sql.unroutableDeadLetters(this.opts.schema, queue, ids.length > 0 ? ids : null, Math.min(limit, 1000)))).rows;
      for (const r of stuck) {
        failed.push({
          messageId: r.id,
          kind: 'failed_precondition',
          message: r.source
            ? `its original queue ${r.source} no longer exists: create it again, or redrive with a destination`
            : 'it records no original queue: redrive it with a destination',
        });
      }
    }
    return { redriven, failed };
  }

  /** Waits until sends accepted so far are stored. */
  drainSends(): Promise<void> {
    return this.batcher.drain();
  }

  async stop(): Promise<void> {
    this.dispatcher?.stop();
    await this.sweeper?.stop();
    await this.wakeups?.close();
    await this.hasher.close();
    await this.db.stop();
    await this.boss.stop({ graceful: false, close: true });
  }
}
