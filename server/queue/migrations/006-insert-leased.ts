import type { Migration } from './index.js';

/**
 * A send's insert that may lease some of its messages as it stores them (the direct hand-off:
 * dispatcher.ts `offer`). `inboxd_insert(queue, ids, datas, priorities, start_afters, leases,
 * lease_seconds)` is 005's insert with one more array: a row whose `leases` entry is true is stored
 * already leased for `lease_seconds`, as inboxd_lease would have leased it (state active,
 * started_on and heartbeat_on now, retry_count 0: a first attempt), for a subscriber on this
 * replica that waits, with credit, on a queue it found drained. It answers each id stored and
 * whether it was stored leased, and NOTIFYs pg-boss's channel only when a row it stored waits
 * and is due now: messages that all went to waiting subscribers wake nobody.
 *
 * At a low rate, a send to a drained queue was an insert, a notification heard by every replica,
 * and a lease of what was just inserted: three round trips and two statements where one does.
 * 005's function stays for a replica of the release before during a rolling upgrade.
 */
export const insertLeased: Migration = {
  version: 6,
  name: 'insert-leased',
  up: schema => `
    CREATE OR REPLACE FUNCTION ${schema}.inboxd_insert(queue_name text, ids uuid[], datas jsonb, priorities int[], start_afters timestamptz[],
      leases boolean[], lease_seconds int)
    RETURNS TABLE (id uuid, leased boolean)
    LANGUAGE plpgsql
    SET plan_cache_mode = force_generic_plan
    AS $fn$
    #variable_conflict use_column
    BEGIN
      RETURN QUERY
      WITH ins AS (
        INSERT INTO ${schema}.job (id, name, data, priority, start_after, created_on, expire_seconds, deletion_seconds, keep_until,
          retry_limit, retry_delay, retry_backoff, retry_delay_max, policy, dead_letter, heartbeat_seconds, blocked, blocking, pending_dependencies,
          state, started_on, heartbeat_on)
        SELECT m.id, queue_name, m.data, COALESCE(m.priority, 0), m.at, ${schema}.job_now(),
          CASE WHEN m.leased THEN lease_seconds ELSE COALESCE(q.expire_seconds, 900) END, COALESCE(q.deletion_seconds, 604800),
          m.at + COALESCE(q.retention_seconds, 1209600) * interval '1s',
          COALESCE(q.retry_limit, 2), COALESCE(q.retry_delay, 0), COALESCE(q.retry_backoff, false), q.retry_delay_max,
          q.policy, q.dead_letter, q.heartbeat_seconds, false, false, 0,
          CASE WHEN m.leased THEN 'active' ELSE 'created' END::${schema}.job_state,
          CASE WHEN m.leased THEN ${schema}.job_now() END,
          CASE WHEN m.leased THEN ${schema}.job_now() END
        FROM (
          SELECT u.id, datas -> (u.n - 1)::int AS data, u.priority, COALESCE(u.start_after, ${schema}.job_now()) AS at, COALESCE(u.leased, false) AS leased
          FROM unnest(ids, priorities, start_afters, leases) WITH ORDINALITY AS u(id, priority, start_after, leased, n)
        ) m
        LEFT JOIN ${schema}.queue q ON q.name = queue_name
        ON CONFLICT DO NOTHING
        RETURNING id, start_after, state
      ),
      notified AS (
        SELECT pg_notify('pgboss_' || left(encode(sha224('${schema}'::bytea), 'hex'), 24), queue_name)
        FROM ins WHERE ins.state = 'created' AND ins.start_after <= ${schema}.job_now() LIMIT 1
      )
      SELECT ins.id, ins.state = 'active' FROM ins WHERE (SELECT count(*) FROM notified) >= 0;
    END
    $fn$;
  `,
};
