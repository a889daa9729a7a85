/**
 * The lease's plan does not depend on table statistics. With none (a fresh table, or ANALYZE
 * while the queue was empty), Postgres plans pg-boss's fetch as a bitmap scan of the whole ready
 * backlog plus a sort of it, for every lease of 500 (78 ms at a 100k backlog against ~8 ms in
 * index order, and autoanalyze flips between the two mid-run). The plans are the ones Postgres
 * ran, read back through auto_explain, for inboxd_lease (what a Lease runs: sql.lease) and, as
 * the control that shows the conditions are the bad ones, for pg-boss's own fetch.
 */
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { PgBoss } from 'pg-boss';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { extraOf, QUEUE_DEFAULTS, toBossOptions } from '../server/queue/queue-config.js';
import * as sql from '../server/queue/sql.js';
import { migratedDatabase } from './support/harness.js';

const S = 'inboxd';
const BACKLOG = 20_000;

interface PlanNode {
  'Node Type': string;
  'Index Name'?: string;
  'Relation Name'?: string;
  'Parent Relationship'?: string;
  'Index Cond'?: string;
  Plans?: PlanNode[];
}

/** Every node under `node`, itself included. */
function nodes(node: PlanNode): PlanNode[] {
  return [node, ...(node.Plans ?? []).flatMap(nodes)];
}

/** The scan under the Limit that picks the next rows: what a lease reads the backlog with. */
function pickingScan(plan: PlanNode): PlanNode[] {
  const limit = nodes(plan).find(n => n['Node Type'] === 'Limit');
  if (!limit) throw new Error(`no Limit in ${JSON.stringify(plan)}`);
  return nodes(limit);
}

let db: pg.Client;
let boss: PgBoss;
const plans: { query: string; plan: PlanNode }[] = [];

beforeAll(async () => {
  const url = await migratedDatabase();
  db = new pg.Client({ connectionString: url });
  await db.connect();
  // Postgres reports each plan it runs, statements inside functions too, to this connection.
  await db.query(`LOAD 'auto_explain'`);
  await db.query('SET auto_explain.log_min_duration = 0');
  await db.query('SET auto_explain.log_nested_statements = on');
  await db.query(`SET auto_explain.log_format = 'json'`);
  await db.query('SET client_min_messages = log');
  db.on('notice', n => {
    const at = n.message?.indexOf('{') ?? -1;
    if (at < 0) return;
    const explained = JSON.parse(n.message!.slice(at)) as { 'Query Text': string; Plan: PlanNode };
    plans.push({ query: explained['Query Text'], plan: explained.Plan });
  });
  boss = new PgBoss({ connectionString: url, schema: S, supervise: false, schedule: false, migrate: false, max: 2 });
  boss.on('error', () => {});
  await boss.start();
});

afterAll(async () => {
  await boss?.stop({ graceful: false, close: true });
  await db?.end();
});

type Stats = 'none' | 'analyzed while empty' | "analyzed while another queue's backlog was leased";

/** A queue as CreateQueue makes one, its backlog inserted as Sends insert it, on a table whose statistics are `stats`. */
async function queueWithBacklog(stats: Stats): Promise<string> {
  const queue = async (name: string) => {
    await db.query(sql.createQueue(S, name, { ...toBossOptions(QUEUE_DEFAULTS), policy: 'standard' }, extraOf(QUEUE_DEFAULTS)).text);
    for (let i = 0; i < BACKLOG; i += 5000) {
      await boss.insert(
        name,
        Array.from({ length: 5000 }, () => ({ data: { p: '', n: 0, hash: '', at: Date.now() } })),
      );
    }
    return name;
  };
  const id = randomUUID().slice(0, 8);
  // No autovacuum statistics arrive mid-test: what the planner knows is what this test made.
  await db.query(`ALTER TABLE ${S}.job_common SET (autovacuum_enabled = false)`);
  await db.query(`TRUNCATE ${S}.job_common`);
  if (stats === 'analyzed while empty') await db.query(`ANALYZE ${S}.job_common`);
  if (stats === "analyzed while another queue's backlog was leased") {
    const other = await queue(`plan.other.${id}`);
    await db.query(`UPDATE ${S}.job SET state = 'active', started_on = now() WHERE name = $1`, [other]);
    await db.query(`ANALYZE ${S}.job_common`);
  }
  return queue(`plan.${id}`);
}

