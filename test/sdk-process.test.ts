import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createClient, type InboxdClient, type ReceivedMessage } from '@inboxd/sdk';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { migratedDatabase, type ServerProcess, sleep, spawnServer, waitFor } from './support/harness.js';
import { connectionsTo, freePort } from './support/net.js';

let n = 0;
const queueName = (prefix: string) => `${prefix}-${++n}-${randomUUID().slice(0, 6)}`;

const portOf = (address: string) => Number(address.slice(address.lastIndexOf(':') + 1));

function _run(file: string, args: string[], cwd: string): Promise<{ code: number | null; out: string }> {
  return new Promise(resolve =>
    execFile(file, args, { cwd, timeout: 30_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, out: stdout + stderr }),
    ),
  );
}

describe('sdk against server processes', () => {
  let db: string;
  const procs: ServerProcess[] = [];
  const clients: InboxdClient[] = [];

  beforeAll(async () => {
    db = await migratedDatabase();
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map(c => c.close({ timeout: 2000 }).catch(() => {})));
    for (const p of procs.splice(0)) await kill9(p);
  });

  const start = async (port = 0): Promise<ServerProcess> => {
    const p = await spawnServer(db, { INBOXD_PORT: String(port) });
    procs.push(p);
    return p;
  };
  const kill9 = async (p: ServerProcess) => {
    if (p.proc.exitCode === null && p.proc.signalCode === null) {
      p.proc.kill('SIGKILL');
      await p.exited;
    }
  };
  const newClient = (o: Parameters<typeof createClient>[0]) => {
    const c = createClient(o);
    clients.push(c);
    return c;
  };

  it('a pool of 3 opens 3 TCP connections to the server; a pool of 1 opens one', async () => {
    const p = await start();
    const port = portOf(p.address);
    expect(connectionsTo(port)).toBe(0);

    const c3 = newClient({ address: p.address, poolSize: 3 });
    const queue = queueName('pool');
    await c3.queues.create(queue);
    for (let i = 0; i < 6; i++) await c3.queues.stats(queue);
    // The calls are done: every connection they opened is open (and established, once counted).
    await waitFor(() => connectionsTo(port) >= 3, 10_000, 'three connections');
    expect(connectionsTo(port)).toBe(3);
    await c3.close();
    await waitFor(() => connectionsTo(port) === 0, 10_000, 'the connections to close');

    const c1 = newClient({ address: p.address, poolSize: 1 });
    for (let i = 0; i < 6; i++) await c1.queues.stats(queue);
    await Promise.all([0, 1, 2, 3].map(() => c1.send(queue, 'x')));
    await waitFor(() => connectionsTo(port) >= 1, 10_000, 'one connection');
    expect(connectionsTo(port)).toBe(1);
  });

  it('spreads calls over several endpoints, and goes on through the survivor when one is killed', async () => {
    const [a, b] = await Promise.all([start(), start()]);
    const c = newClient({ endpoints: [a.address, b.address], poolSize: 2 });
    const queue = queueName('endpoints');
    await c.queues.create(queue);
    for (let i = 0; i < 4; i++) await c.queues.stats(queue);
    await waitFor(() => connectionsTo(portOf(a.address)) === 1 && connectionsTo(portOf(b.address)) === 1, 10_000, 'a connection to each server');

    const before = await Promise.all(Array.from({ length: 20 }, (_, i) => c.send(queue, `before-${i}`)));
    // Two subscribers: on a pool of two channels, one rides each server's connection.
    const consumed = newClient({ endpoints: [a.address, b.address], poolSize: 2 });
    const subQueue = queueName('endpoints-sub');
    // Counted acked (stats.acked): kept as history, not deleted by the ack (the default).
    await c.queues.create(subQueue, { ackedRetention: '1h' });
    const handled = new Set<string>();
    const subs = [0, 1].map(() => consumed.subscribe(subQueue, (m: ReceivedMessage) => void handled.add(m.id), { visibilityTimeout: '2s' }));
    expect(consumed.pool.channels.map(ch => ch.streams)).toEqual([1, 1]);
    const early = await Promise.all(Array.from({ length: 20 }, (_, i) => c.send(subQueue, `early-${i}`)));
    await waitFor(() => early.every(id => handled.has(id)), 10_000, 'the subscribers to handle the first messages');
    await kill9(a);

    // Every call still succeeds: the attempt on the dead server's channel fails UNAVAILABLE and the
    // retry goes to the next channel. Long enough that a client retrying blindly would exhaust its
    // retry budget.
    const after: string[] = [];
    for (let i = 0; i < 150; i++) {
      if (i % 2 === 0) after.push(await c.send(queue, `after-${i}`));
      else expect((await c.queues.stats(queue)).queue).toBe(queue);
    }
    expect(connectionsTo(portOf(a.address))).toBe(0);
    const got: ReceivedMessage[] = [];
    // Every send was answered, so everything is stored: lease until a lease finds nothing.
    for (;;) {
      const batch = await c.lease(queue, { max: 1000 });
      if (batch.length === 0) break;
      got.push(...batch);
      await c.ack(batch);
    }
    expect(new Set(got.map(m => m.id))).toEqual(new Set([...before, ...after]));

    // The subscriber whose server died reconnects to the survivor: all later messages are handled.
    const late = await Promise.all(Array.from({ length: 40 }, (_, i) => c.send(subQueue, `late-${i}`)));
    await waitFor(() => late.every(id => handled.has(id)), 20_000, 'the subscribers to handle the later messages');
    const onSurvivor = () => consumed.pool.channels.filter(ch => ch.address === b.address).reduce((sum, ch) => sum + ch.streams, 0);
    await waitFor(() => onSurvivor() === 2, 10_000, 'both streams on the survivor');
    expect(onSurvivor()).toBe(2);
    await Promise.all(subs.map(s => s.close()));
    expect(await c.queues.stats(subQueue)).toMatchObject({ depth: 0, leased: 0, acked: 60 });
  });

  it('a call retries through a server restart on the same port and succeeds', async () => {
    const port = await freePort();
    const p1 = await start(port);
    const address = `127.0.0.1:${port}`;
    const c = newClient({ address, poolSize: 2 });
    const queue = queueName('restart');
    await c.queues.create(queue, { ackedRetention: '1h' }); // counted acked below

    // A long poll in flight when the server dies…
    const polling = c.lease(queue, { wait: '20s' });
    await sleep(100);
    await kill9(p1);
    // …and calls made while it is down (until the new server listens: a process start).
    const sending = c.send(queue, 'sent while down');
    const stats = c.queues.stats(queue);
    await start(port);

    const id = await sending;
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect((await stats).queue).toBe(queue);
    // The retried long poll is served by the new server: it leases the message sent meanwhile.
    const leased = await polling;
    expect(leased.map(m => [m.id, m.text(), m.attempt])).toEqual([[id, 'sent while down', 1]]);
    await leased[0].ack();
    expect(await c.queues.stats(queue)).toMatchObject({ depth: 0, leased: 0, acked: 1 });
  });

  it('a subscriber survives kill -9 and restart mid-stream: every message handled, all acked', async () => {
    const port = await freePort();
    const p1 = await start(port);
    const c = newClient({ address: `127.0.0.1:${port}`, poolSize: 2 });
    const queue = queueName('survive');
    await c.queues.create(queue, { ackedRetention: '1h' }); // counted acked below
    const sent = await Promise.all(Array.from({ length: 500 }, (_, i) => c.send(queue, `m${i}`)));
    expect(new Set(sent).size).toBe(500);

    const handled: string[] = [];
    let reconnects = 0;
    const sub = c.subscribe(
      queue,
      async (m: ReceivedMessage) => {
        await sleep(5 + Math.random() * 10);
        handled.push(m.id);
      },
      { maxOutstandingMessages: 10, visibilityTimeout: '2s' },
    );
    sub.on('reconnecting', () => reconnects++);
    await waitFor(() => handled.length >= 100, 20_000, '100 messages handled');
    await kill9(p1);
    const handledAtKill = handled.length;
    expect(handledAtKill).toBeLessThan(500);
    // Down for as long as a process start takes.
    await start(port);

    // Usually a few seconds: the leases held at the kill end after 2s. But a kill between the
    // server's lease fetch and its lease-length update leaves those leases at the queue's default
    // (30s): the wait allows for that.
    await waitFor(async () => new Set(handled).size === 500 && (await c.queues.stats(queue)).acked === 500, 45_000, 'every message handled and acked');
    expect(reconnects).toBeGreaterThan(0);
    expect(handled.length).toBeGreaterThanOrEqual(500);
    expect(new Set(handled)).toEqual(new Set(sent));
    await sub.close();
    expect(await c.queues.stats(queue)).toMatchObject({ depth: 0, leased: 0, acked: 500 });
  });
});
