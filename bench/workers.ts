/**
 * Batch hashing (and the whole per-batch codec work) on the main thread vs on Piscina worker
 * threads, across payload sizes: the numbers behind INBOXD_HASH_WORKER_THRESHOLD_BYTES. The
 * measuring is the suite's `workers` scenario (bench/scenarios/workers.ts); this prints its rows
 * and writes bench/results/workers.json.
 *
 *   npm run bench:workers                (about 40 s; `-- --quick` for about 10 s)
 */
import { parseArgs } from 'node:util';
import { writeResults } from './lib/report.js';
import { BUDGET_MS, formatBytes, measureWorkers } from './scenarios/workers.js';

async function main() {
  const { values } = parseArgs({ options: { quick: { type: 'boolean', default: false } } });
  const report = await measureWorkers(values.quick ? BUDGET_MS.quick : BUDGET_MS.full, line => process.stderr.write(`  … ${line}\n`));
  console.table(
    report.rows.map(r => ({
      mode: r.mode,
      payload: formatBytes(r.payload_bytes),
      batch: formatBytes(r.batch_bytes),
      'main ms/batch': r.main.ms_per_batch,
      'worker ms/batch': r.worker.ms_per_batch,
      'main MB/s': r.main.mb_per_sec,
      'worker MB/s': r.worker.mb_per_sec,
      'worker/main': r.worker_over_main,
    })),
  );
  console.log(report.verdict.hash);
  console.log(report.verdict.codec);
  const out = writeResults('workers.json', { scenario: 'workers', when: new Date().toISOString(), mode: values.quick ? 'quick' : 'full', ...report });
  process.stderr.write(`wrote ${out}\n`);
}

main().catch(err => {
  console.error(err);
  process.exit(1);
});
