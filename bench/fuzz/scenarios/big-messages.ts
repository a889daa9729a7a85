import type { InboxdClient } from '@inboxd/sdk';
import { waitFor } from '../../chaos/util.js';
import type { Scenario } from './types.js';

const KIB64 = 64 * 1024;
const MIB = 1024 * 1024;

/**
 * Messages up to the size limit (INBOXD_MAX_MESSAGE_BYTES, 1 MiB by default: the 1 MiB ones are
 * exactly at it), each set sent to three queues and consumed there with SDK defaults: through
 * Subscribe, through client.lease() (max 1), and through client.lease({ max: 100 }).
 */
export const bigMessages: Scenario = {
  name: 'big_messages',
  about: '200 × 64 KiB and 20 × 1 MiB (the limit) consumed with SDK defaults through Subscribe and through client.lease: delivered counts',
  quickNote: '50 × 64 KiB and 5 × 1 MiB',
  async run(world, o) {
    const n64 = o.quick ? 50 : 200;
    const n1m = o.quick ? 5 : 20;
    const limitMs = o.quick ? 25_000 : 90_000;
    const server = await world.server('big', { INBOXD_MAX_MESSAGE_BYTES: String(MIB) });
    const client = world.client(server);
    try {
      const queues = { subscribe: 'big-sub', lease: 'big-lease', lease_max100: 'big-lease100' };
      const sendFailed: Record<string, number> = {};
      for (const q of Object.values(queues)) {
        await client.queues.create(q, { maxAttempts: 5, visibilityTimeout: '30s' });
        const sizes = [...Array(n64).fill(KIB64), ...Array(n1m).fill(MIB)];
        await Promise.all(
          sizes.map(n =>
            client
              .send(q, Buffer.alloc(n, 0x63))
              .catch(err => void (sendFailed[(err as Error).message.slice(0, 80)] = (sendFailed[(err as Error).message.slice(0, 80)] ?? 0) + 1)),
          ),
        );
      }
      const total = n64 + n1m;
      const got = { subscribe: new Set<string>(), lease: new Set<string>(), lease_max100: new Set<string>() };
      const errors: Record<string, number> = {};
      const note = (path: string, err: unknown) => {
        const k = `${path}: ${(err as Error).message.slice(0, 100)}`;
        errors[k] = (errors[k] ?? 0) + 1;
      };
      const sub = client.subscribe(queues.subscribe, m => void got.subscribe.add(m.id));
      sub.on('error', err => note('subscribe', err));
      const deadline = Date.now() + limitMs;
      const pull = async (path: 'lease' | 'lease_max100', q: string, max?: number) => {
        while (got[path].size < total && Date.now() < deadline) {
          const ms = await (client as InboxdClient)
            .lease(q, max ? { max, wait: '1s', retry: { totalTimeout: 10_000 } } : { wait: '1s', retry: { totalTimeout: 10_000 } })
            .catch(err => (note(path, err), []));
          for (const m of ms) got[path].add(m.id);
          if (ms.length) await client.ack(ms).catch(err => note(path, err));
        }
      };
      await Promise.all([
        pull('lease', queues.lease),
        pull('lease_max100', queues.lease_max100, 100),
        waitFor(() => got.subscribe.size >= total, limitMs, 100),
      ]);
      await sub.close({ timeout: 2000 }).catch(() => {});
      const dead: Record<string, number> = {};
      for (const [k, q] of Object.entries(queues)) dead[k] = (await client.queues.stats(q)).deadLettered;
      const failures: string[] = [];
      for (const k of Object.keys(got) as (keyof typeof got)[]) if (got[k].size < total) failures.push(`${k}: ${got[k].size}/${total} delivered`);
      const sendFails = Object.values(sendFailed).reduce((a, b) => a + b, 0);
      if (sendFails) failures.push(`${sendFails} sends failed`);
      return {
        figure: `delivered: subscribe ${got.subscribe.size}/${total}, lease ${got.lease.size}/${total}, lease(max 100) ${got.lease_max100.size}/${total}; dead-lettered ${dead.subscribe}/${dead.lease}/${dead.lease_max100}`,
        metrics: {
          messages_64k: n64,
          messages_1m: n1m,
          subscribe_delivered: got.subscribe.size,
          lease_delivered: got.lease.size,
          lease_max100_delivered: got.lease_max100.size,
          subscribe_dead_lettered: dead.subscribe,
          lease_dead_lettered: dead.lease,
          lease_max100_dead_lettered: dead.lease_max100,
        },
        failures,
        notes: [
          ...(sendFails ? [`send failures: ${JSON.stringify(sendFailed)}`] : []),
          ...(Object.keys(errors).length ? [`consumer errors: ${JSON.stringify(errors).slice(0, 600)}`] : []),
        ],
      };
    } finally {
      await client.close({ timeout: 1000 }).catch(() => {});
      await world.closeServer(server);
    }
  },
};
