import { describe, expect, it } from 'vitest';
import type { OutgoingMessage } from '../../server/queue/codec.js';
import type { InsertResult, MessageStore } from '../../server/queue/message-store.js';
import { SendBatcher } from '../../server/queue/send-batcher.js';

/** A store that records each insert and answers after a tick, like a database would. */
function fakeStore(failQueue?: string) {
  const inserts: { queue: string; ids: string[] }[] = [];
  const stored = new Set<string>();
  const store = {
    async insert(queue: string, msgs: OutgoingMessage[]): Promise<InsertResult[]> {
      inserts.push({ queue, ids: msgs.map(m => m.id) });
      await new Promise(r => setTimeout(r, 5));
      if (queue === failQueue) throw new Error('boom');
      return msgs.map(m => {
        const duplicate = stored.has(m.id);
        stored.add(m.id);
        return { id: m.id, duplicate };
      });
    },
  };
  return { store: store as unknown as MessageStore, inserts };
}

const msg = (queue: string, id: string): OutgoingMessage => ({ id, queue, priority: 0, data: { p: '', n: 0, hash: '', at: 0 } });

describe('send batcher', () => {
  it('shares one insert among concurrent calls and answers each in its own order', async () => {
    const { store, inserts } = fakeStore();
    const b = new SendBatcher(store, { maxBatch: 1000, maxInFlight: 1 }, () => {});
    const calls = Array.from({ length: 20 }, (_, i) => b.send([msg('q', `${i}-a`), msg('q', `${i}-b`)]));
    const results = await Promise.all(calls);
    results.forEach((r, i) => expect(r.map(x => x.id)).toEqual([`${i}-a`, `${i}-b`]));
    // The first call flushes alone; the other 19 wait for it and share the next insert.
    expect(inserts.length).toBeLessThanOrEqual(2);
    expect(inserts.flatMap(x => x.ids)).toHaveLength(40);
  });

  it('keeps inserts within maxBatch rows', async () => {
    const { store, inserts } = fakeStore();
    const b = new SendBatcher(store, { maxBatch: 10, maxInFlight: 2 }, () => {});
    await Promise.all(Array.from({ length: 30 }, (_, i) => b.send([msg('q', `${i}`), msg('q', `${i}x`), msg('q', `${i}y`)])));
    for (const i of inserts) expect(i.ids.length).toBeLessThanOrEqual(10);
    expect(inserts.flatMap(x => x.ids)).toHaveLength(90);
  });

  it('groups by queue and fails only the calls whose queue failed', async () => {
    const { store } = fakeStore('bad');
    const b = new SendBatcher(store, { maxBatch: 100, maxInFlight: 1 }, () => {});
    const good = b.send([msg('good', 'g1')]);
    const bad = b.send([msg('bad', 'b1')]);
    const mixed = b.send([msg('good', 'g2'), msg('bad', 'b2')]);
    await expect(good).resolves.toEqual([{ id: 'g1', duplicate: false }]);
    await expect(bad).rejects.toThrow('boom');
    await expect(mixed).rejects.toThrow('boom');
  });

  it('drain waits for what is pending and in flight', async () => {
    const { store } = fakeStore();
    const b = new SendBatcher(store, { maxBatch: 100, maxInFlight: 1 }, () => {});
    let done = 0;
    for (let i = 0; i < 5; i++) void b.send([msg('q', `d${i}`)]).then(() => done++);
    await b.drain();
    expect(done).toBe(5);
  });
});

describe('send batcher isolation', () => {
  it('a batch the database refuses fails only the call that brought the bad message, not the calls sharing its insert', async () => {
    const inserts: string[][] = [];
    const store = {
      async insert(_queue: string, msgs: OutgoingMessage[]): Promise<InsertResult[]> {
        inserts.push(msgs.map(m => m.id));
        await new Promise(r => setTimeout(r, 2));
        // As Postgres refuses a row it cannot store (22P05, 22008): the whole statement fails.
        if (msgs.some(m => m.id.startsWith('poison'))) throw Object.assign(new Error('unsupported Unicode escape sequence'), { code: '22P05' });
        return msgs.map(m => ({ id: m.id, duplicate: false }));
      },
    } as unknown as MessageStore;
    const b = new SendBatcher(store, { maxBatch: 1000, maxInFlight: 1 }, () => {});
    // All ten calls share one insert, the poison among them.
    const first = b.send([msg('q', 'first')]);
    const calls = Array.from({ length: 9 }, (_, i) => b.send([msg('q', i === 4 ? 'poison' : `good-${i}`), msg('q', `more-${i}`)]));
    await first;
    const outcomes = await Promise.allSettled(calls);
    expect(outcomes.filter(o => o.status === 'rejected')).toHaveLength(1);
    expect((outcomes[4] as PromiseRejectedResult).reason.code).toBe('22P05');
    outcomes.forEach((o, i) => i !== 4 && expect((o as PromiseFulfilledResult<InsertResult[]>).value.map(r => r.id)).toEqual([`good-${i}`, `more-${i}`]));
    expect(inserts.some(ids => ids.length >= 18)).toBe(true);
  });

  it('a database that is away fails every call at once, without inserting each again', async () => {
    let n = 0;
    const store = {
      async insert(): Promise<InsertResult[]> {
        n++;
        throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
      },
    } as unknown as MessageStore;
    const b = new SendBatcher(store, { maxBatch: 1000, maxInFlight: 1 }, () => {});
    const calls = Array.from({ length: 5 }, (_, i) => b.send([msg('q', `m${i}`)]));
    const outcomes = await Promise.allSettled(calls);
    expect(outcomes.every(o => o.status === 'rejected')).toBe(true);
    expect(n).toBeLessThanOrEqual(2);
  });
});
