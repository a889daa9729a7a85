/**
 * What the peer scenarios (peers-nats.ts, peers-rabbitmq.ts) share: the e2e_throughput shape
 * (PRODUCERS producers -> one durable queue/stream -> CONSUMERS consumers acking, 256-byte stamped
 * payloads, count(ctx, 100_000, 20_000) messages, seconds from the first publish to the last ack
 * confirmed, latency from publish to handler start) against another broker on this machine.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { type Ctx, count } from '../lib/context.js';
import { cpuSecondsOf, ownCpuSeconds } from '../lib/cpu.js';
import { percentiles, type Result, rate, repoRoot } from '../lib/report.js';
import { CONSUMERS, PRODUCERS } from './e2e-throughput.js';

export { CONSUMERS, PRODUCERS };

/** The same message count as e2e_throughput. */
export function peerCount(ctx: Ctx): number {
  return count(ctx, 100_000, 20_000);
}

/**
 * Publishes each producer keeps awaiting their broker ack at once (each producer is otherwise
 * sequential: this is what lets publishing pipeline). Tuned on this 2-core machine with quick runs
 * of 100, 250, 500, 1,000 and 4,000: 100 costs about a third of the throughput; from 250 up both
 * brokers are flat within the noise while latency grows with the window (NATS p50 ~75 ms at 500,
 * ~800 ms at 1,000), so 500.
 */
export const PUBLISH_WINDOW = 500;
/** Unacked messages each consumer holds, as e2e's maxOutstandingMessages. */
export const PREFETCH = 2000;
/** A broker that does not accept a connection in this long is reported as skipped. */
export const CONNECT_TIMEOUT_MS = 2000;

/** The whole run's bound: 30 s plus 1 ms a message (130 s for 100,000). */
export function deadlineMs(n: number): number {
  return 30_000 + n;
}

/** `p`, or a rejection naming `what` once `ms` have passed. `p` settling later is ignored. */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  p.catch(() => {});
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: timed out after ${(ms / 1000).toFixed(1)} s`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** Best-effort cleanup step: bounded, and its failure only logged (the run's own error matters more). */
export async function tidy(ctx: Ctx, what: string, step: () => Promise<unknown>): Promise<void> {
  try {
    await withTimeout(Promise.resolve().then(step), 5000, what);
  } catch (err) {
    ctx.progress(`cleanup ${what} failed: ${(err as Error).message}`);
  }
}

/**
 * Calls `send` `count` times with at most `window` unsettled at once; resolves when all have
 * settled, rejects with the first failure (after the rest settled).
 */
export async function windowed(count: number, window: number, send: () => Promise<unknown>): Promise<void> {
  let inFlight = 0;
  let failure: { err: unknown } | undefined;
  let wake: (() => void) | undefined;
  const settled = () => {
    inFlight--;
    const w = wake;
    wake = undefined;
    w?.();
  };
  for (let i = 0; i < count && !failure; i++) {
    while (inFlight >= window) await new Promise<void>(r => (wake = r));
    if (failure) break;
    inFlight++;
    send().then(settled, err => {
      failure ??= { err };
      settled();
    });
  }
  while (inFlight > 0) await new Promise<void>(r => (wake = r));
  if (failure) throw failure.err;
}

/**
 * Whether a broker answers at `url` within `ms`: connects, sends `hello` (if any) and waits for
 * its first bytes (NATS greets with INFO; AMQP answers the protocol header with connection.start).
 * The socket is always destroyed. Clients' own connect timeouts do not all cover a port that
 * accepts and then says nothing (the NATS client leaves that socket open, keeping the process up).
 */
export function probe(url: string, defaultPort: number, ms: number, hello?: Buffer): Promise<void> {
  const u = new URL(url);
  const port = Number(u.port || defaultPort);
  const host = u.hostname.replace(/^\[|\]$/g, '');
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port });
    const done = (err?: Error) => {
      clearTimeout(timer);
      s.destroy();
      if (err) reject(err);
      else resolve();
    };
    const timer = setTimeout(() => done(new Error(`no answer in ${ms / 1000} s`)), ms);
    s.once('connect', () => hello && s.write(hello));
    s.once('data', () => done());
    s.once('error', err => done(err));
    s.once('close', () => done(new Error('closed without a word')));
  });
}

export function skippedResult(name: string, reason: string, extra: Record<string, unknown>): Result {
  return { name, messages: 0, seconds: 0, msgs_per_sec: 0, skipped: reason, extra };
}

/** A client package's installed version, for the record. */
export function packageVersion(name: string): string {
  try {
    return JSON.parse(fs.readFileSync(path.join(repoRoot(), 'node_modules', name, 'package.json'), 'utf8')).version;
  } catch {
    return '?';
  }
}

/** CPU seconds of this process and of the broker's processes (by command name) over a run. */
export function cpuMeter(brokerComm: string) {
  const c0 = ownCpuSeconds();
  const b0 = cpuSecondsOf(brokerComm);
  return () => ({ client_cpu_s: +(ownCpuSeconds() - c0).toFixed(2), broker_cpu_s: +(cpuSecondsOf(brokerComm) - b0).toFixed(2) });
}

export function peerResult(
  name: string,
  n: number,
  seconds: number,
  publishSeconds: number,
  latencies: number[],
  printed: Record<string, unknown>,
  setup: Record<string, unknown>,
): Result {
  return {
    name,
    messages: n,
    seconds,
    msgs_per_sec: rate(n, seconds),
    ...percentiles(latencies),
    extra: {
      producers: PRODUCERS,
      consumers: CONSUMERS,
      publish_window: PUBLISH_WINDOW,
      prefetch: PREFETCH,
      publish_msgs_per_sec: rate(n, publishSeconds),
      ...printed,
      setup,
    },
  };
}

/** Logs `handled/n` each second until stopped. */
export function ticker(ctx: Ctx, name: string, handled: () => number, n: number): () => void {
  const t = setInterval(() => ctx.progress(`${name}: ${handled()}/${n} handled`), 1000);
  return () => clearInterval(t);
}
