import { type Clock, systemClock } from 'pg-boss';
import type { Logger } from 'pino';
import { isConnectionError, isQueueNotFound, notFound } from '../errors.js';
import type { LeasedDelivery } from './codec.js';
import type { LeaseRef } from './lease-token.js';
import type { MessageStore } from './message-store.js';
import type { Subscription } from './subscription.js';
import type { Wakeups } from './wakeups.js';
import { WriteBuffers } from './write-buffers.js';

interface QueueState {
  subs: Subscription[];
  next: number; // round-robin start
  pumping: boolean;
  again: boolean;
  /**
   * The queue may hold messages ready now: not found drained since the last wake-up. Freed credit
   * (an ack, a nack, a stream's buffer draining) leases only then; a wake-up (a send, a due time,
   * a nack or release anywhere, the ready poll) always does. At a low rate most acks come after
   * the queue was drained: each asking again was an empty lease (35–50 % of all at 1k msgs/s).
   */
  ready: boolean;
  timer?: NodeJS.Timeout;
  /** Fetches that failed in a row (the database away): the next try waits longer. */
  failures: number;
  off: () => void;
}

/** What Dispatcher.offer promises an insert: see there. */
export interface HandOff {
  /** How many of the messages offered, the first, may be stored leased. */
  count: number;
  leaseSec: number;
  /** Whose the leases are: their tokens name it. */
  principal: string;
  /** What the insert stored leased (none if it failed): dealt out to the subscribers. */
  deliver(deliveries: LeasedDelivery[]): void;
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
  /** Bytes all Subscribe streams together may hold written and not yet sent (see WriteBuffers). */
  maxBufferedBytes: number;
}

/**
 * Pushes messages to Subscribe streams. One pump per queue with subscribers, not one poller per
 * stream: a pump runs when a wake-up says the queue may have messages, when a subscriber gains
 * credit (an ack, a nack, its stream's buffer draining) while the queue was not found drained,
 * and when the one ready-queue poll for all queues finds messages no wake-up announced. It leases
 * for subscribers in turn, each up to its credit, until the queue is drained or nobody has credit. An idle subscription costs no query and no timer.
 *
 *   idle --wake/credit/ready poll--> pumping --drained or no credit--> idle
 *                                       ^--- wake while pumping: go round again
 */
export class Dispatcher {
  private readonly queues = new Map<string, QueueState>();
  /** What streams hold written and not yet sent, against the server's cap. */
  readonly buffers: WriteBuffers;
  private stopped = false;
  private poller?: NodeJS.Timeout;

  constructor(
    private readonly store: MessageStore,
    private readonly wakeups: Wakeups,
    private readonly opts: DispatcherOptions,
    private readonly log: Logger,
    /** The time leases are reported in (a stream holding a lease past it is stalled). */
    private readonly clock: Clock = systemClock,
  ) {
    this.buffers = new WriteBuffers(opts.maxBufferedBytes);
  }

  add(sub: Subscription): void {
    let q = this.queues.get(sub.queue);
    if (!q) {
      const state: QueueState = { subs: [], next: 0, pumping: false, again: false, ready: true, failures: 0, off: () => {} };
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

  /** A subscriber of this queue has credit again (settled, or its stream drained): leases if messages may be ready. */
  credit(queue: string): void {
    if (this.queues.get(queue)?.ready) this.pump(queue);
  }

  /** Messages may be ready in this queue (a wake-up, a new subscriber, the ready poll). */
  pump(queue: string): void {
    const q = this.queues.get(queue);
    if (!q || this.stopped) return;
    q.ready = true;
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
        q.ready = true;
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
      });
  }

  private async run(queue: string, q: QueueState): Promise<void> {
    do {
      q.again = false;
      // A round: each subscriber's credit, grouped by lease length (one fetch leases for one);
      // fetches of up to maxBatch for the group's credit, at most parallelFetches in all, run at
      // once (SKIP LOCKED keeps them apart); then the messages dealt out one at a time in turn.
      // Dealt, not handed in whole batches: with 200 subscribers and 1,000 messages each gets about
      // five, so a healthy subscriber among many stuck ones is never the last to be served.
      const credit = new Map<Subscription, number>();
      const now = this.clock.now();
      // Grouped by lease length and principal: a fetch leases for one of each, and its tokens name that principal.
      const groups = new Map<string, Subscription[]>();
      for (let i = 0; i < q.subs.length; i++) {
        const sub = q.subs[(q.next + i) % q.subs.length]!;
        const c = sub.credit(now);
        if (c === 0) continue;
        credit.set(sub, c);
        const key = `${sub.leaseSec}\n${sub.principal}`;
        const g = groups.get(key);
        if (g) g.push(sub);
        else groups.set(key, [sub]);
      }
      // Who is dealt first moves on each round.
      q.next = (q.next + 1) % Math.max(1, q.subs.length);
      if (credit.size === 0 || this.stopped) return;
      // Bytes too: no more than the streams may hold unsent, nor than the server's room (each
      // fetch keeps at least one message; what does not fit is put back untouched).
      let bytesLeft = this.buffers.room;
      const fetches: { group: string; leaseSec: number; principal: string; n: number; bytes: number }[] = [];
      for (const [group, subs] of groups) {
        // A group holds at least the subscription that made it.
        const { leaseSec, principal } = subs[0]!;
        let want = subs.reduce((sum, sub) => sum + credit.get(sub)!, 0);
        let room = Math.min(
          bytesLeft,
          subs.reduce((sum, sub) => sum + sub.roomBytes(), 0),
        );
        while (want > 0 && fetches.length < this.opts.parallelFetches) {
          const n = Math.min(want, this.opts.maxBatch);
          const bytes = Math.ceil((room * n) / want);
          fetches.push({ group, leaseSec, principal, n, bytes });
          room -= bytes;
          bytesLeft -= bytes;
          want -= n;
        }
      }
      // Found drained unless the fetches say otherwise; a wake-up meanwhile sets it again.
      q.ready = false;
      const leased = await Promise.all(
        fetches.map(async f => {
          const out = { overBudget: false };
          const deliveries = await this.store.lease(queue, f.n, f.leaseSec, f.principal, f.bytes, out);
          return { ...f, deliveries, overBudget: out.overBudget };
        }),
      );
      const gone: LeaseRef[] = [];
      for (const [group, subs] of groups)
        gone.push(
          ...this.deal(
            subs,
            credit,
            leased.filter(l => l.group === group).flatMap(l => l.deliveries),
          ),
        );
      if (gone.length > 0) await this.store.nack(gone, 0, null, 'subscriber gone');
      // Every fetch came back full, or one stopped at its byte room: the queue may hold more.
      if (leased.every(l => l.deliveries.length === l.n) || leased.some(l => l.overBudget)) q.again = q.ready = true;
    } while (q.again && !this.stopped);
  }

