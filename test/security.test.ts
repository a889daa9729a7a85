/**
 * The end-to-end security matrix: servers with `--auth required` and a bootstrap admin key, in this
 * process, on one database (two of them are replicas of each other), principals and keys made
 * through the SDK's client.auth, and every call checked for who may make it:
 *
 *  1. the inbox matrix through the SDK (send-only A, owner B, stranger C; server-stamped sender);
 *  2. the same through raw gRPC with server reflection, as grpcurl -H 'authorization: Bearer …'
 *     does, over plaintext and TLS;
 *  3. every method of Inbox, Queues and Auth refused UNAUTHENTICATED without a valid credential;
 *  4. lease tokens bound to the principal that leased (unary and on a stream);
 *  5. revocation, grant removal and principal deletion ending open streams on every replica;
 *  6. topics: publish filtering and the AddTopicSubscription rule;
 *  7. ListQueues / ListTopics filtering, in full pages;
 *  8. per-principal quotas (streams, send rate) and their per-principal overrides;
 *  9. the audit log and inboxd_auth_denied_total;
 * 10. keys that expire, unary and on an open stream.
 *
 * test/auth-client.test.ts covers the CLI and the SDK's credential options; this file the server's rules.
 */

import { randomBytes, randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import { type CallOptions, Client, type ClientDuplexStream, type ClientUnaryCall, credentials, Metadata, type ServiceError, status } from '@grpc/grpc-js';
import { AuthClient, AuthService, ListAuditEventsRequest, type ListAuditEventsResponse } from '@inboxd/proto/v1/auth';
import {
  InboxClient,
  InboxService,
  PublishRequest,
  SendRequest,
  type SendResponse,
  SendStreamRequest,
  type SendStreamResponse,
  SubscribeRequest,
  type SubscribeResponse,
} from '@inboxd/proto/v1/inbox';
import type { Delivery } from '@inboxd/proto/v1/message';
import { ListQueuesRequest, type ListQueuesResponse, ListTopicsRequest, type ListTopicsResponse, QueuesClient, QueuesService } from '@inboxd/proto/v1/queues';
import { Code, type CreateClientOptions, createClient, type InboxdClient, InboxdError } from '@inboxd/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rejection } from './support/expect.js';
import { bounded, dur, migratedDatabase, sleep, startServer, waitFor } from './support/harness.js';
import {
  bearer,
  buildRoot,
  DescriptorSource,
  grpcurlClient,
  headers,
  invokeJson,
  invokeStreamJson,
  type Reflected,
  ReflectionClient,
  tlsCredentials,
} from './support/reflection-client.js';
import { makeTlsFiles } from './support/tls.js';

type Server = Awaited<ReturnType<typeof startServer>>;

/** The bootstrap admin credential (INBOXD_ADMIN_KEY): 48 characters. */
const ADMIN = randomBytes(24).toString('hex');
/** Calls that fail fast: a refusal is never retried, and nothing here should need a retry. */
const QUICK: Partial<CreateClientOptions> = { retry: { maxAttempts: 2, initialBackoff: 50, maxBackoff: 100, attemptTimeout: '10s', totalTimeout: '10s' } };
/** How long a change may take to end an open stream, on any replica. */
const STREAM_END_MS = 2000;

// ─── helpers ──────────────────────────────────────────────────────────────────────────────────

/** `authorization: Bearer <key>`; no key: no credential at all. */
function md(key?: string): Metadata {
  const m = new Metadata();
  if (key !== undefined) m.set('authorization', `Bearer ${key}`);
  return m;
}

/** Rejects PERMISSION_DENIED with the server's message naming `verb` and `name` (and nothing about whether it exists). */
async function denied(p: Promise<unknown>, verb: string, name: string, what = 'queue'): Promise<InboxdError> {
  const err = await rejection(p);
  expect({ code: Code[err.code], details: err.details }).toMatchObject({ code: 'PERMISSION_DENIED' });
  expect(err.details).toContain(`may not ${verb} on ${what} ${name}`);
  expect(err.details).not.toMatch(/not found|does not exist|no such/i);
  return err;
}

async function unauthenticated(p: Promise<unknown>, details?: string | RegExp): Promise<InboxdError> {
  const err = await rejection(p);
  expect({ code: Code[err.code], details: err.details }).toMatchObject({ code: 'UNAUTHENTICATED' });
  if (typeof details === 'string') expect(err.details).toContain(details);
  else if (details) expect(err.details).toMatch(details);
  return err;
}

type Unary<Req, Res> = (req: Req, metadata: Metadata, options: Partial<CallOptions>, cb: (err: ServiceError | null, res: Res) => void) => ClientUnaryCall;

/** A unary call of a generated client, with `key` as the bearer credential (none when unset). */
function rpc<Req, Res>(client: Client, method: Unary<Req, Res>, req: Req, key?: string, timeoutMs = 10_000): Promise<Res> {
  return new Promise((resolve, reject) =>
    method.call(client, req, md(key), { deadline: Date.now() + timeoutMs }, (err, res) => (err ? reject(err) : resolve(res))),
  );
}

interface Ended {
  code: status;
  details: string;
  /** Date.now() when the client saw the status. */
  at: number;
}

/** A raw Subscribe stream: its deliveries, its settle answers, and how (and when) it ended. */
class SubStream {
  readonly call: ClientDuplexStream<SubscribeRequest, SubscribeResponse>;
  readonly deliveries: Delivery[] = [];
  readonly responses: SubscribeResponse[] = [];
  readonly ended: Promise<Ended>;
  private result?: Ended;
  private readonly events = new EventEmitter();

  constructor(inbox: InboxClient, key: string | undefined, queue: string, maxOutstanding = 10) {
    this.call = inbox.subscribe(md(key));
    this.ended = new Promise(resolve =>
      this.call.on('status', s => {
        this.result = { code: s.code, details: s.details, at: Date.now() };
        resolve(this.result);
        this.events.emit('change');
      }),
    );
    this.call.on('error', () => {});
    this.call.on('data', (r: SubscribeResponse) => {
      this.responses.push(r);
      this.deliveries.push(...r.deliveries);
      this.events.emit('change');
    });
    this.call.write(SubscribeRequest.fromPartial({ queue, flowControl: { maxOutstandingMessages: maxOutstanding } }));
  }

  /** Resolves with what `pick` finds, as soon as it finds it; rejects when the stream ends first or after `ms`. */
  until<T>(pick: () => T | undefined, what: string, ms = 10_000): Promise<T> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => finish(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
      const check = () => {
        const got = pick();
        if (got !== undefined) return finish(undefined, got);
        if (this.result) finish(new Error(`stream ended (${status[this.result.code]}: ${this.result.details}) while waiting for ${what}`));
      };
      const finish = (err?: Error, got?: T) => {
        clearTimeout(timer);
        this.events.off('change', check);
        if (err) reject(err);
        else resolve(got as T);
      };
      this.events.on('change', check);
      check();
    });
  }

  /** The n-th delivery (1-based), once it has come. */
  delivery(n = 1): Promise<Delivery> {
    return this.until(() => this.deliveries[n - 1], `delivery #${n}`);
  }

  /** Writes a settle request and resolves with the response that answers it. */
  async settle(req: Partial<SubscribeRequest>): Promise<SubscribeResponse> {
    const from = this.responses.length;
    this.call.write(SubscribeRequest.fromPartial(req));
    return this.until(() => this.responses.slice(from).find(r => r.ackResults || r.nackResults || r.extendResults), 'the settle results');
  }

  close(): void {
    if (!this.result) this.call.cancel();
  }
}

/** Replaces the principal inside a lease token's payload, keeping its signature. */
function withPrincipal(token: string, principal: string): string {
  const [payload, sig] = token.split('.');
  const parts = Buffer.from(payload, 'base64url').toString('utf8').split('\n');
  parts[3] = principal;
  return `${Buffer.from(parts.join('\n'), 'utf8').toString('base64url')}.${sig}`;
}

// ─── the servers and principals every case shares ────────────────────────────────────────────

let databaseUrl: string;
/** Two replicas on one database. */
let s1: Server;
let s2: Server;
let admin: InboxdClient;
const sdkClients: InboxdClient[] = [];
const grpcClients: Client[] = [];
const streams: SubStream[] = [];
/** Raw SendStream calls, cancelled at the end. */
const grpcStreams: { cancel(): void }[] = [];
/** Principal name → the secret of its first key. */
const keyOf: Record<string, string> = {};

function sdk(apiKey: string | undefined, server: Server = s1): InboxdClient {
  const c = createClient({ address: server.app.address, ...(apiKey === undefined ? {} : { apiKey }), ...QUICK });
  sdkClients.push(c);
  return c;
}

function raw(server: Server = s1) {
  const inbox = new InboxClient(server.app.address, credentials.createInsecure());
  const queues = new QueuesClient(server.app.address, credentials.createInsecure());
  grpcClients.push(inbox, queues);
  return { inbox, queues };
}

function subscribe(inbox: InboxClient, key: string | undefined, queue: string, maxOutstanding = 10): SubStream {
  const s = new SubStream(inbox, key, queue, maxOutstanding);
  streams.push(s);
  return s;
}

/** Creates a principal (through `via`, an admin client) with one key; returns the key. */
async function principal(name: string, opts: Parameters<InboxdClient['auth']['createPrincipal']>[1] = {}, via = () => admin): Promise<string> {
  await via().auth.createPrincipal(name, opts);
  const { secret } = await via().auth.createKey(name);
  keyOf[name] = secret;
  return secret;
}

/** Makes `owner` create `queue` (so it owns it) through a grant it loses right after: ownership alone remains. */
async function ownedBy(owner: string, queue: string): Promise<void> {
  await admin.auth.addGrant(owner, queue, ['admin']);
  await sdk(keyOf[owner]).queues.create(queue);
  await admin.auth.removeGrant(owner, queue);
}

