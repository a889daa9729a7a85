/**
 * Every SQL statement of inboxd's own, in one place. Everything else goes through pg-boss's public
 * API. These read and write pg-boss 12's job table (pinned exactly in package.json; every statement
 * is run against pg-boss's schema by test/sql-contract.test.ts) for what its API cannot express:
 *
 * - the lease, as one statement (migrations/003-lease.ts: its length chosen per lease, sized to a
 *   response's byte budget, expired messages left out, a plan that does not depend on statistics),
 *   kept as started_on + expire_seconds so pg-boss's own supervisor expires it at the same moment;
 * - a nack with a delay of the caller's choosing (pg-boss's fail() applies the queue's retry delay);
 * - reading which leases expired, so the sweeper can fail them promptly through pg-boss;
 * - live counts for queue stats, and the state of unsettled lease tokens;
 * - a queue create that fails when the queue exists (pg-boss's succeeds, so racing creates both won).
 *
 * Attempt fences match pg-boss's own: (id, retry_count) pairs as 'id:retry_count' text, with
 * state = 'active'.
 */
import type { ExtraQueueConfig } from './queue-config.js';

/**
 * The pg-boss schema version (its version table) these statements were written and tested for:
 * pg-boss 12.38.0's. The server refuses to start on a database at another. Upgrading pg-boss: run
 * test/sql-contract.test.ts against the new one, fix what fails, then move this number.
 */
export const PGBOSS_SCHEMA_VERSION = 46;

export interface Sql {
  text: string;
  values: unknown[];
}

// The ids too, taken from the pairs, so that the rows are found by primary key rather than by
// reading every leased row of the queue to compare its pair.
const FENCE = `state = 'active' AND id = ANY (ARRAY(SELECT split_part(p, ':', 1)::uuid FROM unnest($2::text[]) AS p))
      AND (id::text || ':' || retry_count::text) = ANY($2::text[])`;

export function fencePairs(refs: { id: string; retryCount: number }[]): string[] {
  return refs.map(r => `${r.id}:${r.retryCount}`);
}

/** A message to store: its id, stored form, priority, and when it is due (undefined: now). */
export interface NewMessage {
  id: string;
  data: object;
  priority: number;
  deliverAt?: Date;
}

/**
 * Stores messages in a queue (migrations/006-insert-leased.ts), in id order: concurrent inserts
 * that share ids take their index locks in one order and cannot deadlock. Those named in
 * `lease.ids` are stored leased for `lease.seconds` (a first attempt, for subscribers waiting on
 * this replica). Returns the ids stored (an id already there is skipped) and whether each was
 * stored leased.
 */
export function insertMessages(schema: string, queue: string, messages: NewMessage[], lease?: { ids: ReadonlySet<string>; seconds: number }): Sql {
  const sorted = [...messages].sort((x, y) => (x.id < y.id ? -1 : x.id > y.id ? 1 : 0));
  return {
    text: `SELECT id::text AS id, leased FROM ${schema}.inboxd_insert($1, $2::uuid[], $3::text::jsonb, $4::int[], $5::timestamptz[], $6::boolean[], $7::int)`,
    values: [
      queue,
      sorted.map(m => m.id),
      JSON.stringify(sorted.map(m => m.data)),
      sorted.map(m => m.priority),
      sorted.map(m => m.deliverAt ?? null),
      sorted.map(m => lease?.ids.has(m.id) ?? false),
      lease?.seconds ?? 0,
    ],
  };
}

/**
 * Leases up to `max` waiting messages of `queue` for `seconds`, as many as fit in `budgetBytes` of
 * response (at least one): migrations/003-lease.ts. Each row: id, retry_count, data, and `more`
 * (some were picked but left for the budget).
 */
export function lease(schema: string, queue: string, max: number, seconds: number, budgetBytes: number): Sql {
  return {
    text: `SELECT id, retry_count, data, more FROM ${schema}.inboxd_lease($1, $2, $3, $4)`,
    values: [queue, max, seconds, budgetBytes],
  };
}

/** Extends fenced leases to now + seconds. Returns the leases it moved, with their new end. */
export function extendLeases(schema: string, queue: string, pairs: string[], seconds: number): Sql {
  return {
    text: `UPDATE ${schema}.job
      SET expire_seconds = CEIL(EXTRACT(EPOCH FROM (${schema}.job_now() - started_on)))::int + $3
      WHERE name = $1 AND ${FENCE}
      RETURNING id::text AS id, retry_count AS "retryCount",
        started_on + expire_seconds * interval '1 second' AS "expiresAt"`,
    values: [queue, pairs, seconds],
  };
}

/**
 * Acks fenced leases of a queue that keeps no acked history (acked_retention 0): deletes them.
 * Returns the ids it deleted.
 */
