/**
 * The server's logs: JSON lines with a level and a message; every call's lines name its request
 * id, method and queue; a client's x-request-id is used and sent back; payloads never appear.
 */

import { spawn } from 'node:child_process';
import { Writable } from 'node:stream';
import { Metadata, type ServiceError } from '@grpc/grpc-js';
import { LeaseRequest, SendRequest, SubscribeRequest, type SubscribeResponse } from '@inboxd/proto/v1/inbox';
import { describe, expect, it } from 'vitest';
import { startApp } from '../server/app.js';
import { createLogger } from '../server/logger.js';
import { call, connect, migratedDatabase, ROOT, spawnServer, testOptions, waitFor } from './support/harness.js';

const SECRET = 'PAYLOAD-SECRET-7f3a91';
// The secret as text, hex, and the base64 any payload starting with it begins with.
const forms = [SECRET, Buffer.from(SECRET).toString('hex'), Buffer.from(SECRET.slice(0, 12)).toString('base64')];

describe('logs', () => {
  it('are JSON lines with level, msg and, for each call, reqId, method and queue; never a payload', async () => {
    const server = await spawnServer(await migratedDatabase(), { INBOXD_LOG_LEVEL: 'debug' });
    const c = connect(server.address);
    try {
      await call(c.queues, c.queues.createQueue, { name: 'logs-q' });
      // Payloads in every place a message goes: send (and its failure), lease, a stream, a dead letter.
      await call(
        c.inbox,
        c.inbox.send,
        SendRequest.fromPartial({ messages: [1, 2, 3].map(i => ({ queue: 'logs-q', payload: Buffer.from(`${SECRET} ${i}`), headers: { h: 'v' } })) }),
      );
      await call(c.inbox, c.inbox.send, SendRequest.fromPartial({ messages: [{ queue: 'no-such-queue', payload: Buffer.from(SECRET) }] })).catch(() => {});
      await call(c.inbox, c.inbox.send, SendRequest.fromPartial({ messages: [{ queue: 'logs-q', payload: Buffer.alloc(2 * 1024 * 1024, SECRET) }] })).catch(
        () => {},
      );
      const leased = (await call(c.inbox, c.inbox.lease, LeaseRequest.fromPartial({ queue: 'logs-q', maxMessages: 1 }))).deliveries;
      await call(c.inbox, c.inbox.ack, { leaseTokens: [leased[0].leaseToken] });
      await call(c.inbox, c.inbox.ack, { leaseTokens: ['bm90IGEgdG9rZW4'] }).catch(() => {});
      const stream = c.inbox.subscribe();
      const got: SubscribeResponse[] = [];
      stream.on('data', (r: SubscribeResponse) => got.push(r));
      stream.on('error', () => {});
      stream.write(SubscribeRequest.fromPartial({ queue: 'logs-q' }));
      await waitFor(() => got.flatMap(r => r.deliveries).length === 2, 10_000, 'two deliveries on the stream');
      stream.end();

      // A request id of the client's own is used in the logs and sent back in the trailers.
      const trailers = await new Promise<Metadata>((resolve, reject) => {
        const md = new Metadata();
        md.set('x-request-id', 'client-chosen-id-42');
        const req = c.inbox.lease(LeaseRequest.fromPartial({ queue: 'logs-q' }), md, (err: ServiceError | null) => (err ? reject(err) : undefined));
        req.on('status', s => resolve(s.metadata));
      });
      expect(trailers.get('x-request-id')).toEqual(['client-chosen-id-42']);
      await waitFor(() => server.output().includes('"reqId":"client-chosen-id-42"'), 5000, 'the call with the chosen id to be logged');
    } finally {
      c.close();
      server.proc.kill('SIGTERM');
      await server.exited;
    }

    const lines = server.output().trim().split('\n');
    const entries = lines.map(l => {
      try {
        return JSON.parse(l) as Record<string, unknown>;
      } catch {
        throw new Error(`not a JSON line: ${l}`);
      }
    });
    for (const e of entries) {
      expect(typeof e.level).toBe('number');
      expect(typeof e.msg).toBe('string');
      expect(typeof e.time).toBe('number');
    }
    const calls = entries.filter(e => e.msg === 'call');
    expect(calls.length).toBeGreaterThanOrEqual(9);
    for (const e of calls) {
      expect(e.level).toBe(20);
      expect(e.reqId).toMatch(/^[\w.:-]+$/);
      expect(typeof e.method).toBe('string');
      expect(typeof e.code).toBe('string');
      expect(typeof e.ms).toBe('number');
    }
    // Request ids are per call.
    expect(new Set(calls.map(e => e.reqId)).size).toBe(calls.length);
    const find = (method: string, code: string, queue?: string) =>
      calls.find(e => e.method === method && e.code === code && (queue === undefined || e.queue === queue));
    expect(find('Queues/CreateQueue', 'OK', 'logs-q')).toBeDefined();
    expect(find('Inbox/Send', 'OK', 'logs-q')).toBeDefined();
    expect(find('Inbox/Send', 'NOT_FOUND', 'no-such-queue')).toBeDefined();
    expect(find('Inbox/Send', 'INVALID_ARGUMENT', 'logs-q')).toBeDefined();
    expect(find('Inbox/Ack', 'OK', 'logs-q')).toBeDefined();
    expect(find('Inbox/Ack', 'INVALID_ARGUMENT')).toBeDefined();
    expect(find('Inbox/Subscribe', 'OK', 'logs-q')).toBeDefined();
    expect(find('Inbox/Lease', 'OK', 'logs-q')?.reqId).toBeDefined();
    expect(calls.find(e => e.reqId === 'client-chosen-id-42')).toMatchObject({ method: 'Inbox/Lease', queue: 'logs-q' });

    const all = lines.join('\n');
    for (const f of forms) expect(all).not.toContain(f);
  });

  it('name the request and queue on lines logged deep inside a call (a warning from the queue core)', async () => {
    const chunks: string[] = [];
    const sink = new Writable({
      write(chunk, _enc, done) {
        chunks.push(String(chunk));
        done();
      },
    });
    const app = await startApp(testOptions(await migratedDatabase()), createLogger('info', 'json', sink));
    const c = connect(app.address);
    try {
      await call(c.queues, c.queues.createQueue, { name: 'deep-q' });
      // A warning from the registry, as a database hiccup would log it, mid-Lease.
      const get = app.core.registry.get.bind(app.core.registry);
      const log = createLogger('info', 'json', sink);
      app.core.registry.get = async name => {
        log.warn({ err: new Error('simulated') }, 'registry slow');
        return get(name);
      };
      const md = new Metadata();
      md.set('x-request-id', 'deep-1');
      await new Promise<void>((resolve, reject) =>
        c.inbox.lease(LeaseRequest.fromPartial({ queue: 'deep-q' }), md, (err: ServiceError | null) => (err ? reject(err) : resolve())),
      );
    } finally {
      c.close();
      await app.stop();
    }
    const warn = chunks.map(l => JSON.parse(l)).find(e => e.msg === 'registry slow');
    expect(warn).toMatchObject({ level: 40, reqId: 'deep-1', method: 'Inbox/Lease', queue: 'deep-q' });
    // Outside any call, no request fields.
    const started = chunks.map(l => JSON.parse(l)).filter(e => e.reqId === undefined);
    expect(started.every(e => e.method === undefined)).toBe(true);
  });

  it('are readable text when pretty (a terminal, or INBOXD_LOG_FORMAT=pretty)', async () => {
    const db = await migratedDatabase();
    const proc = spawn(process.execPath, [`${ROOT}/dist/server/main.js`], {
      env: { ...process.env, DATABASE_URL: db, INBOXD_PORT: '0', INBOXD_METRICS_PORT: 'off', INBOXD_LOG_FORMAT: 'pretty', INBOXD_LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    proc.stdout.on('data', d => (out += d));
    proc.stderr.on('data', d => (out += d));
    const exited = new Promise<number | null>(resolve => proc.on('close', code => resolve(code)));
    await waitFor(() => /INFO.*: inboxd listening on 127\.0\.0\.1:\d+/.test(out), 20_000, `the pretty listening line in:\n${out}`);
    proc.kill('SIGTERM');
    expect(await exited, out).toBe(0);
    expect(out).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO.*: inboxd listening on/m);
    expect(out).toMatch(/address: "127\.0\.0\.1:\d+"/);
    expect(out).not.toContain('{"level"');
  });
});
