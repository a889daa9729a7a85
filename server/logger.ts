import { AsyncLocalStorage } from 'node:async_hooks';
import { type DestinationStream, type Logger, pino } from 'pino';
import pretty from 'pino-pretty';

/** What every log line made while serving one call carries: its request id, method and queue. */
export interface RequestContext {
  reqId: string;
  method: string;
  queue?: string;
}

/**
 * The call being served, set by the call interceptor (server/metrics/interceptor.ts) around the
 * handler, so a line logged anywhere below it (the error mapping, the queue core) names its
 * request without the logger being passed along.
 */
export const requestContext = new AsyncLocalStorage<RequestContext>();

function mixin(): object {
  const c = requestContext.getStore();
  if (!c) return {};
  return c.queue === undefined ? { reqId: c.reqId, method: c.method } : { reqId: c.reqId, method: c.method, queue: c.queue };
}

/**
 * JSON lines on stdout (pino's numeric levels, `msg`, `time`), or a readable rendering of the
 * same for a terminal. Never payloads: nothing logs message bodies, only ids, counts and queues.
 */
export function createLogger(level: string, format: 'auto' | 'json' | 'pretty' = 'json', destination?: DestinationStream): Logger {
  const options = { level, base: { service: 'inboxd' }, mixin };
  const human = format === 'pretty' || (format === 'auto' && process.stdout.isTTY === true);
  if (!human) return destination ? pino(options, destination) : pino(options);
  return pino(options, pretty({ colorize: process.stdout.isTTY === true, sync: true, ignore: 'pid,hostname,service', translateTime: 'SYS:HH:MM:ss.l' }));
}
