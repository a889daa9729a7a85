import { status } from '@grpc/grpc-js';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { type ErrorKind, fromDatabase, InboxdError, invalid } from '../../server/errors.js';
import { STATUS_OF, toServiceError } from '../../server/transport/error-status.js';

const log = pino({ level: 'silent' });
const pgError = (fields: Record<string, string>) => Object.assign(new Error(fields.message ?? 'pg error'), fields);

describe('errors: kinds in the core, statuses at the edge', () => {
  it('maps every kind to its gRPC status, with the message', () => {
    const want: Record<ErrorKind, status> = {
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
    expect(STATUS_OF).toEqual(want);
    for (const kind of Object.keys(want) as ErrorKind[]) {
      expect(toServiceError(new InboxdError(kind, `a ${kind}`), log)).toMatchObject({ code: want[kind], details: `a ${kind}` });
    }
  });

  it('translates what the database throws, once', () => {
    const fk = pgError({ code: '23503', table: 'job_common', detail: 'Key (name)=(orders) is not present in table "queue".' });
    expect(fromDatabase(fk)).toMatchObject({
      kind: 'not_found',
      message: 'queue orders not found: it was deleted while this call wrote to it, and nothing was stored',
    });
    expect(fromDatabase(pgError({ code: 'PGBOSS_QUEUE_NOT_FOUND', message: 'Queue x not found' }))).toMatchObject({
      kind: 'not_found',
      message: 'Queue x not found',
    });
    expect(fromDatabase(pgError({ code: 'ECONNREFUSED' }))?.kind).toBe('unavailable');
    expect(fromDatabase(new Error('Connection terminated unexpectedly'))?.kind).toBe('unavailable');
    expect(fromDatabase(pgError({ code: '40P01' }))?.kind).toBe('aborted');
    expect(fromDatabase(pgError({ code: '40001' }))?.kind).toBe('aborted');
    // Another table's foreign key is not a missing queue.
    expect(fromDatabase(pgError({ code: '23503', table: 'inboxd_grants' }))).toBeUndefined();
    const mine = invalid('x');
    expect(fromDatabase(mine)).toBe(mine);
  });

  it('anything else is INTERNAL with a generic message, and long messages are clipped', () => {
    expect(toServiceError(new TypeError('secret detail'), log)).toMatchObject({ code: status.INTERNAL, details: 'internal error' });
    expect(toServiceError(pgError({ code: '23503', table: 'job_x', detail: 'Key (name)=(q) is not present' }), log)).toMatchObject({ code: status.NOT_FOUND });
    expect(toServiceError(pgError({ code: 'ECONNRESET' }), log)).toMatchObject({ code: status.UNAVAILABLE, details: 'database unavailable, retry later' });
    expect(toServiceError(pgError({ code: '40P01' }), log)).toMatchObject({ code: status.ABORTED });
    const long = toServiceError(invalid('x'.repeat(70_000)), log).details!;
    expect(long.length).toBeLessThanOrEqual(500);
    expect(long).toContain('(70000 characters)');
  });
});
