/**
 * Every SQL statement of inboxd's own, in one place. Everything else goes through pg-boss's public
 * API. These read and write pg-boss 12's job table (pinned in package.json, covered by the
 * integration tests) for what its API cannot express:
 *
 * - a lease whose length is chosen per fetch (pg-boss fixes expire_seconds at insert time), kept
 *   as started_on + expire_seconds so pg-boss's own supervisor expires it at the same moment;
 * - a nack with a delay of the caller's choosing (pg-boss's fail() applies the queue's retry delay);
 * - reading which leases expired, so the sweeper can fail them promptly through pg-boss;
 * - live counts for queue stats, and the state of unsettled lease tokens;
 * - a queue create that fails when the queue exists (pg-boss's succeeds, so racing creates both won).
 *
 * Attempt fences match pg-boss's own: (id, retry_count) pairs as 'id:retry_count' text, with
 * state = 'active'.
 */
import type { ExtraQueueConfig } from './queue-config.js';

export interface Sql {
  text: string;
  values: unknown[];
}

const FENCE = `state = 'active' AND (id::text || ':' || retry_count::text) = ANY($2::text[])`;

export function fencePairs(refs: { id: string; retryCount: number }[]): string[] {
  return refs.map(r => `${r.id}:${r.retryCount}`);
}

