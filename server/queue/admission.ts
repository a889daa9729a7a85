import { InboxdError } from '../errors.js';
import type { OutgoingMessage } from './codec.js';
import type { Database } from './database.js';
import type { InsertResult } from './message-store.js';
import type { ResolvedQueueConfig } from './queue-config.js';
import * as sql from './sql.js';

/** What became of each message of an admitted batch, and what to wake. */
export interface Admitted {
  results: InsertResult[];
  /** Messages newly stored (for wake-ups). */
  stored: OutgoingMessage[];
}

/** The dedup key of a message in a queue: its dedup_key, else (content_dedup) its payload hash. */
export function dedupKeyOf(m: OutgoingMessage, config: ResolvedQueueConfig): string | undefined {
  if (m.data.dk) return `k:${m.data.dk}`;
  if (config.contentDedup) return `h:${m.data.hash}`;
  return undefined;
}

/** Whether a batch to this queue needs admission (a transaction) rather than a plain group insert. */
export function needsAdmission(messages: OutgoingMessage[], config: ResolvedQueueConfig): boolean {
  return config.maxDepth > 0 || config.contentDedup || messages.some(m => m.data.dk !== undefined);
}

/**
 * Sends to queues with rules a plain insert cannot keep: dedup keys (a key seen in the queue's
 * dedup window answers `duplicate` with the first message's id) and bounded depth (max_depth with
 * an overflow policy). One transaction per batch: the key claims, the depth check and the insert
 * commit together, and an advisory lock per bounded queue orders its senders on every replica,
 * so concurrent senders can never take a queue past max_depth.
 */
export class Admission {
  constructor(
    private readonly db: Database,
    private readonly schema: string,
  ) {}

  send(queue: string, messages: OutgoingMessage[], config: ResolvedQueueConfig): Promise<Admitted> {
    return this.db.transaction(async tx => {
      const q = (s: sql.Sql) => tx.exec(s);
      if (config.maxDepth > 0) await q(sql.lockQueueDepth(queue));

      // 1. Dedup: the first message with a key in this batch claims it; later ones in the batch,
      //    and any whose key is held in the window, are duplicates of the holder.
      const keyOf = messages.map(m => dedupKeyOf(m, config));
      const firstWithKey = new Map<string, number>();
      for (const [i, k] of keyOf.entries()) if (k !== undefined && !firstWithKey.has(k)) firstWithKey.set(k, i);
      const holder = new Map<string, string>(); // key -> id holding it, for keys not claimed here
      if (firstWithKey.size > 0) {
        const keys = [...firstWithKey.keys()].sort();
        const ids = keys.map(k => messages[firstWithKey.get(k)!]!.id);
        const claimed = new Set((await q(sql.claimDedupKeys(this.schema, queue, keys, ids, config.dedupWindowSec))).rows.map(r => r.key as string));
        const held = keys.filter(k => !claimed.has(k));
        if (held.length > 0) for (const r of (await q(sql.dedupHolders(this.schema, queue, held))).rows) holder.set(r.key, r.id);
      }
      const dupOf = messages.map((_m, i) => {
        const k = keyOf[i];
        if (k === undefined) return undefined;
        if (holder.has(k)) return holder.get(k);
        const first = firstWithKey.get(k)!;
        return first === i ? undefined : messages[first]!.id;
      });
      let accepted = messages.filter((_, i) => dupOf[i] === undefined);

      // 2. Depth: what fits, by the overflow policy.
      let droppedNew = new Set<OutgoingMessage>();
      let dropped = 0;
      if (config.maxDepth > 0 && accepted.length > 0) {
        const depth = (await q(sql.queueDepth(this.schema, queue))).rows[0].depth as number;
        const free = Math.max(0, config.maxDepth - depth);
        if (accepted.length > free) {
          if (config.overflow === 'reject') {
            throw new InboxdError(
              'resource_exhausted',
              `queue ${queue} is full: max_depth ${config.maxDepth}, ${depth} waiting, ${accepted.length} more do not fit (overflow policy REJECT; nothing was stored)`,
            );
          }
          if (config.overflow === 'drop_newest') {
            droppedNew = new Set(accepted.slice(free));
          } else {
            // drop_oldest: the newest max_depth messages of (waiting + this batch) stay.
            const overBatch = Math.max(0, accepted.length - config.maxDepth);
            droppedNew = new Set(accepted.slice(0, overBatch));
            const need = accepted.length - overBatch - free;
            if (need > 0) dropped += (await q(sql.dropOldest(this.schema, queue, need))).rows[0].dropped as number;
          }
          accepted = accepted.filter(m => !droppedNew.has(m));
          dropped += droppedNew.size;
          const released = messages.map((m, i) => (droppedNew.has(m) ? keyOf[i] : undefined)).filter((k): k is string => k !== undefined);
          if (released.length > 0) await q(sql.releaseDedupKeys(this.schema, queue, released));
        }
      }
      if (dropped > 0) await q(sql.countDropped(this.schema, queue, dropped));

      // 3. Insert what stays, in this transaction.
      const unique = [...new Map(accepted.map(m => [m.id, m])).values()];
      const inserted = new Set(unique.length === 0 ? [] : (await q(sql.insertMessages(this.schema, queue, unique))).rows.map(r => r.id as string));
      const answered = new Set<string>(); // an id repeated in the batch is stored once: the first
      return {
        results: messages.map((m, i) => {
          if (dupOf[i] !== undefined) return { id: dupOf[i]!, duplicate: true };
          if (droppedNew.has(m)) return { id: m.id, duplicate: false };
          const fresh = inserted.has(m.id) && !answered.has(m.id);
          answered.add(m.id);
          return { id: m.id, duplicate: !fresh };
        }),
        stored: unique.filter(m => inserted.has(m.id)),
      };
    });
  }
}
