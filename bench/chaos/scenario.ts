import type { Duration } from '@inboxd/sdk';
import type { Counts } from './ledger.js';
import type { ChaosPostgres } from './postgres.js';
import { type Crash, InboxdServer, type ServerOptions } from './server.js';
import { progress } from './util.js';
import { codeName, Workload, type WorkloadOptions } from './workload.js';

/** Sizes of one run: quick (CI, ≤ 2 minutes in all) or full. */
export interface Mode {
  quick: boolean;
  /** Producer rate, messages per second. */
  rate: number;
  /** Load before the first fault, and between faults, ms. */
  warmupMs: number;
  betweenMs: number;
  /** Queue visibility timeout: leases a killed server never released come back after it. */
  visibilityTimeout: Duration;
  /**
   * Drain: how long (at most) to wait for every acknowledged send to be acked; how long without
   * any delivery or ack ends the wait early (more than the visibility timeout: leases a killed
   * server held come back only then); then how long to watch for late redeliveries.
   */
  drainTimeoutMs: number;
  drainStallMs: number;
  quietMs: number;
  /** How long unresolved sends are waited for once producers stop. */
  sendTimeoutMs: number;
}

/** One scenario's row of the report (and of chaos.json). */
export interface ScenarioResult {
  name: string;
  /** What was done, e.g. "kill -9 ×2". */
  faults: string;
  seconds: number;
  counts?: Counts;
  crashes: Crash[];
  /** Worst recovery over the faults, ms (undefined: no fault to recover from, or never recovered: see notes). */
  recovery_ms?: number;
  /** Recovery of each fault: ms to the first acknowledged send and the first delivery after it ended. */
  recoveries: { fault: string; send_ms?: number; delivery_ms?: number }[];
  /** Faults after which no send was acknowledged, or nothing delivered, by the end. */
  unrecovered?: number;
  drain_ms?: number;
  /** Figures particular to the scenario. */
  extra: Record<string, unknown>;
  /** Observations that fail no check but deserve a look (sends that failed, a slow drain, …). */
  notes: string[];
  /** The scenario itself failed (setup, timeout): counts may be partial. */
  error?: string;
  skipped?: string;
  /** Tails of server output, kept when the scenario failed or a server crashed. */
  tails?: Record<string, string[]>;
}

export interface Scenario {
  name: string;
  /** What it does, one line. */
  about: string;
  /** In quick mode: run, or skip with this reason. */
  quick: true | string;
  /** Hard bound on the scenario, ms. */
  timeoutMs(mode: Mode): number;
  run(ctx: Context): Promise<void>;
}

/**
 * What a scenario works with: the mode, the shared Postgres, servers and workloads it starts
 * (tracked, so that they are ended whatever happens), and the result it fills in.
 */
export class Context {
  readonly servers: InboxdServer[] = [];
  readonly workloads: Workload[] = [];
  readonly crashes: Crash[] = [];
  readonly cleanups: (() => Promise<void> | void)[] = [];
  readonly result: ScenarioResult;
  private readonly faultEnds: { fault: string; at: number }[] = [];
  private readonly faultStarts: { fault: string; at: number }[] = [];

  constructor(
    readonly name: string,
    readonly mode: Mode,
    private readonly getPg: () => Promise<ChaosPostgres>,
  ) {
    this.result = { name, faults: '', seconds: 0, crashes: this.crashes, recoveries: [], extra: {}, notes: [] };
  }

  pg(): Promise<ChaosPostgres> {
    return this.getPg();
  }

  log(msg: string): void {
    progress(`${this.name}: ${msg}`);
  }

  server(opts: Omit<ServerOptions, 'crashes'>): InboxdServer {
    const s = new InboxdServer({ ...opts, crashes: this.crashes });
    this.servers.push(s);
    return s;
  }

  workload(opts: Omit<WorkloadOptions, 'rate'> & { rate?: number }): Workload {
    const w = new Workload({ rate: this.mode.rate, ...opts });
    this.workloads.push(w);
    return w;
  }

  /** A fault begins now (crashes are reported with the fault they followed). */
  faultStarting(fault: string): void {
    this.faultStarts.push({ fault, at: Date.now() });
  }

