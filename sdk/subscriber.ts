import { EventEmitter } from 'node:events';
import { type ClientDuplexStream, Metadata } from '@grpc/grpc-js';
import { type SettleResults, SubscribeRequest, type SubscribeResponse } from '@inboxd/proto/v1/inbox';
import type { ChannelPool } from './channel-pool.js';
import type { RetryOptions, SubscriberOptions } from './default-options.js';
import { type Duration, toMs, toProto } from './durations.js';
import { Code, InboxdError } from './errors.js';
import { ReceivedMessage, type Replier, type Settler } from './received-message.js';
import { backoffMs, STREAM_RETRYABLE } from './retry.js';

export type Handler = (message: ReceivedMessage) => unknown;

export interface CloseOptions {
  /** 'drain' (default): let running handlers finish and settle. 'nack': return them to the queue now. */
  behavior?: 'drain' | 'nack';
  /** Give up waiting after this long; unsettled leases are then released by ending the stream. */
  timeout?: Duration;
}

type Kind = 'ack' | 'nack' | 'extend';

type Stream = ClientDuplexStream<SubscribeRequest, SubscribeResponse>;

/** A held message: when the lease keeper extends it, and the stream it came on. */
interface Held {
  /** Infinity: never, or under way. */
  extendAt: number;
  stream?: Stream;
}

interface Waiter {
  kind: Kind;
  message: ReceivedMessage;
  /** What the request names it by: its lease token, or its delivery tag on `stream`. */
  key: string | number;
  /** The stream a tag is valid on (a tag names nothing on any other). */
  stream?: Stream;
  delayMs?: number;
  extendMs?: number;
  deadLetter?: boolean;
  error?: string;
  resolve: (expiresAt?: Date) => void;
  reject: (e: unknown) => void;
  /** Written on a stream that then died: its outcome is unknown, so it is sent again. */
  resent?: boolean;
}

/** The lease keeper extends, in one pass, leases due this soon after the one it woke for. */
const KEEPER_SLACK_MS = 50;

/** Statuses that end a subscription instead of reconnecting: retrying cannot help. */
const FATAL = (code: Code) => !STREAM_RETRYABLE.has(code) && code !== Code.CANCELLED && code !== Code.INTERNAL && code !== Code.UNKNOWN;

/**
 * A streaming subscription to one queue, over the Subscribe RPC.
 *
 *   connecting --stream opens--> open --stream fails (retryable)--> backoff --> connecting
 *        ^                          |--fatal status (NOT_FOUND, ...)--> failed ('error' event)
 *        |                          `--close()--> draining --handlers done / timeout--> closed
 *
 * Flow control is the server's window: it never has more than maxOutstandingMessages (and
 * roughly maxOutstandingBytes) delivered and unsettled on the stream. Acks, nacks and lease
 * extensions go in batches on the stream, each with a promise answered from the server's
 * per-token results; while the stream is down they wait for the next one. Leases of messages
 * whose handler runs are extended at half their length, up to maxExtension after receipt, by
 * one lease keeper (a timer for the earliest due) rather than a timer per message.
 *
 * On a reconnect, messages whose handlers still run keep running: the server released their
 * leases when the old stream died (or they expire, if the server died), so they come again —
 * at-least-once, and their late acks answer FAILED_PRECONDITION.
 *
 * With option deliveryTags, deliveries are named by delivery tag, a number the stream gives
 * each: cheaper than a signed lease token on both sides. A tag is valid on its own stream
 * only (the next stream's tags start again at 1), so a settle of a message from a stream that
 * ended is never sent on another: an ack is rejected (the message comes again), a nack resolves
 * (the server released the message with the stream).
 */
