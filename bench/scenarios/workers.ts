import { randomBytes } from 'node:crypto';
import { Piscina } from 'piscina';
import { SETTINGS } from '../../server/config.js';
import { workerFile } from '../../server/queue/hasher.js';
import hashBatch, { encodeBatch } from '../../workers/hash.js';
import type { Ctx } from '../lib/context.js';
import { type Result, rate } from '../lib/report.js';

/** Payload sizes measured, 64 B … 1 MiB (the server's default largest payload). */
export const SIZES = [64, 1024, 16 * 1024, 64 * 1024, 256 * 1024, 1024 * 1024];
/** Messages per batch. */
export const BATCH = 16;
/** Batches in flight at once, as under concurrent Sends. */
export const CONCURRENT = 4;
/** Piscina threads, as the server's Hasher pool. */
export const THREADS = 2;
/** Time per payload size, mode and thread choice. */
export const BUDGET_MS = { full: 1500, quick: 400 };

export type Mode = 'hash' | 'codec';

export interface SideFigures {
  messages: number;
  seconds: number;
  msgs_per_sec: number;
  mb_per_sec: number;
  ms_per_batch: number;
}

export interface WorkersRow {
  mode: Mode;
  payload_bytes: number;
  batch_bytes: number;
  main: SideFigures;
  worker: SideFigures;
  /** Worker throughput over main-thread throughput: > 1 means workers win. */
  worker_over_main: number;
}

export interface WorkersReport {
  batch: number;
  concurrent: number;
  threads: number;
  budget_ms: number;
  rows: WorkersRow[];
  /** Per mode: the smallest batch (bytes) from which workers win at that and every larger size, or null. */
  win_from_batch_bytes: Record<Mode, number | null>;
  /** The server's default INBOXD_HASH_WORKER_THRESHOLD_BYTES (server/config.ts). */
  default_threshold_bytes: number;
  verdict: Record<Mode, string>;
  /** Everything measured: messages handled by either side, and the time spent measuring. */
  total_messages: number;
  total_seconds: number;
}

export function formatBytes(n: number): string {
  if (n >= 2 ** 20 && n % 2 ** 20 === 0) return `${n / 2 ** 20} MiB`;
  if (n >= 1024 && n % 1024 === 0) return `${n / 1024} KiB`;
  return `${n} B`;
}

async function timeIt(run: () => Promise<unknown>, budgetMs: number, batchBytes: number): Promise<SideFigures> {
  let batches = 0;
  const start = performance.now();
  while (performance.now() - start < budgetMs) {
    await Promise.all(Array.from({ length: CONCURRENT }, run));
    batches += CONCURRENT;
  }
  const seconds = (performance.now() - start) / 1000;
  return {
    messages: batches * BATCH,
    seconds: +seconds.toFixed(3),
    msgs_per_sec: rate(batches * BATCH, seconds),
    mb_per_sec: +((batches * batchBytes) / 1e6 / seconds).toFixed(1),
    ms_per_batch: +((seconds * 1000) / batches).toFixed(4),
  };
}

/** Smallest batch size from which workers win at every larger measured size (a lone noisy win does not count). */
function winsFrom(rows: WorkersRow[]): number | null {
  let from: number | null = null;
  for (const r of [...rows].sort((a, b) => b.batch_bytes - a.batch_bytes)) {
    if (r.worker_over_main <= 1) break;
    from = r.batch_bytes;
  }
  return from;
}

function verdictOf(mode: Mode, rows: WorkersRow[], from: number | null, threshold: number): string {
  // The table has a row per batch size, never none.
  const largest = rows.at(-1)!;
  const best = Math.max(...rows.map(r => r.worker_over_main));
  const lost = from === null ? undefined : [...rows].reverse().find(r => r.batch_bytes < from);
  const won =
    from === null
      ? ''
      : `workers win from ${formatBytes(from)} batches (${formatBytes(from / BATCH)} payloads × ${BATCH}${lost ? `; they lose at ${formatBytes(lost.batch_bytes)}` : ''})`;
  if (mode === 'hash') {
    return hashVerdict(rows, from, threshold, won, best, largest);
  }
  // hash + base64: what else a worker could take on (pg-boss turns the rows into JSON on the main thread).
  return from === null
    ? `hash+base64: workers never win either (best ${best}× main): the stored form is built on the main thread`
    : `hash+base64: ${won}; the server builds the stored form on the main thread at every size`;
}

function hashVerdict(rows: WorkersRow[], from: number | null, threshold: number, won: string, best: number, largest: WorkersRow): string {
  const atOrAbove = rows.find(r => r.batch_bytes >= threshold);
  const atDefault = atOrAbove ? ` (${atOrAbove.worker_over_main}× main at ${formatBytes(atOrAbove.batch_bytes)})` : '';
  if (from === null) {
    return (
      `hashing (what the server offloads): workers never win up to ${formatBytes(largest.batch_bytes)} batches (best ${best}× main); ` +
      `the default threshold ${formatBytes(threshold)} is above the largest Send the default limits accept (4 MiB frames), so workers are off by default; ` +
      `raising INBOXD_MAX_MESSAGE_BYTES brings batches that large${atDefault} to workers, a throughput cost taken to keep the event loop free`
    );
  }
  const rel =
    from === threshold
      ? `equals the default threshold ${formatBytes(threshold)}`
      : from < threshold
        ? `is below the default threshold ${formatBytes(threshold)}${atDefault}: the default leaves batches from ${formatBytes(from)} on the main thread, where workers win by little`
        : `is above the default threshold ${formatBytes(threshold)}: batches from there up to ${formatBytes(from)} go to workers that lose on them`;
  return `hashing (what the server offloads): ${won}; that ${rel}`;
}

