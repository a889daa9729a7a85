import type { SendRequest, SendResult } from '@inboxd/proto/v1/inbox';
import type { Message } from '@inboxd/proto/v1/message';
import type { PublisherOptions } from './default-options.js';
import { type Duration, toMs } from './durations.js';
import { Code, InboxdError } from './errors.js';
import { mayRetry } from './idempotency.js';
import { newMessageId } from './message-id.js';
import type { CallOptions, Rpc } from './rpc.js';
import { StreamLost, StreamSender } from './send-stream.js';

export type Payload = Uint8Array | string;

export interface SendOptions {
  /** A UUID of your own, to make a resend of the same message a no-op. Default: a new one (a UUIDv7, time-ordered). */
  id?: string;
  contentType?: string;
  headers?: Record<string, string>;
  subject?: string;
  correlationId?: string;
  replyTo?: string;
  /** Higher first. */
  priority?: number;
  /** Not delivered before this time… */
  deliverAt?: Date;
  /** …or before this long from now. */
  delay?: Duration;
  /** Not delivered after this time (removed and counted as expired)… */
  expiresAt?: Date;
  /** …or after this long from now. Unset: the queue's message_ttl. */
  ttl?: Duration;
  /** Within the queue's dedup window, a second message with this key is not stored: its send resolves with the first one's id. */
  dedupKey?: string;
  /** Set by ReceivedMessage.reply(): the request's lease token, which lets a responder reply without a send grant (docs/security.md). */
  inReplyToLeaseToken?: string;
}

/** The Message a send (or a publish, with queue '') carries: payload and options, the id chosen here. */
export function buildMessage(queue: string, payload: Payload, options: SendOptions = {}): Message {
  const bytes =
    typeof payload === 'string'
      ? Buffer.from(payload, 'utf8')
      : Buffer.isBuffer(payload)
        ? payload
        : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  // Built whole, once: fromPartial here and again around the batch copied every message twice
  // (a copy, a header map and an empty buffer each time), ~7 % of what the client allocates a message.
  return {
    id: options.id ?? newMessageId(),
    queue,
    payload: bytes,
    contentType: options.contentType ?? (typeof payload === 'string' ? 'text/plain; charset=utf-8' : ''),
    headers: headersOf(options.headers),
    sender: '',
    subject: options.subject ?? '',
    correlationId: options.correlationId ?? '',
    replyTo: options.replyTo ?? '',
    priority: options.priority ?? 0,
    deliverAt: options.deliverAt ?? (options.delay !== undefined ? new Date(Date.now() + toMs(options.delay)) : undefined),
    contentHash: '',
    enqueuedAt: undefined,
    expiresAt: options.expiresAt ?? (options.ttl !== undefined ? new Date(Date.now() + toMs(options.ttl)) : undefined),
    dedupKey: options.dedupKey ?? '',
    inReplyToLeaseToken: options.inReplyToLeaseToken ?? '',
  };
}

const NO_HEADERS: Readonly<Record<string, string>> = Object.freeze({});

/** The caller's headers copied (a later change to their object does not reach a queued message), values as strings, undefined ones left out. */
function headersOf(headers: Record<string, string> | undefined): Record<string, string> {
  if (!headers) return NO_HEADERS as Record<string, string>;
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) if (v !== undefined) out[k] = String(v);
  return out;
}

/**
 * A SendStream with nothing to answer this long is closed: an open stream keeps the process
 * alive (a script that never calls close() exits this much later than it did with Sends), and
 * holds one of the principal's streams. Under a steady rate batches come far more often.
 */
const STREAM_IDLE_MS = 250;
/** After a SendStream was refused, batches go as Sends this long before one is tried again. */
const STREAM_OFF_MS = 30_000;

interface Item {
  message: Message;
  bytes: number;
  resolve: (id: string) => void;
  reject: (e: unknown) => void;
}

