import { randomBytes } from 'node:crypto';
import { createClient, type InboxdClient, type Verb } from '@inboxd/sdk';
import fc from 'fast-check';

/**
 * The auth-required run (run.ts, phase fuzz_auth): a server with INBOXD_AUTH=required and a random
 * INBOXD_ADMIN_KEY, the principals and keys set up for it, and the credentials a case carries in
 * its `authorization` metadata. A case holds its credential symbolically ({ key: 'user', form:
 * 'truncated', … }) so that a reproducer shows what it was; it is resolved against this run's
 * secrets when sent. What the server must answer for each is checked in auth-checks.ts.
 */

/** The principals the run sets up. `user` must never be deleted or given grants by the fuzzer. */
export const AUTH_NAMES = {
  /** The bootstrap admin key authenticates as this principal. */
  admin: 'admin',
  /** A non-admin principal with the grants in USER_GRANTS; its valid key is `userKey`. */
  user: 'fz-user',
  /** Created with a key, then deleted: that key names a principal that is gone. */
  gone: 'fz-gone',
  /** Principals the fuzzer may create, delete, and revoke the keys of (both runs). */
  scratch: ['fzp-0', 'fzp-1', 'fzp-2', 'fzp-3'],
};

/** What `user` may do: read and write fz-a, publish to fz-topic, everything under fzc-* (the scratch queues). */
export const USER_GRANTS: [string, Verb[]][] = [
  ['fz-a', ['send', 'consume', 'browse']],
  ['fz-topic', ['send']],
  ['fzc-*', ['send', 'consume', 'browse', 'admin']],
];

/** Whether `user` may `verb` on `name` (USER_GRANTS; it owns only what it created, under fzc-*, and reply queues). */
export function userMay(verb: Verb, name: string): boolean {
  if (name.startsWith('fzc-') || name.startsWith('reply.')) return true;
  if (name === 'fz-a') return verb !== 'admin';
  if (name === 'fz-topic') return verb === 'send';
  return false;
}

/** Whether `user` may see that `name` exists (any verb on it). */
export const userSees = (name: string) => (['send', 'consume', 'browse', 'admin'] as Verb[]).some(v => userMay(v, name));

/** This run's secrets, and what the fuzzer aims at with them; refreshed before each batch. */
export interface AuthSecrets {
  adminKey: string;
  /** A valid key of AUTH_NAMES.user. */
  userKey: string;
  userKeyId: string;
  /** A key of AUTH_NAMES.user, revoked. */
  revokedKey: string;
  revokedKeyId: string;
  /** A key of AUTH_NAMES.gone, deleted with it. */
  deletedKey: string;
  deletedKeyId: string;
  /** A key of AUTH_NAMES.user that expired at `expiresAtMs`, shortly after the run began. */
  expiredKey: string;
  expiredKeyId: string;
  expiresAtMs: number;
  /** Lease token → the principal it was issued to (settling it as anyone else must fail). */
  tokenOwner: Record<string, string>;
  /** Ids of keys of the scratch principals: RevokeKey targets that are not the user's. */
  foreignKeyIds: string[];
}

const setupOpts = { retry: { totalTimeout: 10_000, maxAttempts: 3 } };

async function ignoreExists<T>(p: Promise<T>): Promise<T | undefined> {
  return p.catch(err => {
    if (/ALREADY_EXISTS|already exists/i.test(String((err as Error).message))) return undefined;
    throw err;
  });
}

/** A random admin key: 48 hex digits. */
export const newAdminKey = () => randomBytes(24).toString('hex');

export function adminClient(address: string, adminKey: string): InboxdClient {
  return createClient({ address, apiKey: adminKey, retry: { totalTimeout: 10_000 } });
}

async function makeUser(admin: InboxdClient): Promise<{ key: string; id: string }> {
  await ignoreExists(admin.auth.createPrincipal(AUTH_NAMES.user, { metadata: { team: 'fuzz', note: 'the non-admin credential' } }, setupOpts));
  for (const [pattern, verbs] of USER_GRANTS) await admin.auth.addGrant(AUTH_NAMES.user, pattern, verbs, setupOpts);
  const k = await admin.auth.createKey(AUTH_NAMES.user, {}, setupOpts);
  return { key: k.secret, id: k.key.id };
}

