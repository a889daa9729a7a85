import { randomBytes, randomInt } from 'node:crypto';
import { createClient } from '@inboxd/sdk';
import { SETTINGS } from '../../server/config.js';
import { offerLoad } from '../lib/at-rate.js';
import { type Ctx, stampedPayload, stampOf } from '../lib/context.js';
import { benchPostgresCpuSeconds, cpuWindow, ownCpuSeconds } from '../lib/cpu.js';
import { percentiles, type Result, rate } from '../lib/report.js';
import { spawnInboxd } from '../lib/server-process.js';
import { formatBytes } from './workers.js';

/**
 * Small-message latency while big messages flow through the same server, once per
 * INBOXD_HASH_WORKER_THRESHOLD_BYTES: does hashing big Send batches on worker threads keep the
 * event loop free enough to help the small ones? Per variant, a fresh database and server; a
 * background producer offers BIG_MB_PER_SEC of 256 KiB–1 MiB messages to `big` (a subscriber acks
 * them) while SMALL_RATE 256-byte messages a second go to `small` through the shared offered-load
 * loop (bench/lib/at-rate.ts), latency from send() to the start of the small subscriber's handler.
 */

/** Small messages per second, offered. */
export const SMALL_RATE = 500;
/** Big payload bytes per second, offered (decimal MB), in messages of random size between BIG_MIN and BIG_MAX. */
export const BIG_MB_PER_SEC = 10;
export const BIG_MIN = 256 * 1024;
/** The server's default largest payload (server/config.ts), so every big message is accepted. */
export const BIG_MAX = Number(SETTINGS.find(s => s.key === 'maxMessageBytes')!.def);
/** Big payload bytes the big subscriber holds at once (with the publisher's maxPendingBytes, bounds memory). */
const BIG_OUTSTANDING_BYTES = 16 * 1024 * 1024;
/** Awaited small sends (and their deliveries) and big sends before the window opens. */
const WARMUP_SMALL = 50;
const WARMUP_BIG = 5;

const MAIN_THRESHOLD = Number(SETTINGS.find(s => s.key === 'hashWorkerThresholdBytes')!.def);

/** The variants, in order; the first (the default threshold: all hashing on the main thread) is the others' baseline. */
export const VARIANTS = [
  { name: 'mixed_payloads_main', threshold: MAIN_THRESHOLD },
  { name: 'mixed_payloads_workers', threshold: BIG_MIN },
  { name: 'mixed_payloads_512k', threshold: 512 * 1024 },
];

/** The measuring window: 10 s, 3 s with --quick, times the scale. */
function windowSeconds(ctx: Ctx): number {
  return (ctx.quick ? 3 : 10) * ctx.scale;
}

/** A big payload of random size, its send time (performance.now()) in the first 8 bytes. */
function bigPayload(noise: Buffer): Buffer {
  const size = randomInt(BIG_MIN, BIG_MAX + 1);
  const b = Buffer.allocUnsafe(size);
  noise.copy(b, 0, 0, size);
  b.writeDoubleLE(performance.now(), 0);
  return b;
}

