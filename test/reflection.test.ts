/**
 * What grpcurl does against inboxd with no local .proto files: list services, fetch descriptors
 * through server reflection (following imports), link them, and call methods with JSON bodies.
 * The JSON bodies and method names here are the ones docs/grpcurl.md shows with grpcurl (checked below).
 */

import fs from 'node:fs';
import { Client, credentials } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migratedDatabase, startServer } from './support/harness.js';
import {
  buildRoot,
  DescriptorSource,
  describeService,
  formatDuration,
  invokeJson,
  linkErrors,
  parseDuration,
  type Reflected,
  ReflectionClient,
} from './support/reflection-client.js';

/** Set REFLECTION_TEST_PRINT=1 to see each call as the grpcurl command and its JSON answer. */
const show = (cmd: string, res: unknown) => {
  if (process.env.REFLECTION_TEST_PRINT) console.log(`${cmd}\n${JSON.stringify(res, null, 2)}`);
};

describe('server reflection (grpcurl without .proto files)', () => {
  let srv: Awaited<ReturnType<typeof startServer>>;
  let reflection: ReflectionClient;
  let source: DescriptorSource;
  let client: Client;

  beforeAll(async () => {
    srv = await startServer(await migratedDatabase());
    reflection = new ReflectionClient(srv.app.address);
    source = new DescriptorSource(reflection);
    client = new Client(srv.app.address, credentials.createInsecure());
  });
  afterAll(async () => {
    reflection?.close();
    client?.close();
    await srv?.stop();
  });

  /** grpcurl's `describe`/invoke path: the file declaring `symbol`, with its imports, linked. */
  async function reflect(symbol: string): Promise<Reflected> {
    const file = await source.fileContainingSymbol(symbol);
    return buildRoot(source.closure(file));
  }

  it('lists the services (grpcurl list)', async () => {
    const services = await reflection.listServices();
    show('grpcurl -plaintext 127.0.0.1:50051 list', [...services].sort());
    expect(reflection.version).toBe('v1');
    expect(services).toEqual(
      expect.arrayContaining([
        'inboxd.v1.Inbox',
        'inboxd.v1.Queues',
        'grpc.health.v1.Health',
        'grpc.reflection.v1.ServerReflection',
        'grpc.reflection.v1alpha.ServerReflection',
      ]),
    );
  });

  it('answers on v1alpha too (the version older grpcurl falls back to)', async () => {
    const old = new ReflectionClient(srv.app.address, 'v1alpha');
    try {
      expect(await old.listServices()).toContain('inboxd.v1.Inbox');
      const files = await old.fileContainingSymbol('inboxd.v1.Queues');
      expect(files[0].service?.map(s => s.name)).toContain('Queues');
    } finally {
      old.close();
    }
  });

  it('serves file descriptors that link, with their imports (google/protobuf Duration, Timestamp)', async () => {
    for (const symbol of ['inboxd.v1.Inbox', 'inboxd.v1.Queues', 'grpc.health.v1.Health', 'grpc.reflection.v1.ServerReflection']) {
      await source.fileContainingSymbol(symbol);
    }
    const inbox = source.closure(await source.fileContainingSymbol('inboxd.v1.Inbox'));
    const declared = (pkg: string, msg: string) => inbox.some(f => f.package === pkg && f.messageType?.some(m => m.name === msg));
    expect(declared('google.protobuf', 'Duration')).toBe(true);
    expect(declared('google.protobuf', 'Timestamp')).toBe(true);
    expect(declared('inboxd.v1', 'Message')).toBe(true);
    // The file declaring the service must import the file declaring Duration: grpcurl links each file
    // against its declared imports only.
    const inboxFile = inbox[inbox.length - 1];
    const durationFile = inbox.find(f => f.package === 'google.protobuf' && f.messageType?.some(m => m.name === 'Duration'))!;
    expect(inboxFile.dependency).toContain(durationFile.name);
    // Everything grpcurl would build from these responses links (no unresolvable types, valid maps).
    expect(linkErrors(source.files)).toEqual([]);
  });

  it('describes inboxd.v1.Inbox (grpcurl describe)', async () => {
    const r = await reflect('inboxd.v1.Inbox');
    const methods = describeService(r.root, 'inboxd.v1.Inbox');
    show('grpcurl -plaintext 127.0.0.1:50051 describe inboxd.v1.Inbox', methods);
    expect(methods.map(m => m.name)).toEqual([
      'Send',
      'SendStream',
      'Lease',
      'Subscribe',
      'Ack',
      'Nack',
      'ExtendLease',
      'Publish',
      'ListMessages',
      'GetMessage',
    ]);
    const byName = Object.fromEntries(methods.map(m => [m.name, m]));
    expect(byName.Send).toMatchObject({
      requestStream: false,
      responseStream: false,
      requestType: 'inboxd.v1.SendRequest',
      responseType: 'inboxd.v1.SendResponse',
    });
    expect(byName.SendStream).toMatchObject({ requestStream: true, responseStream: true });
    expect(byName.Subscribe).toMatchObject({ requestStream: true, responseStream: true });
    expect(byName.Lease).toMatchObject({ requestStream: false, responseStream: false, requestType: 'inboxd.v1.LeaseRequest' });
    // A map field survives reflection as a map.
    const message = r.root.lookupType('inboxd.v1.Message');
    expect(r.mapEntries.has(message.fields.headers.resolvedType!.fullName.slice(1))).toBe(true);
    expect(describeService(r.root, 'inboxd.v1.Queues').map(m => m.name)).toEqual([
      'CreateQueue',
      'GetQueue',
      'ListQueues',
      'DeleteQueue',
      'PurgeQueue',
      'GetQueueStats',
      'UpdateQueue',
      'Redrive',
      'AddTopicSubscription',
      'RemoveTopicSubscription',
      'ListTopics',
    ]);
  });

  it('creates a queue, sends, leases and acks with JSON bodies', async () => {
    const queues = await reflect('inboxd.v1.Queues');
    const inbox = await reflect('inboxd.v1.Inbox');

    const createBody = { name: 'demo' };
    const created = (await invokeJson(client, queues, 'inboxd.v1.Queues/CreateQueue', createBody)) as {
      queue: { name: string; config: Record<string, unknown>; createdAt: string };
    };
    show(`grpcurl -plaintext -d '${JSON.stringify(createBody)}' 127.0.0.1:50051 inboxd.v1.Queues/CreateQueue`, created);
    expect(created.queue.name).toBe('demo');
    expect(created.queue.config).toMatchObject({ visibilityTimeout: '30s', maxAttempts: 5 });
    expect(created.queue.createdAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3,9})?Z$/);

    const sendBody = { messages: [{ queue: 'demo', payload: 'aGVsbG8=', contentType: 'text/plain', headers: { trace: 'abc' } }] };
    const sent = (await invokeJson(client, inbox, 'inboxd.v1.Inbox/Send', sendBody)) as { results: { id: string; contentHash: string; duplicate?: boolean }[] };
    show(`grpcurl -plaintext -d '${JSON.stringify(sendBody)}' 127.0.0.1:50051 inboxd.v1.Inbox/Send`, sent);
    expect(sent.results).toHaveLength(1);
    expect(sent.results[0].id).toMatch(/^[0-9a-f-]{36}$/);
    expect(sent.results[0].contentHash).toBe('2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824'); // sha256("hello")
    expect(sent.results[0]).toMatchObject({ queue: 'demo' });
    expect(sent.results[0].duplicate).toBeUndefined(); // false: left out, as grpcurl does

    const leaseBody = { queue: 'demo', maxMessages: 10, visibilityTimeout: '30s' };
    const before = Date.now();
    const leased = (await invokeJson(client, inbox, 'inboxd.v1.Inbox/Lease', leaseBody)) as {
      deliveries: { message: Record<string, unknown>; leaseToken: string; leaseExpiresAt: string; attempt: number }[];
    };
    show(`grpcurl -plaintext -d '${JSON.stringify(leaseBody)}' 127.0.0.1:50051 inboxd.v1.Inbox/Lease`, leased);
    expect(leased.deliveries).toHaveLength(1);
    const d = leased.deliveries[0];
    expect(d.message).toMatchObject({ id: sent.results[0].id, queue: 'demo', payload: 'aGVsbG8=', contentType: 'text/plain', headers: { trace: 'abc' } });
    expect(d.attempt).toBe(1);
    expect(typeof d.leaseToken).toBe('string');
    // "30s" reached the server as 30 seconds: the lease ends about 30s from now.
    const expiresIn = Date.parse(d.leaseExpiresAt) - before;
    expect(expiresIn).toBeGreaterThan(25_000);
    expect(expiresIn).toBeLessThan(40_000);

    const ackBody = { leaseTokens: [d.leaseToken] };
    const acked = await invokeJson(client, inbox, 'inboxd.v1.Inbox/Ack', ackBody);
    show(`grpcurl -plaintext -d '${JSON.stringify(ackBody)}' 127.0.0.1:50051 inboxd.v1.Inbox/Ack`, acked);
    expect(acked).toEqual({ acked: 1 });

    // proto field names are accepted too, as grpcurl (protojson) accepts them.
    const again = await invokeJson(client, inbox, 'inboxd.v1.Inbox/Lease', { queue: 'demo', max_messages: 1 });
    expect(again).toEqual({});

    const statsBody = { name: 'demo' };
    const stats = await invokeJson(client, queues, 'inboxd.v1.Queues/GetQueueStats', statsBody);
    show(`grpcurl -plaintext -d '${JSON.stringify(statsBody)}' 127.0.0.1:50051 inboxd.v1.Queues/GetQueueStats`, stats);
    expect(stats).toMatchObject({ stats: { queue: 'demo' } });
  });

  it('checks health (grpcurl grpc.health.v1.Health/Check)', async () => {
    const health = await reflect('grpc.health.v1.Health');
    const overall = await invokeJson(client, health, 'grpc.health.v1.Health/Check', {});
    show('grpcurl -plaintext 127.0.0.1:50051 grpc.health.v1.Health/Check', overall);
    expect(overall).toEqual({ status: 'SERVING' });
    const body = { service: 'inboxd.v1.Inbox' };
    const one = await invokeJson(client, health, 'grpc.health.v1.Health/Check', body);
    show(`grpcurl -plaintext -d '${JSON.stringify(body)}' 127.0.0.1:50051 grpc.health.v1.Health/Check`, one);
    expect(one).toEqual({ status: 'SERVING' });
  });

  it('makes the calls docs/grpcurl.md shows, with the same bodies', () => {
    const page = fs.readFileSync(new URL('../docs/grpcurl.md', import.meta.url), 'utf8');
    const calls: [string, unknown][] = [
      ['inboxd.v1.Queues/CreateQueue', { name: 'demo' }],
      ['inboxd.v1.Inbox/Send', { messages: [{ queue: 'demo', payload: 'aGVsbG8=', contentType: 'text/plain', headers: { trace: 'abc' } }] }],
      ['inboxd.v1.Inbox/Lease', { queue: 'demo', maxMessages: 10, visibilityTimeout: '30s' }],
      ['inboxd.v1.Queues/GetQueueStats', { name: 'demo' }],
      ['grpc.health.v1.Health/Check', { service: 'inboxd.v1.Inbox' }],
    ];
    for (const [method, body] of calls) expect(page, method).toContain(`-d '${JSON.stringify(body)}'`);
    for (const [method] of calls) expect(page).toContain(method);
    expect(page).toContain('inboxd.v1.Inbox/Ack');
  });

  it('maps Duration strings the way protojson does', () => {
    expect(parseDuration('30s')).toEqual({ seconds: '30', nanos: 0 });
    expect(parseDuration('1.5s')).toEqual({ seconds: '1', nanos: 500_000_000 });
    expect(parseDuration('-0.250s')).toEqual({ seconds: '0', nanos: -250_000_000 });
    expect(() => parseDuration('30')).toThrow();
    expect(formatDuration({ seconds: '3600', nanos: 0 })).toBe('3600s');
    expect(formatDuration({ seconds: '1', nanos: 500_000_000 })).toBe('1.500s');
    expect(formatDuration({})).toBe('0s');
  });
});
