import { describe, it, expect } from 'vitest';
import { status } from '@grpc/grpc-js';
import { encodeLeaseToken, tryDecodeLeaseToken, decodeLeaseToken } from '../../server/queue/lease-token.js';

describe('lease tokens', () => {
  const ref = { queue: 'orders.v1', id: '0b5e9f0c-8d0e-4a57-9a43-5d1f3c2b1a00', retryCount: 3 };

  it('round-trips queue, id and attempt', () => {
    expect(tryDecodeLeaseToken(encodeLeaseToken(ref))).toEqual(ref);
  });

  it('differs between attempts of one message', () => {
    expect(encodeLeaseToken(ref)).not.toBe(encodeLeaseToken({ ...ref, retryCount: 4 }));
  });

  it.each(['', 'garbage', 'a.b', encodeLeaseToken(ref) + '!', Buffer.from('q\nnot-a-uuid\n1').toString('base64url'), Buffer.from(`q\n${ref.id}\n-1`).toString('base64url'), 'x'.repeat(500)])(
    'rejects %j as INVALID_ARGUMENT',
    token => {
      expect(tryDecodeLeaseToken(token)).toBeUndefined();
      expect(() => decodeLeaseToken(token)).toThrow(expect.objectContaining({ code: status.INVALID_ARGUMENT }));
    },
  );
});
