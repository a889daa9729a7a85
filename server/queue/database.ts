import { EventEmitter } from 'node:events';
import pg from 'pg';
import type { PgBoss } from 'pg-boss';
import type { Logger } from 'pino';
import { isConnectionError } from '../errors.js';
import type { Sql } from './sql.js';

export interface DatabaseOptions {
  url: string;
  /** Connections in the pool every statement runs on. */
  poolSize: number;
  /** A connection attempt that has not succeeded by then fails (a database that does not answer). */
  connectTimeoutMs: number;
  /** Postgres cancels a statement running longer; the client gives up shortly after. */
  statementTimeoutMs: number;
  /** How often the health probe asks while the database answers (4× as often while it does not). */
  healthIntervalMs: number;
}

/** pg-boss's handle on a connection (the pool, or one transaction's), as its own calls take it (`{ db }`). */
export interface Executor {
  executeSql(text: string, values?: unknown[]): Promise<pg.QueryResult>;
}

/** One transaction: exec() runs our statements in it; `boss` joins pg-boss's own calls to it (`fetch(q, { db: tx.boss })`). */
export interface Tx {
  exec(q: Sql): Promise<pg.QueryResult>;
  readonly boss: Executor;
}

interface BossDb {
  executeSql(text: string, values?: unknown[]): Promise<pg.QueryResult>;
  withTransaction<T>(fn: (db: Executor) => Promise<T>): Promise<T>;
  poolCounts?(): { max: number; total: number; idle: number; waiting: number } | null;
}

/** Grace past the server-side statement timeout before the client gives up on a silent server. */
const CLIENT_TIMEOUT_GRACE_MS = 2000;

/**
 * The one owner of inboxd's Postgres connections, and of what happens when they fail.
 *
 * - The pool: pg-boss's own (built from poolConfig()), which every statement of inboxd runs on,
 *   through exec() or transaction(). pg-boss's Db keeps an error listener on every connection it
 *   hands out, so a backend that dies mid-transaction rejects that transaction instead of raising
 *   an unhandled 'error' that ends the process (a bare pool.connect() has no such listener).
 * - Dedicated clients (the LISTEN connection), made by client() with a listener attached before
 *   they connect.
 * - Health: a probe on a connection of its own, so a busy pool never reads as a dead database.
 *   It flips to down at the first failure (a statement or a connection failing for a connection
 *   reason asks it to look at once), and back to up when a probe answers:
 *
 *     up --probe fails--> down --probe answers--> up
 *
 *   'down' and 'up' are emitted once per transition and logged once: calls failing meanwhile
 *   answer UNAVAILABLE without a log line each.
 *
 * Every connection commits synchronously whatever the server's default (a send acknowledged, a
 * lease handed out, an ack confirmed: each survives a crash), and carries connect and statement
 * timeouts, so a database that hangs fails calls instead of stalling them.
 */
export class Database extends EventEmitter<{ up: [downForMs: number]; down: [err: Error] }> {
  private boss?: PgBoss;
  private healthy = true;
  private downSince = 0;
  private probeClient?: pg.Client;
  private probeTimer?: NodeJS.Timeout;
  private probing?: Promise<void>;
  private stopped = false;

  constructor(
    private readonly opts: DatabaseOptions,
    private readonly log: Logger,
  ) {
    super();
  }

  /** Whether the database answered the last probe. */
  get up(): boolean {
    return this.healthy;
  }

  /**
   * Settings of every connection inboxd opens. Commits are durable whatever the server's default
   * (synchronous_commit), and nothing is JIT-compiled: inboxd's statements are short, and the
   * lease's plan is priced far past jit_above_cost (sorting is ruled out in it by setting, which
   * prices the few rows its window sorts at 1e10), so a Postgres built with LLVM (Debian's and
   * most distributions' packages) compiled it again at every call: 200 ms an empty lease on
   * PostgreSQL 15 here against 0.7 ms without. The embedded Postgres has no JIT, so the
   * benchmarks never saw it. And transactions are READ COMMITTED, what inboxd's statements are
   * written for (a locked row skipped, a changed one read again): with a database defaulting to
   * SERIALIZABLE, e2e_throughput's concurrent leases and acks failed to serialize, 4,502 of 100,000
   * messages went to the dead letters and 19,691 stayed leased (test/connection-settings.test.ts).
   */
  connectionConfig(applicationName: string): pg.ClientConfig {
    return {
      connectionString: this.opts.url,
      application_name: applicationName,
      connectionTimeoutMillis: this.opts.connectTimeoutMs,
      statement_timeout: this.opts.statementTimeoutMs,
      query_timeout: this.opts.statementTimeoutMs + CLIENT_TIMEOUT_GRACE_MS,
      options: '-c synchronous_commit=on -c jit=off -c default_transaction_isolation=read\\ committed',
      keepAlive: true,
    };
  }

