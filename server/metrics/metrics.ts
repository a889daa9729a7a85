import type { Logger } from 'pino';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { QueueCore } from '../queue/core.js';
import * as sql from '../queue/sql.js';

/** Queues whose depth and oldest age a scrape reports: the first ones by name. */
export const MAX_QUEUES_REPORTED = 1000;

interface QueueSnapshot {
  name: string;
  ready: number;
  delayed: number;
  leased: number;
  deadLettered: number;
  oldestAgeSec: number;
  expired: number;
  dropped: number;
}

/**
 * inboxd's Prometheus metrics, in a registry of their own (several servers in one process, as in
 * tests, do not collide). Counters move as calls are served (interceptor.ts, core-metrics.ts);
 * queue depths and pool use are read when scraped.
 */
export class Metrics {
  readonly registry = new Registry();
  private core?: QueueCore;
  private schema = '';
  private log?: Logger;
  /** The read in progress: the gauges of one scrape, collected together, share it. */
  private reading?: Promise<QueueSnapshot[]>;

  readonly sent: Counter<'queue'>;
  readonly duplicates: Counter<'queue'>;
  readonly leased: Counter<'queue'>;
  readonly acked: Counter<'queue'>;
  readonly nacked: Counter<'queue'>;
  readonly released: Counter<'queue'>;
  readonly deadLettered: Counter<'queue'>;
  readonly leasesExpired: Counter<'queue'>;
  readonly rpcDuration: Histogram<'method'>;
  readonly rpcHandled: Counter<'method' | 'code'>;
  readonly openStreams: Gauge<'method'>;
  readonly authDenied: Counter<'reason' | 'verb'>;

