import type { ScenarioResult } from './scenario.js';

/** The checks that fail the run (exit non-zero) when above 0, per scenario. */
export function violations(r: ScenarioResult): string[] {
  if (r.skipped) return [];
  const v: string[] = [];
  if (r.error) v.push('error');
  const c = r.counts;
  if (c?.lost) v.push(`lost ${c.lost}`);
  if (c?.redelivered_after_ack) v.push(`redelivered after ack ${c.redelivered_after_ack}`);
  if (c?.tokens_reissued) v.push(`tokens reissued ${c.tokens_reissued}`);
  if (r.crashes.length) v.push(`crashes ${r.crashes.length}`);
  // With SDK defaults a send rides out every fault here (each is far shorter than the SDK's total timeout).
  if (c && c.sends_failed + c.sends_unresolved > 0) v.push(`sends failed ${c.sends_failed + c.sends_unresolved}`);
  const limit = r.extra.shutdown_timeout_ms;
  if (r.drain_ms !== undefined && typeof limit === 'number' && r.drain_ms > limit) v.push(`drain ${r.drain_ms} ms > ${limit} ms`);
  return v;
}

const COLUMNS: [string, (r: ScenarioResult) => string | number | undefined][] = [
  ['scenario', r => r.name],
  ['faults', r => r.faults],
  ['sent', r => r.counts?.sent],
  ['sends ok', r => r.counts?.sends_ok],
  ['sends failed', r => (r.counts ? r.counts.sends_failed + r.counts.sends_unresolved : undefined)],
  ['LOST', r => r.counts?.lost],
  ['dups', r => r.counts?.duplicates],
  ['REDELIV AFTER ACK', r => r.counts?.redelivered_after_ack],
  ['TOKENS REISSUED', r => r.counts?.tokens_reissued],
  ['CRASHES', r => (r.skipped ? undefined : r.crashes.length)],
  ['recovery ms', r => (r.unrecovered ? `never (${r.unrecovered})` : r.recovery_ms)],
  ['drain ms', r => r.drain_ms],
  ['secs', r => (r.skipped ? undefined : r.seconds.toFixed(1))],
  ['verdict', r => (r.skipped ? `skipped: ${r.skipped}` : violations(r).length ? `FAIL: ${violations(r).join(', ')}` : 'ok')],
];

/** The table, as text: one row per scenario, numbers right-aligned. */
export function table(results: ScenarioResult[]): string {
  const cells = results.map(r => COLUMNS.map(([, f]) => (f(r) === undefined ? '-' : String(f(r)))));
  const widths = COLUMNS.map(([h], i) => Math.max(h.length, ...cells.map(row => (row[i] ?? '').length)));
  const left = (i: number) => i === 0 || i === 1 || i === COLUMNS.length - 1;
  const line = (row: string[]) =>
    row
      .map((c, i) => (left(i) ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(COLUMNS.map(([h]) => h)), line(widths.map(w => '-'.repeat(w))), ...cells.map(line)].join('\n');
}

/** Per scenario: notes, figures of its own, failed sends and acks by code, examples of violations. */
export function details(results: ScenarioResult[]): string {
  const out: string[] = [];
  for (const r of results) {
    if (r.skipped) continue;
    const bits: string[] = [];
    const c = r.counts;
    if (r.error) bits.push(`ERROR: ${r.error.split('\n')[0]}`);
    if (c) {
      const codes = (m: Record<string, number>) =>
        Object.entries(m)
          .map(([k, n]) => `${k}×${n}`)
          .join(' ');
      bits.push(`deliveries ${c.deliveries}, acks ok ${c.acks_ok}, acks failed ${c.acks_failed}${c.acks_failed ? ` (${codes(c.acks_failed_by_code)})` : ''}`);
      if (c.sends_failed) bits.push(`sends failed: ${codes(c.sends_failed_by_code)}`);
      if (c.sends_unresolved) bits.push(`sends unresolved: ${c.sends_unresolved}`);
      if (c.unacked_at_end) bits.push(`acknowledged, delivered, never acked OK by the end: ${c.unacked_at_end}`);
      if (c.delivered_despite_failed_send) bits.push(`delivered although the send failed or never resolved: ${c.delivered_despite_failed_send}`);
      for (const [k, list] of Object.entries(c.examples)) if (list.length) bits.push(`${k} e.g. ${list.slice(0, 3).join('; ')}`);
    }
    const extra = Object.entries(r.extra)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${k}=${v}`);
    if (extra.length) bits.push(extra.join(' '));
    if (r.recoveries.length)
      bits.push(`recovery per fault (send/delivery ms): ${r.recoveries.map(x => `${x.fault} ${x.send_ms ?? '∞'}/${x.delivery_ms ?? '∞'}`).join(', ')}`);
    for (const cr of r.crashes)
      bits.push(
        `CRASH: ${cr.server} pid ${cr.pid} exited code ${cr.code} signal ${cr.signal}${cr.after === 'SIGTERM' ? ' after SIGTERM' : ''}${cr.after_fault ? ` (fault: ${cr.after_fault})` : ''}`,
      );
    bits.push(...r.notes);
    out.push(`${r.name}:\n${bits.map(b => `  - ${b}`).join('\n')}`);
  }
  return out.join('\n');
}
