/**
 * The ledger of one scenario: every send (by message id) and its outcome, every delivery (id,
 * attempt, lease token, time, which consumer), every ack and its outcome. The counts the suite
 * reports are computed from it alone, after the run, so they do not depend on the order in
 * which callbacks happened to run.
 */

export interface Delivery {
  id: string;
  attempt: number;
  /** '' for a delivery named by tag (subscriber option deliveryTags): the (id, attempt) check alone then applies. */
  token: string;
  /** When the consumer received it (ms since epoch). */
  at: number;
  consumer: string;
}

interface IdRecord {
  queue?: string;
  /** When Send acknowledged it; undefined: not (yet) acknowledged. */
  sentOkAt?: number;
  sendFailed?: string;
  deliveries: Delivery[];
  /** When the first ack of it was confirmed OK. */
  ackedAt?: number;
}

export interface Counts {
  /** Messages handed to the SDK to send. */
  sent: number;
  sends_ok: number;
  sends_failed: number;
  /** Sends with no outcome by the end (neither resolved nor rejected). */
  sends_unresolved: number;
  sends_failed_by_code: Record<string, number>;
  /** Acknowledged by Send, never delivered. */
  lost: number;
  /** Deliveries beyond the first of each id. */
  duplicates: number;
  /** Deliveries received after an ack of the same id had been confirmed OK. */
  redelivered_after_ack: number;
  /** Deliveries whose lease token was seen before, or that repeat an (id, attempt) seen before. */
  tokens_reissued: number;
  deliveries: number;
  acks_ok: number;
  acks_failed: number;
  acks_failed_by_code: Record<string, number>;
  /** Acknowledged ids delivered but never acked OK by the end (still leased, or their acks failed). */
  unacked_at_end: number;
  /** Deliveries of ids whose send failed or never resolved (stored after all: a retry's first attempt had landed). */
  delivered_despite_failed_send: number;
  /** Up to 5 examples of each violation, for the report. */
  examples: { lost: string[]; redelivered_after_ack: string[]; tokens_reissued: string[] };
}

export class Ledger {
  private readonly ids = new Map<string, IdRecord>();
  private sentCount = 0;
  private failedByCode: Record<string, number> = {};
  private ackOk = 0;
  private ackFailedByCode: Record<string, number> = {};
  /** Times (in order of arrival) of acknowledged sends and of deliveries: for recovery times. */
  readonly sendOkTimes: number[] = [];
  readonly deliveryTimes: number[] = [];
  private allDeliveries = 0;

  private rec(id: string): IdRecord {
    let r = this.ids.get(id);
    if (!r) this.ids.set(id, (r = { deliveries: [] }));
    return r;
  }

  /** A send was handed to the SDK. */
  sending(id: string, queue: string): void {
    this.sentCount++;
    this.rec(id).queue = queue;
  }

  /** Up to `n` acknowledged ids never delivered, with their queues. */
  lostIds(n: number): { id: string; queue: string }[] {
    const out: { id: string; queue: string }[] = [];
    for (const [id, r] of this.ids) {
      if (out.length >= n) break;
      if (r.sentOkAt !== undefined && r.deliveries.length === 0) out.push({ id, queue: r.queue ?? '' });
    }
    return out;
  }

  /** Deliveries and ack outcomes so far: what a drain watches for progress. */
  get events(): number {
    let acks = this.ackOk;
    for (const n of Object.values(this.ackFailedByCode)) acks += n;
    return this.allDeliveries + acks;
  }

  sendOk(id: string, at = Date.now()): void {
    const r = this.rec(id);
    if (r.sentOkAt === undefined) r.sentOkAt = at;
    this.sendOkTimes.push(at);
  }

  sendFailed(id: string, code: string): void {
    const r = this.rec(id);
    r.sendFailed = code;
    this.failedByCode[code] = (this.failedByCode[code] ?? 0) + 1;
  }

  delivered(d: Delivery): void {
    this.rec(d.id).deliveries.push(d);
    this.deliveryTimes.push(d.at);
    this.allDeliveries++;
  }