/** The plans Postgres ran while `fn` ran whose query text contains `marker`. */
async function plansOf(marker: string, fn: () => Promise<unknown>): Promise<PlanNode[]> {
  plans.length = 0;
  await fn();
  return plans.filter(p => p.query.includes(marker)).map(p => p.plan);
}

describe('the lease plan', () => {
  for (const stats of ['none', 'analyzed while empty', "analyzed while another queue's backlog was leased"] as const) {
    it(`reads a ${BACKLOG.toLocaleString('en')}-message backlog in index order and updates the rows picked by address, with statistics: ${stats}`, async () => {
      const q = await queueWithBacklog(stats);
      // pg-boss's fetch, as inboxd leased before: under these conditions it sorts the backlog.
      const control = await plansOf('FOR UPDATE OF j SKIP LOCKED', () =>
        boss.fetch(q, { batchSize: 500, db: { executeSql: (text: string, values?: unknown[]) => db.query(text, values) } }),
      );
      expect(control).toHaveLength(1);
      expect(pickingScan(control[0]!).map(n => n['Node Type'])).toContain('Sort');

      // Several rounds: PL/pgSQL moves to a generic plan after five; each must be the ordered scan.
      for (let round = 0; round < 8; round++) {
        const lease = sql.lease(S, q, 500, 30, Number.MAX_SAFE_INTEGER);
        const ran = await plansOf('', () => db.query(lease.text, lease.values));
        const pick = ran.filter(p => nodes(p).some(n => n['Node Type'] === 'LockRows'));
        expect(pick).toHaveLength(1);
        const scan = pickingScan(pick[0]!);
        expect(scan.map(n => n['Node Type'])).not.toContain('Sort');
        expect(scan.map(n => n['Node Type'])).not.toContain('Bitmap Heap Scan');
        expect(scan.find(n => n['Node Type'] === 'Index Scan')).toMatchObject({ 'Relation Name': 'job_common', 'Index Name': 'job_common_i11' });
        // The rows picked are updated through their addresses: a TID scan, nothing else read.
        const update = ran.filter(p => p['Node Type'] === 'ModifyTable');
        expect(update).toHaveLength(1);
        expect(
          nodes(update[0]!)
            .filter(n => n['Relation Name'] === 'job_common')
            .map(n => n['Node Type']),
        ).toEqual(['Tid Scan']);
      }
      const { rows } = await db.query(`SELECT count(*)::int AS n FROM ${S}.job WHERE name = $1 AND state = 'active'`, [q]);
      expect(rows[0].n).toBe(500 + 8 * 500);
    });
  }
});

describe('the settle plans', () => {
  it('nack, extend and an ack that deletes find their rows by primary key, from the ids in the fences, once the statistics describe the queue', async () => {
    const q = await queueWithBacklog('none');
    const lease = sql.lease(S, q, 500, 30, Number.MAX_SAFE_INTEGER);
    await db.query(lease.text, lease.values);
    await db.query(`ANALYZE ${S}.job_common`);
    const leased = await db.query(`SELECT id::text AS id, retry_count FROM ${S}.job WHERE name = $1 AND state = 'active' LIMIT 40`, [q]);
    const refs = leased.rows.map(r => ({ id: r.id as string, retryCount: r.retry_count as number }));
    const pairs = sql.fencePairs(refs.slice(0, 10));
    const statements = [
      sql.extendLeases(S, q, pairs, 60),
      sql.lastAttempt(S, q, pairs),
      sql.requeue(S, q, pairs, 0, 'nacked'),
      sql.deleteAcked(S, q, sql.fencePairs(refs.slice(10, 20))),
    ];
    for (const statement of statements) {
      const ran = await plansOf('', () => db.query(statement.text, statement.values));
      // The ModifyTable on the job table: the statement's top node, or, for the ack that deletes
      // and records the ack (a data-modifying CTE), inside the CTE.
      const modify = ran.flatMap(nodes).find(n => n['Node Type'] === 'ModifyTable' && n['Relation Name'] !== 'inboxd_acked');
      const scans = nodes(modify!).filter(n => n['Relation Name'] === 'job_common');
      expect(scans).toEqual([expect.objectContaining({ 'Node Type': 'Index Scan', 'Index Name': 'job_common_pkey' })]);
    }
  });
});