export function deleteAcked(schema: string, queue: string, pairs: string[]): Sql {
  return {
    // The ack's record (migrations/007-ack-records.ts) in the same statement as the DELETE: both
    // or neither. Only for an attempt after the first: a message acked at its first delivery had
    // no other, so no token of it can be stale. Kept an hour after the ack, or the acked attempt's
    // lease if longer.
    text: `WITH gone AS (
        DELETE FROM ${schema}.job WHERE name = $1 AND ${FENCE} RETURNING id, retry_count, expire_seconds
      ), kept AS (
        INSERT INTO ${schema}.inboxd_acked (id, queue, retry_count, keep_until)
        SELECT id, $1, retry_count, now() + GREATEST($3::int, expire_seconds) * interval '1 second' FROM gone WHERE retry_count > 0
        ON CONFLICT (id, queue) DO UPDATE SET retry_count = excluded.retry_count, keep_until = excluded.keep_until
      )
      SELECT id::text AS id FROM gone`,
    values: [queue, pairs, ACK_RECORD_MIN_SEC],
  };
}

/** How long at least an ack that deleted its message is remembered (inboxd_acked): one hour. */
export const ACK_RECORD_MIN_SEC = 3600;

/**
 * Of the messages `ids` names, those an ack deleted within their record's window, with the
 * attempt (retry_count) acked: a token of that attempt repeats the ack, any other is stale.
 */
export function ackRecords(schema: string, queue: string, ids: string[]): Sql {
  return {
    text: `SELECT id::text AS id, retry_count AS "retryCount" FROM ${schema}.inboxd_acked
      WHERE id = ANY($2::uuid[]) AND queue = $1 AND keep_until > now()`,
    values: [queue, ids],
  };
}

/** Forgets up to `limit` ack records whose window passed. */
export function dropAckRecords(schema: string, limit: number): Sql {
  return {
    text: `DELETE FROM ${schema}.inboxd_acked WHERE (id, queue) IN (
        SELECT id, queue FROM ${schema}.inboxd_acked WHERE keep_until <= now() LIMIT $1)`,
    values: [limit],
  };
}

/**
 * Returns fenced leases to the queue for another attempt after `delayMs`, when attempts remain.
 * `delayMs` null: after the job's own retry delay and backoff, computed as pg-boss's fail() does.
 * Jobs on their last attempt are left for pg-boss's fail(), which dead-letters them.
 */
export function requeue(schema: string, queue: string, pairs: string[], delayMs: number | null, reason: string): Sql {
  return {
    text: `UPDATE ${schema}.job
      SET state = 'retry',
        start_after = CASE
          WHEN $3::bigint IS NOT NULL THEN ${schema}.job_now() + $3::bigint * interval '1 millisecond'
          WHEN NOT retry_backoff THEN ${schema}.job_now() + retry_delay * interval '1s'
          ELSE ${schema}.job_now() + LEAST(retry_delay_max, GREATEST(retry_delay, 1) * (
            2 ^ LEAST(16, retry_count + 1) / 2 + 2 ^ LEAST(16, retry_count + 1) / 2 * random())) * interval '1s'
        END,
        -- Marks which attempt this nack returned, so that a repeat of it is known for success.
        output = jsonb_build_object('message', $4::text, 'nacked_at_retry', retry_count)
      WHERE name = $1 AND ${FENCE} AND retry_count < retry_limit
      RETURNING id::text AS id, EXTRACT(EPOCH FROM (start_after - ${schema}.job_now())) * 1000 AS "dueInMs"`,
    values: [queue, pairs, delayMs, reason],
  };
}

/**
 * Creates a queue through pg-boss's create_queue(), as boss.createQueue() does, but fails with
 * unique_violation (23505) unless this statement inserted it: create_queue() does nothing for a
 * name that exists, so two creates racing would both succeed. The row's xmin is the inserting
 * transaction. A DO block takes no parameters: the name is a validated queue name and `options`
 * our own JSON, and both are quoted.
 */
export function createQueue(schema: string, name: string, options: object, extra: ExtraQueueConfig, owner = ''): Sql {
  const lit = (s: string) => `'${s.replace(/'/g, "''")}'`;
  return {
    text: `DO $inboxd$
      BEGIN
        PERFORM ${schema}.create_queue(${lit(name)}, ${lit(JSON.stringify(options))}::jsonb);
        IF NOT EXISTS (SELECT 1 FROM ${schema}.queue WHERE name = ${lit(name)} AND xmin = pg_current_xact_id()::xid) THEN
          RAISE EXCEPTION 'queue % already exists', ${lit(name)} USING ERRCODE = 'unique_violation';
        END IF;
        ${upsertExtraText(schema, lit(name), extra, true)};
        ${owner ? `INSERT INTO ${schema}.inboxd_queue_owner (queue, principal) VALUES (${lit(name)}, ${lit(owner)}) ON CONFLICT (queue) DO UPDATE SET principal = EXCLUDED.principal;` : `DELETE FROM ${schema}.inboxd_queue_owner WHERE queue = ${lit(name)};`}
      END $inboxd$`,
    values: [],
  };
}

