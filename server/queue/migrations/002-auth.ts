import type { Migration } from './index.js';

/**
 * Baseline, part two: the auth tables the second release's development builds created at every
 * start (IF NOT EXISTS, so a database one of them made is adopted as it is).
 * - inboxd_secret: the random server secret every replica shares (API key hashes and lease-token
 *   signatures are keyed with it);
 * - inboxd_principal, inboxd_api_key (a keyed hash, never the key), inboxd_grant (one row per
 *   principal, name or prefix, and verb), inboxd_queue_owner (who created a queue);
 * - inboxd_presence: each replica's count of a principal's open streams;
 * - inboxd_audit: denied calls and every change of keys, principals and grants.
 */
export const auth: Migration = {
  version: 2,
  name: 'auth',
  up: schema => `
    CREATE TABLE IF NOT EXISTS ${schema}.inboxd_secret (name text PRIMARY KEY, value bytea NOT NULL);
    CREATE TABLE IF NOT EXISTS ${schema}.inboxd_principal (
      name text PRIMARY KEY,
      metadata jsonb NOT NULL DEFAULT '{}',
      admin bool NOT NULL DEFAULT false,
      max_streams int NOT NULL DEFAULT 0,
      max_send_rate int NOT NULL DEFAULT 0,
      created_at timestamptz NOT NULL DEFAULT now(),
      created_by text NOT NULL DEFAULT '',
      last_seen_at timestamptz
    );
    CREATE TABLE IF NOT EXISTS ${schema}.inboxd_api_key (
      id text PRIMARY KEY,
      principal text NOT NULL REFERENCES ${schema}.inboxd_principal (name) ON DELETE CASCADE,
      hash bytea NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      created_by text NOT NULL DEFAULT '',
      expires_at timestamptz,
      revoked_at timestamptz,
      last_used_at timestamptz
    );
    CREATE INDEX IF NOT EXISTS inboxd_api_key_principal ON ${schema}.inboxd_api_key (principal);
    CREATE TABLE IF NOT EXISTS ${schema}.inboxd_grant (
      principal text NOT NULL REFERENCES ${schema}.inboxd_principal (name) ON DELETE CASCADE,
      pattern text NOT NULL,
      verb text NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      created_by text NOT NULL DEFAULT '',
      PRIMARY KEY (principal, pattern, verb)
    );
    CREATE TABLE IF NOT EXISTS ${schema}.inboxd_queue_owner (queue text PRIMARY KEY, principal text NOT NULL);
    CREATE INDEX IF NOT EXISTS inboxd_queue_owner_principal ON ${schema}.inboxd_queue_owner (principal);
    CREATE TABLE IF NOT EXISTS ${schema}.inboxd_presence (
      principal text NOT NULL,
      replica text NOT NULL,
      streams int NOT NULL,
      seen_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (principal, replica)
    );
    CREATE TABLE IF NOT EXISTS ${schema}.inboxd_audit (
      id bigserial PRIMARY KEY,
      at timestamptz NOT NULL DEFAULT now(),
      principal text NOT NULL DEFAULT '',
      action text NOT NULL,
      method text NOT NULL DEFAULT '',
      verb text NOT NULL DEFAULT '',
      target text NOT NULL DEFAULT '',
      detail text NOT NULL DEFAULT '',
      peer text NOT NULL DEFAULT ''
    );
    CREATE INDEX IF NOT EXISTS inboxd_audit_at ON ${schema}.inboxd_audit (at);
  `,
};
