import { type Clock, type PgBoss, systemClock } from 'pg-boss';
import { type ErrorKind, InboxdError, isQueueNotFound } from '../errors.js';
import { type LeasedDelivery, type LeasedJob, type OutgoingMessage, type StoredMessage, toDelivery } from './codec.js';
import type { Database } from './database.js';
import type { HandOff } from './dispatcher.js';
import type { CoreEventMap, CoreEvents } from './events.js';
import { type LeaseRef, type LeaseTokens, TOKEN_FAULT_TEXT } from './lease-token.js';
import * as sql from './sql.js';

/**
 * What a settle names: a lease token as a client gave it (checked here), or the attempt itself, as
 * a Subscribe stream knows it from the delivery tag it gave (a stream holds only its own).
 */
export type SettleItem = string | LeaseRef;

/** What became of one lease token (or attempt; `token` then '') in a settle call. */
export type TokenOutcome =
  | { token: string; ok: true; queue: string; expiresAt?: Date; deadLettered?: boolean }
  | { token: string; ok: false; kind: ErrorKind; message: string };

export interface InsertResult {
  id: string;
  duplicate: boolean;
}

const STALE = 'lease is stale: it expired and the message was released or redelivered, or it was already settled';

/**
 * Messages over pg-boss: insert, lease, ack, nack, extend. Every call here is a batch; the
 * callers (send batcher, handlers, dispatcher, sweeper) decide how big.
 */
export class MessageStore {
  constructor(
    private readonly boss: PgBoss,
    private readonly db: Database,
    private readonly schema: string,
    private readonly channel: string,
    private readonly tokens: LeaseTokens,
    private readonly events: CoreEvents,
    private readonly clock: Clock = systemClock,
    /** Whether a queue keeps no acked history (acked_retention 0): its acks delete. */
    private readonly deletesOnAck: (queue: string) => Promise<boolean> = async () => false,
  ) {}

  private exec(q: sql.Sql) {
    return this.db.exec(q);
  }

  /**
   * One insert for a batch of messages to one queue. Ids already present come back duplicate.
   * With `offer` (the dispatcher's, for subscribers waiting on this replica): those of the
   * messages due now that it takes, highest priority first, are stored leased and dealt out to it
   * (Dispatcher.offer), without a fetch.
   */
  async insert(queue: string, messages: OutgoingMessage[], offer?: (sizes: number[]) => HandOff | undefined): Promise<InsertResult[]> {
    const seen = new Set<string>();
    const unique = messages.filter(m => (seen.has(m.id) ? false : (seen.add(m.id), true)));
    const startedBy = this.clock.now();
    // In the order a lease would pick them: priority, then as sent (a stable sort).
    const due = offer ? unique.filter(m => !m.deliverAt || m.deliverAt.getTime() <= startedBy).sort((x, y) => y.priority - x.priority) : [];
    const handOff = due.length > 0 ? offer?.(due.map(m => m.data.n)) : undefined;
    const lease = handOff && { ids: new Set(due.slice(0, handOff.count).map(m => m.id)), seconds: handOff.leaseSec };
    let rows: Record<string, unknown>[];
    try {
      ({ rows } = await this.exec(sql.insertMessages(this.schema, queue, unique, lease)));
    } catch (err) {
      handOff?.deliver([]);
      throw err;
    }
    if (handOff) {
      // Stored durably and leased before any delivery leaves, as a lease's are (see lease()).
      const leased = new Set(rows.filter(r => r.leased).map(r => r.id as string));
      const expiresAt = new Date(startedBy + handOff.leaseSec * 1000);
      const deliveries = due
        .filter(m => leased.has(m.id))
        .map(m =>
          toDelivery({ id: m.id, name: queue, data: m.data, retryCount: 0 }, expiresAt, { queue, id: m.id, retryCount: 0, principal: handOff.principal }),
        );
      if (deliveries.length > 0) this.events.emit('leased', { queue, count: deliveries.length });
      handOff.deliver(deliveries);
    }
    const inserted = new Set(rows.map(r => r.id as string));
    // The first occurrence of an id in the batch is the one stored; any repeat is a duplicate.
    const claimed = new Set<string>();
    return messages.map(m => {
      const fresh = inserted.has(m.id) && !claimed.has(m.id);
      claimed.add(m.id);
      return { id: m.id, duplicate: !fresh };
    });
  }

