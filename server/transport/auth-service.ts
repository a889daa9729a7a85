import { type ApiKey, type AuthServer, type Grant, type Principal, Verb as ProtoVerb } from '@inboxd/proto/v1/auth';
import { newApiKey } from '../auth/api-keys.js';
import type { Auth, Caller, CallInfo } from '../auth/auth.js';
import { PATTERN, PRINCIPAL_NAME, type Verb } from '../auth/grants.js';
import { alreadyExists, invalid, notFound } from '../errors.js';
import type { QueueCore } from '../queue/core.js';
import * as sql from '../queue/sql.js';
import type { CallTracker } from './call-tracker.js';
import { pageAfter } from './pages.js';
import * as v from './validate.js';

const TO_PROTO: Record<Verb, ProtoVerb> = {
  send: ProtoVerb.VERB_SEND,
  consume: ProtoVerb.VERB_CONSUME,
  browse: ProtoVerb.VERB_BROWSE,
  admin: ProtoVerb.VERB_ADMIN,
};
const FROM_PROTO = new Map<number, Verb>(Object.entries(TO_PROTO).map(([k, n]) => [n, k as Verb]));

function verbs(list: ProtoVerb[], field: string, allowEmpty: boolean): Verb[] {
  if (list.length === 0 && !allowEmpty) throw invalid(`${field} is empty: give at least one of VERB_SEND, VERB_CONSUME, VERB_BROWSE, VERB_ADMIN`);
  return [
    ...new Set(
      list.map(n => {
        const verb = FROM_PROTO.get(n);
        if (!verb) throw invalid(`${field}: ${n} is not a verb; use VERB_SEND, VERB_CONSUME, VERB_BROWSE or VERB_ADMIN`);
        return verb;
      }),
    ),
  ];
}

function principalName(name: string, field = 'principal'): string {
  if (!name) throw invalid(`${field} is required`);
  if (!PRINCIPAL_NAME.test(name))
    throw invalid(
      `${field} ${JSON.stringify(name.slice(0, 120))} is not a valid principal name: 1-100 letters, digits, '_', '-', '.', ':' or '@', starting with a letter or digit`,
    );
  return name;
}

function pattern(raw: string): string {
  if (!raw) throw invalid('queue is required: a queue name, or a prefix ending in * ("team-a.*", or "*" for every name)');
  if (!PATTERN.test(raw)) throw invalid(`queue ${JSON.stringify(raw.slice(0, 120))} is neither a queue name nor a prefix ending in * (e.g. "team-a.*")`);
  return raw;
}

function metadata(m: Record<string, string>): Record<string, string> {
  const entries = Object.entries(m);
  if (entries.length > 32) throw invalid(`metadata has ${entries.length} entries, at most 32`);
  for (const [k, val] of entries) {
    if (!k || k.length > 64) throw invalid(`metadata key ${JSON.stringify(k.slice(0, 80))} must be 1-64 characters`);
    if (val.length > 1024) throw invalid(`metadata ${k} is ${val.length} characters, at most 1024`);
    v.text(k, 'metadata key');
    v.text(val, `metadata ${k}`);
  }
  return m;
}

/** What the audit trail records (AuditEvent.action). */
const AUDIT_ACTIONS = ['denied', 'principal.created', 'principal.deleted', 'key.created', 'key.revoked', 'grant.added', 'grant.removed'];

const optDate = (d: unknown) => (d ? new Date(d as string) : undefined);

function toPrincipal(r: Record<string, unknown>): Principal {
  return {
    name: r.name as string,
    metadata: (r.metadata as Record<string, string>) ?? {},
    admin: r.admin as boolean,
    createdAt: optDate(r.createdAt),
    lastSeenAt: optDate(r.lastSeenAt),
    openStreams: Number(r.openStreams ?? 0),
    maxStreams: Number(r.maxStreams ?? 0),
    maxSendRate: Number(r.maxSendRate ?? 0),
    createdBy: (r.createdBy as string) ?? '',
  };
}

