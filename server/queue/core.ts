import { PgBoss } from 'pg-boss';
import pg from 'pg';
import type { Logger } from 'pino';
import type { Message, Delivery } from '../../sdk/gen/inboxd/v1/message.js';
import type { SendResult } from '../../sdk/gen/inboxd/v1/inbox.js';
import { notFound } from '../errors.js';
import * as sql from './sql.js';
import { toStored, type OutgoingMessage } from './codec.js';
import { QueueRegistry } from './queue-registry.js';
import { MessageStore } from './message-store.js';
import { SendBatcher } from './send-batcher.js';
import { Hasher } from './hasher.js';
import { Wakeups } from './wakeups.js';
import { Dispatcher } from './dispatcher.js';
import { Sweeper } from './sweeper.js';

export interface CoreOptions {
  databaseUrl: string;
  schema: string;
  autoCreateQueues: boolean;
  sendMaxBatch: number;
  sendMaxInFlight: number;
  dispatchMaxBatch: number;
  pollIntervalMs: number;
  sweepIntervalMs: number;
  hashWorkerThresholdBytes: number;
  dbPoolSize: number;
}

/**
 * The queue core: pg-boss and the parts around it, wired once. Handlers call it; it never sees
 * gRPC types beyond the generated messages.
 */
export class QueueCore {
  readonly boss: PgBoss;
  registry!: QueueRegistry;
  store!: MessageStore;
  dispatcher!: Dispatcher;
  wakeups!: Wakeups;
  private batcher!: SendBatcher;
  private sweeper!: Sweeper;
  private readonly hasher: Hasher;
  private readonly leasePool: pg.Pool;

  constructor(private readonly opts: CoreOptions, private readonly log: Logger) {
    this.boss = new PgBoss({
      connectionString: opts.databaseUrl,
      schema: opts.schema,
      max: opts.dbPoolSize,
      application_name: 'inboxd',
      useListenNotify: false, // inboxd listens itself (Wakeups); pg-boss runs no workers here
      registerInstance: false,
    } as ConstructorParameters<typeof PgBoss>[0]);
    this.boss.on('error', err => this.log.warn({ err }, 'pg-boss error'));
    this.hasher = new Hasher(opts.hashWorkerThresholdBytes);
    this.leasePool = new pg.Pool({
      connectionString: opts.databaseUrl,
      max: Math.max(2, Math.ceil(opts.dbPoolSize / 2)),
      application_name: 'inboxd-lease',
      options: '-c synchronous_commit=off',
    });
    this.leasePool.on('error', err => this.log.warn({ err }, 'lease pool connection error'));
  }

  async start(): Promise<void> {
    await this.boss.start();
    const { schema } = this.opts;
    const ddl = sql.ensureSchema(schema);
    await this.boss.getDb().executeSql(ddl.text, ddl.values);
    const q = sql.notifyChannel(schema);
    const channel = (await this.boss.getDb().executeSql(q.text, q.values)).rows[0].channel as string;
    this.registry = new QueueRegistry(this.boss, schema);
    this.store = new MessageStore(this.boss, schema, channel, this.leasePool);
    this.wakeups = new Wakeups(this.opts.databaseUrl, channel, queue => this.store.nextDue(queue), this.log);
    await this.wakeups.start();
    this.batcher = new SendBatcher(this.store, { maxBatch: this.opts.sendMaxBatch, maxInFlight: this.opts.sendMaxInFlight }, (queue, msgs) =>
      this.inserted(queue, msgs),
    );
    this.dispatcher = new Dispatcher(this.store, this.wakeups, { maxBatch: this.opts.dispatchMaxBatch, pollIntervalMs: this.opts.pollIntervalMs }, this.log);
    this.dispatcher.start();
    this.sweeper = new Sweeper(this.store, this.opts.sweepIntervalMs, queue => this.released(queue), this.log);
    this.sweeper.start();
  }

  /**
   * Messages were stored: wake local waiters now (pg-boss's NOTIFY tells other replicas). For
   * messages delivered later, arm a wake-up for the earliest here and on every replica.
   */
  private inserted(queue: string, msgs: OutgoingMessage[]): void {
    const now = Date.now();
    let due = Infinity;
    let ready = false;
    for (const m of msgs) {
      const at = m.deliverAt ? m.deliverAt.getTime() : 0;
      if (at <= now) ready = true;
      else if (at < due) due = at;
    }
    if (ready) this.wakeups.emit(queue);
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
      .then(() => this.store.nextDue(queue))
      .then(ms => (ms !== undefined ? this.store.wake(queue, ms) : undefined))
      .catch(err => this.log.debug({ err }, 'notify failed'));
  }

  /** Stores validated messages (ids assigned). Resolves once every one is durable. */
  async send(messages: Message[], sender = ''): Promise<SendResult[]> {
    const queues = new Set(messages.map(m => m.queue));
    for (const q of queues) {
      if (this.opts.autoCreateQueues) await this.registry.ensure(q);
      else if (!(await this.registry.find(q))) throw notFound(`queue ${q} not found: create it with CreateQueue first`);
    }
    const hashes = await this.hasher.hash(messages.map(m => m.payload));
    const now = Date.now();
    const outgoing: OutgoingMessage[] = messages.map((m, i) => ({
      id: m.id,
      queue: m.queue,
      priority: m.priority,
      deliverAt: m.deliverAt,
      data: toStored(m, hashes[i], sender, now),
    }));
    const results = await this.batcher.send(outgoing);
    return results.map((r, i) => ({ id: r.id, duplicate: r.duplicate, contentHash: hashes[i], queue: messages[i].queue }));
  }

  /** Leases up to `max`; with `waitMs`, waits for a first message until then (or abort). */
  async lease(queue: string, max: number, leaseSec: number | undefined, waitMs: number, signal?: AbortSignal): Promise<Delivery[]> {
    const info = await this.registry.get(queue);
    const sec = leaseSec ?? info.config.visibilityTimeoutSec;
    const deadline = Date.now() + waitMs;
    for (;;) {
      const got = await this.store.lease(queue, max, sec);
      const left = deadline - Date.now();
      if (got.length > 0 || left <= 0 || signal?.aborted) return got;
      // Wake on a send, and look again at least every poll interval for delayed messages.
      await this.wakeups.wait(queue, Math.min(left, this.opts.pollIntervalMs), signal);
      if (signal?.aborted) return [];
    }
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
    await this.leasePool.end().catch(() => {});
    await this.boss.stop({ graceful: false, close: true });
  }
}
