/**
 * The contract between inboxd's own SQL and pg-boss's tables: every statement of
 * server/queue/sql.ts, run against the schema the pg-boss installed here makes (and inboxd's
 * migrations on top), on real rows where that matters. After upgrading pg-boss, run this file
 * first: a statement that no longer fits pg-boss's tables fails here, named, rather than in a
 * user's call. A statement added to sql.ts without a case here fails the first test.
 */

import { randomBytes, randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import pg from 'pg';
import { PgBoss } from 'pg-boss';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MIGRATIONS } from '../server/queue/migrations/index.js';
import { migrate } from '../server/queue/migrations/migrate.js';
import { extraOf, QUEUE_DEFAULTS, toBossOptions } from '../server/queue/queue-config.js';
import * as sql from '../server/queue/sql.js';
import { createDatabase } from './support/harness.js';
import { clientTransactions } from './support/transactions.js';

const S = 'inboxd';
/** Exported functions of sql.ts that build no statement. */
const HELPERS = new Set(['fencePairs']);

let boss: PgBoss;
let db: pg.Client;
const run = (q: sql.Sql) => db.query(q.text, q.values);
const rows = async (q: sql.Sql) => (await run(q)).rows;

let n = 0;
const BOSS_OPTIONS = { ...toBossOptions(QUEUE_DEFAULTS), policy: 'standard' };

/** A queue made as CreateQueue makes one, with the default settings. */
async function queue(o: { owner?: string } = {}): Promise<string> {
  const name = `contract.q${++n}`;
  await run(sql.createQueue(S, name, BOSS_OPTIONS, extraOf(QUEUE_DEFAULTS), o.owner));
  return name;
}

/** Messages stored as a Send stores them (pg-boss's insert, inboxd's data). */
async function send(name: string, count = 1, data: Record<string, unknown> = {}, startAfter?: Date): Promise<string[]> {
  const ids = Array.from({ length: count }, () => randomUUID()).sort();
  await boss.insert(
    name,
    ids.map(id => ({ id, data: { p: '', n: 0, hash: '', at: Date.now(), ...data }, startAfter })),
    { returnId: true },
  );
  return ids;
}

/** Leases as a Lease does (inboxd_lease): ids and the 'id:retry_count' fences. */
async function lease(name: string, count = 1, seconds = 30): Promise<{ ids: string[]; pairs: string[] }> {
  const got = await rows(sql.lease(S, name, count, seconds, Number.MAX_SAFE_INTEGER));
  return { ids: got.map(j => j.id), pairs: sql.fencePairs(got.map(j => ({ id: j.id, retryCount: j.retry_count }))) };
}

/** One new message leased for its second attempt (the first nacked back at once). */
async function secondAttempt(name: string, seconds = 30): Promise<{ ids: string[]; pairs: string[] }> {
  const [id] = await send(name);
  const first = await leaseOnly(name, id!);
  await run(sql.requeue(S, name, first, 0, 'again'));
  const got = await leaseOnly(name, id!, seconds);
  expect(got).toEqual([`${id}:1`]);
  return { ids: [id!], pairs: got };
}

/** Leases until `id` comes (others of the queue are put back as they were: nacked at once). */
async function leaseOnly(name: string, id: string, seconds = 30): Promise<string[]> {
  for (;;) {
    const got = await rows(sql.lease(S, name, 100, seconds, Number.MAX_SAFE_INTEGER));
    if (got.length === 0) throw new Error(`${id} not leasable`);
    const mine = got.filter(j => j.id === id);
    if (mine.length > 0) return sql.fencePairs(mine.map(j => ({ id: j.id, retryCount: j.retry_count })));
  }
}

async function job(id: string): Promise<Record<string, any>> {
  return (await db.query(`SELECT * FROM ${S}.job WHERE id = $1`, [id])).rows[0];
}

async function principal(name = `p${++n}`): Promise<string> {
  await run(sql.insertPrincipal(S, { name, metadata: { team: 'contract' }, admin: false, maxStreams: 0, maxSendRate: 0, createdBy: 'test' }));
  return name;
}

const extra = { messageTtlSec: 60, dedupWindowSec: 30, contentDedup: true, maxDepth: 5, overflow: 'drop_oldest' as const, deleteOnAck: true };

