/**
 * Retries that know what they repeat. A call whose answer is lost on the way back (the server did
 * the work; the client saw UNAVAILABLE) is retried by the SDK only when the proto declares it
 * idempotent, and the repeat must then succeed: a repeated Nack, CreateQueue, DeleteQueue,
 * CreatePrincipal, DeletePrincipal answers as the first would have. A Lease is repeated with its
 * request id and gets the same deliveries (else they would sit leased to nobody); a call that is
 * not idempotent is repeated only when it never reached a server.
 */

import { randomUUID } from 'node:crypto';
import { InterceptingCall, type Interceptor, Metadata, status } from '@grpc/grpc-js';
import { AuthDefinition } from '@inboxd/proto/v1/auth';
import { InboxDefinition } from '@inboxd/proto/v1/inbox';
import { QueuesDefinition } from '@inboxd/proto/v1/queues';
import { Code, createClient, type InboxdClient } from '@inboxd/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InboxdError } from '../sdk/errors.js';
import { idempotencyOf, mayRetry, notApplied } from '../sdk/idempotency.js';
import { rejection } from './support/expect.js';
import { createDatabase, startServer } from './support/harness.js';
import { freePort } from './support/net.js';

const ADMIN = `admin-${randomUUID()}`;
const fast = { initialBackoff: 10, maxBackoff: 50, totalTimeout: '10s' } as const;

/**
 * Lets the first call of `path` reach the server and do its work, then loses its answer: the
 * client sees UNAVAILABLE, as when a connection drops after the server committed. `attempts`
 * counts the calls of `path` the client started.
 */
function losesFirstAnswer(path: string): { interceptor: Interceptor; attempts: () => number } {
  let attempts = 0;
  let lost = false;
  const interceptor: Interceptor = (options, nextCall) => {
    const mine = options.method_definition.path === path;
    if (mine) attempts++;
    return new InterceptingCall(nextCall(options), {
      start(metadata, listener, next) {
        if (!mine || lost) return next(metadata, listener);
        lost = true;
        // The answer passes, its status does not: grpc-js fails the call with the status we give.
        next(metadata, {
          onReceiveStatus(_status, nextStatus) {
            nextStatus({ code: status.UNAVAILABLE, details: 'the answer was lost on the way back (test)', metadata: new Metadata() });
          },
        });
      },
    });
  };
  return { interceptor, attempts: () => attempts };
}

describe('idempotency levels, from the proto', () => {
  it('every method of the three services has the level its proto declares', () => {
    const expected: Record<string, string> = {
      '/inboxd.v1.Inbox/Ack': 'IDEMPOTENT',
      '/inboxd.v1.Inbox/Nack': 'IDEMPOTENT',
      '/inboxd.v1.Inbox/ExtendLease': 'IDEMPOTENT',
      '/inboxd.v1.Inbox/Lease': 'IDEMPOTENCY_UNKNOWN',
      '/inboxd.v1.Inbox/Send': 'IDEMPOTENCY_UNKNOWN',
      '/inboxd.v1.Inbox/GetMessage': 'NO_SIDE_EFFECTS',
      '/inboxd.v1.Queues/CreateQueue': 'IDEMPOTENT',
      '/inboxd.v1.Queues/DeleteQueue': 'IDEMPOTENT',
      '/inboxd.v1.Queues/PurgeQueue': 'IDEMPOTENCY_UNKNOWN',
      '/inboxd.v1.Queues/Redrive': 'IDEMPOTENCY_UNKNOWN',
      '/inboxd.v1.Queues/GetQueueStats': 'NO_SIDE_EFFECTS',
      '/inboxd.v1.Auth/CreateKey': 'IDEMPOTENCY_UNKNOWN',
      '/inboxd.v1.Auth/CreatePrincipal': 'IDEMPOTENT',
      '/inboxd.v1.Auth/WhoAmI': 'NO_SIDE_EFFECTS',
    };
    for (const [path, level] of Object.entries(expected)) expect(idempotencyOf(path), path).toBe(level);
    // Every unary read is declared free of side effects.
    for (const def of [InboxDefinition, QueuesDefinition, AuthDefinition]) {
      for (const m of Object.values(def.methods) as { name: string; requestStream: boolean }[]) {
        if (/^(Get|List|WhoAmI)/.test(m.name)) expect(idempotencyOf(`/${def.fullName}/${m.name}`), m.name).toBe('NO_SIDE_EFFECTS');
      }
    }
  });

  it('a call that is not idempotent is retried only when it cannot have landed', () => {
    const lost = new InboxdError(Code.UNAVAILABLE, 'Connection dropped');
    const late = new InboxdError(Code.DEADLINE_EXCEEDED, 'Deadline exceeded after 30.001s,remote_addr=127.0.0.1:50051');
    const neverSent = new InboxdError(Code.UNAVAILABLE, 'No connection established. Last error: connect ECONNREFUSED 127.0.0.1:1');
    const waiting = new InboxdError(Code.DEADLINE_EXCEEDED, 'Deadline exceeded after 5.002s,Waiting for LB pick');
    const md = new Metadata();
    md.set('inboxd-not-applied', '1');
    const draining = new InboxdError(Code.UNAVAILABLE, 'server is shutting down', md);
    const conflict = new InboxdError(Code.ABORTED, 'transaction conflict with a concurrent call, retry');
    for (const e of [lost, late]) {
      expect(notApplied(e), e.details).toBe(false);
      expect(mayRetry(e, 'IDEMPOTENCY_UNKNOWN'), e.details).toBe(false);
      expect(mayRetry(e, 'IDEMPOTENT'), e.details).toBe(true);
    }
    for (const e of [neverSent, waiting, draining, conflict]) expect(mayRetry(e, 'IDEMPOTENCY_UNKNOWN'), e.details).toBe(true);
    expect(mayRetry(new InboxdError(Code.NOT_FOUND, 'no'), 'NO_SIDE_EFFECTS')).toBe(false);
  });
});