function upsertExtraText(schema: string, nameLit: string, e: ExtraQueueConfig, resetCounters: boolean): string {
  const o = e.overflow.replace(/[^a-z_]/g, '');
  const values = `${e.messageTtlSec | 0}, ${e.dedupWindowSec | 0}, ${e.contentDedup ? 'true' : 'false'}, ${Math.trunc(e.maxDepth)}, '${o}', ${e.deleteOnAck ? 'true' : 'false'}`;
  return `INSERT INTO ${schema}.inboxd_queue (name, message_ttl_sec, dedup_window_sec, content_dedup, max_depth, overflow, delete_on_ack)
      VALUES (${nameLit}, ${values})
      ON CONFLICT (name) DO UPDATE SET message_ttl_sec = EXCLUDED.message_ttl_sec, dedup_window_sec = EXCLUDED.dedup_window_sec,
        content_dedup = EXCLUDED.content_dedup, max_depth = EXCLUDED.max_depth, overflow = EXCLUDED.overflow, delete_on_ack = EXCLUDED.delete_on_ack
        ${resetCounters ? ', expired = 0, dropped = 0' : ''}`;
}

/** Sets a queue's own settings (UpdateQueue), keeping its counters. */
export function upsertQueueExtra(schema: string, name: string, extra: ExtraQueueConfig): Sql {
  return { text: upsertExtraText(schema, '$1', extra, false), values: [name] };
}

/** Queues' own settings and counters, by name; a queue without a row has the defaults, counters 0. */
export function queueExtras(schema: string, names: string[]): Sql {
  return {
    text: `SELECT name, message_ttl_sec AS "messageTtlSec", dedup_window_sec AS "dedupWindowSec", content_dedup AS "contentDedup",
        max_depth::float8 AS "maxDepth", overflow, delete_on_ack AS "deleteOnAck", expired::float8 AS expired, dropped::float8 AS dropped
      FROM ${schema}.inboxd_queue WHERE name = ANY($1::text[])`,
    values: [names],
  };
}

/** What inboxd keeps of a deleted queue: its settings row, remembered dedup keys and owner. */
export function deleteQueueExtra(schema: string, name: string): Sql {
  return {
    text: `WITH d AS (DELETE FROM ${schema}.inboxd_dedup WHERE queue = $1), o AS (DELETE FROM ${schema}.inboxd_queue_owner WHERE queue = $1)
      DELETE FROM ${schema}.inboxd_queue WHERE name = $1`,
    values: [name],
  };
}

/**
 * For each of `queues` holding a waiting message (with `futureOnly`, one not yet due): in how
 * many milliseconds the earliest is due (0 or less: deliverable now). One statement for all of
 * them, an index probe each (job_i14). Relative to the database's clock, so a skew between hosts
 * does not move wake-ups.
 */
export function queuesDue(schema: string, queues: string[], futureOnly: boolean): Sql {
  return {
    text: `SELECT name, EXTRACT(EPOCH FROM (due - ${schema}.job_now())) * 1000 AS "dueInMs" FROM (
        SELECT q.name, (SELECT min(j.start_after) FROM ${schema}.job j
          WHERE j.name = q.name AND j.state < 'active'${futureOnly ? ` AND j.start_after > ${schema}.job_now()` : ''}) AS due
        FROM unnest($1::text[]) AS q(name)) d
      WHERE due IS NOT NULL`,
    values: [queues],
  };
}

/** Leases past their end, oldest first. */
export function expiredLeases(schema: string, limit: number): Sql {
  return {
    text: `SELECT name, id::text AS id, retry_count AS "retryCount" FROM ${schema}.job
      WHERE state = 'active' AND started_on + expire_seconds * interval '1 second' < ${schema}.job_now()
      ORDER BY started_on LIMIT $1`,
    values: [limit],
  };
}

/**
 * Where the given messages stand: to tell a stale lease token from a settle repeated. `nackedAt`:
 * the attempt (retry_count) a nack returned to the queue; `nackedToFail`: dead-lettered by a nack.
 */
export function jobStates(schema: string, queue: string, ids: string[]): Sql {
  return {
    text: `SELECT id::text AS id, state::text AS state, retry_count AS "retryCount",
        (output->>'nacked_at_retry')::int AS "nackedAt", coalesce(output->>'nacked' = 'true', false) AS "nackedToFail"
      FROM ${schema}.job WHERE name = $1 AND id = ANY($2::uuid[])`,
    values: [queue, ids],
  };
}

/** Live counts of one queue's messages by what a user calls their state. */
export function queueCounts(schema: string, queue: string): Sql {
  return {
    text: `SELECT
        count(*) FILTER (WHERE state < 'active' AND start_after <= ${schema}.job_now()) AS ready,
        count(*) FILTER (WHERE state < 'active' AND start_after > ${schema}.job_now()) AS delayed,
        count(*) FILTER (WHERE state = 'active') AS leased,
        count(*) FILTER (WHERE state = 'failed') AS dead_lettered,
        count(*) FILTER (WHERE state = 'completed') AS acked,
        count(*) FILTER (WHERE created_on > ${schema}.job_now() - interval '60 seconds') / 60.0 AS send_rate,
        count(*) FILTER (WHERE state = 'completed' AND completed_on > ${schema}.job_now() - interval '60 seconds') / 60.0 AS ack_rate,
        COALESCE(EXTRACT(EPOCH FROM (${schema}.job_now() - min(created_on) FILTER (WHERE state < 'active'))), 0) AS oldest_age_s
      FROM ${schema}.job WHERE name = $1`,
    values: [queue],
  };
}

