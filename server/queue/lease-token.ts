import { invalid } from '../errors.js';
import { QUEUE_NAME } from './queue-name.js';

/**
 * A lease token names one delivery attempt: the queue, the message id and the attempt's
 * retry_count in pg-boss. pg-boss fences every settle on (id, retry_count), so a token from an
 * attempt that has since expired and been redelivered settles nothing.
 *
 * Encoded as base64url of "queue\nid\nretryCount"; opaque to clients.
 */
export interface LeaseRef {
  queue: string;
  id: string;
  retryCount: number;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function encodeLeaseToken(ref: LeaseRef): string {
  return Buffer.from(`${ref.queue}\n${ref.id}\n${ref.retryCount}`, 'utf8').toString('base64url');
}

/** Parses a token, or returns undefined when it is not one this server issued. */
export function tryDecodeLeaseToken(token: string): LeaseRef | undefined {
  if (typeof token !== 'string' || token.length === 0 || token.length > 400) return undefined;
  if (!/^[A-Za-z0-9_-]+$/.test(token)) return undefined;
  const parts = Buffer.from(token, 'base64url').toString('utf8').split('\n');
  if (parts.length !== 3) return undefined;
  const [queue, id, count] = parts;
  if (!QUEUE_NAME.test(queue) || !UUID.test(id) || !/^\d{1,9}$/.test(count)) return undefined;
  return { queue, id, retryCount: Number(count) };
}

export function decodeLeaseToken(token: string): LeaseRef {
  const ref = tryDecodeLeaseToken(token);
  if (!ref) throw invalid(`malformed lease token ${JSON.stringify(String(token).slice(0, 60))}: pass a lease_token exactly as a delivery returned it`);
  return ref;
}
