/**
 * The offered-load loop the latency_at_rate rows share (inboxd, NATS JetStream, RabbitMQ): a fixed
 * rate, not as fast as possible, sent in small bursts on a tick schedule, latency from the send
 * call to the consumer's callback, and the box's CPU over exactly the measuring window.
 */
import { type Ctx, PAYLOAD_BYTES } from './context.js';
import { cpuWindow } from './cpu.js';
import { percentiles, type Result, rate } from './report.js';

/** Messages per second, offered. */
export const RATE = 1000;
/** Sends go out in small bursts, RATE / (1000 / TICK_MS) each. */
export const TICK_MS = 5;
/** Sends (each awaited) and deliveries before the window opens: connections, plans, first wake-ups. */
const WARMUP = 50;

/** The measuring window's length: 20 s, 5 s with --quick, times the scale. */
export function atRateSeconds(ctx: Ctx): number {
  return (ctx.quick ? 5 : 20) * ctx.scale;
}

/**
 * Calls `send` on a tick schedule at `perSecond` until `total` have been called, catching up to
 * the schedule on each tick so timer lateness does not lower the offered rate. Resolves when every
 * send has settled; rejects with the first failure (no more sends are started after one).
 */
export async function offerLoad(total: number, perSecond: number, send: () => Promise<unknown>): Promise<void> {
  const perTick = (perSecond * TICK_MS) / 1000;
  const started = performance.now();
  let sent = 0;
  let failure: { err: unknown } | undefined;
  const sends: Promise<unknown>[] = [];
  await new Promise<void>(resolve => {
    const tick = () => {
      const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * perSecond) + perTick);
      while (sent < due && !failure) {
        sends.push(
          send().catch(err => {
            failure ??= { err };
          }),
        );
        sent++;
      }
      if (sent >= total || failure) return resolve();
      setTimeout(tick, TICK_MS);
    };
    tick();
  });
  await Promise.all(sends);
  if (failure) throw failure.err;
}

export interface AtRate {
  name: string;
  /** Sends one stamped message; settles when the server or broker has accepted it (durably, as each promises). */
  send(): Promise<unknown>;
  /** The consumer's callback pushes each message's latency here (ms); its length counts deliveries. */
  latencies: number[];
  /** CPU-second counters measured over the window beside the box's /proc/stat (e.g. server, postgres, bench). */
  cpu: Record<string, () => number>;
  /** Anything else for the result's extra. */
  extra?: Record<string, unknown>;
}

/**
 * Warms up (WARMUP sends awaited one by one, and their deliveries), then offers RATE msgs/s for
 * atRateSeconds(ctx) and waits for every delivery. The window (seconds, CPU) runs from the first
 * offered send to the last delivery; percentiles are over the offered messages only.
 */
export async function runAtRate(ctx: Ctx, run: AtRate): Promise<Result> {
  const seconds = atRateSeconds(ctx);
  const total = Math.round(RATE * seconds);
  const deadline = performance.now() + seconds * 1000 + 30_000;
  const waitFor = async (n: number, what: string) => {
    while (run.latencies.length < n) {
      if (performance.now() > deadline) throw new Error(`${run.name}: ${what}: ${run.latencies.length}/${n} delivered when the deadline passed`);
      await new Promise(r => setTimeout(r, 10));
    }
  };
  for (let i = 0; i < WARMUP; i++) await run.send();
  await waitFor(WARMUP, 'warm-up');
  run.latencies.length = 0;

  const progress = setInterval(() => ctx.progress(`${run.name}: ${run.latencies.length}/${total} delivered`), 1000);
  try {
    const window = cpuWindow(run.cpu);
    const started = performance.now();
    await offerLoad(total, RATE, run.send);
    await waitFor(total, 'offered load');
    const elapsed = (performance.now() - started) / 1000;
    const cpu = window();
    return {
      name: run.name,
      messages: total,
      seconds: elapsed,
      msgs_per_sec: rate(total, elapsed),
      ...percentiles(run.latencies),
      extra: { offered_msgs_per_sec: RATE, tick_ms: TICK_MS, payload_bytes: PAYLOAD_BYTES, ...cpu, ...run.extra },
    };
  } finally {
    clearInterval(progress);
  }
}
