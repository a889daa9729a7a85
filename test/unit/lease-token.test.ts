import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { LeaseTokens, peekLeaseToken } from '../../server/queue/lease-token.js';

describe('lease tokens', () => {
  const tokens = new LeaseTokens(randomBytes(32));
  const ref = { queue: 'orders.v1', id: '0b5e9f0c-8d0e-4a57-9a43-5d1f3c2b1a00', retryCount: 3, principal: 'agent-b' };

  it('round-trips queue, id, attempt and principal', () => {
    expect(tokens.verify(tokens.encode(ref), 'agent-b')).toEqual(ref);
    expect(tokens.verify(tokens.encode(ref), null)).toEqual(ref);
    expect(peekLeaseToken(tokens.encode(ref))).toEqual(ref);
  });

  it('differs between attempts of one message, and between principals', () => {
    expect(tokens.encode(ref)).not.toBe(tokens.encode({ ...ref, retryCount: 4 }));
    expect(tokens.encode(ref)).not.toBe(tokens.encode({ ...ref, principal: 'agent-a' }));
  });

  it('refuses another principal’s token as foreign', () => {
    expect(tokens.verify(tokens.encode(ref), 'agent-a')).toBe('foreign');
  });

  it('refuses a token made up, altered, or signed with another key as forged', () => {
    const good = tokens.encode(ref);
    const [payload, sig] = good.split('.');
    // The unsigned form of the first release: base64url("queue\nid\nattempt").
    const legacy = Buffer.from(`${ref.queue}\n${ref.id}\n${ref.retryCount}`).toString('base64url');
    const altered = `${Buffer.from(`${ref.queue}\n${ref.id}\n${ref.retryCount}\nagent-a`).toString('base64url')}.${sig}`;
    const otherKey = new LeaseTokens(randomBytes(32)).encode(ref);
    const flipped = `${payload}.${sig.slice(0, -2)}${sig.endsWith('AA') ? 'AB' : 'AA'}`;
    expect(tokens.verify(legacy, 'agent-b')).toBe('malformed');
    expect(tokens.verify(altered, 'agent-a')).toBe('forged');
    expect(tokens.verify(otherKey, 'agent-b')).toBe('forged');
    expect(tokens.verify(flipped, 'agent-b')).toBe('forged');
  });

  it.each(['', 'garbage', 'a.b', `${'x'.repeat(700)}.${'y'.repeat(22)}`, Buffer.from('q\nnot-a-uuid\n1\np').toString('base64url') + '.' + 'A'.repeat(22)])(
    'refuses %j as malformed',
    token => {
      expect(tokens.verify(token, 'agent-b')).toBe('malformed');
      expect(peekLeaseToken(token)).toBeUndefined();
    },
  );
});
