import grpc from '@grpc/grpc-js';
import type { InboxdClient } from '@inboxd/sdk';
import fc from 'fast-check';
import { caseArb, caseJson, encodeCase, type FuzzCase, type FuzzContext, rpcOf } from './arbitraries.js';
import { AUTH_NAMES, type AuthSecrets, classifyCred, credLabel, needsRawPath, refreshAuth, refreshPrincipalsAuthOff, resolveCred } from './auth.js';
import { type AuthVerdict, judgeAuth } from './auth-checks.js';
import { callWithHeaders } from './auth-transport.js';
import { runH2 } from './http2-abuse.js';
import { BAD_CODES, codeName, type Outcome, type RawClient } from './raw-client.js';

/**
 * The fuzz loop. A batch runs `lanes` fast-check properties side by side, each with its own seed
 * (batch and lane derive from --seed) and `perLane` runs; run i of a lane is fast-check path "i".
 * The property never fails during the batch, so that every bad status is counted, not only the
 * first; afterwards, the first failures of each kind are replayed from (seed, path) and shrunk by
 * fast-check to a minimal case.
 */

export const CTX_NAMES = {
  queues: ['fz-a', 'fz-b'],
  dlq: 'fz-dlq',
  scratch: ['fzc-0', 'fzc-1', 'fzc-2', 'fzc-3'],
  topics: ['fz-topic', 'fz-topic-empty'],
  canary: 'canary',
};

/**
 * Refreshes the real state the generators aim at: queues exist, messages stored, live leases,
 * principals with keys. `client` acts for the run: anonymous with auth off, the admin key with auth
 * required (`auth`: then the user and its keys are checked too, and some leases are the user's).
 */
export async function refreshContext(client: InboxdClient, auth?: { address: string; secrets: AuthSecrets }): Promise<FuzzContext> {
  const opts = { retry: { totalTimeout: 10_000 } };
  const ctx: FuzzContext = {
    queues: CTX_NAMES.queues,
    dlq: CTX_NAMES.dlq,
    scratch: CTX_NAMES.scratch,
    topics: CTX_NAMES.topics,
    tokens: [],
    messageIds: [],
    principals: auth ? [AUTH_NAMES.user, AUTH_NAMES.admin, ...AUTH_NAMES.scratch] : [...AUTH_NAMES.scratch],
    scratchPrincipals: AUTH_NAMES.scratch,
    protectedPrincipals: auth ? [AUTH_NAMES.user] : [],
    keyIds: [],
  };
  const tryIt = async <T>(p: Promise<T>): Promise<T | undefined> => p.catch(() => undefined);
  await tryIt(client.queues.ensure(CTX_NAMES.dlq, {}, opts));
  await tryIt(client.queues.ensure('fz-a', { deadLetterQueue: CTX_NAMES.dlq, maxAttempts: 3 }, opts));
  await tryIt(client.queues.ensure('fz-b', {}, opts));
  await tryIt(client.queues.ensure(CTX_NAMES.canary, {}, opts));
  await tryIt(client.topics.subscribe('fz-topic', 'fz-b', opts));
  for (const q of CTX_NAMES.queues) {
    const ids = await Promise.all(Array.from({ length: 15 }, (_, i) => tryIt(client.send(q, `seed message ${i}`, { headers: { n: String(i) } }))));
    ctx.messageIds.push(...ids.filter((x): x is string => !!x));
    const leased = await tryIt(client.lease(q, { max: 10, visibilityTimeout: '10m', ...opts }));
    ctx.tokens.push(...(leased ?? []).map(m => m.leaseToken));
  }
  if (!auth) {
    ctx.keyIds = await refreshPrincipalsAuthOff(client);
    return ctx;
  }
  const secrets = await refreshAuth(auth.address, auth.secrets, CTX_NAMES.queues[0]!);
  const tokenOwner: Record<string, string> = {};
  for (const t of ctx.tokens) tokenOwner[t] = AUTH_NAMES.admin;
  for (const t of secrets.userTokens) tokenOwner[t] = AUTH_NAMES.user;
  ctx.tokens.push(...secrets.userTokens);
  ctx.keyIds = secrets.foreignKeyIds;
  const { userTokens: _, ...rest } = secrets;
  ctx.auth = { ...rest, tokenOwner };
  return ctx;
}

export interface Where {
  seed: number;
  path: string;
  batch: number;
  lane: number;
}

