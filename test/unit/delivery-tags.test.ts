import type { Delivery } from '@inboxd/proto/v1/message';
import { describe, expect, it } from 'vitest';
import { type LeasedDelivery, toDelivery } from '../../server/queue/codec.js';
import { MAX_TAG, Subscription } from '../../server/queue/subscription.js';
import { WriteBuffers } from '../../server/queue/write-buffers.js';

const leased = (n: number, from = 0, replyTo = false): LeasedDelivery[] =>
  Array.from({ length: n }, (_, i) =>
    toDelivery(
      {
        id: `00000000-0000-7000-8000-${String(from + i).padStart(12, '0')}`,
        name: 'q',
        retryCount: 0,
        data: { p: '', n: 0, hash: '', at: 0, ...(replyTo ? { rt: 'reply.x' } : {}) },
      },
      new Date(Date.now() + 30_000),
      { queue: 'q', id: `id-${from + i}`, retryCount: 0, principal: '' },
    ),
  );

/** A subscription that records what it writes; `tags`: named by tag, else by token. */
function subscription(tags: boolean) {
  const written: Delivery[] = [];
  let issued = 0;
  const sub = new Subscription(
    'q',
    30,
    '',
    { tags, issue: ref => `token-${ref.id}-${++issued}` },
    { maxMessages: 10_000, maxBytes: 0 },
    ds => (written.push(...ds), true),
    () => {},
    new WriteBuffers(1 << 30),
  );
  return { sub, written, issued: () => issued };
}

describe('delivery tags (Subscription)', () => {
  it('counts from 1, starts again at 1 after MAX_TAG, and skips tags still held', () => {
    const { sub, written } = subscription(true);
    sub.deliver(leased(3));
    expect(written.map(d => d.deliveryTag)).toEqual([1, 2, 3]);
    // Near the end of the range (a stream that delivered 4 billion messages); tag 2 still held.
    sub.settled([1, 3]);
    (sub as unknown as { lastTag: number }).lastTag = MAX_TAG - 1;
    sub.deliver(leased(4, 3));
    expect(written.slice(3).map(d => d.deliveryTag)).toEqual([MAX_TAG, 1, 3, 4]);
    expect(sub.holds(2) && sub.holds(MAX_TAG)).toBe(true);
  });

  it('signs no token for a tagged delivery, unless the message asks for a reply; a stream without tags signs each', () => {
    const t = subscription(true);
    t.sub.deliver([...leased(2), ...leased(1, 2, true)]);
    expect(t.issued()).toBe(1);
    expect(t.written.map(d => d.leaseToken !== '')).toEqual([false, false, true]);
    // What settles each: the attempt, or the token it was given.
    expect([t.sub.itemOf(1), t.sub.itemOf(3)]).toEqual([{ queue: 'q', id: 'id-0', retryCount: 0, principal: '' }, t.written[2].leaseToken]);
    expect(t.sub.itemOf(4)).toBeUndefined();

    const k = subscription(false);
    k.sub.deliver(leased(3));
    expect(k.issued()).toBe(3);
    expect(k.written.map(d => d.deliveryTag)).toEqual([0, 0, 0]);
    expect(k.sub.holds(k.written[0].leaseToken)).toBe(true);
    // Released when the stream ends: what settles each, once.
    expect(k.sub.release()).toEqual(k.written.map(d => d.leaseToken));
    expect(k.sub.release()).toEqual([]);
  });
});
