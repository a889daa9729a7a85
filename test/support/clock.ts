import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { TestClock } from 'pg-boss';
import type { AppOptions } from '../../server/app.js';
import type { CoreOptions, QueueCore } from '../../server/queue/core.js';
import { migratedDatabase, startServer } from './harness.js';

/**
 * Time for a server under test, moved by hand: pg-boss's TestClock, which the server's core takes
 * as its clock (CoreOptions.clock). Postgres reads it through job_now() on every connection of the
 * pool, and the server's own timers that act on time run on it: the lease sweeper, due-time
 * wake-ups (deliver_at, nack delays, retry delays), lease ends as reported and checked against.
 * Nothing else moves it: a test leases for 1 s and says when that second has passed.
 *
 * Network deadlines, long-poll waits and the poll interval stay on real time.
 *
 *   const clock = new ServerClock();
 *   const srv = await startServer(db, { clock: clock.clock });
 *   clock.attach(srv.app.core);
 *   await clock.advance(1000); // every sweep and wake-up due in that second has run
 */
export class ServerClock {
  readonly clock: TestClock;
  private readonly cores = new Map<QueueCore, AsyncDisposable>();

  constructor(start = Date.now()) {
    this.clock = new TestClock(start);
  }

  now(): number {
    return this.clock.now();
  }

  /** Ties the clock to a server's notifications (call once it has started; several servers may share one clock). */
  async attach(core: QueueCore): Promise<void> {
    await heardAll(core);
    // Between one timer and the next, the server hears what the first one announced (a sweep's
    // release, a due time armed by notification), as it would in real time: the clock's settling
    // waits on this target too. It has no table of its own (a database that runs nothing).
    const attached = await this.clock.attach({
      db: { executeSql: async () => ({ rows: [], rowCount: 0 }) } as unknown as Parameters<TestClock['attach']>[0]['db'],
      schema: `inboxd_test_notifications_${randomBytes(4).toString('hex')}`,
      idle: async () => {
        await heardAll(core);
        return false;
      },
    });
    this.cores.set(core, attached);
  }

  /**
   * Moves time on by `ms` without firing any timer: as if the server had been too busy to run one.
   * What fell due meanwhile (a sweep, a wake-up) runs at the next advance().
   */
  async jump(ms: number): Promise<void> {
    await this.clock.setTime(this.now() + ms);
  }

  /**
   * Moves the clock up to the wall clock, firing what is due on the way: before a test sends an
   * expires_at, which the server refuses if it has passed by the wall clock.
   */
  async catchUp(): Promise<void> {
    await this.advance(Math.max(0, Date.now() - this.now()));
  }

  /** Before a server that shares the clock stops. */
  async detach(core: QueueCore): Promise<void> {
    await this.cores.get(core)?.[Symbol.asyncDispose]();
    this.cores.delete(core);
  }

  private async heard(): Promise<void> {
    if (this.cores.size === 0) throw new Error('ServerClock: attach(core) first');
    await Promise.all([...this.cores.keys()].map(heardAll));
  }

  /**
   * Moves time on by `ms`, firing the server's timers due on the way in order, each at its own
   * time, and waiting after each until the statements it started are done (a sweep that expires
   * leases and wakes waiters, a wake-up whose pump leases for a stream). Notifications first, so
   * a due time announced before the call is armed before time moves past it.
   */
  async advance(ms: number): Promise<void> {
    await this.heard();
    await this.clock.tick(ms);
    // What the last timers announced (a release wakes every replica through Postgres) is heard,
    // and any timer it armed for now fires.
    await this.heard();
    await this.clock.tick(0);
  }
}

const barriers = new WeakMap<QueueCore, Promise<{ channel: string; heard: Map<string, () => void>; notifier: pg.Client }>>();

