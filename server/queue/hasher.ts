import { Piscina } from 'piscina';
import hashBatch from '../../workers/hash.js';

/**
 * Content hashes for a batch of payloads. `npm run bench:workers` shows sha256 on the main thread
 * (OpenSSL, ~1.5 GB/s here) beating a Piscina round trip at every size from 64 B to 16 MiB
 * batches: copying the payloads to the worker costs more than hashing them. So batches hash on the
 * calling thread, and only batches of at least `workerThresholdBytes` go to a worker pool, created
 * on first use, to keep other calls moving. The default, 8 MiB, is above the largest Send the
 * default limits accept (4 MiB frames): workers are off unless max-message-bytes is raised.
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