  constructor(options: { processMetrics?: boolean } = {}) {
    const registers = [this.registry];
    const counter = (name: string, help: string) => new Counter({ name, help, labelNames: ['queue'] as const, registers });
    this.sent = counter('inboxd_messages_sent_total', 'Messages stored by Send and SendStream (duplicates of a stored id not counted).');
    this.duplicates = counter('inboxd_messages_duplicate_total', 'Messages sent again with an id already stored: nothing new was stored.');
    this.leased = counter('inboxd_messages_leased_total', 'Deliveries: messages leased by Lease or pushed on a Subscribe stream.');
    this.acked = counter('inboxd_messages_acked_total', 'Messages acked (by Ack or on a Subscribe stream).');
    this.nacked = counter('inboxd_messages_nacked_total', 'Messages nacked back to their queue for another attempt.');
    this.released = counter('inboxd_messages_released_total', 'Leases given back without a nack: a Subscribe stream closed while holding them.');
    this.deadLettered = counter(
      'inboxd_messages_dead_lettered_total',
      'Messages out of attempts (nacked or lease expired on the last one): moved to the dead-letter queue or kept as dead-lettered.',
    );
    this.leasesExpired = counter(
      'inboxd_leases_expired_total',
      'Leases that ran out unsettled; their messages went back to the queue (or, on the last attempt, dead-lettered).',
    );
    this.rpcDuration = new Histogram({
      name: 'inboxd_rpc_duration_seconds',
      help: 'Time to answer a unary call (Inbox/Send, Inbox/Lease — long-polls included —, Inbox/Ack, …), or a batch on a SendStream (Inbox/SendStream), by method.',
      labelNames: ['method'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    });
    this.rpcHandled = new Counter({
      name: 'inboxd_rpc_handled_total',
      help: 'Calls finished, by method and gRPC status code.',
      labelNames: ['method', 'code'] as const,
      registers,
    });
    this.openStreams = new Gauge({
      name: 'inboxd_open_streams',
      help: 'Streaming calls open now (Subscribe, SendStream, …), by method.',
      labelNames: ['method'] as const,
      registers,
    });
    this.authDenied = new Counter({
      name: 'inboxd_auth_denied_total',
      help: 'Calls (and streams ended) refused by authentication or authorization, by reason (missing_credential, bad_credential, expired_key, revoked_key, unknown_principal, no_grant, foreign_token, quota) and verb.',
      labelNames: ['reason', 'verb'] as const,
      registers,
    });

    const self = this;
    const queueGauge = (name: string, help: string, value: (q: QueueSnapshot) => number) =>
      new Gauge({
        name,
        help,
        labelNames: ['queue'] as const,
        registers,
        async collect() {
          this.reset();
          for (const q of await self.queues()) this.set({ queue: q.name }, value(q));
        },
      });
    queueGauge('inboxd_queue_depth', 'Messages queued and not leased (ready + delayed).', q => q.ready + q.delayed);
    queueGauge('inboxd_queue_ready', 'Messages deliverable now.', q => q.ready);
    queueGauge('inboxd_queue_delayed', 'Messages waiting for their delivery time or retry delay.', q => q.delayed);
    queueGauge('inboxd_queue_leased', 'Messages leased and not yet settled.', q => q.leased);
    queueGauge('inboxd_queue_dead_lettered', 'Messages dead-lettered and kept in their queue.', q => q.deadLettered);
    queueGauge('inboxd_queue_oldest_age_seconds', 'Age of the oldest queued (ready or delayed) message; 0 when none.', q => q.oldestAgeSec);
    // Counted in Postgres by whichever replica ended the message, since the queue was created:
    // read, not incremented, here.
    const stored = (name: string, help: string, value: (q: QueueSnapshot) => number) =>
      new Counter({
        name,
        help,
        labelNames: ['queue'] as const,
        registers,
        async collect() {
          this.reset();
          for (const q of await self.queues()) this.inc({ queue: q.name }, value(q));
        },
      });
    stored(
      'inboxd_messages_expired_total',
      'Messages that passed their expires_at (message TTL) before delivery, since the queue was created (all replicas).',
      q => q.expired,
    );
    stored(
      'inboxd_messages_dropped_total',
      "Messages dropped by a bounded queue's overflow policy, since the queue was created (all replicas).",
      q => q.dropped,
    );

    new Gauge({
      name: 'inboxd_db_pool_connections',
      help: 'Postgres connections of the pool every statement runs on (pool="pgboss"), by state: total open, idle, and callers waiting for one; max is the pool size.',
      labelNames: ['pool', 'state'] as const,
      registers,
      collect() {
        this.reset();
        for (const [pool, c] of Object.entries(self.pools())) {
          if (!c) continue;
          this.set({ pool, state: 'total' }, c.total);
          this.set({ pool, state: 'idle' }, c.idle);
          this.set({ pool, state: 'waiting' }, c.waiting);
          this.set({ pool, state: 'max' }, c.max);
        }
      },
    });

    new Gauge({
      name: 'inboxd_database_up',
      help: 'Whether Postgres answered the last health probe (1) or not (0); gRPC health is NOT_SERVING while 0.',
      registers,
      collect() {
        if (self.core) this.set(self.core.db.up ? 1 : 0);
      },
    });

    if (options.processMetrics) collectDefaultMetrics({ register: this.registry });
  }

  /** Reads depths and pools from this core (started, on `schema`) from now on. */
  attach(core: QueueCore, schema: string, log: Logger): void {
    this.core = core;
    this.schema = schema;
    this.log = log;
  }

  /** The Prometheus text exposition of every metric. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  private pools(): Record<string, { max: number; total: number; idle: number; waiting: number } | null | undefined> {
    const core = this.core;
    if (!core) return {};
    return { pgboss: core.db.poolCounts() };
  }

  /** Live counts of the first MAX_QUEUES_REPORTED queues: one statement per scrape. */
  private queues(): Promise<QueueSnapshot[]> {
    this.reading ??= this.readQueues()
      .catch(err => {
        this.log?.warn({ err }, 'metrics: reading queue depths failed');
        return [];
      })
      .finally(() => (this.reading = undefined));
    return this.reading;
  }

  private async readQueues(): Promise<QueueSnapshot[]> {
    const core = this.core;
    if (!core?.registry) return [];
    const names = (await core.registry.list(MAX_QUEUES_REPORTED)).map(q => q.name);
    if (names.length === 0) return [];
    const { rows } = await core.db.exec(sql.liveCounts(this.schema, names));
    // Queues with no live message report 0, not nothing: an alert on depth sees them drain.
    return (rows as Record<string, string | null>[]).map(r => ({
      name: r.name as string,
      ready: Number(r.ready ?? 0),
      delayed: Number(r.delayed ?? 0),
      leased: Number(r.leased ?? 0),
      deadLettered: Number(r.dead_lettered ?? 0),
      oldestAgeSec: Math.max(0, Number(r.oldest_age_s ?? 0)),
      expired: Number(r.expired ?? 0),
      dropped: Number(r.dropped ?? 0),
    }));
  }
}
