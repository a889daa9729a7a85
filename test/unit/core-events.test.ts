import { describe, expect, it } from 'vitest';
import { type CoreEventMap, CoreEvents } from '../../server/queue/events.js';

describe('core events', () => {
  it('reach every listener in order; one that throws is reported and the others still hear it', () => {
    const errors: [unknown, string][] = [];
    const events = new CoreEvents((err, event) => errors.push([err, event]));
    const heard: string[] = [];
    events.on('leased', e => heard.push(`a:${e.queue}:${e.count}`));
    events.on('leased', () => {
      throw new Error('listener bug');
    });
    const off = events.on('leased', e => heard.push(`c:${e.queue}:${e.count}`));
    events.emit('leased', { queue: 'q', count: 2 });
    off();
    events.emit('leased', { queue: 'r', count: 1 });
    expect(heard).toEqual(['a:q:2', 'c:q:2', 'a:r:1']);
    expect(errors.map(([err, event]) => [(err as Error).message, event])).toEqual([
      ['listener bug', 'leased'],
      ['listener bug', 'leased'],
    ]);
  });

  it('emitByQueue sends one event per queue with its count, skipping items without a queue', () => {
    const events = new CoreEvents();
    const got: CoreEventMap['settled'][] = [];
    events.on('settled', e => got.push(e));
    events.emitByQueue(
      'settled',
      ['a', 'b', 'a', undefined, 'a'],
      q => q,
      (queue, count) => ({ queue, count, outcome: 'acked' as const }),
    );
    expect(got).toEqual([
      { queue: 'a', count: 3, outcome: 'acked' },
      { queue: 'b', count: 1, outcome: 'acked' },
    ]);
  });
});
