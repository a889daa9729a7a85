import type { Migration } from './index.js';

/**
 * A queue that keeps no acked history (acked_retention 0): an ack deletes the message instead of
 * marking it completed for pg-boss to delete later, which costs Postgres a fifth to a third less
 * per message and a third less WAL. pg-boss has no column for it (its deletion_seconds of 0 means
 * "never delete"), so it is one of inboxd's own queue settings.
 */
export const deleteOnAck: Migration = {
  version: 4,
  name: 'delete_on_ack',
  up: schema => `
    ALTER TABLE ${schema}.inboxd_queue ADD COLUMN IF NOT EXISTS delete_on_ack bool NOT NULL DEFAULT false;
  `,
};