  /**
   * Leases up to `max` messages for `leaseSec` seconds. With `budgetBytes`, only as many as fit in
   * that many bytes (at least one) stay leased; the rest are put back as never fetched, and
   * `out.overBudget` says so.
   */
  async lease(queue: string, max: number, leaseSec: number, principal: string, budgetBytes?: number, out?: { overBudget: boolean }): Promise<LeasedDelivery[]> {
    // Taken before the statement starts the leases, so the lease end reported is never later than the real one.
    const startedBy = this.clock.now();
    // One statement (migrations/003-lease.ts): picked, sized to the budget, leased for leaseSec.
    // It commits durably (Database forces synchronous_commit on) before any delivery leaves: a
    // lease lost to a crash would come back as the same attempt under the same token, and that
    // token would then settle the next holder's delivery. Durable, each delivery counts as an
    // attempt and its token names it alone.
    const { rows } = await this.exec(sql.lease(this.schema, queue, max, leaseSec, budgetBytes ?? Number.MAX_SAFE_INTEGER));
    if (rows.length === 0) return [];
    if (out && rows[0]!.more) out.overBudget = true;
    const jobs: LeasedJob[] = rows.map(r => ({ id: r.id as string, name: queue, data: r.data as StoredMessage, retryCount: r.retry_count as number }));
    // Picked by priority and age, but UPDATE … RETURNING hands rows back in no set order: deliver
    // them in the order they were picked.
    jobs.sort((x, y) => (y.data.pr ?? 0) - (x.data.pr ?? 0) || x.data.at - y.data.at);
    const expiresAt = new Date(startedBy + leaseSec * 1000);
    this.events.emit('leased', { queue, count: jobs.length });
    return jobs.map(j => toDelivery(j, expiresAt, { queue, id: j.id, retryCount: j.retryCount, principal }));
  }

  /** A signed lease token for a leased delivery (see LeaseTokens). */
  issue(ref: LeaseRef): string {
    return this.tokens.encode(ref);
  }

  /**
   * Settles are made `as` a principal: a token leased by another is refused (PERMISSION_DENIED), one
   * not issued by this server (forged, altered) is refused (INVALID_ARGUMENT), and neither changes
   * anything. `as` null: the server itself (releasing a closed stream's leases).
   */
  async ack(tokens: SettleItem[], as: string | null): Promise<TokenOutcome[]> {
    const outcomes = await this.settle(tokens, as, async (queue, refs) => {
      const deletes = await this.deletesOnAck(queue);
      const done = await this.acked(queue, refs, deletes);
      const missing = refs.filter(r => !done.has(r.id));
      // An ack repeated (a client retry after a lost response, here or on another replica) finds
      // its attempt already acked: success, not a stale lease. Kept as a completed message; or,
      // deleted (acked_retention 0), gone: then the ack's record, written for an attempt after the
      // first, tells a stale token (another attempt was acked) from the repeat. Records are looked
      // at whatever the queue's setting now, which an update may have changed since the first ack.
      const repeated = missing.length === 0 ? new Set<string>() : await this.repeatedAcks(queue, missing, deletes);
      return new Map(refs.map(r => [r.id, done.has(r.id) || repeated.has(r.id) ? {} : undefined]));
    });
    const acked = outcomes.filter(o => o.ok);
    for (const o of acked) this.tokens.forget(o.token);
    this.settled(acked, 'acked');
    return outcomes;
  }

