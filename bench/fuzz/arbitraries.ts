import fc from 'fast-check';
import { type AuthSecrets, type CaseAuth, CRED_ARB } from './auth.js';
import { H2_ABUSE, type H2Abuse } from './http2-abuse.js';
import { encodeRaw, RPCS, type Rpc } from './schema.js';

/**
 * fast-check generators for every request of inboxd.v1.Inbox, inboxd.v1.Queues and
 * inboxd.v1.Auth, in the raw schema (schema.ts: strings are bytes, so a "string" can be invalid
 * UTF-8), plus a mutation of the encoded bytes (unknown fields, truncation, a flipped byte,
 * trailing garbage). Most values are valid-looking and aimed at real state (queues that exist,
 * lease tokens from real leases, ids of stored messages, principals and keys that exist) so that
 * the server's deeper paths run; the rest is hostile. In the auth-required run (ctx.auth set) each
 * case also carries a credential (auth.ts: CRED_ARB).
 */

/** Real state the generators aim at, refreshed before each batch (run.ts). */
export interface FuzzContext {
  /** Queues that exist (never the canary's). */
  queues: string[];
  /** A dead-letter queue that exists. */
  dlq: string;
  /** Queues the fuzzer may create, delete and purge. */
  scratch: string[];
  /** Lease tokens of real, live leases. */
  tokens: string[];
  /** Ids of messages stored in ctx.queues. */
  messageIds: string[];
  topics: string[];
  /** Principals that exist (read targets). */
  principals: string[];
  /** Principals the fuzzer may create and delete. */
  scratchPrincipals: string[];
  /** Principals that exist and that the fuzzer must leave alone (no delete, no grants): the auth run's non-admin credential. */
  protectedPrincipals: string[];
  /** Ids of real keys the fuzzer may revoke (never the auth run's valid user key). */
  keyIds: string[];
  /** Set in the auth-required run: its secrets, and each case carries a credential. */
  auth?: AuthSecrets;
}

export type Mutation =
  | { t: 'none' }
  | { t: 'unknown_field'; field: number; wire: 0 | 1 | 2 | 5; len: number }
  | { t: 'truncate'; at: number }
  | { t: 'flip'; at: number; xor: number }
  | { t: 'garbage'; bytes: Uint8Array }
  | { t: 'empty' };

export interface RpcCase {
  kind: 'rpc';
  rpc: string;
  /** One request for unary calls; the sequence written for streaming calls. */
  requests: { value: Record<string, unknown>; mutation: Mutation }[];
  /** The auth-required run: the `authorization` values sent. */
  auth?: CaseAuth;
}

export interface H2Case {
  kind: 'h2';
  abuse: H2Abuse;
}

export type FuzzCase = RpcCase | H2Case;

const B = (s: string) => Buffer.from(s, 'utf8');
const INVALID_UTF8 = [
  [0xff],
  [0xc0, 0x80], // overlong NUL
  [0xed, 0xa0, 0x80], // a UTF-16 surrogate
  [0xe2, 0x82], // truncated sequence
  [0xf8, 0x88, 0x80, 0x80, 0x80],
  [0x80, 0x80],
].map(a => Buffer.from(a));

/** A string field: mostly `valid`, else NUL, control characters, invalid UTF-8, very long, empty. */
export function str(valid: fc.Arbitrary<string>): fc.Arbitrary<Buffer> {
  return fc.oneof(
    { weight: 12, arbitrary: valid.map(B) },
    { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }).map(B) },
    {
      weight: 2,
      arbitrary: fc
        .tuple(valid, fc.nat(), fc.constantFrom('\u0000', '\u0000\u0000x', '\ufffe', '\u001b[2J'))
        .map(([s, at, bad]) => B(s.slice(0, at % (s.length + 1)) + bad + s.slice(at % (s.length + 1)))),
    },
    {
      weight: 2,
      arbitrary: fc
        .tuple(valid, fc.constantFrom(...INVALID_UTF8), fc.boolean())
        .map(([s, bad, front]) => (front ? Buffer.concat([bad, B(s)]) : Buffer.concat([B(s), bad]))),
    },
    { weight: 1, arbitrary: fc.tuple(fc.constantFrom(101, 201, 1001, 70_000), fc.constantFrom('a', 'é', '😀')).map(([n, c]) => B(c.repeat(n))) },
    { weight: 1, arbitrary: fc.constant(Buffer.alloc(0)) },
  );
}

