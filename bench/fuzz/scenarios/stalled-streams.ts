import http2 from 'node:http2';
import { sleep } from '../../chaos/util.js';
import { canary, health, rssMb } from '../checks.js';
import { frame, grpcHeaders } from '../http2-abuse.js';
import type { Scenario } from './types.js';

/**
 * Streams stalled mid-message: a gRPC frame header declaring 1,000,000 bytes (under the message
 * limit, so the server must wait for the rest), --stall-bytes of it sent, then nothing; 100
 * streams per connection. Server RSS before, during (all open) and after (all closed); health and
 * the canary must answer while they are open.
 */
export const stalledStreams: Scenario = {
  name: 'stalled_streams',
  about: '1,000 Send streams stalled mid-message: server RSS before/during/after against --rss-bound-mb',
  quickNote: '300 streams',
  async run(world, o) {
    const n = o.quick ? 300 : 1000;
    const server = await world.server('stalled');
    const sessions: http2.ClientHttp2Session[] = [];
    try {
      const admin = world.client(server);
      await admin.queues.create('canary');
      await admin.close({ timeout: 1000 });
      const before = rssMb(server.pid);
      const answered: Record<string, number> = {};
      const declared = 1_000_000;
      const part = Buffer.alloc(Math.min(o.stallBytes, declared - 1), 0x64);
      for (let i = 0; i < n; i++) {
        if (i % 100 === 0) {
          const s = http2.connect(`http://${server.address}`);
          s.on('error', () => {});
          sessions.push(s);
        }
        const req = sessions.at(-1)!.request(grpcHeaders('/inboxd.v1.Inbox/Send'));
        req.on('error', () => {});
        req.on('response', h => {
          const k = h['grpc-status'] !== undefined ? `grpc-status ${h['grpc-status']}` : `http ${h[':status']}`;
          if (k !== 'http 200') answered[k] = (answered[k] ?? 0) + 1;
        });
        req.on('trailers', h => void (answered[`grpc-status ${h['grpc-status']}`] = (answered[`grpc-status ${h['grpc-status']}`] ?? 0) + 1));
        req.write(frame(0, declared, part));
      }
      await sleep(3000);
      const during = rssMb(server.pid);
      const [h, c] = await Promise.all([health(server.address), canary(server.address, 'canary')]);
      const answeredN = Object.values(answered).reduce((a, b) => a + b, 0);
      for (const s of sessions) s.destroy();
      sessions.length = 0;
      await sleep(3000);
      const after = rssMb(server.pid);
      const failures: string[] = [];
      if (during !== undefined && during > o.rssBoundMb) failures.push(`RSS ${during} MB during > bound ${o.rssBoundMb} MB`);
      if (!server.running) failures.push('server down');
      if (!h.ok) failures.push(`health during the stall: ${h.error}`);
      if (!c.ok) failures.push(`canary during the stall: ${c.error}`);
      return {
        figure: `RSS ${before} → ${during} → ${after} MB (before/during/after; bound ${o.rssBoundMb} MB)`,
        metrics: {
          streams: n,
          declared_bytes: declared,
          sent_bytes_each: part.length,
          rss_before_mb: before,
          rss_during_mb: during,
          rss_after_mb: after,
          rss_bound_mb: o.rssBoundMb,
          answered_streams: answeredN,
          health_ms: h.ok ? h.ms : undefined,
          canary_ms: c.ok ? c.ms : undefined,
        },
        failures,
        notes: [`streams answered before the end: ${answeredN} ${JSON.stringify(answered)}`],
      };
    } finally {
      for (const s of sessions) s.destroy();
      await world.closeServer(server);
    }
  },
};
