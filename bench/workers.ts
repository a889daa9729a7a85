/**
 * Batch hashing on the main thread vs on Piscina worker threads, across payload sizes: the numbers
 * behind INBOXD_HASH_WORKER_THRESHOLD_BYTES. Prints a table and writes bench/results/workers.json.
 *
 *   npm run bench:workers            (about 20 s)
 */
import { Piscina } from 'piscina';
import { performance } from 'node:perf_hooks';
import { randomBytes } from 'node:crypto';
import { writeResults } from './lib/report.js';
import hashBatch from '../workers/hash.js';
import { workerFile } from '../server/queue/hasher.js';

const SIZES = [64, 1024, 16 * 1024, 64 * 1024, 256 * 1024, 1024 * 1024];
const BATCH = 16; // messages per batch
const CONCURRENT = 4; // batches in flight at once, as under concurrent Sends
const BUDGET_MS = 1500; // per size and mode

interface Row {
  payload_bytes: number;
  batch_bytes: number;
  main_ms_per_batch: number;
  worker_ms_per_batch: number;
  main_mb_per_sec: number;
  worker_mb_per_sec: number;
  worker_over_main: number;
}

async function timeIt(run: () => Promise<unknown>): Promise<{ msPerBatch: number; batches: number }> {
  let batches = 0;
  const start = performance.now();
  while (performance.now() - start < BUDGET_MS) {
    await Promise.all(Array.from({ length: CONCURRENT }, run));
    batches += CONCURRENT;
  }
  return { msPerBatch: (performance.now() - start) / batches, batches };
}

async function main() {
  const pool = new Piscina({ filename: workerFile('hash'), maxThreads: 2, minThreads: 2 });
  await pool.run([new Uint8Array(1)]);
  const rows: Row[] = [];
  for (const size of SIZES) {
    const payloads = Array.from({ length: BATCH }, () => new Uint8Array(randomBytes(size)));
    const batchBytes = size * BATCH;
    const main = await timeIt(async () => hashBatch(payloads));
    const worker = await timeIt(() => pool.run(payloads));
    const mbps = (ms: number) => batchBytes / 1e6 / (ms / 1000);
    rows.push({
      payload_bytes: size,
      batch_bytes: batchBytes,
      main_ms_per_batch: +main.msPerBatch.toFixed(4),
      worker_ms_per_batch: +worker.msPerBatch.toFixed(4),
      main_mb_per_sec: +mbps(main.msPerBatch).toFixed(1),
      worker_mb_per_sec: +mbps(worker.msPerBatch).toFixed(1),
      worker_over_main: +(main.msPerBatch / worker.msPerBatch).toFixed(2),
    });
  }
  await pool.destroy();
  console.table(rows);
  const firstWin = rows.find(r => r.worker_over_main > 1);
  console.log(
    firstWin
      ? `workers win from batches of ${firstWin.batch_bytes} bytes (${firstWin.payload_bytes}-byte payloads x ${BATCH})`
      : 'workers never win here',
  );
  writeResults('workers.json', { scenario: 'workers', when: new Date().toISOString(), batch: BATCH, concurrent: CONCURRENT, rows });
}

void main();
