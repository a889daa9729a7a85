/**
 * The fuzz suite: `npm run fuzz` (full: ≥ 50,000 fuzzed requests with auth off, 20,000 with auth
 * required, and the isolation scenarios at full size) or `npm run fuzz -- --quick` (CI: 1,600 +
 * 1,200 cases and smaller scenarios, ~60 s).
 * Options (after `--`): --only fuzz,fuzz_auth,poison_sender,stuck_streams,big_messages,stalled_streams
 * (pick phases), --seed N (base seed; default: time-based, printed), --cases N (fuzzed cases, auth
 * off), --auth-cases N (fuzzed cases, auth required), --rss-bound-mb N (stalled_streams bound,
 * default 600), --stall-bytes N (bytes each stalled stream sends of its declared message, default
 * 1000000: past INBOXD_MAX_RECEIVING_BYTES in all).
 *
 * Phase "fuzz": a real server (dist/server/main.js on the suite's own Postgres, see env.ts), auth
 * off, gets fast-check-generated requests for every RPC of inboxd.v1.Inbox, inboxd.v1.Queues and
 * inboxd.v1.Auth (arbitraries.ts: valid-looking and hostile, raw protobuf so strings can be invalid
 * UTF-8, bytes mutated), mixed with raw HTTP/2 and gRPC framing abuse (http2-abuse.ts), in batches.
 * Every call has a deadline. After each batch (checks.ts): the process is up, Health/Check answers,
 * and a canary send → lease → ack on its own connection succeeds.
 * Phase "fuzz_auth": the same on a second server with INBOXD_AUTH=required and a random
 * INBOXD_ADMIN_KEY; a non-admin principal with grants, and revoked, expired and orphaned keys, are
 * set up first (auth.ts). Each case carries a credential in its `authorization` metadata: none,
 * the admin key, the non-admin key, a dead key, garbage, several headers at once (auth.ts; values
 * grpc-js will not send go over raw HTTP/2, auth-transport.ts). Besides the checks above, the
 * auth oracle (auth-checks.ts): no valid credential → UNAUTHENTICATED on every RPC; the non-admin
 * key → never OK on admin-only Auth RPCs, nor outside its grants; nobody settles another's lease.
 * Then the isolation scenarios (scenarios/*.ts), each on a fresh server.
 *
 * Reading the output:
 *   fuzz runs           one line per run (auth off, auth required): cases, seconds, failures
 *   statuses            every status seen, with counts ("open": a Subscribe accepted and then
 *                       cancelled by the fuzzer; "http 415" etc.: raw HTTP/2 answers)
 *   per RPC             cases and statuses per RPC / abuse kind; FAIL counts INTERNAL, UNKNOWN,
 *                       hangs (no answer by the deadline), bad codes inside stream responses and
 *                       (auth required) failed auth checks
 *   per credential      (auth required) cases and statuses per credential kind, what the server
 *                       should take it for, and how many cases each auth check applied to
 *   batches             per batch: cases, failures, health and canary (ms or the error), RSS
 *   failures            each kind's first cases with a reproducer: fast-check seed and path
 *                       (fc.check(property, { seed, path }) replays it), the request as JSON and
 *                       its protobuf bytes in hex, the credential, and the case fast-check shrank it to
 *   scenarios           one row per isolation scenario with its figure and verdict
 * The run exits 1 on any INTERNAL/UNKNOWN, hang, failed auth check, server crash, failed health
 * check or canary, or failed scenario; 2 when the suite itself broke. JSON:
 * bench/results/fuzz.json (`fuzz`: auth off, `fuzz_auth`: auth required; quick: fuzz-quick.json;
 * with --only: fuzz-only.json). Progress goes to stderr.
 */
import os from 'node:os';
import { parseArgs } from 'node:util';
import type { InboxdServer } from '../chaos/server.js';
import { leftovers, withTimeout } from '../chaos/util.js';
import { writeResults } from '../lib/report.js';
import { type AuthSecrets, newAdminKey, setupAuth } from './auth.js';
import { type AfterBatch, afterBatch, checkFailures, rssMb } from './checks.js';
import { CTX_NAMES, refreshContext, runBatch, Stats, shrink } from './engine.js';
import { say, World } from './env.js';
import { closeStalled } from './http2-abuse.js';
import { RawClient } from './raw-client.js';
import { type BatchRow, type FuzzPhase, printReport } from './report.js';
import { SCENARIOS } from './scenarios/index.js';
import type { ScenarioOptions, ScenarioResult } from './scenarios/types.js';

