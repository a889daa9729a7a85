import {
  AddGrantRequest,
  CreateKeyRequest,
  CreatePrincipalRequest,
  DeletePrincipalRequest,
  GetPrincipalRequest,
  ListAuditEventsRequest,
  ListGrantsRequest,
  ListKeysRequest,
  ListPrincipalsRequest,
  type ApiKey as ProtoApiKey,
  type AuditEvent as ProtoAuditEvent,
  type Grant as ProtoGrant,
  type Principal as ProtoPrincipal,
  Verb as ProtoVerb,
  RemoveGrantRequest,
  RevokeKeyRequest,
  WhoAmIRequest,
} from '@inboxd/proto/v1/auth';
import type { CallOptions, Rpc } from './rpc.js';

/**
 * What a grant allows on a queue (or on every queue under a prefix):
 *   send     Send and Publish to it
 *   consume  Lease, Subscribe, Ack, Nack, ExtendLease
 *   browse   GetQueue, GetQueueStats, ListMessages, GetMessage; the queue shows in ListQueues
 *   admin    CreateQueue, UpdateQueue, PurgeQueue, DeleteQueue, Redrive, topic subscriptions, grants on it
 */
export type Verb = 'send' | 'consume' | 'browse' | 'admin';

/** Every verb, in the proto's order. */
export const VERBS: readonly Verb[] = ['send', 'consume', 'browse', 'admin'];

const TO_PROTO: Record<Verb, ProtoVerb> = {
  send: ProtoVerb.VERB_SEND,
  consume: ProtoVerb.VERB_CONSUME,
  browse: ProtoVerb.VERB_BROWSE,
  admin: ProtoVerb.VERB_ADMIN,
};

function toProtoVerbs(verbs: readonly Verb[]): ProtoVerb[] {
  return verbs.map(v => {
    const p = TO_PROTO[v];
    if (p === undefined) throw new RangeError(`unknown verb ${JSON.stringify(v)}: want one of ${VERBS.join(', ')}`);
    return p;
  });
}

/** Verbs the SDK does not know (from a newer server) are left out. */
function fromProtoVerbs(verbs: readonly ProtoVerb[]): Verb[] {
  return verbs.flatMap(p => VERBS.filter(v => TO_PROTO[v] === p));
}

/** An identity calls are made as: an agent or a service. */
export interface PrincipalInfo {
  name: string;
  metadata: Record<string, string>;
  /** May do everything, on every queue, and manage principals. */
  admin: boolean;
  createdAt?: Date;
  /** The last call any replica saw from it (to within a minute); unset: never. */
  lastSeenAt?: Date;
  /** Streams it holds open, on all replicas. */
  openStreams: number;
  /** Most streams it may hold open on one replica; 0: the server's default. */
  maxStreams: number;
  /** Most messages a second it may send through one replica; 0: the server's default. */
  maxSendRate: number;
  createdBy: string;
}

/** An API key, without its secret (which only createKey returns, once). */
export interface ApiKeyInfo {
  /** The public part of the key (`ibx_<id>_<secret>`): names it in lists, logs and revokeKey. */
  id: string;
  principal: string;
  createdAt?: Date;
  /** Unset: never expires. */
  expiresAt?: Date;
  /** Set once revoked. */
  revokedAt?: Date;
  createdBy: string;
  lastUsedAt?: Date;
}

/** Verbs a principal holds on a queue name, or on a prefix ending in '*' ('team-a.*'; '*' is every name). */
export interface GrantInfo {
  principal: string;
  queue: string;
  verbs: Verb[];
}

export interface AuditEventInfo {
  id: string;
  at?: Date;
  /** Who acted (or was denied); empty for a call without a valid credential. */
  principal: string;
  /** denied, principal.created, principal.deleted, key.created, key.revoked, grant.added, grant.removed. */
  action: string;
  /** The RPC, e.g. inboxd.v1.Inbox/Lease. */
  method: string;
  verb: string;
  /** The queue, principal or key acted on. */
  target: string;
  /** Why a call was denied (no_grant, revoked_key, …) or what changed. */
  detail: string;
  /** The client's address. */
  peer: string;
}

/** Who the server takes the caller to be, and what it may do. */
export interface WhoAmI {
  /** 'anonymous' when the server runs without auth. */
  principal: string;
  admin: boolean;
  /** api_key, admin_key, jwt, mtls, or none (auth off). */
  method: string;
  /** The API key's id, when authenticated by one (else ''). */
  keyId: string;
  grants: GrantInfo[];
  /** Queues it created and so owns: every verb on each. */
  ownedQueues: string[];
  authRequired: boolean;
}

export interface CreatePrincipalOptions {
  admin?: boolean;
  metadata?: Record<string, string>;
  /** Most streams it may hold open on one replica (unset: the server's default). */
  maxStreams?: number;
  /** Most messages a second it may send through one replica (unset: the server's default). */
  maxSendRate?: number;
}