beforeAll(async () => {
  databaseUrl = await migratedDatabase();
  s1 = await startServer(databaseUrl, { auth: 'required', adminKey: ADMIN });
  s2 = await startServer(databaseUrl, { auth: 'required', adminKey: ADMIN });
  admin = sdk(ADMIN);
  await principal('agent-a');
  await principal('agent-b');
  await principal('agent-c');
  await ownedBy('agent-a', 'agent-a.inbox');
  await ownedBy('agent-b', 'agent-b.inbox');
  await admin.auth.addGrant('agent-a', 'agent-b.inbox', ['send']);
});

afterAll(async () => {
  for (const s of streams) s.close();
  for (const c of grpcStreams) c.cancel();
  await Promise.all(sdkClients.map(c => c.close({ timeout: '1s' }).catch(() => {})));
  for (const c of grpcClients) c.close();
  await s2?.stop();
  await s1?.stop();
});

// ─── 1. the inbox matrix, through the SDK ─────────────────────────────────────────────────────

describe("the inbox matrix (SDK): A may send to B's inbox, B owns it, C holds nothing", () => {
  it('who is who: whoami shows the grant of A and the queues each owns', async () => {
    const [a, b, c] = await Promise.all(['agent-a', 'agent-b', 'agent-c'].map(p => sdk(keyOf[p]).auth.whoami()));
    expect(a).toMatchObject({ principal: 'agent-a', admin: false, method: 'api_key', authRequired: true, ownedQueues: ['agent-a.inbox'] });
    expect(a.grants).toEqual([{ principal: 'agent-a', queue: 'agent-b.inbox', verbs: ['send'] }]);
    expect(b).toMatchObject({ principal: 'agent-b', admin: false, grants: [], ownedQueues: ['agent-b.inbox'] });
    expect(c).toMatchObject({ principal: 'agent-c', admin: false, grants: [], ownedQueues: [] });
    expect(await admin.auth.whoami()).toMatchObject({ principal: 'admin', admin: true, method: 'admin_key', authRequired: true });
  });

  it('the agent registry: when each principal was last seen, and the streams it holds on all replicas', async () => {
    await principal('registry-r');
    await admin.auth.addGrant('registry-r', 'registry.*', ['consume']);
    await admin.queues.create('registry.q1');
    await admin.queues.create('registry.q2');
    expect((await admin.auth.getPrincipal('registry-r')).lastSeenAt).toBeUndefined();
    const before = Date.now();
    const on1 = subscribe(raw(s1).inbox, keyOf['registry-r'], 'registry.q1');
    const on2 = subscribe(raw(s2).inbox, keyOf['registry-r'], 'registry.q2');
    const seen = async () => admin.auth.getPrincipal('registry-r');
    await waitFor(async () => (await seen()).openStreams === 2, 5000, 'two streams, one on each replica, to be counted');
    expect((await seen()).lastSeenAt!.getTime()).toBeGreaterThanOrEqual(before - 1000);
    on2.close();
    await waitFor(async () => (await seen()).openStreams === 1, 5000, 'the closed stream to be counted out');
    on1.close();
    await waitFor(async () => (await seen()).openStreams === 0, 5000, 'no streams');
  });

  it('A sends (the sender is stamped "agent-a" whatever A claims); A may do nothing else there; B may do everything', async () => {
    const A = sdk(keyOf['agent-a']);
    const B = sdk(keyOf['agent-b']);
    const Q = 'agent-b.inbox';

    const id1 = await A.send(Q, 'hello from a');
    // A claims to be the admin in `sender`: the server ignores it.
    const { inbox } = raw();
    const forged: SendResponse = await rpc(
      inbox,
      inbox.send,
      SendRequest.fromPartial({ messages: [{ queue: Q, payload: Buffer.from('i am admin'), sender: 'admin' }] }),
      keyOf['agent-a'],
    );
    const id2 = forged.results[0].id;

    // Everything but send: PERMISSION_DENIED naming the verb and the queue.
    await denied(A.lease(Q), 'consume', Q);
    await denied(A.queues.get(Q), 'browse', Q);
    await denied(A.queues.stats(Q), 'browse', Q);
    await denied(A.messages.page(Q), 'browse', Q);
    await denied(A.messages.get(Q, id1), 'browse', Q);
    await denied(A.queues.purge(Q), 'admin', Q);
    await denied(A.queues.update(Q, { maxAttempts: 9 }), 'admin', Q);
    await denied(A.queues.delete(Q), 'admin', Q);
    await denied(A.queues.redrive(Q), 'admin', Q);
    await denied(A.topics.subscribe('some.topic', Q), 'admin', Q);
    const sub = A.subscribe(Q, { maxOutstandingMessages: 1 });
    const subErr = InboxdError.from(await new Promise<unknown>(resolve => sub.once('error', resolve)));
    expect(subErr.code).toBe(Code.PERMISSION_DENIED);
    expect(subErr.details).toContain(`may not consume on queue ${Q}`);
    await sub.close({ timeout: '1s' }).catch(() => {});

    // B owns it (no grant at all): browse, lease, settle, purge, update, delete.
    expect((await B.queues.get(Q)).owner).toBe('agent-b');
    expect(await B.queues.stats(Q)).toMatchObject({ ready: 2, leased: 0 });
    const page = await B.messages.page(Q);
    expect(page.messages.map(m => [m.message.id, m.message.sender])).toEqual([
      [id1, 'agent-a'],
      [id2, 'agent-a'],
    ]);
    expect((await B.messages.get(Q, id2)).message.sender).toBe('agent-a');
    const leased = await B.lease(Q, { max: 10 });
    expect(leased.map(m => [m.id, m.sender, m.text()])).toEqual([
      [id1, 'agent-a', 'hello from a'],
      [id2, 'agent-a', 'i am admin'],
    ]);
    expect(await B.ack(leased[0])).toBe(1);
    expect(await B.nack(leased[1])).toEqual({ requeued: 1, deadLettered: 0 });
    expect((await B.queues.update(Q, { maxAttempts: 9 })).maxAttempts).toBe(9);
    // Every message goes, the acked one too.
    expect(await B.queues.purge(Q)).toBe(2);
    await B.queues.delete(Q);
    // A keeps its grant: to A the queue is now simply gone.
    expect((await rejection(A.send(Q, 'too late'))).code).toBe(Code.NOT_FOUND);
  });

  it('C, with no grant, is refused everything, in the same words whether or not the queue exists', async () => {
    const C = sdk(keyOf['agent-c']);
    const id = randomUUID();
    const token = await (async () => {
      // A real token of agent-a's, on agent-a's inbox, for C's settle attempts.
      const A = sdk(keyOf['agent-a']);
      await A.send('agent-a.inbox', 'for c to try');
      return (await A.lease('agent-a.inbox', { wait: '5s' }))[0].leaseToken;
    })();
    const attempts = (q: string): [string, () => Promise<unknown>][] => [
      ['send', () => C.send(q, 'x')],
      ['send', () => C.publish(q, 'x')],
      ['consume', () => C.lease(q)],
      ['consume', () => new Promise((_, reject) => C.subscribe(q, { maxOutstandingMessages: 1 }).once('error', reject))],
      ['browse', () => C.queues.get(q)],
      ['browse', () => C.queues.stats(q)],
      ['browse', () => C.messages.page(q)],
      ['browse', () => C.messages.get(q, id)],
      ['admin', () => C.queues.create(q)],
      ['admin', () => C.queues.update(q, { maxAttempts: 3 })],
      ['admin', () => C.queues.purge(q)],
      ['admin', () => C.queues.delete(q)],
      ['admin', () => C.queues.redrive(q)],
      ['admin', () => C.topics.subscribe('t.any', q)],
      ['admin', () => C.topics.unsubscribe('t.any', q)],
    ];
    const existing = 'agent-a.inbox';
    const missing = 'agent-a.no-such-inbox';
    const a = attempts(existing);
    const b = attempts(missing);
    for (let i = 0; i < a.length; i++) {
      const [verb, fnA] = a[i];
      const what = i === 1 ? 'topic' : 'queue';
      const ea = await denied(fnA(), verb, existing, what);
      const eb = await denied(b[i][1](), verb, missing, what);
      expect(ea.details.replaceAll(existing, 'Q')).toBe(eb.details.replaceAll(missing, 'Q'));
    }
    // Someone else's token: refused, whether C may consume there or not.
    expect((await rejection(C.ack(token))).code).toBe(Code.PERMISSION_DENIED);
    // Auth calls for others: refused (and not telling whether they exist).
    expect((await rejection(C.auth.listPrincipals())).code).toBe(Code.PERMISSION_DENIED);
    expect((await rejection(C.auth.createKey('agent-a'))).code).toBe(Code.PERMISSION_DENIED);
    expect((await rejection(C.auth.addGrant('agent-c', 'agent-a.inbox', ['consume']))).code).toBe(Code.PERMISSION_DENIED);
    expect((await rejection(C.auth.auditEvents())).code).toBe(Code.PERMISSION_DENIED);
    const aKey = (await admin.auth.listKeys('agent-a'))[0].id;
    expect((await rejection(C.auth.revokeKey(aKey))).code).toBe(Code.NOT_FOUND);
    // And none of it touched agent-a's inbox: its one message is still leased to agent-a.
    expect(await admin.queues.stats(existing)).toMatchObject({ ready: 0, leased: 1 });
    expect(await sdk(keyOf['agent-a']).ack(token)).toBe(1);
  });

  it('Auth service: a principal manages its own keys and the grants on what it owns, nothing more', async () => {
    const A = sdk(keyOf['agent-a']);
    // The owner of agent-a.inbox administers it: it may grant and take back verbs there.
    expect(await A.auth.addGrant('agent-c', 'agent-a.inbox', ['send'])).toEqual({ principal: 'agent-c', queue: 'agent-a.inbox', verbs: ['send'] });
    expect(await A.auth.listGrants()).toEqual(expect.arrayContaining([{ principal: 'agent-c', queue: 'agent-a.inbox', verbs: ['send'] }]));
    expect(await A.auth.listGrants('agent-b')).toEqual([]);
    expect(await sdk(keyOf['agent-c']).send('agent-a.inbox', 'granted by its owner')).toMatch(/^[0-9a-f-]{36}$/);
    expect(await A.auth.removeGrant('agent-c', 'agent-a.inbox')).toMatchObject({ verbs: [] });
    await denied(sdk(keyOf['agent-c']).send('agent-a.inbox', 'taken back'), 'send', 'agent-a.inbox');
    // Not on a prefix wider than what it owns, not on others' queues, not for itself elsewhere.
    for (const [who, name] of [
      ['agent-c', 'agent-a.*'],
      ['agent-a', 'tok.b'],
      ['agent-a', '*'],
      ['agent-c', 'agent-b.inbox'],
    ]) {
      const err = await rejection(A.auth.addGrant(who, name, ['admin']));
      expect(err.code, `${who} on ${name}`).toBe(Code.PERMISSION_DENIED);
      expect(err.details).toContain(`may not change grants on ${name}`);
    }
    // Its own keys: listed and revoked without an admin, but made only by one (a leaked key must
    // not be able to mint its own successor). Others': refused (or, to revoke, not there).
    const own = await rejection(A.auth.createKey('agent-a'));
    expect(own.code).toBe(Code.PERMISSION_DENIED);
    expect(own.details).toContain('only an admin principal creates keys');
    const { key, secret } = await admin.auth.createKey('agent-a');
    expect((await sdk(secret).auth.whoami()).keyId).toBe(key.id);
    expect((await A.auth.listKeys()).map(k => k.id)).toContain(key.id);
    expect((await A.auth.revokeKey(key.id)).revokedAt).toBeInstanceOf(Date);
    await unauthenticated(sdk(secret).auth.whoami(), 'was revoked');
    expect((await A.auth.getPrincipal('agent-a')).name).toBe('agent-a');
    for (const attempt of [
      () => A.auth.createKey('agent-b'),
      () => A.auth.listKeys('agent-b'),
      () => A.auth.getPrincipal('agent-b'),
      () => A.auth.createPrincipal('agent-a2', { admin: true }),
      () => A.auth.deletePrincipal('agent-b'),
      () => A.auth.listPrincipals(),
    ]) {
      expect((await rejection(attempt())).code).toBe(Code.PERMISSION_DENIED);
    }
    const bKey = (await admin.auth.listKeys('agent-b'))[0].id;
    expect((await rejection(A.auth.revokeKey(bKey))).code).toBe(Code.NOT_FOUND);
    expect(await sdk(keyOf['agent-b']).auth.whoami()).toMatchObject({ principal: 'agent-b', keyId: bKey });
  });

  it('queues named as a dead-letter queue or a redrive destination need send on them', async () => {
    await admin.auth.addGrant('agent-c', 'dlq-rule.*', ['admin']);
    const C = sdk(keyOf['agent-c']);
    await admin.queues.create('dlq-rule-other.dlq');
    await C.queues.create('dlq-rule.main');
    await denied(C.queues.create('dlq-rule.second', { deadLetterQueue: 'dlq-rule-other.dlq' }), 'send', 'dlq-rule-other.dlq');
    await denied(C.queues.update('dlq-rule.main', { deadLetterQueue: 'dlq-rule-other.dlq' }), 'send', 'dlq-rule-other.dlq');
    await denied(C.queues.redrive('dlq-rule.main', { destination: 'dlq-rule-other.dlq' }), 'send', 'dlq-rule-other.dlq');
    await admin.auth.addGrant('agent-c', 'dlq-rule-other.dlq', ['send']);
    expect((await C.queues.update('dlq-rule.main', { deadLetterQueue: 'dlq-rule-other.dlq' })).deadLetterQueue).toBe('dlq-rule-other.dlq');
    expect((await C.queues.redrive('dlq-rule.main', { destination: 'dlq-rule-other.dlq' })).redriven).toBe(0);
    await admin.auth.removeGrant('agent-c', 'dlq-rule.*');
    await admin.auth.removeGrant('agent-c', 'dlq-rule-other.dlq');
  });
});