const PHASES = ['fuzz', 'fuzz_auth', ...SCENARIOS.map(s => s.name)];

function args() {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      only: { type: 'string' },
      seed: { type: 'string' },
      cases: { type: 'string' },
      'auth-cases': { type: 'string' },
      'rss-bound-mb': { type: 'string', default: '600' },
      'stall-bytes': { type: 'string', default: '1000000' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(
      `npm run fuzz [-- --quick] [-- --only ${PHASES.join(',')}] [--seed N] [--cases N] [--auth-cases N] [--rss-bound-mb 600] [--stall-bytes 1000000]\n`,
    );
    process.exit(0);
  }
  const only = values.only
    ?.split(',')
    .map(s => s.trim())
    .filter(Boolean);
  const unknown = only?.filter(n => !PHASES.includes(n)) ?? [];
  if (unknown.length) {
    process.stderr.write(`unknown phase(s) ${unknown.join(', ')}; known: ${PHASES.join(', ')}\n`);
    process.exit(2);
  }
  return {
    quick: values.quick!,
    only,
    seed: values.seed !== undefined ? Number(values.seed) : Date.now() % 1_000_000_007,
    cases: values.cases !== undefined ? Number(values.cases) : undefined,
    authCases: values['auth-cases'] !== undefined ? Number(values['auth-cases']) : undefined,
    rssBoundMb: Number(values['rss-bound-mb']),
    stallBytes: Number(values['stall-bytes']),
  };
}

const LANES = 4;
const DEADLINE_MS = 10_000;

interface PhaseServer {
  server: InboxdServer;
  /** Auth required: the server's INBOXD_ADMIN_KEY. */
  adminKey?: string;
}

/** A fuzz run's server: auth off, or required with a random admin key (48 hex digits). */
async function phaseServer(world: World, name: string, auth: boolean): Promise<PhaseServer> {
  const adminKey = auth ? newAdminKey() : undefined;
  const server = await world.server(name, adminKey ? { INBOXD_AUTH: 'required', INBOXD_ADMIN_KEY: adminKey } : {});
  return { server, adminKey };
}

/**
 * One fuzz run on a server of its own (`started`: being started, by phaseServer): auth off (phase
 * "fuzz"), or required, with the principals and keys of auth.ts (phase "fuzz_auth").
 */
