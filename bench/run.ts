/**
 * The benchmark suite: `npm run bench` (full), `npm run bench -- --quick` (CI-sized),
 * `--only e2e_throughput,pgboss_baseline` (scenario names; `peers` names both peers), `--scale 2`.
 * Starts its own Postgres (or uses DATABASE_URL), runs each scenario on a fresh database, prints a
 * table, and writes bench/results/latest.json plus a dated copy.
 */
import os from 'node:os';
import { parseArgs } from 'node:util';
import type { Ctx } from './lib/context.js';
import { startBenchPostgres } from './lib/postgres.js';
import { printTable, type Result, writeResults } from './lib/report.js';
import { e2eThroughput, e2eThroughputAuth } from './scenarios/e2e-throughput.js';
import { historyGrowth } from './scenarios/history-growth.js';
import { idleSubscriptions } from './scenarios/idle-subscriptions.js';
import { latencyAtRate } from './scenarios/latency-at-rate.js';
import { peerNatsJetstream } from './scenarios/peers-nats.js';
import { peerRabbitmq } from './scenarios/peers-rabbitmq.js';
import { pgbossBaseline } from './scenarios/pgboss-baseline.js';
import { workers } from './scenarios/workers.js';

type Scenario = (ctx: Ctx) => Promise<Result | Result[]>;

/** In run order; ratios name their baseline, which runs first. */
const SCENARIOS: Record<string, Scenario> = {
  pgboss_baseline: pgbossBaseline,
  e2e_throughput: e2eThroughput,
  e2e_throughput_auth: e2eThroughputAuth,
  peer_nats_jetstream: peerNatsJetstream,
  peer_rabbitmq: peerRabbitmq,
  latency_at_rate: latencyAtRate,
  idle_subscriptions: idleSubscriptions,
  history_growth: historyGrowth,
  workers,
};

/** Names --only accepts for several scenarios. */
const GROUPS: Record<string, string[]> = { peers: ['peer_nats_jetstream', 'peer_rabbitmq'] };

/** Which result each is compared with (peers: their throughput over inboxd's, from the same run). */
const BASELINE_OF: Record<string, string> = {
  e2e_throughput: 'pgboss_baseline',
  e2e_throughput_auth: 'e2e_throughput',
  peer_nats_jetstream: 'e2e_throughput',
  peer_rabbitmq: 'e2e_throughput',
};

async function main() {
  const { values } = parseArgs({
    options: { quick: { type: 'boolean', default: false }, only: { type: 'string' }, scale: { type: 'string', default: '1' } },
  });
  const only = values.only ? values.only.split(',').flatMap(name => GROUPS[name] ?? [name]) : Object.keys(SCENARIOS);
  for (const name of only)
    if (!SCENARIOS[name]) throw new Error(`unknown scenario ${name}; known: ${[...Object.keys(SCENARIOS), ...Object.keys(GROUPS)].join(', ')}`);
  const scale = Number(values.scale);
  const pg = await startBenchPostgres();
  const ctx: Ctx = {
    pg,
    quick: values.quick ?? false,
    scale,
    progress: line => process.stderr.write(`  … ${line}\n`),
  };
  const results: Result[] = [];
  try {
    for (const name of Object.keys(SCENARIOS).filter(n => only.includes(n))) {
      process.stderr.write(`▶ ${name}\n`);
      const t = Date.now();
      const out = await SCENARIOS[name]!(ctx);
      for (const r of Array.isArray(out) ? out : [out]) {
        const base = results.find(b => b.name === BASELINE_OF[r.name]);
        if (base && !r.skipped && r.ratio === undefined) {
          r.baseline = base.name;
          r.ratio = +(r.msgs_per_sec / base.msgs_per_sec).toFixed(3);
        }
        results.push(r);
      }
      process.stderr.write(`✔ ${name} (${((Date.now() - t) / 1000).toFixed(1)} s)\n`);
    }
  } finally {
    await pg.stop();
  }
  printTable(results);
  const when = new Date().toISOString();
  const payload = {
    when,
    mode: ctx.quick ? 'quick' : 'full',
    scale,
    machine: {
      cpus: os.cpus().length,
      cpu_model: os.cpus()[0]?.model,
      memory_gb: Math.round(os.totalmem() / 2 ** 30),
      node: process.version,
      postgres: pg.describe,
    },
    results,
  };
  writeResults('latest.json', payload);
  writeResults(`${when.slice(0, 16).replace(/:/g, '-')}.json`, payload);
  process.stderr.write('wrote bench/results/latest.json\n');
}

main().catch(err => {
  console.error(err);
  process.exit(1);
});
