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

  it('answers for a token it issued from memory, the same as in full: another replica, a forgotten one, the oldest past the cap', () => {
    const key = randomBytes(32);
    const here = new LeaseTokens(key, 2);
    const replica = new LeaseTokens(key);
    const t1 = here.encode(ref);
    // Issued here: remembered, refused to another principal all the same.
    expect(here.verify(t1, 'agent-b')).toEqual(ref);
    expect(here.verify(t1, 'agent-a')).toBe('foreign');
    // The same token on a replica that did not issue it: verified in full, same answer.
    expect(replica.verify(t1, 'agent-b')).toEqual(ref);
    expect(replica.verify(t1, 'agent-a')).toBe('foreign');
    // Forgotten (settled), and pushed out past the cap of 2: still verified in full.
    here.forget(t1);
    expect(here.verify(t1, 'agent-b')).toEqual(ref);
    const t2 = here.encode({ ...ref, retryCount: 4 });
    here.encode({ ...ref, retryCount: 5 });
    here.encode({ ...ref, retryCount: 6 });
    expect(here.verify(t2, 'agent-b')).toEqual({ ...ref, retryCount: 4 });
    // A remembered token altered by one character is not the token remembered: forged.
    const dot = t2.indexOf('.');
    const altered = `${t2.slice(0, dot + 1)}${t2[dot + 1] === 'A' ? 'B' : 'A'}${t2.slice(dot + 2)}`;
    expect(here.verify(altered, 'agent-b')).toBe('forged');
    // What verify answers is a copy: changing it changes nothing remembered.
    const got = here.verify(here.encode(ref), null) as typeof ref;
    got.retryCount = 99;
    expect(here.verify(here.encode(ref), null)).toEqual(ref);
  });
});