/**
 * Batches messages into Send calls: while a Send slot is free a batch goes on the next tick; once
 * maxInFlight Sends are out, messages gather until one returns, or by count, bytes and delay.
 * Every message gets its id here, before the first attempt, so a Send retried after a lost response stores nothing twice.
 * Backpressure: once `maxPendingBytes` of payload is accepted and not yet stored, send() waits.
 *
 *   send() -> pending --(idle, full, delay over, or flush)--> in flight (<= maxInFlight) --> stored | failed
 */
export class Publisher {
  private pending: Item[] = [];
  private pendingBatchBytes = 0;
  private unsettledBytes = 0;
  private inFlight = 0;
  private timer?: NodeJS.Timeout;
  private kick?: NodeJS.Immediate;
  private due = false;
  private readonly roomWaiters: { bytes: number; go: () => void }[] = [];
  private readonly idleWaiters: (() => void)[] = [];
  private closed = false;
  /** Messages send() accepted that are not yet stored or failed, those waiting for room included. */
  private accepted = 0;
  /** Batches go on its SendStream while it is usable (options.stream), else as Sends. */
  private readonly streamer?: StreamSender;

  constructor(
    private readonly rpc: Rpc,
    private readonly opts: PublisherOptions,
    private readonly callOptions: CallOptions = {},
  ) {
    // A call that may be aborted goes as Sends: an abort cancels a Send, not a shared stream.
    if (opts.stream && !callOptions.signal) {
      const retry = { ...rpc.retry, ...callOptions.retry };
      this.streamer = new StreamSender(rpc.pool, { attemptTimeoutMs: toMs(retry.attemptTimeout), idleMs: STREAM_IDLE_MS, offMs: STREAM_OFF_MS });
    }
  }

  /** Queues a message; resolves with its id once the server has stored it. */
  async send(queue: string, payload: Payload, options: SendOptions = {}): Promise<string> {
    if (this.closed) throw new InboxdError(Code.FAILED_PRECONDITION, 'publisher is closed');
    const message = buildMessage(queue, payload, options);
    const bytes = message.payload;
    // Counted before waiting for room: a flush() called right after send() waits for this message.
    this.accepted++;
    // Into the batch synchronously when there is room, so sends made in one tick share a batch
    // even when flush() follows at once; only under backpressure does a send wait.
    const room = this.room(bytes.length);
    if (room) await room;
    return new Promise<string>((resolve, reject) => {
      this.pending.push({ message, bytes: bytes.length, resolve, reject });
      this.pendingBatchBytes += bytes.length;
      if (this.pending.length === 1 && !this.timer) {
        const delay = toMs(this.opts.maxDelay);
        this.timer = setTimeout(() => {
          this.timer = undefined;
          this.due = true;
          this.pump();
        }, delay);
      }
      if (!this.opts.linger && this.inFlight < this.opts.maxInFlight && !this.kick) {
        // A Send slot is free: go on the next tick, so sends made in this one share the batch.
        this.kick = setImmediate(() => {
          this.kick = undefined;
          if (this.inFlight < this.opts.maxInFlight && this.pending.length > 0) this.due = true;
          this.pump();
        });
      }
      this.pump();
    });
  }

  /** JSON.stringify(value) as application/json. */
  sendJson(queue: string, value: unknown, options: SendOptions = {}): Promise<string> {
    return this.send(queue, Buffer.from(JSON.stringify(value), 'utf8'), { contentType: 'application/json', ...options });
  }

  /** Sends whatever is pending now and resolves once everything accepted so far is settled. */
  async flush(): Promise<void> {
    this.due = true;
    this.pump();
    if (this.accepted === 0) return;
    await new Promise<void>(resolve => this.idleWaiters.push(resolve));
  }

  /** Flushes, then refuses further sends. */
  async close(): Promise<void> {
    this.closed = true;
    await this.flush();
    this.streamer?.close();
  }

  /** Takes room for `bytes` now (undefined), or a promise of it once earlier sends settle. */
  private room(bytes: number): Promise<void> | undefined {
    if (this.roomWaiters.length === 0 && (this.unsettledBytes === 0 || this.unsettledBytes + bytes <= this.opts.maxPendingBytes)) {
      this.unsettledBytes += bytes;
      return undefined;
    }
    return new Promise(go => this.roomWaiters.push({ bytes, go: () => ((this.unsettledBytes += bytes), go()) }));
  }

