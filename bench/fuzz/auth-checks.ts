import type { Verb } from '@inboxd/sdk';
import { encodeCase, type FuzzCase, type FuzzContext, type RpcCase, rpcOf } from './arbitraries.js';
import { AUTH_NAMES, type CredClass, userMay, userSees } from './auth.js';
import type { Outcome } from './raw-client.js';
import { decodeTyped } from './schema.js';

/**
 * The auth-required run's oracle: what the server must answer given the credential a case carried
 * (auth.ts classifies it when the case is sent). Every check is one that holds whatever else the
 * fuzzer did meanwhile (it never deletes the user, grants it more, or revokes its key):
 *
 * - no valid credential (none, garbage, revoked, expired, of a deleted principal, several values
 *   none valid): every Inbox/Queues/Auth RPC ends UNAUTHENTICATED. Not OK, not PERMISSION_DENIED,
 *   not INVALID_ARGUMENT (authentication comes before the request is looked at), and a Subscribe
 *   is not left open. Allowed besides: what grpc-js or HTTP/2 refuse before any handler runs
 *   (a message past the size limit, the partly-received cap, a header nghttp2 rejects).
 * - the non-admin key (or several values, none the admin's): CreatePrincipal, ListPrincipals,
 *   DeletePrincipal and ListAuditEvents never answer OK.
 * - the non-admin key, and a request as generated (not mutated): OK only within its grants (a
 *   queue verb on a name USER_GRANTS does not cover, another principal's keys or principal, a
 *   grant on a name it does not administer), and what it lists (queues, topics, grants, keys)
 *   only what it may see.
 * - the admin or the non-admin key: Ack / Nack / ExtendLease of a token leased by the other is
 *   never OK; WhoAmI names the principal the key belongs to.
 */

export interface AuthVerdict {
  /** Set when a check failed: the failure's kind. */
  kind?: string;
  /** The checks that applied to the case (counted in the report). */
  checked: string[];
}

const ADMIN_ONLY = new Set(['Auth.CreatePrincipal', 'Auth.ListPrincipals', 'Auth.DeletePrincipal', 'Auth.ListAuditEvents']);

/** Statuses grpc-js's server (or the receiving cap) sends before a handler, hence before authentication. */
const BEFORE_HANDLER = /Received message larger than max|decompresses to a size larger|INBOXD_MAX_RECEIVING_BYTES/;

type Json = Record<string, any>;

/** The requests as the server decodes them, when no mutation could make ours decode differently. */
function decodedRequests(c: RpcCase): Json[] | undefined {
  if (c.requests.some(r => r.mutation.t !== 'none' && r.mutation.t !== 'unknown_field')) return undefined;
  try {
    const type = rpcOf(c.rpc).requestType;
    return encodeCase(c).map(b => decodeTyped(type, b));
  } catch {
    return undefined;
  }
}

function response(c: RpcCase, o: Outcome): Json | undefined {
  if (!o.response) return undefined;
  try {
    return decodeTyped(rpcOf(c.rpc).responseType, o.response);
  } catch {
    return undefined;
  }
}

/** The (verb, name) pairs a unary Inbox/Queues request needs, when the server needs a grant for each. */
function needs(rpc: string, r: Json): [Verb, string][] | undefined {
  const s = (x: unknown) => (typeof x === 'string' ? x : '');
  switch (rpc) {
    case 'Inbox.Send':
      return (r.messages ?? []).map((m: Json) => ['send', s(m.queue)] as [Verb, string]);
    case 'Inbox.Publish':
      return [['send', s(r.topic)]];
    case 'Inbox.Lease':
      return [['consume', s(r.queue)]];
    case 'Inbox.ListMessages':
    case 'Inbox.GetMessage':
      return [['browse', s(r.queue)]];
    case 'Queues.GetQueue':
    case 'Queues.GetQueueStats':
      return [['browse', s(r.name)]];
    case 'Queues.DeleteQueue':
    case 'Queues.PurgeQueue':
    case 'Queues.UpdateQueue':
      return [['admin', s(r.name)]];
    case 'Queues.CreateQueue':
      return [['admin', s(r.name)], ...(r.config?.deadLetterQueue ? [['send', s(r.config.deadLetterQueue)] as [Verb, string]] : [])];
    case 'Queues.Redrive':
      return [['admin', s(r.queue)], ...(r.destination ? [['send', s(r.destination)] as [Verb, string]] : [])];
    case 'Queues.AddTopicSubscription':
      return [
        ['admin', s(r.queue)],
        ['consume', s(r.topic)],
      ];
    // Taking one's own queue off a topic needs admin on the queue only.
    case 'Queues.RemoveTopicSubscription':
      return [['admin', s(r.queue)]];
    default:
      return undefined;
  }
}