describe('retries after a lost answer', () => {
  let address: string;
  let stop: () => Promise<void>;
  const clients: InboxdClient[] = [];
  const client = (interceptor?: Interceptor, apiKey?: string) => {
    const c = createClient({ address, retry: fast, interceptors: interceptor ? [interceptor] : [], apiKey });
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    const s = await startServer(await createDatabase(), { auth: 'required', adminKey: ADMIN });
    address = s.app.address;
    stop = s.stop;
  });
  afterAll(async () => {
    await Promise.all(clients.map(c => c.close()));
    await stop();
  });

  it('a Nack whose answer was lost is retried, and the repeat succeeds (the message goes back once)', async () => {
    const admin = client(undefined, ADMIN);
    const q = `nack-${randomUUID().slice(0, 8)}`;
    await admin.queues.create(q, { maxAttempts: 5 });
    await admin.send(q, 'once');
    const lossy = losesFirstAnswer('/inboxd.v1.Inbox/Nack');
    const c = client(lossy.interceptor, ADMIN);
    const [m] = await c.lease(q, { max: 1, wait: '5s' });
    expect(await c.nack(m, '0s')).toEqual({ requeued: 1, deadLettered: 0 });
    expect(lossy.attempts()).toBe(2);
    // A third time, straight: still success, and the message was returned once.
    expect(await admin.nack(m.leaseToken, '0s')).toEqual({ requeued: 1, deadLettered: 0 });
    const [again] = await admin.lease(q, { max: 1, wait: '5s' });
    expect(again.id).toBe(m.id);
    expect(again.attempt).toBe(2);
    expect(await admin.lease(q, { max: 1 })).toEqual([]);
    // The old token still settles nothing else: the new delivery's ack is untouched by it.
    expect((await rejection(admin.ack(m.leaseToken))).code).toBe(Code.FAILED_PRECONDITION);
    await again.ack();
  });

  it('a dead-lettering Nack repeated answers dead-lettered again', async () => {
    const admin = client(undefined, ADMIN);
    const q = `dl-${randomUUID().slice(0, 8)}`;
    await admin.queues.create(`${q}.dlq`);
    await admin.queues.create(q, { deadLetterQueue: `${q}.dlq` });
    await admin.send(q, 'poison');
    const [m] = await admin.lease(q, { max: 1, wait: '5s' });
    expect(await admin.nack(m, { deadLetter: true, error: 'bad input' })).toEqual({ requeued: 0, deadLettered: 1 });
    expect(await admin.nack(m, { deadLetter: true, error: 'bad input' })).toEqual({ requeued: 0, deadLettered: 1 });
    expect((await admin.queues.stats(`${q}.dlq`)).depth).toBe(1);
  });

  it('a lease that ran out is still stale for a nack: only a repeat of the nack itself succeeds', async () => {
    const admin = client(undefined, ADMIN);
    const q = `stale-${randomUUID().slice(0, 8)}`;
    await admin.queues.create(q);
    await admin.send(q, 'x');
    const [m] = await admin.lease(q, { max: 1, wait: '5s', visibilityTimeout: '1s' });
    // Released by the server (as a lease expiry or a closed stream does), not nacked by the client.
    const [again] = await admin.lease(q, { max: 1, wait: '10s' });
    expect(again.id).toBe(m.id);
    expect((await rejection(admin.nack(m.leaseToken, '0s'))).code).toBe(Code.FAILED_PRECONDITION);
    await again.ack();
  });

  it('a CreateQueue whose answer was lost is retried and returns the queue; other settings are ALREADY_EXISTS', async () => {
    const lossy = losesFirstAnswer('/inboxd.v1.Queues/CreateQueue');
    const c = client(lossy.interceptor, ADMIN);
    const q = `create-${randomUUID().slice(0, 8)}`;
    const info = await c.queues.create(q, { maxAttempts: 3, visibilityTimeout: '45s' });
    expect(lossy.attempts()).toBe(2);
    expect(info).toMatchObject({ name: q, maxAttempts: 3, visibilityTimeoutMs: 45_000 });
    const other = await rejection(c.queues.create(q, { maxAttempts: 4, visibilityTimeout: '45s' }));
    expect(other.code).toBe(Code.ALREADY_EXISTS);
    expect(other.details).toBe(`queue ${q} already exists with other settings (max_attempts): UpdateQueue changes settings`);
  });

  it('a DeleteQueue whose answer was lost is retried and succeeds; allowMissing makes a missing queue success', async () => {
    const admin = client(undefined, ADMIN);
    const q = `delete-${randomUUID().slice(0, 8)}`;
    await admin.queues.create(q);
    const lossy = losesFirstAnswer('/inboxd.v1.Queues/DeleteQueue');
    await client(lossy.interceptor, ADMIN).queues.delete(q);
    expect(lossy.attempts()).toBe(2);
    expect((await rejection(admin.queues.get(q))).code).toBe(Code.NOT_FOUND);
    expect((await rejection(admin.queues.delete(q))).code).toBe(Code.NOT_FOUND);
    await admin.queues.delete(q, { allowMissing: true });
  });

  it('CreatePrincipal and DeletePrincipal whose answers were lost are retried and succeed', async () => {
    const name = `p-${randomUUID().slice(0, 8)}`;
    const create = losesFirstAnswer('/inboxd.v1.Auth/CreatePrincipal');
    const p = await client(create.interceptor, ADMIN).auth.createPrincipal(name, { metadata: { b: '2', a: '1' }, maxStreams: 3 });
    expect(create.attempts()).toBe(2);
    expect(p).toMatchObject({ name, metadata: { a: '1', b: '2' }, maxStreams: 3 });
    const admin = client(undefined, ADMIN);
    expect((await rejection(admin.auth.createPrincipal(name, { maxStreams: 4 }))).code).toBe(Code.ALREADY_EXISTS);
    const del = losesFirstAnswer('/inboxd.v1.Auth/DeletePrincipal');
    await client(del.interceptor, ADMIN).auth.deletePrincipal(name);
    expect(del.attempts()).toBe(2);
    expect((await rejection(admin.auth.getPrincipal(name))).code).toBe(Code.NOT_FOUND);
  });

  it('a Lease whose answer was lost is retried with its request id and gets the same deliveries, leasing nothing more', async () => {
    const admin = client(undefined, ADMIN);
    const q = `lease-${randomUUID().slice(0, 8)}`;
    await admin.queues.create(q);
    await admin.send(q, 'a');
    await admin.send(q, 'b');
    const lossy = losesFirstAnswer('/inboxd.v1.Inbox/Lease');
    const got = await client(lossy.interceptor, ADMIN).lease(q, { max: 1 });
    expect(lossy.attempts()).toBe(2);
    expect(got.map(m => m.text())).toEqual(['a']);
    // Only the delivery the caller holds is leased: the repeat did not lease 'b' as well.
    expect(await admin.queues.stats(q)).toMatchObject({ leased: 1, ready: 1 });
    await got[0]!.ack();
  });

  it('a Lease the caller does not declare idempotent is not retried after a lost answer', async () => {
    const admin = client(undefined, ADMIN);
    const q = `lease-raw-${randomUUID().slice(0, 8)}`;
    await admin.queues.create(q);
    await admin.send(q, 'a');
    const lossy = losesFirstAnswer('/inboxd.v1.Inbox/Lease');
    const err = await rejection(client(lossy.interceptor, ADMIN).lease(q, { max: 1, idempotent: false }));
    expect(err.code).toBe(Code.UNAVAILABLE);
    expect(lossy.attempts()).toBe(1);
  });

  it('a Lease that cannot reach a server is retried until it can', async () => {
    const port = await freePort();
    let attempts = 0;
    const counting: Interceptor = (options, nextCall) => {
      if (options.method_definition.path === '/inboxd.v1.Inbox/Lease') attempts++;
      return new InterceptingCall(nextCall(options));
    };
    const c = createClient({
      address: `127.0.0.1:${port}`,
      retry: { initialBackoff: 10, maxBackoff: 50, totalTimeout: '1s', attemptTimeout: '300ms' },
      interceptors: [counting],
    });
    clients.push(c);
    const err = await rejection(c.lease('nowhere', { max: 1 }));
    expect([Code.UNAVAILABLE, Code.DEADLINE_EXCEEDED]).toContain(err.code);
    expect(attempts).toBeGreaterThan(1);
  });
});
