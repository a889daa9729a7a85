import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Scenario } from '../scenario.js';
import { leftovers, sleep, Tail, waitFor } from '../util.js';
import { loadOnOneServer } from './common.js';

const CHILD = fileURLToPath(new URL('../subscriber-child.js', import.meta.url));

/**
 * A subscriber process holding 2,000 leases (maxOutstandingMessages 2000, never acking) killed
 * -9; the figure is how long until all 2,000 are delivered to another subscriber (the server
 * should release a dead stream's leases at once, not after the visibility timeout).
 */
export const subscriberKill: Scenario = {
  name: 'subscriber_kill',
  about: 'a subscriber process holding 2,000 leases killed -9; time until all are delivered to another subscriber',
  quick: true,
  timeoutMs: m => (m.quick ? 60_000 : 240_000),
  async run(ctx) {
    const N = 2000;
    ctx.result.faults = `kill -9 subscriber holding ${N}`;
    const { server, w } = await loadOnOneServer(ctx, [{ name: 'held', config: { visibilityTimeout: '20s' } }], { subscribersPerQueue: 0, produce: false });
    await w.sendBatch({ name: 'held' }, N);
    ctx.log(`${w.ledger.counts().sends_ok} messages sent; starting the subscriber process`);
    const out = new Tail(50);
    const child = spawn(process.execPath, [CHILD, server.address, 'held', String(N)], { stdio: ['ignore', 'pipe', 'pipe'] });
    leftovers.pids.add(child.pid!);
    ctx.cleanups.push(() => {
      child.kill('SIGKILL');
      leftovers.pids.delete(child.pid!);
    });
    let held = 0;
    let partial = '';
    child.stdout!.on('data', (d: Buffer) => {
      const lines = (partial + d).split('\n');
      partial = lines.pop() ?? '';
      for (const l of lines) {
        const [k, id, attempt, token, at] = l.split(' ');
        if (k === 'D' && id !== undefined && token !== undefined) {
          held++;
          w.ledger.delivered({ id, attempt: Number(attempt), token, at: Number(at), consumer: 'child' });
        } else out.write(l + '\n');
      }
    });
    child.stderr!.on('data', d => out.write(d));
    if (!(await waitFor(() => held >= N, 30_000))) throw new Error(`the subscriber process received ${held} of ${N} messages:\n${out.last(10).join('\n')}`);
    // The other subscriber is connected before the kill (it receives nothing while the child holds every message).
    w.subscribe('held', 'survivor');
    await sleep(500);
    const early = w.ledger.deliveries - N;
    if (early > 0) ctx.result.notes.push(`${early} deliveries to the survivor before the kill`);
    const survivor = () => w.ledger.deliveries - N;
    ctx.log(`the subscriber process holds ${held} leases; kill -9 (pid ${child.pid})`);
    ctx.faultStarting('subscriber killed');
    const t0 = Date.now();
    child.kill('SIGKILL');
    let first: number | undefined;
    const all = await waitFor(
      () => {
        if (first === undefined && survivor() > early) first = Date.now() - t0;
        return survivor() - early >= N;
      },
      30_000,
      10,
    );
    const ms = Date.now() - t0;
    ctx.result.recovery_ms = all ? ms : undefined;
    ctx.result.extra.first_redelivery_ms = first;
    ctx.result.extra.all_redelivered_ms = all ? ms : `not after ${ms}`;
    if (!all) ctx.result.notes.push(`only ${survivor() - early} of ${N} redelivered ${ms} ms after the kill`);
    ctx.log(all ? `all ${N} delivered to the survivor ${ms} ms after the kill` : `only ${survivor() - early} of ${N} redelivered after ${ms} ms`);
    await ctx.finish(w);
  },
};
