import type { ApiKeyInfo } from '@inboxd/sdk';
import { Command, InvalidArgumentError } from 'commander';
import { type ClientFlags, parseDuration, withClient, withClientOptions } from '../client.js';
import { io } from '../io.js';
import { print, table } from '../output.js';

const iso = (d: Date | undefined) => d?.toISOString() ?? '-';

/** active, revoked or expired (as of now). */
export function keyState(k: ApiKeyInfo, now = Date.now()): 'active' | 'revoked' | 'expired' {
  if (k.revokedAt) return 'revoked';
  if (k.expiresAt && k.expiresAt.getTime() <= now) return 'expired';
  return 'active';
}

const keysTable = (ks: ApiKeyInfo[]) =>
  table(ks, [
    { header: 'ID', value: k => k.id },
    { header: 'PRINCIPAL', value: k => k.principal },
    { header: 'STATE', value: k => keyState(k) },
    { header: 'EXPIRES', value: k => (k.expiresAt ? k.expiresAt.toISOString() : 'never') },
    { header: 'LAST USED', value: k => iso(k.lastUsedAt) },
    { header: 'CREATED', value: k => iso(k.createdAt) },
    { header: 'CREATED BY', value: k => k.createdBy || '-' },
  ]);

const keyJson = (k: ApiKeyInfo) => ({
  ...k,
  state: keyState(k),
  createdAt: k.createdAt?.toISOString(),
  expiresAt: k.expiresAt?.toISOString() ?? null,
  revokedAt: k.revokedAt?.toISOString(),
  lastUsedAt: k.lastUsedAt?.toISOString(),
});

/** `--expires`: a duration from now ('30d', '12h', '90m') or an ISO time ('2026-01-31', '2026-01-31T12:00:00Z'), in the future. */
export function parseExpiry(raw: string, now = Date.now()): Date {
  let at: Date;
  if (/^\d{4}-\d{2}-\d{2}/.test(raw.trim())) {
    at = new Date(raw.trim());
    if (Number.isNaN(at.getTime())) throw new InvalidArgumentError(`${JSON.stringify(raw)} is not a valid ISO time`);
  } else {
    let ms: number;
    try {
      ms = parseDuration(raw);
    } catch {
      throw new InvalidArgumentError(`${JSON.stringify(raw)} is neither a duration (30d, 12h, 90m) nor an ISO time (2026-01-31T12:00:00Z)`);
    }
    if (ms <= 0) throw new InvalidArgumentError('the expiry must be after now');
    at = new Date(now + ms);
  }
  if (at.getTime() <= now) throw new InvalidArgumentError(`${at.toISOString()} is in the past`);
  return at;
}

/**
 * `inboxd keys …`: API keys. `keys create` prints the key itself on stdout, alone (so
 * `KEY=$(inboxd keys create bot)` works), and on stderr that it will not be shown again;
 * with --json, stdout is `{"key": …, "id": …, "principal": …, "expiresAt": …}`.
 */
export function keysCommand(): Command {
  const keys = new Command('keys').description('create, list and revoke API keys');

  withClientOptions(
    keys
      .command('create')
      .description('create an API key for a principal and print it (once: it cannot be shown again)')
      .argument('<principal>')
      .option('--expires <when>', 'expire after a duration (30d, 12h) or at an ISO time (default: never)', (raw: string) => parseExpiry(raw)),
  ).action(async (principal: string, o: ClientFlags & { expires?: Date }) =>
    withClient(o, async (client, out) => {
      const { key, secret } = await client.auth.createKey(principal, { expiresAt: o.expires });
      const expires = key.expiresAt ? `expires ${key.expiresAt.toISOString()}` : 'never expires';
      io().stderr.write(
        `inboxd: created API key ${key.id} for ${key.principal || principal} (${expires}).\n` +
          'inboxd: store it now: this is the only time it is shown, it will not be shown again.\n',
      );
      print(out, { key: secret, id: key.id, principal: key.principal || principal, expiresAt: key.expiresAt?.toISOString() ?? null }, () => `${secret}\n`);
    }),
  );

  withClientOptions(
    keys
      .command('list')
      .alias('ls')
      .description("list a principal's API keys (default: your own), revoked ones included; never their secrets")
      .argument('[principal]'),
  ).action(async (principal: string | undefined, o: ClientFlags) =>
    withClient(o, async (client, out) => {
      const all = await client.auth.listKeys(principal);
      print(out, all.map(keyJson), () => (all.length === 0 ? 'no keys\n' : keysTable(all)));
    }),
  );

  withClientOptions(
    keys
      .command('revoke')
      .description('revoke an API key at once: calls with it fail and its open streams end')
      .argument('<key-id>', 'the id, as keys list shows it'),
  ).action(async (keyId: string, o: ClientFlags) =>
    withClient(o, async (client, out) => {
      const k = await client.auth.revokeKey(keyId);
      print(out, keyJson(k), () => `revoked key ${k.id || keyId}${k.principal ? ` of ${k.principal}` : ''}\n`);
    }),
  );

  return keys;
}
