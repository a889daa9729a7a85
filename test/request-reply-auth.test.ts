/**
 * Request/reply between principals that do not trust each other, with auth required: the asker
 * makes a private reply queue without a grant (it owns it: only it reads it); a responder with no
 * grant on that queue may answer there — only with the lease token of a request that named it as
 * reply_to and came from its owner. Anything else is PERMISSION_DENIED.
 */

import { randomBytes } from 'node:crypto';
import { Code, createClient, type InboxdClient, type ReceivedMessage } from '@inboxd/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rejection } from './support/expect.js';
import { migratedDatabase, startServer, waitFor } from './support/harness.js';

const ADMIN = randomBytes(24).toString('hex');
let srv: Awaited<ReturnType<typeof startServer>>;
const clients: InboxdClient[] = [];
let asker: InboxdClient;
let responder: InboxdClient;
let mallory: InboxdClient;

beforeAll(async () => {
  srv = await startServer(await migratedDatabase(), { auth: 'required', adminKey: ADMIN });
  const admin = createClient({ address: srv.app.address, apiKey: ADMIN, poolSize: 1 });
  clients.push(admin);
  await admin.queues.create('svc.requests');
  const as = async (name: string) => {
    await admin.auth.createPrincipal(name);
    const c = createClient({ address: srv.app.address, apiKey: (await admin.auth.createKey(name)).secret, poolSize: 1, retry: { maxAttempts: 1 } });
    clients.push(c);
    return c;
  };
  asker = await as('asker');
  responder = await as('responder');
  mallory = await as('mallory');
  await admin.auth.addGrant('asker', 'svc.requests', ['send']);
  await admin.auth.addGrant('mallory', 'svc.requests', ['send']);
  await admin.auth.addGrant('responder', 'svc.requests', ['consume']);
});

afterAll(async () => {
  for (const c of clients) await c.close().catch(() => {});
  await srv?.stop();
});

describe('request/reply with auth', () => {
  it('the asker gets the answer: its reply queue needs no grant, the responder replies without one', async () => {
    const sub = responder.subscribe('svc.requests', async m => {
      await m.replyJson({ echo: m.json(), from: m.sender });
    });
    try {
      const reply = await asker.request('svc.requests', JSON.stringify({ ask: 1 }), { timeout: '10s' });
      expect(reply.json()).toEqual({ echo: { ask: 1 }, from: 'asker' });
      expect(reply.sender).toBe('responder');
      expect(reply.queue).toMatch(/^reply\./);
      // Only the asker reads its reply queue.
      expect((await rejection(responder.lease(reply.queue))).code).toBe(Code.PERMISSION_DENIED);
      expect((await asker.queues.get(reply.queue)).owner).toBe('asker');
    } finally {
      await sub.close();
    }
  });

  it('a responder cannot write to a reply queue without a request from its owner: no token, a request from someone else, a foreign token', async () => {
    // The asker's reply queue, made by a first request.
    let got: ReceivedMessage | undefined;
    const sub = responder.subscribe('svc.requests', async m => {
      got = m;
      await m.reply('ok');
    });
    const first = await asker.request('svc.requests', 'hello', { timeout: '10s' });
    await sub.close();
    const replyQueue = first.queue;
    expect(got?.replyTo).toBe(replyQueue);

    // Not a reply at all.
    const plain = await rejection(responder.send(replyQueue, 'unsolicited'));
    expect(plain.code).toBe(Code.PERMISSION_DENIED);
    expect(plain.details).toContain(`may not send on queue ${replyQueue}`);

    // Mallory asks, naming the asker's reply queue as reply_to: the responder's reply is refused,
    // since the request did not come from the queue's owner.
    await mallory.send('svc.requests', 'forward this to asker', { replyTo: replyQueue });
    const [fromMallory] = await responder.lease('svc.requests', { max: 1, wait: '5s' });
    expect(fromMallory.sender).toBe('mallory');
    expect((await rejection(fromMallory.reply('spoofed'))).code).toBe(Code.PERMISSION_DENIED);
    await fromMallory.ack();

    // Mallory cannot use the responder's lease token of a genuine request either.
    await asker.send('svc.requests', 'genuine', { replyTo: replyQueue });
    const [genuine] = await responder.lease('svc.requests', { max: 1, wait: '5s' });
    expect((await rejection(mallory.send(replyQueue, 'spoofed', { inReplyToLeaseToken: genuine.leaseToken }))).code).toBe(Code.PERMISSION_DENIED);
    // The responder's own genuine reply goes through, and nothing spoofed reached the queue.
    await genuine.reply('real answer');
    await genuine.ack();
    // Every message the reply queue ever held (acked ones are kept a minute): real replies only, all from the responder.
    const held = async () => {
      const out: string[] = [];
      for await (const m of asker.messages.list(replyQueue)) out.push(`${m.message.sender}: ${Buffer.from(m.message.payload).toString()}`);
      return out.sort();
    };
    await waitFor(async () => (await held()).includes('responder: real answer'), 5000, 'the genuine reply to be stored');
    const all = await held();
    expect(all).toContain('responder: ok');
    expect(all.filter(m => !m.startsWith('responder: '))).toEqual([]);
    expect(all.filter(m => m.includes('spoofed') || m.includes('unsolicited'))).toEqual([]);
  });

  it('nobody creates queues outside reply.<uuid> without an admin grant', async () => {
    expect((await rejection(responder.queues.create('reply.not-a-uuid'))).code).toBe(Code.PERMISSION_DENIED);
    expect((await rejection(responder.queues.create('svc.mine'))).code).toBe(Code.PERMISSION_DENIED);
  });
});