// ─── 2. the same through raw gRPC and server reflection (grpcurl) ─────────────────────────────

describe("raw gRPC with server reflection, as grpcurl -H 'authorization: Bearer …'", () => {
  let source: DescriptorSource;
  let reflection: ReflectionClient;
  let client: Client;
  let inboxR: Reflected;
  let queuesR: Reflected;
  let authR: Reflected;
  let healthR: Reflected;

  async function reflect(symbol: string): Promise<Reflected> {
    return buildRoot(source.closure(await source.fileContainingSymbol(symbol)));
  }

  beforeAll(async () => {
    // Reflection needs no credential (grpcurl lists and describes before any -H is checked).
    reflection = new ReflectionClient(s1.app.address);
    source = new DescriptorSource(reflection);
    client = grpcurlClient(s1.app.address);
    grpcClients.push(client);
    [inboxR, queuesR, authR, healthR] = [
      await reflect('inboxd.v1.Inbox'),
      await reflect('inboxd.v1.Queues'),
      await reflect('inboxd.v1.Auth'),
      await reflect('grpc.health.v1.Health'),
    ];
  });
  afterAll(() => reflection?.close());

  const as = (key?: string) => (key === undefined ? {} : { metadata: [`authorization: Bearer ${key}`] });

  it('reflection and health answer without a credential; inboxd methods do not', async () => {
    expect(await reflection.listServices()).toEqual(expect.arrayContaining(['inboxd.v1.Inbox', 'inboxd.v1.Queues', 'inboxd.v1.Auth', 'grpc.health.v1.Health']));
    expect(await invokeJson(client, healthR, 'grpc.health.v1.Health/Check', {})).toEqual({ status: 'SERVING' });
    // A reflection stream carrying a credential (grpcurl sends -H on it too) works the same, even a bad one.
    const withHeader = new ReflectionClient(s1.app.address, { metadata: ['authorization: Bearer not-a-key'] });
    try {
      expect(await withHeader.listServices()).toContain('inboxd.v1.Auth');
    } finally {
      withHeader.close();
    }
    const noKey = await rejection(invokeJson(client, inboxR, 'inboxd.v1.Inbox/Send', { messages: [{ queue: 'raw.b', payload: 'eA==' }] }));
    expect(noKey.code).toBe(Code.UNAUTHENTICATED);
    expect(noKey.details).toContain('authorization: Bearer');
    expect((await rejection(invokeJson(client, authR, 'inboxd.v1.Auth/WhoAmI', {}))).code).toBe(Code.UNAUTHENTICATED);
    expect((await rejection(invokeStreamJson(client, inboxR, 'inboxd.v1.Inbox/Subscribe', [{ queue: 'raw.b' }]))).code).toBe(Code.UNAUTHENTICATED);
    expect(await invokeJson(client, authR, 'inboxd.v1.Auth/WhoAmI', {}, as(keyOf['agent-a']))).toMatchObject({
      principal: 'agent-a',
      method: 'api_key',
      authRequired: true,
    });
    // grpcurl's header syntax, any case.
    expect(await invokeJson(client, authR, 'inboxd.v1.Auth/WhoAmI', {}, { metadata: headers([`Authorization:   Bearer ${keyOf['agent-b']}`]) })).toMatchObject({
      principal: 'agent-b',
    });
  });

  it('Send, Lease, ListMessages, PurgeQueue, DeleteQueue: A sends only, B (granted) does all, C nothing', async () => {
    const Q = 'raw.b';
    await admin.queues.create(Q);
    await admin.auth.addGrant('agent-a', Q, ['send']);
    await admin.auth.addGrant('agent-b', Q, ['consume', 'browse', 'admin']);
    const [A, B, C] = [as(keyOf['agent-a']), as(keyOf['agent-b']), as(keyOf['agent-c'])];
    const send = (who: object, sender = '') =>
      invokeJson(client, inboxR, 'inboxd.v1.Inbox/Send', { messages: [{ queue: Q, payload: 'aGVsbG8=', sender }] }, who);
    const lease = (who: object) => invokeJson(client, inboxR, 'inboxd.v1.Inbox/Lease', { queue: Q, maxMessages: 10 }, who);
    const list = (who: object) => invokeJson(client, inboxR, 'inboxd.v1.Inbox/ListMessages', { queue: Q }, who);
    const purge = (who: object) => invokeJson(client, queuesR, 'inboxd.v1.Queues/PurgeQueue', { name: Q }, who);
    const del = (who: object) => invokeJson(client, queuesR, 'inboxd.v1.Queues/DeleteQueue', { name: Q }, who);

    const sent = (await send(A, 'admin')) as { results: { id: string }[] };
    expect(sent.results).toHaveLength(1);
    await send(A);
    // And a SendStream (grpcurl -d @ with one batch): one answer, then the server ends the call.
    const streamed = await invokeStreamJson(
      client,
      inboxR,
      'inboxd.v1.Inbox/SendStream',
      [{ sequence: '7', messages: [{ queue: Q, payload: 'aGk=', sender: 'admin' }] }],
      A,
    );
    expect(streamed).toMatchObject([{ sequence: '7', results: [{ queue: Q }] }]);
    await denied(lease(A), 'consume', Q);
    await denied(list(A), 'browse', Q);
    await denied(purge(A), 'admin', Q);
    await denied(del(A), 'admin', Q);
    for (const call of [send, lease, list, purge, del])
      await denied(call(C), call === send ? 'send' : call === lease ? 'consume' : call === list ? 'browse' : 'admin', Q);
    for (const call of [send, lease, list, purge, del]) expect((await rejection(call({}))).code).toBe(Code.UNAUTHENTICATED);
    // B was granted everything but send.
    await denied(send(B), 'send', Q);

    const listed = (await list(B)) as { messages: { message: { id: string; sender: string } }[] };
    expect(listed.messages.map(m => m.message.sender)).toEqual(['agent-a', 'agent-a', 'agent-a']);
    expect(listed.messages[0].message.id).toBe(sent.results[0].id);
    const leased = (await lease(B)) as { deliveries: { message: { sender: string; payload: string }; leaseToken: string }[] };
    expect(leased.deliveries.map(d => d.message.sender)).toEqual(['agent-a', 'agent-a', 'agent-a']);
    // A's acks of B's leases: refused; B's own: done.
    const tokens = leased.deliveries.map(d => d.leaseToken);
    await expect(invokeJson(client, inboxR, 'inboxd.v1.Inbox/Ack', { leaseTokens: tokens }, A)).rejects.toMatchObject({ code: status.PERMISSION_DENIED });
    expect(await invokeJson(client, inboxR, 'inboxd.v1.Inbox/Ack', { leaseTokens: tokens.slice(0, 1) }, B)).toEqual({ acked: 1 });
    // The acked message and the two still leased.
    expect(await purge(B)).toEqual({ purged: '3' });
    expect(await del(B)).toEqual({});
  });

  it('over TLS: reflection without a credential, calls with the bearer key (grpcurl -cacert … -H …)', async () => {
    const tls = makeTlsFiles();
    const srv = await startServer(databaseUrl, { auth: 'required', adminKey: ADMIN, tlsCert: tls.serverCert, tlsKey: tls.serverKey });
    const creds = tlsCredentials({ ca: fs.readFileSync(tls.ca) });
    const r = new ReflectionClient(srv.app.address, { credentials: creds });
    const c = grpcurlClient(srv.app.address, { credentials: creds });
    const plain = grpcurlClient(srv.app.address);
    try {
      expect(await r.listServices()).toContain('inboxd.v1.Auth');
      const src = new DescriptorSource(r);
      const auth = buildRoot(src.closure(await src.fileContainingSymbol('inboxd.v1.Auth')));
      expect((await rejection(invokeJson(c, auth, 'inboxd.v1.Auth/WhoAmI', {}, 5000))).code).toBe(Code.UNAUTHENTICATED);
      expect(await invokeJson(c, auth, 'inboxd.v1.Auth/WhoAmI', {}, { metadata: bearer(keyOf['agent-c']) })).toMatchObject({
        principal: 'agent-c',
        method: 'api_key',
      });
      // Plaintext to a TLS port: no connection at all, whatever the header says.
      expect((await rejection(invokeJson(plain, auth, 'inboxd.v1.Auth/WhoAmI', {}, { timeoutMs: 3000, metadata: bearer(ADMIN) }))).code).toBe(Code.UNAVAILABLE);
      // The SDK over TLS with the same key.
      const viaSdk = createClient({ address: srv.app.address, apiKey: keyOf['agent-c'], tls: { ca: fs.readFileSync(tls.ca) }, ...QUICK });
      try {
        expect((await viaSdk.auth.whoami()).principal).toBe('agent-c');
      } finally {
        viaSdk.pool.close();
      }
    } finally {
      r.close();
      c.close();
      plain.close();
      await srv.stop();
      fs.rmSync(tls.dir, { recursive: true, force: true });
    }
  });
});

