import type { Migration } from './index.js';

/**
 * The lease as one statement (issue: the hot path). `inboxd_lease(queue, max, lease_seconds,
 * budget_bytes)` picks the queue's next waiting messages as pg-boss's fetch does (priority, then
 * age; SKIP LOCKED; state active, started_on, retry_count + 1 on a later attempt, so pg-boss's
 * attempt fence and supervisor see its own kind of lease), and in the same statement:
 *
 * - sets the lease length asked for (expire_seconds), no second update;
 * - leaves out messages past their expires_at: never delivered; the sweeper ends and counts them
 *   within its interval (ending them here as well put a statement on every lease whose plan the
 *   statistics could turn into a scan of the queue per row: 56 s a lease at 20k waiting);
 * - keeps only as many as fit in `budget_bytes` of response (at least one), estimated from the
 *   stored form no lower than the edge counts it (response-budget.ts): the rows it picked but
 *   does not keep are only unlocked, never touched, so nothing is counted as an attempt;
 * - answers with each row whether it left any behind (`more`), so a caller asks again at once.
 *
 * Its plan does not depend on table statistics: with none (a fresh table, or ANALYZE while the
 * queue was empty) Postgres would read the whole ready backlog through a bitmap scan and sort it
 * for every lease (78 ms per 500 rows at a 100k backlog, against ~8 ms in index order). With
 * bitmap scans and sorts off for this function alone, the only plan left is the ordered scan of
 * pg-boss's job_i11 (name, priority DESC, created_on, start_after). PL/pgSQL keeps the statement
 * prepared per connection: planned once, not at every call. The rows picked reach the UPDATE as
 * an array of their row addresses (locked, so unmoved), read by a TID scan whatever the
 * statistics: joined by id instead, stale statistics put them on the inner side of a nested loop
 * over the queue's every row (1.2 s a lease at 20k waiting), or read the queue's rows by name.
 * test/lease-plan.test.ts checks the plans it runs with.
 */
export const lease: Migration = {
  version: 3,
  name: 'lease',
  up: schema => `
    CREATE OR REPLACE FUNCTION ${schema}.inboxd_lease(queue_name text, max_count int, lease_seconds int, budget_bytes bigint)
    RETURNS TABLE (id uuid, retry_count int, data jsonb, more boolean)
    LANGUAGE plpgsql
    SET enable_bitmapscan = off
    SET enable_sort = off
    -- Listed so that the SET LOCALs below end with the function.
    SET enable_indexscan = on
    SET enable_seqscan = on
    -- Planned once per connection: with the scans above ruled out, the generic plans are the
    -- plans wanted, and planning each call again cost as much as running the update.
    SET plan_cache_mode = force_generic_plan
    AS $fn$
    #variable_conflict use_column
    DECLARE
      picked tid[];
      left_some boolean;
    BEGIN
      -- The next rows, locked, and those of them that fit the budget: their addresses.
      WITH next AS MATERIALIZED (
        SELECT j.ctid AS row_at, j.id, j.priority, j.created_on,
          512 + COALESCE((j.data->>'n')::bigint, 0) + 3 * octet_length((j.data - 'p')::text) AS bytes
        FROM ${schema}.job j
        WHERE j.name = queue_name
          AND j.state < 'active'
          AND NOT j.blocked
          AND j.start_after <= ${schema}.job_now()
          AND NOT COALESCE((j.data->>'ex')::bigint <= (EXTRACT(EPOCH FROM ${schema}.job_now()) * 1000)::bigint, false)
        ORDER BY j.priority DESC, j.created_on
        LIMIT max_count
        FOR UPDATE OF j SKIP LOCKED
      ),
      sized AS (
        SELECT n.row_at, row_number() OVER w AS rn, sum(n.bytes) OVER w AS upto
        FROM next n
        WINDOW w AS (ORDER BY n.priority DESC, n.created_on, n.id)
      )
      SELECT COALESCE(array_agg(s.row_at) FILTER (WHERE s.rn = 1 OR s.upto <= budget_bytes), '{}'),
        count(*) > count(*) FILTER (WHERE s.rn = 1 OR s.upto <= budget_bytes)
      INTO picked, left_some
      FROM sized s;
      IF cardinality(picked) = 0 THEN
        RETURN;
      END IF;
      -- By address (a TID scan), whatever the statistics say: a table they think small is read
      -- whole instead, a queue they think empty has its every row read by name.
      SET LOCAL enable_indexscan = off;
      SET LOCAL enable_seqscan = off;
      RETURN QUERY
      UPDATE ${schema}.job j SET
        state = 'active',
        started_on = ${schema}.job_now(),
        heartbeat_on = ${schema}.job_now(),
        retry_count = CASE WHEN j.started_on IS NOT NULL THEN j.retry_count + 1 ELSE j.retry_count END,
        expire_seconds = lease_seconds
      WHERE j.name = queue_name AND j.ctid = ANY (picked)
      RETURNING j.id, j.retry_count, j.data, left_some;
    END
    $fn$;
  `,
};
