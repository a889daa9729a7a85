import { createHash } from 'node:crypto';

/** sha256 of each payload, lower-case hex. Pure: runs on the main thread or a Piscina worker. */
export default function hashBatch(payloads: Uint8Array[]): string[] {
  return payloads.map(p => createHash('sha256').update(p).digest('hex'));
}

/** The codec work of a Send batch a worker can take: each payload's sha256 and its base64 (stored form). */
export function encodeBatch(payloads: Uint8Array[]): { hashes: string[]; base64: string[] } {
  return {
    hashes: hashBatch(payloads),
    base64: payloads.map(p => Buffer.from(p.buffer, p.byteOffset, p.byteLength).toString('base64')),
  };
}
