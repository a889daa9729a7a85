import { status, type ServiceError, Metadata } from '@grpc/grpc-js';
import { InboxdError, isQueueNotFound } from '../errors.js';
import type { Logger } from 'pino';

// Errors from node-postgres that mean "the database is not there right now": the client should
// retry, so they become UNAVAILABLE rather than INTERNAL.
const CONNECTION_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', '57P01', '57P02', '57P03', '53300']);
// Deadlock and serialization failure: nothing was done, and the same call may well succeed again.
const CONFLICT_CODES = new Set(['40P01', '40001']);
const CONNECTION_TEXT = /Connection terminated|connection.*(closed|ended)|Client has encountered a connection error|timeout exceeded when trying to connect|pool (is )?(ended|closed)/i;

/** The one place a thrown thing becomes a gRPC status. */
export function toServiceError(err: unknown, log: Logger): Partial<ServiceError> {
  if (err instanceof InboxdError) return { code: err.code, details: err.message, metadata: new Metadata() };
  const e = err as { code?: string; message?: string } | undefined;
  if (isQueueNotFound(err)) {
    return { code: status.NOT_FOUND, details: e?.message ?? 'queue not found', metadata: new Metadata() };
  }
  if (e?.code && CONFLICT_CODES.has(e.code)) {
    log.warn({ err }, 'transaction conflict');
    return { code: status.ABORTED, details: 'transaction conflict with a concurrent call, retry', metadata: new Metadata() };
  }
  if ((e?.code && CONNECTION_CODES.has(e.code)) || (e?.message && CONNECTION_TEXT.test(e.message))) {
    log.warn({ err }, 'database unavailable');
    return { code: status.UNAVAILABLE, details: 'database unavailable, retry later', metadata: new Metadata() };
  }
  log.error({ err }, 'unexpected error');
  return { code: status.INTERNAL, details: 'internal error', metadata: new Metadata() };
}