const word = fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,12}$/);
const anyText = fc.string({ maxLength: 30 });
const uuid = fc.uuid({ version: 4 });

const int32 = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: -2, max: 1100 }) },
  { weight: 2, arbitrary: fc.constantFrom(0, -1, 1000, 1001, 10_000, 10_001, 100_000, 2 ** 31 - 1, -(2 ** 31)) },
  { weight: 1, arbitrary: fc.integer() },
);
const int64 = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: -10, max: 10_000_000 }).map(String) },
  { weight: 2, arbitrary: fc.constantFrom('0', '-1', '9223372036854775807', '-9223372036854775808', '9007199254740993', '4294967296') },
  { weight: 1, arbitrary: fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).map(String) },
);
const uint64 = fc.oneof(fc.nat().map(String), fc.constantFrom('0', '18446744073709551615', '9223372036854775808'));

/** A Duration: usually valid and short, else out of range, nanos ≥ 1e9, negative, signs mixed. */
function duration(maxValidSeconds: number): fc.Arbitrary<Record<string, unknown> | undefined> {
  return fc.oneof(
    { weight: 4, arbitrary: fc.constant(undefined) },
    { weight: 6, arbitrary: fc.record({ seconds: fc.integer({ min: 0, max: maxValidSeconds }).map(String), nanos: fc.integer({ min: 0, max: 999_999_999 }) }) },
    {
      weight: 3,
      arbitrary: fc.record({
        seconds: fc.constantFrom('0', '-1', '1', '61', '43201', '604801', '315576000001', '9223372036854775807', '-9223372036854775808'),
        nanos: fc.constantFrom(0, 1, -1, 999_999_999, 1_000_000_000, 2_000_000_000, -1_000_000_000, 2 ** 31 - 1, -(2 ** 31)),
      }),
    },
  );
}

const YEAR = 31_556_952;
const NOW = Math.floor(Date.now() / 1000);
/** A Timestamp: near now, else far outside Postgres's range (year 300000, -5000, ...), nanos out of range. */
const timestamp = fc.oneof(
  { weight: 5, arbitrary: fc.constant(undefined) },
  {
    weight: 4,
    arbitrary: fc.record({ seconds: fc.integer({ min: NOW - 3600, max: NOW + 3600 }).map(String), nanos: fc.integer({ min: 0, max: 999_999_999 }) }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      seconds: fc.constantFrom(
        String((300_000 - 1970) * YEAR), // year 300000
        String((-5000 - 1970) * YEAR), // year -5000
        String((294_277 - 1970) * YEAR), // just past Postgres's last year
        String((-4714 - 1970) * YEAR), // just before its first
        '253402300800', // 10000-01-01
        '-62135596801', // before 0001-01-01
        '0',
        '9223372036854775807',
        '-9223372036854775808',
      ),
      nanos: fc.constantFrom(0, 999_999_999, 1_000_000_000, -1),
    }),
  },
);