/**
 * Ends waiting messages whose expires_at passed (at most `limit`): state cancelled with output
 * {"expired": true}, so browsing tells them from acked ones, and pg-boss deletes them after the
 * acked retention. Counted per queue in inboxd_queue.expired. Returns how many.
 */
export function expireQueued(schema: string, limit: number): Sql {
  return {
    text: `WITH e AS MATERIALIZED (SELECT name, id FROM ${schema}.job
          WHERE state < 'active' AND data ? 'ex'
            AND (data->>'ex')::bigint < (EXTRACT(EPOCH FROM ${schema}.job_now()) * 1000)::bigint
          LIMIT $1 FOR UPDATE SKIP LOCKED),
      x AS (
        UPDATE ${schema}.job j SET state = 'cancelled', completed_on = ${schema}.job_now(), output = '{"expired": true}'::jsonb
        FROM e WHERE j.name = e.name AND j.id = e.id
        RETURNING j.name),
      c AS (SELECT name, count(*) AS n FROM x GROUP BY name),
      u AS (INSERT INTO ${schema}.inboxd_queue (name, expired) SELECT name, n FROM c
        ON CONFLICT (name) DO UPDATE SET expired = ${schema}.inboxd_queue.expired + EXCLUDED.expired)
      SELECT COALESCE(sum(n), 0)::int AS expired FROM c`,
    values: [limit],
  };
}

/** Forgets dedup keys whose window passed. */
export function dropExpiredDedupKeys(schema: string, limit: number): Sql {
  return {
    text: `DELETE FROM ${schema}.inboxd_dedup WHERE (queue, key) IN (
        SELECT queue, key FROM ${schema}.inboxd_dedup WHERE expires_at < now() LIMIT $1)`,
    values: [limit],
  };
}

/**
 * Claims dedup keys (sorted, distinct) for a queue's messages: a key is claimed when new or when
 * its window passed; a key held by a message in its window is not returned. In the inserting
 * transaction, so a claim and its message commit together, and a racing claim waits for it.
 */
export function claimDedupKeys(schema: string, queue: string, keys: string[], ids: string[], windowSec: number): Sql {
  return {
    text: `INSERT INTO ${schema}.inboxd_dedup (queue, key, id, expires_at)
      SELECT $1, k, i, now() + $4 * interval '1 second' FROM unnest($2::text[], $3::uuid[]) AS t(k, i)
      ON CONFLICT (queue, key) DO UPDATE SET id = EXCLUDED.id, expires_at = EXCLUDED.expires_at
        WHERE ${schema}.inboxd_dedup.expires_at < now()
      RETURNING key`,
    values: [queue, keys, ids, windowSec],
  };
}

/** The messages holding dedup keys. */
export function dedupHolders(schema: string, queue: string, keys: string[]): Sql {
  return {
    text: `SELECT key, id::text AS id FROM ${schema}.inboxd_dedup WHERE queue = $1 AND key = ANY($2::text[])`,
    values: [queue, keys],
  };
}

/** Releases dedup keys whose messages were not stored after all (dropped by the overflow policy). */
export function releaseDedupKeys(schema: string, queue: string, keys: string[]): Sql {
  return { text: `DELETE FROM ${schema}.inboxd_dedup WHERE queue = $1 AND key = ANY($2::text[])`, values: [queue, keys] };
}

/** Serialises senders to one bounded queue, on every replica, until the transaction ends. */
export function lockQueueDepth(queue: string): Sql {
  return { text: `SELECT pg_advisory_xact_lock(hashtext('inboxd depth ' || $1))`, values: [queue] };
}

/** Messages waiting in a queue (ready or delayed). */
export function queueDepth(schema: string, queue: string): Sql {
  return { text: `SELECT count(*)::int AS depth FROM ${schema}.job WHERE name = $1 AND state < 'active'`, values: [queue] };
}

/**
 * Drops the `n` oldest waiting messages of a queue (overflow policy drop_oldest): state cancelled
 * with output {"dropped": "drop_oldest"}, counted in inboxd_queue.dropped. Returns how many.
 */
export function dropOldest(schema: string, queue: string, n: number): Sql {
  return {
    // MATERIALIZED: picked once. As a plain subquery of the UPDATE it can be rescanned per row,
    // and with LIMIT … SKIP LOCKED each rescan picks another row (two dropped for one asked).
    text: `WITH o AS MATERIALIZED (SELECT id FROM ${schema}.job WHERE name = $1 AND state < 'active'
          ORDER BY created_on, id LIMIT $2 FOR UPDATE SKIP LOCKED),
      x AS (
        UPDATE ${schema}.job j SET state = 'cancelled', completed_on = ${schema}.job_now(), output = '{"dropped": "drop_oldest"}'::jsonb
        FROM o WHERE j.name = $1 AND j.id = o.id
        RETURNING j.id)
      SELECT count(*)::int AS dropped FROM x`,
    values: [queue, n],
  };
}