  private released(bytes: number): void {
    this.unsettledBytes -= bytes;
    for (let w = this.roomWaiters[0]; w !== undefined; w = this.roomWaiters[0]) {
      if (this.unsettledBytes > 0 && this.unsettledBytes + w.bytes > this.opts.maxPendingBytes) break;
      this.roomWaiters.shift();
      w.go();
    }
  }

  private pump(): void {
    while (this.inFlight < this.opts.maxInFlight && this.pending.length > 0) {
      const full = this.pending.length >= this.opts.maxMessages || this.pendingBatchBytes >= this.opts.maxBytes;
      // Nobody waits for room while a batch waits for company: under backpressure, send what we have.
      // Nor while a flush() waits: it waits for every message accepted, those admitted later included.
      if (!full && !this.due && this.roomWaiters.length === 0 && this.idleWaiters.length === 0) return;
      // One splice per batch: shift() per message made a 100,000-message burst quadratic.
      let k = 0;
      let bytes = 0;
      for (let next = this.pending[0]; next && k < this.opts.maxMessages && (k === 0 || bytes + next.bytes <= this.opts.maxBytes); next = this.pending[k]) {
        bytes += next.bytes;
        k++;
      }
      const batch = this.pending.splice(0, k);
      this.pendingBatchBytes -= bytes;
      if (this.pending.length === 0) {
        this.due = false;
        clearTimeout(this.timer);
        this.timer = undefined;
      }
      void this.dispatch(batch, bytes);
    }
  }

  private async dispatch(batch: Item[], bytes: number): Promise<void> {
    this.inFlight++;
    try {
      await this.sendBatch(batch);
    } finally {
      this.accepted -= batch.length;
      this.inFlight--;
      // A slot is free again: what gathered meanwhile goes now, not at maxDelay.
      if (this.pending.length > 0 && !this.opts.linger) this.due = true;
      this.released(bytes);
      this.pump();
      if (this.accepted === 0) for (const w of this.idleWaiters.splice(0)) w();
    }
  }

  /**
   * Stores one batch: on the SendStream when it is usable, else (or when the stream failed under
   * it, or the server could not store it just now) as a Send, with the client's retries. An
   * answer a retry would not change (bad input, a missing queue, no grant, a full queue) is final
   * either way.
   */
  private async store(req: SendRequest): Promise<SendResult[]> {
    if (this.streamer?.usable) {
      try {
        return await this.streamer.send(req.messages);
      } catch (err) {
        if (!(err instanceof StreamLost) && !mayRetry(InboxdError.from(err), 'IDEMPOTENT')) throw err;
      }
    }
    return (await this.rpc.call(c => [c.inbox, c.inbox.send], req, { ...this.callOptions, idempotent: true })).results;
  }

  /**
   * One Send of `batch`. A Send is all or nothing, so one bad message (a missing queue, an invalid
   * field, a queue the caller may not send to) fails every message batched with it: then the
   * batch is sent again in halves, until only the culprits fail. Nothing was stored, and ids are
   * fixed, so resending is safe.
   */
  private async sendBatch(batch: Item[]): Promise<void> {
    try {
      const req: SendRequest = { messages: batch.map(i => i.message) };
      // Every message carries its id (chosen before the first attempt): a repeat stores nothing twice.
      const results = await this.store(req);
      for (const [i, it] of batch.entries()) it.resolve(results[i]?.id ?? it.message.id);
    } catch (err) {
      const e = InboxdError.from(err);
      if (batch.length > 1 && (e.code === Code.INVALID_ARGUMENT || e.code === Code.NOT_FOUND || e.code === Code.PERMISSION_DENIED)) {
        const mid = batch.length >> 1;
        await this.sendBatch(batch.slice(0, mid));
        await this.sendBatch(batch.slice(mid));
        return;
      }
      for (const it of batch) it.reject(e);
    }
  }
}
