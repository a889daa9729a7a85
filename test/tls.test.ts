/**
 * Transport security and the other ways to authenticate: TLS with the SDK and the CLI, mutual TLS
 * whose client certificate names the principal, and JWTs (a static public key and a JWKS URL).
 * Real certificates (openssl), real servers on 127.0.0.1:0, the real SDK and CLI.
 */

import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { Code, createClient, type InboxdClient } from '@inboxd/sdk';
import * as jose from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from './support/cli.js';
import { migratedDatabase, startServer } from './support/harness.js';
import { makeTlsFiles, type TlsFiles } from './support/tls.js';

const ADMIN = randomBytes(24).toString('hex');
const read = (f: string) => fs.readFileSync(f);
const quick = { retry: { maxAttempts: 2, initialBackoff: 50, maxBackoff: 100, totalTimeout: 3000 as const, attemptTimeout: 3000 as const } };

async function failure(p: Promise<unknown>): Promise<{ code: number; details: string }> {
  try {
    await p;
  } catch (err) {
    return err as { code: number; details: string };
  }
  throw new Error('expected the call to fail');
}

let files: TlsFiles;
let databaseUrl: string;
const clients: InboxdClient[] = [];
const open = (o: Parameters<typeof createClient>[0]) => {
  const c = createClient({ ...quick, ...o });
  clients.push(c);
  return c;
};

beforeAll(async () => {
  files = makeTlsFiles();
  databaseUrl = await migratedDatabase();
  // The principals the certificates and tokens name, made once on a plaintext server sharing the database.
  const setup = await startServer(databaseUrl, { auth: 'required', adminKey: ADMIN });
  const admin = createClient({ address: setup.app.address, apiKey: ADMIN });
  await admin.auth.createPrincipal('agent-b');
  await admin.queues.create('agent-b.inbox');
  await admin.auth.addGrant('agent-b', 'agent-b.*', ['send', 'consume', 'browse']);
  await admin.close();
  await setup.stop();
});

afterAll(async () => {
  for (const c of clients) c.pool.close();
  fs.rmSync(files.dir, { recursive: true, force: true });
});

describe('TLS', () => {
  let srv: Awaited<ReturnType<typeof startServer>>;
  beforeAll(async () => {
    srv = await startServer(databaseUrl, { auth: 'required', adminKey: ADMIN, tlsCert: files.serverCert, tlsKey: files.serverKey });
  });
  afterAll(() => srv?.stop());

  it('the SDK with the CA and an API key moves messages; a plaintext client cannot talk to it', async () => {
    const admin = open({ address: srv.app.address, apiKey: ADMIN, tls: { ca: read(files.ca) } });
    const { secret } = await admin.auth.createKey('agent-b');
    const b = open({ address: srv.app.address, apiKey: secret, tls: { ca: read(files.ca) } });
    const id = await b.send('agent-b.inbox', 'over tls');
    const [m] = await b.lease('agent-b.inbox', { max: 1 });
    expect(m.id).toBe(id);
    expect(m.sender).toBe('agent-b');
    await m.ack();
    const plain = open({ address: srv.app.address, apiKey: secret });
    expect((await failure(plain.auth.whoami())).code).toBe(Code.UNAVAILABLE);
    // A CA that did not sign the server's certificate: the client refuses the server.
    const wrongCa = open({ address: srv.app.address, apiKey: secret, tls: { ca: read(path.join(files.dir, 'other-ca.crt')) } });
    expect((await failure(wrongCa.auth.whoami())).code).toBe(Code.UNAVAILABLE);
  });

  it('the CLI with --tls-ca and --api-key', async () => {
    const r = await runCli(['whoami', '--json', '--address', srv.app.address, '--tls-ca', files.ca, '--api-key', ADMIN]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ principal: 'admin', method: 'admin_key' });
    const plain = await runCli(['whoami', '--address', srv.app.address, '--api-key', ADMIN, '--timeout', '2s']);
    expect(plain.code).toBe(3);
  });
});

