import http2 from 'node:http2';
import { Client, credentials, Metadata, type ServiceError, status } from '@grpc/grpc-js';
import { LeaseRequest, NackRequest, SendRequest } from '@inboxd/proto/v1/inbox';
import { UpdateQueueRequest } from '@inboxd/proto/v1/queues';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, dur, migratedDatabase, startServer } from './support/harness.js';

type Srv = Awaited<ReturnType<typeof startServer>>;

/** Calls `path` with raw request bytes (a hand-encoded protobuf); resolves with the status code and message. */
function raw(address: string, path: string, body: Buffer): Promise<{ code: number; details: string }> {
  const client = new Client(address, credentials.createInsecure());
  return new Promise<{ code: number; details: string }>(resolve =>
    client.makeUnaryRequest(
      path,
      (b: Buffer) => b,
      (b: Buffer) => b,
      body,
      new Metadata(),
      { deadline: Date.now() + 10_000 },
      (err: ServiceError | null) => resolve(err ? { code: err.code, details: err.details } : { code: status.OK, details: '' }),
    ),
  ).finally(() => client.close());
}

const outcome = (p: Promise<unknown>) =>
  p.then(
    () => ({ code: status.OK, details: '' }),
    (e: ServiceError) => ({ code: e.code, details: e.details }),
  );

