/**
 * The database fails under a running server: backends terminated, Postgres stopped and crashed, a
 * statement that hangs. (Server shutdown and restarts: faults-restarts.test.ts.)
 */

import { Client, credentials, Metadata, type ServiceError, status } from '@grpc/grpc-js';
import { LeaseRequest, SendRequest } from '@inboxd/proto/v1/inbox';
import type { Delivery } from '@inboxd/proto/v1/message';
import { CreateQueueRequest } from '@inboxd/proto/v1/queues';
import { createClient, type InboxdClient } from '@inboxd/sdk';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ChaosPostgres } from '../bench/chaos/postgres.js';
import { bounded, call, connect, dur, type ServerProcess, sleep, spawnServer, waitFor } from './support/harness.js';

/** grpc.health.v1.Health/Check of the server as a whole: 'SERVING', 'NOT_SERVING', or the error. */
function health(address: string): Promise<string> {
  const client = new Client(address, credentials.createInsecure());
  return new Promise<string>(resolve =>
    client.makeUnaryRequest(
      '/grpc.health.v1.Health/Check',
      () => Buffer.alloc(0),
      (b: Buffer) => (b[0] === 0x08 ? (['UNKNOWN', 'SERVING', 'NOT_SERVING'][b[1]] ?? 'UNKNOWN') : 'UNKNOWN'),
      '',
      new Metadata(),
      { deadline: Date.now() + 2000 },
      (err: ServiceError | null, v?: string) => resolve(err ? `error ${err.code}` : v!),
    ),
  ).finally(() => client.close());
}

const alive = (p: ServerProcess) => p.proc.exitCode === null && p.proc.signalCode === null;

