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
  /** fuzz (auth off) or fuzz_auth (auth required); absent in results written before the auth run existed. */
  name?: string;
  auth?: 'off' | 'required';
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
  /** Auth required: credential kind → status → count. */
  by_credential?: Record<string, Record<string, number>>;
  /** Auth required: credential kind → what the server should take it for (admin, user, invalid, none, nonadmin, ambiguous) → count. */
  credential_classes?: Record<string, Record<string, number>>;
  /** Auth required: auth check → cases it applied to. */
  auth_checked?: Record<string, number>;
  /** Auth required: failed auth checks (part of failure_count). */
  auth_failure_count?: number;
}

/** A text table: first column left-aligned, the others right-aligned unless `left` says so. */
export function table(head: string[], rows: (string | number | undefined)[][], left: number[] = [0]): string {
  const cells = rows.map(r => r.map(c => (c === undefined ? '-' : String(c))));
  const w = head.map((h, i) => Math.max(h.length, ...cells.map(r => (r[i] ?? '').length)));
  const line = (r: string[]) =>
    r
      .map((c, i) => (left.includes(i) ? c.padEnd(w[i] ?? 0) : c.padStart(w[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(head), line(w.map(n => '-'.repeat(n))), ...cells.map(line)].join('\n');
}

const clip = (s: string, n: number) => (s.length > n ? `${s.slice(0, n)}…` : s);

const statusList = (st: Record<string, number>) =>
  Object.entries(st)
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');

/** One fuzz run's section: statuses, per RPC, (auth) per credential, batches, failures. Adds its verdicts. */
function printPhase(f: FuzzPhase, out: string[], verdicts: string[]): void {
  const name = f.name ?? 'fuzz';
  const auth = f.auth === 'required';
  const prefix = name === 'fuzz' ? '' : `${name}: `;
  out.push(
    `\n${name} (auth ${f.auth ?? 'off'}): ${f.cases} cases in ${f.batches.length} batches, ${f.seconds.toFixed(1)} s, seed ${f.seed}; server RSS ${f.rss_before_mb} MB before, ${f.rss_after_mb} MB after`,
  );
  out.push(
    `statuses: ${Object.entries(f.statuses)
      .sort((a, b) => b[1] - a[1])
      .map(([k, n]) => `${k} ${n}`)
      .join(', ')}`,
  );
  const rows = Object.entries(f.by_rpc)
    .sort()
    .map(([rpc, st]) => {
      const n = Object.values(st).reduce((a, b) => a + b, 0);
      return [
        rpc,
        n,
        f.fail_by_rpc[rpc] || '',
        clip(
          Object.entries(st)
            .sort((a, b) => b[1] - a[1])
            .map(([k, v]) => `${k} ${v}`)
            .join(', '),
          110,
        ),
      ];
    });
  out.push('\n' + table(['rpc / abuse', 'cases', 'FAIL', 'statuses'], rows, [0, 3]));
  if (auth && f.by_credential) {
    const credRows = Object.entries(f.by_credential)
      .sort((a, b) => Object.values(b[1]).reduce((x, y) => x + y, 0) - Object.values(a[1]).reduce((x, y) => x + y, 0))
      .map(([cred, st]) => [cred, Object.values(st).reduce((x, y) => x + y, 0), statusList(f.credential_classes?.[cred] ?? {}), clip(statusList(st), 100)]);
    out.push('\n' + table(['credential', 'cases', 'taken for', 'statuses'], credRows, [0, 2, 3]));
    out.push(`auth checks applied: ${statusList(f.auth_checked ?? {})}; failed: ${f.auth_failure_count ?? 0}`);
  }
  out.push(
    '\n' +
      table(
        ['batch', 'cases', 'secs', 'failures', 'stalled open', 'health ms', 'canary ms', 'RSS MB', 'checks'],
        f.batches.map(b => [
          b.batch + 1,
          b.cases,
          b.seconds.toFixed(1),
          b.failures,
          b.stalled_left_open,
          b.health_ms,
          b.canary_ms,
          b.rss_mb,
          b.check_failures.length ? `FAIL: ${b.check_failures.join('; ')}` : 'ok',
        ]),
        [8],
      ),
  );
  if (f.failure_count) {
    verdicts.push(`${prefix}${f.failure_count} fuzz failures (INTERNAL/UNKNOWN/hang${auth ? '/auth checks' : ''})`);
    out.push(`\n${prefix}failures: ${f.failure_count} in all; the first of each kind, with reproducers:`);
    for (const x of f.failures) {
      out.push(`- ${x.kind} on ${x.rpc}: ${x.status} "${clip(x.details, 160)}"  [seed ${x.seed}, batch ${x.batch + 1}, lane ${x.lane}, path ${x.path}]`);
      if (x.credential) out.push(`    credential: ${x.credential}`);
      if (x.hint) out.push(`    note:    ${x.hint}`);
      out.push(`    request: ${clip(JSON.stringify(x.request), 400)}`);
      if (x.hex.length) out.push(`    bytes:   ${clip(x.hex.join(' | '), 200)}`);
      if (x.shrunk)
        out.push(
          'error' in x.shrunk
            ? `    shrunk:  (${x.shrunk.error})`
            : `    shrunk:  [path ${x.shrunk.path}] ${x.shrunk.status} ${clip(JSON.stringify(x.shrunk.request), 300)}  hex ${clip(x.shrunk.hex.join(' | '), 160)}`,
        );
    }
  }
  const badChecks = f.batches.filter(b => b.check_failures.length);
  if (badChecks.length) verdicts.push(`${prefix}checks failed after ${badChecks.length} batch(es)`);
  if (f.crashes.length) {
    verdicts.push(`${name} server crashed ${f.crashes.length}×`);
    out.push(`\nCRASHES:\n${f.crashes.map(c => `- ${c}`).join('\n')}`);
  }
}

/** Prints the report; returns the verdicts that fail the run (empty: passed). */
export function printReport(r: {
  quick: boolean;
  only?: string[];
  fuzz?: FuzzPhase;
  fuzzAuth?: FuzzPhase;
  scenarios: ScenarioResult[];
  rssBoundMb: number;
}): string[] {
  const out: string[] = [];
  const verdicts: string[] = [];
  out.push(`\ninboxd fuzz suite (${r.quick ? 'quick' : 'full'} mode${r.only ? `, only ${r.only.join(',')}` : ''})`);
  const phases = [r.fuzz, r.fuzzAuth].filter((f): f is FuzzPhase => f !== undefined);
  for (const f of phases) printPhase(f, out, verdicts);
  if (phases.length) {
    out.push(
      '\n' +
        table(
          ['fuzz run', 'auth', 'cases', 'secs', 'FAIL', 'auth FAIL', 'health/canary', 'crashes', 'statuses'],
          phases.map(f => [
            f.name ?? 'fuzz',
            f.auth ?? 'off',
            f.cases,
            f.seconds.toFixed(1),
            f.failure_count,
            f.auth === 'required' ? (f.auth_failure_count ?? 0) : '-',
            f.batches.every(b => !b.check_failures.length) ? `ok ×${f.batches.length}` : `FAIL ×${f.batches.filter(b => b.check_failures.length).length}`,
            f.crashes.length,
            clip(statusList(f.statuses), 90),
          ]),
          [0, 1, 6, 8],
        ),
    );
  }
  if (r.scenarios.length) {
    out.push(
      '\n' +
        table(
          ['scenario', 'size', 'figure', 'secs', 'verdict'],
          r.scenarios.map(s => [s.name, s.size, s.figure, s.seconds.toFixed(1), s.failures.length ? `FAIL: ${s.failures.join('; ')}` : 'ok']),
          [0, 1, 2, 4],
        ),
    );
    for (const s of r.scenarios) {
      const m = Object.entries(s.metrics)
        .filter(([, v]) => v !== undefined)
        .map(([k, v]) => `${k}=${v}`)
        .join(' ');
      out.push(
        `${s.name}: ${m}${s.notes.length ? `\n${s.notes.map(n => `  - ${n}`).join('\n')}` : ''}${s.error ? `\n  ERROR: ${s.error.split('\n')[0]}` : ''}`,
      );
      if (s.failures.length) verdicts.push(`${s.name} (${s.failures.join('; ')})`);
    }
  }
  process.stdout.write(out.join('\n') + '\n');
  return verdicts;
}