describe('mutual TLS', () => {
  let srv: Awaited<ReturnType<typeof startServer>>;
  beforeAll(async () => {
    srv = await startServer(databaseUrl, { auth: 'required', adminKey: ADMIN, tlsCert: files.serverCert, tlsKey: files.serverKey, tlsClientCa: files.ca });
  });
  afterAll(() => srv?.stop());

  it('a client certificate names the principal: no key needed; its grants apply', async () => {
    const cert = files.client('agent-b');
    const b = open({ address: srv.app.address, tls: { ca: read(files.ca), cert: read(cert.cert), key: read(cert.key) } });
    expect(await b.auth.whoami()).toMatchObject({ principal: 'agent-b', method: 'mtls', admin: false });
    await b.send('agent-b.inbox', 'by certificate');
    expect((await failure(b.queues.purge('agent-b.inbox'))).code).toBe(Code.PERMISSION_DENIED);
    // A bearer credential, when present, is the identity: the admin key over the same certificate.
    const asAdmin = open({ address: srv.app.address, apiKey: ADMIN, tls: { ca: read(files.ca), cert: read(cert.cert), key: read(cert.key) } });
    expect(await asAdmin.auth.whoami()).toMatchObject({ principal: 'admin', method: 'admin_key' });
  });

  it('a certificate for a principal that does not exist is UNAUTHENTICATED; no certificate, or one from another CA, cannot connect', async () => {
    const ghost = files.client('nobody-here');
    const g = open({ address: srv.app.address, tls: { ca: read(files.ca), cert: read(ghost.cert), key: read(ghost.key) } });
    const e = await failure(g.auth.whoami());
    expect(e.code).toBe(Code.UNAUTHENTICATED);
    expect(e.details).toContain('no principal "nobody-here"');
    const none = open({ address: srv.app.address, apiKey: ADMIN, tls: { ca: read(files.ca) } });
    expect((await failure(none.auth.whoami())).code).toBe(Code.UNAVAILABLE);
    const stranger = open({ address: srv.app.address, tls: { ca: read(files.ca), cert: read(files.stranger.cert), key: read(files.stranger.key) } });
    expect((await failure(stranger.auth.whoami())).code).toBe(Code.UNAVAILABLE);
  });

  it('the CLI with --tls-ca, --tls-cert and --tls-key', async () => {
    const cert = files.client('agent-b');
    const r = await runCli(['whoami', '--json', '--address', srv.app.address, '--tls-ca', files.ca, '--tls-cert', cert.cert, '--tls-key', cert.key]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ principal: 'agent-b', method: 'mtls' });
  });
});

describe('JWT', () => {
  let keys: Awaited<ReturnType<typeof jose.generateKeyPair>>;
  const sign = (claims: jose.JWTPayload, exp: string | number = '5m', key = keys.privateKey, iss = 'https://idp.test') =>
    new jose.SignJWT(claims)
      .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
      .setIssuedAt()
      .setIssuer(iss)
      .setAudience('inboxd')
      .setExpirationTime(exp)
      .sign(key);

  beforeAll(async () => {
    keys = await jose.generateKeyPair('ES256', { extractable: true });
  });

  it('a static public key: the sub claim names the principal; expired, wrongly signed, wrong issuer or unknown subject are UNAUTHENTICATED', async () => {
    const pemFile = path.join(files.dir, 'jwt.pub.pem');
    fs.writeFileSync(pemFile, await jose.exportSPKI(keys.publicKey));
    const srv = await startServer(databaseUrl, { auth: 'required', jwtPublicKeyFile: pemFile, jwtIssuer: 'https://idp.test', jwtAudience: 'inboxd' });
    try {
      const b = open({ address: srv.app.address, apiKey: await sign({ sub: 'agent-b' }) });
      expect(await b.auth.whoami()).toMatchObject({ principal: 'agent-b', method: 'jwt' });
      await b.send('agent-b.inbox', 'by token');
      const other = await jose.generateKeyPair('ES256');
      const cases: [string, string, string][] = [
        ['expired', await sign({ sub: 'agent-b' }, Math.floor(Date.now() / 1000) - 60), 'JWT is not valid'],
        ['signed by another key', await sign({ sub: 'agent-b' }, '5m', other.privateKey), 'JWT is not valid'],
        ['another issuer', await sign({ sub: 'agent-b' }, '5m', keys.privateKey, 'https://evil.test'), 'JWT is not valid'],
        ['an unknown subject', await sign({ sub: 'mallory' }), 'no principal "mallory"'],
      ];
      for (const [what, token, words] of cases) {
        const c = open({ address: srv.app.address, apiKey: token });
        const e = await failure(c.auth.whoami());
        expect(e.code, what).toBe(Code.UNAUTHENTICATED);
        expect(e.details, what).toContain(words);
      }
    } finally {
      await srv.stop();
    }
  });

  it('a JWKS URL', async () => {
    const jwk = { ...(await jose.exportJWK(keys.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
    const jwks = http.createServer((_req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ keys: [jwk] }));
    });
    await new Promise<void>(r => jwks.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/.well-known/jwks.json`;
    const srv = await startServer(databaseUrl, { auth: 'required', jwtJwksUrl: url, jwtIssuer: 'https://idp.test', jwtAudience: 'inboxd' });
    try {
      const b = open({ address: srv.app.address, apiKey: await sign({ sub: 'agent-b' }) });
      expect(await b.auth.whoami()).toMatchObject({ principal: 'agent-b', method: 'jwt' });
    } finally {
      await srv.stop();
      jwks.close();
    }
  });
});
