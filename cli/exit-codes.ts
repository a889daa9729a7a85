import { Code, InboxdError } from '@inboxd/sdk';

/**
 * The CLI's exit codes, the one place they are decided:
 *
 *   0  done
 *   1  the server refused or failed (FAILED_PRECONDITION, ALREADY_EXISTS, INTERNAL, …), or the
 *      server does not support the command yet
 *   2  usage: an unknown command or flag, a bad value (also INVALID_ARGUMENT from the server)
 *   3  unavailable: the server cannot be reached, is not serving, or timed out
 *   4  not found: the queue (or message, service, principal, key) does not exist
 *   5  not allowed: no valid credential (UNAUTHENTICATED: pass --api-key / INBOXD_API_KEY), or
 *      the credential lacks a grant (PERMISSION_DENIED: the server's message names the verb and queue)
 */
export const EXIT = { ok: 0, failed: 1, usage: 2, unavailable: 3, notFound: 4, notAllowed: 5 } as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** A failure the CLI explains itself: its message is printed as is. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCode,
    readonly code?: string,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

export const usage = (message: string) => new CliError(message, EXIT.usage, 'USAGE');

/**
 * The exit code and the words for any failure of a command. `withApiKey`: the command was given
 * an API key (so an UNAUTHENTICATED is about that key, not a missing one).
 */
export function explain(err: unknown, address: string, withApiKey = false): { exitCode: ExitCode; code: string; message: string; requestId?: string } {
  if (err instanceof CliError) return { exitCode: err.exitCode, code: err.code ?? 'ERROR', message: err.message };
  if (err instanceof InboxdError) {
    const code = Code[err.code] ?? String(err.code);
    const requestId = err.metadata.get('x-request-id')[0]?.toString();
    switch (err.code) {
      case Code.NOT_FOUND:
        return { exitCode: EXIT.notFound, code, message: err.details, requestId };
      case Code.INVALID_ARGUMENT:
        return { exitCode: EXIT.usage, code, message: err.details, requestId };
      case Code.UNAVAILABLE:
      case Code.DEADLINE_EXCEEDED:
        // No request id: the server never answered (or answered that it cannot serve now).
        return requestId
          ? { exitCode: EXIT.unavailable, code, message: `server unavailable: ${err.details}`, requestId }
          : {
              exitCode: EXIT.unavailable,
              code,
              message: `cannot reach inboxd at ${address} (${err.details.replace(/[.\s]*Resolution note:\s*$/, '')}); is it running? Start one with \`inboxd serve\`, or pass --address / INBOXD_ADDRESS`,
            };
      case Code.UNAUTHENTICATED:
        return {
          exitCode: EXIT.notAllowed,
          code,
          message: withApiKey
            ? `not authenticated: ${err.details || 'the API key was refused'}; the API key given (--api-key / INBOXD_API_KEY) may be revoked, expired or mistyped`
            : `not authenticated: ${err.details || 'no credential'}; pass an API key with --api-key or INBOXD_API_KEY`,
          requestId,
        };
      case Code.PERMISSION_DENIED:
        // The server's words name the verb and the queue.
        return { exitCode: EXIT.notAllowed, code, message: `permission denied: ${err.details || err.message}`, requestId };
      case Code.UNIMPLEMENTED:
        return { exitCode: EXIT.failed, code, message: `not supported by this server yet (${err.details})`, requestId };
      default:
        return { exitCode: EXIT.failed, code, message: err.details || err.message, requestId };
    }
  }
  return { exitCode: EXIT.failed, code: 'ERROR', message: (err as Error)?.message ?? String(err) };
}
