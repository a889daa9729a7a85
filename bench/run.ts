/**
 * The benchmark suite: `npm run bench` (full), `npm run bench -- --quick` (CI-sized),
 * `--only e2e_throughput,pgboss_baseline` (scenario names; `peers`, `baselines` and `latency` name
 * groups), `--scale 2`.
 * Starts its own Postgres (or uses DATABASE_URL), runs each scenario on a fresh database, prints a
 * table, and writes bench/results/latest.json plus a dated copy.
 */
import os from 'node:os';
import { parseArgs } from 'node:util';
import type { Ctx } from './lib/context.js';
import { startBenchPostgres } from './lib/postgres.js';
import { printTable, type Result, writeResults } from './lib/report.js';
import { e2eThroughput, e2eThroughputAuth, e2eThroughputTags } from './scenarios/e2e-throughput.js';
import { historyGrowth } from './scenarios/history-growth.js';
import { idleSubscriptions } from './scenarios/idle-subscriptions.js';
import { latencyAtRate } from './scenarios/latency-at-rate.js';
import { mixedPayloads } from './scenarios/mixed-payloads.js';
import { latencyAtRateNats, peerNatsJetstream } from './scenarios/peers-nats.js';
import { latencyAtRateRabbitmq, peerRabbitmq } from './scenarios/peers-rabbitmq.js';
import { pgbossBaseline, pgbossBaselinePlanfix } from './scenarios/pgboss-baseline.js';
import { workers } from './scenarios/workers.js';

type Scenario = (ctx: Ctx) => Promise<Result | Result[]>;

/** In run order; ratios name their baseline (computed once all have run). */
const SCENARIOS: Record<string, Scenario> = {
  pgboss_baseline: pgbossBaseline,
  pgboss_baseline_planfix: pgbossBaselinePlanfix,
  e2e_throughput: e2eThroughput,
  e2e_throughput_auth: e2eThroughputAuth,
  e2e_throughput_tags: e2eThroughputTags,
  peer_nats_jetstream: peerNatsJetstream,
  peer_rabbitmq: peerRabbitmq,
  latency_at_rate: latencyAtRate,
  latency_at_rate_nats: latencyAtRateNats,
  latency_at_rate_rabbitmq: latencyAtRateRabbitmq,
  idle_subscriptions: idleSubscriptions,
  history_growth: historyGrowth,
  workers,
  mixed_payloads: mixedPayloads,
};

/** Names --only accepts for several scenarios. */
const GROUPS: Record<string, string[]> = {
  peers: ['peer_nats_jetstream', 'peer_rabbitmq'],
  baselines: ['pgboss_baseline', 'pgboss_baseline_planfix'],
  latency: ['latency_at_rate', 'latency_at_rate_nats', 'latency_at_rate_rabbitmq'],
};

/**
 * Which result each is compared with (peers: their throughput over inboxd's, from the same run);
 * with several, the fastest of them that ran (e2e_throughput: the better pg-boss baseline).
 */
const BASELINE_OF: Record<string, string[]> = {
  pgboss_baseline_planfix: ['pgboss_baseline'],
  e2e_throughput: ['pgboss_baseline', 'pgboss_baseline_planfix'],
  e2e_throughput_auth: ['e2e_throughput'],
  e2e_throughput_tags: ['e2e_throughput'],
  peer_nats_jetstream: ['e2e_throughput'],
  peer_rabbitmq: ['e2e_throughput'],
  mixed_payloads_workers: ['mixed_payloads_main'],
  mixed_payloads_512k: ['mixed_payloads_main'],
};

/**
 * The figure a ratio compares, where it is not throughput (msgs_per_sec, higher is better):
 * the mixed_payloads rows compare small-message p99 (lower is better).
 */
const RATIO_OF: Record<string, { figure: 'p99_ms'; note: string }> = {
  mixed_payloads_workers: { figure: 'p99_ms', note: 'p99_vs_main' },
  mixed_payloads_512k: { figure: 'p99_ms', note: 'p99_vs_main' },
};

/** `r`'s throughput over the named result's, or undefined when that did not run (or was skipped). */
function ratioTo(results: Result[], r: Result, name: string): number | undefined {
  const base = results.find(b => b.name === name && !b.skipped);
  return base ? +(r.msgs_per_sec / base.msgs_per_sec).toFixed(3) : undefined;
}

/** `ratio` against `target` as printed: `1.23 (target ≥ 1.5 ✗)`, or `n/a` when the other row did not run. */
function against(ratio: number | undefined, target: number): string {
  return ratio === undefined ? `n/a (target ≥ ${target})` : `${ratio.toFixed(2)} (target ≥ ${target} ${ratio >= target ? '✓' : '✗'})`;
}

/** Ratios, once every scenario has run (some compare with rows that run after them). */
function compare(results: Result[]): void {
  for (const r of results) {
    if (r.skipped) continue;
    const bases = (BASELINE_OF[r.name] ?? []).map(n => results.find(b => b.name === n && !b.skipped)).filter(b => b !== undefined);
    const base = bases.sort((a, b) => b.msgs_per_sec - a.msgs_per_sec)[0];
    if (base && r.ratio === undefined) {
      const by = RATIO_OF[r.name];
      r.baseline = base.name;
      r.ratio = by ? +((r[by.figure] ?? NaN) / (base[by.figure] ?? NaN)).toFixed(3) : +(r.msgs_per_sec / base.msgs_per_sec).toFixed(3);
      if (by) r.extra = { ...r.extra, [by.note]: `${r.ratio.toFixed(2)} (${by.figure} over ${base.name}'s: lower is better)` };
    }
    if (r.name === 'e2e_throughput') {
      const vsDefault = ratioTo(results, r, 'pgboss_baseline');
      const vsNats = ratioTo(results, r, 'peer_nats_jetstream');
      r.extra = {
        ...r.extra,
        ...(vsDefault === undefined ? {} : { ratio_vs_pgboss_default: vsDefault }),
        ...(vsNats === undefined ? {} : { ratio_vs_nats: vsNats }),
        target_vs_faster_pgboss: against(r.ratio, 1.0),
        target_vs_pgboss_default: against(vsDefault, 1.5),
        target_vs_nats: against(vsNats, 0.6),
      };
    }
    if (r.name === 'e2e_throughput_auth') r.extra = { ...r.extra, target_vs_auth_off: against(r.ratio, 0.95) };
  }
}

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
      results.push(...(Array.isArray(out) ? out : [out]));
      process.stderr.write(`✔ ${name} (${((Date.now() - t) / 1000).toFixed(1)} s)\n`);
    }
  } finally {
    await pg.stop();
  }
  compare(results);
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
