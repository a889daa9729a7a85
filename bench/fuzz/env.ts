import { createClient, type InboxdClient } from '@inboxd/sdk';
import { ChaosPostgres } from '../chaos/postgres.js';
import { type Crash, InboxdServer } from '../chaos/server.js';
import { freePort, withTimeout } from '../chaos/util.js';

/**
 * The fuzz suite's world, from the chaos suite's parts: one Postgres of its own (ChaosPostgres, a
 * child process in a temp directory) and, per phase, a fresh database and a fresh inboxd server
 * (InboxdServer: the built dist/server/main.js on a free port). Every pid and directory goes to the
 * chaos suite's `leftovers`, swept on exit, failure and Ctrl-C.
 */

const T0 = Date.now();
export function say(msg: string): void {
  process.stderr.write(`[fuzz +${((Date.now() - T0) / 1000).toFixed(1).padStart(5)}s] ${msg}\n`);
}

export class World {
  private pg?: ChaosPostgres;
  private pgStarting?: Promise<ChaosPostgres>;
  readonly crashes: Crash[] = [];
  private servers: InboxdServer[] = [];

  /** The suite's Postgres, started once (callers at the same time share the start). */
  postgres(): Promise<ChaosPostgres> {
    this.pgStarting ??= (async () => {
      say('starting the suite Postgres');
      this.pg = await ChaosPostgres.create();
      say(`Postgres on 127.0.0.1:${this.pg.port} (pid ${this.pg.pid})`);
      return this.pg;
    })();
    return this.pgStarting;
  }

  /** A fresh database and server; restarted by a supervisor if it crashes (the crash is recorded). */
  async server(name: string, env: Record<string, string> = {}): Promise<InboxdServer> {
    const pg = await this.postgres();
    const databaseUrl = await pg.createDatabase(name);
    const s = new InboxdServer({
      name,
      port: await freePort(),
      databaseUrl,
      env: { INBOXD_LOG_LEVEL: 'error', ...env },
      restartOnCrash: true,
      crashes: this.crashes,
    });
    this.servers.push(s);
    await s.start();
    return s;
  }

  /** An SDK client with SDK defaults, except a shorter total timeout for setup calls. */
  client(s: InboxdServer, o: Parameters<typeof createClient>[0] = {}): InboxdClient {
    return createClient({ address: s.address, ...o });
  }

  async closeServer(s: InboxdServer): Promise<void> {
    await s.close(10_000).catch(() => s.destroy());
    this.servers = this.servers.filter(x => x !== s);
  }

  async destroy(): Promise<void> {
    for (const s of this.servers) await s.destroy().catch(() => {});
    this.servers = [];
    await this.pgStarting?.catch(() => {});
    if (this.pg) await withTimeout(this.pg.destroy(), 20_000, 'stopping Postgres').catch(() => {});
  }
}
