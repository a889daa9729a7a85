import type { MessageStore, InsertResult } from './message-store.js';
import type { OutgoingMessage } from './codec.js';

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

  constructor(private readonly store: MessageStore, private readonly opts: SendBatcherOptions, private readonly onInserted: (queue: string, messages: OutgoingMessage[]) => void) {}

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
    while (this.pending.length > 0 && (batch.length === 0 || rows + this.pending[0].messages.length <= this.opts.maxBatch)) {
      const p = this.pending.shift()!;
      batch.push(p);
      rows += p.messages.length;
    }
    if (batch.length === 0) return;
    this.inFlight++;
    this.schedule();
    try {
      const byQueue = new Map<string, OutgoingMessage[]>();
      for (const p of batch) for (const m of p.messages) {
        const list = byQueue.get(m.queue) ?? [];
        list.push(m);
        byQueue.set(m.queue, list);
      }
      const outcomes = new Map<string, InsertResult[] | Error>();
      await Promise.all(
        [...byQueue].map(async ([queue, msgs]) => {
          try {
            outcomes.set(queue, await this.store.insert(queue, msgs));
            this.onInserted(queue, msgs);
          } catch (err) {
            outcomes.set(queue, err as Error);
          }
        }),
      );
      // Hand each call its own results, in its own order, or the first error of its queues.
      const cursor = new Map<string, number>();
      for (const p of batch) {
        const results: InsertResult[] = [];
        let failure: Error | undefined;
        for (const m of p.messages) {
          const out = outcomes.get(m.queue)!;
          const i = cursor.get(m.queue) ?? 0;
          cursor.set(m.queue, i + 1);
          if (out instanceof Error) failure ??= out;
          else results.push(out[i]);
        }
        if (failure) p.reject(failure);
        else p.resolve(results);
      }
    } finally {
      this.inFlight--;
      this.schedule();
      if (this.inFlight === 0 && this.pending.length === 0) for (const fn of this.idle) fn();
    }
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
