import pg from 'pg';
import { type Clock, type ClockTimer, systemClock } from 'pg-boss';
import type { Logger } from 'pino';
import type { Database } from './database.js';

type Listener = () => void;

/** For those of `queues` holding a message not yet due: in how many ms the earliest is due. */
export type NextDue = (queues: string[]) => Promise<Map<string, number>>;

/** A due-time wake-up armed this much late, so the message is due when the pump looks. */
const DUE_SLACK_MS = 2;
/** A lost LISTEN connection is made again after this, and at once when the database is back. */
const RECONNECT_MS = 250;

/**
 * Tells whoever waits on a queue that it may have messages: on a local send at once, and on a
 * send through any replica through Postgres LISTEN on pg-boss's notify channel (pg-boss emits the
 * NOTIFY in the insert's own transaction). One dedicated connection, however many waiters.
 *
 * Messages that become due later (a delay, a nack's delay, a retry backoff) get a timer: one per
 * queue with waiters, armed for the earliest due time known. It learns due times from our own
 * notifications ('queue dueInMs'), and asks the store for the next one when a queue gains its
 * first waiter and each time the timer fires. A wake-up is only a hint: waiters still poll now
 * and then, so a lost notification costs latency, never a message.
 */
export class Wakeups {
  private readonly listeners = new Map<string, Set<Listener>>();
  private readonly due = new Map<string, { at: number; timer: ClockTimer }>();
  /** Queues whose next due time to look up, in one statement on the next turn. */
  private toLookUp = new Set<string>();
  private client?: pg.Client;
  private closed = false;
  private reconnectTimer?: NodeJS.Timeout;
  /** Other channels heard on the same connection; told `undefined` when notifications may have been lost. */
  private readonly channels = new Map<string, (payload: string | undefined) => void>();

  constructor(
    private readonly db: Database,
    private readonly channel: string,
    private readonly nextDue: NextDue,
    private readonly log: Logger,
    /** Due times are on this clock (the one the database's job_now() follows). */
    private readonly clock: Clock = systemClock,
  ) {}

  async start(): Promise<void> {
    let client: pg.Client | undefined;
    client = await this.db.client('inboxd-listen', err => {
      this.log.debug({ err }, 'wake-up listener lost its connection; reconnecting');
      if (this.client === client) this.client = undefined;
      this.scheduleReconnect(RECONNECT_MS);
    });
    client.on('notification', n => {
      const other = this.channels.get(n.channel);
      if (other) other(n.payload ?? '');
      else if (n.payload) this.onNotification(n.payload);
    });
    try {
      for (const ch of [this.channel, ...this.channels.keys()]) await client.query(`LISTEN ${pg.escapeIdentifier(ch)}`);
    } catch (err) {
      await client.end().catch(() => {});
      throw err;
    }
    if (this.closed) return void (await client.end().catch(() => {}));
    this.client = client;
  }

  /**
   * Hears `channel` on the same connection: `fn(payload)` on each notification, `fn(undefined)`
   * after the connection was lost and made again (what was sent meanwhile is unknown).
   */
  async listen(channel: string, fn: (payload: string | undefined) => void): Promise<void> {
    this.channels.set(channel, fn);
    await this.client?.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
  }

  /** The database is back: listen again now rather than at the next try. */
  reconnectNow(): void {
    if (!this.client && !this.closed) this.scheduleReconnect(0);
  }

  private scheduleReconnect(ms: number): void {
    if (this.closed) return;
    if (this.reconnectTimer) {
      if (ms > 0) return;
      clearTimeout(this.reconnectTimer);
    }
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      if (this.closed || this.client) return;
      this.start()
        // Notifications sent while nobody listened are lost: everyone waiting looks now.
        .then(() => {
          this.emitAll();
          for (const fn of this.channels.values()) fn(undefined);
        })
        .catch(err => {
          this.log.debug({ err }, 'wake-up listener reconnect failed');
          this.scheduleReconnect(RECONNECT_MS);
        });
    }, ms);
    this.reconnectTimer.unref();
  }

  private onNotification(payload: string): void {
    const sp = payload.indexOf(' ');
    if (sp < 0) {
      this.emit(payload);
      return;
    }
    this.wakeIn(payload.slice(0, sp), Number(payload.slice(sp + 1)));
  }

  on(queue: string, fn: Listener): () => void {
    let set = this.listeners.get(queue);
    if (!set) {
      this.listeners.set(queue, (set = new Set()));
      // A first waiter: messages may already wait for a due time nobody here was told of.
      this.lookUpDue(queue);
    }
    set.add(fn);
    return () => {
      set.delete(fn);
      if (set.size === 0 && this.listeners.get(queue) === set) {
        this.listeners.delete(queue);
        const armed = this.due.get(queue);
        if (armed) this.clock.clearTimeout(armed.timer);
        this.due.delete(queue);
      }
    };
  }

  /** Wakes `queue`'s waiters in `ms` (now if ≤ 0), unless a wake-up before then is armed. */
  wakeIn(queue: string, ms: number): void {
    if (!(ms > 0)) {
      this.emit(queue);
      return;
    }
    if (!this.listeners.has(queue) || this.closed) return;
    const at = this.clock.now() + ms + DUE_SLACK_MS;
    const armed = this.due.get(queue);
    if (armed && armed.at <= at) return;
    if (armed) this.clock.clearTimeout(armed.timer);
    const timer = this.clock.setTimeout(() => {
      this.due.delete(queue);
      this.emit(queue);
      // Messages due later than this one: arm for the next (no timer is kept per message).
      this.lookUpDue(queue);
    }, at - this.clock.now());
    (timer as { unref?: () => void }).unref?.();
    this.due.set(queue, { at, timer });
  }

  /**
   * Looks up when `queue` next has a message due, together with every other queue asking in the
   * same turn: 10,000 subscriptions opening at once cost one statement, not 10,000.
   */
  private lookUpDue(queue: string): void {
    if (this.closed) return;
    this.toLookUp.add(queue);
    if (this.toLookUp.size > 1) return;
    setImmediate(() => {
      const queues = [...this.toLookUp];
      this.toLookUp = new Set();
      this.nextDue(queues)
        .then(due => {
          for (const [q, ms] of due) this.wakeIn(q, ms);
        })
        .catch(err => this.log.debug({ err }, 'due-time lookup failed; the ready-queue poll covers it'));
    });
  }

  /** Resolves on the next wake-up of `queue`, or after `ms`, or when `signal` aborts. */
  wait(queue: string, ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise(resolve => {
      const done = () => {
        clearTimeout(timer);
        off();
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      const off = this.on(queue, done);
      signal?.addEventListener('abort', done);
    });
  }

  emit(queue: string): void {
    const set = this.listeners.get(queue);
    if (set) for (const fn of [...set]) fn();
  }

  /** Wakes every waiter on every queue. */
  emitAll(): void {
    for (const q of [...this.listeners.keys()]) this.emit(q);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const d of this.due.values()) this.clock.clearTimeout(d.timer);
    this.due.clear();
    clearTimeout(this.reconnectTimer);
    await this.client?.end().catch(() => {});
  }
}
