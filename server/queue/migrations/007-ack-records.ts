import type { Migration } from './index.js';

/**
 * What an ack that deletes leaves behind (acked_retention 0): `inboxd_acked` names each message
 * deleted by an ack at an attempt after the first, with that attempt (retry_count), until
 * `keep_until`. (A message acked at its first delivery needs none: no other attempt had a token,
 * so most acks write nothing here.) The
 * row is gone either way, so without it an ack repeated (a client retry after a lost answer, on
 * this replica or another) and an ack with a stale token (its lease expired, the message was
 * redelivered and that later attempt acked it) look the same. The record is written by the
 * DELETE's own statement (a data-modifying CTE, sql.deleteAcked), read only when an ack settled
 * nothing (sql.ackRecords), and dropped by the sweeper once `keep_until` passes
 * (sql.dropAckRecords): an hour after the ack, or the lease the acked attempt had if longer.
 *
 * Narrow on purpose: a key (message id, queue) and a btree on keep_until for the sweeper, no
 * payload. Rows are written in ack order, so keep_until grows with the heap and its index is
 * appended at its right edge. IF NOT EXISTS: a database adopted without inboxd_migrations runs
 * every migration again.
 */
export const ackRecords: Migration = {
  version: 7,
  name: 'ack_records',
  up: schema => `
    CREATE TABLE IF NOT EXISTS ${schema}.inboxd_acked (
      id uuid NOT NULL,
      queue text NOT NULL,
      retry_count int NOT NULL,
      keep_until timestamptz NOT NULL,
      PRIMARY KEY (id, queue)
    );
    CREATE INDEX IF NOT EXISTS inboxd_acked_keep_until ON ${schema}.inboxd_acked (keep_until);
  `,
};