/**
 * Sets up the principals and keys of the auth-required run, on a fresh server: the user with its
 * grants and keys (valid, revoked, expiring a second from now), and a key of a principal that is
 * then deleted.
 */
export async function setupAuth(address: string, adminKey: string): Promise<AuthSecrets> {
  const admin = adminClient(address, adminKey);
  try {
    const who = await admin.auth.whoami(setupOpts);
    if (!who.authRequired || !who.admin) throw new Error(`the auth-required server took the admin key for ${JSON.stringify(who)}`);
    await ignoreExists(admin.auth.createPrincipal(AUTH_NAMES.user, { metadata: { team: 'fuzz' } }, setupOpts));
    // First, so that it has expired by the first batch (or soon after: until then, cases with it assert nothing).
    let expiresAtMs = Date.now() + 1000;
    const expired = await admin.auth.createKey(AUTH_NAMES.user, { expiresAt: new Date(expiresAtMs) }, setupOpts).catch(() => {
      // A loaded machine: the call arrived after that time. Once more, with room.
      expiresAtMs = Date.now() + 3000;
      return admin.auth.createKey(AUTH_NAMES.user, { expiresAt: new Date(expiresAtMs) }, setupOpts);
    });
    const user = await makeUser(admin);
    const revoked = await admin.auth.createKey(AUTH_NAMES.user, {}, setupOpts);
    await admin.auth.revokeKey(revoked.key.id, setupOpts);
    await ignoreExists(admin.auth.createPrincipal(AUTH_NAMES.gone, {}, setupOpts));
    const deleted = await admin.auth.createKey(AUTH_NAMES.gone, {}, setupOpts);
    await admin.auth.deletePrincipal(AUTH_NAMES.gone, setupOpts);
    return {
      adminKey,
      userKey: user.key,
      userKeyId: user.id,
      revokedKey: revoked.secret,
      revokedKeyId: revoked.key.id,
      deletedKey: deleted.secret,
      deletedKeyId: deleted.key.id,
      expiredKey: expired.secret,
      expiredKeyId: expired.key.id,
      expiresAtMs,
      tokenOwner: {},
      foreignKeyIds: [],
    };
  } finally {
    await admin.close({ timeout: 1000 }).catch(() => {});
  }
}

/**
 * Before a batch: the user is still itself (its key valid, not an admin: else it is made again,
 * with a new key), its grants are back, the scratch principals exist with a fresh key each, and
 * some lease tokens are the user's. Returns this batch's secrets.
 */
export async function refreshAuth(address: string, s: AuthSecrets, userQueue: string): Promise<AuthSecrets & { userTokens: string[] }> {
  const admin = adminClient(address, s.adminKey);
  const next = { ...s, tokenOwner: {}, foreignKeyIds: [] as string[] };
  try {
    let ok = false;
    const probe = createClient({ address, apiKey: s.userKey, retry: { totalTimeout: 5000 } });
    try {
      const who = await probe.auth.whoami(setupOpts);
      ok = who.principal === AUTH_NAMES.user && !who.admin;
    } catch {
      ok = false;
    } finally {
      await probe.close({ timeout: 1000 }).catch(() => {});
    }
    if (!ok) {
      await admin.auth.deletePrincipal(AUTH_NAMES.user, setupOpts).catch(() => {});
      const u = await makeUser(admin);
      next.userKey = u.key;
      next.userKeyId = u.id;
    } else for (const [pattern, verbs] of USER_GRANTS) await admin.auth.addGrant(AUTH_NAMES.user, pattern, verbs, setupOpts).catch(() => {});
    for (const p of AUTH_NAMES.scratch) {
      await ignoreExists(admin.auth.createPrincipal(p, { metadata: { scratch: 'yes' } }, setupOpts)).catch(() => {});
      const k = await admin.auth.createKey(p, {}, setupOpts).catch(() => undefined);
      if (k) next.foreignKeyIds.push(k.key.id);
    }
  } finally {
    await admin.close({ timeout: 1000 }).catch(() => {});
  }
  const user = createClient({ address, apiKey: next.userKey, retry: { totalTimeout: 10_000 } });
  let userTokens: string[] = [];
  try {
    await Promise.all(Array.from({ length: 6 }, (_, i) => user.send(userQueue, `user seed ${i}`).catch(() => undefined)));
    userTokens = (await user.lease(userQueue, { max: 6, visibilityTimeout: '10m', ...setupOpts }).catch(() => [])).map(m => m.leaseToken);
  } finally {
    await user.close({ timeout: 1000 }).catch(() => {});
  }
  return { ...next, userTokens };
}

