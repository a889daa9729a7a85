import type { Migration } from './index.js';

/**
 * A send's insert as one prepared statement: `inboxd_insert(queue, ids, datas, priorities,
 * start_afters)` stores a batch of messages on pg-boss's job table as pg-boss's insert() does for
 * the queues inboxd makes (the queue's retry, expiry, retention and dead-letter settings copied
 * onto each row; an id already stored is skipped, ON CONFLICT DO NOTHING; a queue that does not
 * exist is refused by pg-boss's foreign key), NOTIFYs pg-boss's channel in the same transaction
 * when a row is deliverable now, and answers the ids it stored.
 *
 * pg-boss's insert() is a new statement every time, its batch as one JSON text for
 * json_to_recordset: at 1,000 msgs/s Postgres spent more time planning it than running it
 * (0.28 ms a call; pg_stat_statements). Arrays in (the data as one JSON array: one
 * JSON.stringify, no array-literal escaping of each message), PL/pgSQL's generic plan, planned
 * once a connection. test/sql-contract.test.ts holds it to pg-boss's insert, column by column.
 */
export const insert: Migration = {
  version: 5,
  name: 'insert',
  up: schema => `
    CREATE OR REPLACE FUNCTION ${schema}.inboxd_insert(queue_name text, ids uuid[], datas jsonb, priorities int[], start_afters timestamptz[])
    RETURNS SETOF uuid
    LANGUAGE plpgsql
    SET plan_cache_mode = force_generic_plan
    AS $fn$
    #variable_conflict use_column
    BEGIN
      RETURN QUERY
      WITH ins AS (
        INSERT INTO ${schema}.job (id, name, data, priority, start_after, created_on, expire_seconds, deletion_seconds, keep_until,
          retry_limit, retry_delay, retry_backoff, retry_delay_max, policy, dead_letter, heartbeat_seconds, blocked, blocking, pending_dependencies)
        SELECT m.id, queue_name, m.data, COALESCE(m.priority, 0), m.at, ${schema}.job_now(),
          COALESCE(q.expire_seconds, 900), COALESCE(q.deletion_seconds, 604800),
          m.at + COALESCE(q.retention_seconds, 1209600) * interval '1s',
          COALESCE(q.retry_limit, 2), COALESCE(q.retry_delay, 0), COALESCE(q.retry_backoff, false), q.retry_delay_max,
          q.policy, q.dead_letter, q.heartbeat_seconds, false, false, 0
        FROM (
          SELECT u.id, datas -> (u.n - 1)::int AS data, u.priority, COALESCE(u.start_after, ${schema}.job_now()) AS at
          FROM unnest(ids, priorities, start_afters) WITH ORDINALITY AS u(id, priority, start_after, n)
        ) m
        LEFT JOIN ${schema}.queue q ON q.name = queue_name
        ON CONFLICT DO NOTHING
        RETURNING id, start_after
      ),
      notified AS (
        SELECT pg_notify('pgboss_' || left(encode(sha224('${schema}'::bytea), 'hex'), 24), queue_name)
        FROM ins WHERE ins.start_after <= ${schema}.job_now() LIMIT 1
      )
      SELECT ins.id FROM ins WHERE (SELECT count(*) FROM notified) >= 0;
    END
    $fn$;
  `,
};
