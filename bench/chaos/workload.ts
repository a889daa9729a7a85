import { randomUUID } from 'node:crypto';
import { Code, createClient, type InboxdClient, InboxdError, type Publisher, type ReceivedMessage, type Subscriber, type SubscriberOptions } from '@inboxd/sdk';
import { Ledger } from './ledger.js';
import { sleep, waitFor, withTimeout } from './util.js';

export interface QueueLoad {
  name: string;
  /** Sends carry a dedup key (the message id), so they go through the server's admission transaction. */
  dedup?: boolean;
}

export interface WorkloadOptions {
  endpoints: string[];
  queues: QueueLoad[];
  /** Messages per second, over all queues (round-robin). */
  rate: number;
  /** Subscribers per queue (each a Subscribe stream; one consumer client holds them all). */
  subscribersPerQueue: number;
  /** Time each handler takes before acking (so that leases are held when a fault hits). */
  handlerDelayMs?: number;
  subscriber?: Partial<SubscriberOptions>;
}

export function codeName(err: unknown): string {
  const e = InboxdError.from(err);
  return Code[e.code] ?? String(e.code);
}

/**
 * The load a scenario runs: producers at a steady rate through the SDK publisher (default
 * options, a client-chosen id per message), and subscribers (SDK defaults) that record each
 * delivery and ack it, recording the ack's outcome. Producers and consumers use separate
 * clients, as separate services would. Everything goes into `ledger`.
 */
export class Workload {
  readonly ledger = new Ledger();
  readonly producer: InboxdClient;
  readonly consumer: InboxdClient;
  private readonly publisher: Publisher;
  private readonly subs: Subscriber[] = [];
  private readonly pending = new Set<Promise<void>>();
  private timer?: NodeJS.Timeout;
  private produced = 0;
  private seq = 0;
  /** Things worth reporting that are not counts (a subscription that failed for good, …). */
  readonly notes: string[] = [];

  constructor(readonly opts: WorkloadOptions) {
    this.producer = createClient({ endpoints: opts.endpoints });
    this.consumer = createClient({ endpoints: opts.endpoints });
    this.publisher = this.producer.publisher();
  }

  /** Sends one message (not awaited by the caller; the outcome goes into the ledger). */
  send(queue: QueueLoad): Promise<void> {
    const id = randomUUID();
    const n = ++this.seq;
    this.ledger.sending(id, queue.name);
    const p = this.publisher
      .send(queue.name, JSON.stringify({ n }), { id, ...(queue.dedup ? { dedupKey: id } : {}) })
      .then(
        () => this.ledger.sendOk(id),
        err => this.ledger.sendFailed(id, codeName(err)),
      )
      .finally(() => this.pending.delete(p));
    this.pending.add(p);
    return p;
  }

  /** Sends `n` messages to `queue` and waits for their outcomes. */
  async sendBatch(queue: QueueLoad, n: number): Promise<void> {
    await Promise.all(Array.from({ length: n }, () => this.send(queue)));
  }

  startProducers(): void {
    const start = Date.now();
    const base = this.produced;
    this.timer = setInterval(() => {
      const target = base + Math.floor((this.opts.rate * (Date.now() - start)) / 1000);
      // No catch-up bursts after a stall longer than 100 ms: a steady rate, not a flood.
      let budget = Math.max(1, Math.ceil(this.opts.rate / 10));
      while (this.produced < target && budget-- > 0) {
        const q = this.opts.queues[this.produced % this.opts.queues.length]!;
        this.produced++;
        void this.send(q);
      }
      if (this.produced < target) this.produced = target;
    }, 10);
  }

  /** Stops producing; waits (at most `timeoutMs`) for every send to resolve. Returns how many did not. */
  async stopProducers(timeoutMs: number): Promise<number> {
    clearInterval(this.timer);
    this.timer = undefined;
    await waitFor(() => this.pending.size === 0, timeoutMs, 50);
    return this.pending.size;
  }

  startSubscribers(): void {
    for (const q of this.opts.queues) for (let i = 0; i < this.opts.subscribersPerQueue; i++) this.subscribe(q.name, `${q.name}#${i}`);
  }

  /** One more subscriber (SDK defaults plus `opts.subscriber`). */
  subscribe(queue: string, consumer: string, extra: Partial<SubscriberOptions> = {}): Subscriber {
    const sub = this.consumer.subscribe(queue, (m: ReceivedMessage) => this.handle(m, consumer), { ...this.opts.subscriber, ...extra });
    sub.on('error', err => this.notes.push(`subscriber ${consumer} failed for good: ${(err as Error).message}`));
    this.subs.push(sub);
    return sub;
  }

  private async handle(m: ReceivedMessage, consumer: string): Promise<void> {
    this.ledger.delivered({ id: m.id, attempt: m.attempt, token: m.leaseToken, at: m.receivedAt, consumer });
    if (this.opts.handlerDelayMs) await sleep(this.opts.handlerDelayMs);
    try {
      await m.ack();
      this.ledger.acked(m.id, true);
    } catch (err) {
      this.ledger.acked(m.id, false, codeName(err));
    }
  }

  /**
   * Waits until every acknowledged send has been acked OK, or nothing happened (no delivery, no
   * ack) for `stallMs`, or `timeoutMs` passed; then `quietMs` more for late redeliveries.
   * Returns whether everything was acked.
   */
  async drain(timeoutMs: number, stallMs: number, quietMs: number): Promise<boolean> {
    const end = Date.now() + timeoutMs;
    let seen = this.ledger.events;
    let lastProgress = Date.now();
    for (;;) {
      if (this.ledger.outstanding() === 0) break;
      const now = Date.now();
      if (this.ledger.events !== seen) {
        seen = this.ledger.events;
        lastProgress = now;
      }
      if (now >= end || now - lastProgress >= stallMs) break;
      await sleep(100);
    }
    const done = this.ledger.outstanding() === 0;
    await sleep(quietMs);
    return done;
  }

  /** Closes subscribers (returning what they hold) and both clients. Bounded in time. */
  async close(): Promise<void> {
    clearInterval(this.timer);
    await withTimeout(Promise.all(this.subs.map(s => s.close({ behavior: 'nack', timeout: '2s' }).catch(() => {}))), 5000, 'closing subscribers').catch(
      () => {},
    );
    await withTimeout(this.consumer.close({ timeout: '1s' }), 5000, 'closing the consumer client').catch(() => {});
    await withTimeout(this.producer.close({ timeout: '1s' }), 5000, 'closing the producer client').catch(() => {
      this.producer.pool.close();
    });
    this.consumer.pool.close();
  }
}