/** Sets the lease of freshly fetched jobs to end `seconds` after they were started. */
export function setLease(schema: string, queue: string, ids: string[], seconds: number): Sql {
  return {
    text: `UPDATE ${schema}.job SET expire_seconds = $3
      WHERE name = $1 AND id = ANY($2::uuid[]) AND state = 'active'`,
    values: [queue, ids, seconds],
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
        output = jsonb_build_object('message', $4::text)
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
export function createQueue(schema: string, name: string, options: object, extra: ExtraQueueConfig): Sql {
  const lit = (s: string) => `'${s.replace(/'/g, "''")}'`;
  return {
    text: `DO $inboxd$
      BEGIN
        PERFORM ${schema}.create_queue(${lit(name)}, ${lit(JSON.stringify(options))}::jsonb);
        IF NOT EXISTS (SELECT 1 FROM ${schema}.queue WHERE name = ${lit(name)} AND xmin = pg_current_xact_id()::xid) THEN
          RAISE EXCEPTION 'queue % already exists', ${lit(name)} USING ERRCODE = 'unique_violation';
        END IF;
        ${upsertExtraText(schema, lit(name), extra, true)};
      END $inboxd$`,
    values: [],
  };
}

/**
 * inboxd's own tables, beside pg-boss's in the same schema, created at start (idempotent; an
 * advisory lock keeps replicas starting together from racing on CREATE):
 * - inboxd_queue: the queue settings pg-boss has no column for, and the expired/dropped counters;
 *   a queue without a row has the defaults (a queue auto-created by a Send);
 * - inboxd_dedup: dedup keys (and content hashes) remembered for a queue's dedup window.
 */
export function ensureSchema(schema: string): Sql {
  return {
    text: `DO $inboxd$
      BEGIN
        PERFORM pg_advisory_xact_lock(hashtext('inboxd schema ' || ${`'${schema}'`}));
        CREATE TABLE IF NOT EXISTS ${schema}.inboxd_queue (
          name text PRIMARY KEY,
          message_ttl_sec int NOT NULL DEFAULT 0,
          dedup_window_sec int NOT NULL DEFAULT 300,
          content_dedup bool NOT NULL DEFAULT false,
          max_depth bigint NOT NULL DEFAULT 0,
          overflow text NOT NULL DEFAULT 'reject',
          expired bigint NOT NULL DEFAULT 0,
          dropped bigint NOT NULL DEFAULT 0
        );
        CREATE TABLE IF NOT EXISTS ${schema}.inboxd_dedup (
          queue text NOT NULL,
          key text NOT NULL,
          id uuid NOT NULL,
          expires_at timestamptz NOT NULL,
          PRIMARY KEY (queue, key)
        );
      END $inboxd$`,
    values: [],
  };
}

function upsertExtraText(schema: string, nameLit: string, e: ExtraQueueConfig, resetCounters: boolean): string {
  const o = e.overflow.replace(/[^a-z_]/g, '');
  const values = `${e.messageTtlSec | 0}, ${e.dedupWindowSec | 0}, ${e.contentDedup ? 'true' : 'false'}, ${Math.trunc(e.maxDepth)}, '${o}'`;
  return `INSERT INTO ${schema}.inboxd_queue (name, message_ttl_sec, dedup_window_sec, content_dedup, max_depth, overflow)
      VALUES (${nameLit}, ${values})
      ON CONFLICT (name) DO UPDATE SET message_ttl_sec = EXCLUDED.message_ttl_sec, dedup_window_sec = EXCLUDED.dedup_window_sec,
        content_dedup = EXCLUDED.content_dedup, max_depth = EXCLUDED.max_depth, overflow = EXCLUDED.overflow
        ${resetCounters ? ', expired = 0, dropped = 0' : ''}`;
}

/** Sets a queue's own settings (UpdateQueue), keeping its counters. */
export function upsertQueueExtra(schema: string, name: string, extra: ExtraQueueConfig): Sql {
  return { text: upsertExtraText(schema, '$1', extra, false), values: [name] };
}

/** A queue's own settings and counters; no row: the defaults, counters 0. */
export function queueExtra(schema: string, name: string): Sql {
  return {
    text: `SELECT message_ttl_sec AS "messageTtlSec", dedup_window_sec AS "dedupWindowSec", content_dedup AS "contentDedup",
        max_depth::float8 AS "maxDepth", overflow, expired::float8 AS expired, dropped::float8 AS dropped
      FROM ${schema}.inboxd_queue WHERE name = $1`,
    values: [name],
  };
}

/** What inboxd keeps of a deleted queue: its settings row and remembered dedup keys. */
export function deleteQueueExtra(schema: string, name: string): Sql {
  return {
    text: `WITH d AS (DELETE FROM ${schema}.inboxd_dedup WHERE queue = $1)
      DELETE FROM ${schema}.inboxd_queue WHERE name = $1`,
    values: [name],
  };
}

/**
 * For each of `queues` that holds queued messages: in how many milliseconds its earliest one is
 * due (0 or less: deliverable now). One statement for all of them, an index probe each (job_i14).
 * Relative to the database's clock, so a skew between hosts does not move wake-ups.
 */
export function queuesDue(schema: string, queues: string[]): Sql {
  return {
    text: `SELECT name, EXTRACT(EPOCH FROM (due - ${schema}.job_now())) * 1000 AS "dueInMs" FROM (
        SELECT q.name, (SELECT min(j.start_after) FROM ${schema}.job j
          WHERE j.name = q.name AND j.state < 'active') AS due
        FROM unnest($1::text[]) AS q(name)) d
      WHERE due IS NOT NULL`,
    values: [queues],
  };
}

/** In how many milliseconds `queue`'s earliest message not yet due becomes due (none: no row). */
export function nextDue(schema: string, queue: string): Sql {
  return {
    text: `SELECT EXTRACT(EPOCH FROM (min(start_after) - ${schema}.job_now())) * 1000 AS "dueInMs"
      FROM ${schema}.job WHERE name = $1 AND state < 'active' AND start_after > ${schema}.job_now()
      HAVING min(start_after) IS NOT NULL`,
    values: [queue],
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

/** Where the given messages stand: to tell a stale lease token from an ack repeated. */
export function jobStates(schema: string, queue: string, ids: string[]): Sql {
  return {
    text: `SELECT id::text AS id, state::text AS state, retry_count AS "retryCount"
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
 * For metrics: per queue of `queues`, its live messages by state and the age of its oldest
 * queued one. Counts only live rows (job_i14's states, not acked ones retained), so a scrape
 * costs an index range per queue however much history the queues keep.
 */
export function liveCounts(schema: string, queues: string[]): Sql {
  return {
    text: `SELECT name,
        count(*) FILTER (WHERE state < 'active' AND start_after <= ${schema}.job_now()) AS ready,
        count(*) FILTER (WHERE state < 'active' AND start_after > ${schema}.job_now()) AS delayed,
        count(*) FILTER (WHERE state = 'active') AS leased,
        count(*) FILTER (WHERE state = 'failed') AS dead_lettered,
        COALESCE(EXTRACT(EPOCH FROM (${schema}.job_now() - min(created_on) FILTER (WHERE state < 'active'))), 0) AS oldest_age_s
      FROM ${schema}.job
      WHERE name = ANY($1::text[]) AND state IN ('created', 'retry', 'active', 'failed')
      GROUP BY name`,
    values: [queues],
  };
}
