import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { type ServiceError, status } from '@grpc/grpc-js';
import { LeaseRequest, SendRequest, SubscribeRequest, type SubscribeResponse } from '@inboxd/proto/v1/inbox';
import type { Delivery } from '@inboxd/proto/v1/message';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type Clients, call, connect, dur, migratedDatabase, ROOT, type ServerProcess, spawnServer, waitFor } from './support/harness.js';

/** Runs the built server to its exit with extra environment; returns its exit code and output. */
function runServer(env: Record<string, string>, timeoutMs = 20_000): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [`${ROOT}/dist/server/main.js`], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    proc.stdout.on('data', d => (output += d));
    proc.stderr.on('data', d => (output += d));
    const t = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`server still running after ${timeoutMs}ms:\n${output}`));
    }, timeoutMs);
    proc.on('exit', code => {
      clearTimeout(t);
      resolve({ code, output });
    });
  });
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`timed out after ${ms}ms: ${what}`)), ms))]);
}

describe('server process', () => {
  let db: string;
  const procs: ServerProcess[] = [];
  const clients: Clients[] = [];

  beforeAll(async () => {
    db = await migratedDatabase();
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    for (const p of procs.splice(0)) {
      if (p.proc.exitCode === null && p.proc.signalCode === null) {
        p.proc.kill('SIGKILL');
        await p.exited;
      }
    }
  });

  const start = async (): Promise<{ p: ServerProcess; c: Clients }> => {
    const p = await spawnServer(db);
    procs.push(p);
    const c = connect(p.address);
    clients.push(c);
    return { p, c };
  };

  /** Leases and acks until `done` holds or the deadline passes; returns every delivery. */
  const drain = async (c: Clients, queue: string, done: (seen: Delivery[]) => boolean, timeoutMs: number): Promise<Delivery[]> => {
    const seen: Delivery[] = [];
    const deadline = Date.now() + timeoutMs;
    while (!done(seen) && Date.now() < deadline) {
      const res = await call(c.inbox, c.inbox.lease, LeaseRequest.fromPartial({ queue, maxMessages: 500, visibilityTimeout: dur(60), wait: dur(1) }));
      if (res.deliveries.length === 0) continue;
      seen.push(...res.deliveries);
      await call(c.inbox, c.inbox.ack, { leaseTokens: res.deliveries.map(d => d.leaseToken) });
    }
    return seen;
  };

  /** Leases and acks whatever is ready now, until a lease finds nothing. */
  const rest = async (c: Clients, queue: string): Promise<Delivery[]> => {
    const seen: Delivery[] = [];
    for (;;) {
      const res = await call(c.inbox, c.inbox.lease, LeaseRequest.fromPartial({ queue, maxMessages: 500, visibilityTimeout: dur(60) }));
      if (res.deliveries.length === 0) return seen;
      seen.push(...res.deliveries);
      await call(c.inbox, c.inbox.ack, { leaseTokens: res.deliveries.map(d => d.leaseToken) });
    }
  };

  it('drains on SIGTERM: exits 0, ends streams UNAVAILABLE, releases their leases at once, finishes sends', async () => {
    const { p, c } = await start();
    const queue = `drain-${randomUUID().slice(0, 8)}`;
    await call(c.queues, c.queues.createQueue, { name: queue });
    const first = await call(
      c.inbox,
      c.inbox.send,
      SendRequest.fromPartial({ messages: Array.from({ length: 10 }, (_, i) => ({ queue, payload: Buffer.from(`m${i}`) })) }),
    );
    const ids = first.results.map(r => r.id);

    // A subscriber holding 4 deliveries on 60s leases, unacked.
    const stream = c.inbox.subscribe();
    const held: Delivery[] = [];
    let streamError: ServiceError | undefined;
    let streamEnded = false;
    stream.on('data', (r: SubscribeResponse) => held.push(...r.deliveries));
    stream.on('error', (err: ServiceError) => (streamError = err));
    stream.on('end', () => (streamEnded = true));
    stream.write(SubscribeRequest.fromPartial({ queue, flowControl: { maxOutstandingMessages: 4 }, visibilityTimeout: dur(60) }));
    await waitFor(() => held.length >= 4, 10_000, 'four deliveries held');
    expect(held).toHaveLength(4);

    // Four producers sending batch after batch, with ids of their own, until the server refuses:
    // at SIGTERM some Sends are in flight.
    const batches: { ids: string[]; outcome: 'ok' | ServiceError }[] = [];
    let okBatches = 0;
    const producer = async () => {
      for (let n = 0; n < 1000; n++) {
        const batchIds = Array.from({ length: 200 }, () => randomUUID());
        const batch: (typeof batches)[number] = { ids: batchIds, outcome: 'ok' };
        batches.push(batch);
        try {
          await call(c.inbox, c.inbox.send, SendRequest.fromPartial({ messages: batchIds.map(id => ({ id, queue, payload: Buffer.alloc(1024, 1) })) }), 15_000);
          okBatches++;
        } catch (err) {
          batch.outcome = err as ServiceError;
          return;
        }
      }
    };
    const producers = Promise.all([producer(), producer(), producer(), producer()]);
    await waitFor(() => okBatches >= 4, 10_000, 'four Sends stored');

    p.proc.kill('SIGTERM');
    expect(await withTimeout(p.exited, 20_000, 'the server to exit after SIGTERM')).toBe(0);
    expect(p.output()).toContain('draining');
    await withTimeout(producers, 20_000, 'the producers to stop');

    // The stream ended with UNAVAILABLE.
    await waitFor(() => streamError !== undefined || streamEnded, 5000, 'the stream to end');
    expect(streamError?.code).toBe(status.UNAVAILABLE);

    // Every Send answered OK was stored; the one that failed failed UNAVAILABLE.
    const failed = batches.filter(b => b.outcome !== 'ok');
    expect(failed.length).toBe(4);
    for (const b of failed) expect((b.outcome as ServiceError).code).toBe(status.UNAVAILABLE);
    const stored = batches.filter(b => b.outcome === 'ok').flatMap(b => b.ids);

    // A new server on the same database: the 4 held messages are not leased any more (their 60s
    // leases were released, not left to expire), and everything is there to lease.
    const { c: c2 } = await start();
    const st = (await call(c2.queues, c2.queues.getQueueStats, { name: queue })).stats!;
    expect(Number(st.leased)).toBe(0);

    const expected = new Set([...ids, ...stored]);
    const maybe = new Set(failed.flatMap(b => b.ids));
    const got = await drain(c2, queue, seen => [...expected].every(id => seen.some(d => d.message!.id === id)), 10_000);
    // Everything stored is there to lease from the start (the held leases were released, not left
    // to run out): what else there is, is ready now.
    got.push(...(await rest(c2, queue)));
    const gotIds = got.map(d => d.message!.id);
    expect(new Set(gotIds).size).toBe(gotIds.length);
    // A Send that failed is all or nothing.
    const fromFailed = gotIds.filter(id => maybe.has(id));
    expect([0, maybe.size]).toContain(fromFailed.length);
    expect(new Set(gotIds.filter(id => !maybe.has(id)))).toEqual(expected);
    for (const d of got) expect(d.attempt).toBe(held.some(h => h.message!.id === d.message!.id) ? 2 : 1);
  });

  it('loses no acknowledged message when killed with SIGKILL (kill -9)', async () => {
    const { p, c } = await start();
    const queue = `crash-${randomUUID().slice(0, 8)}`;
    await call(c.queues, c.queues.createQueue, { name: queue });

    const sent: string[] = [];
    for (let b = 0; b < 4; b++) {
      const res = await call(
        c.inbox,
        c.inbox.send,
        SendRequest.fromPartial({ messages: Array.from({ length: 500 }, (_, i) => ({ queue, payload: Buffer.from(`${b}-${i}`) })) }),
      );
      sent.push(...res.results.map(r => r.id));
    }
    expect(new Set(sent).size).toBe(2000);

    // Lease 100 and ack them (on 60 s leases: no ack can be late), then lease 200 more on 1 s
    // leases and leave them unacked.
    const leased: Delivery[] = [];
    for (const [want, vis] of [
      [100, 60],
      [300, 1],
    ]) {
      while (leased.length < want) {
        const res = await call(
          c.inbox,
          c.inbox.lease,
          LeaseRequest.fromPartial({ queue, maxMessages: want - leased.length, visibilityTimeout: dur(vis), wait: dur(1) }),
        );
        leased.push(...res.deliveries);
      }
      if (want === 100) expect((await call(c.inbox, c.inbox.ack, { leaseTokens: leased.map(d => d.leaseToken) })).acked).toBe(100);
    }
    expect(leased).toHaveLength(300);
    const acked = leased.slice(0, 100);

    p.proc.kill('SIGKILL');
    await withTimeout(p.exited, 10_000, 'the killed server to exit');
    expect(p.proc.signalCode).toBe('SIGKILL');

    const { c: c2 } = await start();
    const ackedIds = new Set(acked.map(d => d.message!.id));
    const want = new Set(sent.filter(id => !ackedIds.has(id)));
    // Drain until every expected message came back (the 200 leased-unacked ones after their 1 s).
    const got = await drain(c2, queue, seen => seen.length >= want.size, 40_000);
    // And nothing more. Every lease taken before the kill has run out by now, but an acked message
    // whose ack was lost would still be leased for its 60 s: the stats below count it as leased.
    got.push(...(await rest(c2, queue)));

    const gotIds = got.map(d => d.message!.id);
    expect(gotIds.length).toBe(want.size);
    expect(new Set(gotIds).size).toBe(gotIds.length);
    expect(gotIds.filter(id => ackedIds.has(id))).toEqual([]);
    expect(new Set(gotIds)).toEqual(want);
    // The leased-unacked came back as their second attempt; the rest as their first.
    const unackedLeased = new Set(leased.slice(100).map(d => d.message!.id));
    expect(
      got
        .filter(d => d.attempt === 2)
        .map(d => d.message!.id)
        .sort(),
    ).toEqual([...unackedLeased].sort());

    const st = (await call(c2.queues, c2.queues.getQueueStats, { name: queue })).stats!;
    expect(Number(st.depth)).toBe(0);
    expect(Number(st.leased)).toBe(0);
    expect(Number(st.acked)).toBe(2000);
  });

  it.each([
    ['INBOXD_PORT', 'abc'],
    ['INBOXD_LOG_LEVEL', 'loud'],
  ])('refuses a bad %s and exits non-zero naming it', async (name, value) => {
    const { code, output } = await runServer({ DATABASE_URL: db, INBOXD_PORT: '0', [name]: value });
    expect(code).not.toBe(0);
    expect(code).not.toBeNull();
    expect(output).toContain(name);
    expect(output).toContain(JSON.stringify(value));
    expect(output).not.toContain('inboxd listening');
  });

  it('spawnServer itself rejects a server that cannot start', async () => {
    await expect(spawnServer(db, { INBOXD_PORT: 'abc' })).rejects.toThrow(/INBOXD_PORT/);
  });
});
