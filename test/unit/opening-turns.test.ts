import { describe, expect, it } from 'vitest';
import { Turns } from '../../server/transport/subscribe-stream.js';

describe('Subscribe openings in turns', () => {
  it('runs at most max at once, the others in the order they came, whether each succeeds or fails', async () => {
    const turns = new Turns(3);
    let running = 0;
    let most = 0;
    const started: number[] = [];
    const gates = new Map<number, () => void>();
    const runs = Array.from({ length: 2000 }, (_, i) =>
      turns
        .run(async () => {
          started.push(i);
          most = Math.max(most, ++running);
          await new Promise<void>(resolve => gates.set(i, resolve));
          running--;
          if (i % 7 === 0) throw new Error(`run ${i} failed`);
          return i;
        })
        .then(
          () => true,
          () => false,
        ),
    );
    // Let each started run finish in turn, the newest first.
    for (let done = 0; done < 2000; done++) {
      await new Promise(r => setImmediate(r));
      const open = [...gates.keys()];
      expect(open.length).toBeLessThanOrEqual(3);
      const last = open.at(-1)!;
      gates.get(last)!();
      gates.delete(last);
    }
    const results = await Promise.all(runs);
    expect(most).toBe(3);
    expect(started).toEqual(Array.from({ length: 2000 }, (_, i) => i));
    expect(results.filter(ok => !ok)).toHaveLength(Math.ceil(2000 / 7));
  });
});