export function contextArbs(ctx: FuzzContext) {
  const queue = fc.oneof({ weight: 6, arbitrary: fc.constantFrom(...ctx.queues).map(B) }, { weight: 3, arbitrary: str(word) });
  const scratch = fc.oneof({ weight: 5, arbitrary: fc.constantFrom(...ctx.scratch).map(B) }, { weight: 3, arbitrary: str(word) });
  const adminTarget = fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...ctx.queues, ctx.dlq).map(B) }, { weight: 3, arbitrary: scratch });
  const topic = fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...ctx.topics).map(B) }, { weight: 3, arbitrary: str(word) });
  const messageId = fc.oneof(
    { weight: 4, arbitrary: ctx.messageIds.length ? fc.constantFrom(...ctx.messageIds).map(B) : uuid.map(B) },
    { weight: 3, arbitrary: str(uuid) },
  );
  const forged = fc.oneof(
    // base64url of "queue\nid\nattempt", the token's format, with each part tampered with.
    fc
      .tuple(
        fc.oneof(fc.constantFrom(...ctx.queues), word, fc.constantFrom('a\u0000b', '\u0000', 'q\n', '')),
        fc.oneof(uuid, anyText),
        fc.oneof(fc.nat().map(String), anyText),
      )
      .map(([q, id, n]) => Buffer.from(`${q}\n${id}\n${n}`, 'utf8').toString('base64url')),
    fc.uint8Array({ maxLength: 60 }).map(b => Buffer.from(b).toString('base64url')),
    fc.string({ maxLength: 50 }).map(s => Buffer.from(s).toString('base64url')),
    anyText,
  );
  const realToken = ctx.tokens.length ? fc.constantFrom(...ctx.tokens) : uuid;
  const altered = fc
    .tuple(realToken, fc.nat(), fc.constantFrom('A', '_', '-', '=', ''))
    .map(([t, at, c]) => t.slice(0, at % (t.length + 1)) + c + t.slice((at % (t.length + 1)) + 1));
  const token = fc.oneof(
    { weight: 5, arbitrary: realToken.map(B) },
    { weight: 3, arbitrary: forged.map(B) },
    { weight: 2, arbitrary: altered.map(B) },
    { weight: 1, arbitrary: str(anyText) },
  );

  /**
   * 0..4 items, now and then none, or more than any limit: `oversize` copies of a compact item
   * (never of a hostile one, whose 280 KB strings × 1001 would exhaust the fuzzer's own memory).
   */
  const batch = <T>(item: fc.Arbitrary<T>, compact: fc.Arbitrary<T>, oversize = 1001): fc.Arbitrary<T[]> =>
    fc.oneof(
      { weight: 20, arbitrary: fc.array(item, { minLength: 1, maxLength: 4 }) },
      { weight: 2, arbitrary: fc.constant([] as T[]) },
      { weight: 1, arbitrary: compact.map(x => Array.from({ length: oversize }, () => x)) },
    );

  const smallPayload = fc.uint8Array({ maxLength: 64 }).map(b => Buffer.from(b));
  const bigPayload = fc.constantFrom(1024 * 1024, 1024 * 1024 + 1, 3 * 1024 * 1024).map(n => Buffer.alloc(n, 0x61));
  const headers = fc.array(fc.record({ key: str(word), value: str(anyText) }), { maxLength: 3 });
  const hostile = (payload: fc.Arbitrary<Buffer>) =>
    fc.record(
      {
        id: str(uuid),
        queue,
        payload,
        contentType: str(fc.constantFrom('application/json', 'text/plain', 'a/b; charset=utf-8')),
        headers,
        sender: str(word),
        subject: str(anyText),
        correlationId: str(anyText),
        replyTo: str(word),
        priority: int32,
        deliverAt: timestamp,
        contentHash: str(fc.constant('ab'.repeat(32))),
        enqueuedAt: timestamp,
        expiresAt: timestamp,
        dedupKey: str(anyText),
      },
      { requiredKeys: ['queue', 'payload'] },
    );
  /** A message that should be accepted: every field valid (so Send, Publish and the queue core's deeper paths run). */
  const valid = fc.record(
    {
      id: uuid.map(B),
      queue: fc.constantFrom(...ctx.queues).map(B),
      payload: smallPayload,
      contentType: fc.constantFrom('application/json', 'text/plain').map(B),
      headers: fc.array(fc.record({ key: word.map(B), value: word.map(B) }), { maxLength: 2 }),
      subject: word.map(B),
      correlationId: uuid.map(B),
      priority: fc.integer({ min: -10, max: 10 }),
      deliverAt: fc.option(fc.record({ seconds: fc.integer({ min: NOW - 60, max: NOW + 5 }).map(String), nanos: fc.constant(0) }), { nil: undefined }),
      dedupKey: word.map(B),
    },
    { requiredKeys: ['queue', 'payload'] },
  );
  // Oversized batches are made of small messages; a big payload travels alone (1001 × 3 MiB would be the fuzzer's own problem).
  const messages = fc.oneof(
    { weight: 6, arbitrary: batch(valid, valid) },
    { weight: 6, arbitrary: batch(hostile(smallPayload), valid) },
    { weight: 1, arbitrary: hostile(bigPayload).map(m => [m]) },
  );
  const enumValue = fc.oneof({ weight: 5, arbitrary: fc.integer({ min: 0, max: 7 }) }, { weight: 1, arbitrary: fc.constantFrom(-1, 8, 99, 2 ** 31 - 1) });
  const queueConfig = fc.record(
    {
      visibilityTimeout: duration(60),
      maxAttempts: int32,
      deadLetterQueue: fc.oneof(fc.constant(B(ctx.dlq)), adminTarget),
      retryDelay: duration(5),
      retryBackoff: fc.boolean(),
      retryDelayMax: duration(3600),
      ackedRetention: duration(7200),
      messageTtl: duration(7200),
      dedupWindow: duration(600),
      contentDedup: fc.boolean(),
      maxDepth: int64,
      overflow: enumValue,
    },
    { requiredKeys: [] },
  );
  const fieldNames = [
    'visibility_timeout',
    'max_attempts',
    'dead_letter_queue',
    'retry_delay',
    'retry_backoff',
    'retry_delay_max',
    'acked_retention',
    'message_ttl',
    'dedup_window',
    'content_dedup',
    'max_depth',
    'overflow',
  ];
  const pageToken = fc.oneof(
    str(anyText),
    fc.uint8Array({ maxLength: 30 }).map(b => B(Buffer.from(b).toString('base64url'))),
  );
  const tokens = batch(token, realToken.map(B));

  // ─── Auth ──────────────────────────────────────────────────────────────────────────────────
  const principalWord = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._:@-]{0,14}$/);
  /** Names at and past the limits: 1-100 of [A-Za-z0-9._:@-], a letter or digit first. */
  const edgeName = fc.constantFrom(
    'a'.repeat(100),
    'a'.repeat(101),
    'a'.repeat(1000),
    '1',
    '-a',
    '.a',
    '@a',
    ':',
    'a:b@c.d',
    'A@B',
    'a b',
    'é',
    'a/b',
    'a*',
    '*',
    'admin',
    'anonymous',
    'ADMIN',
  );
  const existing = fc.constantFrom(...ctx.principals);
  const principal = fc.oneof(
    { weight: 6, arbitrary: existing.map(B) },
    { weight: 3, arbitrary: fc.constantFrom(...ctx.scratchPrincipals).map(B) },
    { weight: 3, arbitrary: str(principalWord) },
    { weight: 1, arbitrary: edgeName.map(B) },
  );
  /** Principals the fuzzer may change (delete, grant to): never a protected one. */
  const unprotected = ctx.principals.filter(p => !ctx.protectedPrincipals.includes(p));
  const mutable = fc.oneof(
    { weight: 5, arbitrary: fc.constantFrom(...ctx.scratchPrincipals).map(B) },
    { weight: 2, arbitrary: (unprotected.length ? fc.constantFrom(...unprotected) : principalWord).map(B) },
    { weight: 3, arbitrary: str(principalWord) },
    { weight: 1, arbitrary: edgeName.filter(n => !ctx.protectedPrincipals.includes(n)).map(B) },
  );
  const optionalPrincipal = fc.oneof({ weight: 1, arbitrary: fc.constant(B('')) }, { weight: 3, arbitrary: principal });
  const metaKey = fc.oneof(
    { weight: 6, arbitrary: str(word) },
    { weight: 1, arbitrary: fc.constantFrom('', 'k'.repeat(64), 'k'.repeat(65), 'k'.repeat(1000)).map(B) },
  );
  const metaValue = fc.oneof({ weight: 6, arbitrary: str(anyText) }, { weight: 1, arbitrary: fc.constantFrom(1024, 1025, 70_000).map(n => B('v'.repeat(n))) });
  const entry = fc.record({ key: metaKey, value: metaValue });
  const compactEntry = fc.tuple(fc.nat(), word).map(([i, w]) => ({ key: B(`k${i}`), value: B(w) }));
  const metadata = fc.oneof(
    { weight: 8, arbitrary: fc.array(entry, { maxLength: 3 }) },
    // Many: at and past the 32 allowed; the same key twice.
    {
      weight: 1,
      arbitrary: fc
        .constantFrom(32, 33, 1000)
        .chain(n => compactEntry.map(e => Array.from({ length: n }, (_, i) => ({ key: B(`${e.key.toString()}-${i}`), value: e.value })))),
    },
    { weight: 1, arbitrary: compactEntry.map(e => [e, e, { key: e.key, value: B('other') }]) },
  );
  const keyExpiry = fc.oneof(
    { weight: 3, arbitrary: fc.constant(undefined) },
    {
      weight: 3,
      arbitrary: fc.record({ seconds: fc.integer({ min: NOW + 60, max: NOW + 400 * 86_400 }).map(String), nanos: fc.integer({ min: 0, max: 999_999_999 }) }),
    },
    // In the past (just, and long ago), far future (year 200000, past JavaScript's and Postgres's), invalid nanos.
    { weight: 1, arbitrary: fc.constantFrom(NOW - 1, NOW - 86_400, 0, -1).map(sec => ({ seconds: String(sec), nanos: 0 })) },
    { weight: 2, arbitrary: timestamp },
  );
  const hex16 = fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: 16, maxLength: 16 });
  const realKeyIds = [...ctx.keyIds, ...(ctx.auth ? [ctx.auth.revokedKeyId, ctx.auth.deletedKeyId, ctx.auth.expiredKeyId] : [])];
  const keyId = fc.oneof(
    { weight: 5, arbitrary: realKeyIds.length ? fc.constantFrom(...realKeyIds).map(B) : hex16.map(B) },
    { weight: 2, arbitrary: hex16.map(B) },
    // With and without the ibx_ prefix, a whole key (its secret must not be quoted back), wrong lengths and case.
    {
      weight: 2,
      arbitrary: fc
        .oneof(realKeyIds.length ? fc.constantFrom(...realKeyIds) : hex16, hex16)
        .chain(id => fc.constantFrom(`ibx_${id}`, `ibx_${id}_`, `ibx_${id}_${'Q'.repeat(43)}`, id.toUpperCase(), id.slice(1), `${id}0`, ` ${id}`))
        .map(B),
    },
    { weight: 1, arbitrary: ctx.auth ? fc.constantFrom(ctx.auth.revokedKey, ctx.auth.expiredKey, ctx.auth.deletedKey).map(B) : hex16.map(B) },
    { weight: 1, arbitrary: str(anyText) },
  );
  /** A grant's target: a name, a prefix, `*`, and shapes that are neither. */
  const pattern = fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(...ctx.queues, ...ctx.scratch, ...ctx.topics, ctx.dlq).map(B) },
    {
      weight: 3,
      arbitrary: fc
        .constantFrom(
          '*',
          'a.*',
          'fz-*',
          'fzc-*',
          'fz-a*',
          'fzp-*',
          '**',
          '.*',
          '*a',
          'a*b',
          '*.*',
          'a.**',
          '-*',
          '',
          ' *',
          '*\u0000',
          `${'a'.repeat(99)}*`,
          `${'a'.repeat(100)}*`,
          'a'.repeat(100),
          'a'.repeat(101),
        )
        .map(B),
    },
    { weight: 2, arbitrary: str(word.map(w => `${w}*`)) },
    { weight: 1, arbitrary: str(anyText) },
  );
  /** Verbs: the four, VERB_UNSPECIFIED, and numbers no enum value has; repeated, or a thousand. */
  const verb = fc.oneof(
    { weight: 8, arbitrary: fc.integer({ min: 1, max: 4 }) },
    { weight: 1, arbitrary: fc.constantFrom(0, -1, 5, 99, 2 ** 31 - 1, -(2 ** 31)) },
  );
  const verbs = fc.oneof(
    { weight: 8, arbitrary: fc.array(verb, { maxLength: 5 }) },
    { weight: 1, arbitrary: fc.constant([] as number[]) },
    { weight: 1, arbitrary: verb.map(v => Array.from({ length: 1000 }, () => v)) },
  );
  const principalPageToken = fc.oneof(
    { weight: 2, arbitrary: pageToken },
    {
      weight: 2,
      arbitrary: fc
        .oneof(existing, principalWord, fc.constantFrom('a\u0000b', 'a'.repeat(101), '', 'é'))
        .map(n => B(Buffer.from(n, 'utf8').toString('base64url'))),
    },
  );
  const auditPageToken = fc.oneof(
    { weight: 2, arbitrary: pageToken },
    {
      weight: 3,
      arbitrary: fc
        .constantFrom(
          '1',
          '0',
          '-1',
          '01',
          '1e5',
          ' 1',
          '9223372036854775807',
          '9223372036854775808',
          '9999999999999999999',
          '18446744073709551616',
          '99999999999999999999',
        )
        .map(B),
    },
    { weight: 1, arbitrary: fc.nat().map(n => B(String(n))) },
  );
  const action = fc.oneof(
    {
      weight: 4,
      arbitrary: fc.constantFrom('denied', 'principal.created', 'principal.deleted', 'key.created', 'key.revoked', 'grant.added', 'grant.removed').map(B),
    },
    { weight: 2, arbitrary: str(anyText) },
  );

  /** One generator per RPC, keyed "Service.Method"; streaming RPCs yield the sequence of requests. */
  const requests: Record<string, fc.Arbitrary<Record<string, unknown>[]>> = {
    'Inbox.Send': fc.record({ messages }).map(one),
    'Inbox.SendStream': fc.array(fc.record({ sequence: uint64, messages }), { minLength: 1, maxLength: 4 }),
    'Inbox.Lease': fc.record({ queue, maxMessages: int32, visibilityTimeout: duration(600), wait: duration(2) }, { requiredKeys: ['queue'] }).map(one),
    'Inbox.Subscribe': fc
      .tuple(
        fc.record(
          {
            queue,
            flowControl: fc.option(fc.record({ maxOutstandingMessages: int32, maxOutstandingBytes: int64 }), { nil: undefined }),
            visibilityTimeout: duration(600),
          },
          { requiredKeys: ['queue'] },
        ),
        fc.array(
          fc.record(
            {
              queue,
              flowControl: fc.record({ maxOutstandingMessages: int32, maxOutstandingBytes: int64 }),
              ackLeaseTokens: tokens,
              nackLeaseTokens: tokens,
              nackDelay: duration(5),
              extendLeaseTokens: tokens,
              extendVisibilityTimeout: duration(600),
              drain: fc.boolean(),
              nackDeadLetter: fc.boolean(),
              nackError: str(anyText),
            },
            { requiredKeys: [] },
          ),
          { maxLength: 3 },
        ),
      )
      .map(([first, rest]) => [first, ...rest]),
    'Inbox.Ack': fc.record({ leaseTokens: tokens }).map(one),
    'Inbox.Nack': fc
      .record({ leaseTokens: tokens, delay: duration(5), deadLetter: fc.boolean(), error: str(anyText) }, { requiredKeys: ['leaseTokens'] })
      .map(one),
    'Inbox.ExtendLease': fc.record({ leaseTokens: tokens, visibilityTimeout: duration(600) }, { requiredKeys: ['leaseTokens'] }).map(one),
    'Inbox.Publish': fc.record({ topic, messages }).map(one),
    'Inbox.ListMessages': fc.record({ queue, state: enumValue, pageSize: int32, pageToken, newestFirst: fc.boolean() }, { requiredKeys: ['queue'] }).map(one),
    'Inbox.GetMessage': fc.record({ queue, id: messageId }).map(one),
    'Queues.CreateQueue': fc.record({ name: fc.oneof(scratch, queue), config: queueConfig }, { requiredKeys: ['name'] }).map(one),
    'Queues.GetQueue': fc.record({ name: adminTarget }).map(one),
    'Queues.ListQueues': fc.record({ pageSize: int32, pageToken }, { requiredKeys: [] }).map(one),
    'Queues.DeleteQueue': fc.record({ name: scratch }).map(one),
    'Queues.PurgeQueue': fc.record({ name: scratch }).map(one),
    'Queues.GetQueueStats': fc.record({ name: adminTarget }).map(one),
    'Queues.UpdateQueue': fc
      .record(
        { name: adminTarget, config: queueConfig, updateMask: fc.record({ paths: fc.array(str(fc.constantFrom(...fieldNames)), { maxLength: 4 }) }) },
        { requiredKeys: ['name'] },
      )
      .map(one),
    'Queues.Redrive': fc
      .record(
        { queue: fc.oneof(fc.constant(B(ctx.dlq)), queue), messageIds: batch(messageId, uuid.map(B), 100_001), destination: queue, limit: int32 },
        { requiredKeys: ['queue'] },
      )
      .map(one),
    'Queues.AddTopicSubscription': fc.record({ topic, queue: fc.oneof(queue, scratch) }).map(one),
    'Queues.RemoveTopicSubscription': fc.record({ topic, queue: fc.oneof(queue, scratch) }).map(one),
    'Queues.ListTopics': fc.record({ pageSize: int32, pageToken }, { requiredKeys: [] }).map(one),
    'Auth.WhoAmI': fc.constant({}).map(one),
    'Auth.CreatePrincipal': fc
      .record(
        {
          name: fc.oneof({ weight: 3, arbitrary: mutable }, { weight: 2, arbitrary: str(principalWord) }, { weight: 1, arbitrary: principal }),
          metadata,
          admin: fc.boolean(),
          maxStreams: int32,
          maxSendRate: int32,
        },
        { requiredKeys: ['name'] },
      )
      .map(one),
    'Auth.GetPrincipal': fc.record({ name: principal }).map(one),
    'Auth.ListPrincipals': fc.record({ pageSize: int32, pageToken: principalPageToken }, { requiredKeys: [] }).map(one),
    'Auth.DeletePrincipal': fc.record({ name: mutable }).map(one),
    'Auth.CreateKey': fc.record({ principal: optionalPrincipal, expiresAt: keyExpiry }, { requiredKeys: [] }).map(one),
    'Auth.ListKeys': fc.record({ principal: optionalPrincipal }, { requiredKeys: [] }).map(one),
    'Auth.RevokeKey': fc.record({ keyId }).map(one),
    'Auth.AddGrant': fc.record({ principal: mutable, queue: pattern, verbs }, { requiredKeys: ['principal', 'queue'] }).map(one),
    'Auth.RemoveGrant': fc.record({ principal, queue: pattern, verbs }, { requiredKeys: ['principal', 'queue'] }).map(one),
    'Auth.ListGrants': fc.record({ principal: optionalPrincipal }, { requiredKeys: [] }).map(one),
    'Auth.ListAuditEvents': fc
      .record(
        {
          pageSize: int32,
          pageToken: auditPageToken,
          actions: batch(
            action,
            action.filter(a => a.length < 40),
            10_000,
          ),
          principal: optionalPrincipal,
        },
        { requiredKeys: [] },
      )
      .map(one),
  };
  return { requests };
}

