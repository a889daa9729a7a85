import { io } from './io.js';

/** How a command prints: human-readable tables by default, JSON for scripts (--json). */
export interface Output {
  json: boolean;
}

export interface Column<T> {
  header: string;
  value: (row: T) => string | number | boolean | undefined;
  /** Right-aligned (numbers). */
  right?: boolean;
}

/** A plain-text table: a header row, then one line per row, columns padded to fit. */
export function table<T>(rows: T[], columns: Column<T>[]): string {
  const cells = rows.map(r => columns.map(c => String(c.value(r) ?? '')));
  const widths = columns.map((c, i) => Math.max(c.header.length, ...cells.map(row => (row[i] ?? '').length)));
  const line = (values: string[]) =>
    columns
      .map((c, i) => {
        const v = values[i] ?? '';
        const w = widths[i] ?? 0;
        return c.right ? v.padStart(w) : i === columns.length - 1 ? v : v.padEnd(w);
      })
      .join('  ')
      .trimEnd();
  return [line(columns.map(c => c.header)), ...cells.map(line)].join('\n') + '\n';
}

/** Prints `value` as JSON (--json) or `human()` otherwise. */
export function print(out: Output, value: unknown, human: () => string): void {
  io().stdout.write(out.json ? `${JSON.stringify(value, null, 2)}\n` : human());
}

/** One JSON object a line, for streams of records (tail --json). */
export function printLine(value: unknown): void {
  io().stdout.write(`${JSON.stringify(value)}\n`);
}

/** 30000 → "30s", 5400000 → "90m", 1500 → "1500ms", 0 → "0s". */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${Math.round(ms)}ms`;
}

/** An age for people: "0s", "42s", "3m12s", "5h3m", "2d4h". */
export function formatAge(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60 ? `${s % 60}s` : ''}`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60) ? `${Math.floor((s % 3600) / 60)}m` : ''}`;
  return `${Math.floor(s / 86_400)}d${Math.floor((s % 86_400) / 3600) ? `${Math.floor((s % 86_400) / 3600)}h` : ''}`;
}

const PREVIEW = 60;

/** A payload for a table or a line: its text if it is printable UTF-8, else its size. */
export function preview(payload: Uint8Array): string {
  const text = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('utf8');
  // Replacement characters mean it was not UTF-8; control characters would garble the terminal.
  if (text.includes('\uFFFD') || /[\u0000-\u0008\u000B-\u001F\u007F]/.test(text)) return `<${payload.byteLength} bytes>`;
  const one = text.replace(/\s+/g, ' ');
  return one.length > PREVIEW ? `${one.slice(0, PREVIEW - 1)}…` : one;
}

/** A payload for JSON output: always base64 (as grpcurl prints bytes), and its text when it is UTF-8. */
export function payloadJson(payload: Uint8Array): { payload: string; text?: string } {
  const buf = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  const text = buf.toString('utf8');
  return text.includes('\uFFFD') ? { payload: buf.toString('base64') } : { payload: buf.toString('base64'), text };
}