// ─── 3. no valid credential: every method refused ─────────────────────────────────────────────

describe('with auth off (the default on loopback)', () => {
  it('everything is allowed to anyone: WhoAmI says anonymous, auth_required false, and a credential is not even looked at', async () => {
    const open = await startServer(await migratedDatabase());
    try {
      for (const c of [
        createClient({ address: open.app.address, ...QUICK }),
        createClient({ address: open.app.address, apiKey: 'not-a-key-at-all', ...QUICK }),
      ]) {
        try {
          expect(await c.auth.whoami()).toEqual({
            principal: 'anonymous',
            admin: true,
            method: 'none',
            keyId: '',
            grants: [],
            ownedQueues: [],
            authRequired: false,
          });
          const q = `open.${randomBytes(4).toString('hex')}`;
          expect((await c.queues.create(q)).owner).toBe('');
          await c.send(q, 'hi', { headers: { h: '1' } });
          const [m] = await c.lease(q, { wait: '5s' });
          expect(m.sender).toBe('');
          expect(await c.ack(m)).toBe(1);
          await c.queues.delete(q);
        } finally {
          c.pool.close();
        }
      }
    } finally {
      await open.stop();
    }
  });
});

describe('without a valid credential every Inbox, Queues and Auth method is UNAUTHENTICATED', () => {
  const methods: { path: string; requestStream: boolean; responseStream: boolean }[] = [
    ...Object.values(InboxService),
    ...Object.values(QueuesService),
    ...Object.values(AuthService),
  ];
  const unknownKey = `ibx_${randomBytes(8).toString('hex')}_${randomBytes(32).toString('base64url')}`;
  const cases: [string, Metadata, RegExp][] = [
    ['no credential', new Metadata(), /requires authentication.*authorization: Bearer/],
    ['a garbage bearer', headers(['authorization: Bearer garbage']), /not an API key of this server/],
    ['a well-formed unknown key', headers([`authorization: Bearer ${unknownKey}`]), /API key is not valid/],
    ['a non-bearer authorization', headers(['authorization: Basic YWRtaW46YWRtaW4=']), /not an API key of this server/],
  ];

  /** One call with an empty request (invalid for most methods: refused before it is looked at). */
  function callWith(client: Client, m: (typeof methods)[number], metadata: Metadata): Promise<{ code: status; details: string }> {
    const id = (b: Buffer) => b;
    const deadline = Date.now() + 10_000;
    return new Promise(resolve => {
      const done = (err: ServiceError | null) => resolve(err ? { code: err.code, details: err.details } : { code: status.OK, details: '' });
      if (!m.requestStream && !m.responseStream) {
        client.makeUnaryRequest(m.path, id, id, Buffer.alloc(0), metadata.clone(), { deadline }, err => done(err));
        return;
      }
      const call =
        m.requestStream && m.responseStream
          ? client.makeBidiStreamRequest(m.path, id, id, metadata.clone(), { deadline })
          : m.responseStream
            ? client.makeServerStreamRequest(m.path, id, id, Buffer.alloc(0), metadata.clone(), { deadline })
            : client.makeClientStreamRequest(m.path, id, id, metadata.clone(), { deadline }, () => {});
      call.on('error', () => {});
      call.on('data', () => {});
      // Nothing written, the stream left open: it must be refused as it opens.
      call.on('status', s => resolve({ code: s.code, details: s.details }));
    });
  }

  it(`covers ${methods.length} methods, unary and streaming`, () => {
    expect(methods.length).toBe(33);
    expect(methods.filter(m => m.requestStream || m.responseStream).map(m => m.path)).toEqual(['/inboxd.v1.Inbox/SendStream', '/inboxd.v1.Inbox/Subscribe']);
  });

  for (const [name, metadata, why] of cases) {
    it(`with ${name}`, async () => {
      const client = new Client(s1.app.address, credentials.createInsecure());
      grpcClients.push(client);
      const results = await Promise.all(methods.map(async m => ({ path: m.path, ...(await callWith(client, m, metadata)) })));
      expect(results.filter(r => r.code !== status.UNAUTHENTICATED)).toEqual([]);
      for (const r of results) expect(r.details, r.path).toMatch(why);
    });
  }

  it('an SDK client without a key (the anonymous client of an auth-off server) is refused, and not retried', async () => {
    const anon = sdk(undefined);
    const started = Date.now();
    await unauthenticated(anon.auth.whoami(), 'authorization: Bearer');
    await unauthenticated(anon.send('agent-a.inbox', 'x'));
    await unauthenticated(anon.queues.create('anon.q'));
    const sub = anon.subscribe('agent-a.inbox');
    expect(InboxdError.from(await new Promise(resolve => sub.once('error', resolve))).code).toBe(Code.UNAUTHENTICATED);
    expect(Date.now() - started).toBeLessThan(3000);
  });
});

// ─── 4. lease tokens belong to the principal that leased ──────────────────────────────────────