function one<T>(x: T): T[] {
  return [x];
}

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 16, arbitrary: fc.constant({ t: 'none' } as Mutation) },
  {
    weight: 1,
    arbitrary: fc.record({
      t: fc.constant('unknown_field' as const),
      field: fc.integer({ min: 16, max: 536_870_911 }),
      wire: fc.constantFrom(0 as const, 1 as const, 2 as const, 5 as const),
      len: fc.nat(40),
    }),
  },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('truncate' as const), at: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('flip' as const), at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('garbage' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 12 }) }) },
  { weight: 1, arbitrary: fc.constant({ t: 'empty' } as Mutation) },
);

/** Weight of each RPC of a service (the data plane gets more cases), and of the raw HTTP/2 abuse. */
const WEIGHTS: Record<string, number> = { Inbox: 8, Queues: 4, Auth: 3 };
const H2_WEIGHT = 12;

/** Every RPC of the services under test, with weights; in the auth-required run, each with a credential. */
export function caseArb(ctx: FuzzContext): fc.Arbitrary<FuzzCase> {
  const { requests } = contextArbs(ctx);
  const missing = RPCS.filter(r => !requests[r.name]).map(r => r.name);
  if (missing.length) throw new Error(`no fuzz generator for ${missing.join(', ')}: add one to bench/fuzz/arbitraries.ts`);
  const rpcCases = RPCS.map(r => {
    // Checked just above: every RPC has a generator.
    const withMutations = requests[r.name]!.chain(values =>
      fc
        .array(mutation, { minLength: values.length, maxLength: values.length })
        .map(ms => ({ kind: 'rpc' as const, rpc: r.name, requests: values.map((value, i) => ({ value, mutation: ms[i]! })) })),
    );
    return {
      weight: WEIGHTS[r.name.split('.')[0] ?? ''] ?? 2,
      arbitrary: ctx.auth ? fc.tuple(withMutations, CRED_ARB).map(([c, auth]): RpcCase => ({ ...c, auth })) : withMutations.map((c): RpcCase => c),
    };
  });
  return fc.oneof(...rpcCases, { weight: H2_WEIGHT, arbitrary: H2_ABUSE.map(abuse => ({ kind: 'h2' as const, abuse })) });
}