  /** The fault a crash at `at` followed: "<fault> +<ms> ms", or undefined (none had begun). */
  faultBefore(at: number): string | undefined {
    const f = this.faultStarts.filter(x => x.at <= at).pop();
    return f && `${f.fault} +${at - f.at} ms`;
  }

  /** A fault ended at `at` (server listening again, Postgres accepting connections again). */
  faultEnded(fault: string, at: number): void {
    this.faultEnds.push({ fault, at });
  }

  /** Recovery after each fault, from `ledger`: worse of first acknowledged send and first delivery. */
  computeRecovery(w: Workload): void {
    for (const [_i, { fault, at }] of this.faultEnds.entries()) {
      const r = w.ledger.recoveryAfter(at);
      this.result.recoveries.push({ fault, send_ms: r.sendMs, delivery_ms: r.deliveryMs });
      if (r.sendMs === undefined || r.deliveryMs === undefined) {
        this.result.unrecovered = (this.result.unrecovered ?? 0) + 1;
        this.result.notes.push(`no ${r.sendMs === undefined ? 'acknowledged send' : 'delivery'} after ${fault}`);
        continue;
      }
      this.result.recovery_ms = Math.max(this.result.recovery_ms ?? 0, r.sendMs, r.deliveryMs);
    }
  }

  /** Producers stopped, drain, counts: the common ending of a load scenario. */
  async finish(w: Workload): Promise<void> {
    this.log('stopping producers');
    const unresolved = await w.stopProducers(this.mode.sendTimeoutMs);
    if (unresolved > 0) this.result.notes.push(`${unresolved} sends still unresolved ${this.mode.sendTimeoutMs} ms after producers stopped`);
    this.log(`draining (${w.ledger.outstanding()} acknowledged messages not acked yet)`);
    const t0 = Date.now();
    const drained = await w.drain(this.mode.drainTimeoutMs, this.mode.drainStallMs, this.mode.quietMs);
    if (!drained)
      this.result.notes.push(`drain incomplete after ${Date.now() - t0 - this.mode.quietMs} ms: ${w.ledger.outstanding()} acknowledged messages not acked`);
    this.result.extra.consumer_drain_ms = Date.now() - t0 - this.mode.quietMs;
    this.computeRecovery(w);
    this.result.counts = w.ledger.counts();
    this.result.notes.push(...w.notes);
    this.noteRestartFailures();
    await this.explainLost(w);
  }

  /** For a few lost ids, what the server says of them (GetMessage): evidence for the report. */
  private async explainLost(w: Workload): Promise<void> {
    for (const { id, queue } of w.ledger.lostIds(3)) {
      const what = await w.producer.messages.get(queue, id, { retry: { totalTimeout: '3s' } }).then(
        m => `state ${m.state}, ${m.attempts} attempts`,
        err => codeName(err),
      );
      this.result.notes.push(`lost ${id} (${queue}): the server says ${what}`);
    }
  }

  noteRestartFailures(): void {
    for (const s of this.servers) {
      if (s.restartFailures.length && !this.result.notes.some(n => n.startsWith(`${s.opts.name}: `)))
        this.result.notes.push(`${s.opts.name}: ${s.restartFailures.length} restarts after a crash failed to start, e.g. ${s.restartFailures[0]}`);
    }
  }

  /** Each crash with the fault it followed (for the report). */
  annotateCrashes(): void {
    for (const c of this.crashes) c.after_fault ??= this.faultBefore(c.at);
  }

  /** Ends everything this scenario started (workloads, servers, then its own cleanups). */
  async cleanup(): Promise<void> {
    await Promise.all(this.workloads.map(w => w.close().catch(() => {})));
    await Promise.all(this.servers.map(s => s.close().catch(() => s.destroy())));
    for (const fn of this.cleanups.reverse()) await Promise.resolve(fn()).catch(() => {});
  }

  /** Ends everything at once (after a timeout). */
  async abort(): Promise<void> {
    await Promise.all(this.servers.map(s => s.destroy().catch(() => {})));
    await Promise.all(this.workloads.map(w => w.close().catch(() => {})));
    for (const fn of this.cleanups.reverse()) await Promise.resolve(fn()).catch(() => {});
  }
}
