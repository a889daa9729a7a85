import { status } from '@grpc/grpc-js';

/**
 * The one error type of inboxd. Anything thrown with a status code reaches the client with that
 * code and message; anything else becomes INTERNAL with a generic message (see toServiceError).
 */
export class InboxdError extends Error {
  readonly code: status;
  constructor(code: status, message: string) {
    super(message);
    this.name = 'InboxdError';
    this.code = code;
  }
}

export const invalid = (message: string) => new InboxdError(status.INVALID_ARGUMENT, message);
export const notFound = (message: string) => new InboxdError(status.NOT_FOUND, message);
export const failedPrecondition = (message: string) => new InboxdError(status.FAILED_PRECONDITION, message);
export const unavailable = (message: string) => new InboxdError(status.UNAVAILABLE, message);
export const alreadyExists = (message: string) => new InboxdError(status.ALREADY_EXISTS, message);
export const unauthenticated = (message: string) => new InboxdError(status.UNAUTHENTICATED, message);
export const permissionDenied = (message: string) => new InboxdError(status.PERMISSION_DENIED, message);

/**
 * A queue that does not exist (deleted meanwhile, or never created): pg-boss's error, or a job
 * insert refused by the job table's foreign key to its queue (the queue deleted between the check
 * and the commit, as a DeleteQueue racing a Send does; it answered INTERNAL, found by npm run fuzz).
 */
export function isQueueNotFound(err: unknown): boolean {
  const e = err as { code?: string; table?: string } | undefined;
  return e?.code === 'PGBOSS_QUEUE_NOT_FOUND' || (e?.code === '23503' && typeof e.table === 'string' && e.table.startsWith('job'));
}

/** The words for a queue-not-found error (the queue's name, when the database said it). */
export function queueNotFoundText(err: unknown): string {
  const e = err as { code?: string; message?: string; detail?: string } | undefined;
  if (e?.code !== '23503') return e?.message ?? 'queue not found';
  const name = /Key \(name\)=\((.*)\) is not present/.exec(e.detail ?? '')?.[1];
  return `queue ${name ?? ''} not found: it was deleted while this call wrote to it, and nothing was stored`.replace('queue  not', 'queue not');
}

// Errors from node-postgres and Postgres that mean "the database is not there right now" (refused,
// reset, timed out, shut down, terminated, too many connections, a statement cancelled by its
// timeout): the call may succeed later, so it answers UNAVAILABLE, not INTERNAL.
const CONNECTION_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH', '57P01', '57P02', '57P03', '53300', '57014', '08000', '08003', '08006', '08001', '08004']);
const CONNECTION_TEXT =
  /Connection terminated|connection.*(closed|ended)|Client has encountered a connection error|timeout exceeded when trying to connect|pool (is )?(ended|closed)|Query read timeout|Client was closed|not queryable|connection dropped/i;

/** Whether `err` says the database could not be reached or did not answer, rather than that a statement was wrong. */
export function isConnectionError(err: unknown): boolean {
  const e = err as { code?: string; message?: string } | undefined;
  return Boolean((e?.code && CONNECTION_CODES.has(e.code)) || (e?.message && CONNECTION_TEXT.test(e.message)));
}
