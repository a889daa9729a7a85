/**
 * The client side of auth, against a real server with auth required (INBOXD_AUTH=required and a
 * bootstrap admin key): the CLI's principals / keys / grants / whoami / audit commands, --api-key
 * and INBOXD_API_KEY, exit code 5 for UNAUTHENTICATED and PERMISSION_DENIED, and the SDK's
 * createClient({ apiKey }) on unary calls and streams, and client.auth.
 */

import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { credentials } from '@grpc/grpc-js';
import { Code, createClient, type InboxdClient, InboxdError, type ReceivedMessage } from '@inboxd/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CliResult, runCli } from './support/cli.js';
import { rejection } from './support/expect.js';
import { migratedDatabase, type ServerProcess, spawnServer, waitFor } from './support/harness.js';

/** 40 random characters. */
const ADMIN_KEY = randomBytes(30).toString('base64url').slice(0, 40);

const json = <T = any>(s: string): T => JSON.parse(s) as T;

/** Rejection of `p` as an InboxdError (fails the test if it resolves or throws something else). */

describe('auth on the client: CLI and SDK against a server with auth required', () => {
  let db: string;
  let server: ServerProcess;
  let tmp: string;
  const clients: InboxdClient[] = [];
  const newClient = (o: Parameters<typeof createClient>[0]) => {
    const c = createClient(o);
    clients.push(c);
    return c;
  };

  /** The CLI with no credential of the environment's: INBOXD_API_KEY and INBOXD_TLS_* set empty (none). */
  const cli = (args: string[], env: Record<string, string> = {}): Promise<CliResult> =>
    runCli(args, { env: { INBOXD_ADDRESS: server.address, INBOXD_API_KEY: '', INBOXD_TLS_CA: '', INBOXD_TLS_CERT: '', INBOXD_TLS_KEY: '', ...env } });
  /** The CLI as the bootstrap admin (through the environment). */
  const admin = (args: string[]) => cli(args, { INBOXD_API_KEY: ADMIN_KEY });
  /** The CLI with an API key (through --api-key). */
  const as = (key: string, args: string[]) => cli([...args, '--api-key', key]);

  beforeAll(async () => {
    db = await migratedDatabase();
    server = await spawnServer(db, { INBOXD_AUTH: 'required', INBOXD_ADMIN_KEY: ADMIN_KEY });
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'inboxd-auth-cli-'));
  });
  afterAll(async () => {
    await Promise.all(clients.map(c => c.close({ timeout: '1s' }).catch(() => {})));
    server?.proc.kill('SIGTERM');
    await server?.exited;
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('help lists the auth commands and the credential flags; exit code 5 is documented', async () => {
    const [top, create, keys, grants] = await Promise.all([
      cli(['--help']),
      cli(['queues', 'create', '--help']),
      cli(['keys', '--help']),
      cli(['grants', 'add', '--help']),
    ]);
    expect(top.code).toBe(0);
    for (const c of ['whoami', 'principals', 'keys', 'grants', 'audit']) expect(top.stdout).toMatch(new RegExp(`^  ${c}\\b`, 'm'));
    expect(top.stdout).toContain('5 not allowed');
    for (const flag of ['--api-key <key>', 'env: INBOXD_API_KEY', '--tls ', '--tls-ca <file>', '--tls-cert <file>', '--tls-key <file>'])
      expect(create.stdout).toContain(flag);
    for (const c of ['create', 'list', 'revoke']) expect(keys.stdout).toMatch(new RegExp(`^  ${c}\\b`, 'm'));
    expect(grants.stdout).toContain('--verbs <verbs>');
  });

  it('usage errors before any call: unknown verbs, unreadable TLS files, a certificate without its key (exit 2)', async () => {
    const missing = path.join(tmp, 'no-such-ca.pem');
    const cert = path.join(tmp, 'client.pem');
    fs.writeFileSync(cert, '-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n');
    const [badVerb, noVerbs, noQueue, badCa, badCaEnv, certOnly, badExpiry] = await Promise.all([
      admin(['grants', 'add', 'someone', '--queue', 'q', '--verbs', 'send,fly']),
      admin(['grants', 'add', 'someone', '--queue', 'q']),
      admin(['grants', 'add', 'someone', '--verbs', 'send']),
      admin(['queues', 'list', '--tls-ca', missing]),
      cli(['queues', 'list'], { INBOXD_TLS_CA: missing }),
      admin(['queues', 'list', '--tls-cert', cert]),
      admin(['keys', 'create', 'someone', '--expires', 'someday']),
    ]);
    expect(badVerb.code).toBe(2);
    expect(badVerb.stderr).toContain('"fly"');
    expect(badVerb.stderr).toContain('send, consume, browse, admin');
    expect(noVerbs.code).toBe(2);
    expect(noQueue.code).toBe(2);
    expect(badCa).toMatchObject({ code: 2, stdout: '' });
    expect(badCa.stderr).toContain('--tls-ca');
    expect(badCa.stderr).toContain(missing);
    expect(badCaEnv.code).toBe(2);
    expect(badCaEnv.stderr).toContain(missing);
    expect(certOnly.code).toBe(2);
    expect(certOnly.stderr).toContain('--tls-key');
    expect(badExpiry.code).toBe(2);
    expect(badExpiry.stderr).toContain('"someday"');
  });

  it('without a credential, or with a bad one: exit 5, saying to pass --api-key / INBOXD_API_KEY', async () => {
    const [none, noneJson, whoami, bogus] = await Promise.all([
      cli(['queues', 'list']),
      cli(['queues', 'list', '--json']),
      cli(['whoami']),
      as('ibx_nosuchkey_0123456789abcdef', ['queues', 'list']),
    ]);
    expect(none).toMatchObject({ code: 5, stdout: '' });
    expect(none.stderr).toContain('not authenticated');
    expect(none.stderr).toContain('--api-key');
    expect(none.stderr).toContain('INBOXD_API_KEY');
    expect(noneJson.code).toBe(5);
    expect(json(noneJson.stderr).error).toMatchObject({ code: 'UNAUTHENTICATED', exitCode: 5 });
    expect(whoami.code).toBe(5);
    expect(bogus.code).toBe(5);
    expect(bogus.stderr).toContain('not authenticated');
    expect(bogus.stderr).toContain('API key');
  });

  it('the bootstrap admin creates a principal and a key; the key works with whoami; revoked, it fails with exit 5', async () => {
    const me = await admin(['whoami', '--json']);
    expect(me.code).toBe(0);
    expect(json(me.stdout)).toMatchObject({ admin: true, method: 'admin_key', authRequired: true });

    const created = await admin(['principals', 'create', 'cli-bot', '--metadata', 'team=a', '--metadata', 'env=test', '--max-streams', '5', '--json']);
    expect(created.code).toBe(0);
    expect(json(created.stdout)).toMatchObject({ name: 'cli-bot', admin: false, metadata: { team: 'a', env: 'test' }, maxStreams: 5 });
    const again = await admin(['principals', 'create', 'cli-bot']);
    expect(again.code).toBe(1); // ALREADY_EXISTS
    const [list, listJson, get, missing] = await Promise.all([
      admin(['principals', 'list']),
      admin(['principals', 'list', '--json']),
      admin(['principals', 'get', 'cli-bot', '--json']),
      admin(['principals', 'get', 'nobody-here']),
    ]);
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/^NAME\s+ADMIN\s+/);
    expect(list.stdout).toMatch(/^cli-bot\s+no\s/m);
    expect(json<{ name: string }[]>(listJson.stdout).map(p => p.name)).toContain('cli-bot');
    expect(json(get.stdout)).toMatchObject({ name: 'cli-bot', metadata: { team: 'a' } });
    expect(missing.code).toBe(4);

    // --json: the key, its id, its principal, its expiry; the warning on stderr.
    const made = await admin(['keys', 'create', 'cli-bot', '--json']);
    expect(made.code).toBe(0);
    const k = json<{ key: string; id: string; principal: string; expiresAt: string | null }>(made.stdout);
    expect(k).toMatchObject({ principal: 'cli-bot', expiresAt: null });
    expect(k.key).toMatch(/^ibx_\S+$/);
    expect(k.key).toContain(k.id);
    expect(made.stderr).toContain('not be shown again');

    // Without --json: stdout is the key alone (KEY=$(inboxd keys create …)).
    const plain = await admin(['keys', 'create', 'cli-bot', '--expires', '30d']);
    expect(plain.code).toBe(0);
    expect(plain.stdout).toMatch(/^ibx_\S+\n$/);
    expect(plain.stderr).toContain('not be shown again');
    const key2 = plain.stdout.trim();

    const who = await as(k.key, ['whoami', '--json']);
    expect(who.code).toBe(0);
    expect(json(who.stdout)).toMatchObject({ principal: 'cli-bot', admin: false, method: 'api_key', keyId: k.id, authRequired: true });
    const whoEnv = await cli(['whoami'], { INBOXD_API_KEY: key2 });
    expect(whoEnv.code).toBe(0);
    expect(whoEnv.stdout).toMatch(/^principal\s+cli-bot$/m);

    // The principal's keys: both, neither revoked, the second expiring in about 30 days.
    const keys = json<{ id: string; state: string; expiresAt: string | null }[]>((await admin(['keys', 'list', 'cli-bot', '--json'])).stdout);
    expect(keys.map(x => x.id)).toContain(k.id);
    expect(keys.every(x => x.state === 'active')).toBe(true);
    const second = keys.find(x => x.id !== k.id)!;
    expect(Math.abs(new Date(second.expiresAt!).getTime() - (Date.now() + 30 * 86_400_000))).toBeLessThan(120_000);
    // A principal lists its own keys without naming itself.
    const own = await as(k.key, ['keys', 'list', '--json']);
    expect(own.code).toBe(0);
    expect(
      json<{ id: string }[]>(own.stdout)
        .map(x => x.id)
        .sort(),
    ).toEqual(keys.map(x => x.id).sort());

    const revoked = await admin(['keys', 'revoke', k.id]);
    expect(revoked.code).toBe(0);
    expect(revoked.stdout).toContain(`revoked key ${k.id}`);
    const after = await as(k.key, ['whoami']);
    expect(after.code).toBe(5);
    expect(after.stderr).toContain('not authenticated');
    const afterJson = await as(k.key, ['queues', 'list', '--json']);
    expect(json(afterJson.stderr).error).toMatchObject({ code: 'UNAUTHENTICATED', exitCode: 5 });
    // The other key still works, and the list shows the revoked one as such.
    expect((await as(key2, ['whoami'])).code).toBe(0);
    const listed = json<{ id: string; state: string; revokedAt?: string }[]>((await admin(['keys', 'list', 'cli-bot', '--json'])).stdout);
    expect(listed.find(x => x.id === k.id)).toMatchObject({ state: 'revoked', revokedAt: expect.any(String) });
  });

  it("grants: add, list, remove; a call without the grant exits 5 with the server's words", async () => {
    expect((await admin(['principals', 'create', 'grantee'])).code).toBe(0);
    const key = (await admin(['keys', 'create', 'grantee'])).stdout.trim();
    expect((await admin(['queues', 'create', 'team-a.jobs'])).code).toBe(0);
    expect((await admin(['queues', 'create', 'team-b.jobs'])).code).toBe(0);

    // Nothing granted yet.
    const before = await as(key, ['send', 'team-a.jobs', 'hello']);
    expect(before).toMatchObject({ code: 5, stdout: '' });
    expect(before.stderr).toContain('permission denied');

    const added = await admin(['grants', 'add', 'grantee', '--queue', 'team-a.*', '--verbs', 'send,consume', '--json']);
    expect(added.code).toBe(0);
    expect(json(added.stdout)).toMatchObject({ principal: 'grantee', queue: 'team-a.*' });
    expect(json<{ verbs: string[] }>(added.stdout).verbs.sort()).toEqual(['consume', 'send']);
    const addedMore = await admin(['grants', 'add', 'grantee', '--queue', 'team-a.*', '--verbs', 'browse']);
    expect(addedMore.code).toBe(0);
    expect(addedMore.stdout).toMatch(/^PRINCIPAL\s+QUEUE\s+VERBS$/m);
    expect(addedMore.stdout).toMatch(/^grantee\s+team-a\.\*\s+\S*browse/m);

    const [listed, listedAll, table] = await Promise.all([
      admin(['grants', 'list', 'grantee', '--json']),
      admin(['grants', 'list', '--json']),
      admin(['grants', 'list', 'grantee']),
    ]);
    const grants = json<{ principal: string; queue: string; verbs: string[] }[]>(listed.stdout);
    expect(grants).toHaveLength(1);
    expect(grants[0].verbs.sort()).toEqual(['browse', 'consume', 'send']);
    expect(json<{ principal: string }[]>(listedAll.stdout).map(g => g.principal)).toContain('grantee');
    expect(table.stdout).toMatch(/^grantee\s+team-a\.\*/m);

    // Granted: send and lease on team-a.jobs. Not granted: team-b.jobs, denied naming the queue.
    const sent = await as(key, ['send', 'team-a.jobs', 'hello', '--json']);
    expect(sent.code).toBe(0);
    const leased = await as(key, ['lease', 'team-a.jobs', '--ack', '--json']);
    expect(leased.code).toBe(0);
    expect(json<{ text: string }[]>(leased.stdout).map(m => m.text)).toEqual(['hello']);
    const denied = await as(key, ['send', 'team-b.jobs', 'nope']);
    expect(denied).toMatchObject({ code: 5, stdout: '' });
    expect(denied.stderr).toContain('permission denied');
    expect(denied.stderr).toContain('team-b.jobs');
    const deniedJson = await as(key, ['lease', 'team-b.jobs', '--json']);
    expect(deniedJson.code).toBe(5);
    expect(json(deniedJson.stderr).error).toMatchObject({ code: 'PERMISSION_DENIED', exitCode: 5 });

    // whoami shows the grant.
    const who = json<{ grants: { queue: string; verbs: string[] }[] }>((await as(key, ['whoami', '--json'])).stdout);
    expect(who.grants.map(g => g.queue)).toContain('team-a.*');

    // Remove consume: send still works, lease does not.
    const less = await admin(['grants', 'remove', 'grantee', '--queue', 'team-a.*', '--verbs', 'consume', '--json']);
    expect(less.code).toBe(0);
    expect(json<{ verbs: string[] }>(less.stdout).verbs.sort()).toEqual(['browse', 'send']);
    expect((await as(key, ['send', 'team-a.jobs', 'again'])).code).toBe(0);
    expect((await as(key, ['lease', 'team-a.jobs'])).code).toBe(5);

    // Remove the rest: nothing left.
    const none = await admin(['grants', 'remove', 'grantee', '--queue', 'team-a.*']);
    expect(none.code).toBe(0);
    expect(json((await admin(['grants', 'list', 'grantee', '--json'])).stdout)).toEqual([]);
    expect((await as(key, ['send', 'team-a.jobs', 'more'])).code).toBe(5);

    // The denials are in the audit log.
    await waitFor(
      async () => {
        const r = await admin(['audit', '--principal', 'grantee', '--action', 'denied', '--json']);
        return r.code === 0 && json<unknown[]>(r.stdout).length > 0;
      },
      10_000,
      'denied events of grantee in the audit log',
    );
    const audit = await admin(['audit', '--principal', 'grantee', '--action', 'denied', '--limit', '2', '--json']);
    const events = json<{ principal: string; action: string; at: string }[]>(audit.stdout);
    expect(events.length).toBeGreaterThan(0);
    expect(events.length).toBeLessThanOrEqual(2);
    expect(events.every(e => e.principal === 'grantee' && e.action === 'denied')).toBe(true);
    const auditTable = await admin(['audit', '--limit', '5']);
    expect(auditTable.code).toBe(0);
    expect(auditTable.stdout).toMatch(/^AT\s+PRINCIPAL\s+ACTION\s+/);
    // A principal that is not an admin may not read the audit log, nor create principals.
    const key2 = (await admin(['keys', 'create', 'grantee'])).stdout.trim();
    expect((await as(key2, ['audit'])).code).toBe(5);
    expect((await as(key2, ['principals', 'create', 'sneaky'])).code).toBe(5);

    const deleted = await admin(['principals', 'delete', 'grantee']);
    expect(deleted.code).toBe(0);
    expect((await as(key2, ['whoami'])).code).toBe(5);
  });

  it('SDK: createClient({ apiKey }) sends and leases (unary and streaming) where granted, PERMISSION_DENIED (7) elsewhere', async () => {
    const root = newClient({ address: server.address, apiKey: ADMIN_KEY });
    const rootMe = await root.auth.whoami();
    expect(rootMe).toMatchObject({ admin: true, method: 'admin_key', authRequired: true });

    const p = await root.auth.createPrincipal('sdk-agent', { metadata: { kind: 'agent' }, maxSendRate: 1000 });
    expect(p).toMatchObject({ name: 'sdk-agent', admin: false, metadata: { kind: 'agent' }, maxSendRate: 1000 });
    expect((await root.auth.getPrincipal('sdk-agent')).name).toBe('sdk-agent');
    expect((await root.auth.listPrincipals()).map(x => x.name)).toContain('sdk-agent');
    expect((await rejection(root.auth.createPrincipal('sdk-agent'))).code).toBe(Code.ALREADY_EXISTS);

    const granted = await root.queues.create('sdk.granted');
    expect(granted.owner).toBeTypeOf('string');
    await root.queues.create('sdk.forbidden');
    const grant = await root.auth.addGrant('sdk-agent', 'sdk.granted', ['send', 'consume']);
    expect(grant).toMatchObject({ principal: 'sdk-agent', queue: 'sdk.granted' });
    expect([...grant.verbs].sort()).toEqual(['consume', 'send']);
    expect((await root.auth.listGrants('sdk-agent')).map(g => g.queue)).toEqual(['sdk.granted']);

    const expiresAt = new Date(Date.now() + 3_600_000);
    const { key, secret } = await root.auth.createKey('sdk-agent', { expiresAt });
    expect(secret).toMatch(/^ibx_/);
    expect(key.principal).toBe('sdk-agent');
    expect(key.createdAt).toBeInstanceOf(Date);
    expect(Math.abs(key.expiresAt!.getTime() - expiresAt.getTime())).toBeLessThan(1000);

    const agent = newClient({ address: server.address, apiKey: secret });
    const me = await agent.auth.whoami();
    expect(me).toMatchObject({ principal: 'sdk-agent', admin: false, method: 'api_key', keyId: key.id });
    expect(me.grants.map(g => g.queue)).toEqual(['sdk.granted']);
    expect((await agent.auth.listKeys()).map(k => k.id)).toContain(key.id);

    // Unary: send, lease, ack.
    const id = await agent.send('sdk.granted', 'pulled');
    const [m] = await agent.lease('sdk.granted', { wait: '5s' });
    expect(m.id).toBe(id);
    await m.ack();

    // Streaming: a subscription carries the key too.
    const got: ReceivedMessage[] = [];
    const sub = agent.subscribe('sdk.granted', async msg => void got.push(msg));
    const id2 = await agent.send('sdk.granted', 'streamed');
    await waitFor(() => got.length > 0, 10_000, 'the streamed message');
    expect(got[0].id).toBe(id2);
    await sub.close({ timeout: '2s' });

    // Not granted: PERMISSION_DENIED, and a batch mixing both queues fails only the forbidden message.
    expect((await rejection(agent.send('sdk.forbidden', 'no'))).code).toBe(Code.PERMISSION_DENIED);
    expect((await rejection(agent.lease('sdk.forbidden'))).code).toBe(Code.PERMISSION_DENIED);
    const [ok, no] = await Promise.allSettled([agent.send('sdk.granted', 'mixed-ok'), agent.send('sdk.forbidden', 'mixed-no')]);
    expect(ok.status).toBe('fulfilled');
    expect(no.status).toBe('rejected');
    expect(InboxdError.from((no as PromiseRejectedResult).reason).code).toBe(Code.PERMISSION_DENIED);
    const deniedSub = agent.subscribe('sdk.forbidden', { maxOutstandingMessages: 1 });
    const subErr = await new Promise<unknown>(resolve => deniedSub.once('error', resolve));
    expect(InboxdError.from(subErr).code).toBe(Code.PERMISSION_DENIED);
    await deniedSub.close({ timeout: '1s' }).catch(() => {});
    // Not an admin: no principals, no audit log.
    expect((await rejection(agent.auth.listPrincipals())).code).toBe(Code.PERMISSION_DENIED);

    // No key at all: UNAUTHENTICATED (16).
    const anonymous = newClient({ address: server.address });
    expect((await rejection(anonymous.auth.whoami())).code).toBe(Code.UNAUTHENTICATED);
    expect((await rejection(anonymous.lease('sdk.granted'))).code).toBe(Code.UNAUTHENTICATED);

    // Audit: the denials, newest first, with Dates.
    await waitFor(async () => (await root.auth.auditEvents({ principal: 'sdk-agent', actions: ['denied'] })).length > 0, 10_000, 'denied events of sdk-agent');
    const events = await root.auth.auditEvents({ principal: 'sdk-agent', actions: ['denied'], limit: 3 });
    expect(events.length).toBeGreaterThan(0);
    expect(events.length).toBeLessThanOrEqual(3);
    for (const e of events) expect(e).toMatchObject({ principal: 'sdk-agent', action: 'denied', at: expect.any(Date) });

    // Revoked: the next call fails UNAUTHENTICATED.
    const revoked = await root.auth.revokeKey(key.id);
    expect(revoked.revokedAt).toBeInstanceOf(Date);
    expect((await rejection(agent.auth.whoami())).code).toBe(Code.UNAUTHENTICATED);

    // Removing the grant, then the principal.
    const left = await root.auth.removeGrant('sdk-agent', 'sdk.granted');
    expect(left.verbs).toEqual([]);
    await root.auth.deletePrincipal('sdk-agent');
    expect((await rejection(root.auth.getPrincipal('sdk-agent'))).code).toBe(Code.NOT_FOUND);
  });

  it('SDK: createClient checks its credentials options', () => {
    const address = '127.0.0.1:1';
    expect(() => createClient({ address, tls: { cert: 'CERT' } })).toThrow(RangeError);
    expect(() => createClient({ address, tls: { key: 'KEY' } })).toThrow(/tls\.key.*tls\.cert/);
    expect(() => createClient({ address, tls: true, credentials: credentials.createInsecure() })).toThrow(RangeError);
    expect(() => createClient({ address, apiKey: '' })).toThrow(RangeError);
    expect(() => createClient({ address, apiKey: 'ibx_a_b\n' })).toThrow(RangeError);
    for (const c of [createClient({ address, tls: true, apiKey: 'k' }), createClient({ address, credentials: credentials.createInsecure(), apiKey: 'k' })])
      c.pool.close();
  });
});