/** Adds to a queue's dropped counter. */
export function countDropped(schema: string, queue: string, n: number): Sql {
  return {
    text: `INSERT INTO ${schema}.inboxd_queue (name, dropped) VALUES ($1, $2)
      ON CONFLICT (name) DO UPDATE SET dropped = ${schema}.inboxd_queue.dropped + EXCLUDED.dropped`,
    values: [queue, n],
  };
}

/** Makes fenced leases' current attempt their last, so pg-boss's fail() dead-letters them. */
export function lastAttempt(schema: string, queue: string, pairs: string[]): Sql {
  return {
    text: `UPDATE ${schema}.job SET retry_limit = retry_count WHERE name = $1 AND ${FENCE}`,
    values: [queue, pairs],
  };
}

/** Dead-lettered messages of a dead-letter queue whose original queue is gone (a redrive leaves them). */
export function unroutableDeadLetters(schema: string, queue: string, ids: string[] | null, limit: number): Sql {
  return {
    text: `SELECT j.id::text AS id, j.source_name AS source FROM ${schema}.job j
      WHERE j.name = $1 AND j.state < 'active' AND ($2::uuid[] IS NULL OR j.id = ANY($2::uuid[]))
        AND (j.source_name IS NULL OR NOT EXISTS (SELECT 1 FROM ${schema}.queue q WHERE q.name = j.source_name))
      ORDER BY j.created_on LIMIT $3`,
    values: [queue, ids, limit],
  };
}

/** Which of `ids` are messages waiting in `queue`. */
export function waitingIds(schema: string, queue: string, ids: string[]): Sql {
  return {
    text: `SELECT id::text AS id FROM ${schema}.job WHERE name = $1 AND id = ANY($2::uuid[]) AND state < 'active'`,
    values: [queue, ids],
  };
}

/** The channel pg-boss notifies on when a job becomes ready in a notify-enabled queue. */
export function notifyChannel(schema: string): Sql {
  return {
    text: `SELECT ('pgboss_' || left(encode(sha224($1::text::bytea), 'hex'), 24)) AS channel`,
    values: [schema],
  };
}

/**
 * Wakes consumers of a queue on every server sharing this database: now, or, with `dueInMs`, once
 * a message becomes due then (payload 'queue dueInMs'; pg-boss's own payload is the bare name).
 */
export function notify(channel: string, queue: string, dueInMs?: number): Sql {
  return { text: `SELECT pg_notify($1, $2)`, values: [channel, dueInMs && dueInMs > 0 ? `${queue} ${Math.ceil(dueInMs)}` : queue] };
}

/**
 * For metrics: per queue of `queues`, its live messages by state, the age of its oldest queued
 * one, and its expired/dropped counters. Counts only live rows (job_i14's states, not acked ones
 * retained), so a scrape costs an index range per queue however much history the queues keep.
 */
export function liveCounts(schema: string, queues: string[]): Sql {
  return {
    text: `SELECT q.name, c.ready, c.delayed, c.leased, c.dead_lettered, c.oldest_age_s, x.expired::float8 AS expired, x.dropped::float8 AS dropped
      FROM unnest($1::text[]) AS q(name)
      LEFT JOIN (
        SELECT name,
          count(*) FILTER (WHERE state < 'active' AND start_after <= ${schema}.job_now()) AS ready,
          count(*) FILTER (WHERE state < 'active' AND start_after > ${schema}.job_now()) AS delayed,
          count(*) FILTER (WHERE state = 'active') AS leased,
          count(*) FILTER (WHERE state = 'failed') AS dead_lettered,
          COALESCE(EXTRACT(EPOCH FROM (${schema}.job_now() - min(created_on) FILTER (WHERE state < 'active'))), 0) AS oldest_age_s
        FROM ${schema}.job
        WHERE name = ANY($1::text[]) AND state IN ('created', 'retry', 'active', 'failed')
        GROUP BY name) c ON c.name = q.name
      LEFT JOIN ${schema}.inboxd_queue x ON x.name = q.name`,
    values: [queues],
  };
}

// --- topics and browsing ---

/**
 * Topics with at least one subscribed queue, in name order, after `after`, with their queues:
 * pg-boss's subscription table (event = topic, name = queue), walked on its primary key.
 */
export function listTopics(schema: string, limit: number, after?: string): Sql {
  return {
    text: `SELECT event AS topic, array_agg(name ORDER BY name) AS queues
      FROM ${schema}.subscription
      WHERE ($2::text IS NULL OR event > $2) AND event ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$'
      GROUP BY event ORDER BY event LIMIT $1`,
    values: [limit, after ?? null],
  };
}

/** The queues subscribed to a topic, in name order. */
export function topicQueues(schema: string, topic: string): Sql {
  return { text: `SELECT name FROM ${schema}.subscription WHERE event = $1 ORDER BY name`, values: [topic] };
}

/** A state a browse can filter on, as MessageInfo reports it. */
export type BrowseState = 'queued' | 'delayed' | 'leased' | 'acked' | 'dead_lettered' | 'expired' | 'dropped';

/** Where a browsed page starts: after the row with this sort key (created_on in epoch µs, id). */
export interface BrowseCursor {
  createdUs: string;
  id: string;
}

