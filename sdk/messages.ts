import { GetMessageRequest, ListMessagesRequest } from '@inboxd/proto/v1/inbox';
import { type MessageInfo as ProtoInfo, type Message as ProtoMessage, MessageState as ProtoState } from '@inboxd/proto/v1/message';
import type { CallOptions, Rpc } from './rpc.js';

/** Where a message stands. */
export type MessageState = 'queued' | 'delayed' | 'leased' | 'acked' | 'dead_lettered' | 'expired' | 'dropped';

const TO_PROTO: Record<MessageState, ProtoState> = {
  queued: ProtoState.MESSAGE_STATE_QUEUED,
  delayed: ProtoState.MESSAGE_STATE_DELAYED,
  leased: ProtoState.MESSAGE_STATE_LEASED,
  acked: ProtoState.MESSAGE_STATE_ACKED,
  dead_lettered: ProtoState.MESSAGE_STATE_DEAD_LETTERED,
  expired: ProtoState.MESSAGE_STATE_EXPIRED,
  dropped: ProtoState.MESSAGE_STATE_DROPPED,
};
const FROM_PROTO = new Map<ProtoState, MessageState>(Object.entries(TO_PROTO).map(([k, v]) => [v, k as MessageState]));

/** A message's content, as stored. */
export interface StoredMessage {
  id: string;
  queue: string;
  payload: Buffer;
  contentType: string;
  headers: Record<string, string>;
  sender: string;
  subject: string;
  correlationId: string;
  replyTo: string;
  priority: number;
  contentHash: string;
  dedupKey: string;
  enqueuedAt?: Date;
  deliverAt?: Date;
  expiresAt?: Date;
}

/** Where a message in a dead-letter queue failed. */
export interface DeadLetterOrigin {
  queue: string;
  messageId: string;
  attempts: number;
  lastError: string;
  enqueuedAt?: Date;
}

/** A message as browsing sees it (looking never leases it). */
export interface MessageInfo {
  message: StoredMessage;
  state: MessageState;
  /** Deliveries so far. */
  attempts: number;
  createdAt?: Date;
  startedAt?: Date;
  completedAt?: Date;
  /** Set while leased. */
  leaseExpiresAt?: Date;
  /** The last nack's error text, or why it left the queue; '' when none. */
  lastError: string;
  /** Set on messages in a dead-letter queue. */
  deadLetterOrigin?: DeadLetterOrigin;
}

export interface ListMessagesOptions extends CallOptions {
  /** Only messages in this state. Default: all. */
  state?: MessageState;
  /** Messages per call, 1..1000. Default 100. */
  pageSize?: number;
  /** Newest first instead of oldest first. */
  newestFirst?: boolean;
}

export interface MessagePage {
  messages: MessageInfo[];
  /** Pass as `pageToken` for the next page; '' on the last one. */
  nextPageToken: string;
}

function toStored(m: ProtoMessage | undefined): StoredMessage {
  return {
    id: m?.id ?? '',
    queue: m?.queue ?? '',
    payload: Buffer.from(m?.payload ?? []),
    contentType: m?.contentType ?? '',
    headers: m?.headers ?? {},
    sender: m?.sender ?? '',
    subject: m?.subject ?? '',
    correlationId: m?.correlationId ?? '',
    replyTo: m?.replyTo ?? '',
    priority: m?.priority ?? 0,
    contentHash: m?.contentHash ?? '',
    dedupKey: m?.dedupKey ?? '',
    enqueuedAt: m?.enqueuedAt,
    deliverAt: m?.deliverAt,
    expiresAt: m?.expiresAt,
  };
}

function toInfo(i: ProtoInfo): MessageInfo {
  const o = i.deadLetterOrigin;
  return {
    message: toStored(i.message),
    state: FROM_PROTO.get(i.state) ?? 'queued',
    attempts: i.attempts,
    createdAt: i.createdAt,
    startedAt: i.startedAt,
    completedAt: i.completedAt,
    leaseExpiresAt: i.leaseExpiresAt,
    lastError: i.lastError,
    deadLetterOrigin: o ? { queue: o.queue, messageId: o.messageId, attempts: o.attempts, lastError: o.lastError, enqueuedAt: o.enqueuedAt } : undefined,
  };
}

/** Browsing inboxes without leasing (Inbox.ListMessages and GetMessage), typed. */
export class MessageBrowser {
  constructor(private readonly rpc: Rpc) {}

  /**
   * Every message of the queue (in `state`), oldest first (or newest), fetched a page at a time.
   * Messages sent while iterating oldest first appear at the end; none is seen twice.
   */
  async *list(queue: string, options: ListMessagesOptions = {}): AsyncGenerator<MessageInfo> {
    let pageToken = '';
    do {
      const page = await this.page(queue, { ...options, pageToken });
      yield* page.messages;
      pageToken = page.nextPageToken;
    } while (pageToken);
  }

  /** One page; `pageToken` from the previous page ('' or unset for the first). */
  async page(queue: string, options: ListMessagesOptions & { pageToken?: string } = {}): Promise<MessagePage> {
    if (options.state !== undefined && !(options.state in TO_PROTO)) {
      throw new RangeError(`unknown message state ${JSON.stringify(options.state)}: want one of ${Object.keys(TO_PROTO).join(', ')}`);
    }
    const req = ListMessagesRequest.fromPartial({
      queue,
      state: options.state ? TO_PROTO[options.state] : ProtoState.MESSAGE_STATE_UNSPECIFIED,
      pageSize: options.pageSize ?? 0,
      pageToken: options.pageToken ?? '',
      newestFirst: options.newestFirst ?? false,
    });
    const res = await this.rpc.call(c => [c.inbox, c.inbox.listMessages], req, options);
    return { messages: res.messages.map(toInfo), nextPageToken: res.nextPageToken };
  }

  /** One message by id, in whatever state. Rejects NOT_FOUND for an unknown id (or queue). */
  async get(queue: string, id: string, options?: CallOptions): Promise<MessageInfo> {
    const res = await this.rpc.call(c => [c.inbox, c.inbox.getMessage], GetMessageRequest.fromPartial({ queue, id }), options);
    return toInfo(res.message!);
  }
}
