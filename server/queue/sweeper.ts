import { type Clock, type ClockTimer, systemClock } from 'pg-boss';
import type { Logger } from 'pino';
import { isConnectionError } from '../errors.js';
import type { MessageStore } from './message-store.js';

/**
 * Returns messages whose lease ran out to their queue. pg-boss's supervisor would too, but on its
 * maintenance interval (tens of seconds); the sweeper looks every `intervalMs`, and fails the
 * expired leases through pg-boss, so attempts, retry delays and dead-lettering follow the queue's
 * settings. The fence on each lease makes a race with a late ack or with another replica's
 * sweeper harmless: only one of them lands.
 */
export class Sweeper {
  private timer?: ClockTimer;
  private running?: Promise<void>;
  private stopped = false;

  constructor(
    private readonly store: MessageStore,
    private readonly intervalMs: number,
    private readonly onReleased: (queue: string) => void,
    private readonly log: Logger,
    private readonly clock: Clock = systemClock,
  ) {}

  start(): void {
    this.arm();
  }

  private arm(): void {
    if (this.stopped) return;
    this.timer = this.clock.setTimeout(() => {
      this.running = this.sweep()
        .then(() => undefined)
        .catch(err =>
          isConnectionError(err) ? this.log.debug({ err }, 'lease sweep failed: database unavailable') : this.log.warn({ err }, 'lease sweep failed'),
        )
        .finally(() => this.arm());
    }, this.intervalMs);
  }

  /**
   * One pass; returns how many leases it expired. Also ends waiting messages past their
   * expires_at, and forgets dedup keys and ack records whose window passed.
   */
  async sweep(): Promise<number> {
    while ((await this.store.expireQueued(1000)) === 1000 && !this.stopped);
    while ((await this.store.dropExpiredDedupKeys(1000)) === 1000 && !this.stopped);
    while ((await this.store.dropAckRecords(1000)) === 1000 && !this.stopped);
    let total = 0;
    for (;;) {
      const expired = await this.store.expiredLeases(1000);
      if (expired.length === 0) return total;
      const byQueue = new Map<string, { id: string; retryCount: number }[]>();
      for (const e of expired) {
        const list = byQueue.get(e.name) ?? [];
        list.push({ id: e.id, retryCount: e.retryCount });
        byQueue.set(e.name, list);
      }
      for (const [queue, refs] of byQueue) {
        total += await this.store.expire(queue, refs);
        this.onReleased(queue);
      }
      if (expired.length < 1000) return total;
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    await this.running;
  }
}