export class Subscriber extends EventEmitter implements AsyncIterable<ReceivedMessage> {
  private stream?: Stream;
  private releaseChannel = () => {};
  /** Delivered and unsettled. */
  private readonly held = new Map<ReceivedMessage, Held>();
  /** The lease keeper: one timer for every held message, armed for the earliest `extendAt`. */
  private keeperTimer?: NodeJS.Timeout;
  private keeperAt = Number.POSITIVE_INFINITY;
  private queued: Waiter[] = [];
  /** Acks and nacks in `queued` (not resent ones), and their payload bytes: what they free of the server's window once sent. */
  private freeing = 0;
  private freeingBytes = 0;
  /** Written and not yet answered, by token or tag (of the open stream). */
  private readonly sent = new Map<string | number, Waiter[]>();
  private flushTimer?: NodeJS.Timeout;
  private failures = 0;
  private reconnectTimer?: NodeJS.Timeout;
  private closing?: Promise<void>;
  private shuttingDown = false;
  private stopped = false;
  private readonly buffer: ReceivedMessage[] = [];
  private readonly takers: ((r: IteratorResult<ReceivedMessage>) => void)[] = [];
  private readonly idle = new Set<() => void>();
  private readonly settler: Settler;
  /** Most messages held at once, for tests and metrics. */
  maxHeld = 0;

  constructor(
    private readonly pool: ChannelPool,
    readonly queue: string,
    private readonly opts: SubscriberOptions,
    private readonly retry: RetryOptions,
    private readonly handler?: Handler,
    /** How its messages' reply() sends. */
    private readonly replier?: Replier,
  ) {
    super();
    this.settler = {
      // Settled either way: a failed ack (a stale lease) means the message is no longer ours.
      ack: m =>
        this.settle('ack', m, {}, m.payload.byteLength)
          .then(() => undefined)
          .finally(() => this.forget(m)),
      nack: (m, o) =>
        this.settle('nack', m, { delayMs: o.delay === undefined ? undefined : toMs(o.delay), deadLetter: o.deadLetter, error: o.error }, m.payload.byteLength)
          .then(() => undefined)
          .finally(() => this.forget(m)),
      extend: async (m, by) => (await this.settle('extend', m, { extendMs: by === undefined ? undefined : toMs(by) }))!,
    };
    this.connect();
  }

  /** Messages held now: delivered, not yet acked or nacked. */
  get outstanding(): number {
    return this.held.size;
  }

  private connect(): void {
    if (this.stopped) return;
    const { channel, release } = this.pool.pickForStream();
    this.releaseChannel = release;
    const stream = channel.inbox.subscribe(new Metadata());
    this.stream = stream;
    const first = SubscribeRequest.fromPartial({
      queue: this.queue,
      flowControl: { maxOutstandingMessages: this.opts.maxOutstandingMessages, maxOutstandingBytes: String(this.opts.maxOutstandingBytes) },
      visibilityTimeout: this.opts.visibilityTimeout !== undefined ? toProto(this.opts.visibilityTimeout) : undefined,
      // Reconnecting while closing: only to settle what is held.
      drain: this.shuttingDown,
      deliveryTags: this.opts.deliveryTags,
    });
    stream.write(first);
    stream.on('data', (r: SubscribeResponse) => this.onResponse(stream, r));
    stream.on('error', err => this.onStreamEnd(stream, InboxdError.from(err)));
    stream.on('end', () => this.onStreamEnd(stream));
    // Settles that waited for a stream go out on this one.
    if (this.queued.length > 0) this.scheduleFlush();
  }

  private onStreamEnd(stream: Stream, err?: InboxdError): void {
    if (this.stream !== stream) return;
    this.stream = undefined;
    this.releaseChannel();
    // Whatever was written by token and not answered is sent again on the next stream; by tag, it
    // cannot be (the tag names nothing there).
    for (const list of this.sent.values()) for (const w of list) typeof w.key === 'string' ? this.queued.push({ ...w, resent: true }) : this.lost(w, true);
    this.sent.clear();
    this.queued = this.queued.filter(w => typeof w.key === 'string' || (this.lost(w, false), false));
    if (this.stopped) return;
    if (this.shuttingDown) {
      this.finishIfIdle();
      // Handlers still running will want to settle: keep a stream for them.
      if (this.held.size === 0 && this.queued.length === 0) return;
    }
    if (err && FATAL(err.code)) {
      this.fail(err);
      return;
    }
    this.failures++;
    const wait = backoffMs(Math.min(this.failures, 10), this.retry);
    this.emit('reconnecting', { error: err, inMs: wait });
    this.reconnectTimer = setTimeout(() => this.connect(), wait);
  }