/**
 * Batches of `BATCH` payloads of each size, processed on the main thread vs on a Piscina pool of
 * `THREADS` threads with `CONCURRENT` batches in flight, for `budgetMs` per size, mode and side.
 * Modes: `hash`, what the server's Hasher hands a worker past INBOXD_HASH_WORKER_THRESHOLD_BYTES
 * (workers/hash.ts); `codec`, sha256 and base64 of each payload (encodeBatch), what else a worker
 * could take on.
 */
export async function measureWorkers(budgetMs: number, progress: (line: string) => void = () => {}): Promise<WorkersReport> {
  const hashPool = new Piscina({ filename: workerFile('hash'), minThreads: THREADS, maxThreads: THREADS });
  const codecPool = new Piscina({ filename: workerFile('hash'), name: 'encodeBatch', minThreads: THREADS, maxThreads: THREADS });
  const rows: WorkersRow[] = [];
  try {
    await Promise.all([hashPool.run([new Uint8Array(1)]), codecPool.run([new Uint8Array(1)])]);
    for (const mode of ['hash', 'codec'] as const) {
      for (const size of SIZES) {
        const payloads = Array.from({ length: BATCH }, () => new Uint8Array(randomBytes(size)));
        const batchBytes = size * BATCH;
        const onMain = mode === 'hash' ? async () => hashBatch(payloads) : async () => encodeBatch(payloads);
        const pool = mode === 'hash' ? hashPool : codecPool;
        const main = await timeIt(onMain, budgetMs, batchBytes);
        const worker = await timeIt(() => pool.run(payloads), budgetMs, batchBytes);
        const row = {
          mode,
          payload_bytes: size,
          batch_bytes: batchBytes,
          main,
          worker,
          worker_over_main: +(worker.msgs_per_sec / main.msgs_per_sec).toFixed(2),
        };
        progress(`workers ${mode} ${formatBytes(size)}: worker/main ${row.worker_over_main}×`);
        rows.push(row);
      }
    }
  } finally {
    await Promise.all([hashPool.destroy(), codecPool.destroy()]);
  }
  const threshold = Number(SETTINGS.find(s => s.key === 'hashWorkerThresholdBytes')!.def);
  const of = (mode: Mode) => rows.filter(r => r.mode === mode);
  const win = { hash: winsFrom(of('hash')), codec: winsFrom(of('codec')) };
  return {
    batch: BATCH,
    concurrent: CONCURRENT,
    threads: THREADS,
    budget_ms: budgetMs,
    rows,
    win_from_batch_bytes: win,
    default_threshold_bytes: threshold,
    verdict: { hash: verdictOf('hash', of('hash'), win.hash, threshold), codec: verdictOf('codec', of('codec'), win.codec, threshold) },
    total_messages: rows.reduce((s, r) => s + r.main.messages + r.worker.messages, 0),
    total_seconds: +rows.reduce((s, r) => s + r.main.seconds + r.worker.seconds, 0).toFixed(3),
  };
}

/**
 * The suite scenario: one row per payload size (messages/seconds/msgs_per_sec: messages hashed on
 * worker threads; ratio: worker over main-thread hashing; the note adds hash+encode's ratio), then
 * a `workers` row with the measured thresholds against INBOXD_HASH_WORKER_THRESHOLD_BYTES's
 * default (its figures: everything the scenario processed, either side, either mode).
 */
export async function workers(ctx: Ctx): Promise<Result[]> {
  const report = await measureWorkers(ctx.quick ? BUDGET_MS.quick : BUDGET_MS.full, ctx.progress);
  return toResults(report);
}

export function toResults(report: WorkersReport): Result[] {
  const perSize: Result[] = SIZES.map(size => {
    const hash = report.rows.find(r => r.mode === 'hash' && r.payload_bytes === size)!;
    const codec = report.rows.find(r => r.mode === 'codec' && r.payload_bytes === size)!;
    return {
      name: `workers_${formatBytes(size).replace(' ', '')}`,
      messages: hash.worker.messages,
      seconds: hash.worker.seconds,
      msgs_per_sec: hash.worker.msgs_per_sec,
      baseline: 'main thread',
      ratio: hash.worker_over_main,
      extra: {
        batch: formatBytes(hash.batch_bytes),
        main_msgs_per_sec: hash.main.msgs_per_sec,
        codec_worker_over_main: codec.worker_over_main,
        detail: { hash, codec },
      },
    };
  });
  const fmt = (b: number | null) => (b === null ? 'never' : formatBytes(b));
  const summary: Result = {
    name: 'workers',
    messages: report.total_messages,
    seconds: report.total_seconds,
    msgs_per_sec: rate(report.total_messages, report.total_seconds),
    extra: {
      hash_workers_win_from: fmt(report.win_from_batch_bytes.hash),
      codec_workers_win_from: fmt(report.win_from_batch_bytes.codec),
      default_threshold: formatBytes(report.default_threshold_bytes),
      threshold_check: report.verdict.hash,
      verdict: report.verdict,
      setup: { batch: report.batch, concurrent: report.concurrent, threads: report.threads, budget_ms: report.budget_ms },
    },
  };
  return [...perSize, summary];
}
