import type { Delivery } from '@inboxd/proto/v1/message';
import type { LeasedDelivery } from './codec.js';
import type { LeaseRef } from './lease-token.js';
import type { SettleItem } from './message-store.js';
import { chunkDeliveries } from './response-budget.js';
import { STREAM_BUFFER_BYTES, type WriteBuffers } from './write-buffers.js';

/** Writes one response's deliveries; `sent` runs once they left for the client. False: the stream's buffer is full. */
export type StreamWriter = (deliveries: Delivery[], sent: () => void) => boolean;

export interface FlowLimits {
  maxMessages: number;
  /** 0: no byte limit. */
  maxBytes: number;
}

interface Outstanding {
  bytes: number;
  expiresAt: number;
  /** What settles it: its lease token when it was given one, else the attempt (a tag's). */
  item: SettleItem;
}

/** How a stream names its deliveries to the client. */
export interface Naming {
  /** Delivery tags (the stream asked for them), else signed lease tokens. */
  tags: boolean;
  /** Signs a lease token for an attempt. */
  issue: (ref: LeaseRef) => string;
}

/** The largest delivery tag (uint32); the next after it is 1 again. */
export const MAX_TAG = 0xffff_ffff;

/**
 * One open Subscribe stream as the dispatcher sees it: the queue, the lease length, the flow
 * window, and the deliveries it holds that are not yet settled.
 *
 * A delivery is outstanding from the moment it is pushed until the client acks or nacks it through
 * this stream, even after its lease ran out (the ack then answers FAILED_PRECONDITION, and frees
 * the slot all the same): the window is what the client can hold, and a client that never settles
 * (stuck, or not reading) must not be handed message after message, each costing an attempt.
 * Credit is the window less what is outstanding; none while the stream's write buffer is full
 * (backpressure: the client is not reading), nor while a delivery it holds is past its lease (the
 * client is stuck); the dispatcher never leases more than the credit.
 */
export class Subscription {
  /** By delivery tag on a stream with tags, else by lease token. */
  private readonly outstanding = new Map<string | number, Outstanding>();
  private lastTag = 0;
  private outBytes = 0;
  /** Largest payload delivered on this stream so far (-1: none yet): sizes fetches under a byte limit. */
  private largest = -1;
  closed = false;
  /** The client asked for no more deliveries (it is closing); settles still work. */
  draining = false;
  /** The last write filled the stream's buffer: nothing more until it drains. */
  private blocked = false;
  /** Bytes written and not yet sent on (WriteBuffers counts them too, until the stream ends). */
  private unsent = 0;
  /** Credit was refused for bytes waiting: look again when they are sent. */
  private waitingToSend = false;

  constructor(
    readonly queue: string,
    readonly leaseSec: number,
    /** Who subscribed: its deliveries' tokens name it. */
    readonly principal: string,
    private readonly naming: Naming,
    public limits: FlowLimits,
    /** Writes a response's deliveries to the stream (see StreamWriter). */
    private readonly write: StreamWriter,
    /** The dispatcher cannot serve this subscription any more (its queue was deleted). */
    readonly fail: (err: unknown) => void,
    private readonly buffers: WriteBuffers,
    /** Bytes it waited for were sent: credit may be back. */
    private readonly onSent: () => void = () => {},
  ) {}

  /** How many more messages may be delivered now. */
  credit(now = Date.now()): number {
    if (this.closed || this.draining || this.blocked || this.stalled(now)) return 0;
    if (this.unsent > 0 && (this.unsent >= STREAM_BUFFER_BYTES || this.buffers.room === 0)) {
      this.waitingToSend = true;
      return 0;
    }
    const n = Math.max(0, this.limits.maxMessages - this.outstanding.size);
    if (this.limits.maxBytes <= 0 || n === 0) return n;
    if (this.outBytes >= this.limits.maxBytes && this.outstanding.size > 0) return 0;
    return Math.min(n, this.fitting(this.limits.maxBytes - this.outBytes));
  }

