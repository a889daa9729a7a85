import type { BenchPostgres } from './postgres.js';

export interface Ctx {
  pg: BenchPostgres;
  /** Smaller counts and shorter runs (a CI-sized pass). */
  quick: boolean;
  /** Multiplies message counts. */
  scale: number;
  progress(line: string): void;
}

/** `full` messages, or `quick` in quick mode, times the scale. */
export function count(ctx: Ctx, full: number, quick: number): number {
  return Math.max(1, Math.round((ctx.quick ? quick : full) * ctx.scale));
}

export const PAYLOAD_BYTES = 256;

/** A 256-byte payload carrying its send time (performance.now(), ms) in the first 8 bytes. */
export function stampedPayload(): Buffer {
  const b = Buffer.alloc(PAYLOAD_BYTES, 120);
  b.writeDoubleLE(performance.now(), 0);
  return b;
}

export function stampOf(b: Uint8Array): number {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).readDoubleLE(0);
}