  /**
   * Returns leased messages to the queue after `delayMs` (undefined: the queue's retry delay and
   * backoff, as for an expired lease); those on their last attempt, or all with `deadLetter`, are
   * dead-lettered through pg-boss's fail(). `reason`: set by the server for its own releases (a
   * stream closing); a client's nack leaves it unset and may give `error`, kept as last_error.
   */
  async nack(
    tokens: SettleItem[],
    delayMs: number | undefined,
    as: string | null,
    reason?: string,
    opts: { deadLetter?: boolean; error?: string } = {},
  ): Promise<TokenOutcome[]> {
    const text = opts.error || reason || 'nacked';
    const outcomes = await this.settle(tokens, as, async (queue, refs) => {
      const pairs = sql.fencePairs(refs);
      if (opts.deadLetter) await this.exec(sql.lastAttempt(this.schema, queue, pairs));
      const { rows } = opts.deadLetter
        ? { rows: [] as Record<string, unknown>[] }
        : await this.exec(sql.requeue(this.schema, queue, pairs, delayMs ?? null, text));
      const requeued = new Set(rows.map(r => r.id as string));
      const due = Math.min(...rows.map(r => Number(r.dueInMs)));
      const last = refs.filter(r => !requeued.has(r.id));
      let dead = new Set<string>();
      if (last.length > 0) {
        const res = (await this.boss.fail(queue, last, { message: text, nacked: true })) as { settled?: string[] };
        dead = new Set(res.settled ?? []);
      }
      // Every replica (this one too) wakes its waiters now, or arms a wake-up for when the first is due.
      if (requeued.size > 0) await this.wake(queue, due);
      // A nack repeated (a client retry after a lost answer) finds the attempt it returned already
      // nacked: that is success, as for a repeated ack, not a stale lease.
      const repeated = await this.nackedAt(
        queue,
        refs.filter(r => !requeued.has(r.id) && !dead.has(r.id)),
      );
      return new Map(refs.map(r => [r.id, requeued.has(r.id) ? {} : dead.has(r.id) ? { deadLettered: true } : repeated.get(r.id)]));
    });
    const ok = outcomes.filter(o => o.ok);
    for (const o of ok) this.tokens.forget(o.token);
    // A nack is the client's (reason unset); the server's own (a stream closing, a subscriber gone) is a release.
    this.settled(
      ok.filter(o => !o.deadLettered),
      reason === undefined ? 'nacked' : 'released',
    );
    this.settled(
      ok.filter(o => o.deadLettered),
      'dead_lettered',
    );
    return outcomes;
  }

  /** Fails leases whose time ran out, through pg-boss so the queue's retry policy applies. */
  async expire(queue: string, refs: { id: string; retryCount: number }[]): Promise<number> {
    const res = (await this.boss.fail(queue, refs, { message: 'lease expired' })) as { settled?: string[] };
    const done = res.settled ?? [];
    if (done.length > 0) {
      // pg-boss dead-letters (state failed) a job whose attempts ran out; the others went back to the queue.
      const { rows } = await this.exec(sql.jobStates(this.schema, queue, done));
      this.events.emit('expired', { queue, count: done.length, deadLettered: rows.filter(r => r.state === 'failed').length });
    }
    return done.length;
  }

  /** Emits `settled` per queue for successful outcomes (the queue is in each token). */
  private settled(outcomes: TokenOutcome[], outcome: CoreEventMap['settled']['outcome']): void {
    this.events.emitByQueue(
      'settled',
      outcomes,
      o => (o.ok ? o.queue : undefined),
      (queue, count) => ({ queue, count, outcome }),
    );
  }

  /**
   * Of `queues`, those holding waiting messages (with `futureOnly`, messages not yet due), with
   * when the earliest is due, in ms from now (≤ 0: now).
   */
  async queuesDue(queues: string[], futureOnly = false): Promise<Map<string, number>> {
    const { rows } = await this.exec(sql.queuesDue(this.schema, queues, futureOnly));
    return new Map(rows.map(r => [r.name as string, Number(r.dueInMs)]));
  }

  /** Ends up to `limit` waiting messages past their expires_at; returns how many. */
  async expireQueued(limit: number): Promise<number> {
    const { rows } = await this.exec(sql.expireQueued(this.schema, limit));
    return Number(rows[0]?.expired ?? 0);
  }

  /** Forgets up to `limit` dedup keys whose window passed; returns how many. */
  async dropExpiredDedupKeys(limit: number): Promise<number> {
    const res = await this.exec(sql.dropExpiredDedupKeys(this.schema, limit));
    return (res as { rowCount?: number }).rowCount ?? 0;
  }

  async expiredLeases(limit: number): Promise<{ name: string; id: string; retryCount: number }[]> {
    const { rows } = await this.exec(sql.expiredLeases(this.schema, limit));
    return rows as { name: string; id: string; retryCount: number }[];
  }