describe('bad input gets a status a person can act on, and touches nobody else', () => {
  let srv: Srv;
  beforeAll(async () => {
    srv = await startServer(await migratedDatabase());
    await call(srv.clients.queues, srv.clients.queues.createQueue, { name: 'shared' });
  });
  afterAll(async () => {
    await srv?.stop();
  });
  const send = (messages: object[]) => outcome(call(srv.clients.inbox, srv.clients.inbox.send, SendRequest.fromPartial({ messages })));

  it('refuses U+0000 in every stored text field with INVALID_ARGUMENT naming the field', async () => {
    const cases: [object, string][] = [
      [{ headers: { k: 'a\u0000b' } }, 'messages[0].headers["k"]'],
      [{ headers: { ['k\u0000']: 'v' } }, 'messages[0].headers key'],
      [{ contentType: 'text/\u0000' }, 'messages[0].content_type'],
      [{ subject: '\u0000' }, 'messages[0].subject'],
      [{ correlationId: 'c\u0000' }, 'messages[0].correlation_id'],
      [{ dedupKey: 'k\u0000' }, 'messages[0].dedup_key'],
    ];
    for (const [fields, field] of cases) {
      const r = await send([{ queue: 'shared', payload: Buffer.from('x'), ...fields }]);
      expect(r.code, field).toBe(status.INVALID_ARGUMENT);
      expect(r.details).toContain(field);
      expect(r.details).toContain('U+0000');
    }
  });

  it('refuses deliver_at and expires_at outside 1970–9999', async () => {
    for (const [fields, field] of [
      [{ deliverAt: new Date(Date.UTC(200000, 0, 1)) }, 'deliver_at'],
      [{ deliverAt: new Date(Date.UTC(-5000, 0, 1)) }, 'deliver_at'],
      [{ expiresAt: new Date(Date.UTC(200000, 0, 1)) }, 'expires_at'],
    ] as const) {
      const r = await send([{ queue: 'shared', payload: Buffer.from('x'), ...fields }]);
      expect(r.code, field).toBe(status.INVALID_ARGUMENT);
      expect(r.details).toContain(`messages[0].${field}`);
      expect(r.details).toContain('out of range');
    }
  });

  it('a poison sender next to good senders on the same queue: only the poison fails', async () => {
    const good = Array.from({ length: 8 }, (_, i) =>
      Array.from({ length: 20 }, (_, j) => send([{ queue: 'shared', payload: Buffer.from(`g${i}.${j}`) }])),
    ).flat();
    const poison = Array.from({ length: 20 }, (_, j) =>
      send([{ queue: 'shared', payload: Buffer.from('p'), ...(j % 2 ? { headers: { h: '\u0000' } } : { deliverAt: new Date(Date.UTC(200000, 0, 1)) }) }]),
    );
    const [g, p] = await Promise.all([Promise.all(good), Promise.all(poison)]);
    expect(g.filter(r => r.code !== status.OK)).toEqual([]);
    expect(p.every(r => r.code === status.INVALID_ARGUMENT)).toBe(true);
  });

  it('a lease token with NUL (or anything but a queue name) in its queue part is malformed, not INTERNAL', async () => {
    const forged = Buffer.from('sh\u0000ared\n0e4e3c8b-5c0a-4d7e-9d55-6a2f7c1b9e10\n0').toString('base64url');
    const { inbox } = srv.clients;
    for (const r of [
      await outcome(call(inbox, inbox.ack, { leaseTokens: [forged] })),
      await outcome(call(inbox, inbox.nack, NackRequest.fromPartial({ leaseTokens: [forged] }))),
      await outcome(call(inbox, inbox.extendLease, { leaseTokens: [forged], visibilityTimeout: dur(10) })),
    ]) {
      expect(r.code).toBe(status.INVALID_ARGUMENT);
      expect(r.details).toContain('malformed lease token');
    }
  });

  it('refuses a Duration with nanos of a second or more', async () => {
    const r = await outcome(
      call(
        srv.clients.inbox,
        srv.clients.inbox.lease,
        LeaseRequest.fromPartial({ queue: 'shared', visibilityTimeout: { seconds: '1', nanos: 1_500_000_000 } }),
      ),
    );
    expect(r.code).toBe(status.INVALID_ARGUMENT);
    expect(r.details).toContain('visibility_timeout.nanos');
  });

  it('refuses invalid UTF-8 in a string field instead of storing U+FFFD, and a truncated message with INVALID_ARGUMENT', async () => {
    // SendRequest { messages: [ Message { queue: "shared" (field 2), subject: 0xC3 0x28 (field 7) } ] }
    const queue = Buffer.concat([Buffer.from([0x12, 6]), Buffer.from('shared')]);
    const msg = (subject: Buffer) => {
      const inner = Buffer.concat([queue, Buffer.from([0x3a, subject.length]), subject]);
      return Buffer.concat([Buffer.from([0x0a, inner.length]), inner]);
    };
    // Field numbers as the proto has them: check the encoding against the generated decoder.
    const ok = SendRequest.decode(msg(Buffer.from('fine')));
    expect(ok.messages[0]).toMatchObject({ queue: 'shared', subject: 'fine' });

    const bad = await raw(srv.app.address, '/inboxd.v1.Inbox/Send', msg(Buffer.from([0xc3, 0x28])));
    expect(bad.code).toBe(status.INVALID_ARGUMENT);
    expect(bad.details).toMatch(/inboxd.v1.Inbox\/Send request .*UTF-8/);

    const truncated = await raw(srv.app.address, '/inboxd.v1.Inbox/Send', msg(Buffer.from('fine')).subarray(0, 7));
    expect(truncated.code).toBe(status.INVALID_ARGUMENT);
    const queues = await raw(srv.app.address, '/inboxd.v1.Queues/GetQueue', Buffer.from([0x0a, 0x05, 0x61]));
    expect(queues.code).toBe(status.INVALID_ARGUMENT);
    expect(queues.details).toContain('GetQueue');
  });

  it("a compressed flag on a body that is not compressed is INVALID_ARGUMENT, not grpc-js's INTERNAL", async () => {
    const session = http2.connect(`http://${srv.app.address}`);
    try {
      const req = session.request({
        ':method': 'POST',
        ':path': '/inboxd.v1.Inbox/Send',
        'content-type': 'application/grpc',
        te: 'trailers',
        'grpc-encoding': 'gzip',
      });
      const trailers = new Promise<http2.IncomingHttpHeaders>(resolve => {
        req.on('trailers', t => resolve(t));
        req.on('response', h => h['grpc-status'] !== undefined && resolve(h));
      });
      req.on('data', () => {});
      req.end(Buffer.from([1, 0, 0, 0, 3, 1, 2, 3]));
      const t = await trailers;
      expect(Number(t['grpc-status'])).toBe(status.INVALID_ARGUMENT);
      expect(decodeURIComponent(String(t['grpc-message']))).toContain('compressed flag');
    } finally {
      session.close();
    }
  });

  it('an error quoting a huge input stays a short status, and the connection keeps working', async () => {
    const { queues, inbox } = srv.clients;
    const r = await outcome(call(queues, queues.updateQueue, UpdateQueueRequest.fromPartial({ name: 'shared', config: {}, updateMask: ['é'.repeat(70_000)] })));
    expect(r.code).toBe(status.INVALID_ARGUMENT);
    expect(r.details.length).toBeLessThanOrEqual(500);
    // The same connection serves the next call.
    const ok = await outcome(call(inbox, inbox.send, SendRequest.fromPartial({ messages: [{ queue: 'shared', payload: Buffer.from('after') }] })));
    expect(ok.code).toBe(status.OK);
  });
});