  /**
   * Deals deliveries out to a group's subscribers one at a time in turn, each up to its credit
   * (the caller leased no more than the group's credit). A stream that ended since the credit was
   * counted gets none: its share goes to the others with credit left. Returns the attempts of those
   * nobody could take, for the caller to put back (an attempt spent, so kept to the few no live
   * stream had room for: dealt to the ended stream as well, they came back to its peers an attempt
   * later).
   */
  private deal(subs: Subscription[], credit: Map<Subscription, number>, deliveries: LeasedDelivery[]): LeaseRef[] {
    const shares = new Map<Subscription, LeasedDelivery[]>();
    const gone: LeaseRef[] = [];
    let turn = 0;
    for (const d of deliveries) {
      let dealt = false;
      for (let k = 0; k < subs.length && !dealt; k++) {
        const sub = subs[(turn + k) % subs.length]!;
        const c = credit.get(sub)!;
        if (c === 0 || sub.closed) continue;
        credit.set(sub, c - 1);
        const share = shares.get(sub);
        if (share) share.push(d);
        else shares.set(sub, [d]);
        turn = (turn + k + 1) % subs.length;
        dealt = true;
      }
      if (!dealt) gone.push(d.ref);
    }
    for (const [sub, share] of shares) sub.deliver(share);
    return gone;
  }

  /**
   * The direct hand-off: messages about to be stored in `queue` (their payload sizes, in the order
   * they would be leased) offered to this replica's subscribers that wait on it with credit, the
   * queue found drained. Answers how many of the first of them the insert may store leased, for
   * whom (one lease length and principal), and where the leased deliveries go; undefined: none
   * (nobody waits here, the queue may hold older messages, or a fetch for it is under way). The
   * queue counts as pumping until `deliver` is called (with what the insert stored leased, or
   * nothing if it failed), so no fetch leases for the credit promised meanwhile.
   *
   * At a low rate a send to a drained queue was an insert, a notification, and a lease of what had
   * just been inserted: one statement does it now, and the message reaches its subscriber a round
   * trip sooner.
   */
  offer(queue: string, sizes: number[]): HandOff | undefined {
    const q = this.queues.get(queue);
    if (!q || q.pumping || q.ready || this.stopped || sizes.length === 0) return undefined;
    const now = this.clock.now();
    const credit = new Map<Subscription, number>();
    const subs: Subscription[] = [];
    for (let i = 0; i < q.subs.length; i++) {
      const sub = q.subs[(q.next + i) % q.subs.length]!;
      const c = sub.credit(now);
      if (c === 0) continue;
      // One group, the first in turn's: an insert leases for one lease length and principal.
      if (subs.length > 0 && (sub.leaseSec !== subs[0]!.leaseSec || sub.principal !== subs[0]!.principal)) continue;
      credit.set(sub, c);
      subs.push(sub);
    }
    if (subs.length === 0) return undefined;
    q.next = (q.next + 1) % q.subs.length;
    // As a fetch would: no more than the credit, nor than the streams' and the server's byte room (at least one).
    const want = Math.min(
      sizes.length,
      subs.reduce((sum, sub) => sum + credit.get(sub)!, 0),
    );
    let room = Math.min(
      this.buffers.room,
      subs.reduce((sum, sub) => sum + sub.roomBytes(), 0),
    );
    let count = 0;
    while (count < want && (count === 0 || sizes[count]! <= room)) room -= sizes[count++]!;
    q.pumping = true;
    const { leaseSec, principal } = subs[0]!;
    return {
      count,
      leaseSec,
      principal,
      deliver: deliveries => {
        const gone = this.deal(subs, credit, deliveries);
        if (gone.length > 0) this.store.nack(gone, 0, null, 'subscriber gone').catch(err => this.log.warn({ err, queue }, 'releasing a hand-off failed'));
        q.pumping = false;
        // Those it stored waiting are announced by the insert's NOTIFY, heard here too: if that
        // came while the insert ran, it asked for a round, run now.
        if (q.again && this.queues.get(queue) === q) this.pump(queue);
      },
    };
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
          .catch(err =>
            isConnectionError(err)
              ? this.log.debug({ err }, 'ready-queue poll failed: database unavailable')
              : this.log.warn({ err }, 'ready-queue poll failed'),
          )
          .finally(loop);
      }, this.opts.pollIntervalMs);
    };
    loop();
  }

  private async pollReady(): Promise<void> {
    const now = this.clock.now();
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