/** Scratch principals and a key each, with auth off (the anonymous caller may do anything). */
export async function refreshPrincipalsAuthOff(client: InboxdClient): Promise<string[]> {
  const ids: string[] = [];
  for (const p of AUTH_NAMES.scratch) {
    await ignoreExists(client.auth.createPrincipal(p, { metadata: { scratch: 'yes' } }, setupOpts)).catch(() => {});
    const k = await client.auth.createKey(p, {}, setupOpts).catch(() => undefined);
    if (k) ids.push(k.key.id);
  }
  return ids;
}

// ─── Credentials ───────────────────────────────────────────────────────────────────────────────

export type KeyRef = 'admin' | 'user' | 'revoked' | 'deleted' | 'expired';
/** whole: the key as issued; the others are not it (a changed last character, no `ibx_`, one character short or long, upper case). */
export type KeyForm = 'whole' | 'wrong_secret' | 'no_prefix' | 'truncated' | 'extended' | 'upper';

export type CredValue =
  /** `${scheme}${the key, in form}${tail}` */
  | { t: 'key'; key: KeyRef; form: KeyForm; scheme: string; tail: string }
  /** A literal value (latin1: one byte a character), never a valid credential. */
  | { t: 'raw'; value: string };

/** The `authorization` values a case sends, in order; none: no such header. */
export interface CaseAuth {
  values: CredValue[];
}

/**
 * What the server should take a credential for: `admin`, `user` (the non-admin key), `invalid`
 * (no valid credential at all: UNAUTHENTICATED), `nonadmin` (several values, none the admin's: an
 * admin-only RPC must not answer OK whichever it takes), or `ambiguous` (a key about to expire,
 * whitespace other than spaces, values of several principals): nothing is asserted.
 */
export type CredClass = 'none' | 'admin' | 'user' | 'invalid' | 'nonadmin' | 'ambiguous';

/**
 * Schemes before the key: RFC 6750 says "Bearer" 1*SP token, the scheme case-insensitive (RFC 9110
 * §11.1). Ambiguous: other whitespace (the server's \s takes a tab or U+00A0), and whitespace at
 * either end of the value, which HTTP/2 forbids (RFC 9113 §8.2.1): nghttp2 drops such a header
 * field before the server sees it, so the call arrives with no credential at all.
 */
const SCHEMES: Record<string, 'valid' | 'invalid' | 'ambiguous'> = {
  'Bearer ': 'valid',
  'bearer ': 'valid',
  'BEARER ': 'valid',
  'Bearer    ': 'valid',
  ' Bearer ': 'ambiguous',
  '': 'invalid',
  Bearer: 'invalid',
  'Basic ': 'invalid',
  'Token ': 'invalid',
  'Bearer: ': 'invalid',
  'Bearer ,': 'invalid',
  'Bearer Bearer ': 'invalid',
  'Bearer\t': 'ambiguous',
  'Bearer\u00a0': 'ambiguous',
};
const TAILS: Record<string, 'valid' | 'invalid' | 'ambiguous'> = {
  '': 'valid',
  ' ': 'ambiguous',
  '   ': 'ambiguous',
  x: 'invalid',
  ' x': 'invalid',
  ',': 'invalid',
  ' Bearer': 'invalid',
  '\u00e9': 'invalid',
  '\t': 'ambiguous',
};

const HEX = '0123456789abcdef';
const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const chars = (alphabet: string, n: number) => fc.string({ unit: fc.constantFrom(...alphabet), minLength: n, maxLength: n });

