import { type DeadLetterOrigin, type MessageInfo, MessageState } from '@inboxd/proto/v1/message';
import { invalid, notFound } from '../errors.js';
import { type StoredMessage, toMessage } from './codec.js';
import type { Database } from './database.js';
import type { QueueRegistry } from './queue-registry.js';
import * as sql from './sql.js';

export interface BrowseOptions {
  /** Unset: every state. */
  state?: sql.BrowseState;
  pageSize: number;
  /** From a previous page's nextPageToken; '' for the first page. */
  pageToken: string;
  newestFirst: boolean;
}

export interface BrowsePage {
  messages: MessageInfo[];
  /** '' on the last page. */
  nextPageToken: string;
}

const STATE_FILTER: Record<number, sql.BrowseState | undefined> = {
  [MessageState.MESSAGE_STATE_QUEUED]: 'queued',
  [MessageState.MESSAGE_STATE_DELAYED]: 'delayed',
  [MessageState.MESSAGE_STATE_LEASED]: 'leased',
  [MessageState.MESSAGE_STATE_ACKED]: 'acked',
  [MessageState.MESSAGE_STATE_DEAD_LETTERED]: 'dead_lettered',
  [MessageState.MESSAGE_STATE_EXPIRED]: 'expired',
  [MessageState.MESSAGE_STATE_DROPPED]: 'dropped',
};

/** A MessageState from a request as a browse filter; UNSPECIFIED: none. */
export function browseState(s: MessageState, field = 'state'): sql.BrowseState | undefined {
  if (s === MessageState.MESSAGE_STATE_UNSPECIFIED) return undefined;
  const f = STATE_FILTER[s];
  if (!f) throw invalid(`${field} ${s} is not a MessageState: QUEUED, DELAYED, LEASED, ACKED, DEAD_LETTERED, EXPIRED, DROPPED, or UNSPECIFIED for all`);
  return f;
}

interface BrowseRow {
  id: string;
  name: string;
  data: StoredMessage;
  state: string;
  retryCount: number;
  createdOn: Date;
  startedOn: Date | null;
  completedOn: Date | null;
  notDue: boolean;
  leaseExpiresAt: Date | null;
  output: unknown;
  sourceName: string | null;
  sourceId: string | null;
  sourceRetryCount: number | null;
  sourceOutput: unknown;
  sourceCreatedOn: Date | null;
  createdUs: string;
}

const BAD_TOKEN = 'page_token is not one this server issued: pass next_page_token from the previous response unchanged';

/**
 * Page tokens are opaque to clients: base64url of the direction and the last row's sort key
 * (created_on in epoch microseconds, id). A token is tied to its direction; the state filter may change between pages.
 */
function encodeToken(newestFirst: boolean, c: sql.BrowseCursor): string {
  return Buffer.from(`${newestFirst ? 'd' : 'a'}:${c.createdUs}:${c.id}`, 'utf8').toString('base64url');
}