export interface Failure extends Where {
  /** INTERNAL, UNKNOWN, hang, or a bad code inside a streamed response. */
  kind: string;
  rpc: string;
  status: string;
  details: string;
  request: unknown;
  /** Each request's bytes (hex; long ones cut). */
  hex: string[];
  /** Set when the status comes from grpc-js's own server call, before any inboxd code runs. */
  hint?: string;
  /** The auth-required run: the credential the case carried, and what the server should have taken it for. */
  credential?: string;
  shrunk?: { path: string; request: unknown; hex: string[]; status: string; details: string } | { error: string };
}

export function caseName(c: FuzzCase): string {
  return c.kind === 'rpc' ? c.rpc : `h2.${c.abuse.t}`;
}

export function caseHex(c: FuzzCase): string[] {
  const cut = (b: Buffer) => (b.length > 1024 ? `${b.subarray(0, 512).toString('hex')}…(${b.length} bytes)` : b.toString('hex'));
  return c.kind === 'rpc' ? encodeCase(c).map(cut) : [];
}

/** What makes a case fail: a status nobody can act on, or no answer. */
export function failureKind(o: Outcome): string | undefined {
  if (o.hang) return 'hang';
  if (o.code !== undefined && BAD_CODES.has(o.code)) return codeName(o.code);
  const inner = o.inner.find(i => BAD_CODES.has(i.code) || i.code === -1);
  if (inner) return inner.code === -1 ? 'undecodable response' : `${codeName(inner.code)} in a response message`;
  return undefined;
}

/**
 * Sends a case. In the auth-required run (ctx.auth) with its credential: through grpc-js when it
 * is at most one printable-ASCII value, else on the raw HTTP/2 path (auth-transport.ts); a
 * Subscribe without a valid credential is held open 3 s, not 250 ms, so that one the server
 * accepts shows as "open".
 */
export async function runCase(c: FuzzCase, raw: RawClient, deadlineMs: number, ctx?: FuzzContext): Promise<Outcome> {
  if (c.kind === 'h2') return runH2(raw.address, c.abuse, deadlineMs);
  const rpc = rpcOf(c.rpc);
  const bodies = encodeCase(c);
  const halfClose = rpc.name !== 'Inbox.Subscribe';
  if (c.auth && ctx?.auth) {
    const values = resolveCred(c.auth, ctx.auth);
    const cred = { label: credLabel(c.auth), cls: classifyCred(c.auth, ctx.auth, Date.now()) };
    if (needsRawPath(values)) return { ...(await callWithHeaders(raw.address, rpc.path, bodies, values, deadlineMs, rpc.responseType)), auth: cred };
    const metadata = new grpc.Metadata();
    for (const v of values) metadata.add('authorization', v);
    if (!rpc.requestStream) return { ...(await raw.unary(rpc.path, bodies[0]!, deadlineMs, metadata)), auth: cred };
    const holdMs = cred.cls === 'none' || cred.cls === 'invalid' ? 3000 : 250;
    return { ...(await raw.stream(rpc.path, bodies, { deadlineMs, halfClose, holdMs, responseType: rpc.responseType, metadata })), auth: cred };
  }
  if (!rpc.requestStream) return raw.unary(rpc.path, bodies[0]!, deadlineMs);
  return raw.stream(rpc.path, bodies, { deadlineMs, halfClose, holdMs: 250, responseType: rpc.responseType });
}

/** What makes a case fail in a run: failureKind, then (auth-required run) the auth oracle. */
export function judge(c: FuzzCase, o: Outcome, ctx: FuzzContext): AuthVerdict {
  const kind = failureKind(o);
  const a = ctx.auth ? judgeAuth(c, o, ctx) : { checked: [] };
  return { kind: kind ?? a.kind, checked: a.checked };
}

export class Stats {
  cases = 0;
  /** Status → count, over every case. */
  statuses: Record<string, number> = {};
  /** "rpc" → status → count. */
  byRpc: Record<string, Record<string, number>> = {};
  failures: Failure[] = [];
  /** Failures counted (all of them; `failures` keeps the first few of each kind and rpc). */
  failureCount = 0;
  /** "rpc" → failures counted. */
  failByRpc: Record<string, number> = {};
  /** Auth-required run: credential (auth.ts credLabel) → status → count. */
  byCredential: Record<string, Record<string, number>> = {};
  /** Auth-required run: credential → what the server should take it for (auth.ts CredClass) → count. */
  credentialClasses: Record<string, Record<string, number>> = {};
  /** Auth-required run: auth check (auth-checks.ts) → cases it applied to. */
  authChecked: Record<string, number> = {};
  /** Auth-required run: auth check failures counted (also in failureCount). */
  authFailures = 0;
  private kept = new Map<string, number>();

