import type { Delivery } from '@inboxd/proto/v1/message';

/**
 * The most bytes of deliveries one response carries (a SubscribeResponse or a LeaseResponse).
 * Clients refuse larger messages by default (grpc-js and grpcurl accept 4 MiB): 3 MiB leaves room
 * for framing. A delivery larger than the budget (a server allowing messages over 3 MiB) goes alone.
 */
export const RESPONSE_BUDGET_BYTES = 3 * 1024 * 1024;

/** Protobuf framing and the fields around a payload (ids, token, timestamps), generously. */
const DELIVERY_OVERHEAD = 512;

/** About how many bytes a delivery takes in a response: never less than it does. */
export function deliveryBytes(d: Delivery): number {
  const m = d.message;
  if (!m) return DELIVERY_OVERHEAD;
  let n = DELIVERY_OVERHEAD + m.payload.length + m.queue.length + m.contentType.length + m.subject.length + m.correlationId.length + m.replyTo.length;
  n += m.sender.length + m.dedupKey.length + m.contentHash.length + d.leaseToken.length;
  for (const [k, v] of Object.entries(m.headers)) n += Buffer.byteLength(k) + Buffer.byteLength(v) + 8;
  // Text fields counted in UTF-16 units above: up to 3 bytes each in UTF-8.
  return n + 2 * (m.subject.length + m.contentType.length + m.correlationId.length + m.dedupKey.length);
}

/** A run of items and the bytes they add up to. */
export interface Chunk<T> {
  items: T[];
  bytes: number;
}

/** Splits deliveries, in order, into runs of at most `budget` bytes; a delivery over the budget goes alone. */
export function chunkDeliveries(deliveries: Delivery[], budget = RESPONSE_BUDGET_BYTES): Chunk<Delivery>[] {
  return chunkBy(deliveries, deliveryBytes, budget);
}

/** Splits items, in order, into runs whose sizes add up to at most `budget`; an item over it goes alone. */
export function chunkBy<T>(items: T[], size: (item: T) => number, budget: number): Chunk<T>[] {
  const chunks: Chunk<T>[] = [];
  let chunk: Chunk<T> = { items: [], bytes: 0 };
  for (const item of items) {
    const b = size(item);
    if (chunk.items.length > 0 && chunk.bytes + b > budget) {
      chunks.push(chunk);
      chunk = { items: [], bytes: 0 };
    }
    chunk.items.push(item);
    chunk.bytes += b;
  }
  if (chunk.items.length > 0) chunks.push(chunk);
  return chunks;
}
