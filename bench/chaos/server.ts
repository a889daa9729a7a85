import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { SERVER_NODE_FLAGS } from '../../server/node-flags.js';
import { leftovers, progress, sleep, Tail, tcpOpen, waitFor } from './util.js';

const MAIN = fileURLToPath(new URL('../../server/main.js', import.meta.url));

/** A server process that exited when the suite had not killed it, or exited non-zero after SIGTERM. */
export interface Crash {
  server: string;
  pid: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  /** What the suite had done to it: nothing, or SIGTERM. */
  after: 'nothing' | 'SIGTERM';
  at: number;
  /** The fault it followed, and how long after that fault began. */
  after_fault?: string;
  tail: string[];
}

export interface ServerOptions {
  /** A name for progress lines and crash reports. */
  name: string;
  /** The fixed gRPC port: restarts come back on it, so clients reconnect to the same address. */
  port: number;
  /** DATABASE_URL; unset: the server starts its own embedded Postgres (dataDir, embeddedPgPort). */
  databaseUrl?: string;
  dataDir?: string;
  embeddedPgPort?: number;
  env?: Record<string, string>;
  /** Restart the server (once it exited by itself) as a supervisor would, so the scenario goes on. */
  restartOnCrash?: boolean;
  /** Where crashes are reported. */
  crashes: Crash[];
}

/**
 * One inboxd server (the built `dist/server/main.js`) on a fixed port, that the suite kills -9,
 * SIGTERMs and restarts. Its output (log level warn) is kept in memory, across restarts. Every
 * exit the suite did not cause is a crash.
 */
export class InboxdServer {
  private proc?: ChildProcess;
  /** Set when the suite kills or SIGTERMs it: that exit is expected. */
  private expecting?: 'SIGKILL' | 'SIGTERM';
  readonly output = new Tail(300);
  private closed = false;
  private restarting?: Promise<void>;
  /** Why restarts after a crash failed (the server exited before listening). */
  readonly restartFailures: string[] = [];
  /** Times (ms) the server started listening, first start included. */
  readonly listenedAt: number[] = [];
  starts = 0;

  constructor(readonly opts: ServerOptions) {}

