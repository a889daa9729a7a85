import { Metadata, type ServiceError, status } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { type ErrorKind, fromDatabase } from '../errors.js';

/** Each kind of error as the gRPC status a client sees: the only place the two meet. */
export const STATUS_OF: Record<ErrorKind, status> = {
  invalid: status.INVALID_ARGUMENT,
  not_found: status.NOT_FOUND,
  already_exists: status.ALREADY_EXISTS,
  failed_precondition: status.FAILED_PRECONDITION,
  resource_exhausted: status.RESOURCE_EXHAUSTED,
  unavailable: status.UNAVAILABLE,
  aborted: status.ABORTED,
  unauthenticated: status.UNAUTHENTICATED,
  permission_denied: status.PERMISSION_DENIED,
};

/**
 * Longest status message sent. Messages quote what the caller sent (a name, a field path), and a
 * status travels in an HTTP/2 header, percent-encoded: a 70,000-character quote made a header the
 * client refused, which broke its whole connection, every other call on it included.
 */
const MAX_DETAILS = 500;

function clip(details: string): string {
  return details.length <= MAX_DETAILS ? details : `${details.slice(0, MAX_DETAILS - 20)}… (${details.length} characters)`;
}

/** The one place a thrown thing becomes a gRPC status. */
export function toServiceError(err: unknown, log: Logger): Partial<ServiceError> {
  const known = fromDatabase(err);
  if (known) {
    if (known !== err && known.kind === 'aborted') log.warn({ err }, 'transaction conflict');
    // The database's owner logs an outage once (queue/database.ts); one line per failed call would flood.
    if (known !== err && known.kind === 'unavailable') log.debug({ err }, 'database unavailable');
    return { code: STATUS_OF[known.kind], details: clip(known.message), metadata: new Metadata() };
  }
  log.error({ err }, 'unexpected error');
  return { code: status.INTERNAL, details: 'internal error', metadata: new Metadata() };
}