describe('lease tokens are bound to the principal that leased', () => {
  beforeAll(async () => {
    await admin.queues.create('tok.b');
    await admin.queues.create('tok.shared');
    await admin.auth.addGrant('agent-b', 'tok.b', ['consume']);
    await admin.auth.addGrant('agent-a', 'tok.shared', ['consume']);
    await admin.auth.addGrant('agent-b', 'tok.shared', ['consume']);
  });

  it("unary: A (a consumer itself) cannot ack, nack or extend B's lease; an altered token is INVALID_ARGUMENT; B's ack works after", async () => {
    const A = sdk(keyOf['agent-a']);
    const B = sdk(keyOf['agent-b']);
    for (let i = 0; i < 3; i++) await admin.send('tok.b', `m${i}`);
    const [m1, m2, m3] = await B.lease('tok.b', { max: 3, visibilityTimeout: '60s' });
    expect([m1, m2, m3].every(Boolean)).toBe(true);

    for (const attempt of [
      () => A.ack(m1.leaseToken),
      () => A.nack(m1.leaseToken),
      () => A.extend(m1.leaseToken, '1s'),
      () => A.nack(m2.leaseToken, { deadLetter: true, error: 'x' }),
    ]) {
      const err = await rejection(attempt());
      expect(err.code).toBe(Code.PERMISSION_DENIED);
      expect(err.details).toContain('issued to another principal');
    }
    // The principal inside changed to A's, the signature kept: not a token of this server.
    const altered = withPrincipal(m1.leaseToken, 'agent-a');
    for (const attempt of [() => A.ack(altered), () => A.nack(altered), () => A.extend(altered, '1s'), () => B.ack(altered)]) {
      const err = await rejection(attempt());
      expect(err.code).toBe(Code.INVALID_ARGUMENT);
      expect(err.details).toContain('not issued by this server');
    }
    // A made-up one too.
    expect((await rejection(A.ack(`${Buffer.from(`tok.b\n${randomUUID()}\n0\nagent-a`).toString('base64url')}.${'A'.repeat(22)}`))).code).toBe(
      Code.INVALID_ARGUMENT,
    );

    // Nothing changed: all three still leased to B, for about the 60 s B asked.
    expect(await admin.queues.stats('tok.b')).toMatchObject({ ready: 0, leased: 3 });
    const leasedNow = await admin.messages.page('tok.b', { state: 'leased' });
    expect(leasedNow.messages).toHaveLength(3);

    // Several tokens in one Ack, one of them bad: the call fails, and A's own token is not acked either.
    await A.send('agent-a.inbox', 'mine');
    const [mine] = await A.lease('agent-a.inbox', { wait: '5s' });
    const ackedBefore = (await admin.queues.stats('agent-a.inbox')).acked;
    expect((await rejection(A.ack([mine.leaseToken, m1.leaseToken]))).code).toBe(Code.PERMISSION_DENIED);
    expect((await rejection(A.ack([mine.leaseToken, altered]))).code).toBe(Code.INVALID_ARGUMENT);
    expect((await rejection(A.extend([mine.leaseToken, m2.leaseToken], '30s'))).code).toBe(Code.PERMISSION_DENIED);
    expect(await admin.queues.stats('agent-a.inbox')).toMatchObject({ leased: 1, acked: ackedBefore });
    expect(await A.ack(mine)).toBe(1);

    // The real holder settles them.
    expect(await B.ack(m1)).toBe(1);
    expect((await B.extend(m2, '30s'))[0].getTime()).toBeGreaterThan(Date.now() + 20_000);
    expect(await B.nack(m3)).toEqual({ requeued: 1, deadLettered: 0 });
    expect(await B.ack(m2)).toBe(1);
    expect(await admin.queues.stats('tok.b')).toMatchObject({ ready: 1, leased: 0, acked: 2 });
  });

  it('on a Subscribe stream: foreign tokens fail with code 7, altered ones with 3, and nothing is settled', async () => {
    const B = sdk(keyOf['agent-b']);
    await admin.send('tok.shared', 'shared');
    await admin.send('tok.b', 'b only');
    const [shared] = await B.lease('tok.shared', { wait: '5s', visibilityTimeout: '60s' });
    const onB = await B.lease('tok.b', { max: 10, visibilityTimeout: '60s' });
    const bOnly = onB.find(m => m.text() === 'b only')!;
    expect(shared && bOnly).toBeTruthy();

    const { inbox } = raw();
    // A's stream on its own inbox (A consumes there), and one on the queue B leased from (A consumes there too).
    const own = subscribe(inbox, keyOf['agent-a'], 'agent-a.inbox');
    const onShared = subscribe(inbox, keyOf['agent-a'], 'tok.shared');
    const altered = withPrincipal(shared.leaseToken, 'agent-a');
    for (const s of [own, onShared]) {
      const acked = await s.settle({ ackLeaseTokens: [shared.leaseToken, bOnly.leaseToken, altered] });
      expect(acked.ackResults!.succeeded).toEqual([]);
      expect(acked.ackResults!.failed.map(f => [f.leaseToken, f.code])).toEqual([
        [shared.leaseToken, status.PERMISSION_DENIED],
        [bOnly.leaseToken, status.PERMISSION_DENIED],
        [altered, status.INVALID_ARGUMENT],
      ]);
      expect(acked.ackResults!.failed[0].message).toContain('issued to another principal');
      const nacked = await s.settle({ nackLeaseTokens: [shared.leaseToken, bOnly.leaseToken] });
      expect(nacked.nackResults!.failed.map(f => f.code)).toEqual([status.PERMISSION_DENIED, status.PERMISSION_DENIED]);
      const extended = await s.settle({ extendLeaseTokens: [shared.leaseToken, bOnly.leaseToken], extendVisibilityTimeout: dur(1) });
      expect(extended.extendResults!.failed.map(f => f.code)).toEqual([status.PERMISSION_DENIED, status.PERMISSION_DENIED]);
    }
    // Both streams still open, both messages still B's.
    expect(await Promise.race([own.ended.then(() => 'ended'), onShared.ended.then(() => 'ended'), sleep(50).then(() => 'open')])).toBe('open');
    expect(await admin.queues.stats('tok.shared')).toMatchObject({ leased: 1, acked: 0 });
    expect(await B.ack([shared, ...onB])).toBe(1 + onB.length);
    own.close();
    onShared.close();
  });
});

// ─── 5. changes reach open streams, on every replica ──────────────────────────────────────────

describe('open streams end when their key, principal or grant goes, on every replica, within 2 s', () => {
  /** A queue with one message, so that a stream on it shows it is open by its first delivery. */
  async function queueWithMessage(name: string): Promise<void> {
    await admin.queues.create(name);
    await admin.send(name, 'to show the stream is open');
  }

  it("revoking B's key through replica 1 ends B's streams on both replicas UNAUTHENTICATED", async () => {
    const key = await principal('rev-b');
    await admin.auth.addGrant('rev-b', 'rev.*', ['consume']);
    await queueWithMessage('rev.q1');
    await queueWithMessage('rev.q2');
    await queueWithMessage('rev.q3');
    const on1 = subscribe(raw(s1).inbox, key, 'rev.q1');
    const on2 = subscribe(raw(s2).inbox, key, 'rev.q2');
    // And the SDK's subscriber, on replica 2: it must stop with the error, not retry.
    let handled!: () => void;
    const sdkHandled = new Promise<void>(resolve => (handled = resolve));
    const viaSdk = sdk(key, s2).subscribe('rev.q3', async () => handled(), { maxOutstandingMessages: 1 });
    const sdkError = new Promise<{ err: InboxdError; at: number }>(resolve => viaSdk.once('error', e => resolve({ err: InboxdError.from(e), at: Date.now() })));
    await Promise.all([on1.delivery(), on2.delivery(), sdkHandled]);
    expect(await sdk(key, s2).auth.whoami()).toMatchObject({ principal: 'rev-b' });

    const keyId = (await admin.auth.listKeys('rev-b'))[0].id;
    const t0 = Date.now();
    await admin.auth.revokeKey(keyId);
    const [e1, e2, e3] = await Promise.all([on1.ended, on2.ended, sdkError]);
    expect({ code: status[e1.code], details: e1.details }).toMatchObject({
      code: 'UNAUTHENTICATED',
      details: expect.stringContaining(`API key ${keyId} was revoked`),
    });
    expect({ code: status[e2.code], details: e2.details }).toMatchObject({
      code: 'UNAUTHENTICATED',
      details: expect.stringContaining(`API key ${keyId} was revoked`),
    });
    expect(e3.err.code).toBe(Code.UNAUTHENTICATED);
    for (const at of [e1.at, e2.at, e3.at]) expect(at - t0).toBeLessThan(STREAM_END_MS);
    // The messages they held were released, and the key is refused on both replicas at once.
    await unauthenticated(sdk(key, s1).auth.whoami(), 'was revoked');
    await unauthenticated(sdk(key, s2).lease('rev.q1'), 'was revoked');
    await waitFor(async () => (await admin.queues.stats('rev.q1')).leased === 0, 5000, 'rev.q1 released');
  });

  it("removing B's consume grant (B does not own the queue) ends its stream PERMISSION_DENIED; other grants keep theirs", async () => {
    const key = await principal('grant-b');
    await admin.auth.addGrant('grant-b', 'grant.q1', ['consume', 'browse']);
    await admin.auth.addGrant('grant-b', 'grant.q2', ['consume']);
    await queueWithMessage('grant.q1');
    await queueWithMessage('grant.q2');
    const doomed = subscribe(raw(s2).inbox, key, 'grant.q1');
    const kept = subscribe(raw(s1).inbox, key, 'grant.q2');
    await Promise.all([doomed.delivery(), kept.delivery()]);

    const t0 = Date.now();
    // Through replica 1; the stream is on replica 2. Browse stays: only consume goes.
    await admin.auth.removeGrant('grant-b', 'grant.q1', ['consume']);
    const e = await doomed.ended;
    expect({ code: status[e.code], details: e.details }).toMatchObject({
      code: 'PERMISSION_DENIED',
      details: expect.stringContaining('may no longer consume on queue grant.q1'),
    });
    expect(e.at - t0).toBeLessThan(STREAM_END_MS);
    // The other stream is untouched: it still gets what is sent.
    await admin.send('grant.q2', 'after');
    expect(Buffer.from((await kept.delivery(2)).message!.payload).toString()).toBe('after');
    await denied(sdk(key, s2).lease('grant.q1'), 'consume', 'grant.q1');
    expect((await sdk(key, s2).queues.stats('grant.q1')).queue).toBe('grant.q1');
    kept.close();
  });

  it('deleting the principal ends its streams UNAUTHENTICATED', async () => {
    const key = await principal('del-b');
    await admin.auth.addGrant('del-b', 'del.q', ['consume']);
    await queueWithMessage('del.q');
    const s = subscribe(raw(s2).inbox, key, 'del.q');
    await s.delivery();
    const t0 = Date.now();
    await admin.auth.deletePrincipal('del-b');
    const e = await s.ended;
    expect(status[e.code]).toBe('UNAUTHENTICATED');
    expect(e.at - t0).toBeLessThan(STREAM_END_MS);
    await unauthenticated(sdk(key, s1).auth.whoami());
    // A principal of the same name made again does not revive the old key.
    await admin.auth.createPrincipal('del-b');
    await unauthenticated(sdk(key, s2).auth.whoami());
  });

  it('key rotation: a second key keeps working, and its stream stays open, while the first is revoked', async () => {
    const first = await principal('rot-b');
    const second = (await admin.auth.createKey('rot-b')).secret;
    await admin.auth.addGrant('rot-b', 'rot.*', ['consume']);
    await queueWithMessage('rot.q1');
    await queueWithMessage('rot.q2');
    const old = subscribe(raw(s1).inbox, first, 'rot.q1');
    const fresh = subscribe(raw(s2).inbox, second, 'rot.q2');
    await Promise.all([old.delivery(), fresh.delivery()]);

    // The principal itself rotates: it revokes its own first key with the second.
    const rot = sdk(second, s2);
    const firstId = first.split('_')[1];
    expect((await rot.auth.listKeys()).map(k => k.id).sort()).toEqual([firstId, second.split('_')[1]].sort());
    const t0 = Date.now();
    await rot.auth.revokeKey(firstId);
    const e = await old.ended;
    expect(status[e.code]).toBe('UNAUTHENTICATED');
    expect(e.at - t0).toBeLessThan(STREAM_END_MS);

    await admin.send('rot.q2', 'after rotation');
    expect(Buffer.from((await fresh.delivery(2)).message!.payload).toString()).toBe('after rotation');
    expect(await rot.auth.whoami()).toMatchObject({ principal: 'rot-b', keyId: second.split('_')[1] });
    await unauthenticated(sdk(first, s1).auth.whoami(), 'was revoked');
    fresh.close();
  });

  it('revoking a key ends its open SendStream too (RevokeKey: "its open streams end")', async () => {
    const key = await principal('rev-sender');
    await admin.auth.addGrant('rev-sender', 'revsend.q', ['send']);
    await admin.queues.create('revsend.q');
    const { inbox } = raw(s2);
    const call = inbox.sendStream(md(key));
    grpcStreams.push(call);
    const responses: SendStreamResponse[] = [];
    const ended = new Promise<Ended>(resolve => call.on('status', s => resolve({ code: s.code, details: s.details, at: Date.now() })));
    call.on('error', () => {});
    const answered = (n: number) => waitFor(() => responses.length >= n, 5000, `${n} SendStream answers`);
    call.on('data', (r: SendStreamResponse) => responses.push(r));
    call.write(SendStreamRequest.fromPartial({ sequence: '1', messages: [{ queue: 'revsend.q', payload: Buffer.from('before') }] }));
    await answered(1);
    expect(responses[0]).toMatchObject({ sequence: '1', errorCode: 0 });

    const t0 = Date.now();
    await admin.auth.revokeKey((await admin.auth.listKeys('rev-sender'))[0].id);
    const outcome = await bounded(ended, STREAM_END_MS + 500);
    // Whether or not it ended: nothing more may be stored with the revoked key.
    call.write(SendStreamRequest.fromPartial({ sequence: '2', messages: [{ queue: 'revsend.q', payload: Buffer.from('after revocation') }] }));
    const second = await Promise.race([
      ended.then(() => 'stream ended'),
      answered(2).then(() => (responses[1].errorCode === 0 ? 'stored' : `refused ${status[responses[1].errorCode]}`)),
    ]);
    const end = outcome ? `${status[outcome.code]} ${outcome.at - t0 < STREAM_END_MS ? 'within 2 s' : 'late'}` : 'still open';
    expect({ end, second, stored: (await admin.queues.stats('revsend.q')).ready }).toEqual({
      end: 'UNAUTHENTICATED within 2 s',
      second: 'stream ended',
      stored: 1,
    });
  });
});

