import { Metadata, type ServiceError, status } from '@grpc/grpc-js';

export { status as Code };

/**
 * The one error type of the SDK: every failed call rejects with it. `code` is the gRPC status
 * (compare with `Code.NOT_FOUND` etc.), `details` the server's message.
 */
export class InboxdError extends Error {
  readonly code: status;
  readonly details: string;
  readonly metadata: Metadata;
  constructor(code: status, details: string, metadata: Metadata = new Metadata(), options?: { cause?: unknown }) {
    super(`${status[code] ?? code}: ${details}`, options);
    this.name = 'InboxdError';
    this.code = code;
    this.details = details;
    this.metadata = metadata;
  }

  /** A grpc-js ServiceError (or anything thrown) as an InboxdError. */
  static from(err: unknown): InboxdError {
    if (err instanceof InboxdError) return err;
    const e = err as Partial<ServiceError> | undefined;
    if (e && typeof e.code === 'number') return new InboxdError(e.code, e.details ?? e.message ?? '', e.metadata ?? new Metadata(), { cause: err });
    return new InboxdError(status.UNKNOWN, (err as Error)?.message ?? String(err), new Metadata(), { cause: err });
  }
}

export function cancelled(reason = 'the caller aborted'): InboxdError {
  return new InboxdError(status.CANCELLED, reason);
}