  private fail(err: InboxdError): void {
    this.stopped = true;
    for (const w of this.queued.splice(0)) w.reject(err);
    this.end();
    if (this.listenerCount('error') > 0) this.emit('error', err);
  }

  /**
   * A settle by tag whose stream ended before it was answered (`written`) or sent. A nack is done:
   * the server released the message with the stream (or its lease ends, if the server died). An
   * ack's fate is unknown, or it never went: the message comes again, unless a written ack landed.
   */
  private lost(w: Waiter, written: boolean): void {
    if (w.kind === 'nack') {
      w.resolve();
      return;
    }
    const what = written ? 'was answered' : 'could be sent';
    w.reject(
      new InboxdError(
        Code.UNAVAILABLE,
        `the stream that delivered message ${w.message.id} ended before its ${w.kind} ${what}: the message is delivered again${written && w.kind === 'ack' ? ' unless the ack took effect' : ''}`,
      ),
    );
  }

  private onResponse(stream: Stream, r: SubscribeResponse): void {
    this.failures = 0;
    if (r.ackResults) this.answer('ack', r.ackResults);
    if (r.nackResults) this.answer('nack', r.nackResults);
    if (r.extendResults) this.answer('extend', r.extendResults);
    for (const d of r.deliveries) {
      const m = new ReceivedMessage(d, this.settler, this.replier);
      const h: Held = { extendAt: Number.POSITIVE_INFINITY, stream };
      this.held.set(m, h);
      this.maxHeld = Math.max(this.maxHeld, this.held.size);
      if (this.shuttingDown) {
        // Raced with drain: not ours to handle any more.
        void m.nack(0).catch(() => {});
        continue;
      }
      h.extendAt = this.extendAt(m);
      this.armKeeper(h.extendAt);
      this.dispatch(m);
    }
  }

  private dispatch(m: ReceivedMessage): void {
    if (!this.handler) {
      const take = this.takers.shift();
      if (take) take({ value: m, done: false });
      else this.buffer.push(m);
      return;
    }
    Promise.resolve()
      .then(() => this.handler!(m))
      .then(
        () => (m.settled ? undefined : m.ack()),
        err => {
          this.emit('handlerError', err, m);
          return m.settled ? undefined : m.nack();
        },
      )
      .catch(err => this.emit('settleError', err, m));
  }

  /** When a held message's lease is next extended: at half its length, until maxExtension after receipt (Infinity: not again). */
  private extendAt(m: ReceivedMessage): number {
    const now = Date.now();
    const at = now + Math.max(500, m.leaseExpiresAt.getTime() - now) / 2;
    return at >= m.receivedAt + toMs(this.opts.maxExtension) ? Number.POSITIVE_INFINITY : at;
  }

  /**
   * The lease keeper fires at `at` unless it fires sooner already. Messages arrive in about the
   * order their extensions fall due, so a delivery seldom re-arms it: one timer for all held
   * messages, instead of a timer (and a timer list per distinct delay) for each.
   */
  private armKeeper(at: number): void {
    if (at >= this.keeperAt) return;
    clearTimeout(this.keeperTimer);
    this.keeperAt = at;
    this.keeperTimer = setTimeout(() => this.keepLeases(), Math.max(0, at - Date.now()));
  }

  /** Extends every held message whose time has come (or comes within KEEPER_SLACK_MS), then re-arms for the next. */
  private keepLeases(): void {
    this.keeperTimer = undefined;
    this.keeperAt = Number.POSITIVE_INFINITY;
    const now = Date.now();
    let next = Number.POSITIVE_INFINITY;
    for (const [m, h] of this.held) {
      if (h.extendAt > now + KEEPER_SLACK_MS) {
        next = Math.min(next, h.extendAt);
        continue;
      }
      h.extendAt = Number.POSITIVE_INFINITY;
      // Settled, or its tag's stream ended (which released it): nothing to keep.
      if (m.settled || (m.deliveryTag && h.stream !== this.stream)) continue;
      m.extend().then(
        () => {
          if (this.held.get(m) !== h || m.settled) return;
          h.extendAt = this.extendAt(m);
          this.armKeeper(h.extendAt);
        },
        err => this.emit('extendError', err, m),
      );
    }
    if (next !== Number.POSITIVE_INFINITY) this.armKeeper(next);
  }