/** One case per statement: runs it on a state made by pg-boss's API and the module's other statements. */
const cases: Record<string, () => Promise<void>> = {
  async insertMessages() {
    // The same messages through pg-boss's insert and through ours: the same rows, column for column.
    const q = await queue();
    const due = new Date(Date.now() + 60_000);
    const data = (n: number) => ({ p: Buffer.from(`m${n}`).toString('base64'), n: 2, hash: 'h', at: Date.now() });
    const ours = [randomUUID(), randomUUID()];
    const theirs = [randomUUID(), randomUUID()];
    expect(
      await rows(
        sql.insertMessages(S, q, [
          { id: ours[0]!, data: data(1), priority: 3 },
          { id: ours[1]!, data: data(2), priority: 0, deliverAt: due },
        ]),
      ),
    ).toEqual(
      expect.arrayContaining([
        { id: ours[0], leased: false },
        { id: ours[1], leased: false },
      ]),
    );
    await boss.insert(q, [
      { id: theirs[0]!, data: data(1), priority: 3 },
      { id: theirs[1]!, data: data(2), priority: 0, startAfter: due },
    ]);
    const columns = async (id: string) => {
      const { id: _id, created_on, start_after, keep_until, data: d, ...rest } = await job(id);
      return {
        ...rest,
        start_after_ms: Math.round((start_after.getTime() - created_on.getTime()) / 1000),
        keep_ms: keep_until.getTime() - start_after.getTime(),
        d: d.p,
      };
    };
    for (const i of [0, 1]) expect(await columns(ours[i]!)).toEqual(await columns(theirs[i]!));
    // An id already stored is skipped, not an error; a queue that does not exist is refused.
    expect(await rows(sql.insertMessages(S, q, [{ id: ours[0]!, data: data(3), priority: 0 }]))).toEqual([]);
    await expect(run(sql.insertMessages(S, 'contract.none', [{ id: randomUUID(), data: data(4), priority: 0 }]))).rejects.toMatchObject({ code: '23503' });

    // Stored leased (the hand-off): the same row as one stored, then leased by inboxd_lease; and
    // announced only when a row was stored waiting, not when all were handed off.
    const q2 = await queue();
    const [handed, waiting, alone] = [randomUUID(), randomUUID(), randomUUID()];
    const channel = (await rows(sql.notifyChannel(S)))[0].channel as string;
    const notes: string[] = [];
    const heard = (m: pg.Notification) => void notes.push(m.payload ?? '');
    db.on('notification', heard);
    await db.query(`LISTEN "${channel}"`);
    expect(await rows(sql.insertMessages(S, q2, [{ id: alone, data: data(5), priority: 0 }], { ids: new Set([alone]), seconds: 45 }))).toEqual([
      { id: alone, leased: true },
    ]);
    await db.query('SELECT 1');
    expect(notes).toEqual([]);
    expect(
      await rows(
        sql.insertMessages(
          S,
          q2,
          [
            { id: handed, data: data(6), priority: 0 },
            { id: waiting, data: data(7), priority: 0 },
          ],
          { ids: new Set([handed]), seconds: 45 },
        ),
      ),
    ).toEqual(
      expect.arrayContaining([
        { id: handed, leased: true },
        { id: waiting, leased: false },
      ]),
    );
    await db.query('SELECT 1');
    expect(notes).toEqual([q2]);
    expect(await rows(sql.lease(S, q2, 10, 45, Number.MAX_SAFE_INTEGER))).toEqual([expect.objectContaining({ id: waiting, retry_count: 0 })]);
    const leasedColumns = async (id: string) => {
      const { id: _id, created_on, start_after, started_on, heartbeat_on, keep_until, data: _d, ...rest } = await job(id);
      expect(started_on.getTime()).toBeGreaterThanOrEqual(created_on.getTime());
      expect(heartbeat_on.getTime()).toBeGreaterThanOrEqual(created_on.getTime());
      return { ...rest, keep_ms: keep_until.getTime() - start_after.getTime() };
    };
    expect(await leasedColumns(handed)).toEqual(await leasedColumns(waiting));
    expect(await job(handed)).toMatchObject({ state: 'active', expire_seconds: 45, retry_count: 0 });
    await db.query(`UNLISTEN "${channel}"`);
    db.off('notification', heard);
  },
  async lease() {
    const q = await queue();
    const [low] = await send(q, 1, { n: 1000 });
    const [high] = await send(q, 1, { n: 1000, pr: 5 });
    await db.query(`UPDATE ${S}.job SET priority = 5 WHERE id = $1`, [high]);
    const [gone] = await send(q, 1, { ex: Date.now() - 1000 });
    // Budget for one: the higher priority first; the other picked, left untouched, and said so.
    const one = await rows(sql.lease(S, q, 10, 120, 2000));
    expect(one).toEqual([{ id: high, retry_count: 0, data: expect.objectContaining({ n: 1000 }), more: true }]);
    expect(await job(high)).toMatchObject({ state: 'active', expire_seconds: 120, retry_count: 0 });
    expect(await job(low)).toMatchObject({ state: 'created', retry_count: 0, started_on: null });
    // Past its expires_at: never leased (the sweeper ends and counts it).
    const rest = await rows(sql.lease(S, q, 10, 60, Number.MAX_SAFE_INTEGER));
    expect(rest).toEqual([{ id: low, retry_count: 0, data: expect.anything(), more: false }]);
    expect(await job(gone)).toMatchObject({ state: 'created' });
    // A later attempt counts: retry_count + 1, as pg-boss's fetch does.
    await run(sql.requeue(S, q, sql.fencePairs([{ id: low, retryCount: 0 }]), 0, 'nacked'));
    expect(await rows(sql.lease(S, q, 10, 60, Number.MAX_SAFE_INTEGER))).toEqual([expect.objectContaining({ id: low, retry_count: 1 })]);
    expect(await rows(sql.lease(S, q, 10, 60, Number.MAX_SAFE_INTEGER))).toEqual([]);
  },
  async extendLeases() {
    const q = await queue();
    await send(q);
    const { ids, pairs } = await lease(q);
    const got = await rows(sql.extendLeases(S, q, pairs, 300));
    expect(got).toEqual([{ id: ids[0], retryCount: 0, expiresAt: expect.any(Date) }]);
    expect(got[0].expiresAt.getTime()).toBeGreaterThan(Date.now() + 250_000);
  },
  async deleteAcked() {
    const q = await queue();
    await send(q, 2);
    const { ids, pairs } = await lease(q, 2);
    expect(await rows(sql.deleteAcked(S, q, [pairs[0]!, `${ids[1]}:7`]))).toEqual([{ id: ids[0] }]);
    expect(await job(ids[0]!)).toBeUndefined();
    expect(await job(ids[1]!)).toMatchObject({ state: 'active' });
    // Acked at its first attempt: no record (no other attempt had a token).
    expect((await db.query(`SELECT * FROM ${S}.inboxd_acked WHERE id = $1`, [ids[0]])).rows).toEqual([]);
    // At a later attempt: its record, in the same statement, kept an hour (its lease, 30 s, is shorter).
    const again = await secondAttempt(q);
    expect(await rows(sql.deleteAcked(S, q, again.pairs))).toEqual([{ id: again.ids[0] }]);
    const [record] = (await db.query(`SELECT * FROM ${S}.inboxd_acked WHERE id = $1`, [again.ids[0]])).rows;
    expect(record).toMatchObject({ queue: q, retry_count: 1 });
    expect(record.keep_until.getTime() - Date.now()).toBeGreaterThan((sql.ACK_RECORD_MIN_SEC - 60) * 1000);
    // A lease longer than the hour keeps it as long as that lease.
    const long = await secondAttempt(q, 3 * 3600);
    await run(sql.deleteAcked(S, q, long.pairs));
    const [longer] = (await db.query(`SELECT keep_until FROM ${S}.inboxd_acked WHERE id = $1`, [long.ids[0]])).rows;
    expect(longer.keep_until.getTime() - Date.now()).toBeGreaterThan((3 * 3600 - 60) * 1000);
  },
  async ackRecords() {
    const q = await queue();
    const [waiting] = await send(q);
    const { ids, pairs } = await secondAttempt(q);
    const acked = ids[0];
    await run(sql.deleteAcked(S, q, pairs));
    expect(await rows(sql.ackRecords(S, q, [acked!, waiting!]))).toEqual([{ id: acked, retryCount: 1 }]);
    // Another queue's record of the same id is not this queue's.
    expect(await rows(sql.ackRecords(S, await queue(), [acked!]))).toEqual([]);
    // Past its window it counts for nothing, pruned or not.
    await db.query(`UPDATE ${S}.inboxd_acked SET keep_until = now() - interval '1 second' WHERE id = $1`, [acked]);
    expect(await rows(sql.ackRecords(S, q, [acked!]))).toEqual([]);
  },
  async dropAckRecords() {
    const q = await queue();
    const old = await secondAttempt(q);
    await run(sql.deleteAcked(S, q, old.pairs));
    const recent = await secondAttempt(q);
    await run(sql.deleteAcked(S, q, recent.pairs));
    await db.query(`UPDATE ${S}.inboxd_acked SET keep_until = now() - interval '1 second' WHERE id = $1`, [old.ids[0]]);
    expect((await run(sql.dropAckRecords(S, 1000))).rowCount).toBeGreaterThanOrEqual(1);
    expect((await db.query(`SELECT id FROM ${S}.inboxd_acked WHERE id = ANY($1::uuid[])`, [[old.ids[0], recent.ids[0]]])).rows).toEqual([
      { id: recent.ids[0] },
    ]);
  },
  async requeue() {
    const q = await queue();
    await send(q);
    const { ids, pairs } = await lease(q);
    expect(await rows(sql.requeue(S, q, pairs, 5000, 'nacked'))).toEqual([{ id: ids[0], dueInMs: expect.anything() }]);
    expect(await job(ids[0])).toMatchObject({ state: 'retry', output: { message: 'nacked' } });
    await send(q);
    const again = await lease(q);
    expect(await rows(sql.requeue(S, q, again.pairs, null, 'released'))).toHaveLength(1);
  },
  async createQueue() {
    const owner = await principal();
    const q = await queue({ owner });
    expect((await db.query(`SELECT name FROM ${S}.queue WHERE name = $1`, [q])).rows).toHaveLength(1);
    expect(await rows(sql.queueOwners(S, [q]))).toEqual([{ queue: q, principal: owner }]);
    await expect(run(sql.createQueue(S, q, BOSS_OPTIONS, extraOf(QUEUE_DEFAULTS)))).rejects.toMatchObject({ code: '23505' });
  },
  async upsertQueueExtra() {
    const q = await queue();
    await run(sql.upsertQueueExtra(S, q, extra));
    expect(await rows(sql.queueExtras(S, [q]))).toEqual([{ name: q, ...extra, expired: 0, dropped: 0 }]);
  },
  async queueExtras() {
    const q = await queue();
    expect(await rows(sql.queueExtras(S, [q, 'contract.none']))).toEqual([{ name: q, ...extraOf(QUEUE_DEFAULTS), expired: 0, dropped: 0 }]);
  },
  async deleteQueueExtra() {
    const owner = await principal();
    const q = await queue({ owner });
    await run(sql.claimDedupKeys(S, q, ['k'], [randomUUID()], 60));
    await run(sql.deleteQueueExtra(S, q));
    expect(await rows(sql.queueExtras(S, [q]))).toEqual([]);
    expect(await rows(sql.queueOwners(S, [q]))).toEqual([]);
    expect(await rows(sql.dedupHolders(S, q, ['k']))).toEqual([]);
  },
  async queuesDue() {
    const q = await queue();
    const later = await queue();
    await send(q);
    await send(later, 1, {}, new Date(Date.now() + 60_000));
    const all = new Map((await rows(sql.queuesDue(S, [q, later, 'contract.none'], false))).map(r => [r.name, Number(r.dueInMs)]));
    expect(all.get(q)).toBeLessThanOrEqual(0);
    expect(all.get(later)).toBeGreaterThan(50_000);
    expect(all.has('contract.none')).toBe(false);
    expect((await rows(sql.queuesDue(S, [q, later], true))).map(r => r.name)).toEqual([later]);
  },
  async expiredLeases() {
    const q = await queue();
    await send(q);
    const { ids, pairs } = await lease(q);
    await run(sql.extendLeases(S, q, pairs, -3600)); // a lease that ended an hour ago
    expect(await rows(sql.expiredLeases(S, 1000))).toContainEqual({ name: q, id: ids[0], retryCount: 0 });
  },
  async jobStates() {
    const q = await queue();
    const [waiting, leased] = await send(q, 2);
    await lease(q);
    const states = new Map((await rows(sql.jobStates(S, q, [waiting, leased]))).map(r => [r.id, r.state]));
    expect([...states.values()].sort()).toEqual(['active', 'created']);
  },
  async queueCounts() {
    const q = await queue();
    await send(q, 3);
    await lease(q);
    expect(await rows(sql.queueCounts(S, q))).toEqual([expect.objectContaining({ ready: '2', delayed: '0', leased: '1', dead_lettered: '0', acked: '0' })]);
  },
  async expireQueued() {
    const q = await queue();
    const [id] = await send(q, 1, { ex: Date.now() - 1000 });
    expect((await rows(sql.expireQueued(S, 1000)))[0].expired).toBeGreaterThanOrEqual(1);
    expect(await job(id)).toMatchObject({ state: 'cancelled', output: { expired: true } });
    expect((await rows(sql.queueExtras(S, [q])))[0].expired).toBe(1);
  },
  async dropExpiredDedupKeys() {
    const q = await queue();
    await run(sql.claimDedupKeys(S, q, ['old'], [randomUUID()], -1));
    await run(sql.dropExpiredDedupKeys(S, 1000));
    expect(await rows(sql.dedupHolders(S, q, ['old']))).toEqual([]);
  },
  async claimDedupKeys() {
    const q = await queue();
    expect((await rows(sql.claimDedupKeys(S, q, ['a', 'b'], [randomUUID(), randomUUID()], 60))).map(r => r.key).sort()).toEqual(['a', 'b']);
    expect(await rows(sql.claimDedupKeys(S, q, ['a'], [randomUUID()], 60))).toEqual([]);
  },
  async dedupHolders() {
    const q = await queue();
    const id = randomUUID();
    await run(sql.claimDedupKeys(S, q, ['k'], [id], 60));
    expect(await rows(sql.dedupHolders(S, q, ['k', 'other']))).toEqual([{ key: 'k', id }]);
  },
  async releaseDedupKeys() {
    const q = await queue();
    await run(sql.claimDedupKeys(S, q, ['k'], [randomUUID()], 60));
    await run(sql.releaseDedupKeys(S, q, ['k']));
    expect(await rows(sql.dedupHolders(S, q, ['k']))).toEqual([]);
  },
  async lockQueueDepth() {
    await db.query('BEGIN');
    try {
      await run(sql.lockQueueDepth(await queue()));
    } finally {
      await db.query('ROLLBACK');
    }
  },
  async queueDepth() {
    const q = await queue();
    await send(q, 2);
    expect(await rows(sql.queueDepth(S, q))).toEqual([{ depth: 2 }]);
  },
  async dropOldest() {
    const q = await queue();
    const [first] = await send(q, 1);
    await send(q, 1);
    expect(await rows(sql.dropOldest(S, q, 1))).toEqual([{ dropped: 1 }]);
    expect(await job(first)).toMatchObject({ state: 'cancelled', output: { dropped: 'drop_oldest' } });
  },
  async countDropped() {
    const q = await queue();
    await run(sql.countDropped(S, q, 2));
    await run(sql.countDropped(S, q, 3));
    expect((await rows(sql.queueExtras(S, [q])))[0].dropped).toBe(5);
  },
  async lastAttempt() {
    const q = await queue();
    await send(q);
    const { ids, pairs } = await lease(q);
    expect((await run(sql.lastAttempt(S, q, pairs))).rowCount).toBe(1);
    expect((await job(ids[0])).retry_limit).toBe(0);
  },
  async unroutableDeadLetters() {
    const q = await queue();
    const [id] = await send(q); // no source_name: nowhere to redrive it to
    expect(await rows(sql.unroutableDeadLetters(S, q, null, 10))).toEqual([{ id, source: null }]);
    expect(await rows(sql.unroutableDeadLetters(S, q, [randomUUID()], 10))).toEqual([]);
  },
  async waitingIds() {
    const q = await queue();
    const [id] = await send(q);
    expect(await rows(sql.waitingIds(S, q, [id, randomUUID()]))).toEqual([{ id }]);
  },
  async notifyChannel() {
    expect((await rows(sql.notifyChannel(S)))[0].channel).toMatch(/^pgboss_[0-9a-f]{24}$/);
  },
  async notify() {
    const channel = (await rows(sql.notifyChannel(S)))[0].channel as string;
    await run(sql.notify(channel, 'contract.q'));
    await run(sql.notify(channel, 'contract.q', 1500));
  },
  async liveCounts() {
    const q = await queue();
    await send(q, 2);
    await lease(q);
    await run(sql.countDropped(S, q, 1));
    const got = await rows(sql.liveCounts(S, [q, 'contract.none']));
    expect(got).toContainEqual(expect.objectContaining({ name: q, ready: '1', leased: '1', dropped: 1 }));
    expect(got).toContainEqual(expect.objectContaining({ name: 'contract.none', ready: null }));
  },
  async listTopics() {
    const q = await queue();
    await boss.subscribe('contract.topic', q);
    expect(await rows(sql.listTopics(S, 100))).toContainEqual({ topic: 'contract.topic', queues: [q] });
    expect(await rows(sql.listTopics(S, 100, 'contract.topic'))).not.toContainEqual(expect.objectContaining({ topic: 'contract.topic' }));
  },
  async topicQueues() {
    const q = await queue();
    await boss.subscribe('contract.topic2', q);
    expect(await rows(sql.topicQueues(S, 'contract.topic2'))).toEqual([{ name: q }]);
  },
  async browseMessages() {
    const q = await queue();
    const ids = await send(q, 3);
    const page = await rows(sql.browseMessages(S, q, { limit: 2, newestFirst: false }));
    expect(page).toHaveLength(2);
    const after = { createdUs: page[1].createdUs as string, id: page[1].id as string };
    const rest = await rows(sql.browseMessages(S, q, { limit: 2, newestFirst: false, after }));
    expect([...page, ...rest].map(r => r.id).sort()).toEqual(ids);
    expect(await rows(sql.browseMessages(S, q, { limit: 10, newestFirst: true, after }))).toHaveLength(1);
    const states: sql.BrowseState[] = ['queued', 'delayed', 'leased', 'acked', 'dead_lettered', 'expired', 'dropped'];
    for (const state of states) await run(sql.browseMessages(S, q, { state, limit: 10, newestFirst: true }));
    expect(await rows(sql.browseMessages(S, q, { state: 'queued', limit: 10, newestFirst: false }))).toHaveLength(3);
  },
  async browseMessage() {
    const q = await queue();
    const [id] = await send(q, 1, { rt: 'reply.x' });
    expect(await rows(sql.browseMessage(S, q, id))).toEqual([
      expect.objectContaining({ id, name: q, state: 'created', notDue: false, data: expect.objectContaining({ rt: 'reply.x' }) }),
    ]);
  },

  async lockMigrations() {
    await db.query('BEGIN');
    try {
      await run(sql.lockMigrations(S));
    } finally {
      await db.query('ROLLBACK');
    }
  },
  async ensureMigrationsTable() {
    await run(sql.ensureMigrationsTable(S)); // already there: nothing happens
  },
  async appliedMigrations() {
    expect((await rows(sql.appliedMigrations(S))).map(r => [r.version, r.name])).toEqual(MIGRATIONS.map(m => [m.version, m.name]));
  },
  async recordMigration() {
    await db.query('BEGIN');
    try {
      await run(sql.recordMigration(S, 1000, 'contract'));
      expect((await rows(sql.appliedMigrations(S))).at(-1)).toMatchObject({ version: 1000, name: 'contract' });
    } finally {
      await db.query('ROLLBACK');
    }
  },

  async serverSecret() {
    const first = (await rows(sql.serverSecret(S, 'contract', randomBytes(32))))[0].value as Buffer;
    const again = (await rows(sql.serverSecret(S, 'contract', randomBytes(32))))[0].value as Buffer;
    expect(again.equals(first)).toBe(true);
  },
  async insertPrincipal() {
    const name = `p${++n}`;
    const p = { name, metadata: { a: 'b' }, admin: false, maxStreams: 3, maxSendRate: 10, createdBy: 'test' };
    expect(await rows(sql.insertPrincipal(S, p))).toEqual([expect.objectContaining({ name, admin: false, maxStreams: 3, maxSendRate: 10, openStreams: 0 })]);
    expect(await rows(sql.insertPrincipal(S, p))).toEqual([]);
    expect(await rows(sql.insertPrincipal(S, p, true))).toEqual([expect.objectContaining({ name, admin: true })]);
  },
  async principals() {
    const name = await principal();
    expect(await rows(sql.principals(S, [name], 10))).toEqual([expect.objectContaining({ name, metadata: { team: 'contract' } })]);
    expect((await rows(sql.principals(S, null, 1000))).map(r => r.name)).toContain(name);
    expect(await rows(sql.principals(S, [name], 10, name))).toEqual([]);
  },
  async deletePrincipal() {
    const name = await principal();
    const q = await queue({ owner: name });
    expect(await rows(sql.deletePrincipal(S, name))).toEqual([{ name }]);
    expect(await rows(sql.queueOwners(S, [q]))).toEqual([]);
  },
  async insertApiKey() {
    const name = await principal();
    const key = { id: `k${++n}`, principal: name, hash: randomBytes(32), expiresAt: null, createdBy: 'test' };
    expect(await rows(sql.insertApiKey(S, key))).toEqual([expect.objectContaining({ id: key.id, principal: name, revokedAt: null })]);
  },
  async apiKeyForAuth() {
    const name = await principal();
    const key = { id: `k${++n}`, principal: name, hash: randomBytes(32), expiresAt: new Date(Date.now() + 60_000), createdBy: 'test' };
    await run(sql.insertApiKey(S, key));
    expect(await rows(sql.apiKeyForAuth(S, key.id))).toEqual([expect.objectContaining({ id: key.id, principal: name, hash: key.hash, admin: false })]);
  },
  async apiKeys() {
    const name = await principal();
    await run(sql.insertApiKey(S, { id: `k${++n}`, principal: name, hash: randomBytes(32), expiresAt: null, createdBy: 'test' }));
    expect((await rows(sql.apiKeys(S, name))).map(r => r.principal)).toEqual([name]);
    expect((await rows(sql.apiKeys(S, null))).length).toBeGreaterThanOrEqual(1);
  },
  async revokeApiKey() {
    const name = await principal();
    const id = `k${++n}`;
    await run(sql.insertApiKey(S, { id, principal: name, hash: randomBytes(32), expiresAt: null, createdBy: 'test' }));
    expect(await rows(sql.revokeApiKey(S, id))).toEqual([expect.objectContaining({ id, revokedAt: expect.any(Date) })]);
  },
  async principalForAuth() {
    const name = await principal();
    expect(await rows(sql.principalForAuth(S, name))).toEqual([{ name, admin: false, maxStreams: 0, maxSendRate: 0 }]);
  },
  async touchSeen() {
    const name = await principal();
    const id = `k${++n}`;
    await run(sql.insertApiKey(S, { id, principal: name, hash: randomBytes(32), expiresAt: null, createdBy: 'test' }));
    await run(sql.touchSeen(S, [name], [id]));
    expect((await rows(sql.principals(S, [name], 1)))[0].lastSeenAt).toBeInstanceOf(Date);
    expect((await rows(sql.apiKeys(S, name)))[0].lastUsedAt).toBeInstanceOf(Date);
  },
  async reportPresence() {
    const name = await principal();
    await run(sql.reportPresence(S, 'replica-a', [name], [2]));
    await run(sql.reportPresence(S, 'replica-b', [name], [3]));
    expect((await rows(sql.principals(S, [name], 1)))[0].openStreams).toBe(5);
  },
  async clearPresence() {
    const name = await principal();
    await run(sql.reportPresence(S, 'replica-c', [name], [2]));
    await run(sql.clearPresence(S, 'replica-c'));
    expect((await rows(sql.principals(S, [name], 1)))[0].openStreams).toBe(0);
  },
  async addGrants() {
    const name = await principal();
    expect((await rows(sql.addGrants(S, name, 'orders.*', ['send', 'consume'], 'test'))).map(r => r.verb).sort()).toEqual(['consume', 'send']);
    expect((await rows(sql.addGrants(S, name, 'orders.*', ['browse'], 'test'))).map(r => r.verb).sort()).toEqual(['browse', 'consume', 'send']);
  },
  async removeGrants() {
    const name = await principal();
    await run(sql.addGrants(S, name, 'orders.*', ['send', 'consume'], 'test'));
    expect((await rows(sql.removeGrants(S, name, 'orders.*', ['send']))).map(r => r.verb)).toEqual(['consume']);
    expect(await rows(sql.removeGrants(S, name, 'orders.*', null))).toEqual([]);
  },
  async grants() {
    const name = await principal();
    await run(sql.addGrants(S, name, 'orders.*', ['send', 'consume'], 'test'));
    expect(await rows(sql.grants(S, name))).toEqual([{ principal: name, pattern: 'orders.*', verbs: ['consume', 'send'] }]);
    expect((await rows(sql.grants(S, null))).length).toBeGreaterThanOrEqual(1);
  },
  async replyRequests() {
    const q = await queue();
    const [asking, plain] = await send(q, 2);
    await db.query(`UPDATE ${S}.job SET data = data || '{"rt": "reply.r", "snd": "alice"}' WHERE id = $1`, [asking]);
    const got = new Map((await rows(sql.replyRequests(S, q, [asking, plain]))).map(r => [r.id, r]));
    expect(got.get(asking)).toEqual({ id: asking, replyTo: 'reply.r', sender: 'alice' });
    expect(got.get(plain)).toEqual({ id: plain, replyTo: null, sender: '' });
  },
  async ownedReplyQueues() {
    const name = await principal();
    await run(sql.createQueue(S, `reply.${randomUUID()}`, BOSS_OPTIONS, extraOf(QUEUE_DEFAULTS), name));
    await queue({ owner: name });
    expect(await rows(sql.ownedReplyQueues(S, name))).toEqual([{ n: 1 }]);
  },
  async queueOwners() {
    const name = await principal();
    const q = await queue({ owner: name });
    expect(await rows(sql.queueOwners(S, [q, 'contract.none']))).toEqual([{ queue: q, principal: name }]);
  },
  async ownedQueues() {
    const name = await principal();
    const q = await queue({ owner: name });
    expect(await rows(sql.ownedQueues(S, name))).toEqual([{ queue: q }]);
  },
  async insertAudit() {
    const row = { principal: 'auditor', action: 'contract', method: '/inboxd.v1.Auth/AddGrant', verb: 'admin', target: 'x', detail: 'd', peer: '127.0.0.1' };
    await run(sql.insertAudit(S, [row, { ...row, target: 'y' }]));
    expect(await rows(sql.auditEvents(S, { limit: 10, actions: ['contract'], principal: 'auditor' }))).toHaveLength(2);
  },
  async auditEvents() {
    const row = { principal: 'reader', action: 'denied', method: 'm', verb: 'send', target: 't', detail: '', peer: '' };
    await run(sql.insertAudit(S, [row, row, row]));
    const page = await rows(sql.auditEvents(S, { limit: 2, actions: null, principal: 'reader' }));
    expect(page).toHaveLength(2);
    expect(await rows(sql.auditEvents(S, { limit: 10, beforeId: page[1].id, actions: ['denied'], principal: 'reader' }))).toHaveLength(1);
  },
  async pruneAudit() {
    await run(sql.insertAudit(S, [{ principal: 'pruned', action: 'old', method: '', verb: '', target: '', detail: '', peer: '' }]));
    await db.query(`UPDATE ${S}.inboxd_audit SET at = now() - interval '40 days' WHERE principal = 'pruned'`);
    await run(sql.pruneAudit(S, 30));
    expect(await rows(sql.auditEvents(S, { limit: 10, actions: null, principal: 'pruned' }))).toEqual([]);
  },
};