describe('faults: the database fails under a running server', () => {
  let pg: ChaosPostgres;
  const procs: ServerProcess[] = [];
  const cleanups: (() => unknown)[] = [];

  beforeAll(async () => {
    pg = await ChaosPostgres.create();
  });
  afterAll(async () => {
    await pg?.destroy();
  });
  afterEach(async () => {
    // Bounded: a client of a server that died must not hold the next test.
    for (const f of cleanups.splice(0).reverse()) await bounded(f(), 5000);
    for (const p of procs.splice(0)) {
      if (alive(p)) {
        p.proc.kill('SIGKILL');
        await p.exited;
      }
    }
    // A test that stopped or crashed Postgres leaves it running for the next.
    if (!pg.pid) await pg.start();
  });

  const start = async (env: Record<string, string> = {}) => {
    const db = await pg.createDatabase('faults');
    const p = await spawnServer(db, { INBOXD_LOG_LEVEL: 'info', ...env });
    procs.push(p);
    const c = connect(p.address);
    cleanups.push(() => c.close());
    return { p, c, db };
  };

  const sdk = (address: string): InboxdClient => {
    const client = createClient({ address });
    cleanups.push(() => client.close());
    return client;
  };

  it('survives pg_terminate_backend of every connection it holds, while subscribers lease and senders use transactions', async () => {
    const { p, db } = await start();
    const client = sdk(p.address);
    await client.queues.create('plain');
    await client.queues.create('bounded', { maxDepth: 1_000_000 });
    const received = new Set<string>();
    const sub = client.subscribe('plain', async m => void received.add(m.id), { maxOutstandingMessages: 50 });
    cleanups.push(() => sub.close({ timeout: 1000 }).catch(() => {}));

    // Producers: a plain queue (group inserts) and a bounded one with dedup keys (transactions).
    let producing = true;
    const sent: Promise<unknown>[] = [];
    const produce = async () => {
      for (let i = 0; producing; i++) {
        sent.push(client.send('plain', `p${i}`).catch(e => e));
        sent.push(client.send('bounded', `b${i}`, { dedupKey: `k${i}` }).catch(e => e));
        if (i % 20 === 0) await sleep(5);
      }
    };
    const producer = produce();
    const dbName = new URL(db).pathname.slice(1);
    const backends = async () =>
      Number(
        (await pg.admin(c => c.query(`SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1 AND application_name LIKE 'inboxd%'`, [dbName]))).rows[0].n,
      );
    // Ten rounds of ending every backend of this server, mid-traffic: each once the server has
    // connected again (the first round, once the traffic has started).
    const kinds = new Set<string>();
    await waitFor(() => received.size > 0, 10_000, 'traffic');
    for (let round = 0; round < 10; round++) {
      await waitFor(async () => (await backends()) > 0, 10_000, `the server's connections before round ${round}`);
      const { rows } = await pg.admin(c =>
        c.query(`SELECT application_name, pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND application_name LIKE 'inboxd%'`, [
          new URL(db).pathname.slice(1),
        ]),
      );
      for (const r of rows) kinds.add(r.application_name);
      expect(alive(p), `server exited:\n${p.output().slice(-3000)}`).toBe(true);
    }
    producing = false;
    await producer;
    expect(kinds.size).toBeGreaterThanOrEqual(2);
    expect(alive(p), `server exited:\n${p.output().slice(-3000)}`).toBe(true);

    // It serves again at once: a fresh message goes through send and the stream.
    const id = await client.send('plain', 'after');
    await waitFor(() => received.has(id), 15_000, 'a message sent after the faults to be delivered');
    expect(p.output()).not.toMatch(/Unhandled 'error' event/);
  });

  it('health follows the database: NOT_SERVING within 2 s of losing it, SERVING again and serving calls within 1 s of its return', async () => {
    const { p, c } = await start();
    await call(c.queues, c.queues.createQueue, { name: 'h' });
    expect(await health(p.address)).toBe('SERVING');

    await pg.stop();
    const lost = Date.now();
    await waitFor(async () => (await health(p.address)) === 'NOT_SERVING', 2500, 'health NOT_SERVING after Postgres stopped');
    const notServingAfter = Date.now() - lost;
    // Calls fail fast and say why, the process stays up.
    const t0 = Date.now();
    const err = await call(c.inbox, c.inbox.send, SendRequest.fromPartial({ messages: [{ queue: 'h', payload: Buffer.from('x') }] })).then(
      () => ({ code: status.OK }),
      (e: ServiceError) => e,
    );
    expect(err.code).toBe(status.UNAVAILABLE);
    expect(Date.now() - t0).toBeLessThan(1000);
    // Real time: while the database is away the probe asks every 250 ms; it stays NOT_SERVING over two of them.
    await sleep(600);
    expect(await health(p.address)).toBe('NOT_SERVING');

    await pg.start();
    const back = Date.now();
    await waitFor(async () => (await health(p.address)) === 'SERVING', 1500, 'health SERVING after Postgres came back');
    await waitFor(
      () =>
        call(c.inbox, c.inbox.send, SendRequest.fromPartial({ messages: [{ queue: 'h', payload: Buffer.from('y') }] }), 500).then(
          () => true,
          () => false,
        ),
      1000,
      'a Send to succeed after Postgres came back',
    );
    expect(Date.now() - back).toBeLessThan(1500);
    expect(notServingAfter).toBeLessThan(2500);
    expect(alive(p)).toBe(true);
    // The outage is logged once, not once per failed call.
    expect(p.output().match(/database unreachable/g)?.length).toBe(1);
    expect(p.output()).toMatch(/database reachable again/);
    const metrics = await fetch(/metrics on (http:\/\/\S+?)"/.exec(p.output())![1]).then(r => r.text());
    expect(metrics).toMatch(/^inboxd_database_up 1$/m);
  });

  it('a subscriber keeps receiving across a Postgres restart, with no help from the poll', async () => {
    const { p } = await start();
    const client = sdk(p.address);
    await client.queues.create('r');
    const received = new Set<string>();
    const sub = client.subscribe('r', async m => void received.add(m.id));
    cleanups.push(() => sub.close({ timeout: 1000 }).catch(() => {}));
    const first = await client.send('r', 'before');
    await waitFor(() => received.has(first), 5000, 'the first message');
    await pg.stop();
    // Away long enough for the server to notice (its probe, its LISTEN connection lost).
    await waitFor(() => p.output().includes('database unreachable'), 5000, 'the server to notice the outage');
    await pg.start();
    const back = Date.now();
    const id = await client.send('r', 'after');
    await waitFor(() => received.has(id), 3000, 'a message sent after the restart to arrive');
    expect(Date.now() - back).toBeLessThan(3000);
    expect(alive(p)).toBe(true);
  });

  it('after a Postgres crash, a lease token issued before it never settles a delivery made after it', async () => {
    const { p, c } = await start();
    await call(c.queues, c.queues.createQueue, CreateQueueRequest.fromPartial({ name: 'crash', config: { maxAttempts: 20 } }));
    for (let round = 0; round < 5; round++) {
      await call(c.inbox, c.inbox.send, SendRequest.fromPartial({ messages: [{ queue: 'crash', payload: Buffer.from(`r${round}`) }] }));
      const first = (await call(c.inbox, c.inbox.lease, LeaseRequest.fromPartial({ queue: 'crash', maxMessages: 1, visibilityTimeout: dur(1) }))).deliveries[0];
      expect(first).toBeDefined();
      // The moment the lease is answered, Postgres crashes: whatever was not flushed is gone.
      await pg.crash();
      await pg.start();
      // The lease runs out (or never was), and the message is delivered again.
      let second: Delivery | undefined;
      await waitFor(
        async () => {
          const res = await call(c.inbox, c.inbox.lease, LeaseRequest.fromPartial({ queue: 'crash', maxMessages: 1, visibilityTimeout: dur(30) }), 3000).catch(
            () => undefined,
          );
          second = res?.deliveries[0];
          return second !== undefined;
        },
        15_000,
        'the message to be delivered again after the crash',
      );
      const again = second as unknown as typeof first;
      expect(again.message!.id).toBe(first.message!.id);
      expect(again.leaseToken).not.toBe(first.leaseToken);
      expect(again.attempt).toBeGreaterThan(first.attempt);
      // The old token settles nothing; the new one acks.
      const stale = await call(c.inbox, c.inbox.ack, { leaseTokens: [first.leaseToken] }).then(
        () => ({ code: status.OK }),
        (e: ServiceError) => e,
      );
      expect(stale.code).toBe(status.FAILED_PRECONDITION);
      await call(c.inbox, c.inbox.ack, { leaseTokens: [again.leaseToken] });
    }
    expect(alive(p)).toBe(true);
  });

  it('times out a statement that hangs instead of stalling the call', async () => {
    const { c, db } = await start({ INBOXD_DB_STATEMENT_TIMEOUT_MS: '1000' });
    await call(c.queues, c.queues.createQueue, { name: 'locked' });
    // Another session holds the job table: inserts wait on the lock.
    const locker = new (await import('pg')).default.Client({ connectionString: db });
    await locker.connect();
    cleanups.push(() => locker.end().catch(() => {}));
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE inboxd.job IN ACCESS EXCLUSIVE MODE');
    const t0 = Date.now();
    const err = await call(c.inbox, c.inbox.send, SendRequest.fromPartial({ messages: [{ queue: 'locked', payload: Buffer.from('x') }] }), 20_000).then(
      () => ({ code: status.OK }),
      (e: ServiceError) => e,
    );
    expect(err.code).toBe(status.UNAVAILABLE);
    expect(Date.now() - t0).toBeLessThan(5000);
    await locker.query('ROLLBACK');
  });
});