  private stopKeeper(): void {
    clearTimeout(this.keeperTimer);
    this.keeperTimer = undefined;
    this.keeperAt = Number.POSITIVE_INFINITY;
  }

  private forget(m: ReceivedMessage): void {
    if (!this.held.delete(m)) return;
    // Nothing left to keep: no timer holds the process open.
    if (this.held.size === 0) this.stopKeeper();
    this.finishIfIdle();
  }

  /**
   * Queues a settle for the next batch. An ack or nack frees a slot of the server's window only
   * once sent: the batch goes at once when it holds half the window (by count, or by bytes when
   * maxOutstandingBytes is set), so batching never holds the stream short of messages.
   */
  private settle(
    kind: Kind,
    message: ReceivedMessage,
    extra: { delayMs?: number; extendMs?: number; deadLetter?: boolean; error?: string } = {},
    bytes = 0,
  ): Promise<Date | undefined> {
    if (this.stopped) return Promise.reject(new InboxdError(Code.FAILED_PRECONDITION, 'subscription is closed'));
    return new Promise((resolve, reject) => {
      const tag = message.deliveryTag;
      const w: Waiter = { kind, message, key: tag || message.leaseToken, ...extra, resolve, reject };
      if (tag) {
        w.stream = this.held.get(message)?.stream;
        if (!w.stream || w.stream !== this.stream) {
          this.lost(w, false);
          return;
        }
      }
      this.queued.push(w);
      if (kind !== 'extend') {
        this.freeing++;
        this.freeingBytes += bytes;
      }
      const { maxOutstandingMessages, maxOutstandingBytes, ackBatching } = this.opts;
      const flushNow =
        this.queued.length >= ackBatching.maxMessages ||
        this.freeing * 2 >= maxOutstandingMessages ||
        (maxOutstandingBytes > 0 && this.freeingBytes * 2 >= maxOutstandingBytes);
      if (flushNow) this.flush();
      else this.scheduleFlush();
    });
  }