describe('sql.ts against the pg-boss installed here', () => {
  beforeAll(async () => {
    const url = await createDatabase();
    boss = new PgBoss({ connectionString: url, schema: S, supervise: false, schedule: false, useListenNotify: false, registerInstance: false });
    boss.on('error', () => {});
    await boss.start();
    db = new pg.Client({ connectionString: url });
    await db.connect();
    await migrate(clientTransactions(db), S);
  });

  afterAll(async () => {
    await db?.end();
    await boss?.stop({ graceful: false, close: true });
  });

  it('has a case for every statement sql.ts exports', () => {
    const builders = Object.entries(sql)
      .filter(([name, v]) => typeof v === 'function' && !HELPERS.has(name))
      .map(([name]) => name)
      .sort();
    expect(Object.keys(cases).sort()).toEqual(builders);
  });

  // Fails first after an upgrade to a pg-boss with another schema: move PGBOSS_SCHEMA_VERSION once the cases pass.
  it('was written for the pg-boss schema version installed here, and the database is at it', async () => {
    const installed = createRequire(import.meta.url)('pg-boss/package.json') as { pgboss: { schema: number } };
    expect(installed.pgboss.schema).toBe(sql.PGBOSS_SCHEMA_VERSION);
    expect(await boss.schemaVersion()).toBe(sql.PGBOSS_SCHEMA_VERSION);
  });

  for (const [name, fn] of Object.entries(cases)) it(name, fn);
});
