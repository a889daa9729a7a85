import { randomUUID } from 'node:crypto';
import { Metadata, ServerInterceptingCall, type ServerInterceptor, status } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { type RequestContext, requestContext } from '../logger.js';
import { peekLeaseToken } from '../queue/lease-token.js';
import type { Metrics } from './metrics.js';

/** A request id a client may choose (x-request-id metadata); anything else gets one made here. */
const CLIENT_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** The queue a request names, for its log lines: queue, name (Queues), its messages' or tokens'. */
function queueOf(req: unknown): string | undefined {
  if (!req || typeof req !== 'object') return undefined;
  const r = req as { queue?: unknown; name?: unknown; messages?: { queue?: unknown }[]; leaseTokens?: unknown[]; ackLeaseTokens?: unknown[] };
  if (typeof r.queue === 'string' && r.queue) return r.queue;
  if (typeof r.name === 'string' && r.name) return r.name;
  if (Array.isArray(r.messages) && r.messages.length > 0) {
    const names = [...new Set(r.messages.map(m => m?.queue).filter((q): q is string => typeof q === 'string'))];
    return names.length <= 3 ? names.join(',') : `${names.slice(0, 3).join(',')},…`;
  }
  const token = Array.isArray(r.leaseTokens) ? r.leaseTokens[0] : undefined;
  return typeof token === 'string' ? peekLeaseToken(token)?.queue : undefined;
}

/**
 * Every call, of every service, passes here once: it gets a request id (the client's
 * x-request-id, or a new one, sent back in the trailers), its handler runs inside a
 * RequestContext (so whatever it logs names the request, method and queue), and it is counted:
 * how long unary calls take, how calls end, how many streams are open. At debug level each call
 * ends with one line: method, queue, status, milliseconds. Requests and responses are looked at
 * for their queue only, never logged.
 */
export function callInterceptor(metrics: Metrics, log: Logger): ServerInterceptor {
  return (descriptor, call) => {
    const path = descriptor.path; // "/inboxd.v1.Inbox/Send"
    const slash = path.lastIndexOf('/');
    const service = path.slice(path.lastIndexOf('.', slash) + 1, slash);
    const method = `${service}/${path.slice(slash + 1)}`; // "Inbox/Send"
    const streaming = descriptor.requestStream || descriptor.responseStream;
    const ctx: RequestContext = { reqId: '', method };
    const started = performance.now();
    let named = false;
    let finished = false;

    const finish = (code: status) => {
      if (finished) return;
      finished = true;
      const seconds = (performance.now() - started) / 1000;
      const codeName = status[code] ?? String(code);
      metrics.rpcHandled.inc({ method, code: codeName });
      if (streaming) metrics.openStreams.dec({ method });
      else metrics.rpcDuration.observe({ method }, seconds);
      if (log.isLevelEnabled('debug')) requestContext.run(ctx, () => log.debug({ code: codeName, ms: Math.round(seconds * 1e4) / 10 }, 'call'));
    };

    return new ServerInterceptingCall(call, {
      start: next =>
        next({
          onReceiveMetadata: (md, next) => {
            const given = md.get('x-request-id')[0];
            ctx.reqId = typeof given === 'string' && CLIENT_ID.test(given) ? given : randomUUID();
            if (streaming) metrics.openStreams.inc({ method });
            requestContext.run(ctx, () => next(md));
          },
          onReceiveMessage: (msg, next) => {
            if (!named) {
              named = true;
              const q = queueOf(msg);
              if (q) ctx.queue = q;
            }
            requestContext.run(ctx, () => next(msg));
          },
          onReceiveHalfClose: next => requestContext.run(ctx, next),
          onCancel: () => finish(status.CANCELLED),
        }),
      sendStatus: (st, next) => {
        finish(st.code);
        const trailers = st.metadata ?? new Metadata();
        if (ctx.reqId) trailers.set('x-request-id', ctx.reqId);
        next({ ...st, metadata: trailers });
      },
    });
  };
}