  get address(): string {
    return `127.0.0.1:${this.opts.port}`;
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  get running(): boolean {
    return this.proc !== undefined;
  }

  /**
   * Spawns the server; resolves with the time its port accepts connections. A server that exits
   * before it listens failed to start (start rejects with its output): that is not a crash.
   */
  async start(timeoutMs = 60_000): Promise<number> {
    // A supervisor restart after a crash may be under way: wait for it rather than race it.
    if (this.restarting) await this.restarting;
    const listened = this.listenedAt.at(-1);
    if (this.proc && listened !== undefined) return listened;
    return this.spawnAndWait(timeoutMs);
  }

  private async spawnAndWait(timeoutMs: number): Promise<number> {
    if (this.proc) throw new Error(`${this.opts.name} is already running`);
    const { port, databaseUrl, dataDir, embeddedPgPort, env } = this.opts;
    const childEnv: Record<string, string | undefined> = {
      ...process.env,
      INBOXD_HOST: '127.0.0.1',
      INBOXD_PORT: String(port),
      INBOXD_METRICS_PORT: 'off',
      INBOXD_LOG_LEVEL: 'warn',
      INBOXD_LOG_FORMAT: 'json',
      DATABASE_URL: databaseUrl ?? '',
      ...(dataDir ? { INBOXD_DATA_DIR: dataDir } : {}),
      ...(embeddedPgPort ? { INBOXD_EMBEDDED_PG_PORT: String(embeddedPgPort) } : {}),
      ...env,
    };
    if (!databaseUrl) delete childEnv.DATABASE_URL;
    const proc = spawn(process.execPath, [...SERVER_NODE_FLAGS, MAIN], { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    this.expecting = undefined;
    this.starts++;
    leftovers.pids.add(proc.pid!);
    this.output.note(`[chaos] ${this.opts.name} start #${this.starts}: pid ${proc.pid} on port ${port}`);
    proc.stdout!.on('data', d => this.output.write(d));
    proc.stderr!.on('data', d => this.output.write(d));
    let exited = false;
    let listening = false;
    proc.on('exit', (code, signal) => {
      exited = true;
      leftovers.pids.delete(proc.pid!);
      if (this.proc === proc) this.proc = undefined;
      this.output.note(`[chaos] ${this.opts.name} pid ${proc.pid} exited: code ${code}, signal ${signal}`);
      const expecting = this.expecting;
      this.expecting = undefined;
      // On 'close', once its last output has been read: the crash report carries it.
      if (listening) proc.once('close', () => this.onExit(proc.pid!, code, signal, expecting));
    });
    const ok = await waitFor(async () => exited || (await tcpOpen(port, 250)), timeoutMs, 20);
    if (exited || !ok) {
      if (!exited) {
        this.expecting = 'SIGKILL';
        proc.kill('SIGKILL');
      }
      throw new Error(`${this.opts.name} did not start (${exited ? 'exited' : `not listening after ${timeoutMs} ms`}):\n${this.output.last(25).join('\n')}`);
    }
    listening = true;
    const at = Date.now();
    this.listenedAt.push(at);
    return at;
  }

  private onExit(pid: number, code: number | null, signal: NodeJS.Signals | null, expecting: InboxdServer['expecting']): void {
    if (expecting === 'SIGKILL') return;
    if (expecting === 'SIGTERM' && code === 0) return;
    const crash: Crash = {
      server: this.opts.name,
      pid,
      code,
      signal,
      after: expecting === 'SIGTERM' ? 'SIGTERM' : 'nothing',
      at: Date.now(),
      tail: this.output.last(60),
    };
    this.opts.crashes.push(crash);
    progress(`!! ${this.opts.name} (pid ${pid}) CRASHED: code ${code}, signal ${signal}${expecting ? ' after SIGTERM' : ''}`);
    if (this.opts.restartOnCrash && !this.closed && expecting !== 'SIGTERM') {
      this.restarting = this.supervise().finally(() => (this.restarting = undefined));
    }
  }

  /** Restarts after a crash, as systemd or Kubernetes would: again and again (backing off) until it listens. */
  private async supervise(): Promise<void> {
    for (let i = 0, wait = 250; !this.closed && !this.proc; i++, wait = Math.min(2000, wait * 2)) {
      await sleep(wait);
      if (this.closed || this.proc) return;
      try {
        await this.spawnAndWait(60_000);
        progress(`   ${this.opts.name} restarted after its crash${i ? ` (${i} failed starts first)` : ''}`);
        return;
      } catch (err) {
        const first = (err as Error).message.split('\n').find(l => /failed to start/.test(l)) ?? (err as Error).message.split('\n')[0] ?? '';
        this.restartFailures.push(first);
      }
    }
  }

  /** kill -9 now (synchronously); resolves once the process is gone. */
  kill9(): Promise<void> {
    const proc = this.proc;
    if (!proc) return Promise.resolve();
    const gone = new Promise<void>(resolve => proc.once('exit', () => resolve()));
    this.expecting = 'SIGKILL';
    proc.kill('SIGKILL');
    return gone;
  }

  /** SIGTERM; resolves with the drain time (SIGTERM to exit) and the exit status, or rejects after `timeoutMs` (then kills). */
  async sigterm(timeoutMs: number): Promise<{ drainMs: number; code: number | null; signal: NodeJS.Signals | null }> {
    const proc = this.proc;
    if (!proc) throw new Error(`${this.opts.name} is not running`);
    const t0 = Date.now();
    const gone = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>(resolve => proc.once('exit', (code, signal) => resolve({ code, signal })));
    this.expecting = 'SIGTERM';
    proc.kill('SIGTERM');
    const out = await Promise.race([gone, sleep(timeoutMs).then(() => undefined)]);
    if (!out) {
      this.expecting = 'SIGKILL';
      proc.kill('SIGKILL');
      await gone;
      throw new Error(`${this.opts.name} did not exit within ${timeoutMs} ms of SIGTERM; killed`);
    }
    return { drainMs: Date.now() - t0, ...out };
  }

  /** Stops for good: no more restarts; SIGTERM, then SIGKILL after `graceMs`. */
  async close(graceMs = 15_000): Promise<void> {
    this.closed = true;
    await this.restarting?.catch(() => {});
    const proc = this.proc;
    if (!proc) return;
    const gone = new Promise<void>(resolve => proc.once('exit', () => resolve()));
    this.expecting = 'SIGTERM';
    proc.kill('SIGTERM');
    if (!(await Promise.race([gone.then(() => true), sleep(graceMs).then(() => false)]))) {
      this.expecting = 'SIGKILL';
      proc.kill('SIGKILL');
      await gone;
    }
  }

  /** Closing without a drain (cleanup after a failure). */
  async destroy(): Promise<void> {
    this.closed = true;
    await this.kill9();
  }
}