// ─── 6. topics ────────────────────────────────────────────────────────────────────────────────

describe('topics: a publisher reaches only the subscribed queues it may send to', () => {
  it('publish needs send on the topic; copies go only to queues the publisher may send to', async () => {
    const key = await principal('pub-p');
    const P = sdk(key);
    await admin.queues.create('news.a');
    await admin.queues.create('news.b');
    await admin.topics.subscribe('news.t', 'news.a');
    await admin.topics.subscribe('news.t', 'news.b');
    await denied(P.publish('news.t', 'no grant yet'), 'send', 'news.t', 'topic');

    await admin.auth.addGrant('pub-p', 'news.t', ['send']);
    // Send on the topic alone reaches no queue.
    expect(await P.publish('news.t', 'nowhere')).toEqual([]);
    await admin.auth.addGrant('pub-p', 'news.a', ['send']);
    const copies = await P.publish('news.t', 'to a only');
    expect(copies.map(c => c.queue)).toEqual(['news.a']);
    expect(await admin.queues.stats('news.a')).toMatchObject({ ready: 1 });
    expect(await admin.queues.stats('news.b')).toMatchObject({ ready: 0 });
    const [m] = await admin.lease('news.a');
    expect([m.id, m.sender, m.text()]).toEqual([copies[0].id, 'pub-p', 'to a only']);
    await m.ack();
    // Nor may it unsubscribe queues it does not administer.
    await denied(P.topics.unsubscribe('news.t', 'news.b'), 'admin', 'news.b');
  });

  it('AddTopicSubscription needs admin on the queue and consume on the topic', async () => {
    const key = await principal('sub-s');
    const S = sdk(key);
    await ownedBy('sub-s', 'subs.own');
    await admin.queues.create('subs.other');
    await admin.auth.addGrant('sub-s', 'subs.other', ['consume', 'send']);
    // Owns the queue, holds nothing on the topic.
    await denied(S.topics.subscribe('news.t', 'subs.own'), 'consume', 'news.t', 'topic');
    // send on the topic is not enough either.
    await admin.auth.addGrant('sub-s', 'news.t', ['send']);
    await denied(S.topics.subscribe('news.t', 'subs.own'), 'consume', 'news.t', 'topic');
    await admin.auth.addGrant('sub-s', 'news.t', ['consume']);
    await S.topics.subscribe('news.t', 'subs.own');
    // Consume on the topic, no admin on the queue (consume and send on it are not enough).
    await denied(S.topics.subscribe('news.t', 'subs.other'), 'admin', 'subs.other');
    await denied(S.topics.subscribe('news.t', 'news.b'), 'admin', 'news.b');

    // The publisher of the previous case still reaches news.a only; sub-s itself reaches its own queue and news.a? No: only where it may send.
    const copies = await S.publish('news.t', 'from sub-s');
    expect(copies.map(c => c.queue)).toEqual(['subs.own']);
    const P = sdk(keyOf['pub-p']);
    expect((await P.publish('news.t', 'from pub-p')).map(c => c.queue)).toEqual(['news.a']);
    await S.topics.unsubscribe('news.t', 'subs.own');
    expect(await S.publish('news.t', 'after unsubscribe')).toEqual([]);
  });
});

// ─── 7. listing only what one may see ─────────────────────────────────────────────────────────

describe('ListQueues and ListTopics show only names the caller holds a verb on, in full pages', () => {
  let L: InboxdClient;
  let lKey: string;
  const visibleQueues = ['list.own', 'list.q02', 'list.q07', 'list.q10', 'list.q11'];

  beforeAll(async () => {
    lKey = await principal('lister');
    L = sdk(lKey);
    for (let i = 0; i < 12; i++) await admin.queues.create(`list.q${String(i).padStart(2, '0')}`);
    await admin.auth.addGrant('lister', 'list.q02', ['browse']);
    await admin.auth.addGrant('lister', 'list.q07', ['send']);
    await admin.auth.addGrant('lister', 'list.q1*', ['consume']);
    await ownedBy('lister', 'list.own');
  });

  it('ListQueues: the visible names only, every page full but the last', async () => {
    const { queues } = raw();
    const pages: string[][] = [];
    let pageToken = '';
    do {
      const res: ListQueuesResponse = await rpc(queues, queues.listQueues, ListQueuesRequest.fromPartial({ pageSize: 2, pageToken }), lKey);
      pages.push(res.queues.map(q => q.name));
      pageToken = res.nextPageToken;
    } while (pageToken && pages.length < 20);
    expect(pages).toEqual([['list.own', 'list.q02'], ['list.q07', 'list.q10'], ['list.q11']]);
    // The SDK's iterator gets the same; an admin sees every queue; C (no grant) sees none.
    const viaSdk: string[] = [];
    for await (const q of L.queues.list(3)) viaSdk.push(q.name);
    expect(viaSdk).toEqual(visibleQueues);
    const all: string[] = [];
    for await (const q of admin.queues.list(1000)) all.push(q.name);
    expect(all).toEqual(expect.arrayContaining([...visibleQueues, 'list.q00', 'list.q05', 'agent-a.inbox']));
    const none: ListQueuesResponse = await rpc(queues, queues.listQueues, ListQueuesRequest.fromPartial({ pageSize: 1 }), await principal('list-nobody'));
    expect(none).toEqual({ queues: [], nextPageToken: '' });
    // A page the caller sees one name on, among many it does not.
    const one: ListQueuesResponse = await rpc(queues, queues.listQueues, ListQueuesRequest.fromPartial({ pageSize: 1 }), keyOf['agent-b']);
    expect(one.queues.length).toBe(1);
  });

  it('ListTopics: topics named by a grant, with the queues of each the caller may see', async () => {
    await admin.topics.subscribe('list.t1', 'list.q00');
    await admin.topics.subscribe('list.t2', 'list.q02');
    await admin.topics.subscribe('list.t2', 'list.q03');
    for (let i = 0; i < 6; i++) await admin.topics.subscribe(`list.tt${i}`, i % 2 ? 'list.q00' : 'list.q10');
    await admin.auth.addGrant('lister', 'list.t2', ['consume']);
    await admin.auth.addGrant('lister', 'list.tt*', ['send']);

    const { queues } = raw();
    const pages: { name: string; queues: string[] }[][] = [];
    let pageToken = '';
    do {
      const res: ListTopicsResponse = await rpc(queues, queues.listTopics, ListTopicsRequest.fromPartial({ pageSize: 3, pageToken }), lKey);
      pages.push(res.topics);
      pageToken = res.nextPageToken;
    } while (pageToken && pages.length < 20);
    expect(pages.map(p => p.map(t => t.name))).toEqual([['list.t2', 'list.tt0', 'list.tt1'], ['list.tt2', 'list.tt3', 'list.tt4'], ['list.tt5']]);
    const byName = Object.fromEntries(pages.flat().map(t => [t.name, t.queues]));
    expect(byName['list.t2']).toEqual(['list.q02']);
    expect(byName['list.tt0']).toEqual(['list.q10']);
    expect(byName['list.tt1']).toEqual([]);
    const adminTopics: { name: string; queues: string[] }[] = [];
    for await (const t of admin.topics.list()) adminTopics.push(t);
    expect(adminTopics.find(t => t.name === 'list.t2')?.queues.sort()).toEqual(['list.q02', 'list.q03']);
    expect(adminTopics.map(t => t.name)).toContain('list.t1');
    const none: ListTopicsResponse = await rpc(queues, queues.listTopics, ListTopicsRequest.fromPartial({ pageSize: 2 }), keyOf['list-nobody']);
    expect(none.topics).toEqual([]);
  });
});