  private scheduleFlush(): void {
    if (this.flushTimer) return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined;
      this.flush();
    }, toMs(this.opts.ackBatching.maxDelay));
  }

  /** Writes what is queued on the open stream, one request per kind and delay. */
  private flush(): void {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    const stream = this.stream;
    if (!stream || this.queued.length === 0) return;
    const batch = this.queued.splice(0);
    this.freeing = 0;
    this.freeingBytes = 0;
    const groups = new Map<string, Waiter[]>();
    for (const w of batch) {
      const key = `${w.kind}:${w.delayMs ?? ''}:${w.extendMs ?? ''}:${w.deadLetter ? 1 : 0}:${w.error ?? ''}`;
      (groups.get(key) ?? groups.set(key, []).get(key)!).push(w);
    }
    for (const ws of groups.values()) {
      // Every group holds at least the waiter that made it.
      const { kind, delayMs, extendMs, deadLetter, error } = ws[0]!;
      const tokens: string[] = [];
      const tags: number[] = [];
      for (const w of ws) {
        if (typeof w.key === 'string') tokens.push(w.key);
        else tags.push(w.key);
        (this.sent.get(w.key) ?? this.sent.set(w.key, []).get(w.key)!).push(w);
      }
      stream.write(
        SubscribeRequest.fromPartial(
          kind === 'ack'
            ? { ackLeaseTokens: tokens, ackTags: tags }
            : kind === 'nack'
              ? {
                  nackLeaseTokens: tokens,
                  nackTags: tags,
                  nackDelay: delayMs === undefined ? undefined : toProto(delayMs),
                  nackDeadLetter: deadLetter ?? false,
                  nackError: error ?? '',
                }
              : { extendLeaseTokens: tokens, extendTags: tags, extendVisibilityTimeout: extendMs === undefined ? undefined : toProto(extendMs) },
        ),
      );
    }
  }

  private answer(kind: Kind, results: SettleResults): void {
    const take = (key: string | number) => {
      const list = this.sent.get(key);
      const i = list?.findIndex(w => w.kind === kind) ?? -1;
      if (!list || i < 0) return undefined;
      const [w] = list.splice(i, 1);
      if (list.length === 0) this.sent.delete(key);
      return w;
    };
    const done = (w: Waiter | undefined) => w?.resolve(kind === 'extend' ? this.expiryOf(w) : undefined);
    for (const token of results.succeeded) done(take(token));
    for (const tag of results.succeededTags) done(take(tag));
    for (const f of results.failed) {
      const w = take(f.deliveryTag || f.leaseToken);
      if (!w) continue;
      // A nack resent after its stream died may have landed the first time (or the server
      // released the lease with the stream): either way the message is back in the queue.
      if (w.kind === 'nack' && w.resent && f.code === Code.FAILED_PRECONDITION) w.resolve();
      else w.reject(new InboxdError(f.code, f.message));
    }
    // A closing subscriber may have waited only for these answers (an extension has no forget()).
    this.finishIfIdle();
  }

  private expiryOf(w: Waiter): Date {
    // The server answers an extension with the token (or tag) only; the new lease ends `extendMs`
    // on, or one lease length (as delivered: not leaseExpiresAt - receivedAt, which grows with each extension).
    return new Date(Date.now() + (w.extendMs ?? w.message.leaseMs));
  }

  /** Messages as an async iterator (when subscribed without a handler). Ack or nack each one. */
  [Symbol.asyncIterator](): AsyncIterator<ReceivedMessage> {
    return {
      next: () => {
        const m = this.buffer.shift();
        if (m) return Promise.resolve({ value: m, done: false });
        if (this.shuttingDown || this.stopped) return Promise.resolve({ value: undefined, done: true });
        return new Promise(resolve => this.takers.push(resolve));
      },
      return: async () => {
        await this.close();
        return { value: undefined, done: true };
      },
    };
  }

  /**
   * Stops receiving. 'drain' waits for running handlers (and their acks); 'nack' returns held
   * messages to the queue at once. Either way, at most `timeout` later the stream ends, and the
   * server releases whatever is still leased to it.
   */
  close(options: CloseOptions = {}): Promise<void> {
    // Set before the work below starts: it runs synchronously up to its first await, before
    // `closing` is assigned, and checks (finishIfIdle) must already see it.
    this.shuttingDown = true;
    this.closing ??= (async () => {
      const behavior = options.behavior ?? 'drain';
      const timeoutMs = toMs(options.timeout ?? '30s');
      this.stream?.write(SubscribeRequest.fromPartial({ drain: true }));
      for (const take of this.takers.splice(0)) take({ value: undefined, done: true });
      // Buffered messages no iterator took are returned at once, whatever the behavior.
      for (const m of this.buffer.splice(0)) void m.nack(0).catch(() => {});
      if (behavior === 'nack') for (const message of this.held.keys()) void message.nack(0).catch(() => {});
      this.flush();
      await new Promise<void>(resolve => {
        const t = setTimeout(done, timeoutMs);
        function done() {
          clearTimeout(t);
          resolve();
        }
        this.idle.add(done);
        this.finishIfIdle();
      });
      this.stopped = true;
      this.end();
      for (const w of this.queued.splice(0)) w.reject(new InboxdError(Code.CANCELLED, 'subscription closed before the server answered'));
    })();
    return this.closing;
  }

  private finishIfIdle(): void {
    if (!this.shuttingDown || this.held.size > 0 || this.sent.size > 0 || this.queued.length > 0) return;
    for (const fn of [...this.idle]) fn();
    this.idle.clear();
  }

  private end(): void {
    this.stopKeeper();
    clearTimeout(this.flushTimer);
    clearTimeout(this.reconnectTimer);
    const s = this.stream;
    this.stream = undefined;
    if (s) {
      s.end();
      s.cancel();
    }
    this.releaseChannel();
  }
}