  /**
   * How many messages to lease into `room` bytes. Sizes are known only once leased, so: as many
   * as fit if each were as big as the largest seen on this stream, and one at a time until one was
   * seen. At least one, so a message bigger than the limit still goes out (alone, or last).
   */
  private fitting(room: number): number {
    if (this.largest < 0) return 1;
    return this.largest === 0 ? room : Math.max(1, Math.floor(room / this.largest));
  }

  /**
   * Names each delivery (a tag, or a token; with tags, a message asking for a reply gets its token
   * too, for the reply to cite) and writes them, within the response budget.
   */
  deliver(leased: LeasedDelivery[]): void {
    for (const d of leased) {
      const ref = d.ref;
      const bytes = d.message?.payload.length ?? 0;
      this.largest = Math.max(this.largest, bytes);
      if (!this.naming.tags || d.message?.replyTo) d.leaseToken = this.naming.issue(ref);
      const expiresAt = d.leaseExpiresAt?.getTime() ?? Date.now();
      if (this.naming.tags) d.deliveryTag = this.nextTag();
      this.outstanding.set(this.naming.tags ? d.deliveryTag : d.leaseToken, { bytes, expiresAt, item: d.leaseToken || ref });
      this.outBytes += bytes;
    }
    // Within the response budget: a batch of big messages goes out as several responses (`ref`
    // rides along unencoded).
    for (const { items, bytes } of chunkDeliveries(leased)) {
      this.unsent += bytes;
      this.buffers.add(bytes);
      if (!this.write(items, () => this.sent(bytes))) this.blocked = true;
    }
  }

  /** Bytes this stream may still be written before it must wait for the client to read. */
  roomBytes(): number {
    return Math.max(0, STREAM_BUFFER_BYTES - this.unsent);
  }

  private sent(bytes: number): void {
    if (this.closed) return;
    this.unsent -= bytes;
    this.buffers.sub(bytes);
    if (this.waitingToSend && this.unsent === 0) {
      this.waitingToSend = false;
      this.onSent();
    }
  }

  /** The stream ended: what it had not sent no longer counts against the server's cap. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.buffers.sub(this.unsent);
    this.unsent = 0;
  }

  /**
   * A delivery's lease ran out while this stream held it, unsettled and not extended: the client is
   * stuck (or not reading). It gets nothing more until it settles (a late ack too), so the messages
   * it let go go to consumers that work, instead of back to it, an attempt burnt each time.
   */
  private stalled(now: number): boolean {
    for (const o of this.outstanding.values()) if (o.expiresAt <= now) return true;
    return false;
  }

  /** The stream's buffer drained: deliveries may flow again. */
  unblocked(): void {
    this.blocked = false;
  }

  /** Whether this stream names its deliveries by tag. */
  get tags(): boolean {
    return this.naming.tags;
  }

  /** The next tag: counting up from 1, and from 1 again after MAX_TAG, past any still held. */
  private nextTag(): number {
    do this.lastTag = this.lastTag >= MAX_TAG ? 1 : this.lastTag + 1;
    while (this.outstanding.has(this.lastTag));
    return this.lastTag;
  }

  /** Whether this stream delivered under `key` (a token, or a tag) and it is not yet settled. */
  holds(key: string | number): boolean {
    return this.outstanding.has(key);
  }

  /** What settles the delivery a tag names; undefined if this stream does not hold it. */
  itemOf(tag: number): SettleItem | undefined {
    return this.outstanding.get(tag)?.item;
  }

  /** Acked or nacked: no longer outstanding. */
  settled(keys: (string | number)[]): void {
    for (const k of keys) this.forget(k);
  }

  extended(key: string | number, expiresAt: Date): void {
    const o = this.outstanding.get(key);
    if (o) o.expiresAt = expiresAt.getTime();
  }

  /** What the stream still holds, to release when it ends; forgotten here. */
  release(): SettleItem[] {
    const items = [...this.outstanding.values()].map(o => o.item);
    this.outstanding.clear();
    this.outBytes = 0;
    return items;
  }

  private forget(key: string | number): void {
    const o = this.outstanding.get(key);
    if (!o) return;
    this.outstanding.delete(key);
    this.outBytes -= o.bytes;
  }
}
