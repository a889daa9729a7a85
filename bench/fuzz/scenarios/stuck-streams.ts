import http2 from 'node:http2';
import { sleep, waitFor } from '../../chaos/util.js';
import { frame, grpcHeaders } from '../http2-abuse.js';
import { encodeTyped } from '../schema.js';
import type { Scenario } from './types.js';

/**
 * Subscribe streams that never read (raw HTTP/2: the first request written, the response stream
 * paused, so HTTP/2 flow control stops the server once the window is full) next to one healthy
 * SDK subscriber with defaults, all on one queue (max_attempts 5).
 */
export const stuckStreams: Scenario = {
  name: 'stuck_streams',
  about:
    '200 Subscribe streams that never read next to 1 healthy SDK subscriber on one queue of 2,000 messages: share handled by the healthy one, messages dead-lettered',
  quickNote: '50 stuck streams, 500 messages, visibility 2s, 20 s limit',
  async run(world, o) {
    const nStuck = o.quick ? 50 : 200;
    const nMessages = o.quick ? 500 : 2000;
    const vt = o.quick ? 2 : 5;
    const limitMs = o.quick ? 20_000 : 90_000;
    const server = await world.server('stuck');
    const client = world.client(server);
    const sessions: http2.ClientHttp2Session[] = [];
    try {
      await client.queues.create('stuck', { maxAttempts: 5, visibilityTimeout: `${vt}s` });
      const first = encodeTyped('inboxd.v1.SubscribeRequest', { queue: 'stuck' });
      for (let i = 0; i < nStuck; i++) {
        if (i % 20 === 0) {
          const s = http2.connect(`http://${server.address}`);
          s.on('error', () => {});
          sessions.push(s);
        }
        const req = sessions.at(-1)!.request(grpcHeaders('/inboxd.v1.Inbox/Subscribe'));
        req.on('error', () => {});
        req.write(frame(0, first.length, first));
        req.pause();
      }
      await sleep(500);
      const handled = new Set<string>();
      const sub = client.subscribe('stuck', m => void handled.add(m.id));
      await sleep(300);
      const payload = Buffer.alloc(1024, 0x62);
      const t0 = Date.now();
      await Promise.all(Array.from({ length: nMessages }, () => client.send('stuck', payload)));
      await waitFor(() => handled.size >= nMessages, limitMs, 100);
      const secs = (Date.now() - t0) / 1000;
      const stats = await client.queues.stats('stuck');
      await sub.close({ timeout: 2000 }).catch(() => {});
      const share = Math.round((1000 * handled.size) / nMessages) / 10;
      const failures: string[] = [];
      if (handled.size < nMessages) failures.push(`healthy subscriber handled ${handled.size} of ${nMessages} within ${limitMs / 1000} s`);
      if (stats.deadLettered) failures.push(`${stats.deadLettered} dead-lettered`);
      return {
        figure: `healthy handled ${handled.size}/${nMessages} (${share}%), ${stats.deadLettered} dead-lettered`,
        metrics: {
          stuck_streams: nStuck,
          messages: nMessages,
          healthy_handled: handled.size,
          healthy_share_pct: share,
          dead_lettered: stats.deadLettered,
          leased_at_end: stats.leased,
          ready_at_end: stats.ready,
          seconds_to_end: secs,
        },
        failures,
        notes: [],
      };
    } finally {
      for (const s of sessions) s.destroy();
      await client.close({ timeout: 1000 }).catch(() => {});
      await world.closeServer(server);
    }
  },
};
