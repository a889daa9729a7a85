/**
 * What went wrong, in the server's own words. The core, auth and the transport throw these; only
 * the transport edge (transport/error-status.ts) turns a kind into a gRPC status code.
 */
export type ErrorKind =
  | 'invalid'
  | 'not_found'
  | 'already_exists'
  | 'failed_precondition'
  | 'resource_exhausted'
  | 'unavailable'
  | 'aborted'
  | 'unauthenticated'
  | 'permission_denied';

/**
 * The one error type of inboxd. Anything thrown as an InboxdError reaches the client with its
 * kind's status and its message; anything else becomes INTERNAL with a generic message (see
 * toServiceError), after the one translation of database errors below.
 */
export class InboxdError extends Error {
  readonly kind: ErrorKind;
  constructor(kind: ErrorKind, message: string) {
    super(message);
    this.name = 'InboxdError';
    this.kind = kind;
  }
}

export const invalid = (message: string) => new InboxdError('invalid', message);
export const notFound = (message: string) => new InboxdError('not_found', message);
export const alreadyExists = (message: string) => new InboxdError('already_exists', message);
export const failedPrecondition = (message: string) => new InboxdError('failed_precondition', message);
export const exhausted = (message: string) => new InboxdError('resource_exhausted', message);
export const unavailable = (message: string) => new InboxdError('unavailable', message);
export const unauthenticated = (message: string) => new InboxdError('unauthenticated', message);
export const permissionDenied = (message: string) => new InboxdError('permission_denied', message);

/** `err` is an InboxdError of that kind. */
export const isKind = (err: unknown, kind: ErrorKind): err is InboxdError => err instanceof InboxdError && err.kind === kind;

/**
 * A queue that does not exist (deleted meanwhile, or never created): pg-boss's error, or a job
 * insert refused by the job table's foreign key to its queue (the queue deleted between the check
 * and the commit, as a DeleteQueue racing a Send does; it answered INTERNAL, found by npm run fuzz).
 */
export function isQueueNotFound(err: unknown): boolean {
  const e = err as { code?: string; table?: string } | undefined;
  return isKind(err, 'not_found') || e?.code === 'PGBOSS_QUEUE_NOT_FOUND' || (e?.code === '23503' && typeof e.table === 'string' && e.table.startsWith('job'));
}

/** The words for a queue-not-found error (the queue's name, when the database said it). */
function queueNotFoundText(err: unknown): string {
  const e = err as { code?: string; message?: string; detail?: string } | undefined;
  if (e?.code !== '23503') return e?.message ?? 'queue not found';
  const name = /Key \(name\)=\((.*)\) is not present/.exec(e.detail ?? '')?.[1];
  return `queue ${name ?? ''} not found: it was deleted while this call wrote to it, and nothing was stored`.replace('queue  not', 'queue not');
}

// Errors from node-postgres and Postgres that mean "the database is not there right now" (refused,
// reset, timed out, shut down, terminated, too many connections, a statement cancelled by its
// timeout): the call may succeed later, so it answers UNAVAILABLE, not INTERNAL.
const CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EHOSTUNREACH',
  '57P01',
  '57P02',
  '57P03',
  '53300',
  '57014',
  '08000',
  '08003',
  '08006',
  '08001',
  '08004',
]);
const CONNECTION_TEXT =
  /Connection terminated|connection.*(closed|ended)|Client has encountered a connection error|timeout exceeded when trying to connect|pool (is )?(ended|closed)|Query read timeout|Client was closed|not queryable|connection dropped/i;

/** Whether `err` says the database could not be reached or did not answer, rather than that a statement was wrong. */
export function isConnectionError(err: unknown): boolean {
  const e = err as { code?: string; message?: string } | undefined;
  return isKind(err, 'unavailable') || Boolean((e?.code && CONNECTION_CODES.has(e.code)) || (e?.message && CONNECTION_TEXT.test(e.message)));
}

// Deadlock and serialization failure: nothing was done, and the same call may well succeed again.
const CONFLICT_CODES = new Set(['40P01', '40001']);

/**
 * The one translation of what the database (Postgres, node-postgres, pg-boss) threw into the
 * server's words: a queue that is not there, the database unreachable, a transaction conflict.
 * Anything else is not the caller's to act on: undefined (the edge answers INTERNAL and logs it).
 */
export function fromDatabase(err: unknown): InboxdError | undefined {
  if (err instanceof InboxdError) return err;
  if (isQueueNotFound(err)) return notFound(queueNotFoundText(err));
  const code = (err as { code?: string } | undefined)?.code;
  if (code && CONFLICT_CODES.has(code)) return new InboxdError('aborted', 'transaction conflict with a concurrent call, retry');
  if (isConnectionError(err)) return unavailable('database unavailable, retry later');
  return undefined;
}
