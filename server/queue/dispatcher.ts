import type { Logger } from 'pino';
import type { MessageStore } from './message-store.js';
import type { Wakeups } from './wakeups.js';
import type { Subscription } from './subscription.js';
import { isConnectionError, isQueueNotFound, notFound } from '../errors.js';

interface QueueState {
  subs: Subscription[];
  next: number; // round-robin start
  pumping: boolean;
  again: boolean;
  timer?: NodeJS.Timeout;
  /** Fetches that failed in a row (the database away): the next try waits longer. */
  failures: number;
  off: () => void;
}

/** After a failed fetch, the next try waits this much, doubling per failure up to RETRY_MAX_MS. */
const RETRY_MIN_MS = 100;
const RETRY_MAX_MS = 1000;

export interface DispatcherOptions {
  /** Most messages leased in one fetch. */
  maxBatch: number;
  /** Fetches one queue's pump runs at once (for several subscribers, or one with credit for more than a batch). */
  parallelFetches: number;
  /** Look this often, for all queues whose subscribers have credit, for messages no wake-up
   *  announced (a notification lost with a connection, a due time nobody here was told of). */
  pollIntervalMs: number;
}

/**
 * Pushes messages to Subscribe streams. One pump per queue with subscribers, not one poller per
 * stream: a pump runs when a wake-up says the queue may have messages, when a subscriber gains
 * credit (an ack, a nack, a lease running out), and when the one ready-queue poll for all queues
 * finds messages no wake-up announced. It leases for subscribers in turn, each up to its credit,
 * until the queue is drained or nobody has credit. An idle subscription costs no query and no timer.
 *
 *   idle --wake/credit/ready poll--> pumping --drained or no credit--> idle
 *                                       ^--- wake while pumping: go round again
 */
export class Dispatcher {
  private readonly queues = new Map<string, QueueState>();
  private stopped = false;
  private poller?: NodeJS.Timeout;

  constructor(
    private readonly store: MessageStore,
    private readonly wakeups: Wakeups,
    private readonly opts: DispatcherOptions,
    private readonly log: Logger,
  ) {}

  add(sub: Subscription): void {
    let q = this.queues.get(sub.queue);
    if (!q) {
      const state: QueueState = { subs: [], next: 0, pumping: false, again: false, failures: 0, off: () => {} };
      state.off = this.wakeups.on(sub.queue, () => this.pump(sub.queue));
      this.queues.set(sub.queue, (q = state));
    }
    q.subs.push(sub);
    this.pump(sub.queue);
  }

  remove(sub: Subscription): void {
    const q = this.queues.get(sub.queue);
    if (!q) return;
    q.subs = q.subs.filter(s => s !== sub);
    if (q.subs.length === 0) {
      clearTimeout(q.timer);
      q.off();
      this.queues.delete(sub.queue);
    }
  }

  /** Something changed for this queue: messages may be there, or credit was freed. */
  pump(queue: string): void {
    const q = this.queues.get(queue);
    if (!q || this.stopped) return;
    if (q.pumping) {
      q.again = true;
      return;
    }
    q.pumping = true;
    clearTimeout(q.timer);
    q.timer = undefined;
    let failed = false;
    this.run(queue, q)
      .then(() => (q.failures = 0))
      .catch(err => {
        if (isQueueNotFound(err)) {
          for (const s of q.subs) s.fail(notFound(`queue ${queue} was deleted`));
          return;
        }
        failed = true;
        q.failures++;
        // An outage is logged once by the database's owner; anything else here is worth a line.
        if (isConnectionError(err)) this.log.debug({ err, queue }, 'dispatch failed: database unavailable; retrying');
        else this.log.warn({ err, queue }, 'dispatch failed; retrying');
      })
      .finally(() => {
        q.pumping = false;
        if (this.queues.get(queue) !== q || this.stopped) return;
        if (failed) {
          // Soon, not at the next poll: subscribers get messages again within a second of the database.
          q.again = false;
          q.timer = setTimeout(() => this.pump(queue), Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** (q.failures - 1)));
        } else if (q.again) this.pump(queue);
        else this.arm(queue, q);
      });
  }

  private async run(queue: string, q: QueueState): Promise<void> {
    do {
      q.again = false;
      // Plan a round: fetches of up to maxBatch, handed to subscribers in turn from q.next while
      // they have credit, at most parallelFetches of them, run at once (SKIP LOCKED keeps them
      // apart). One serial fetch at a time left the database idle between fetches.
      const plan: { sub: Subscription; n: number }[] = [];
      const left = new Map(q.subs.map(s => [s, s.credit()]));
      for (let i = 0; plan.length < this.opts.parallelFetches && i < q.subs.length * this.opts.parallelFetches; i++) {
        const sub = q.subs[(q.next + i) % q.subs.length];
        const n = Math.min(left.get(sub)!, this.opts.maxBatch);
        if (n === 0) continue;
        left.set(sub, left.get(sub)! - n);
        plan.push({ sub, n });
      }
      q.next = (q.next + 1) % Math.max(1, q.subs.length);
      if (plan.length === 0 || this.stopped) return;
      const full = await Promise.all(
        plan.map(async ({ sub, n }) => {
          const deliveries = await this.store.lease(queue, n, sub.leaseSec);
          if (sub.closed) {
            // The stream went away while we leased for it: give the messages straight back.
            if (deliveries.length > 0) await this.store.nack(deliveries.map(d => d.leaseToken), 0, 'subscriber gone');
          } else if (deliveries.length > 0) {
            sub.deliver(deliveries);
          }
          return deliveries.length === n;
        }),
      );
      // Every fetch came back full: the queue may hold more.
      if (full.every(Boolean)) q.again = true;
    } while (q.again && !this.stopped);
  }

  /** When a delivery's lease ends its credit comes back: look again then. */
  private arm(queue: string, q: QueueState): void {
    const now = Date.now();
    let next: number | undefined;
    for (const s of q.subs) {
      const exp = s.nextExpiry();
      if (exp !== undefined && (next === undefined || exp < next)) next = exp;
    }
    if (next !== undefined) q.timer = setTimeout(() => this.pump(queue), Math.max(0, next - now) + 50);
  }

  /**
   * The safety net under wake-ups, one statement for all queues rather than a poll per
   * subscription: every pollIntervalMs, ask which of the idle queues with credit hold messages and
   * when the earliest is due; pump those due now, and arm a wake-up for the others.
   */
  start(): void {
    const loop = () => {
      if (this.stopped) return;
      this.poller = setTimeout(() => {
        this.pollReady()
          .catch(err => (isConnectionError(err) ? this.log.debug({ err }, 'ready-queue poll failed: database unavailable') : this.log.warn({ err }, 'ready-queue poll failed')))
          .finally(loop);
      }, this.opts.pollIntervalMs);
    };
    loop();
  }

  private async pollReady(): Promise<void> {
    const now = Date.now();
    const idle = [...this.queues].filter(([, q]) => !q.pumping && q.subs.some(s => s.credit(now) > 0)).map(([name]) => name);
    if (idle.length === 0) return;
    for (const [name, dueInMs] of await this.store.queuesDue(idle)) {
      if (dueInMs <= 0) this.pump(name);
      else this.wakeups.wakeIn(name, dueInMs);
    }
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.poller);
    for (const q of this.queues.values()) {
      clearTimeout(q.timer);
      q.off();
    }
    this.queues.clear();
  }
}