export function rpcOf(name: string): Rpc {
  const r = RPCS.find(x => x.name === name);
  if (!r) throw new Error(`unknown rpc ${name}`);
  return r;
}

function varint(n: number | bigint): Buffer {
  let v = BigInt.asUintN(64, BigInt(n));
  const out: number[] = [];
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v) b |= 0x80;
    out.push(b);
  } while (v);
  return Buffer.from(out);
}

export function applyMutation(bytes: Buffer, m: Mutation): Buffer {
  switch (m.t) {
    case 'none':
      return bytes;
    case 'empty':
      return Buffer.alloc(0);
    case 'truncate':
      return bytes.length ? bytes.subarray(0, m.at % bytes.length) : bytes;
    case 'flip': {
      if (!bytes.length) return bytes;
      const b = Buffer.from(bytes);
      b[m.at % b.length]! ^= m.xor;
      return b;
    }
    case 'garbage':
      return Buffer.concat([bytes, Buffer.from(m.bytes)]);
    case 'unknown_field': {
      const tag = varint(m.field * 8 + m.wire);
      const body =
        m.wire === 0
          ? varint(m.len * 1_000_003)
          : m.wire === 1
            ? Buffer.alloc(8, m.len)
            : m.wire === 5
              ? Buffer.alloc(4, m.len)
              : Buffer.concat([varint(m.len), Buffer.alloc(m.len, 0x7a)]);
      return Buffer.concat([bytes, tag, body]);
    }
  }
}

