import type { Message, Delivery } from '../../sdk/gen/inboxd/v1/message.js';
import { encodeLeaseToken } from './lease-token.js';

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
}

/** A message accepted at the edge, ready to insert. */
export interface OutgoingMessage {
  id: string;
  queue: string;
  priority: number;
  deliverAt?: Date;
  data: StoredMessage;
}

export function toStored(m: Message, hash: string, sender: string): StoredMessage {
  const s: StoredMessage = { p: Buffer.from(m.payload).toString('base64'), n: m.payload.length, hash };
  if (m.contentType) s.ct = m.contentType;
  if (m.headers && Object.keys(m.headers).length > 0) s.h = m.headers;
  if (sender) s.snd = sender;
  if (m.subject) s.sub = m.subject;
  if (m.correlationId) s.cid = m.correlationId;
  if (m.replyTo) s.rt = m.replyTo;
  return s;
}

/** The job columns a delivery is built from (pg-boss fetch with includeMetadata). */
export interface LeasedJob {
  id: string;
  name: string;
  data: StoredMessage;
  retryCount: number;
  priority: number;
  createdOn: Date;
  startAfter: Date;
  startedOn: Date;
}

export function toMessage(job: Omit<LeasedJob, 'retryCount' | 'startedOn'>): Message {
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
    priority: job.priority,
    deliverAt: job.startAfter > job.createdOn ? job.startAfter : undefined,
    contentHash: d.hash,
    enqueuedAt: job.createdOn,
  };
}

export function toDelivery(job: LeasedJob, leaseExpiresAt: Date): Delivery {
  return {
    message: toMessage(job),
    leaseToken: encodeLeaseToken({ queue: job.name, id: job.id, retryCount: job.retryCount }),
    leaseExpiresAt,
    attempt: job.retryCount + 1,
  };
}