/** Literal values that are no credential of this server (headers a client might send by mistake, or an attacker on purpose). */
const RAW_VALUES: fc.Arbitrary<string> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.constantFrom(
      '',
      ' ',
      'Bearer',
      'Bearer ',
      'Bearer  ',
      'bearer',
      'BEARER',
      'Basic',
      'Basic YWRtaW46YWRtaW4=',
      'Bearer null',
      'Bearer undefined',
      'Bearer admin',
      'Bearer fz-user',
      'Bearer *',
      'Bearer a.b.c',
      'Bearer ..',
      'Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZG1pbiJ9.c2lnbmF0dXJl',
      'Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiIsImFkbWluIjp0cnVlfQ.',
      'Bearer ibx_',
      'Bearer ibx__',
      'Bearer ibx_0000000000000000_',
      'Bearer %00',
      'Bearer \\u0000',
    ),
  },
  // An API key's shape, an id that exists nowhere and a secret of junk.
  { weight: 3, arbitrary: fc.tuple(chars(HEX, 16), chars(B64URL, 43)).map(([id, sec]) => `Bearer ibx_${id}_${sec}`) },
  // The shape with characters a secret never has.
  {
    weight: 1,
    arbitrary: fc
      .tuple(chars(HEX, 16), fc.string({ minLength: 43, maxLength: 43, unit: fc.constantFrom('!', '.', '~', '+', '/', '=', 'é', 'z') }))
      .map(([id, sec]) => `Bearer ibx_${id}_${sec}`),
  },
  // JWT-shaped junk (no JWT keys are configured: still no credential).
  { weight: 2, arbitrary: fc.tuple(chars(B64URL, 12), chars(B64URL, 20), chars(B64URL, 8)).map(([a, b, c]) => `Bearer ${a}.${b}.${c}`) },
  // Huge: 8 KB, 16 KB, and 70 KB (past node:http2's header list limit: sent on the raw path, as grpc-js's client would report the reset as INTERNAL).
  {
    weight: 1,
    arbitrary: fc
      .constantFrom(8192, 16_384, 70_000)
      .chain(n => fc.constantFrom(`Bearer ${'A'.repeat(n)}`, 'x'.repeat(n), `Bearer ibx_${'0'.repeat(16)}_${'a'.repeat(n)}`)),
  },
  // Outside printable ASCII (sent on the raw HTTP/2 path): latin1, tab, NUL, DEL.
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      'Bearer caf\u00e9',
      'Bearer \u00ff\u00fe\u00fd',
      '\u00e9',
      `Bearer ${'\u00e9'.repeat(100)}`,
      'Bearer ibx_\u00e9\u00e9',
      '\t',
      'Bearer\t',
      'Bearer \u0000',
      '\u0000',
      'Bearer \u007f',
      'Bearer x\u0085',
    ),
  },
);

const keyValue = (keys: KeyRef[], forms: fc.Arbitrary<KeyForm>, schemes: fc.Arbitrary<string>, tails: fc.Arbitrary<string>): fc.Arbitrary<CredValue> =>
  fc.record({ t: fc.constant('key' as const), key: fc.constantFrom(...keys), form: forms, scheme: schemes, tail: tails });

const validSchemes = fc.oneof(
  { weight: 12, arbitrary: fc.constant('Bearer ') },
  { weight: 1, arbitrary: fc.constantFrom(...Object.keys(SCHEMES).filter(k => SCHEMES[k] === 'valid')) },
);
const validTails = fc.constant('');
const whole = fc.constant('whole' as const);

/** One `authorization` value: mostly a valid key of the admin or the user, else every kind of wrong. */
const credValue: fc.Arbitrary<CredValue> = fc.oneof(
  { weight: 10, arbitrary: keyValue(['admin'], whole, validSchemes, validTails) },
  { weight: 10, arbitrary: keyValue(['user'], whole, validSchemes, validTails) },
  { weight: 3, arbitrary: keyValue(['revoked', 'deleted', 'expired'], whole, validSchemes, validTails) },
  {
    weight: 2,
    arbitrary: keyValue(['admin', 'user'], fc.constantFrom('wrong_secret', 'no_prefix', 'truncated', 'extended', 'upper'), validSchemes, validTails),
  },
  { weight: 2, arbitrary: keyValue(['admin', 'user', 'revoked'], whole, fc.constantFrom(...Object.keys(SCHEMES)), fc.constantFrom(...Object.keys(TAILS))) },
  { weight: 6, arbitrary: RAW_VALUES.map(value => ({ t: 'raw' as const, value })) },
);

