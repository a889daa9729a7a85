import { status, type ServiceError, Metadata } from '@grpc/grpc-js';
import { InboxdError, isConnectionError, isQueueNotFound, queueNotFoundText } from '../errors.js';
import type { Logger } from 'pino';

// Deadlock and serialization failure: nothing was done, and the same call may well succeed again.
const CONFLICT_CODES = new Set(['40P01', '40001']);

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
  if (err instanceof InboxdError) return { code: err.code, details: clip(err.message), metadata: new Metadata() };
  const e = err as { code?: string; message?: string } | undefined;
  if (isQueueNotFound(err)) {
    return { code: status.NOT_FOUND, details: clip(queueNotFoundText(err)), metadata: new Metadata() };
  }
  if (e?.code && CONFLICT_CODES.has(e.code)) {
    log.warn({ err }, 'transaction conflict');
    return { code: status.ABORTED, details: 'transaction conflict with a concurrent call, retry', metadata: new Metadata() };
  }
  if (isConnectionError(err)) {
    // The database's owner logs an outage once (queue/database.ts); one line per failed call would flood.
    log.debug({ err }, 'database unavailable');
    return { code: status.UNAVAILABLE, details: 'database unavailable, retry later', metadata: new Metadata() };
  }
  log.error({ err }, 'unexpected error');
  return { code: status.INTERNAL, details: 'internal error', metadata: new Metadata() };
}