async function runVariant(ctx: Ctx, variant: (typeof VARIANTS)[number], noise: Buffer): Promise<Result> {
  const seconds = windowSeconds(ctx);
  const smallTotal = Math.round(SMALL_RATE * seconds);
  const bigPerSec = (BIG_MB_PER_SEC * 1e6) / ((BIG_MIN + BIG_MAX) / 2);
  const bigTotal = Math.max(1, Math.round(bigPerSec * seconds));
  const db = await ctx.pg.createDatabase(variant.name);
  const server = await spawnInboxd(db, { INBOXD_HASH_WORKER_THRESHOLD_BYTES: String(variant.threshold) });
  try {
    // Two producers as two clients: the big sends' batching and backpressure do not hold up the small ones.
    const small = createClient({ address: server.address });
    const big = createClient({ address: server.address });
    try {
      await small.queues.create('small');
      await big.queues.create('big');
      const latencies: number[] = [];
      const bigLatencies: number[] = [];
      let bigBytes = 0;
      const smallSub = small.subscribe('small', m => void latencies.push(performance.now() - stampOf(m.payload)));
      const bigSub = big.subscribe(
        'big',
        m => {
          bigLatencies.push(performance.now() - stampOf(m.payload));
          bigBytes += m.payload.length;
        },
        { maxOutstandingBytes: BIG_OUTSTANDING_BYTES },
      );
      try {
        const deadline = performance.now() + seconds * 1000 + 60_000;
        const waitFor = async (have: () => number, n: number, what: string) => {
          while (have() < n) {
            if (performance.now() > deadline) throw new Error(`${variant.name}: ${what}: ${have()}/${n} delivered when the deadline passed`);
            await new Promise(r => setTimeout(r, 10));
          }
        };
        for (let i = 0; i < WARMUP_SMALL; i++) await small.send('small', stampedPayload());
        for (let i = 0; i < WARMUP_BIG; i++) await big.send('big', bigPayload(noise));
        await waitFor(() => latencies.length, WARMUP_SMALL, 'small warm-up');
        await waitFor(() => bigLatencies.length, WARMUP_BIG, 'big warm-up');
        latencies.length = 0;
        bigLatencies.length = 0;
        bigBytes = 0;

        // The first failure stops both loops (each stops starting sends once one of its own fails).
        let failed = false;
        const guard = (send: () => Promise<unknown>) => () => (failed ? Promise.reject(new Error('stopped: the other producer failed')) : send());
        const loop = (p: Promise<void>) =>
          p.catch(err => {
            failed = true;
            throw err;
          });
        const progress = setInterval(
          () => ctx.progress(`${variant.name}: ${latencies.length}/${smallTotal} small, ${bigLatencies.length}/${bigTotal} big delivered`),
          1000,
        );
        try {
          const window = cpuWindow({ server: () => server.cpuSeconds(), postgres: benchPostgresCpuSeconds, bench: ownCpuSeconds });
          const started = performance.now();
          const loops = await Promise.allSettled([
            loop(
              offerLoad(
                smallTotal,
                SMALL_RATE,
                guard(() => small.send('small', stampedPayload())),
              ),
            ),
            loop(
              offerLoad(
                bigTotal,
                bigPerSec,
                guard(() => big.send('big', bigPayload(noise))),
              ),
            ),
          ]);
          for (const l of loops) if (l.status === 'rejected') throw l.reason;
          await waitFor(() => latencies.length, smallTotal, 'small');
          const elapsed = (performance.now() - started) / 1000;
          const movedBytes = bigBytes;
          const cpu = window();
          const bigP = percentiles(bigLatencies);
          return {
            name: variant.name,
            messages: smallTotal,
            seconds: elapsed,
            msgs_per_sec: rate(smallTotal, elapsed),
            ...percentiles(latencies),
            extra: {
              threshold: formatBytes(variant.threshold),
              threshold_bytes: variant.threshold,
              big_mb_per_sec: +(movedBytes / 1e6 / elapsed).toFixed(1),
              big_offered_mb_per_sec: BIG_MB_PER_SEC,
              big_messages: bigLatencies.length,
              big_p50_ms: bigP.p50_ms,
              big_p99_ms: bigP.p99_ms,
              small_offered_msgs_per_sec: SMALL_RATE,
              ...cpu,
            },
          };
        } finally {
          clearInterval(progress);
          failed = true;
        }
      } finally {
        await Promise.allSettled([smallSub.close(), bigSub.close()]);
      }
    } finally {
      await Promise.allSettled([small.close(), big.close()]);
    }
  } finally {
    await server.stop();
  }
}

/** A p99 ratio under this (or over its inverse) counts as a difference; between them, noise of one run. */
const CLEAR = 0.9;

/**
 * One row per variant (small-message figures; the big flow and CPU in extra), then a
 * `mixed_payloads` row with the verdict. bench/run.ts fills each non-main row's ratio: its small
 * p99 over mixed_payloads_main's (lower is better).
 */
export async function mixedPayloads(ctx: Ctx): Promise<Result[]> {
  const noise = randomBytes(BIG_MAX);
  const rows: Result[] = [];
  for (const v of VARIANTS) {
    ctx.progress(`${v.name}: threshold ${formatBytes(v.threshold)}`);
    rows.push(await runVariant(ctx, v, noise));
  }
  const main = rows[0]!;
  const best = rows.reduce((a, b) => ((b.p99_ms ?? Infinity) < (a.p99_ms ?? Infinity) ? b : a));
  const ratio = (best.p99_ms ?? NaN) / (main.p99_ms ?? NaN);
  const favoured = best === main || ratio > CLEAR ? main : best;
  const thresholdOf = (r: Result) => String(r.extra?.threshold);
  const p99s = rows.map(r => `${thresholdOf(r)} ${r.p99_ms} ms`).join(', ');
  const verdict =
    favoured === main
      ? `keep ${thresholdOf(main)} (main thread): no threshold gave small messages a p99 under ${CLEAR}x main's (small p99: ${p99s})`
      : `${thresholdOf(favoured)} (${favoured.name}): small p99 ${ratio.toFixed(2)}x main's (small p99: ${p99s})`;
  rows.push({
    name: 'mixed_payloads',
    messages: rows.reduce((n, r) => n + r.messages, 0),
    seconds: +rows.reduce((s, r) => s + r.seconds, 0).toFixed(2),
    msgs_per_sec: rate(
      rows.reduce((n, r) => n + r.messages, 0),
      rows.reduce((s, r) => s + r.seconds, 0),
    ),
    extra: {
      favours: thresholdOf(favoured),
      verdict,
      cores_note:
        'on 2 cores the hashing threads compete with the event loop and Postgres for the same CPUs, so moving hashing off the main thread ' +
        'only helps if what it frees on the event loop outweighs the copies; with more cores than the event loop and Postgres need, ' +
        'the workers hash in parallel without taking its CPU and the workers rows could gain on main: re-run there before changing the default',
    },
  });
  return rows;
}
