import { pino, type Logger } from 'pino';

/** JSON lines on stdout; never payloads. */
export function createLogger(level: string): Logger {
  return pino({ level, base: { service: 'inboxd' } });
}