// ─── 8. quotas ────────────────────────────────────────────────────────────────────────────────

describe('per-principal quotas (a replica with INBOXD_PRINCIPAL_MAX_STREAMS=2, INBOXD_PRINCIPAL_SEND_RATE=5)', () => {
  let s3: Server;
  let quotaAdmin: InboxdClient;

  beforeAll(async () => {
    s3 = await startServer(databaseUrl, { auth: 'required', adminKey: ADMIN, principalMaxStreams: 2, principalSendRate: 5 });
    quotaAdmin = sdk(ADMIN, s3);
    for (let i = 1; i <= 8; i++) {
      await admin.queues.create(`quota.s${i}`);
      await admin.send(`quota.s${i}`, 'one');
    }
    await admin.queues.create('quota.rate');
    await admin.queues.create('quota.ss');
  });
  afterAll(async () => {
    for (const s of streams) s.close();
    await s3?.stop();
  });

  it('streams: the third Subscribe of a principal is RESOURCE_EXHAUSTED, others are not counted against it, a closed one frees its place', async () => {
    const key = await principal('quota-s', {}, () => quotaAdmin);
    const other = await principal('quota-o', {}, () => quotaAdmin);
    await admin.auth.addGrant('quota-s', 'quota.*', ['consume', 'send']);
    await admin.auth.addGrant('quota-o', 'quota.*', ['consume']);
    const { inbox } = raw(s3);
    const first = subscribe(inbox, key, 'quota.s1', 1);
    await first.delivery();
    const second = subscribe(inbox, key, 'quota.s2', 1);
    await second.delivery();
    const third = subscribe(inbox, key, 'quota.s3', 1);
    const e = await third.ended;
    expect({ code: status[e.code], details: e.details }).toMatchObject({
      code: 'RESOURCE_EXHAUSTED',
      details: expect.stringContaining('INBOXD_PRINCIPAL_MAX_STREAMS'),
    });
    // Another principal: its own count.
    const others = subscribe(inbox, other, 'quota.s3', 1);
    await others.delivery();
    // On another replica the principal has its own count there.
    const elsewhere = subscribe(raw(s1).inbox, key, 'quota.s4', 1);
    await elsewhere.delivery();
    // Closing one frees a place (once the server has seen it close).
    first.close();
    await first.ended;
    let again: SubStream | undefined;
    await waitFor(
      async () => {
        again = subscribe(inbox, key, 'quota.s5', 1);
        const r = await Promise.race([again.delivery().then(() => 'open'), again.ended.then(x => status[x.code])]);
        if (r !== 'open') expect(r).toBe('RESOURCE_EXHAUSTED');
        return r === 'open';
      },
      3000,
      'a place freed by the closed stream',
    );
    for (const s of [second, others, elsewhere, again!]) s.close();
  });

  it("streams: a principal's own max_streams overrides the server's", async () => {
    const key = await principal('quota-big', { maxStreams: 3 }, () => quotaAdmin);
    const small = await principal('quota-small', { maxStreams: 1 }, () => quotaAdmin);
    await admin.auth.addGrant('quota-big', 'quota.*', ['consume']);
    await admin.auth.addGrant('quota-small', 'quota.*', ['consume']);
    for (let i = 1; i <= 8; i++) await admin.send(`quota.s${i}`, 'more');
    const { inbox } = raw(s3);
    const open: SubStream[] = [];
    for (const q of ['quota.s6', 'quota.s7', 'quota.s8']) {
      const s = subscribe(inbox, key, q, 1);
      await s.delivery();
      open.push(s);
    }
    const fourth = subscribe(inbox, key, 'quota.s1', 1);
    const e = await fourth.ended;
    expect({ code: status[e.code], details: e.details }).toMatchObject({ code: 'RESOURCE_EXHAUSTED', details: expect.stringContaining('max_streams') });
    const s1st = subscribe(inbox, small, 'quota.s2', 1);
    await s1st.delivery();
    const s2nd = subscribe(inbox, small, 'quota.s3', 1);
    expect(status[(await s2nd.ended).code]).toBe('RESOURCE_EXHAUSTED');
    for (const s of [...open, s1st]) s.close();
  });

  it("streams: SendStream counts against the principal's streams as Subscribe does", async () => {
    const key = await principal('quota-ss', {}, () => quotaAdmin);
    await admin.auth.addGrant('quota-ss', 'quota.*', ['send']);
    const { inbox } = raw(s3);
    const open = (seq: string, withKey = key) => {
      const call = inbox.sendStream(md(withKey));
      grpcStreams.push(call);
      const responses: SendStreamResponse[] = [];
      const ended = new Promise<Ended>(resolve => call.on('status', s => resolve({ code: s.code, details: s.details, at: Date.now() })));
      call.on('error', () => {});
      call.on('data', (r: SendStreamResponse) => responses.push(r));
      call.write(SendStreamRequest.fromPartial({ sequence: seq, messages: [{ queue: 'quota.ss', payload: Buffer.from(seq) }] }));
      const answered = new Promise<string>(resolve => call.on('data', () => resolve('answered')));
      return { call, responses, ended, answered };
    };
    const a = open('1');
    expect(await Promise.race([a.answered, a.ended.then(x => status[x.code])])).toBe('answered');
    const b = open('2');
    expect(await Promise.race([b.answered, b.ended.then(x => status[x.code])])).toBe('answered');
    // Three more, each refused. Each with a new key of the principal, which this replica has not
    // cached: its first batch arrives while the key is looked up, before the quota is checked.
    const refused: ReturnType<typeof open>[] = [];
    for (const seq of ['31', '32', '33']) {
      const c = open(seq, (await quotaAdmin.auth.createKey('quota-ss')).secret);
      refused.push(c);
      expect(await Promise.race([c.answered, c.ended.then(x => `${status[x.code]}: ${x.details}`)])).toMatch(/^RESOURCE_EXHAUSTED/);
      expect((await c.ended).details).toContain('INBOXD_PRINCIPAL_MAX_STREAMS');
    }
    // The refused streams stored nothing: only the first two batches are in the queue.
    const stored: string[] = [];
    for await (const m of quotaAdmin.messages.list('quota.ss')) stored.push(m.message.payload.toString());
    expect(stored.sort()).toEqual(['1', '2']);
    // The two open streams go on.
    a.call.write(SendStreamRequest.fromPartial({ sequence: '4', messages: [{ queue: 'quota.ss', payload: Buffer.from('4') }] }));
    await waitFor(() => a.responses.length === 2, 5000, 'the answer to batch 4');
    expect(a.responses[1]).toMatchObject({ sequence: '4', errorCode: 0 });
    for (const x of [a, b, ...refused]) x.call.cancel();
  });

  it('send rate: 5 messages a second (Send, SendStream, Publish), RESOURCE_EXHAUSTED past it with the wait; max_send_rate overrides', async () => {
    const key = await principal('rate-r', {}, () => quotaAdmin);
    const fast = await principal('rate-fast', { maxSendRate: 100 }, () => quotaAdmin);
    const slow = await principal('rate-slow', { maxSendRate: 2 }, () => quotaAdmin);
    for (const p of ['rate-r', 'rate-fast', 'rate-slow']) await admin.auth.addGrant(p, 'quota.rate*', ['send']);
    await admin.topics.subscribe('quota.rate-topic', 'quota.rate');
    const { inbox } = raw(s3);
    const send = (k: string, n: number) =>
      rpc<SendRequest, SendResponse>(
        inbox,
        inbox.send,
        SendRequest.fromPartial({ messages: Array.from({ length: n }, (_, i) => ({ queue: 'quota.rate', payload: Buffer.from(`m${i}`) })) }),
        k,
      );

    // Batches of a whole second's worth: the refusals below hold unless a second passes between them.
    const five = Array.from({ length: 5 }, (_, i) => ({ queue: 'quota.rate', payload: Buffer.from(`p${i}`) }));
    expect((await send(key, 5)).results).toHaveLength(5);
    const over = await rejection(send(key, 5));
    expect(over.code).toBe(Code.RESOURCE_EXHAUSTED);
    expect(over.details).toMatch(/limit of 5 messages a second: retry in \d+ ms/);
    const published = await rejection(rpc(inbox, inbox.publish, PublishRequest.fromPartial({ topic: 'quota.rate-topic', messages: five }), key));
    expect(published.code).toBe(Code.RESOURCE_EXHAUSTED);
    // On a SendStream the batch fails, the stream goes on.
    const call = inbox.sendStream(md(key));
    grpcStreams.push(call);
    call.on('error', () => {});
    const answer = new Promise<SendStreamResponse>(resolve => call.once('data', resolve));
    call.write(SendStreamRequest.fromPartial({ sequence: '1', messages: five }));
    expect(await answer).toMatchObject({ sequence: '1', errorCode: status.RESOURCE_EXHAUSTED });
    call.cancel();
    // Another replica keeps its own bucket (no limit there).
    expect(
      (
        await rpc<SendRequest, SendResponse>(
          raw(s1).inbox,
          raw(s1).inbox.send,
          SendRequest.fromPartial({ messages: [{ queue: 'quota.rate', payload: Buffer.from('elsewhere') }] }),
          key,
        )
      ).results,
    ).toHaveLength(1);
    // After the wait it names, there is room again.
    const waitMs = Number(/retry in (\d+) ms/.exec(over.details)![1]);
    expect(waitMs).toBeGreaterThan(0);
    expect(waitMs).toBeLessThanOrEqual(1000);
    // Real time: the rate limiter's bucket refills by the server's wall clock.
    await sleep(waitMs + 100);
    expect((await send(key, 5)).results).toHaveLength(5);

    // Overrides, up and down.
    expect((await send(fast, 60)).results).toHaveLength(60);
    expect((await send(fast, 30)).results).toHaveLength(30);
    expect((await send(slow, 2)).results).toHaveLength(2);
    const slowOver = await rejection(send(slow, 2));
    expect(slowOver.code).toBe(Code.RESOURCE_EXHAUSTED);
    expect(slowOver.details).toContain('limit of 2 messages a second');
  });
});

