import { status } from '@grpc/grpc-js';
import { AuthDefinition } from '@inboxd/proto/v1/auth';
import { InboxDefinition } from '@inboxd/proto/v1/inbox';
import { QueuesDefinition } from '@inboxd/proto/v1/queues';
import type { InboxdError } from './errors.js';
import { RETRYABLE } from './retry.js';

/** A method's `idempotency_level` in the proto (google/protobuf/descriptor.proto's MethodOptions). */
export type Idempotency = 'NO_SIDE_EFFECTS' | 'IDEMPOTENT' | 'IDEMPOTENCY_UNKNOWN';

// From the code generated from proto/: the contract says which calls a retry may repeat.
const LEVELS = new Map<string, Idempotency>();
for (const service of [InboxDefinition, QueuesDefinition, AuthDefinition]) {
  for (const m of Object.values(service.methods) as { name: string; options: { idempotencyLevel?: Idempotency } }[]) {
    LEVELS.set(`/${service.fullName}/${m.name}`, m.options.idempotencyLevel ?? 'IDEMPOTENCY_UNKNOWN');
  }
}

/** The idempotency level the proto declares for a method path (`/inboxd.v1.Inbox/Ack`). */
export function idempotencyOf(path: string | undefined): Idempotency {
  return (path && LEVELS.get(path)) || 'IDEMPOTENCY_UNKNOWN';
}

// grpc-js's own answers for a call that never left the client: no connection to the server, the
// name did not resolve, or the deadline passed while the call still waited for a connection.
const NEVER_SENT = /^(\w+: )?No connection established|^Name resolution failed|Waiting for LB pick|waiting for name resolution/;

/** The header the server adds to a refusal that happened before the call did anything (draining). */
export const NOT_APPLIED_HEADER = 'inboxd-not-applied';

/**
 * Whether the failed call certainly did nothing: it never reached a server, the server refused it
 * before starting it (shutting down), or its transaction rolled back (ABORTED: a conflict).
 */
export function notApplied(err: InboxdError): boolean {
  if (err.code === status.ABORTED) return true;
  if (err.code !== status.UNAVAILABLE && err.code !== status.DEADLINE_EXCEEDED) return false;
  return err.metadata.get(NOT_APPLIED_HEADER).length > 0 || NEVER_SENT.test(err.details);
}

/**
 * Whether a call of this level may be tried again after `err`. Idempotent calls: on any retryable
 * status (UNAVAILABLE, DEADLINE_EXCEEDED, ABORTED), since a repeat of one that landed does no
 * harm. The others (Lease, CreateKey, PurgeQueue, Redrive; Send and Publish without ids): only
 * when the call cannot have landed — a lost answer to a Lease would leave its deliveries leased to
 * nobody until their visibility timeout, a repeated CreateKey would mint a second key.
 */
export function mayRetry(err: InboxdError, level: Idempotency): boolean {
  if (!RETRYABLE.has(err.code)) return false;
  return level !== 'IDEMPOTENCY_UNKNOWN' || notApplied(err);
}