export interface AuditEventsOptions {
  /** Only these actions ('denied', 'key.created', …); unset or empty: all. */
  actions?: string[];
  /** Only events of this principal. */
  principal?: string;
  /** Most events returned, newest first (default 100). */
  limit?: number;
}

function toPrincipal(p: ProtoPrincipal | undefined): PrincipalInfo {
  return {
    name: p?.name ?? '',
    metadata: { ...p?.metadata },
    admin: p?.admin ?? false,
    createdAt: p?.createdAt,
    lastSeenAt: p?.lastSeenAt,
    openStreams: p?.openStreams ?? 0,
    maxStreams: p?.maxStreams ?? 0,
    maxSendRate: p?.maxSendRate ?? 0,
    createdBy: p?.createdBy ?? '',
  };
}

function toKey(k: ProtoApiKey | undefined): ApiKeyInfo {
  return {
    id: k?.id ?? '',
    principal: k?.principal ?? '',
    createdAt: k?.createdAt,
    expiresAt: k?.expiresAt,
    revokedAt: k?.revokedAt,
    createdBy: k?.createdBy ?? '',
    lastUsedAt: k?.lastUsedAt,
  };
}

function toGrant(g: ProtoGrant | undefined, principal = '', queue = ''): GrantInfo {
  return { principal: g?.principal || principal, queue: g?.queue || queue, verbs: fromProtoVerbs(g?.verbs ?? []) };
}

function toEvent(e: ProtoAuditEvent): AuditEventInfo {
  return { id: e.id, at: e.at, principal: e.principal, action: e.action, method: e.method, verb: e.verb, target: e.target, detail: e.detail, peer: e.peer };
}

/** A whole number ≥ 0 that fits the proto's int32. */
function int32(name: string, v: number | undefined): number {
  if (v === undefined) return 0;
  if (!Number.isInteger(v) || v < 0 || v > 2_147_483_647) throw new RangeError(`${name} must be a whole number from 0 to 2147483647, not ${v}`);
  return v;
}

/**
 * The Auth service, typed: principals, their API keys, grants, and the audit log.
 *
 * Retries: every call takes the client's retry path (UNAVAILABLE, DEADLINE_EXCEEDED and ABORTED
 * are retried), as QueueAdmin does for create(). That is safe for the reads, deletes, revokeKey,
 * addGrant (it adds verbs: twice is once) and removeGrant. It is not quite for the two creates,
 * when a first attempt reached the server but its answer was lost (DEADLINE_EXCEEDED):
 * createPrincipal's retry may then reject ALREADY_EXISTS for the principal the first attempt
 * made, and createKey's retry makes a second key, the first one's secret never having been seen
 * (list and revoke it with listKeys / revokeKey). Pass `{ retry: { maxAttempts: 1 } }` to rule that out.
 */
export class AuthAdmin {
  constructor(private readonly rpc: Rpc) {}

  /** Who the server takes this client to be, and what it may do. */
  async whoami(options?: CallOptions): Promise<WhoAmI> {
    const r = await this.rpc.call(c => [c.auth, c.auth.whoAmI], WhoAmIRequest.fromPartial({}), options);
    return {
      principal: r.principal,
      admin: r.admin,
      method: r.method,
      keyId: r.keyId,
      grants: r.grants.map(g => toGrant(g)),
      ownedQueues: r.ownedQueues,
      authRequired: r.authRequired,
    };
  }

  /** Creates a principal (an admin's call). Rejects ALREADY_EXISTS when the name is taken. */
  async createPrincipal(name: string, opts: CreatePrincipalOptions = {}, options?: CallOptions): Promise<PrincipalInfo> {
    const req = CreatePrincipalRequest.fromPartial({
      name,
      admin: opts.admin ?? false,
      metadata: opts.metadata ?? {},
      maxStreams: int32('maxStreams', opts.maxStreams),
      maxSendRate: int32('maxSendRate', opts.maxSendRate),
    });
    return toPrincipal((await this.rpc.call(c => [c.auth, c.auth.createPrincipal], req, options)).principal);
  }

  async getPrincipal(name: string, options?: CallOptions): Promise<PrincipalInfo> {
    return toPrincipal((await this.rpc.call(c => [c.auth, c.auth.getPrincipal], GetPrincipalRequest.fromPartial({ name }), options)).principal);
  }

  /** Every principal, all pages. */
  async listPrincipals(options?: CallOptions): Promise<PrincipalInfo[]> {
    const all: PrincipalInfo[] = [];
    let pageToken = '';
    do {
      const res = await this.rpc.call(c => [c.auth, c.auth.listPrincipals], ListPrincipalsRequest.fromPartial({ pageSize: 1000, pageToken }), options);
      all.push(...res.principals.map(toPrincipal));
      pageToken = res.nextPageToken;
    } while (pageToken);
    return all;
  }

