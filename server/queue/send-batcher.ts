import { isConnectionError } from '../errors.js';
import type { OutgoingMessage } from './codec.js';
import type { HandOff } from './dispatcher.js';
import type { InsertResult, MessageStore } from './message-store.js';

interface Pending {
  messages: OutgoingMessage[];
  resolve: (r: InsertResult[]) => void;
  reject: (e: unknown) => void;
}

export interface SendBatcherOptions {
  /** Most rows in one insert. */
  maxBatch: number;
  /** Inserts in flight at once; calls arriving meanwhile wait and share the next insert. */
  maxInFlight: number;
}

/**
 * Group insert across concurrent Send calls. A call's messages join the pending set; a flush takes
 * everything pending (up to maxBatch rows), groups it by queue and inserts each group with one
 * pg-boss insert. Flushes start on the next turn of the event loop while fewer than maxInFlight
 * run, so a lone call pays no added latency and a crowd shares statements.
 */
export class SendBatcher {
  private pending: Pending[] = [];
  private inFlight = 0;
  private scheduled = false;
  private readonly idle = new Set<() => void>();

  constructor(
    private readonly store: MessageStore,
    private readonly opts: SendBatcherOptions,
    private readonly onInserted: (queue: string, messages: OutgoingMessage[]) => void,
    /** Subscribers waiting on this replica, offered a queue's messages as they are stored (Dispatcher.offer). */
    private readonly offer?: (queue: string, sizes: number[]) => HandOff | undefined,
  ) {}

  send(messages: OutgoingMessage[]): Promise<InsertResult[]> {
    return new Promise((resolve, reject) => {
      this.pending.push({ messages, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.inFlight >= this.opts.maxInFlight || this.pending.length === 0) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.flush();
    });
  }

  private async flush(): Promise<void> {
    const batch: Pending[] = [];
    let rows = 0;
    for (let next = this.pending[0]; next && (batch.length === 0 || rows + next.messages.length <= this.opts.maxBatch); next = this.pending[0]) {
      const p = this.pending.shift()!;
      batch.push(p);
      rows += p.messages.length;
    }
    if (batch.length === 0) return;
    this.inFlight++;
    this.schedule();
    try {
      // Each call's messages per queue, in the call's order; one insert per queue for all calls.
      const byQueue = new Map<string, Map<Pending, OutgoingMessage[]>>();
      for (const p of batch)
        for (const m of p.messages) {
          let calls = byQueue.get(m.queue);
          if (!calls) byQueue.set(m.queue, (calls = new Map()));
          const list = calls.get(p);
          if (list) list.push(m);
          else calls.set(p, [m]);
        }
      const outcomes = new Map<Pending, Map<string, InsertResult[] | Error>>(batch.map(p => [p, new Map()]));
      await Promise.all([...byQueue].map(([queue, calls]) => this.insertQueue(queue, calls, outcomes)));
      // Hand each call its own results, in its own order, or the first error of its queues.
      for (const p of batch) {
        const mine = outcomes.get(p)!;
        const failure = [...mine.values()].find((o): o is Error => o instanceof Error);
        if (failure) {
          p.reject(failure);
          continue;
        }
        const cursor = new Map<string, number>();
        p.resolve(
          p.messages.map(m => {
            const i = cursor.get(m.queue) ?? 0;
            cursor.set(m.queue, i + 1);
            // One result per message of its queue's insert, in order.
            return (mine.get(m.queue) as InsertResult[])[i]!;
          }),
        );
      }
    } finally {
      this.inFlight--;
      this.schedule();
      if (this.inFlight === 0 && this.pending.length === 0) for (const fn of this.idle) fn();
    }
  }

  /**
   * One insert for every call's messages to `queue`. When it fails for a reason of the data (not
   * the database being away), each call's part is inserted again on its own: the calls whose
   * messages are fine succeed, and only the one that brought what the database refuses fails.
   */
  private async insertQueue(queue: string, calls: Map<Pending, OutgoingMessage[]>, outcomes: Map<Pending, Map<string, InsertResult[] | Error>>): Promise<void> {
    const all = [...calls.values()].flat();
    try {
      const results = await this.store.insert(queue, all, this.offer && (sizes => this.offer!(queue, sizes)));
      this.onInserted(queue, all);
      let at = 0;
      for (const [p, msgs] of calls) {
        outcomes.get(p)!.set(queue, results.slice(at, at + msgs.length));
        at += msgs.length;
      }
      return;
    } catch (err) {
      if (calls.size === 1 || isConnectionError(err)) {
        for (const p of calls.keys()) outcomes.get(p)!.set(queue, err as Error);
        return;
      }
    }
    await Promise.all(
      [...calls].map(async ([p, msgs]) => {
        try {
          outcomes.get(p)!.set(queue, await this.store.insert(queue, msgs));
          this.onInserted(queue, msgs);
        } catch (err) {
          outcomes.get(p)!.set(queue, err as Error);
        }
      }),
    );
  }

  /** Resolves once nothing is pending or in flight. */
  drain(): Promise<void> {
    if (this.inFlight === 0 && this.pending.length === 0) return Promise.resolve();
    return new Promise(resolve => {
      const fn = () => {
        this.idle.delete(fn);
        resolve();
      };
      this.idle.add(fn);
    });
  }
}