/**
 * Resolves once the server has heard every notification committed so far (wake-ups and due times
 * travel as NOTIFY to every replica, this one too): Postgres delivers notifications in commit
 * order, so once one of ours sent now arrives, those before it have, and their handlers have run.
 * Ours is sent on a connection of the test's own, so that no statement of the server's is added.
 */
export async function heardAll(core: QueueCore): Promise<void> {
  let ready = barriers.get(core);
  if (!ready) {
    ready = (async () => {
      const channel = `inboxd_test_barrier_${randomBytes(4).toString('hex')}`;
      const heard = new Map<string, () => void>();
      await core.wakeups.listen(channel, payload => {
        if (payload) heard.get(payload)?.();
      });
      const notifier = new pg.Client({ connectionString: (core as unknown as { opts: CoreOptions }).opts.databaseUrl });
      notifier.on('error', () => {});
      await notifier.connect();
      return { channel, heard, notifier };
    })();
    barriers.set(core, ready);
  }
  const b = await ready;
  const token = randomBytes(6).toString('hex');
  const arrived = new Promise<void>(resolve => b.heard.set(token, resolve));
  await b.notifier.query('SELECT pg_notify($1, $2)', [b.channel, token]);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('our own notification did not come back in 10 s')), 10_000)));
  try {
    await Promise.race([arrived, timeout]);
  } finally {
    clearTimeout(timer);
    b.heard.delete(token);
  }
}

/**
 * Resolves once the server has nothing left to do for `queue`'s subscribers: every notification
 * heard, and no fetch running for them. What it delivered before is written to the streams; a
 * round trip on a stream then shows whether anything more came.
 */
export async function dispatcherIdle(core: QueueCore, queue: string, timeoutMs = 10_000): Promise<void> {
  await heardAll(core);
  // The dispatcher's state per queue is its own; a test looks, it does not touch.
  const queues = (core.dispatcher as unknown as { queues: Map<string, { pumping: boolean }> }).queues;
  const deadline = Date.now() + timeoutMs;
  while (queues.get(queue)?.pumping) {
    if (Date.now() > deadline) throw new Error(`the dispatcher was still fetching for ${queue} after ${timeoutMs} ms`);
    await new Promise(r => setTimeout(r, 5));
  }
}

/** A server in this process on a database of its own, its time on a ServerClock. */
export async function startTimedServer(
  overrides: Partial<AppOptions> = {},
  shared?: { clock: ServerClock; databaseUrl: string },
): Promise<Awaited<ReturnType<typeof startServer>> & { clock: ServerClock; databaseUrl: string }> {
  const clock = shared?.clock ?? new ServerClock();
  const databaseUrl = shared?.databaseUrl ?? (await migratedDatabase());
  const srv = await startServer(databaseUrl, { ...overrides, clock: clock.clock });
  await clock.attach(srv.app.core);
  return {
    ...srv,
    clock,
    databaseUrl,
    stop: async () => {
      await clock.detach(srv.app.core);
      await srv.stop();
    },
  };
}

/**
 * Resolves when the server next starts waiting for `queue` (a long-poll Lease that found nothing),
 * so a test can act on the waiter instead of sleeping first; `left` then resolves when that wait
 * ends (a wake-up, the wait's end, or the call cancelled). Call it before the Lease.
 */
export function serverWaits(core: QueueCore, queue: string, timeoutMs = 10_000): Promise<{ left: Promise<void> }> {
  const wakeups = core.wakeups;
  const original = wakeups.wait;
  return new Promise((resolve, reject) => {
    const restore = () => {
      clearTimeout(t);
      if (wakeups.wait === patched) wakeups.wait = original;
    };
    const t = setTimeout(() => (restore(), reject(new Error(`the server did not wait on ${queue} within ${timeoutMs} ms`))), timeoutMs);
    const patched: typeof original = function (this: typeof wakeups, q, ms, signal) {
      const waiting = original.call(this, q, ms, signal);
      if (q === queue) {
        restore();
        resolve({ left: waiting });
      }
      return waiting;
    };
    wakeups.wait = patched;
  });
}