  record(c: FuzzCase, o: Outcome, where: Where, verdict: AuthVerdict = { kind: failureKind(o), checked: [] }): void {
    this.cases++;
    const name = caseName(c);
    const s = o.inner.length ? `${o.status} (+${o.inner.map(i => codeName(i.code)).join(',')} inside)` : o.status;
    this.statuses[o.status] = (this.statuses[o.status] ?? 0) + 1;
    (this.byRpc[name] ??= {})[s] = (this.byRpc[name][s] ?? 0) + 1;
    if (o.auth) {
      const byStatus = (this.byCredential[o.auth.label] ??= {});
      byStatus[o.status] = (byStatus[o.status] ?? 0) + 1;
      const byClass = (this.credentialClasses[o.auth.label] ??= {});
      byClass[o.auth.cls] = (byClass[o.auth.cls] ?? 0) + 1;
    }
    for (const k of verdict.checked) this.authChecked[k] = (this.authChecked[k] ?? 0) + 1;
    const kind = verdict.kind;
    if (!kind) return;
    if (!failureKind(o)) this.authFailures++;
    this.failureCount++;
    this.failByRpc[name] = (this.failByRpc[name] ?? 0) + 1;
    const key = `${kind} ${name} ${o.details.replace(/[\d.]+/g, '#').slice(0, 60)}`;
    const n = this.kept.get(key) ?? 0;
    this.kept.set(key, n + 1);
    if (n < 3) {
      this.failures.push({
        ...where,
        kind,
        rpc: name,
        status: o.status,
        details: (o.details || o.inner.map(i => `${codeName(i.code)}: ${i.message}`).join('; ')).slice(0, 500),
        request: caseJson(c),
        hex: caseHex(c),
        hint: hintOf(o.details),
        credential: o.auth ? `${o.auth.label} (taken for: ${o.auth.cls})` : undefined,
      });
    }
  }
}

export interface BatchOptions {
  raw: RawClient[];
  ctx: FuzzContext;
  seedBase: number;
  batch: number;
  perLane: number;
  deadlineMs: number;
}

export const laneSeed = (seedBase: number, batch: number, lane: number) => (seedBase + batch * 7919 + lane * 104_729) | 0;

/** One batch: a fast-check property per lane, run concurrently. */
export async function runBatch(o: BatchOptions, stats: Stats): Promise<void> {
  const arb = caseArb(o.ctx);
  await Promise.all(
    o.raw.map(async (raw, lane) => {
      const seed = laneSeed(o.seedBase, o.batch, lane);
      let index = 0;
      const prop = fc.asyncProperty(arb, async c => {
        const path = String(index++);
        const out = await runCase(c, raw, o.deadlineMs, o.ctx);
        stats.record(c, out, { seed, path, batch: o.batch, lane }, judge(c, out, o.ctx));
        return true;
      });
      await fc.check(prop, { seed, numRuns: o.perLane });
    }),
  );
}

/** Replays a failure from its seed and path with the batch's context, and lets fast-check shrink it. */
export async function shrink(f: Failure, ctx: FuzzContext, raw: RawClient, deadlineMs: number, timeLimitMs: number): Promise<Failure['shrunk']> {
  let last: { c: FuzzCase; o: Outcome } | undefined;
  const prop = fc.asyncProperty(caseArb(ctx), async c => {
    const o = await runCase(c, raw, deadlineMs, ctx);
    const kind = judge(c, o, ctx).kind;
    const bad = kind !== undefined && kind !== 'hang';
    if (bad) last = { c, o };
    return !bad;
  });
  const res = await fc.check(prop, { seed: f.seed, path: f.path, interruptAfterTimeLimit: timeLimitMs, markInterruptAsFailure: false });
  if (!res.failed || !res.counterexample || !last) return { error: 'did not fail again on replay (it depends on state: see the request above)' };
  const c = res.counterexample[0] as FuzzCase;
  return { path: res.counterexamplePath ?? f.path, request: caseJson(c), hex: caseHex(c), status: last.o.status, details: last.o.details.slice(0, 300) };
}

/** grpc-js answers these itself (server-interceptors.js) before the handler: the fix is around the library, not in a handler. */
function hintOf(details: string): string | undefined {
  if (/^(Failed to decompress message|Error deserializing request|Invalid grpc-timeout)/.test(details))
    return "status sent by grpc-js's server call itself, before any inboxd handler runs";
  if (/session has been destroyed/.test(details))
    return 'collateral: an earlier case broke this HTTP/2 connection (look for "Protocol error" on the same seed); not shrunk';
  if (/RST_STREAM with code 2 triggered by internal client error: Protocol error/.test(details))
    return "the client's HTTP/2 layer rejected the server's answer (e.g. an oversized grpc-message header): the connection and every call on it fail";
  return undefined;
}