/** The bytes of each request of a case, mutation applied. */
export function encodeCase(c: RpcCase): Buffer[] {
  const r = rpcOf(c.rpc);
  return c.requests.map(q => applyMutation(encodeRaw(r.requestType, q.value), q.mutation));
}

/** A case as JSON for a reproducer: Buffers as text when valid UTF-8 (long ones abridged), else as hex. */
export function caseJson(c: FuzzCase): unknown {
  return JSON.parse(
    JSON.stringify(c, function (this: unknown, _k, v) {
      if (v && typeof v === 'object' && (v as { type?: string }).type === 'Buffer' && Array.isArray((v as { data?: unknown }).data)) {
        const b = Buffer.from((v as { data: number[] }).data);
        const text = b.toString('utf8');
        const ok = Buffer.from(text, 'utf8').equals(b);
        const shown = ok ? text : `hex:${b.toString('hex')}`;
        return shown.length > 200 ? `${shown.slice(0, 100)}…(${b.length} bytes)` : shown;
      }
      if (v instanceof Uint8Array) return `hex:${Buffer.from(v).toString('hex').slice(0, 200)}`;
      if (Array.isArray(v) && v.length > 20) return [...v.slice(0, 3), `…${v.length} items in all (all alike)`];
      return v;
    }),
  );
}
