import type { Duration } from '@inboxd/proto/google/protobuf/duration';
import type { Message } from '@inboxd/proto/v1/message';
import { newMessageId } from '@inboxd/sdk';
import { invalid } from '../errors.js';
import { QUEUE_NAME } from '../queue/queue-name.js';

/**
 * Validation at the gRPC edge: every request field that reaches the queue core has been checked
 * here, and every failure is an INVALID_ARGUMENT whose message names the field and the rule.
 */

export const LIMITS = {
  batch: 1000,
  tokens: 1000,
  headers: 64,
  headerBytes: 8192,
  textField: 1024,
  priority: 1_000_000,
  maxLeaseSec: 12 * 3600,
  maxWaitMs: 60_000,
  maxNackDelayMs: 7 * 24 * 3600 * 1000,
  maxOutstandingMessages: 10_000,
  dedupKey: 200,
  errorText: 1000,
};

/** Earliest and latest times accepted for deliver_at and expires_at (Postgres and JavaScript both hold them). */
const MIN_TIME = Date.UTC(1970, 0, 1);
const MAX_TIME = Date.UTC(9999, 11, 31, 23, 59, 59);

/**
 * A text field that is stored: U+0000 cannot be (Postgres refuses it in text and JSON), so it is
 * refused here, naming the field, before it can reach a batch shared with other callers.
 */
export function text(value: string, field: string): string {
  const nul = value.indexOf('\u0000');
  if (nul >= 0) throw invalid(`${field} contains U+0000 (a NUL character) at position ${nul}: text fields cannot hold it`);
  return value;
}

/** A client-chosen request id (Lease's request_id): empty, or 1..128 visible ASCII characters. */
export function requestId(value: string, field: string): string | undefined {
  if (value === '') return undefined;
  if (value.length > 128 || !/^[\x21-\x7e]+$/.test(value)) throw invalid(`${field} must be 1 to 128 visible ASCII characters (a UUID, say)`);
  return value;
}

/** A timestamp field: a real time between 1970 and 9999. */
function time(d: Date, field: string): number {
  const t = d.getTime();
  if (Number.isNaN(t)) throw invalid(`${field} is not a valid time`);
  if (t < MIN_TIME || t > MAX_TIME) throw invalid(`${field} ${d.toISOString?.() ?? t} is out of range: give a time between 1970-01-01 and 9999-12-31`);
  return t;
}
const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

export function queueName(name: string, field = 'queue'): string {
  if (!name) throw invalid(`${field} is required`);
  if (!QUEUE_NAME.test(name)) {
    throw invalid(
      `${field} ${JSON.stringify(name.slice(0, 120))} is not a valid queue name: use 1-100 letters, digits, '_', '-' or '.', starting with a letter or digit`,
    );
  }
  return name;
}

/** A Duration as milliseconds; `fallback` when unset. */
export function durationMs(d: Duration | undefined, field: string, min: number, max: number, fallback: number): number {
  if (!d) return fallback;
  const seconds = Number(d.seconds);
  if (!Number.isFinite(seconds) || seconds < 0 || d.nanos < 0) throw invalid(`${field} must not be negative`);
  if (!Number.isInteger(d.nanos) || d.nanos > 999_999_999)
    throw invalid(`${field}.nanos must be between 0 and 999999999, got ${d.nanos}: carry whole seconds in seconds`);
  const ms = seconds * 1000 + Math.ceil(d.nanos / 1e6);
  if (ms < min || ms > max) throw invalid(`${field} must be between ${fmt(min)} and ${fmt(max)}, got ${fmt(ms)}`);
  return ms;
}

/** A lease length in whole seconds (rounded up), 1s..12h; `fallbackSec` when unset. */
export function leaseSeconds(d: Duration | undefined, field: string, fallbackSec: number): number {
  const ms = durationMs(d, field, 0, Infinity, fallbackSec * 1000);
  if (ms < 1 || ms > LIMITS.maxLeaseSec * 1000)
    throw invalid(`${field} must be between 1s and ${fmt(LIMITS.maxLeaseSec * 1000)} (rounded up to whole seconds), got ${fmt(ms)}`);
  return Math.ceil(ms / 1000);
}