  /** What PgBoss is constructed with: its pool is the pool. */
  poolConfig(): pg.PoolConfig & { onConnect(client: pg.Client): void } {
    return {
      ...this.connectionConfig('inboxd'),
      max: this.opts.poolSize,
      idleTimeoutMillis: 30_000,
      // Every pooled connection listens for errors for its whole life, from the moment it connects.
      // pg-pool listens only while a connection is idle, and pg-boss only once its own code holds
      // it; in between (a backend ended right after its startup, its FATAL in the same read as its
      // ready message, before the caller's await resumes) the 'error' had no listener and ended
      // the process. What the error means for the call is still told by the statement that fails.
      onConnect: client => {
        client.on('error', err => this.suspect(err));
      },
    };
  }

  /** Takes over pg-boss's pool (after boss.start()) and starts watching the database. */
  attach(boss: PgBoss): void {
    this.boss = boss;
    this.scheduleProbe(this.opts.healthIntervalMs);
  }

  private get db(): BossDb {
    return this.boss!.getDb() as unknown as BossDb;
  }

  /** One statement on the pool. */
  exec(q: Sql): Promise<pg.QueryResult> {
    return this.watch(this.db.executeSql(q.text, q.values));
  }

  /** `fn` inside one transaction on one pooled connection: committed when it resolves, rolled back when it throws. */
  transaction<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
    return this.watch(this.db.withTransaction(boss => fn({ exec: q => boss.executeSql(q.text, q.values), boss })));
  }

  poolCounts(): { max: number; total: number; idle: number; waiting: number } | null {
    return this.db.poolCounts?.() ?? null;
  }

  /**
   * A dedicated connection (not from the pool), connected, with no statement timeouts unless
   * `overrides` set them. `onLost` is called once if it fails or ends later; the caller makes a new one.
   */
  async client(applicationName: string, onLost: (err: Error) => void, overrides: pg.ClientConfig = {}): Promise<pg.Client> {
    const client = new pg.Client({ ...this.connectionConfig(applicationName), query_timeout: undefined, statement_timeout: undefined, ...overrides });
    let lost = false;
    const lose = (err: Error) => {
      if (lost) return;
      lost = true;
      client.removeAllListeners('end');
      client.end().catch(() => {});
      this.suspect(err);
      onLost(err);
    };
    client.on('error', lose);
    try {
      await client.connect();
    } catch (err) {
      lost = true;
      client.end().catch(() => {});
      throw err;
    }
    client.on('end', () => lose(new Error('connection ended')));
    return client;
  }

  /** A statement failed: if for a connection reason, look at the database now rather than at the next probe. */
  private watch<T>(p: Promise<T>): Promise<T> {
    return p.catch(err => {
      this.suspect(err);
      throw err;
    });
  }

  private suspect(err: unknown): void {
    if (this.healthy && isConnectionError(err)) this.scheduleProbe(0);
  }

  private scheduleProbe(ms: number): void {
    if (this.stopped) return;
    clearTimeout(this.probeTimer);
    this.probeTimer = setTimeout(() => {
      this.probeTimer = undefined;
      this.probing ??= this.probe().finally(() => {
        this.probing = undefined;
        this.scheduleProbe(this.healthy ? this.opts.healthIntervalMs : Math.max(50, this.opts.healthIntervalMs / 4));
      });
    }, ms);
    this.probeTimer.unref();
  }

  private async probe(): Promise<void> {
    try {
      if (!this.probeClient) {
        const held: { c?: pg.Client } = {};
        held.c = await this.client(
          'inboxd-health',
          () => {
            if (this.probeClient === held.c) this.probeClient = undefined;
          },
          { connectionTimeoutMillis: Math.min(this.opts.connectTimeoutMs, 1500), query_timeout: 1500 },
        );
        if (this.stopped) {
          await held.c.end().catch(() => {});
          return;
        }
        this.probeClient = held.c;
      }
      await this.probeClient.query('SELECT 1');
      this.markUp();
    } catch (err) {
      const c = this.probeClient;
      this.probeClient = undefined;
      c?.end().catch(() => {});
      if (!this.stopped) this.markDown(err as Error);
    }
  }

  private markDown(err: Error): void {
    if (!this.healthy) return;
    this.healthy = false;
    this.downSince = Date.now();
    this.log.warn({ err }, `database unreachable (${err.message}): calls answer UNAVAILABLE and health NOT_SERVING until it answers again`);
    this.emit('down', err);
  }

  private markUp(): void {
    if (this.healthy) return;
    this.healthy = true;
    const downForMs = Date.now() - this.downSince;
    this.log.info({ downForMs }, `database reachable again after ${downForMs} ms`);
    this.emit('up', downForMs);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.probeTimer);
    await this.probing;
    await this.probeClient?.end().catch(() => {});
    this.probeClient = undefined;
  }
}
