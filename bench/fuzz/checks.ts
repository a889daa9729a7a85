import fs from 'node:fs';
import { createClient } from '@inboxd/sdk';
import { RawClient } from './raw-client.js';

/**
 * The checks after each batch: the server process is up, grpc.health.v1.Health/Check answers
 * SERVING, and a canary send → lease → ack succeeds on a connection of its own (a new SDK client
 * each time, so nothing the fuzzer did to its own connections helps or hides it; with auth
 * required it uses the admin key).
 */

export interface CheckResult {
  ok: boolean;
  /** What failed, when something did. */
  error?: string;
  ms: number;
}

/** Resident memory of a process in MB (VmRSS in /proc/<pid>/status), or undefined when it is gone. */
export function rssMb(pid: number | undefined): number | undefined {
  if (!pid) return undefined;
  try {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Math.round(Number(m[1]) / 1024) : undefined;
  } catch {
    return undefined;
  }
}

/** grpc.health.v1.Health/Check for the whole server (service ""): SERVING is `08 01`. */
export async function health(address: string, deadlineMs = 5000): Promise<CheckResult> {
  const c = new RawClient(address);
  try {
    const out = await c.unary('/grpc.health.v1.Health/Check', Buffer.alloc(0), deadlineMs);
    if (out.status !== 'OK') return { ok: false, error: `health: ${out.status} ${out.details}`, ms: out.ms };
    const serving = out.response?.equals(Buffer.from([0x08, 0x01]));
    return serving ? { ok: true, ms: out.ms } : { ok: false, error: `health: not SERVING (response ${out.response?.toString('hex')})`, ms: out.ms };
  } finally {
    c.close();
  }
}

/**
 * The canary: one message sent, leased and acked on `queue`, with a fresh SDK client, within
 * `timeoutMs`. Messages of earlier canaries that were left behind are acked too.
 */
export async function canary(address: string, queue: string, timeoutMs = 10_000, apiKey?: string): Promise<CheckResult> {
  const t0 = Date.now();
  const client = createClient({ address, apiKey, retry: { totalTimeout: timeoutMs, attemptTimeout: timeoutMs } });
  const deadline = t0 + timeoutMs;
  try {
    const id = await client.send(queue, `canary ${t0}`);
    while (Date.now() < deadline) {
      const got = await client.lease(queue, { max: 100, wait: '1s', visibilityTimeout: '30s' });
      if (got.length) await client.ack(got);
      if (got.some(m => m.id === id)) return { ok: true, ms: Date.now() - t0 };
    }
    return { ok: false, error: `canary: message ${id} sent but not leased within ${timeoutMs} ms`, ms: Date.now() - t0 };
  } catch (err) {
    return { ok: false, error: `canary: ${(err as Error).message}`, ms: Date.now() - t0 };
  } finally {
    await client.close({ timeout: 1000 }).catch(() => {});
  }
}

export interface AfterBatch {
  alive: boolean;
  health: CheckResult;
  canary: CheckResult;
  rss_mb?: number;
}

/** All the checks at once; `alive` is whether the server process was running; `apiKey`: the canary's credential (auth required). */
export async function afterBatch(address: string, alive: boolean, pid: number | undefined, canaryQueue: string, apiKey?: string): Promise<AfterBatch> {
  const h = await health(address);
  const c = await canary(address, canaryQueue, 10_000, apiKey);
  return { alive, health: h, canary: c, rss_mb: rssMb(pid) };
}

export function checkFailures(a: AfterBatch): string[] {
  const out: string[] = [];
  if (!a.alive) out.push('server process down');
  if (!a.health.ok) out.push(a.health.error ?? 'health failed');
  if (!a.canary.ok) out.push(a.canary.error ?? 'canary failed');
  return out;
}