// ─── 9. the audit trail and the metric ────────────────────────────────────────────────────────

describe('audit: denials and changes in Auth.ListAuditEvents, and inboxd_auth_denied_total', () => {
  /** inboxd_auth_denied_total{reason, verb} (every verb when `verb` is unset). */
  async function deniedCount(labels: { reason: string; verb?: string }, server: Server = s1): Promise<number> {
    const metric = server.app.metrics.registry.getSingleMetric('inboxd_auth_denied_total');
    const values = (await metric!.get()).values;
    return values
      .filter(v => v.labels.reason === labels.reason && (labels.verb === undefined || v.labels.verb === labels.verb))
      .reduce((n, v) => n + v.value, 0);
  }

  it('a denied call, a missing credential, keys created and revoked, grants added and removed, principals created and deleted', async () => {
    const noGrantBefore = await deniedCount({ reason: 'no_grant', verb: 'consume' });
    const missingBefore = await deniedCount({ reason: 'missing_credential', verb: 'none' });
    const key = await principal('auditee');
    const X = sdk(key);
    const keyId = (await admin.auth.listKeys('auditee'))[0].id;
    await admin.auth.addGrant('auditee', 'audit.q', ['send', 'browse']);
    await admin.auth.removeGrant('auditee', 'audit.q', ['browse']);
    await denied(X.lease('audit.q'), 'consume', 'audit.q');
    await unauthenticated(sdk(undefined).lease('audit.q'));
    await admin.auth.revokeKey(keyId);
    await admin.auth.deletePrincipal('auditee');

    const events = await admin.auth.auditEvents({ limit: 1000 });
    const find = (action: string, match: Partial<(typeof events)[number]>) =>
      events.find(e => e.action === action && Object.entries(match).every(([k, v]) => (e as never)[k] === v));
    expect(find('principal.created', { principal: 'admin', target: 'auditee' })).toBeDefined();
    expect(find('key.created', { principal: 'admin', target: keyId })?.detail).toContain('for auditee');
    expect(find('grant.added', { principal: 'admin', target: 'audit.q' })?.detail).toMatch(/^auditee: .*send/);
    expect(find('grant.removed', { principal: 'admin', target: 'audit.q' })?.detail).toBe('auditee: browse');
    expect(find('key.revoked', { principal: 'admin', target: keyId })?.detail).toBe('of auditee');
    expect(find('principal.deleted', { principal: 'admin', target: 'auditee' })).toBeDefined();
    const d = find('denied', { principal: 'auditee', verb: 'consume', target: 'audit.q' });
    expect(d).toMatchObject({
      method: expect.stringContaining('inboxd.v1.Inbox/Lease'),
      detail: expect.stringMatching(/^no_grant: /),
      peer: expect.stringContaining('127.0.0.1'),
      at: expect.any(Date),
    });
    const anon = events.find(
      e => e.action === 'denied' && e.principal === '' && e.method.includes('inboxd.v1.Inbox/Lease') && e.detail.startsWith('missing_credential'),
    );
    expect(anon).toBeDefined();
    // Filters.
    const onlyDenied = await admin.auth.auditEvents({ actions: ['denied'], principal: 'auditee' });
    expect(onlyDenied.length).toBeGreaterThan(0);
    expect(onlyDenied.every(e => e.action === 'denied' && e.principal === 'auditee')).toBe(true);

    expect(await deniedCount({ reason: 'no_grant', verb: 'consume' })).toBe(noGrantBefore + 1);
    expect(await deniedCount({ reason: 'missing_credential', verb: 'none' })).toBe(missingBefore + 1);
  });

  it('newest first, and paging visits every event once', async () => {
    await principal('audit-order');
    await admin.auth.deletePrincipal('audit-order');
    // The last change made is the first event.
    const [latest] = await admin.auth.auditEvents({ limit: 1 });
    expect(latest).toMatchObject({ action: 'principal.deleted', target: 'audit-order' });
    const changes = ['principal.created', 'principal.deleted', 'key.created', 'key.revoked', 'grant.added', 'grant.removed'];
    const all = await admin.auth.auditEvents({ actions: changes, limit: 1000 });
    expect(all.length).toBeGreaterThan(10);
    const ids = all.map(e => Number(e.id));
    expect(ids).toEqual([...ids].sort((a, b) => b - a));
    // The same events, ten at a time.
    const client = new AuthClient(s1.app.address, credentials.createInsecure());
    grpcClients.push(client);
    const paged: string[] = [];
    let pageToken = '';
    do {
      const res: ListAuditEventsResponse = await rpc(
        client,
        client.listAuditEvents,
        ListAuditEventsRequest.fromPartial({ pageSize: 10, pageToken, actions: changes }),
        ADMIN,
      );
      paged.push(...res.events.map(e => e.id));
      pageToken = res.nextPageToken;
    } while (pageToken && paged.length < 5000);
    expect(paged).toEqual(all.map(e => e.id));
  });

  it('a page token past the bigint range, or an action that is not one (NUL included), is INVALID_ARGUMENT, not INTERNAL (found by npm run fuzz)', async () => {
    const client = new AuthClient(s1.app.address, credentials.createInsecure());
    grpcClients.push(client);
    for (const req of [{ pageToken: '9223372036854775808' }, { pageToken: '9999999999999999999' }, { actions: ['\u0000'] }, { actions: ['nope'] }]) {
      const err = (await rpc(client, client.listAuditEvents, ListAuditEventsRequest.fromPartial(req), ADMIN).then(
        () => undefined,
        e => e,
      )) as ServiceError | undefined;
      expect(err?.code, JSON.stringify(req)).toBe(status.INVALID_ARGUMENT);
    }
  });

  it('only an admin principal reads it', async () => {
    const err = await rejection(sdk(keyOf['agent-b']).auth.auditEvents());
    expect(err.code).toBe(Code.PERMISSION_DENIED);
    expect(err.details).toContain('read the audit log');
    await principal('audit-admin', { admin: true });
    expect((await sdk(keyOf['audit-admin']).auth.auditEvents({ limit: 1 })).length).toBe(1);
  });

  it('a foreign lease token is audited and counted as foreign_token', async () => {
    const before = await deniedCount({ reason: 'foreign_token' });
    await admin.queues.create('audit.tok');
    await admin.auth.addGrant('agent-a', 'audit.tok', ['consume']);
    await admin.auth.addGrant('agent-b', 'audit.tok', ['consume']);
    await admin.send('audit.tok', 'for the audit');
    const [m] = await sdk(keyOf['agent-b']).lease('audit.tok', { wait: '5s' });
    expect((await rejection(sdk(keyOf['agent-a']).ack(m.leaseToken))).code).toBe(Code.PERMISSION_DENIED);
    await m.ack();
    const events = await admin.auth.auditEvents({ actions: ['denied'], principal: 'agent-a', limit: 20 });
    expect({
      audited: events.find(e => e.detail.startsWith('foreign_token')) ?? 'not audited',
      counted: (await deniedCount({ reason: 'foreign_token' })) - before,
    }).toMatchObject({ audited: { principal: 'agent-a', method: expect.stringContaining('inboxd.v1.Inbox/Ack') }, counted: 1 });
  });
});

// ─── 10. keys that expire ─────────────────────────────────────────────────────────────────────

describe('a key with an expiry', () => {
  it('works until expires_at, then UNAUTHENTICATED; a stream open with it ends at expiry', async () => {
    await admin.auth.createPrincipal('exp-e');
    await admin.auth.addGrant('exp-e', 'exp.q', ['consume', 'send']);
    await admin.queues.create('exp.q');
    await admin.send('exp.q', 'before expiry');
    // Real time: keys expire by the server's wall clock.
    const expiresAt = new Date(Date.now() + 1500);
    const { key, secret } = await admin.auth.createKey('exp-e', { expiresAt });
    expect(Math.abs(key.expiresAt!.getTime() - expiresAt.getTime())).toBeLessThan(5);
    const E = sdk(secret, s2);
    expect(await E.auth.whoami()).toMatchObject({ principal: 'exp-e', keyId: key.id });
    const s = subscribe(raw(s1).inbox, secret, 'exp.q');
    await s.delivery();

    const e = await s.ended;
    expect({ code: status[e.code], details: e.details }).toMatchObject({
      code: 'UNAUTHENTICATED',
      details: expect.stringContaining(`API key ${key.id} expired`),
    });
    expect(e.at).toBeGreaterThanOrEqual(expiresAt.getTime());
    expect(e.at - expiresAt.getTime()).toBeLessThan(STREAM_END_MS);
    await unauthenticated(E.auth.whoami(), 'expired');
    await unauthenticated(E.send('exp.q', 'after expiry'), 'expired');
    expect((await admin.auth.listKeys('exp-e'))[0]).toMatchObject({ id: key.id, expiresAt: expect.any(Date) });
    // Expiry is in the past only: a key cannot be made already expired.
    expect((await rejection(admin.auth.createKey('exp-e', { expiresAt: new Date(Date.now() - 1000) }))).code).toBe(Code.INVALID_ARGUMENT);
  });
});