/** What the non-admin key got OK for and should not have, or undefined. */
function userOverreach(c: RpcCase, o: Outcome, foreignKeyIds: string[]): string | undefined {
  const req = decodedRequests(c)?.[0];
  if (!req) return undefined;
  const me = AUTH_NAMES.user;
  const res = response(c, o);
  switch (c.rpc) {
    case 'Auth.GetPrincipal':
      return req.name !== me ? `read principal ${JSON.stringify(req.name)}` : undefined;
    case 'Auth.CreateKey':
      return req.principal && req.principal !== me ? `created a key for ${JSON.stringify(req.principal)}` : undefined;
    case 'Auth.ListKeys': {
      if (req.principal && req.principal !== me) return `listed the keys of ${JSON.stringify(req.principal)}`;
      const other = (res?.keys ?? []).find((k: Json) => k.principal !== me);
      return other ? `was shown key ${other.id} of ${other.principal}` : undefined;
    }
    case 'Auth.RevokeKey':
      return foreignKeyIds.includes(req.keyId) ? `revoked key ${req.keyId} of another principal` : undefined;
    case 'Auth.AddGrant':
    case 'Auth.RemoveGrant':
      return typeof req.queue === 'string' && !req.queue.startsWith('fzc-')
        ? `changed grants on ${JSON.stringify(req.queue)}, which it does not administer`
        : undefined;
    case 'Auth.ListGrants': {
      const other = (res?.grants ?? []).find((g: Json) => g.principal !== me && !String(g.queue).startsWith('fzc-'));
      return other ? `was shown ${other.principal}'s grant on ${other.queue}` : undefined;
    }
    case 'Queues.ListQueues': {
      const q = (res?.queues ?? []).find((x: Json) => !userSees(String(x.name)));
      return q ? `was shown queue ${q.name}, on which it holds no grant` : undefined;
    }
    case 'Queues.ListTopics': {
      for (const t of res?.topics ?? []) {
        if (!userSees(String(t.name))) return `was shown topic ${t.name}, on which it holds no grant`;
        const q = (t.queues ?? []).find((x: string) => !userSees(x));
        if (q) return `was shown queue ${q} (subscribed to ${t.name}), on which it holds no grant`;
      }
      return undefined;
    }
  }
  const want = needs(c.rpc, req);
  const bad = want?.find(([verb, name]) => name && !userMay(verb, name));
  return bad ? `${bad[0]} on ${JSON.stringify(bad[1])}, which its grants do not allow` : undefined;
}

/** Tokens of the request leased by a principal other than `me`. */
function foreignTokens(c: RpcCase, ownerOf: Record<string, string>, me: string): string[] {
  const req = decodedRequests(c)?.[0];
  if (!req) return [];
  return ((req.leaseTokens ?? []) as string[]).filter(t => ownerOf[t] !== undefined && ownerOf[t] !== me);
}

export function judgeAuth(c: FuzzCase, o: Outcome, ctx: FuzzContext): AuthVerdict {
  const checked: string[] = [];
  if (c.kind !== 'rpc' || !ctx.auth || !o.auth || o.hang) return { checked };
  const cls: CredClass = o.auth.cls;
  const fail = (kind: string) => ({ kind, checked });

  if (cls === 'none' || cls === 'invalid') {
    checked.push('no valid credential → UNAUTHENTICATED');
    if (o.status === 'UNAUTHENTICATED') return { checked };
    if (o.status === 'open') return fail('no valid credential, yet the stream was accepted');
    // No gRPC status: refused by HTTP/2 (a header value nghttp2 rejects) before any call was made.
    if (o.code === undefined) return { checked };
    if (o.status === 'RESOURCE_EXHAUSTED' && BEFORE_HANDLER.test(o.details)) return { checked };
    return fail(`no valid credential, yet ${o.status}`);
  }

  if ((cls === 'user' || cls === 'nonadmin') && ADMIN_ONLY.has(c.rpc)) {
    checked.push('non-admin key, admin-only RPC → not OK');
    if (o.status === 'OK') return fail(`non-admin key, yet OK on admin-only ${c.rpc}`);
  }
  if (cls !== 'user' && cls !== 'admin') return { checked };
  const me = cls === 'admin' ? AUTH_NAMES.admin : AUTH_NAMES.user;

  if (c.rpc === 'Auth.WhoAmI' && o.status === 'OK') {
    checked.push('WhoAmI names the key’s principal');
    const r = response(c, o);
    if (r && (r.principal !== me || Boolean(r.admin) !== (cls === 'admin')))
      return fail(`WhoAmI with the ${cls} key answered principal ${JSON.stringify(r.principal)} admin ${Boolean(r.admin)}`);
  }
  if (c.rpc === 'Inbox.Ack' || c.rpc === 'Inbox.Nack' || c.rpc === 'Inbox.ExtendLease') {
    const foreign = foreignTokens(c, ctx.auth.tokenOwner, me);
    const [one] = foreign;
    if (one !== undefined) {
      checked.push('another principal’s lease token → not OK');
      if (o.status === 'OK') return fail(`${cls} key settled a lease token issued to ${ctx.auth.tokenOwner[one]}`);
    }
  }
  if (cls === 'user' && !ADMIN_ONLY.has(c.rpc) && !rpcOf(c.rpc).requestStream) {
    checked.push('non-admin key → only within its grants');
    if (o.status === 'OK') {
      const over = userOverreach(c, o, ctx.auth.foreignKeyIds);
      if (over) return fail(`non-admin key got OK on ${c.rpc}: ${over}`);
    }
  }
  if (c.rpc === 'Auth.RevokeKey') {
    checked.push('RevokeKey quotes no secret');
    const secrets = [ctx.auth.adminKey, ctx.auth.userKey, ctx.auth.revokedKey, ctx.auth.expiredKey, ctx.auth.deletedKey].map(k => k.slice(-43));
    if (secrets.some(sec => o.details.includes(sec))) return fail('RevokeKey quoted a key’s secret in its status message');
  }
  return { checked };
}
