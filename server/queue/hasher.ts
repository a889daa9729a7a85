import { Piscina } from 'piscina';
import hashBatch from '../../workers/hash.js';

/**
 * Content hashes for a batch of payloads. Small batches hash on the calling thread: handing them to
 * a worker costs more in copying and scheduling than the hashing itself. Batches of at least
 * `workerThresholdBytes` go to a Piscina pool, created on first use, so the event loop stays free
 * for other calls.
 */
export class Hasher {
  private pool?: Piscina;

  constructor(private readonly workerThresholdBytes: number) {}

  async hash(payloads: Uint8Array[]): Promise<string[]> {
    let total = 0;
    for (const p of payloads) total += p.length;
    if (total < this.workerThresholdBytes) return hashBatch(payloads);
    this.pool ??= new Piscina({ filename: workerFile('hash'), maxThreads: 2, idleTimeout: 30_000 });
    return this.pool.run(payloads);
  }

  async close(): Promise<void> {
    await this.pool?.destroy();
  }
}

/** A worker module beside this build: .js when compiled, .ts when run from source (tests). */
export function workerFile(name: string): string {
  const ext = import.meta.url.endsWith('.ts') ? 'ts' : 'js';
  return new URL(`../../workers/${name}.${ext}`, import.meta.url).href;
}
