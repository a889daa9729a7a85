import type { Delivery } from '@inboxd/proto/v1/message';
import { LRUCache } from 'lru-cache';

/** How long a Lease's answer is kept for its repeats, at most (else as long as its leases last). */
const MAX_KEEP_MS = 5 * 60_000;
/** Payload bytes kept for repeats across all requests of this replica; the oldest go first. */
const MAX_BYTES = 64 << 20;

interface Entry {
  deliveries: Promise<Delivery[]>;
  bytes: number;
}

/**
 * Answers of Lease calls that carried a request_id, so that a repeat (a client retry after a lost
 * answer) gets the deliveries the first call leased instead of leasing more, which would sit
 * leased to nobody until their visibility timeout: what SQS's ReceiveRequestAttemptId does. A
 * repeat that arrives while the first call still runs (a client deadline shorter than the long
 * poll) joins it. Kept per replica, in memory, while the leases last; a repeat that reaches
 * another replica, or a restarted one, leases afresh (at-least-once holds either way).
 */
export class LeaseReplays {
  private readonly entries = new LRUCache<string, Entry>({ maxSize: MAX_BYTES, sizeCalculation: e => Math.max(1, e.bytes), ttl: MAX_KEEP_MS });

  /** `key` undefined: no request id, `lease` runs as it is. */
  async lease(key: string | undefined, lease: () => Promise<Delivery[]>): Promise<Delivery[]> {
    if (key === undefined) return lease();
    const known = this.entries.get(key);
    if (known) return known.deliveries;
    const entry: Entry = { deliveries: lease(), bytes: 1 };
    this.entries.set(key, entry);
    try {
      const deliveries = await entry.deliveries;
      // Nothing leased: nothing a repeat could miss.
      if (deliveries.length === 0) {
        this.entries.delete(key);
        return deliveries;
      }
      const until = Math.min(...deliveries.map(d => d.leaseExpiresAt?.getTime() ?? 0));
      entry.bytes = deliveries.reduce((n, d) => n + (d.message?.payload?.length ?? 0) + 256, 0);
      this.entries.set(key, entry, { ttl: Math.max(1, Math.min(MAX_KEEP_MS, until - Date.now())) });
      return deliveries;
    } catch (err) {
      this.entries.delete(key);
      throw err;
    }
  }
}
