import { createHash, createPublicKey, type KeyObject, randomUUID, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { PeerCertificate } from 'node:tls';
import type { Metadata } from '@grpc/grpc-js';
import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import { type ErrorKind, InboxdError, unauthenticated } from '../errors.js';
import type { Metrics } from '../metrics/metrics.js';
import type { QueueCore } from '../queue/core.js';
import * as sql from '../queue/sql.js';
import { apiKeyId, KeyHasher } from './api-keys.js';
import { AuditLog } from './audit.js';
import { allows, allowsAny, covers, type GrantMap, PRINCIPAL_NAME, type Verb } from './grants.js';

export type AuthMode = 'off' | 'required';

export interface JwtOptions {
  /** A JWKS URL (keys fetched and cached by jose)… */
  jwksUrl: string;
  /** …or a PEM file holding one public key. */
  publicKeyFile: string;
  issuer: string;
  audience: string;
  /** The claim naming the principal. */
  claim: string;
}

export interface AuthOptions {
  mode: AuthMode;
  /** The bootstrap admin credential ('' none): authenticates as the principal `admin`. */
  adminKey: string;
  /** Streams one principal may hold open on this replica, unless its own max_streams says otherwise. */
  principalMaxStreams: number;
  /** Messages a second one principal may send through this replica (0: no limit), unless its own says otherwise. */
  principalSendRate: number;
  jwt: JwtOptions;
}

export type AuthMethod = 'none' | 'api_key' | 'admin_key' | 'jwt' | 'mtls';

/** Who is calling, as authenticated once per call (per stream: when it opens, and again on every change). */
export interface Caller {
  /** The principal; '' with auth off (nobody in particular: messages carry no sender, tokens no principal). */
  readonly principal: string;
  readonly admin: boolean;
  readonly method: AuthMethod;
  readonly keyId?: string;
  readonly maxStreams: number;
  readonly maxSendRate: number;
  /** Whose lease tokens it may settle: its own (null with auth off: any this server issued). */
  readonly settleAs: string | null;
  /** What it presented, to authenticate it again while its streams stay open. Never logged. */
  readonly credential: Credential;
}

interface Credential {
  bearer?: string;
  certName?: string;
}

/** A refusal: why (for the audit and the metric), and what to tell the caller. */
interface Denial {
  reason: string;
  message: string;
}

interface KeyRow {
  id: string;
  principal: string;
  hash: Buffer;
  expiresAt: Date | null;
  revokedAt: Date | null;
  admin: boolean;
  maxStreams: number;
  maxSendRate: number;
}

interface PrincipalRow {
  name: string;
  admin: boolean;
  maxStreams: number;
  maxSendRate: number;
}

/** What a handler's call offers for authentication (grpc-js server calls). */
export interface CallInfo {
  metadata: Metadata;
  getPath?(): string;
  getPeer?(): string;
  getAuthContext?(): { sslPeerCertificate?: PeerCertificate };
}

export const ANONYMOUS: Caller = { principal: '', admin: true, method: 'none', maxStreams: 0, maxSendRate: 0, settleAs: null, credential: {} };
export const ADMIN_PRINCIPAL = 'admin';

const CACHE_TTL_MS = 30_000;
const RECHECK_MS = 1000;
const PRESENCE_MS = 10_000;
const REPORT_SOON_MS = 500;
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

interface Watched {
  caller: Caller;
  /** null: only the credential is checked (a SendStream, whose sends are each checked). */
  verb: Verb | null;
  queue: string;
  end: (err: InboxdError) => void;
  method: string;
  peer: string;
}

/**
 * Identity and authorization for every call: who the caller is (an API key, the bootstrap admin
 * key, a JWT, or a client certificate), whether a grant allows the verb on the queue, per-principal
 * quotas, and the audit trail. Lookups are cached (lru-cache); a change made through any replica
 * is announced on a Postgres channel, every replica drops its caches and checks its open streams
 * again at once, and those whose credential or grant is gone end within a second or two. Open
 * streams are also checked every second (key expiry; a lost notification costs at most the cache TTL).
 */
export class Auth {
  readonly required: boolean;
  readonly audit: AuditLog;
  private readonly hasher: KeyHasher;
  private readonly adminKeyHash?: Buffer;
  private readonly channel: string;
  private readonly replica = randomUUID();
  // Sized for what is live at once (lru-cache allocates its arrays up front: ~0.2 MB per 1,000).
  private readonly keys = new LRUCache<string, KeyRow | false>({ max: 10_000, ttl: CACHE_TTL_MS });
  private readonly principals = new LRUCache<string, PrincipalRow | false>({ max: 10_000, ttl: CACHE_TTL_MS });
  private readonly grantMaps = new LRUCache<string, GrantMap>({ max: 10_000, ttl: CACHE_TTL_MS });
  private readonly owners = new LRUCache<string, { owner: string }>({ max: 20_000, ttl: CACHE_TTL_MS });
  private readonly jwts = new LRUCache<string, { principal: string }>({ max: 10_000, ttl: 60_000 });
  /** Loaded only when JWTs are configured. */
  private jose?: typeof import('jose');
  private jwtKey?: KeyObject | ReturnType<typeof import('jose').createRemoteJWKSet>;
  private readonly watched = new Set<Watched>();
  private readonly streamsOf = new Map<string, number>();
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private seenPrincipals = new Set<string>();
  private seenKeys = new Set<string>();
  private timers: NodeJS.Timeout[] = [];
  private reportTimer?: NodeJS.Timeout;
  private stopped = false;
  private rechecking?: Promise<void>;
  private recheckAgain = false;
  /** Bumped on every change: a lookup that started before one does not fill the cache after it. */
  private generation = 0;

  constructor(
    private readonly core: QueueCore,
    private readonly opts: AuthOptions,
    private readonly log: Logger,
    metrics: Metrics,
  ) {
    this.required = opts.mode === 'required';
    this.hasher = new KeyHasher(core.subkey('api-key'));
    if (opts.adminKey) this.adminKeyHash = this.hasher.hash(opts.adminKey);
    this.channel = `inboxd_auth_${createHash('sha1').update(core.schema).digest('hex').slice(0, 24)}`;
    this.audit = new AuditLog(core.db, core.schema, log, metrics.authDenied);
  }

  private get schema(): string {
    return this.core.schema;
  }

  private exec(q: sql.Sql) {
    return this.core.db.exec(q);
  }

  async start(): Promise<void> {
    const { jwt } = this.opts;
    if (jwt.jwksUrl || jwt.publicKeyFile) this.jose = await import('jose');
    if (jwt.jwksUrl) this.jwtKey = this.jose!.createRemoteJWKSet(new URL(jwt.jwksUrl));
    else if (jwt.publicKeyFile) this.jwtKey = createPublicKey(readFileSync(jwt.publicKeyFile));
    if (this.opts.adminKey) {
      await this.exec(
        sql.insertPrincipal(
          this.schema,
          { name: ADMIN_PRINCIPAL, metadata: {}, admin: true, maxStreams: 0, maxSendRate: 0, createdBy: 'INBOXD_ADMIN_KEY' },
          true,
        ),
      );
    }
    await this.core.wakeups.listen(this.channel, () => this.changed());
    this.audit.start();
    const every = (ms: number, fn: () => void) => {
      const t = setInterval(fn, ms);
      t.unref();
      this.timers.push(t);
    };
    every(RECHECK_MS, () => this.recheckStreams());
    every(PRESENCE_MS, () => void this.report());
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.reportTimer);
    for (const t of this.timers) clearInterval(t);
    await this.rechecking;
    await this.report().catch(() => {});
    if (this.required) await this.exec(sql.clearPresence(this.schema, this.replica)).catch(() => {});
    await this.audit.stop();
  }

  // ─── Authentication ────────────────────────────────────────────────────────────────────────

  /** The caller of `call`; throws UNAUTHENTICATED (audited) when auth is required and it has no valid credential. */
  async authenticate(call: CallInfo): Promise<Caller> {
    if (!this.required) return ANONYMOUS;
    const credential = credentialOf(call);
    const got = await this.identify(credential);
    if ('reason' in got) {
      this.audit.record({ action: 'denied', method: call.getPath?.() ?? '', detail: `${got.reason}: ${got.message}`, peer: call.getPeer?.() ?? '' });
      throw unauthenticated(got.message);
    }
    if (!this.seenPrincipals.has(got.principal)) {
      this.seenPrincipals.add(got.principal);
      this.reportSoon();
    }
    if (got.keyId) this.seenKeys.add(got.keyId);
    return got;
  }

  private async identify(c: Credential): Promise<Caller | Denial> {
    const bearer = c.bearer;
    if (bearer === undefined) {
      if (c.certName !== undefined) return this.byName(c.certName, 'mtls', c);
      return {
        reason: 'missing_credential',
        message: 'this server requires authentication: send the metadata `authorization: Bearer <api key>` (SDK: createClient({ apiKey }))',
      };
    }
    if (this.adminKeyHash && this.hasher.matches(bearer, this.adminKeyHash)) {
      return { principal: ADMIN_PRINCIPAL, admin: true, method: 'admin_key', maxStreams: 0, maxSendRate: 0, settleAs: ADMIN_PRINCIPAL, credential: c };
    }
    const id = apiKeyId(bearer);
    if (id) {
      const row = await this.key(id);
      if (!row || !this.hasher.matches(bearer, row.hash))
        return { reason: 'bad_credential', message: 'the API key is not valid: it was not issued by this server, or was deleted with its principal' };
      if (row.revokedAt)
        return { reason: 'revoked_key', message: `API key ${id} was revoked at ${row.revokedAt.toISOString()}: use another key of ${row.principal}` };
      if (row.expiresAt && row.expiresAt.getTime() <= Date.now()) {
        return {
          reason: 'expired_key',
          message: `API key ${id} expired at ${row.expiresAt.toISOString()}: create a new one (inboxd keys create ${row.principal})`,
        };
      }
      return {
        principal: row.principal,
        admin: row.admin,
        method: 'api_key',
        keyId: id,
        maxStreams: row.maxStreams,
        maxSendRate: row.maxSendRate,
        settleAs: row.principal,
        credential: c,
      };
    }
    if (this.jwtKey && JWT_SHAPE.test(bearer)) {
      const name = await this.jwtPrincipal(bearer);
      if (typeof name !== 'string') return name;
      return this.byName(name, 'jwt', c);
    }
    return { reason: 'bad_credential', message: 'the bearer credential is not an API key of this server (ibx_…)' + (this.jwtKey ? ' nor a JWT' : '') };
  }

  private async byName(name: string, method: AuthMethod, c: Credential): Promise<Caller | Denial> {
    const p = PRINCIPAL_NAME.test(name) ? await this.principal(name) : false;
    if (!p)
      return {
        reason: 'unknown_principal',
        message: `no principal ${JSON.stringify(name.slice(0, 100))} (named by the ${method === 'jwt' ? 'token' : 'client certificate'}): an admin creates it first (inboxd principals create)`,
      };
    return { principal: p.name, admin: p.admin, method, maxStreams: p.maxStreams, maxSendRate: p.maxSendRate, settleAs: p.name, credential: c };
  }

  private async jwtPrincipal(token: string): Promise<string | Denial> {
    const hit = this.jwts.get(token);
    if (hit) return hit.principal;
    try {
      const { jwt } = this.opts;
      const { payload } = await this.jose!.jwtVerify(token, this.jwtKey as Parameters<typeof import('jose').jwtVerify>[1], {
        issuer: jwt.issuer || undefined,
        audience: jwt.audience || undefined,
      });
      const name = payload[jwt.claim];
      if (typeof name !== 'string' || !name) return { reason: 'bad_credential', message: `the JWT has no ${jwt.claim} claim naming a principal` };
      const ttl = payload.exp ? Math.min(60_000, payload.exp * 1000 - Date.now()) : 60_000;
      if (ttl > 0) this.jwts.set(token, { principal: name }, { ttl });
      return name;
    } catch (err) {
      const expired = (err as { code?: string }).code === 'ERR_JWT_EXPIRED';
      return { reason: expired ? 'expired_key' : 'bad_credential', message: `the JWT is not valid: ${(err as Error).message}` };
    }
  }

  /** `cache`'s entry for `k`, loaded on a miss; a load that raced a change does not fill the cache. */
  private async cached<V extends {}>(cache: LRUCache<string, V>, k: string, load: () => Promise<V>): Promise<V> {
    const hit = cache.get(k);
    if (hit !== undefined) return hit;
    const gen = this.generation;
    const v = await load();
    if (gen === this.generation) cache.set(k, v);
    return v;
  }

  private key(id: string): Promise<KeyRow | false> {
    return this.cached(this.keys, id, async () => ((await this.exec(sql.apiKeyForAuth(this.schema, id))).rows[0] as KeyRow | undefined) ?? false);
  }

  private principal(name: string): Promise<PrincipalRow | false> {
    return this.cached(
      this.principals,
      name,
      async () => ((await this.exec(sql.principalForAuth(this.schema, name))).rows[0] as PrincipalRow | undefined) ?? false,
    );
  }

  // ─── Authorization ─────────────────────────────────────────────────────────────────────────

  grantsOf(principal: string): Promise<GrantMap> {
    return this.cached(this.grantMaps, principal, async () => {
      const { rows } = await this.exec(sql.grants(this.schema, principal));
      return new Map(rows.map(r => [r.pattern as string, new Set(r.verbs as Verb[])]));
    });
  }

  /** The principal that created `queue` ('' none). */
  async ownerOf(queue: string): Promise<string> {
    return (await this.ownersOf([queue])).get(queue)!;
  }

  /** The owners of `queues` ('' none), those not cached looked up in one statement. */
  async ownersOf(queues: string[]): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    const missing: string[] = [];
    for (const q of queues) {
      const hit = this.owners.get(q);
      if (hit) out.set(q, hit.owner);
      else missing.push(q);
    }
    if (missing.length === 0) return out;
    const gen = this.generation;
    const found = new Map((await this.exec(sql.queueOwners(this.schema, missing))).rows.map(r => [r.queue as string, r.principal as string]));
    for (const q of missing) {
      const owner = found.get(q) ?? '';
      out.set(q, owner);
      if (gen === this.generation) this.owners.set(q, { owner });
    }
    return out;
  }

  /** Whether `caller` may `verb` on `name`: an admin, a grant naming it, or its owner. */
  async can(caller: Caller, verb: Verb, name: string): Promise<boolean> {
    if (caller.admin) return true;
    if (allows(await this.grantsOf(caller.principal), verb, name)) return true;
    return (await this.ownerOf(name)) === caller.principal;
  }

  /** Whether `caller` holds any verb on `name` (it may see that it exists). */
  async canSee(caller: Caller, name: string): Promise<boolean> {
    if (caller.admin) return true;
    if (allowsAny(await this.grantsOf(caller.principal), name)) return true;
    return (await this.ownerOf(name)) === caller.principal;
  }

  /** Whether `caller` may administer every name `pattern` stands for (grant on it, or own it). */
  async canAdminPattern(caller: Caller, pattern: string): Promise<boolean> {
    if (caller.admin) return true;
    for (const [p, verbs] of await this.grantsOf(caller.principal)) if (verbs.has('admin') && covers(p, pattern)) return true;
    return !pattern.endsWith('*') && (await this.ownerOf(pattern)) === caller.principal;
  }

  /** Throws PERMISSION_DENIED (audited) unless `caller` may `verb` on `name`. The message names the verb and name only. */
  async require(caller: Caller, verb: Verb, name: string, call?: CallInfo, what = 'queue'): Promise<void> {
    if (await this.can(caller, verb, name)) return;
    throw this.deny(
      caller,
      verb,
      name,
      call,
      `principal ${caller.principal} may not ${verb} on ${what} ${name}: it needs a ${verb} grant on that name (inboxd grants add ${caller.principal} --queue ${name} --verbs ${verb})`,
    );
  }

  /** Records (audit, metric) a settle refused because the token was issued to another principal. */
  deniedToken(caller: Caller, message: string, call?: CallInfo, queue = ''): void {
    this.audit.record({
      action: 'denied',
      principal: caller.principal,
      verb: 'consume',
      target: queue,
      method: call?.getPath?.() ?? '',
      detail: `foreign_token: ${message}`,
      peer: call?.getPeer?.() ?? '',
    });
  }

  /** Throws PERMISSION_DENIED unless `caller` is an admin principal. */
  requireAdmin(caller: Caller, call: CallInfo | undefined, action: string): void {
    if (caller.admin) return;
    throw this.deny(caller, 'admin', '', call, `principal ${caller.principal} may not ${action}: that needs an admin principal`);
  }

  /** Records a refusal and returns the error to throw. */
  deny(
    caller: Caller,
    verb: string,
    target: string,
    call: CallInfo | undefined,
    message: string,
    reason = 'no_grant',
    kind: ErrorKind = 'permission_denied',
  ): InboxdError {
    this.audit.record({
      action: 'denied',
      principal: caller.principal,
      verb,
      target,
      method: call?.getPath?.() ?? '',
      detail: `${reason}: ${message}`,
      peer: call?.getPeer?.() ?? '',
    });
    return new InboxdError(kind, message);
  }

  // ─── Quotas ────────────────────────────────────────────────────────────────────────────────

  /** Counts a stream of `caller` against its quota; RESOURCE_EXHAUSTED when over. Returns its release. */
  enterStream(caller: Caller, call?: CallInfo): () => void {
    if (!this.required) return () => {};
    const max = caller.maxStreams || this.opts.principalMaxStreams;
    const n = this.streamsOf.get(caller.principal) ?? 0;
    if (n >= max) {
      throw this.deny(
        caller,
        'consume',
        '',
        call,
        `principal ${caller.principal} holds ${n} streams on this server, its limit (${caller.maxStreams ? 'max_streams' : 'INBOXD_PRINCIPAL_MAX_STREAMS'}): close streams it does not need`,
        'quota',
        'resource_exhausted',
      );
    }
    this.streamsOf.set(caller.principal, n + 1);
    this.reportSoon();
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const left = (this.streamsOf.get(caller.principal) ?? 1) - 1;
      if (left > 0) this.streamsOf.set(caller.principal, left);
      else this.streamsOf.delete(caller.principal);
      this.reportSoon();
    };
  }

  /** Takes `n` messages from `caller`'s send rate (a token bucket holding one second); RESOURCE_EXHAUSTED when empty. */
  takeSend(caller: Caller, n: number, call?: CallInfo): void {
    const rate = caller.maxSendRate || this.opts.principalSendRate;
    if (!this.required || rate <= 0) return;
    const now = Date.now();
    const b = this.buckets.get(caller.principal) ?? { tokens: rate, at: now };
    b.tokens = Math.min(rate, b.tokens + ((now - b.at) / 1000) * rate);
    b.at = now;
    // A batch larger than a second's worth passes when the bucket is full, and leaves it owing.
    if (b.tokens < Math.min(n, rate)) {
      this.buckets.set(caller.principal, b);
      const waitMs = Math.ceil(((Math.min(n, rate) - b.tokens) / rate) * 1000);
      throw this.deny(
        caller,
        'send',
        '',
        call,
        `principal ${caller.principal} sends faster than its limit of ${rate} messages a second: retry in ${waitMs} ms`,
        'quota',
        'resource_exhausted',
      );
    }
    b.tokens -= n;
    this.buckets.set(caller.principal, b);
  }

  // ─── Changes, and the streams they end ─────────────────────────────────────────────────────

  /** Announces a change of keys, principals, grants or owners to every replica (this one at once). */
  async announce(): Promise<void> {
    this.changed();
    await this.exec(sql.notify(this.channel, 'changed')).catch(err => this.log.warn({ err }, 'auth change not announced: other replicas see it within 30 s'));
  }

  /** Something changed (here, elsewhere, or notifications may have been lost): forget, and look at open streams again. */
  changed(): void {
    this.generation++;
    this.keys.clear();
    this.principals.clear();
    this.grantMaps.clear();
    this.owners.clear();
    this.jwts.clear();
    this.recheckStreams();
  }

  /**
   * Keeps checking an open stream: when `caller`'s credential is no longer valid, or it may no
   * longer `verb` on `queue`, `end` is called (once) with UNAUTHENTICATED or PERMISSION_DENIED.
   * Returns the function that stops watching.
   */
  watch(caller: Caller, verb: Verb | null, queue: string, end: (err: InboxdError) => void, call?: CallInfo): () => void {
    if (!this.required) return () => {};
    const w: Watched = { caller, verb, queue, end, method: call?.getPath?.() ?? '', peer: call?.getPeer?.() ?? '' };
    this.watched.add(w);
    return () => this.watched.delete(w);
  }

  private recheckStreams(): void {
    if (this.watched.size === 0) return;
    if (this.rechecking) {
      this.recheckAgain = true;
      return;
    }
    this.rechecking = this.recheck()
      .catch(err => this.log.debug({ err }, 'stream auth check failed; trying again'))
      .finally(() => {
        this.rechecking = undefined;
        if (this.recheckAgain) {
          this.recheckAgain = false;
          this.recheckStreams();
        }
      });
  }

  /** One pass over the open streams: each distinct credential authenticated once, each grant asked once. */
  private async recheck(): Promise<void> {
    const byCredential = new Map<string, Watched[]>();
    for (const w of this.watched) {
      const k = `${w.caller.credential.bearer ?? ''}\n${w.caller.credential.certName ?? ''}`;
      const list = byCredential.get(k);
      if (list) list.push(w);
      else byCredential.set(k, [w]);
    }
    for (const list of byCredential.values()) {
      // Grouped by credential: every list holds the stream that made it.
      const now = await this.identify(list[0]!.caller.credential);
      // Many streams of one principal on one queue: one question.
      const allowed = new Map<string, Promise<boolean>>();
      for (const w of list) {
        if (!this.watched.has(w)) continue;
        let err: InboxdError | undefined;
        if ('reason' in now || now.principal !== w.caller.principal) {
          const d: Denial = 'reason' in now ? now : { reason: 'bad_credential', message: 'the credential now names another principal' };
          this.audit.record({
            action: 'denied',
            principal: w.caller.principal,
            verb: w.verb ?? '',
            target: w.queue,
            method: w.method,
            detail: `${d.reason}: ${d.message} (open stream ended)`,
            peer: w.peer,
          });
          err = unauthenticated(`${d.message}: this stream is ended`);
        } else if (
          w.verb !== null &&
          !(await (allowed.get(`${w.verb}\n${w.queue}`) ?? allowed.set(`${w.verb}\n${w.queue}`, this.can(now, w.verb, w.queue)).get(`${w.verb}\n${w.queue}`)!))
        ) {
          err = this.deny(
            now,
            w.verb,
            w.queue,
            undefined,
            `principal ${now.principal} may no longer ${w.verb} on queue ${w.queue}: its grant was removed, so this stream is ended`,
          );
        }
        if (err) {
          this.watched.delete(w);
          w.end(err);
        }
      }
    }
  }

  /** A change of who is seen or of stream counts reaches the database within REPORT_SOON_MS (once, however many changes). */
  private reportSoon(): void {
    if (this.reportTimer || this.stopped) return;
    this.reportTimer = setTimeout(() => {
      this.reportTimer = undefined;
      void this.report();
    }, REPORT_SOON_MS);
    this.reportTimer.unref();
  }

  /** Tells the database who was seen, and how many streams each holds here. */
  private async report(): Promise<void> {
    if (!this.required) return;
    const principals = [...this.seenPrincipals];
    const keys = [...this.seenKeys];
    this.seenPrincipals = new Set();
    this.seenKeys = new Set();
    try {
      if (principals.length > 0 || keys.length > 0) await this.exec(sql.touchSeen(this.schema, principals, keys));
      const held = [...this.streamsOf];
      await this.exec(
        sql.reportPresence(
          this.schema,
          this.replica,
          held.map(h => h[0]),
          held.map(h => h[1]),
        ),
      );
    } catch (err) {
      this.log.debug({ err }, 'presence report failed');
    }
  }

  /** API key hashing, for the Auth service. */
  hashKey(key: string): Buffer {
    return this.hasher.hash(key);
  }
}

/** The bearer token and the verified client certificate's name of a call. */
function credentialOf(call: CallInfo): Credential {
  const c: Credential = {};
  const raw = call.metadata.get('authorization')[0];
  if (typeof raw === 'string' && raw.trim()) {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(raw.trim());
    // Present but not a bearer credential: refused as a bad one, not ignored.
    c.bearer = m ? m[1] : '';
  }
  const cert = call.getAuthContext?.().sslPeerCertificate;
  if (cert) c.certName = certName(cert);
  return c;
}

/** A client certificate's principal: its subject's common name (the first when several). */
function certName(cert: PeerCertificate): string | undefined {
  const cn = (cert.subject as Record<string, string | string[] | undefined> | undefined)?.CN;
  if (typeof cn === 'string') return cn;
  if (Array.isArray(cn)) return cn[0];
  if (cert.raw) {
    const m = /CN=([^\n,]+)/.exec(new X509Certificate(cert.raw).subject);
    if (m) return m[1];
  }
  return undefined;
}
