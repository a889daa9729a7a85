import type { Delivery, Message } from '@inboxd/proto/v1/message';
import type { LeaseRef } from './lease-token.js';

/** A message as stored in a pg-boss job's `data` column. Short keys: this is on every row. */
export interface StoredMessage {
  p: string; // payload, base64
  n: number; // payload bytes
  ct?: string;
  h?: Record<string, string>;
  snd?: string;
  sub?: string;
  cid?: string;
  rt?: string;
  hash: string;
  at: number; // enqueued, ms since epoch (server clock)
  pr?: number; // priority, when not 0 (pg-boss keeps it too, for ordering)
  da?: number; // deliver_at, ms since epoch, when set
  ex?: number; // expires_at, ms since epoch, when set
  dk?: string; // dedup_key, when set
}

/** A message accepted at the edge, ready to insert. */
export interface OutgoingMessage {
  id: string;
  queue: string;
  priority: number;
  deliverAt?: Date;
  data: StoredMessage;
}

/**
 * What a delivery needs travels in `data`, so leasing can fetch pg-boss's minimal columns: the
 * full column set costs a date parse per timestamp per row, the hottest thing in a lease profile.
 */
export function toStored(m: Message, hash: string, sender: string, enqueuedAt: number, expiresAt?: number): StoredMessage {
  const bytes = Buffer.from(m.payload.buffer, m.payload.byteOffset, m.payload.byteLength); // a view, not a copy
  const s: StoredMessage = { p: bytes.toString('base64'), n: m.payload.length, hash, at: enqueuedAt };
  if (expiresAt !== undefined) s.ex = expiresAt;
  if (m.dedupKey) s.dk = m.dedupKey;
  if (m.priority) s.pr = m.priority;
  if (m.deliverAt) s.da = m.deliverAt.getTime();
  if (m.contentType) s.ct = m.contentType;
  if (m.headers && Object.keys(m.headers).length > 0) s.h = m.headers;
  if (sender) s.snd = sender;
  if (m.subject) s.sub = m.subject;
  if (m.correlationId) s.cid = m.correlationId;
  if (m.replyTo) s.rt = m.replyTo;
  return s;
}

/** The job columns a delivery is built from (pg-boss fetch without metadata). */
export interface LeasedJob {
  id: string;
  name: string;
  data: StoredMessage;
  retryCount: number;
}

export function toMessage(job: Omit<LeasedJob, 'retryCount'>): Message {
  const d = job.data;
  return {
    id: job.id,
    queue: job.name,
    payload: Buffer.from(d.p, 'base64'),
    contentType: d.ct ?? '',
    headers: d.h ?? {},
    sender: d.snd ?? '',
    subject: d.sub ?? '',
    correlationId: d.cid ?? '',
    replyTo: d.rt ?? '',
    dedupKey: d.dk ?? '',
    expiresAt: d.ex !== undefined ? new Date(d.ex) : undefined,
    priority: d.pr ?? 0,
    deliverAt: d.da !== undefined ? new Date(d.da) : undefined,
    contentHash: d.hash,
    enqueuedAt: new Date(d.at),
    inReplyToLeaseToken: '',
  };
}

/**
 * A delivery as the store leases it: the attempt it names (`ref`), and neither token nor tag yet.
 * Whoever it goes to names it: a Lease call's response with a signed lease token, a Subscribe
 * stream with a token or with its own delivery tag. Encoding a response ignores `ref`.
 */
export interface LeasedDelivery extends Delivery {
  ref: LeaseRef;
}

export function toDelivery(job: LeasedJob, leaseExpiresAt: Date, ref: LeaseRef): LeasedDelivery {
  return {
    message: toMessage(job),
    leaseToken: '',
    leaseExpiresAt,
    attempt: job.retryCount + 1,
    deliveryTag: 0,
    ref,
  };
}