  async extend(tokens: SettleItem[], leaseSec: number, as: string | null): Promise<TokenOutcome[]> {
    return this.settle(tokens, as, async (queue, refs) => {
      const { rows } = await this.exec(sql.extendLeases(this.schema, queue, sql.fencePairs(refs), leaseSec));
      const moved = new Map(rows.map(r => [r.id as string, new Date(r.expiresAt as string | Date)]));
      return new Map(refs.map(r => [r.id, moved.has(r.id) ? { expiresAt: moved.get(r.id) } : undefined]));
    });
  }

  /** Wakes `queue`'s waiters on every replica: now, or in `dueInMs`. */
  async wake(queue: string, dueInMs?: number): Promise<void> {
    await this.exec(sql.notify(this.channel, queue, dueInMs));
  }

  /** Of `refs`, the attempts a nack already settled: returned to the queue ({}) or dead-lettered. */
  private async nackedAt(queue: string, refs: LeaseRef[]): Promise<Map<string, { deadLettered?: boolean }>> {
    const out = new Map<string, { deadLettered?: boolean }>();
    for (const { row: r, attempt } of await this.statesOf(queue, refs)) {
      if (r.nackedAt === attempt) out.set(r.id as string, {});
      else if (r.state === 'failed' && r.nackedToFail && r.retryCount === attempt) out.set(r.id as string, { deadLettered: true });
    }
    return out;
  }

  /** Settles fenced leases as acked (completed, or deleted on a queue that keeps no acked history); the ids it settled. */
  private async acked(queue: string, refs: LeaseRef[], deletes: boolean): Promise<Set<string>> {
    if (deletes) return new Set((await this.exec(sql.deleteAcked(this.schema, queue, sql.fencePairs(refs)))).rows.map(r => r.id as string));
    const res = (await this.boss.complete(
      queue,
      refs.map(r => ({ id: r.id, retryCount: r.retryCount })),
    )) as { settled?: string[] };
    return new Set(res.settled ?? []);
  }

  /**
   * Of `refs` (tokens whose ack settled nothing), those repeating an ack that succeeded: their
   * attempt is completed, or an ack deleted it, by the record it left (migrations/007-ack-records.ts).
   * A message gone with no record of another attempt, on a queue whose acks delete (`deletes`),
   * counts as acked too: acked at its first delivery (no record needed: no other attempt had a
   * token), or gone another way (purged, expired, dropped) or longer ago than records are kept,
   * when there is nothing left to settle (SQS's DeleteMessage of a deleted message succeeds). On a
   * queue keeping history, a message gone without a record is stale, as before.
   */
  private async repeatedAcks(queue: string, refs: LeaseRef[], deletes: boolean): Promise<Set<string>> {
    const states = await this.statesOf(queue, refs);
    const out = new Set(states.filter(({ row, attempt }) => row.state === 'completed' && row.retryCount === attempt).map(({ row }) => row.id as string));
    const present = new Set(states.map(({ row }) => row.id as string));
    const gone = refs.filter(r => !present.has(r.id));
    if (gone.length === 0) return out;
    const { rows } = await this.exec(
      sql.ackRecords(
        this.schema,
        queue,
        gone.map(r => r.id),
      ),
    );
    const recorded = new Map(rows.map(r => [r.id as string, r.retryCount as number]));
    for (const r of gone) {
      const at = recorded.get(r.id);
      if (at === r.retryCount || (at === undefined && deletes)) out.add(r.id);
    }
    return out;
  }

  /** Forgets up to `limit` ack records whose window passed; returns how many. */
  async dropAckRecords(limit: number): Promise<number> {
    const res = await this.exec(sql.dropAckRecords(this.schema, limit));
    return (res as { rowCount?: number }).rowCount ?? 0;
  }

  /** The state of each message `refs` name now, beside the attempt its token named. */
  private async statesOf(queue: string, refs: LeaseRef[]): Promise<{ row: Record<string, unknown>; attempt: number | undefined }[]> {
    if (refs.length === 0) return [];
    const { rows } = await this.exec(
      sql.jobStates(
        this.schema,
        queue,
        refs.map(r => r.id),
      ),
    );
    const want = new Map(refs.map(r => [r.id, r.retryCount]));
    return rows.map(row => ({ row, attempt: want.get(row.id as string) }));
  }