function fmt(ms: number): string {
  if (ms % 3_600_000 === 0 && ms > 0) return `${ms / 3_600_000}h`;
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

export function count(n: number, field: string, min: number, max: number, fallback: number): number {
  if (n === 0) return fallback;
  if (!Number.isInteger(n) || n < min || n > max) throw invalid(`${field} must be between ${min} and ${max}, got ${n}`);
  return n;
}

export interface SendLimits {
  maxMessageBytes: number;
}

/** Checks a Send batch; assigns ids to messages that carry none. */
export function sendBatch(messages: Message[], limits: SendLimits): Message[] {
  if (messages.length === 0) throw invalid('messages is empty: send at least one message');
  if (messages.length > LIMITS.batch) throw invalid(`too many messages in one Send: ${messages.length}, at most ${LIMITS.batch}`);
  return messages.map((m, i) => message(m, i, limits));
}

function message(m: Message, i: number, limits: SendLimits): Message {
  const at = `messages[${i}]`;
  queueName(m.queue, `${at}.queue`);
  if (m.id && !UUID.test(m.id)) throw invalid(`${at}.id ${JSON.stringify(m.id.slice(0, 60))} must be a UUID (or empty for the server to assign one)`);
  if (m.payload.length > limits.maxMessageBytes) {
    throw invalid(`${at}.payload is ${m.payload.length} bytes, over the server's max message size of ${limits.maxMessageBytes} bytes`);
  }
  const headers = Object.entries(m.headers ?? {});
  if (headers.length > LIMITS.headers) throw invalid(`${at}.headers has ${headers.length} entries, at most ${LIMITS.headers}`);
  let headerBytes = 0;
  for (const [k, v] of headers) {
    if (!k) throw invalid(`${at}.headers has an empty key`);
    text(k, `${at}.headers key ${JSON.stringify(k.slice(0, 40))}`);
    text(v, `${at}.headers[${JSON.stringify(k.slice(0, 40))}]`);
    headerBytes += Buffer.byteLength(k) + Buffer.byteLength(v);
  }
  if (headerBytes > LIMITS.headerBytes) throw invalid(`${at}.headers total ${headerBytes} bytes, at most ${LIMITS.headerBytes}`);
  for (const [f, name] of TEXT_FIELDS) {
    if (m[f].length > LIMITS.textField) throw invalid(`${at}.${name} is longer than ${LIMITS.textField} characters`);
    text(m[f], `${at}.${name}`);
  }
  if (m.replyTo) queueName(m.replyTo, `${at}.reply_to`);
  if (!Number.isInteger(m.priority) || Math.abs(m.priority) > LIMITS.priority) {
    throw invalid(`${at}.priority must be between -${LIMITS.priority} and ${LIMITS.priority}`);
  }
  if (m.deliverAt) time(m.deliverAt, `${at}.deliver_at`);
  if (m.expiresAt) {
    const ex = time(m.expiresAt, `${at}.expires_at`);
    if (ex <= Date.now()) throw invalid(`${at}.expires_at ${m.expiresAt.toISOString()} has passed: the message would never be delivered`);
    if (m.deliverAt && ex <= m.deliverAt.getTime()) {
      throw invalid(`${at}.expires_at ${m.expiresAt.toISOString()} is not after deliver_at ${m.deliverAt.toISOString()}: the message would never be delivered`);
    }
  }
  if (m.dedupKey.length > LIMITS.dedupKey) throw invalid(`${at}.dedup_key is longer than ${LIMITS.dedupKey} characters`);
  text(m.dedupKey, `${at}.dedup_key`);
  if (m.inReplyToLeaseToken.length > 1000)
    throw invalid(`${at}.in_reply_to_lease_token is longer than a lease token: pass the request's lease_token as delivered`);
  // The decoded request's own message, given its id in place: no copy of every message sent.
  m.id = m.id ? m.id.toLowerCase() : newMessageId();
  return m;
}

/** A message's short text fields and their names on the wire (checked for every message sent). */
const TEXT_FIELDS = [
  ['contentType', 'content_type'],
  ['subject', 'subject'],
  ['correlationId', 'correlation_id'],
] as const;

/** Message ids (UUIDs), lower-cased; `field` names them in errors. */
export function messageIds(ids: string[], field: string, max = LIMITS.batch): string[] {
  if (ids.length > max) throw invalid(`too many ${field}: ${ids.length}, at most ${max}`);
  return ids.map((id, i) => {
    if (!UUID.test(id)) throw invalid(`${field}[${i}] ${JSON.stringify(id.slice(0, 60))} is not a message id (a UUID)`);
    return id.toLowerCase();
  });
}

/** A nack's dead_letter and error fields (`prefix` 'nack_' on a Subscribe request). */
export function nackOptions(deadLetter: boolean, error: string, delayMs: number | undefined, prefix: string): { deadLetter: boolean; error?: string } {
  if (deadLetter && delayMs !== undefined) throw invalid(`${prefix}dead_letter sends messages straight to the dead-letter queue: leave ${prefix}delay unset`);
  if (error.length > LIMITS.errorText) throw invalid(`${prefix}error is longer than ${LIMITS.errorText} characters`);
  text(error, `${prefix}error`);
  return { deadLetter, error: error || undefined };
}

/** Checks a unary settle call's tokens: every one must be well formed, else nothing is done. */
/**
 * A Subscribe request's settle lists: each at most maxOutstandingMessages long, as many as a stream
 * can hold. Each entry gets a result (a failure carrying a message): a 4 MiB request of tags would
 * otherwise be ~800,000 results, tens of MB to build and send for one request.
 */
export function streamSettles(lists: Record<string, readonly unknown[]>): void {
  for (const [field, list] of Object.entries(lists)) {
    if (list.length > LIMITS.maxOutstandingMessages)
      throw invalid(`${field} has ${list.length} entries: at most ${LIMITS.maxOutstandingMessages} in one request (no stream holds more deliveries)`);
  }
}

export function leaseTokens(tokens: string[], field = 'lease_tokens'): string[] {
  if (tokens.length === 0) throw invalid(`${field} is empty: pass at least one lease token`);
  if (tokens.length > LIMITS.tokens) throw invalid(`too many ${field}: ${tokens.length}, at most ${LIMITS.tokens}`);
  // Each is verified (signature, principal) where it is used: MessageStore.verifyTokens.
  return tokens;
}