  acked(id: string, ok: boolean, code = '', at = Date.now()): void {
    const r = this.rec(id);
    if (ok) {
      this.ackOk++;
      if (r.ackedAt === undefined || at < r.ackedAt) r.ackedAt = at;
    } else {
      this.ackFailedByCode[code] = (this.ackFailedByCode[code] ?? 0) + 1;
    }
  }

  get deliveries(): number {
    return this.allDeliveries;
  }

  /** Acknowledged sends not yet acked OK (what a drain waits for). */
  outstanding(): number {
    let n = 0;
    for (const r of this.ids.values()) if (r.sentOkAt !== undefined && r.ackedAt === undefined) n++;
    return n;
  }

  /** Acknowledged sends never delivered so far. */
  undelivered(ids?: Iterable<string>): number {
    let n = 0;
    for (const id of ids ?? this.ids.keys()) {
      const r = this.ids.get(id);
      if (r && r.sentOkAt !== undefined && r.deliveries.length === 0) n++;
    }
    return n;
  }

  /** Ms from `t` to the first acknowledged send and to the first delivery at or after it (before `until`); undefined: none. */
  recoveryAfter(t: number, until = Infinity): { sendMs?: number; deliveryMs?: number } {
    const first = (times: number[]) => {
      let best = Infinity;
      for (const x of times) if (x >= t && x < until && x < best) best = x;
      return best === Infinity ? undefined : best - t;
    };
    return { sendMs: first(this.sendOkTimes), deliveryMs: first(this.deliveryTimes) };
  }

  counts(): Counts {
    const c: Counts = {
      sent: this.sentCount,
      sends_ok: 0,
      sends_failed: 0,
      sends_unresolved: 0,
      sends_failed_by_code: { ...this.failedByCode },
      lost: 0,
      duplicates: 0,
      redelivered_after_ack: 0,
      tokens_reissued: 0,
      deliveries: this.allDeliveries,
      acks_ok: this.ackOk,
      acks_failed: Object.values(this.ackFailedByCode).reduce((a, b) => a + b, 0),
      acks_failed_by_code: { ...this.ackFailedByCode },
      unacked_at_end: 0,
      delivered_despite_failed_send: 0,
      examples: { lost: [], redelivered_after_ack: [], tokens_reissued: [] },
    };
    const ex = (list: string[], s: string) => list.length < 5 && list.push(s);
    const tokens = new Map<string, Delivery>();
    for (const [id, r] of this.ids) {
      if (r.sentOkAt !== undefined) c.sends_ok++;
      else if (r.sendFailed !== undefined) c.sends_failed++;
      if (r.sentOkAt !== undefined && r.deliveries.length === 0) {
        c.lost++;
        ex(c.examples.lost, id);
      }
      if (r.sentOkAt === undefined && r.deliveries.length > 0) c.delivered_despite_failed_send++;
      if (r.sentOkAt !== undefined && r.deliveries.length > 0 && r.ackedAt === undefined) c.unacked_at_end++;
      c.duplicates += Math.max(0, r.deliveries.length - 1);
      const attempts = new Map<number, Delivery>();
      for (const d of r.deliveries) {
        if (r.ackedAt !== undefined && d.at > r.ackedAt) {
          c.redelivered_after_ack++;
          ex(c.examples.redelivered_after_ack, `${id} attempt ${d.attempt} to ${d.consumer} ${d.at - r.ackedAt} ms after an ack was confirmed`);
        }
        const sameToken = d.token ? tokens.get(d.token) : undefined;
        const sameAttempt = attempts.get(d.attempt);
        if (sameToken || sameAttempt) {
          c.tokens_reissued++;
          const prev = (sameToken ?? sameAttempt)!;
          ex(
            c.examples.tokens_reissued,
            `${id} attempt ${d.attempt}${sameToken ? ' same token' : ''}: to ${prev.consumer}, then ${d.at - prev.at} ms later to ${d.consumer}`,
          );
        }
        if (d.token) tokens.set(d.token, d);
        attempts.set(d.attempt, d);
      }
    }
    c.sends_unresolved = Math.max(0, this.sentCount - c.sends_ok - c.sends_failed);
    return c;
  }
}
