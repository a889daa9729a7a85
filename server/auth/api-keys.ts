import { createHmac, createSecretKey, type KeyObject, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * API keys: `ibx_<id>_<secret>`, where the id (16 hex digits, public: lists, logs, RevokeKey) finds
 * the row and the secret is 256 random bits. Only a keyed hash of the whole key is stored
 * (HMAC-SHA-256 with a server secret): a random key needs no slow password hash, and a copy of the
 * table alone gives no key. Compared in constant time.
 */
const KEY = /^ibx_([0-9a-f]{16})_[A-Za-z0-9_-]{43}$/;

export function newApiKey(): { id: string; key: string } {
  const id = randomBytes(8).toString('hex');
  return { id, key: `ibx_${id}_${randomBytes(32).toString('base64url')}` };
}

/** The id of a well-formed key, else undefined. */
export function apiKeyId(key: string): string | undefined {
  return KEY.exec(key)?.[1];
}

export class KeyHasher {
  /** Imported once (see LeaseTokens): this runs on every authenticated call. */
  private readonly secret: KeyObject;

  constructor(secret: Buffer) {
    this.secret = createSecretKey(secret);
  }

  hash(key: string): Buffer {
    return createHmac('sha256', this.secret).update(key, 'utf8').digest();
  }

  /** Whether `key` hashes to `stored`, in time that does not depend on where they differ. */
  matches(key: string, stored: Buffer): boolean {
    const h = this.hash(key);
    return h.length === stored.length && timingSafeEqual(h, stored);
  }
}