function browseStateFilter(schema: string, state: BrowseState): string {
  switch (state) {
    case 'queued':
      return `state < 'active' AND start_after <= ${schema}.job_now()`;
    case 'delayed':
      return `state < 'active' AND start_after > ${schema}.job_now()`;
    case 'leased':
      return `state = 'active'`;
    case 'acked':
      return `state = 'completed'`;
    case 'dead_lettered':
      return `state = 'failed'`;
    // Expired and dropped messages are pg-boss 'cancelled', told apart by their output.
    case 'expired':
      return `state = 'cancelled' AND output->>'dropped' IS NULL`;
    case 'dropped':
      return `state = 'cancelled' AND output->>'dropped' IS NOT NULL`;
  }
}

/** What browsing reads of a job: never a lock, never a write. */
function browseColumns(schema: string): string {
  return `id::text AS id, name, data, state::text AS state, retry_count AS "retryCount",
    created_on AS "createdOn", started_on AS "startedOn", completed_on AS "completedOn",
    start_after > ${schema}.job_now() AS "notDue",
    CASE WHEN state = 'active' THEN started_on + expire_seconds * interval '1 second' END AS "leaseExpiresAt",
    output, source_name AS "sourceName", source_id::text AS "sourceId", source_retry_count AS "sourceRetryCount",
    source_output AS "sourceOutput", source_created_on AS "sourceCreatedOn",
    (EXTRACT(EPOCH FROM created_on) * 1000000)::bigint::text AS "createdUs"`;
}

/**
 * One page of a queue's messages in (created_on, id) order, oldest or newest first, after a
 * cursor: a keyset walk on job_i15 (name, created_on), so a page costs the same however deep,
 * and rows inserted meanwhile never shift the pages already read. The cursor's created_on is
 * carried in whole microseconds (a Date has only milliseconds; one insert stamps all its rows alike).
 */
export function browseMessages(schema: string, queue: string, o: { state?: BrowseState; limit: number; newestFirst: boolean; after?: BrowseCursor }): Sql {
  const values: unknown[] = [queue, o.limit];
  const where = ['name = $1'];
  if (o.state) where.push(`(${browseStateFilter(schema, o.state)})`);
  if (o.after) {
    values.push(o.after.createdUs, o.after.id);
    const at = `('epoch'::timestamptz + $3::bigint * interval '1 microsecond')`;
    where.push(o.newestFirst ? `created_on <= ${at} AND (created_on, id) < (${at}, $4::uuid)` : `created_on >= ${at} AND (created_on, id) > (${at}, $4::uuid)`);
  }
  const dir = o.newestFirst ? 'DESC' : 'ASC';
  return {
    // job.id, not id: the select list's id is text, and the order must be the cursor's (uuid).
    text: `SELECT ${browseColumns(schema)} FROM ${schema}.job WHERE ${where.join(' AND ')}
      ORDER BY job.created_on ${dir}, job.id ${dir} LIMIT $2`,
    values,
  };
}

/** One message by id, in any state. */
export function browseMessage(schema: string, queue: string, id: string): Sql {
  return { text: `SELECT ${browseColumns(schema)} FROM ${schema}.job WHERE name = $1 AND id = $2::uuid`, values: [queue, id] };
}

// ─── inboxd's own tables: their migrations (server/queue/migrations) ──────────────────────────

/**
 * Held by whoever migrates inboxd's tables in `schema` until its transaction ends, so replicas
 * starting together migrate one after another. The key earlier releases took for their CREATE … IF
 * NOT EXISTS at start, so a replica of one of those starting meanwhile waits as well.
 */
export function lockMigrations(schema: string): Sql {
  return { text: `SELECT pg_advisory_xact_lock(hashtext('inboxd schema ' || $1))`, values: [schema] };
}

/** The record of inboxd's migrations applied here; made by the first start that migrates. */
export function ensureMigrationsTable(schema: string): Sql {
  return {
    text: `CREATE TABLE IF NOT EXISTS ${schema}.inboxd_migrations (
        version int PRIMARY KEY,
        name text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now()
      )`,
    values: [],
  };
}

export function appliedMigrations(schema: string): Sql {
  return { text: `SELECT version, name, applied_at AS "appliedAt" FROM ${schema}.inboxd_migrations ORDER BY version`, values: [] };
}

export function recordMigration(schema: string, version: number, name: string): Sql {
  return { text: `INSERT INTO ${schema}.inboxd_migrations (version, name) VALUES ($1, $2)`, values: [version, name] };
}

// ─── Identity and authorization (server/auth) ─────────────────────────────────────────────────

/**
 * The shared secret named `name`, made from `candidate` by the first replica that asks. DO UPDATE
 * (a no-op) rather than DO NOTHING: a replica whose insert waited on another's gets that row back;
 * with DO NOTHING it got no row, and its snapshot could not see the other's (a replica failed to start).
 */
export function serverSecret(schema: string, name: string, candidate: Buffer): Sql {
  return {
    text: `INSERT INTO ${schema}.inboxd_secret AS s (name, value) VALUES ($1, $2)
      ON CONFLICT (name) DO UPDATE SET value = s.value RETURNING value`,
    values: [name, candidate],
  };
}

