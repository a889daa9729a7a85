import type { Logger } from 'pino';
import type { Counter } from 'prom-client';
import type { Database } from '../queue/database.js';
import * as sql from '../queue/sql.js';

export type AuditEvent = Partial<sql.AuditRow> & { action: string };

/** Most events kept a second; past it (a flood of bad credentials) they are counted, not stored. */
const MAX_PER_SECOND = 200;
const FLUSH_MS = 250;
/** Audit events older than this are deleted (checked hourly). */
const RETENTION_DAYS = 90;

/**
 * The audit trail: every denied call and every change of principals, keys and grants, as a
 * structured log line and a row in Postgres (listable through Auth.ListAuditEvents). Rows are
 * written in batches a few times a second; a flood is capped so hostile traffic cannot fill the
 * disk or the log, and what was left out is counted in the log.
 */
export class AuditLog {
  private buffer: sql.AuditRow[] = [];
  private windowStart = 0;
  private inWindow = 0;
  private skipped = 0;
  private timer?: NodeJS.Timeout;
  private pruneTimer?: NodeJS.Timeout;
  private flushing?: Promise<void>;

  constructor(
    private readonly db: Database,
    private readonly schema: string,
    private readonly log: Logger,
    private readonly denied: Counter<'reason' | 'verb'>,
  ) {}

  start(): void {
    const prune = () => this.db.exec(sql.pruneAudit(this.schema, RETENTION_DAYS)).catch(err => this.log.debug({ err }, 'audit prune failed'));
    void prune();
    this.pruneTimer = setInterval(prune, 3600_000);
    this.pruneTimer.unref();
  }

  record(e: AuditEvent): void {
    const row: sql.AuditRow = { principal: '', method: '', verb: '', target: '', detail: '', peer: '', ...e };
    if (e.action === 'denied') this.denied.inc({ reason: row.detail.split(':')[0] || 'unknown', verb: row.verb || 'none' });
    const now = Date.now();
    if (now - this.windowStart >= 1000) {
      if (this.skipped > 0)
        this.log.warn(
          { skipped: this.skipped },
          `audit: ${this.skipped} events in the last second past the limit of ${MAX_PER_SECOND}/s were counted but not kept`,
        );
      this.windowStart = now;
      this.inWindow = 0;
      this.skipped = 0;
    }
    if (++this.inWindow > MAX_PER_SECOND) {
      this.skipped++;
      return;
    }
    this.log[e.action === 'denied' ? 'warn' : 'info'](
      { audit: row },
      `audit: ${row.action}${row.principal ? ` by ${row.principal}` : ''}${row.target ? ` on ${row.target}` : ''}${row.detail ? ` (${row.detail})` : ''}`,
    );
    this.buffer.push(row);
    this.timer ??= setTimeout(() => void this.flush(), FLUSH_MS);
  }

  /** Writes what is buffered; a failed write is logged (the log line stands) and dropped. */
  flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    const rows = this.buffer;
    this.buffer = [];
    const prev = this.flushing ?? Promise.resolve();
    const p = prev.then(() =>
      rows.length === 0
        ? undefined
        : this.db.exec(sql.insertAudit(this.schema, rows)).then(
            () => undefined,
            err => this.log.warn({ err, events: rows.length }, 'audit events could not be stored (they are in the log)'),
          ),
    );
    this.flushing = p;
    return p;
  }

  async stop(): Promise<void> {
    clearInterval(this.pruneTimer);
    await this.flush();
  }
}