  /** For the requests `refs` name (one queue each): the reply_to each asked for and who sent it, by id. */
  async replyRequests(refs: LeaseRef[]): Promise<Map<string, { replyTo: string | null; sender: string }>> {
    const out = new Map<string, { replyTo: string | null; sender: string }>();
    const byQueue = new Map<string, string[]>();
    for (const r of refs) byQueue.set(r.queue, [...(byQueue.get(r.queue) ?? []), r.id]);
    for (const [queue, ids] of byQueue) {
      for (const row of (await this.exec(sql.replyRequests(this.schema, queue, ids))).rows)
        out.set(row.id as string, { replyTo: row.replyTo as string | null, sender: row.sender as string });
    }
    return out;
  }

  /**
   * The attempts `tokens` name, each checked as settle() does for `as`: throws for the first that
   * is refused, so a call with one bad token does nothing for the others either.
   */
  verifyTokens(tokens: string[], as: string | null): LeaseRef[] {
    return tokens.map(t => {
      const ref = this.tokens.verify(t, as);
      if (typeof ref !== 'string') return ref;
      throw new InboxdError(ref === 'foreign' ? 'permission_denied' : 'invalid', `${TOKEN_FAULT_TEXT[ref]} (${JSON.stringify(String(t).slice(0, 60))})`);
    });
  }

  /**
   * Decodes tokens, groups them by queue, runs `op` once per queue, and answers per token:
   * malformed ones INVALID_ARGUMENT, those `op` reports undefined for FAILED_PRECONDITION.
   * Attempts given as such (a stream's tags) are its own: nothing to check.
   */
  private async settle(
    tokens: SettleItem[],
    as: string | null,
    op: (queue: string, refs: LeaseRef[]) => Promise<Map<string, { expiresAt?: Date; deadLettered?: boolean } | undefined>>,
  ): Promise<TokenOutcome[]> {
    // `op` answers per message id, so each call must name a message once: tokens of several attempts
    // of one message (a stale one next to the current one) go to successive rounds, else the stale
    // token would share the current one's success.
    const attempt = (r: LeaseRef) => `${r.queue}\n${r.id}\n${r.retryCount}`;
    const rounds: { ids: Set<string>; byQueue: Map<string, LeaseRef[]> }[] = [];
    const decoded = tokens.map(t => (typeof t === 'string' ? this.tokens.verify(t, as) : t));
    const seen = new Set<string>();
    decoded.forEach(ref => {
      if (typeof ref === 'string' || seen.has(attempt(ref))) return;
      seen.add(attempt(ref));
      const msg = `${ref.queue}\n${ref.id}`;
      let round = rounds.find(r => !r.ids.has(msg));
      if (!round) rounds.push((round = { ids: new Set(), byQueue: new Map() }));
      round.ids.add(msg);
      const list = round.byQueue.get(ref.queue) ?? [];
      list.push(ref);
      round.byQueue.set(ref.queue, list);
    });
    const results = new Map<string, { expiresAt?: Date; deadLettered?: boolean } | undefined>();
    for (const round of rounds) {
      await Promise.all(
        [...round.byQueue].map(async ([queue, refs]) => {
          // A deleted queue took its messages with it: its tokens are stale, like any other gone lease.
          const res = await op(queue, refs).catch(err => {
            if (isQueueNotFound(err)) return new Map<string, undefined>();
            throw err;
          });
          for (const r of refs) results.set(attempt(r), res.get(r.id));
        }),
      );
    }
    return tokens.map((item, i): TokenOutcome => {
      const token = typeof item === 'string' ? item : '';
      const ref = decoded[i]!;
      if (typeof ref === 'string') return { token, ok: false, kind: ref === 'foreign' ? 'permission_denied' : 'invalid', message: TOKEN_FAULT_TEXT[ref] };
      const r = results.get(attempt(ref));
      return r ? { token, ok: true, queue: ref.queue, ...r } : { token, ok: false, kind: 'failed_precondition', message: STALE };
    });
  }
}
