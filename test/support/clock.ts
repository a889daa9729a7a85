import { randomBytes } from 'node:crypto';
import { TestClock } from 'pg-boss';
import type { QueueCore } from '../../server/queue/core.js';
import type { AppOptions } from '../../server/app.js';
import { createDatabase, startServer } from './harness.js';

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
  private core?: QueueCore;
  private channel = `inboxd_test_clock_${randomBytes(4).toString('hex')}`;
  private heard = new Map<string, () => void>();

  constructor(start = Date.now()) {
    this.clock = new TestClock(start);
  }

  now(): number {
    return this.clock.now();
  }

  /** Ties the clock to the server's notifications (call once the server has started). */
  async attach(core: QueueCore): Promise<void> {
    this.core = core;
    await core.wakeups.listen(this.channel, payload => {
      if (payload) this.heard.get(payload)?.();
    });
  }

  /**
   * Waits until the server has heard every notification committed so far (due times travel as
   * NOTIFY, 'queue dueInMs', to every replica, this one too). Postgres delivers notifications in
   * commit order, so once one of ours sent now arrives, those before it have too.
   */
  async caughtUp(): Promise<void> {
    const core = this.core;
    if (!core) throw new Error('ServerClock: attach(core) first');
    const token = randomBytes(6).toString('hex');
    const arrived = new Promise<void>(resolve => this.heard.set(token, resolve));
    await core.db.exec({ text: 'SELECT pg_notify($1, $2)', values: [this.channel, token] });
    const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('ServerClock: our own notification did not arrive in 10 s')), 10_000).unref());
    try {
      await Promise.race([arrived, timeout]);
    } finally {
      this.heard.delete(token);
    }
  }

  /**
   * Moves time on by `ms`, firing the server's timers due on the way in order, each at its own
   * time, and waiting after each until the statements it started are done (a sweep that expires
   * leases and wakes waiters, a wake-up whose pump leases for a stream). Notifications first, so
   * a due time announced before the call is armed before time moves past it.
   */
  async advance(ms: number): Promise<void> {
    await this.caughtUp();
    await this.clock.tick(ms);
    // What the last timers announced (a release wakes every replica through Postgres) is heard,
    // and any timer it armed for now fires.
    await this.caughtUp();
    await this.clock.tick(0);
  }
}

/** A server in this process on a database of its own, its time on a ServerClock. */
export async function startTimedServer(overrides: Partial<AppOptions> = {}): Promise<Awaited<ReturnType<typeof startServer>> & { clock: ServerClock }> {
  const clock = new ServerClock();
  const srv = await startServer(await createDatabase(), { ...overrides, clock: clock.clock });
  await clock.attach(srv.app.core);
  return { ...srv, clock };
}

/**
 * Resolves when the server next starts waiting for `queue` (a long-poll Lease that found nothing),
 * so a test can act on the waiter instead of sleeping first. Call it before the Lease.
 */
export function serverWaits(core: QueueCore, queue: string, timeoutMs = 10_000): Promise<void> {
  const wakeups = core.wakeups;
  const original = wakeups.wait;
  return new Promise<void>((resolve, reject) => {
    const restore = () => {
      clearTimeout(t);
      if (wakeups.wait === patched) wakeups.wait = original;
    };
    const t = setTimeout(() => (restore(), reject(new Error(`the server did not wait on ${queue} within ${timeoutMs} ms`))), timeoutMs);
    const patched: typeof original = function (this: typeof wakeups, q, ms, signal) {
      const waiting = original.call(this, q, ms, signal);
      if (q === queue) {
        restore();
        resolve();
      }
      return waiting;
    };
    wakeups.wait = patched;
  });
}