const PRINCIPAL_COLUMNS = (schema: string) => `p.name, p.metadata, p.admin, p.max_streams AS "maxStreams", p.max_send_rate AS "maxSendRate",
  p.created_at AS "createdAt", p.created_by AS "createdBy", p.last_seen_at AS "lastSeenAt",
  (SELECT coalesce(sum(streams), 0)::int FROM ${schema}.inboxd_presence s WHERE s.principal = p.name AND s.seen_at > now() - interval '30 seconds') AS "openStreams"`;

export function insertPrincipal(
  schema: string,
  p: { name: string; metadata: Record<string, string>; admin: boolean; maxStreams: number; maxSendRate: number; createdBy: string },
  ifAbsent = false,
): Sql {
  return {
    text: `INSERT INTO ${schema}.inboxd_principal AS p (name, metadata, admin, max_streams, max_send_rate, created_by) VALUES ($1, $2, $3, $4, $5, $6)
      ON CONFLICT (name) DO ${ifAbsent ? 'UPDATE SET admin = true' : 'NOTHING'}
      RETURNING ${PRINCIPAL_COLUMNS(schema)}`,
    values: [p.name, JSON.stringify(p.metadata), p.admin, p.maxStreams, p.maxSendRate, p.createdBy],
  };
}

export function principals(schema: string, names: string[] | null, limit: number, after?: string): Sql {
  return {
    text: `SELECT ${PRINCIPAL_COLUMNS(schema)} FROM ${schema}.inboxd_principal p
      WHERE ($1::text[] IS NULL OR p.name = ANY($1::text[])) AND ($2::text IS NULL OR p.name > $2) ORDER BY p.name LIMIT $3`,
    values: [names, after ?? null, limit],
  };
}

/** Deletes a principal (its keys, grants and presence go with it) and the ownership of its queues. */
export function deletePrincipal(schema: string, name: string): Sql {
  return {
    text: `WITH o AS (DELETE FROM ${schema}.inboxd_queue_owner WHERE principal = $1), s AS (DELETE FROM ${schema}.inboxd_presence WHERE principal = $1)
      DELETE FROM ${schema}.inboxd_principal WHERE name = $1 RETURNING name`,
    values: [name],
  };
}

const KEY_COLUMNS = `id, principal, created_at AS "createdAt", created_by AS "createdBy", expires_at AS "expiresAt", revoked_at AS "revokedAt", last_used_at AS "lastUsedAt"`;

export function insertApiKey(schema: string, k: { id: string; principal: string; hash: Buffer; expiresAt: Date | null; createdBy: string }): Sql {
  return {
    text: `INSERT INTO ${schema}.inboxd_api_key (id, principal, hash, expires_at, created_by) VALUES ($1, $2, $3, $4, $5) RETURNING ${KEY_COLUMNS}`,
    values: [k.id, k.principal, k.hash, k.expiresAt, k.createdBy],
  };
}

/** One key with its hash and its principal's row, for authentication. */
export function apiKeyForAuth(schema: string, id: string): Sql {
  return {
    text: `SELECT k.id, k.principal, k.hash, k.expires_at AS "expiresAt", k.revoked_at AS "revokedAt", p.admin, p.max_streams AS "maxStreams", p.max_send_rate AS "maxSendRate"
      FROM ${schema}.inboxd_api_key k JOIN ${schema}.inboxd_principal p ON p.name = k.principal WHERE k.id = $1`,
    values: [id],
  };
}

export function apiKeys(schema: string, principal: string | null): Sql {
  return {
    text: `SELECT ${KEY_COLUMNS} FROM ${schema}.inboxd_api_key WHERE ($1::text IS NULL OR principal = $1) ORDER BY principal, created_at, id`,
    values: [principal],
  };
}

export function revokeApiKey(schema: string, id: string): Sql {
  return {
    text: `UPDATE ${schema}.inboxd_api_key SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 RETURNING ${KEY_COLUMNS}`,
    values: [id],
  };
}

/** A principal for authentication by name (JWT subject, certificate name, the bootstrap admin). */
export function principalForAuth(schema: string, name: string): Sql {
  return {
    text: `SELECT name, admin, max_streams AS "maxStreams", max_send_rate AS "maxSendRate" FROM ${schema}.inboxd_principal WHERE name = $1`,
    values: [name],
  };
}

/** Records that principals (and keys) were seen now; cheap enough at once a minute each. */
export function touchSeen(schema: string, principals: string[], keys: string[]): Sql {
  return {
    text: `WITH k AS (UPDATE ${schema}.inboxd_api_key SET last_used_at = now() WHERE id = ANY($2::text[]))
      UPDATE ${schema}.inboxd_principal SET last_seen_at = now() WHERE name = ANY($1::text[])`,
    values: [principals, keys],
  };
}

