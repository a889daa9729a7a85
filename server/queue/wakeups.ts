import pg from 'pg';
import type { Logger } from 'pino';

type Listener = () => void;

/**
 * Tells whoever waits on a queue that it may have messages: on a local send at once, and on a
 * send through any replica through Postgres LISTEN on pg-boss's notify channel (pg-boss emits the
 * NOTIFY in the insert's own transaction). One dedicated connection, however many waiters.
 * A wake-up is only a hint: waiters still poll now and then, so a lost notification costs latency,
 * never a message.
 */
export class Wakeups {
  private readonly listeners = new Map<string, Set<Listener>>();
  private client?: pg.Client;
  private closed = false;
  private reconnectTimer?: NodeJS.Timeout;

  constructor(private readonly databaseUrl: string, private readonly channel: string, private readonly log: Logger) {}

  async start(): Promise<void> {
    const client = new pg.Client({ connectionString: this.databaseUrl, application_name: 'inboxd-listen' });
    client.on('notification', n => n.payload && this.emit(n.payload));
    client.on('error', err => {
      this.log.warn({ err }, 'wake-up listener lost its connection; reconnecting');
      this.scheduleReconnect();
    });
    await client.connect();
    await client.query(`LISTEN ${pg.escapeIdentifier(this.channel)}`);
    this.client = client;
  }

  private scheduleReconnect(): void {
    if (this.closed || this.reconnectTimer) return;
    const old = this.client;
    this.client = undefined;
    old?.end().catch(() => {});
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      if (this.closed) return;
      this.start()
        .then(() => this.emitAll())
        .catch(err => {
          this.log.warn({ err }, 'wake-up listener reconnect failed');
          this.scheduleReconnect();
        });
    }, 1000);
    this.reconnectTimer.unref();
  }

  on(queue: string, fn: Listener): () => void {
    let set = this.listeners.get(queue);
    if (!set) this.listeners.set(queue, (set = new Set()));
    set.add(fn);
    return () => {
      set.delete(fn);
      if (set.size === 0) this.listeners.delete(queue);
    };
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

  private emitAll(): void {
    for (const q of [...this.listeners.keys()]) this.emit(q);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.reconnectTimer);
    await this.client?.end().catch(() => {});
  }
}