  /** Deletes a principal with its keys and grants; its open streams end UNAUTHENTICATED. */
  async deletePrincipal(name: string, options?: CallOptions & { allowMissing?: boolean }): Promise<void> {
    // NOT_FOUND when there is none, unless allowMissing; a retry after a lost answer asks for it.
    const req = (attempt: number) => DeletePrincipalRequest.fromPartial({ name, allowMissing: options?.allowMissing || attempt > 1 });
    await this.rpc.call(c => [c.auth, c.auth.deletePrincipal], req, options);
  }

  /**
   * A new API key for `principal` (an admin's call, or a principal's for its own keys). `secret`
   * is the whole key, `ibx_<id>_<secret>`, to pass as createClient({ apiKey }): this is the only
   * time it is shown. Unset `expiresAt`: it never expires.
   */
  async createKey(principal: string, opts: { expiresAt?: Date } = {}, options?: CallOptions): Promise<{ key: ApiKeyInfo; secret: string }> {
    if (opts.expiresAt !== undefined && Number.isNaN(opts.expiresAt.getTime())) throw new RangeError('createKey: expiresAt is an invalid Date');
    const req = CreateKeyRequest.fromPartial({ principal, expiresAt: opts.expiresAt });
    const res = await this.rpc.call(c => [c.auth, c.auth.createKey], req, options);
    return { key: toKey(res.key), secret: res.secret };
  }

  /** The keys of `principal` (unset: the caller's own), revoked ones included. */
  async listKeys(principal?: string, options?: CallOptions): Promise<ApiKeyInfo[]> {
    const res = await this.rpc.call(c => [c.auth, c.auth.listKeys], ListKeysRequest.fromPartial({ principal: principal ?? '' }), options);
    return res.keys.map(toKey);
  }

  /** Revokes a key (by its id) at once: calls with it fail UNAUTHENTICATED and its open streams end. */
  async revokeKey(keyId: string, options?: CallOptions): Promise<ApiKeyInfo> {
    return toKey((await this.rpc.call(c => [c.auth, c.auth.revokeKey], RevokeKeyRequest.fromPartial({ keyId }), options)).key);
  }

  /**
   * Grants `verbs` on `queue` — a name, or a prefix ending in '*' ('team-a.*'; '*' is every
   * name) — adding to what the principal holds there. Returns all it now holds there.
   */
  async addGrant(principal: string, queue: string, verbs: Verb[], options?: CallOptions): Promise<GrantInfo> {
    if (verbs.length === 0) throw new RangeError('addGrant: give at least one verb');
    const req = AddGrantRequest.fromPartial({ principal, queue, verbs: toProtoVerbs(verbs) });
    return toGrant((await this.rpc.call(c => [c.auth, c.auth.addGrant], req, options)).grant, principal, queue);
  }

  /** Takes `verbs` back (unset or empty: all of them); returns what the principal still holds there (no verbs: nothing). */
  async removeGrant(principal: string, queue: string, verbs?: Verb[], options?: CallOptions): Promise<GrantInfo> {
    const req = RemoveGrantRequest.fromPartial({ principal, queue, verbs: toProtoVerbs(verbs ?? []) });
    return toGrant((await this.rpc.call(c => [c.auth, c.auth.removeGrant], req, options)).grant, principal, queue);
  }

  /** The grants of `principal`; unset: every principal's (an admin), or those on queues the caller administers. */
  async listGrants(principal?: string, options?: CallOptions): Promise<GrantInfo[]> {
    const res = await this.rpc.call(c => [c.auth, c.auth.listGrants], ListGrantsRequest.fromPartial({ principal: principal ?? '' }), options);
    return res.grants.map(g => toGrant(g));
  }

  /** Recent audit events, newest first: denied calls, keys created and revoked, grants changed. */
  async auditEvents(opts: AuditEventsOptions = {}, options?: CallOptions): Promise<AuditEventInfo[]> {
    const limit = opts.limit ?? 100;
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`auditEvents: limit must be a whole number ≥ 1, not ${limit}`);
    const out: AuditEventInfo[] = [];
    let pageToken = '';
    do {
      const req = ListAuditEventsRequest.fromPartial({
        pageSize: Math.min(1000, limit - out.length),
        pageToken,
        actions: opts.actions ?? [],
        principal: opts.principal ?? '',
      });
      const res = await this.rpc.call(c => [c.auth, c.auth.listAuditEvents], req, options);
      out.push(...res.events.map(toEvent));
      pageToken = res.nextPageToken;
    } while (pageToken && out.length < limit);
    return out.slice(0, limit);
  }
}
