import { type ServiceError, status } from '@grpc/grpc-js';
import type { QueueStats } from '@inboxd/proto/v1/queues';
import { InboxdError } from '@inboxd/sdk';
import { expect } from 'vitest';

/** Awaits a call that must fail; returns its error. */
export async function failure(p: Promise<unknown>): Promise<ServiceError> {
  try {
    await p;
  } catch (err) {
    return err as ServiceError;
  }
  throw new Error('expected the call to fail, it succeeded');
}

/** Awaits a call that must fail (SDK or raw grpc-js); returns its error as an InboxdError. */
export async function rejection(p: Promise<unknown>): Promise<InboxdError> {
  try {
    await p;
  } catch (err) {
    return InboxdError.from(err);
  }
  throw new Error('expected a rejection, the call succeeded');
}

/** Awaits a call that must fail with `code` and a message containing or matching `details`. */
export async function expectStatus(p: Promise<unknown>, code: status, details: string | RegExp): Promise<ServiceError> {
  const err = await failure(p);
  expect({ code: status[err.code], details: err.details }).toMatchObject({ code: status[code] });
  if (typeof details === 'string') expect(err.details).toContain(details);
  else expect(err.details).toMatch(details);
  return err;
}

/** The counts of a queue's stats as plain numbers, for toMatchObject. */
export function counts(s: QueueStats) {
  return {
    depth: Number(s.depth),
    ready: Number(s.ready),
    delayed: Number(s.delayed),
    leased: Number(s.leased),
    deadLettered: Number(s.deadLettered),
    acked: Number(s.acked),
  };
}

export const ZERO = { depth: 0, ready: 0, delayed: 0, leased: 0, deadLettered: 0, acked: 0 };