/** This replica's open streams per principal (rows for principals with none are removed). */
export function reportPresence(schema: string, replica: string, principals: string[], streams: number[]): Sql {
  return {
    // Rows of replicas gone for an hour (killed before they could clear theirs) are dropped too.
    text: `WITH d AS (DELETE FROM ${schema}.inboxd_presence WHERE (replica = $1 AND NOT (principal = ANY($2::text[]))) OR seen_at < now() - interval '1 hour')
      INSERT INTO ${schema}.inboxd_presence (principal, replica, streams, seen_at)
      SELECT p, $1, s, now() FROM unnest($2::text[], $3::int[]) AS t(p, s)
      ON CONFLICT (principal, replica) DO UPDATE SET streams = EXCLUDED.streams, seen_at = now()`,
    values: [replica, principals, streams],
  };
}

export function clearPresence(schema: string, replica: string): Sql {
  return { text: `DELETE FROM ${schema}.inboxd_presence WHERE replica = $1`, values: [replica] };
}

/** Adds grants (one row per verb); returns every verb the principal now holds on the pattern. */
export function addGrants(schema: string, principal: string, pattern: string, verbs: string[], by: string): Sql {
  return {
    // DO UPDATE (a no-op), not DO NOTHING: a verb granted concurrently comes back too.
    text: `WITH ins AS (INSERT INTO ${schema}.inboxd_grant AS g (principal, pattern, verb, created_by) SELECT $1, $2, v, $4 FROM unnest($3::text[]) v
        ON CONFLICT (principal, pattern, verb) DO UPDATE SET verb = g.verb RETURNING verb)
      SELECT verb FROM ins UNION SELECT verb FROM ${schema}.inboxd_grant WHERE principal = $1 AND pattern = $2`,
    values: [principal, pattern, verbs, by],
  };
}

/** Removes grants (every verb when `verbs` is null); returns the verbs left on the pattern. */
export function removeGrants(schema: string, principal: string, pattern: string, verbs: string[] | null): Sql {
  return {
    text: `WITH del AS (DELETE FROM ${schema}.inboxd_grant WHERE principal = $1 AND pattern = $2 AND ($3::text[] IS NULL OR verb = ANY($3::text[])) RETURNING verb)
      SELECT verb FROM ${schema}.inboxd_grant WHERE principal = $1 AND pattern = $2 AND NOT (verb IN (SELECT verb FROM del))`,
    values: [principal, pattern, verbs],
  };
}

export function grants(schema: string, principal: string | null): Sql {
  return {
    text: `SELECT principal, pattern, array_agg(verb ORDER BY verb) AS verbs FROM ${schema}.inboxd_grant
      WHERE ($1::text IS NULL OR principal = $1) GROUP BY principal, pattern ORDER BY principal, pattern`,
    values: [principal],
  };
}

/** Whom the messages `ids` of `queue` asked for replies, and who sent them: to check a reply (in_reply_to_lease_token). */
export function replyRequests(schema: string, queue: string, ids: string[]): Sql {
  return {
    text: `SELECT id::text AS id, data->>'rt' AS "replyTo", coalesce(data->>'snd', '') AS sender FROM ${schema}.job WHERE name = $1 AND id = ANY($2::uuid[])`,
    values: [queue, ids],
  };
}

/** How many reply queues (reply.<uuid>) `principal` owns. */
export function ownedReplyQueues(schema: string, principal: string): Sql {
  return { text: `SELECT count(*)::int AS n FROM ${schema}.inboxd_queue_owner WHERE principal = $1 AND queue LIKE 'reply.%'`, values: [principal] };
}

export function queueOwners(schema: string, queues: string[]): Sql {
  return { text: `SELECT queue, principal FROM ${schema}.inboxd_queue_owner WHERE queue = ANY($1::text[])`, values: [queues] };
}

export function ownedQueues(schema: string, principal: string): Sql {
  return { text: `SELECT queue FROM ${schema}.inboxd_queue_owner WHERE principal = $1 ORDER BY queue LIMIT 10000`, values: [principal] };
}

export interface AuditRow {
  principal: string;
  action: string;
  method: string;
  verb: string;
  target: string;
  detail: string;
  peer: string;
}

export function insertAudit(schema: string, rows: AuditRow[]): Sql {
  const col = (k: keyof AuditRow) => rows.map(r => r[k]);
  return {
    text: `INSERT INTO ${schema}.inboxd_audit (principal, action, method, verb, target, detail, peer)
      SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])`,
    values: [col('principal'), col('action'), col('method'), col('verb'), col('target'), col('detail'), col('peer')],
  };
}

export function auditEvents(schema: string, o: { limit: number; beforeId?: string; actions: string[] | null; principal: string | null }): Sql {
  return {
    text: `SELECT a.id::text AS id, a.at, a.principal, a.action, a.method, a.verb, a.target, a.detail, a.peer FROM ${schema}.inboxd_audit a
      WHERE ($2::bigint IS NULL OR a.id < $2) AND ($3::text[] IS NULL OR a.action = ANY($3::text[])) AND ($4::text IS NULL OR a.principal = $4)
      ORDER BY a.id DESC LIMIT $1`,
    values: [o.limit, o.beforeId ?? null, o.actions, o.principal],
  };
}

/** Forgets audit events older than `days`. */
export function pruneAudit(schema: string, days: number): Sql {
  return { text: `DELETE FROM ${schema}.inboxd_audit WHERE at < now() - make_interval(days => $1)`, values: [days] };
}
