import type { Delivery } from '@inboxd/proto/v1/message';
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
}

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
  private readonly outstanding = new Map<string, Outstanding>();
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

  deliver(deliveries: Delivery[]): void {
    for (const d of deliveries) {
      const bytes = d.message?.payload.length ?? 0;
      this.largest = Math.max(this.largest, bytes);
      this.outstanding.set(d.leaseToken, { bytes, expiresAt: d.leaseExpiresAt?.getTime() ?? Date.now() });
      this.outBytes += bytes;
    }
    // Within the response budget: a batch of big messages goes out as several responses.
    for (const { items, bytes } of chunkDeliveries(deliveries)) {
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

  /** Whether this stream delivered `token` and it is not yet settled (a token of this stream's queue). */
  holds(token: string): boolean {
    return this.outstanding.has(token);
  }

  /** Acked or nacked: no longer outstanding. */
  settled(tokens: string[]): void {
    for (const t of tokens) this.forget(t);
  }

  extended(token: string, expiresAt: Date): void {
    const o = this.outstanding.get(token);
    if (o) o.expiresAt = expiresAt.getTime();
  }

  /** Lease tokens still outstanding, to release when the stream ends. */
  tokens(): string[] {
    return [...this.outstanding.keys()];
  }

  private forget(token: string): void {
    const o = this.outstanding.get(token);
    if (!o) return;
    this.outstanding.delete(token);
    this.outBytes -= o.bytes;
  }
}
