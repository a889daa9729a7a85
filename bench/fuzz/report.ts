import type { Failure } from './engine.js';
import type { ScenarioResult } from './scenarios/types.js';

export interface BatchRow {
  batch: number;
  cases: number;
  seconds: number;
  failures: number;
  stalled_left_open: number;
  health_ms?: number;
  canary_ms?: number;
  rss_mb?: number;
  check_failures: string[];
}

export interface FuzzPhase {
  seed: number;
  cases: number;
  seconds: number;
  statuses: Record<string, number>;
  by_rpc: Record<string, Record<string, number>>;
  failure_count: number;
  fail_by_rpc: Record<string, number>;
  failures: Failure[];
  batches: BatchRow[];
  rss_before_mb?: number;
  rss_after_mb?: number;
  crashes: string[];
}

/** A text table: first column left-aligned, the others right-aligned unless `left` says so. */
export function table(head: string[], rows: (string | number | undefined)[][], left: number[] = [0]): string {
  const cells = rows.map(r => r.map(c => (c === undefined ? '-' : String(c))));
  const w = head.map((h, i) => Math.max(h.length, ...cells.map(r => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => (left.includes(i) ? c.padEnd(w[i]) : c.padStart(w[i]))).join('  ').trimEnd();
  return [line(head), line(w.map(n => '-'.repeat(n))), ...cells.map(line)].join('\n');
}

const clip = (s: string, n: number) => (s.length > n ? `${s.slice(0, n)}…` : s);

/** Prints the report; returns the verdicts that fail the run (empty: passed). */
export function printReport(r: { quick: boolean; only?: string[]; fuzz?: FuzzPhase; scenarios: ScenarioResult[]; rssBoundMb: number }): string[] {
  const out: string[] = [];
  const verdicts: string[] = [];
  out.push(`\ninboxd fuzz suite (${r.quick ? 'quick' : 'full'} mode${r.only ? `, only ${r.only.join(',')}` : ''})`);
  const f = r.fuzz;
  if (f) {
    out.push(`\nfuzz: ${f.cases} cases in ${f.batches.length} batches, ${f.seconds.toFixed(1)} s, seed ${f.seed}; server RSS ${f.rss_before_mb} MB before, ${f.rss_after_mb} MB after`);
    out.push(`statuses: ${Object.entries(f.statuses).sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${n}`).join(', ')}`);
    const rows = Object.entries(f.by_rpc)
      .sort()
      .map(([rpc, st]) => {
        const n = Object.values(st).reduce((a, b) => a + b, 0);
        return [rpc, n, f.fail_by_rpc[rpc] || '', clip(Object.entries(st).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(', '), 110)];
      });
    out.push('\n' + table(['rpc / abuse', 'cases', 'FAIL', 'statuses'], rows, [0, 3]));
    out.push(
      '\n' +
        table(
          ['batch', 'cases', 'secs', 'failures', 'stalled open', 'health ms', 'canary ms', 'RSS MB', 'checks'],
          f.batches.map(b => [b.batch + 1, b.cases, b.seconds.toFixed(1), b.failures, b.stalled_left_open, b.health_ms, b.canary_ms, b.rss_mb, b.check_failures.length ? `FAIL: ${b.check_failures.join('; ')}` : 'ok']),
          [8],
        ),
    );
    if (f.failure_count) {
      verdicts.push(`${f.failure_count} fuzz failures (INTERNAL/UNKNOWN/hang)`);
      out.push(`\nfailures: ${f.failure_count} in all; the first of each kind, with reproducers:`);
      for (const x of f.failures) {
        out.push(`- ${x.kind} on ${x.rpc}: ${x.status} "${clip(x.details, 160)}"  [seed ${x.seed}, path ${x.path}]`);
        if (x.hint) out.push(`    note:    ${x.hint}`);
        out.push(`    request: ${clip(JSON.stringify(x.request), 400)}`);
        if (x.hex.length) out.push(`    bytes:   ${clip(x.hex.join(' | '), 200)}`);
        if (x.shrunk) out.push('error' in x.shrunk ? `    shrunk:  (${x.shrunk.error})` : `    shrunk:  [path ${x.shrunk.path}] ${x.shrunk.status} ${clip(JSON.stringify(x.shrunk.request), 300)}  hex ${clip(x.shrunk.hex.join(' | '), 160)}`);
      }
    }
    const badChecks = f.batches.filter(b => b.check_failures.length);
    if (badChecks.length) verdicts.push(`checks failed after ${badChecks.length} batch(es)`);
    if (f.crashes.length) {
      verdicts.push(`fuzz server crashed ${f.crashes.length}×`);
      out.push(`\nCRASHES:\n${f.crashes.map(c => `- ${c}`).join('\n')}`);
    }
  }
  if (r.scenarios.length) {
    out.push('\n' + table(['scenario', 'size', 'figure', 'secs', 'verdict'], r.scenarios.map(s => [s.name, s.size, s.figure, s.seconds.toFixed(1), s.failures.length ? `FAIL: ${s.failures.join('; ')}` : 'ok']), [0, 1, 2, 4]));
    for (const s of r.scenarios) {
      const m = Object.entries(s.metrics).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${v}`).join(' ');
      out.push(`${s.name}: ${m}${s.notes.length ? `\n${s.notes.map(n => `  - ${n}`).join('\n')}` : ''}${s.error ? `\n  ERROR: ${s.error.split('\n')[0]}` : ''}`);
      if (s.failures.length) verdicts.push(`${s.name} (${s.failures.join('; ')})`);
    }
  }
  process.stdout.write(out.join('\n') + '\n');
  return verdicts;
}
