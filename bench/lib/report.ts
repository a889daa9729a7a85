import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** One scenario's outcome, as written to bench/results/latest.json. */
export interface Result {
  name: string;
  messages: number;
  seconds: number;
  msgs_per_sec: number;
  p50_ms?: number;
  p95_ms?: number;
  p99_ms?: number;
  /** The scenario this one is compared against, and this one's throughput (or named figure) over it. */
  baseline?: string;
  ratio?: number;
  /** Anything else the scenario measured (RSS, CPU, per-peer figures), or why it was skipped. */
  extra?: Record<string, unknown>;
  skipped?: string;
}

/** p50/p95/p99 of latencies in ms (nearest rank). */
export function percentiles(values: number[]): { p50_ms: number; p95_ms: number; p99_ms: number } {
  if (values.length === 0) return { p50_ms: NaN, p95_ms: NaN, p99_ms: NaN };
  const s = Float64Array.from(values).sort();
  const at = (p: number) => +s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!.toFixed(2);
  return { p50_ms: at(50), p95_ms: at(95), p99_ms: at(99) };
}

export function rate(messages: number, seconds: number): number {
  return Math.round(messages / seconds);
}

export function printTable(results: Result[]): void {
  const rows = results.map(r => ({
    scenario: r.name,
    messages: r.skipped ? '-' : r.messages,
    seconds: r.skipped ? '-' : +r.seconds.toFixed(2),
    'msgs/s': r.skipped ? '-' : r.msgs_per_sec,
    'p50 ms': r.p50_ms ?? '',
    'p95 ms': r.p95_ms ?? '',
    'p99 ms': r.p99_ms ?? '',
    ratio: r.ratio === undefined ? '' : `${r.ratio.toFixed(2)} vs ${r.baseline}`,
    note: r.skipped ? `skipped: ${r.skipped}` : summarize(r.extra),
  }));
  console.table(rows);
}

function summarize(extra: Record<string, unknown> | undefined): string {
  if (!extra) return '';
  return Object.entries(extra)
    .filter(([, v]) => typeof v !== 'object')
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
}

/** The repository root: the nearest folder above this file with a package.json (source or dist/). */
export function repoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`package.json not found above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
  return dir;
}

/** Writes bench/results/<name> (in the repository, whether run from source or from dist/). */
export function writeResults(name: string, payload: object): string {
  const dir = path.join(repoRoot(), 'bench', 'results');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, name), JSON.stringify(payload, null, 2) + '\n');
  return `bench/results/${name}`;
}
