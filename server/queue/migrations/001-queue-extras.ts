import type { Migration } from './index.js';

/**
 * Baseline, part one: the tables inboxd 0.1.0 created at every start, unchanged. Every statement
 * says IF NOT EXISTS so that a database made by 0.1.0 (these tables, no inboxd_migrations) is
 * adopted as it is and this migration merely recorded.
 * - inboxd_queue: the queue settings pg-boss has no column for, and the expired/dropped counters;
 *   a queue without a row has the defaults (a queue auto-created by a Send);
 * - inboxd_dedup: dedup keys (and content hashes) remembered for a queue's dedup window;
 * - inboxd_job_expiry: waiting messages with an expiry, by it, on pg-boss's job table. Only those
 *   rows are indexed, so messages without a TTL cost nothing more to insert.
 */
export const queueExtras: Migration = {
  version: 1,
  name: 'queue_extras',
  up: schema => `
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
    CREATE INDEX IF NOT EXISTS inboxd_dedup_expiry ON ${schema}.inboxd_dedup (expires_at);
    CREATE INDEX IF NOT EXISTS inboxd_job_expiry ON ${schema}.job (((data->>'ex')::bigint))
      WHERE state < 'active' AND data ? 'ex';
  `,
};