async function fuzzPhase(world: World, o: { name: string; started: Promise<PhaseServer>; quick: boolean; seed: number; cases: number }): Promise<FuzzPhase> {
  const { name, quick, seed } = o;
  const t0 = Date.now();
  const { server, adminKey } = await o.started;
  const auth = adminKey !== undefined;
  say(`${name}: server pid ${server.pid} on ${server.address}, auth ${auth ? 'required' : 'off'}; seed ${seed}`);
  let secrets: AuthSecrets | undefined = adminKey ? await setupAuth(server.address, adminKey) : undefined;
  const admin = world.client(server, adminKey ? { apiKey: adminKey } : {});
  const raws = Array.from({ length: LANES }, () => new RawClient(server.address));
  const stats = new Stats();
  const batches: BatchRow[] = [];
  // Quick: 4 batches (auth off) or 3 (auth required); full: ~2,000 cases a batch.
  const nBatches = quick ? (auth ? 3 : 4) : Math.max(5, Math.ceil(o.cases / 2000));
  const perLane = Math.ceil(o.cases / nBatches / LANES);
  const rssBefore = rssMb(server.pid);
  const contexts = new Map<number, Awaited<ReturnType<typeof refreshContext>>>();
  try {
    for (let b = 0; b < nBatches; b++) {
      const ctx = await refreshContext(admin, secrets ? { address: server.address, secrets } : undefined);
      if (ctx.auth) secrets = ctx.auth;
      contexts.set(b, ctx);
      const before = stats.cases;
      const failedBefore = stats.failureCount;
      const tb = Date.now();
      await runBatch({ raw: raws, ctx, seedBase: seed, batch: b, perLane, deadlineMs: DEADLINE_MS }, stats);
      const checks: AfterBatch = await afterBatch(server.address, server.running, server.pid, CTX_NAMES.canary, adminKey);
      const stalled = closeStalled();
      const row: BatchRow = {
        batch: b,
        cases: stats.cases - before,
        seconds: (Date.now() - tb) / 1000,
        failures: stats.failureCount - failedBefore,
        stalled_left_open: stalled,
        health_ms: checks.health.ok ? checks.health.ms : undefined,
        canary_ms: checks.canary.ok ? checks.canary.ms : undefined,
        rss_mb: checks.rss_mb,
        check_failures: checkFailures(checks),
      };
      batches.push(row);
      say(
        `${name} batch ${b + 1}/${nBatches}: ${row.cases} cases in ${row.seconds.toFixed(1)} s, ${row.failures} failures, health ${row.health_ms ?? 'FAIL'} ms, canary ${row.canary_ms ?? 'FAIL'} ms, RSS ${row.rss_mb} MB${row.check_failures.length ? `; CHECKS FAILED: ${row.check_failures.join('; ')}` : ''}`,
      );
      if (!server.running) await server.start().catch(err => say(`${name} server did not restart: ${(err as Error).message.split('\n')[0]}`));
    }
    // Shrink the first failure of each kind (the others keep their seed and path).
    const budget = quick ? 4000 : 20_000;
    const seen = new Set<string>();
    for (const f of stats.failures) {
      if (f.kind === 'hang' || /session has been destroyed/.test(f.details) || seen.has(`${f.kind} ${f.rpc}`) || seen.size >= (quick ? 3 : 8)) continue;
      seen.add(`${f.kind} ${f.rpc}`);
      say(`shrinking ${f.kind} on ${f.rpc} (seed ${f.seed}, path ${f.path})`);
      const fresh = new RawClient(server.address);
      f.shrunk = await withTimeout(shrink(f, contexts.get(f.batch)!, fresh, DEADLINE_MS, budget), budget + 2 * DEADLINE_MS, 'shrink').catch(err => ({
        error: (err as Error).message,
      }));
      fresh.close();
    }
    closeStalled();
  } finally {
    for (const r of raws) r.close();
    await admin.close({ timeout: 1000 }).catch(() => {});
  }
  const rssAfter = rssMb(server.pid);
  const crashes = world.crashes
    .filter(c => c.server === name)
    .map(c => `pid ${c.pid} exited code ${c.code} signal ${c.signal}: ${c.tail.slice(-5).join(' | ')}`);
  await world.closeServer(server);
  return {
    name,
    auth: auth ? 'required' : 'off',
    seed,
    cases: stats.cases,
    seconds: (Date.now() - t0) / 1000,
    statuses: stats.statuses,
    by_rpc: stats.byRpc,
    failure_count: stats.failureCount,
    fail_by_rpc: stats.failByRpc,
    failures: stats.failures,
    batches,
    rss_before_mb: rssBefore,
    rss_after_mb: rssAfter,
    crashes,
    ...(auth
      ? {
          by_credential: stats.byCredential,
          credential_classes: stats.credentialClasses,
          auth_checked: stats.authChecked,
          auth_failure_count: stats.authFailures,
        }
      : {}),
  };
}

