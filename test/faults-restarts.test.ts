import net from 'node:net';
import { type ServiceError, status } from '@grpc/grpc-js';
import { LeaseRequest, SubscribeRequest, type SubscribeResponse } from '@inboxd/proto/v1/inbox';
import { createClient, type InboxdClient } from '@inboxd/sdk';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ChaosPostgres } from '../bench/chaos/postgres.js';
import { freePort } from '../bench/lib/postgres.js';
import { bounded, type Clients, call, connect, dur, type ServerProcess, sleep, spawnServer, waitFor } from './support/harness.js';

const alive = (p: ServerProcess) => p.proc.exitCode === null && p.proc.signalCode === null;

describe('faults: shutdown and restarts of the server', () => {
  let pg: ChaosPostgres;
  const procs: ServerProcess[] = [];
  const clients: (Clients | InboxdClient)[] = [];

  beforeAll(async () => {
    pg = await ChaosPostgres.create();
  });
  afterAll(async () => {
    await pg?.destroy();
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) await bounded(c.close(), 5000);
    for (const p of procs.splice(0)) {
      if (alive(p)) {
        p.proc.kill('SIGKILL');
        await p.exited;
      }
    }
  });

  it('SIGTERM drains within the shutdown timeout: long-polls answered at once, streams told UNAVAILABLE, exit 0', async () => {
    const db = await pg.createDatabase('drain');
    const p = await spawnServer(db, { INBOXD_SHUTDOWN_TIMEOUT_MS: '3000' });
    procs.push(p);
    const c = connect(p.address);
    clients.push(c);
    await call(c.queues, c.queues.createQueue, { name: 'd' });
    // A long-poll waiting 20 s, and a stream open on the same queue.
    const poll = call(c.inbox, c.inbox.lease, LeaseRequest.fromPartial({ queue: 'd', maxMessages: 1, wait: dur(20) })).then(
      r => ({ ok: true as const, n: r.deliveries.length, at: Date.now() }),
      (e: ServiceError) => ({ ok: false as const, code: e.code, at: Date.now() }),
    );
    const stream = c.inbox.subscribe();
    const streamEnd = new Promise<{ code: number; at: number }>(resolve => {
      stream.on('error', (e: ServiceError) => resolve({ code: e.code, at: Date.now() }));
      stream.on('data', (_: SubscribeResponse) => {});
    });
    stream.write(SubscribeRequest.fromPartial({ queue: 'd', flowControl: { maxOutstandingMessages: 10 } }));
    // The stream is open once a request after its first is answered (an extend of a token no server issued).
    await new Promise<void>(resolve => {
      stream.on('data', (r: SubscribeResponse) => r.extendResults && resolve());
      stream.write(SubscribeRequest.fromPartial({ extendLeaseTokens: ['probe'] }));
    });

    const t0 = Date.now();
    p.proc.kill('SIGTERM');
    const code = await p.exited;
    const drainMs = Date.now() - t0;
    const polled = await poll;
    const ended = await streamEnd;
    expect(code).toBe(0);
    expect(drainMs).toBeLessThan(3000);
    expect(polled).toMatchObject({ ok: true, n: 0 });
    expect(polled.at - t0).toBeLessThan(1000);
    expect(ended.code).toBe(status.UNAVAILABLE);
    expect(ended.at - t0).toBeLessThan(1000);
  });

  it('with SDK defaults, a producer sending 1,000 msgs/s through 3 s server restarts sees every send resolve', async () => {
    const db = await pg.createDatabase('restarts');
    const port = String(await freePort());
    const env = { INBOXD_PORT: port, INBOXD_AUTO_CREATE_QUEUES: 'true' };
    let p = await spawnServer(db, env);
    procs.push(p);
    const client = createClient({ address: p.address });
    clients.push(client);
    await client.queues.create('steady');

    const outcomes: Promise<'ok' | string>[] = [];
    let ok = 0;
    let producing = true;
    const started = Date.now();
    const producer = (async () => {
      // 1,000 msgs/s: every 10 ms, what the schedule says is due (a late timer on a busy machine
      // is caught up, not a lower rate).
      for (let i = 0; producing; i++) {
        while (outcomes.length < Date.now() - started)
          outcomes.push(
            client.send('steady', `m${i}.${outcomes.length}`).then(
              () => (ok++, 'ok' as const),
              e => String(e.code ?? e),
            ),
          );
        await sleep(10);
      }
    })();
    /** Sends go through the server now running: 300 more answered since the call. */
    const flowing = async () => {
      const from = ok;
      await waitFor(() => ok >= from + 300, 30_000, 'sends to go through the running server');
    };
    for (let restart = 0; restart < 3; restart++) {
      await flowing();
      p.proc.kill('SIGKILL');
      await p.exited;
      // Real time: the server stays away 3 s, what a restart takes, inside the SDK's default retry budget.
      await sleep(3000);
      p = await spawnServer(db, env);
      procs.push(p);
    }
    await flowing();
    producing = false;
    await producer;
    const results = await Promise.all(outcomes);
    const failed = results.filter(r => r !== 'ok');
    // The producer kept up: at least half of 1,000 a second over the whole run.
    expect(results.length).toBeGreaterThan((Date.now() - started) / 2);
    expect(failed.length, `failed sends: ${[...new Set(failed)].join(', ')}`).toBe(0);
  });

  it('says what failed and what to do when the embedded Postgres cannot bind its port', async () => {
    const holder = net.createServer();
    await new Promise<void>(r => holder.listen(0, '127.0.0.1', r));
    const port = (holder.address() as net.AddressInfo).port;
    try {
      const { spawn } = await import('node:child_process');
      const os = await import('node:os');
      const fs = await import('node:fs');
      const dir = fs.mkdtempSync(`${os.tmpdir()}/inboxd-bind-`);
      fs.chmodSync(dir, 0o755);
      const { ROOT } = await import('./support/harness.js');
      const env = { ...process.env, INBOXD_PORT: '0', INBOXD_METRICS_PORT: 'off', INBOXD_DATA_DIR: `${dir}/data`, INBOXD_EMBEDDED_PG_PORT: String(port) };
      delete (env as Record<string, string | undefined>).DATABASE_URL;
      const proc = spawn(process.execPath, [`${ROOT}/dist/server/main.js`], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      proc.stdout.on('data', d => (out += d));
      proc.stderr.on('data', d => (out += d));
      const code = await new Promise<number | null>(r => proc.on('exit', r));
      fs.rmSync(dir, { recursive: true, force: true });
      expect(code).toBe(1);
      expect(out).not.toMatch(/undefined/);
      expect(out).toContain(`inboxd: failed to start: embedded Postgres cannot listen on 127.0.0.1:${port}`);
      expect(out).toMatch(/INBOXD_EMBEDDED_PG_PORT/);
      expect(out).toMatch(/DATABASE_URL/);
    } finally {
      holder.close();
    }
  });
});