function decodeToken(token: string, newestFirst: boolean): sql.BrowseCursor {
  if (!/^[A-Za-z0-9_-]{1,200}$/.test(token)) throw invalid(BAD_TOKEN);
  const m = /^([ad]):(-?\d{1,18}):([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/.exec(Buffer.from(token, 'base64url').toString('utf8'));
  if (!m) throw invalid(BAD_TOKEN);
  if ((m[1] === 'd') !== newestFirst) {
    throw invalid(`page_token was issued for newest_first=${m[1] === 'd'}: keep newest_first as it was while paging, or start again without a token`);
  }
  // The pattern matched, so both groups are there.
  return { createdUs: m[2]!, id: m[3]! };
}

/** The text of a failure as pg-boss keeps it in a job's output. */
export function errorText(output: unknown): string {
  if (output === null || output === undefined) return '';
  if (typeof output === 'string') return output;
  if (typeof output !== 'object') return String(output);
  const o = output as Record<string, unknown>;
  // inboxd's nack and lease expiry, and pg-boss's fail(): { message }
  if (typeof o.message === 'string') return o.message;
  // pg-boss's own supervisor, and fail() given a non-object: { value: { message } } or { value }
  const v = o.value as Record<string, unknown> | string | undefined;
  if (typeof v === 'string') return v;
  if (v && typeof v.message === 'string') return v.message;
  if (o.dropped !== undefined) return `dropped by the overflow policy ${String(o.dropped)}`;
  if (o.expired) return 'expired before delivery';
  return '';
}

function stateOf(r: BrowseRow): MessageState {
  switch (r.state) {
    case 'created':
    case 'retry':
      return r.notDue ? MessageState.MESSAGE_STATE_DELAYED : MessageState.MESSAGE_STATE_QUEUED;
    case 'active':
      return MessageState.MESSAGE_STATE_LEASED;
    case 'completed':
      return MessageState.MESSAGE_STATE_ACKED;
    case 'failed':
      return MessageState.MESSAGE_STATE_DEAD_LETTERED;
    case 'cancelled': {
      const o = r.output as Record<string, unknown> | null;
      return o && typeof o === 'object' && o.dropped !== undefined && o.dropped !== null
        ? MessageState.MESSAGE_STATE_DROPPED
        : MessageState.MESSAGE_STATE_EXPIRED;
    }
    default:
      return MessageState.MESSAGE_STATE_UNSPECIFIED;
  }
}

function toInfo(r: BrowseRow): MessageInfo {
  let origin: DeadLetterOrigin | undefined;
  if (r.sourceName) {
    origin = {
      queue: r.sourceName,
      messageId: r.sourceId ?? '',
      attempts: (r.sourceRetryCount ?? 0) + 1,
      lastError: errorText(r.sourceOutput),
      enqueuedAt: r.sourceCreatedOn ?? undefined,
    };
  }
  return {
    message: toMessage({ id: r.id, name: r.name, data: r.data }),
    state: stateOf(r),
    // pg-boss counts a delivery in retry_count when the next one starts: a message started once or
    // more has had retry_count + 1 deliveries, whatever state it is in now.
    attempts: r.startedOn ? r.retryCount + 1 : 0,
    createdAt: r.createdOn,
    startedAt: r.startedOn ?? undefined,
    completedAt: r.completedOn ?? undefined,
    leaseExpiresAt: r.leaseExpiresAt ?? undefined,
    lastError: errorText(r.output),
    deadLetterOrigin: origin,
  };
}

/**
 * Browsing a queue without leasing: reads pg-boss's job table as it stands (one SELECT per call,
 * no lock, no write), so looking never changes what consumers get.
 */
export class Browser {
  constructor(
    private readonly db: Database,
    private readonly schema: string,
    private readonly registry: QueueRegistry,
  ) {}

  private async exec(q: sql.Sql): Promise<BrowseRow[]> {
    return (await this.db.exec(q)).rows as BrowseRow[];
  }

  async list(queue: string, o: BrowseOptions): Promise<BrowsePage> {
    const after = o.pageToken ? decodeToken(o.pageToken, o.newestFirst) : undefined;
    await this.registry.get(queue);
    const rows = await this.exec(sql.browseMessages(this.schema, queue, { state: o.state, limit: o.pageSize + 1, newestFirst: o.newestFirst, after }));
    const page = rows.slice(0, o.pageSize);
    const last = page.at(-1);
    return {
      messages: page.map(toInfo),
      nextPageToken: rows.length > o.pageSize && last ? encodeToken(o.newestFirst, { createdUs: last.createdUs, id: last.id }) : '',
    };
  }

  async get(queue: string, id: string): Promise<MessageInfo> {
    const { config } = await this.registry.get(queue);
    const [row] = await this.exec(sql.browseMessage(this.schema, queue, id));
    if (!row) throw notFound(`message ${id} not found in queue ${queue} (${keptAcked(config.ackedRetentionSec)})`);
    return toInfo(row);
  }
}

/** What a queue keeps of acked messages, for a not-found answer: the likeliest reason it is gone. */
function keptAcked(sec: number): string {
  if (sec === 0) return 'this queue keeps no acked messages: an ack deletes it (acked_retention 0)';
  const span = sec % 3600 === 0 ? `${sec / 3600}h` : sec % 60 === 0 ? `${sec / 60}m` : `${sec}s`;
  return `this queue keeps acked messages for its acked_retention, ${span}`;
}
