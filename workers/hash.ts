import { createHash } from 'node:crypto';

/** sha256 of each payload, lower-case hex. Pure: runs on the main thread or a Piscina worker. */
export default function hashBatch(payloads: Uint8Array[]): string[] {
  return payloads.map(p => createHash('sha256').update(p).digest('hex'));
}