function toKey(r: Record<string, unknown>): ApiKey {
  return {
    id: r.id as string,
    principal: r.principal as string,
    createdAt: optDate(r.createdAt),
    expiresAt: optDate(r.expiresAt),
    revokedAt: optDate(r.revokedAt),
    createdBy: (r.createdBy as string) ?? '',
    lastUsedAt: optDate(r.lastUsedAt),
  };
}

const grant = (principal: string, queue: string, list: string[]): Grant => ({ principal, queue, verbs: list.map(x => TO_PROTO[x as Verb]) });

/**
 * Auth.*: principals, keys, grants and the audit trail (proto/inboxd/v1/auth.proto says who may
 * call what). Every change is audited and announced to every replica, whose caches drop it and
 * whose open streams are checked again at once.
 */
export function authService(core: QueueCore, calls: CallTracker): AuthServer {
  const auth: Auth = calls.auth;
  const exec = (q: sql.Sql) => core.db.exec(q);
  const schema = core.schema;
  const by = (c: Caller) => c.principal || 'anonymous';
  /** An admin, or (for its own keys) the principal itself. */
  const selfOrAdmin = (caller: Caller, principal: string, call: CallInfo, action: string) => {
    if (caller.admin || principal === caller.principal) return;
    auth.requireAdmin(caller, call, action);
  };
  const requirePatternAdmin = async (caller: Caller, p: string, call: CallInfo) => {
    if (await auth.canAdminPattern(caller, p)) return;
    throw auth.deny(
      caller,
      'admin',
      p,
      call,
      `principal ${caller.principal} may not change grants on ${p}: that needs admin on every name it covers (or an admin principal)`,
    );
  };

  return {
    whoAmI: calls.unary(async (_req, _call, caller) => {
      const grants = caller.principal ? [...(await auth.grantsOf(caller.principal))].map(([p, set]) => grant(caller.principal, p, [...set].sort())) : [];
      const owned = caller.principal ? (await exec(sql.ownedQueues(schema, caller.principal))).rows.map(r => r.queue as string) : [];
      return {
        principal: caller.principal || 'anonymous',
        admin: caller.admin,
        method: caller.method,
        keyId: caller.keyId ?? '',
        grants,
        ownedQueues: owned,
        authRequired: auth.required,
      };
    }),

    createPrincipal: calls.unary(async (req, call, caller) => {
      auth.requireAdmin(caller, call, 'create principals');
      const name = principalName(req.name, 'name');
      const maxStreams = v.count(req.maxStreams, 'max_streams', 0, 1_000_000, 0);
      const maxSendRate = v.count(req.maxSendRate, 'max_send_rate', 0, 10_000_000, 0);
      const attrs = { name, metadata: metadata(req.metadata ?? {}), admin: req.admin, maxStreams, maxSendRate };
      const { rows } = await exec(sql.insertPrincipal(schema, { ...attrs, createdBy: by(caller) }));
      if (rows.length === 0) {
        // A create repeated with the same attributes (a retry after a lost answer) returns the principal.
        const row = (await exec(sql.principals(schema, [name], 1))).rows[0];
        const p = row && toPrincipal(row);
        const sorted = (m: Record<string, string>) => JSON.stringify(Object.entries(m).sort(([a], [b]) => (a < b ? -1 : 1)));
        if (p && p.admin === attrs.admin && p.maxStreams === maxStreams && p.maxSendRate === maxSendRate && sorted(p.metadata) === sorted(attrs.metadata))
          return { principal: p };
        throw alreadyExists(`principal ${name} already exists with other attributes`);
      }
      auth.audit.record({ action: 'principal.created', principal: by(caller), target: name, detail: req.admin ? 'admin' : '', method: call.getPath?.() ?? '' });
      await auth.announce();
      return { principal: toPrincipal(rows[0]) };
    }),

    getPrincipal: calls.unary(async (req, call, caller) => {
      const name = principalName(req.name, 'name');
      selfOrAdmin(caller, name, call, `read principal ${name}`);
      const row = (await exec(sql.principals(schema, [name], 1))).rows[0];
      if (!row) throw notFound(`no principal ${name}`);
      return { principal: toPrincipal(row) };
    }),

    listPrincipals: calls.unary(async (req, call, caller) => {
      auth.requireAdmin(caller, call, 'list principals');
      const size = v.count(req.pageSize, 'page_size', 1, 1000, 100);
      const rows = (await exec(sql.principals(schema, null, size + 1, pageAfter(req.pageToken)))).rows;
      const page = rows.slice(0, size).map(toPrincipal);
      return { principals: page, nextPageToken: rows.length > size ? Buffer.from(page.at(-1)?.name ?? '').toString('base64url') : '' };
    }),

    deletePrincipal: calls.unary(async (req, call, caller) => {
      auth.requireAdmin(caller, call, 'delete principals');
      const name = principalName(req.name, 'name');
      const { rows } = await exec(sql.deletePrincipal(schema, name));
      if (rows.length === 0 && req.allowMissing) return {};
      if (rows.length === 0) throw notFound(`no principal ${name}`);
      auth.audit.record({ action: 'principal.deleted', principal: by(caller), target: name, method: call.getPath?.() ?? '' });
      await auth.announce();
      return {};
    }),

    createKey: calls.unary(async (req, call, caller) => {
      const principal = req.principal ? principalName(req.principal) : caller.principal;
      if (!principal) throw invalid('principal is required (with auth off there is no caller to make a key for)');
      // Admins only, even for oneself: a leaked key must not be able to mint its own successor,
      // which would outlive its revocation.
      if (!caller.admin)
        throw auth.deny(
          caller,
          'admin',
          principal,
          call,
          `principal ${caller.principal} may not create keys: only an admin principal creates keys (a leaked key must not mint its successor)`,
        );
      if (req.expiresAt) {
        if (Number.isNaN(req.expiresAt.getTime()) || req.expiresAt.getTime() <= Date.now()) throw invalid('expires_at must be in the future');
      }
      const { id, key } = newApiKey();
      let row: Record<string, unknown>;
      try {
        row = (await exec(sql.insertApiKey(schema, { id, principal, hash: auth.hashKey(key), expiresAt: req.expiresAt ?? null, createdBy: by(caller) })))
          .rows[0];
      } catch (err) {
        if ((err as { code?: string }).code === '23503') throw notFound(`no principal ${principal}: create it first (inboxd principals create ${principal})`);
        throw err;
      }
      auth.audit.record({
        action: 'key.created',
        principal: by(caller),
        target: id,
        detail: `for ${principal}${req.expiresAt ? `, expires ${req.expiresAt.toISOString()}` : ''}`,
        method: call.getPath?.() ?? '',
      });
      return { key: toKey(row), secret: key };
    }),

    listKeys: calls.unary(async (req, call, caller) => {
      // Unset: an admin's answer is every key, anyone else's its own.
      const principal = req.principal ? principalName(req.principal) : caller.admin ? null : caller.principal;
      if (principal) selfOrAdmin(caller, principal, call, `list the keys of ${principal}`);
      return { keys: (await exec(sql.apiKeys(schema, principal))).rows.map(toKey) };
    }),

    revokeKey: calls.unary(async (req, call, caller) => {
      // Not quoted back: a whole key passed by mistake would put its secret in an error message.
      if (!/^[0-9a-f]{16}$/.test(req.keyId)) throw invalid('key_id is not a key id: 16 hex digits, the part of a key between ibx_ and the next _');
      const missing = () => notFound(`no key ${req.keyId}${caller.admin ? '' : ` of ${caller.principal}`}`);
      const owner = (await exec(sql.apiKeyForAuth(schema, req.keyId))).rows[0];
      // Someone else's key is as good as absent to a caller who may not touch it.
      if (!owner || (!caller.admin && owner.principal !== caller.principal)) throw missing();
      const row = (await exec(sql.revokeApiKey(schema, req.keyId))).rows[0];
      // Deleted (with its principal) between the two statements: gone, as if never found.
      if (!row) throw missing();
      auth.audit.record({ action: 'key.revoked', principal: by(caller), target: req.keyId, detail: `of ${owner.principal}`, method: call.getPath?.() ?? '' });
      await auth.announce();
      return { key: toKey(row) };
    }),

    addGrant: calls.unary(async (req, call, caller) => {
      const principal = principalName(req.principal);
      const p = pattern(req.queue);
      const list = verbs(req.verbs, 'verbs', false);
      await requirePatternAdmin(caller, p, call);
      let rows: Record<string, unknown>[];
      try {
        rows = (await exec(sql.addGrants(schema, principal, p, list, by(caller)))).rows;
      } catch (err) {
        if ((err as { code?: string }).code === '23503') throw notFound(`no principal ${principal}: create it first (inboxd principals create ${principal})`);
        throw err;
      }
      auth.audit.record({ action: 'grant.added', principal: by(caller), target: p, detail: `${principal}: ${list.join(',')}`, method: call.getPath?.() ?? '' });
      await auth.announce();
      return { grant: grant(principal, p, rows.map(r => r.verb as string).sort()) };
    }),

    removeGrant: calls.unary(async (req, call, caller) => {
      const principal = principalName(req.principal);
      const p = pattern(req.queue);
      const list = verbs(req.verbs, 'verbs', true);
      await requirePatternAdmin(caller, p, call);
      const left = (await exec(sql.removeGrants(schema, principal, p, list.length > 0 ? list : null))).rows.map(r => r.verb as string).sort();
      auth.audit.record({
        action: 'grant.removed',
        principal: by(caller),
        target: p,
        detail: `${principal}: ${list.length > 0 ? list.join(',') : 'all'}`,
        method: call.getPath?.() ?? '',
      });
      await auth.announce();
      return { grant: grant(principal, p, left) };
    }),

    listGrants: calls.unary(async (req, _call, caller) => {
      const principal = req.principal ? principalName(req.principal) : null;
      const rows = (await exec(sql.grants(schema, principal))).rows;
      const out: Grant[] = [];
      for (const r of rows) {
        // Not an admin: its own grants, and those on names it administers.
        if (caller.admin || r.principal === caller.principal || (await auth.canAdminPattern(caller, r.pattern as string))) {
          out.push(grant(r.principal as string, r.pattern as string, r.verbs as string[]));
        }
      }
      return { grants: out };
    }),

    listAuditEvents: calls.unary(async (req, call, caller) => {
      auth.requireAdmin(caller, call, 'read the audit log');
      const size = v.count(req.pageSize, 'page_size', 1, 1000, 100);
      let before: string | undefined;
      if (req.pageToken) {
        // An event id: a positive bigint.
        if (!/^\d{1,19}$/.test(req.pageToken) || BigInt(req.pageToken) > 9223372036854775807n)
          throw invalid('page_token is not one this server issued: pass next_page_token from the previous response');
        before = req.pageToken;
      }
      if (req.actions.length > AUDIT_ACTIONS.length) throw invalid(`actions has ${req.actions.length} entries; there are ${AUDIT_ACTIONS.length} actions`);
      for (const a of req.actions) {
        if (!AUDIT_ACTIONS.includes(a)) throw invalid(`actions: ${JSON.stringify(a.slice(0, 40))} is not an audit action; use ${AUDIT_ACTIONS.join(', ')}`);
      }
      const principal = req.principal ? principalName(req.principal) : null;
      await auth.audit.flush();
      const rows = (await exec(sql.auditEvents(schema, { limit: size + 1, beforeId: before, actions: req.actions.length > 0 ? req.actions : null, principal })))
        .rows;
      const events = rows.slice(0, size).map(r => ({
        id: r.id as string,
        at: new Date(r.at as string),
        principal: r.principal as string,
        action: r.action as string,
        method: r.method as string,
        verb: r.verb as string,
        target: r.target as string,
        detail: r.detail as string,
        peer: r.peer as string,
      }));
      return { events, nextPageToken: rows.length > size ? (events.at(-1)?.id ?? '') : '' };
    }),
  };
}
