import { Message } from '@inboxd/proto/v1/message';
import { describe, expect, it } from 'vitest';
import * as v from '../../server/transport/validate.js';

const bad = (fn: () => unknown, text: string) => expect(fn).toThrow(expect.objectContaining({ kind: 'invalid', message: expect.stringContaining(text) }));

describe('validation at the edge', () => {
  it('accepts reasonable queue names and refuses others with the rule', () => {
    for (const n of ['a', 'orders', 'Orders_2.v1-x', 'x'.repeat(100)]) expect(v.queueName(n)).toBe(n);
    bad(() => v.queueName(''), 'queue is required');
    for (const n of ['bad name', '-lead', '.lead', 'x'.repeat(101), 'a/b', 'é']) bad(() => v.queueName(n), 'not a valid queue name');
  });

  it('reads durations, rounds leases up to whole seconds, and names the field when out of range', () => {
    expect(v.durationMs(undefined, 'wait', 0, 1000, 7)).toBe(7);
    expect(v.durationMs({ seconds: '1', nanos: 500_000_000 }, 'wait', 0, 60_000, 0)).toBe(1500);
    expect(v.leaseSeconds({ seconds: '1', nanos: 1 }, 'visibility_timeout', 30)).toBe(2);
    expect(v.leaseSeconds(undefined, 'visibility_timeout', 30)).toBe(30);
    bad(
      () => v.leaseSeconds({ seconds: '0', nanos: 0 }, 'visibility_timeout', 30),
      'visibility_timeout must be between 1s and 12h (rounded up to whole seconds), got 0s',
    );
    bad(() => v.durationMs({ seconds: '-1', nanos: 0 }, 'delay', 0, 10, 0), 'delay must not be negative');
    bad(() => v.durationMs({ seconds: '61', nanos: 0 }, 'wait', 0, 60_000, 0), 'wait must be between 0s and 60s, got 61s');
  });

  it('checks each message of a batch and assigns ids', () => {
    const ok = v.sendBatch([Message.fromPartial({ queue: 'q', payload: Buffer.from('x') })], { maxMessageBytes: 10 });
    expect(ok[0].id).toMatch(/^[0-9a-f-]{36}$/);
    const id = 'ABCDEF01-2345-4678-9ABC-DEF012345678';
    expect(v.sendBatch([Message.fromPartial({ id, queue: 'q' })], { maxMessageBytes: 10 })[0].id).toBe(id.toLowerCase());
    bad(() => v.sendBatch([], { maxMessageBytes: 10 }), 'messages is empty');
    bad(
      () =>
        v.sendBatch(
          Array.from({ length: 1001 }, () => Message.fromPartial({ queue: 'q' })),
          { maxMessageBytes: 10 },
        ),
      'at most 1000',
    );
    bad(
      () => v.sendBatch([Message.fromPartial({ queue: 'q', payload: Buffer.alloc(11) })], { maxMessageBytes: 10 }),
      'messages[0].payload is 11 bytes, over the server',
    );
    bad(() => v.sendBatch([Message.fromPartial({ queue: 'q', id: 'order-1' })], { maxMessageBytes: 10 }), 'must be a UUID');
    bad(() => v.sendBatch([Message.fromPartial({ queue: 'q' }), Message.fromPartial({ queue: 'no way' })], { maxMessageBytes: 10 }), 'messages[1].queue');
    bad(() => v.sendBatch([Message.fromPartial({ queue: 'q', priority: 2_000_000 })], { maxMessageBytes: 10 }), 'priority');
    bad(() => v.sendBatch([Message.fromPartial({ queue: 'q', replyTo: 'bad name' })], { maxMessageBytes: 10 }), 'reply_to');
    const headers = Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`h${i}`, 'v']));
    bad(() => v.sendBatch([Message.fromPartial({ queue: 'q', headers })], { maxMessageBytes: 10 }), 'headers has 65 entries');
  });

  it('refuses an empty or oversized batch of lease tokens (each is verified where it is used: MessageStore.verifyTokens)', () => {
    bad(() => v.leaseTokens([]), 'lease_tokens is empty');
    bad(() => v.leaseTokens(Array(1001).fill('t')), 'too many lease_tokens');
  });
});
