/**
 * What the queue core did, as it happens, for metrics and logs to follow (server/metrics
 * subscribes) without reaching into the core or rewiring its methods. Each event is emitted once,
 * where the thing is done and known to be done, after its transaction committed.
 */
export interface CoreEventMap {
  /** A Send's (or a Publish's) messages to one queue: `stored` new, `duplicates` already there (same id or dedup key). */
  sent: { queue: string; stored: number; duplicates: number };
  /** Deliveries leased, by a Lease call or for a subscriber. */
  leased: { queue: string; count: number };
  /**
   * Deliveries settled by a call: acked, returned by their client (`nacked`), returned by the
   * server (`released`: their stream or subscriber went away), or dead-lettered by a nack.
   * Repeats of a settle (a retry after a lost answer) count again.
   */
  settled: { queue: string; count: number; outcome: 'acked' | 'nacked' | 'released' | 'dead_lettered' };
  /** Leases that ran out, failed through pg-boss: back to the queue, or `deadLettered` on their last attempt. */
  expired: { queue: string; count: number; deadLettered: number };
}

type Listener<K extends keyof CoreEventMap> = (e: CoreEventMap[K]) => void;

/** A typed, synchronous emitter. A listener that throws is reported to `onError`; the core's call goes on. */
export class CoreEvents {
  private readonly listeners: { [K in keyof CoreEventMap]?: Listener<K>[] } = {};

  constructor(private readonly onError: (err: unknown, event: keyof CoreEventMap) => void = () => {}) {}

  /** Returns the function that removes the listener. */
  on<K extends keyof CoreEventMap>(event: K, listener: Listener<K>): () => void {
    const list = (this.listeners[event] ??= []) as Listener<K>[];
    list.push(listener);
    return () => list.splice(list.indexOf(listener) >>> 0, 1);
  }

  emit<K extends keyof CoreEventMap>(event: K, e: CoreEventMap[K]): void {
    for (const listener of (this.listeners[event] ?? []) as Listener<K>[]) {
      try {
        listener(e);
      } catch (err) {
        this.onError(err, event);
      }
    }
  }

  /** `emit` for each queue of `items` with how many it holds, when it holds any. */
  emitByQueue<T, K extends keyof CoreEventMap>(
    event: K,
    items: T[],
    queueOf: (t: T) => string | undefined,
    make: (queue: string, count: number) => CoreEventMap[K],
  ): void {
    const by = new Map<string, number>();
    for (const it of items) {
      const q = queueOf(it);
      if (q !== undefined) by.set(q, (by.get(q) ?? 0) + 1);
    }
    for (const [q, n] of by) this.emit(event, make(q, n));
  }
}
