import { queueExtras } from './001-queue-extras.js';
import { auth } from './002-auth.js';
import { lease } from './003-lease.js';
import { deleteOnAck } from './004-delete-on-ack.js';
import { insert } from './005-insert.js';
import { insertLeased } from './006-insert-leased.js';
import { ackRecords } from './007-ack-records.js';

/**
 * One step of inboxd's own tables (those beside pg-boss's in its schema). Applied once per
 * database, in version order, each in a transaction of its own, and recorded in
 * inboxd_migrations. A released migration is never edited: a change is a new one, numbered next.
 */
export interface Migration {
  version: number;
  /** Recorded beside the version, for whoever reads inboxd_migrations. */
  name: string;
  /** Its DDL for the schema named (no parameters: several statements in one string). */
  up(schema: string): string;
}

/** Every migration this build knows, oldest first; versions 1, 2, 3… without gaps. */
export const MIGRATIONS: readonly Migration[] = [queueExtras, auth, lease, deleteOnAck, insert, insertLeased, ackRecords];