/** A case's credential: none, one value, or several `authorization` headers at once. */
export const CRED_ARB: fc.Arbitrary<CaseAuth> = fc.oneof(
  { weight: 4, arbitrary: fc.constant<CaseAuth>({ values: [] }) },
  { weight: 30, arbitrary: credValue.map(v => ({ values: [v] })) },
  { weight: 3, arbitrary: fc.array(credValue, { minLength: 2, maxLength: 4 }).map(values => ({ values })) },
);

function keyText(ref: KeyRef, s: AuthSecrets): string {
  return { admin: s.adminKey, user: s.userKey, revoked: s.revokedKey, deleted: s.deletedKey, expired: s.expiredKey }[ref];
}

function formed(key: string, form: KeyForm): string {
  switch (form) {
    case 'whole':
      return key;
    case 'wrong_secret':
      return key.slice(0, -1) + (key.endsWith('A') ? 'B' : 'A');
    case 'no_prefix':
      return key.startsWith('ibx_') ? key.slice(4) : key.slice(1);
    case 'truncated':
      return key.slice(0, -1);
    case 'extended':
      return `${key}A`;
    case 'upper':
      return key.toUpperCase() === key ? key.toLowerCase() : key.toUpperCase();
  }
}

/** The header values to send (latin1 strings). */
export function resolveCred(a: CaseAuth, s: AuthSecrets): string[] {
  return a.values.map(v => (v.t === 'raw' ? v.value : `${v.scheme}${formed(keyText(v.key, s), v.form)}${v.tail}`));
}

function valueClass(v: CredValue, s: AuthSecrets, now: number): 'admin' | 'user' | 'invalid' | 'ambiguous' {
  if (v.t === 'raw') return 'invalid';
  const scheme = SCHEMES[v.scheme] ?? 'ambiguous';
  const tail = TAILS[v.tail] ?? 'ambiguous';
  if (v.form !== 'whole' || scheme === 'invalid' || tail === 'invalid' || v.key === 'revoked' || v.key === 'deleted') return 'invalid';
  if (scheme === 'ambiguous' || tail === 'ambiguous') return 'ambiguous';
  // The server compares with its own clock, the same as ours: half a second of slack.
  if (v.key === 'expired') return now > s.expiresAtMs + 500 ? 'invalid' : 'ambiguous';
  return v.key;
}

/** What the server should take the case's credential for, at time `now`. */
export function classifyCred(a: CaseAuth, s: AuthSecrets, now: number): CredClass {
  if (a.values.length === 0) return 'none';
  const [first, ...rest] = a.values.map(v => valueClass(v, s, now));
  if (first !== undefined && rest.every(c => c === first)) return first;
  const each = first === undefined ? rest : [first, ...rest];
  if (each.every(c => c === 'invalid' || c === 'user')) return 'nonadmin';
  return 'ambiguous';
}

/** A short name of the credential, for the report's per-credential table. */
export function credLabel(a: CaseAuth): string {
  if (a.values.length === 0) return 'none';
  const [v, ...more] = a.values;
  if (v === undefined) return 'none';
  if (more.length > 0) return 'several headers';
  if (v.t === 'raw') {
    if (/[^ -~]/.test(v.value)) return 'garbage (non-ASCII, control)';
    if (v.value.length > 1000) return 'garbage (8-70 KB)';
    if (/ibx_[0-9a-f]{16}_/.test(v.value)) return 'garbage (ibx_ shape)';
    if (/^Bearer [^ ]+\.[^ ]+\./.test(v.value)) return 'garbage (JWT shape)';
    return 'garbage (short)';
  }
  const name = v.key === 'user' ? 'user key' : v.key === 'admin' ? 'admin key' : v.key === 'deleted' ? 'deleted principal key' : `${v.key} key`;
  if (v.form !== 'whole') return `${name}, altered`;
  if (SCHEMES[v.scheme] !== 'valid' || TAILS[v.tail] !== 'valid')
    return `${name}, ${SCHEMES[v.scheme] === 'invalid' || TAILS[v.tail] === 'invalid' ? 'bad' : 'odd'} scheme`;
  return name;
}

/** Whether the values need the raw HTTP/2 path: several of them, bytes grpc-js will not send, or more than 16 KB. */
export const needsRawPath = (values: string[]) => values.length > 1 || values.some(v => v.length > 16_384 || !/^[ -~]*$/.test(v));
