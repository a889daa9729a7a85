import { randomUUID } from 'node:crypto';
import { RawClient } from '../raw-client.js';
import { encodeRaw } from '../schema.js';
import type { Scenario } from './types.js';

const YEAR = 31_556_952;
const B = (s: string) => Buffer.from(s, 'utf8');
const SEND = '/inboxd.v1.Inbox/Send';

/** Poison messages: each bad in one field, the rest valid. */
const POISONS: [string, Record<string, unknown>][] = [
  ['NUL in a header value', { headers: [{ key: B('k'), value: B('a\u0000b') }] }],
  ['NUL in a header key', { headers: [{ key: B('k\u0000'), value: B('v') }] }],
  ['NUL in content_type', { contentType: B('text/\u0000plain') }],
  ['NUL in subject', { subject: B('\u0000') }],
  ['NUL in correlation_id', { correlationId: B('x\u0000') }],
  ['NUL in dedup_key', { dedupKey: B('k\u0000') }],
  ['invalid UTF-8 in a header', { headers: [{ key: B('k'), value: Buffer.from([0xff, 0xc0, 0x80]) }] }],
  ['deliver_at in year 300000', { deliverAt: { seconds: String((300_000 - 1970) * YEAR), nanos: 0 } }],
  ['expires_at in year -5000', { expiresAt: { seconds: String((-5000 - 1970) * YEAR), nanos: 0 } }],
];

export const poisonSender: Scenario = {
  name: 'poison_sender',
  about: 'a poison sender (U+0000 in headers and fields, invalid UTF-8, deliver_at in year 300000) next to 8 good senders on one queue: good sends that failed',
  quickNote: '8 × 150 good sends',
  async run(world, o) {
    const server = await world.server('poison');
    const admin = world.client(server);
    const raws: RawClient[] = [];
    try {
      await admin.queues.create('shared');
      const perSender = o.quick ? 150 : 1250;
      const good = Array.from({ length: 8 }, () => new RawClient(server.address));
      const poison = Array.from({ length: 2 }, () => new RawClient(server.address));
      raws.push(...good, ...poison);
      const goodFailed: Record<string, number> = {};
      const poisonStatus: Record<string, number> = {};
      let goodOk = 0;
      let stop = false;
      const poisonLoops = poison.map(async (c, k) => {
        for (let i = k; !stop; i++) {
          const [, bad] = POISONS[i % POISONS.length]!;
          const out = await c.unary(
            SEND,
            encodeRaw('inboxd.v1.SendRequest', { messages: [{ id: B(randomUUID()), queue: B('shared'), payload: B('poison'), ...bad }] }),
            10_000,
          );
          poisonStatus[out.status] = (poisonStatus[out.status] ?? 0) + 1;
        }
      });
      // Each good sender keeps 4 single-message Sends in flight, so they share inserts with the poison.
      await Promise.all(
        good.flatMap(c =>
          Array.from({ length: 4 }, async () => {
            for (let i = 0; i < perSender / 4; i++) {
              const out = await c.unary(
                SEND,
                encodeRaw('inboxd.v1.SendRequest', {
                  messages: [{ id: B(randomUUID()), queue: B('shared'), payload: B(`good ${i}`), headers: [{ key: B('n'), value: B(String(i)) }] }],
                }),
                10_000,
              );
              if (out.status === 'OK') goodOk++;
              else goodFailed[`${out.status}: ${out.details.slice(0, 80)}`] = (goodFailed[`${out.status}: ${out.details.slice(0, 80)}`] ?? 0) + 1;
            }
          }),
        ),
      );
      stop = true;
      await Promise.all(poisonLoops);
      const failed = Object.values(goodFailed).reduce((a, b) => a + b, 0);
      const poisonBad = (poisonStatus.INTERNAL ?? 0) + (poisonStatus.UNKNOWN ?? 0) + (poisonStatus.DEADLINE_EXCEEDED ?? 0);
      const failures: string[] = [];
      if (failed) failures.push(`${failed} collateral failures`);
      if (poisonBad) failures.push(`${poisonBad} poison sends answered INTERNAL/UNKNOWN or hung`);
      return {
        figure: `${failed} of ${goodOk + failed} good sends failed (collateral)`,
        metrics: {
          good_sends: goodOk + failed,
          good_ok: goodOk,
          collateral_failures: failed,
          poison_sends: Object.values(poisonStatus).reduce((a, b) => a + b, 0),
        },
        failures,
        notes: [
          ...(poisonStatus.OK ? [`${poisonStatus.OK} poison sends were accepted (OK)`] : []),
          `poison statuses: ${JSON.stringify(poisonStatus)}`,
          ...(failed ? [`good sends failed with: ${JSON.stringify(goodFailed)}`] : []),
        ],
      };
    } finally {
      for (const r of raws) r.close();
      await admin.close({ timeout: 1000 }).catch(() => {});
      await world.closeServer(server);
    }
  },
};
