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

/** pg-boss's error for a queue that does not exist (deleted meanwhile, or never created). */
export function isQueueNotFound(err: unknown): boolean {
  return (err as { code?: string } | undefined)?.code === 'PGBOSS_QUEUE_NOT_FOUND';
}