async function main(): Promise<number> {
  const a = args();
  const started = new Date();
  process.on('exit', () => leftovers.sweep());
  for (const sig of ['SIGINT', 'SIGTERM'] as const)
    process.on(sig, () => {
      say(`${sig}: killing what the suite started`);
      leftovers.sweep();
      process.exit(130);
    });
  process.on('unhandledRejection', err => say(`(unhandled rejection in the suite: ${(err as Error)?.message ?? err})`));
  const watchdog = setTimeout(
    () => {
      say('the whole run exceeded its time limit: killing everything');
      leftovers.sweep();
      process.exit(3);
    },
    a.quick ? 180_000 : 3_600_000,
  );
  watchdog.unref();

  const world = new World();
  const wants = (n: string) => !a.only || a.only.includes(n);
  const casesWanted = a.cases ?? (a.quick ? 1600 : 52_000);
  const authCasesWanted = a.authCases ?? (a.quick ? 1200 : 20_000);
  const opts: ScenarioOptions = { quick: a.quick, rssBoundMb: a.rssBoundMb, stallBytes: a.stallBytes };
  let fuzz: FuzzPhase | undefined;
  let fuzzAuth: FuzzPhase | undefined;
  const scenarios: ScenarioResult[] = [];
  try {
    // The auth-required server starts alongside the first run's (a server start is mostly waiting).
    const authStarted = wants('fuzz_auth') ? phaseServer(world, 'fuzz_auth', true) : undefined;
    authStarted?.catch(() => {});
    if (wants('fuzz'))
      fuzz = await fuzzPhase(world, { name: 'fuzz', started: phaseServer(world, 'fuzz', false), quick: a.quick, seed: a.seed, cases: casesWanted });
    if (authStarted) fuzzAuth = await fuzzPhase(world, { name: 'fuzz_auth', started: authStarted, quick: a.quick, seed: a.seed, cases: authCasesWanted });
    for (const s of SCENARIOS) {
      if (!wants(s.name)) continue;
      say(`${s.name}: ${s.about}${a.quick && s.quickNote ? ` (quick: ${s.quickNote})` : ''}`);
      const t0 = Date.now();
      const crashesBefore = world.crashes.length;
      const size = a.quick && s.quickNote ? `quick: ${s.quickNote}` : 'full size';
      try {
        const out = await withTimeout(s.run(world, opts), a.quick ? 60_000 : 300_000, s.name);
        const crashes = world.crashes.slice(crashesBefore);
        if (crashes.length) out.failures.push(`server crashed ${crashes.length}×`);
        scenarios.push({ name: s.name, about: s.about, size, seconds: (Date.now() - t0) / 1000, ...out });
      } catch (err) {
        scenarios.push({
          name: s.name,
          about: s.about,
          size,
          seconds: (Date.now() - t0) / 1000,
          figure: '-',
          metrics: {},
          failures: ['error'],
          notes: [],
          error: (err as Error).stack ?? String(err),
        });
      }
      // Pushed just above, whichever way the scenario ended.
      const r = scenarios.at(-1)!;
      say(
        `${s.name}: ${r.figure} → ${r.failures.length ? `FAIL (${r.failures.join('; ')})` : 'ok'} in ${r.seconds.toFixed(1)} s${r.error ? `\n${r.error}` : ''}`,
      );
    }
  } finally {
    closeStalled();
    await world.destroy();
    leftovers.sweep();
  }

  const verdicts = printReport({ quick: a.quick, only: a.only, fuzz, fuzzAuth, scenarios, rssBoundMb: a.rssBoundMb });
  const file = writeResults(a.only ? 'fuzz-only.json' : a.quick ? 'fuzz-quick.json' : 'fuzz.json', {
    suite: 'fuzz',
    mode: a.quick ? 'quick' : 'full',
    only: a.only,
    started_at: started.toISOString(),
    seconds: (Date.now() - started.getTime()) / 1000,
    machine: { cpus: os.cpus().length, node: process.version },
    params: {
      seed: a.seed,
      cases: casesWanted,
      auth_cases: authCasesWanted,
      lanes: LANES,
      deadline_ms: DEADLINE_MS,
      rss_bound_mb: a.rssBoundMb,
      stall_bytes: a.stallBytes,
    },
    failed: verdicts,
    fuzz,
    fuzz_auth: fuzzAuth,
    scenarios,
  });
  process.stdout.write(`\n${verdicts.length ? `FAILED: ${verdicts.join('; ')}` : 'all checks passed'}; results in ${file}\n`);
  return verdicts.length ? 1 : 0;
}

main().then(
  code => process.exit(code),
  err => {
    say(`the suite failed: ${(err as Error)?.stack ?? err}`);
    leftovers.sweep();
    process.exit(2);
  },
);
