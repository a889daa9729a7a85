import type { CoreEvents } from '../queue/events.js';
import type { Metrics } from './metrics.js';

/** Counts messages as the queue core moves them, from the events it emits (queue/events.ts). */
export function countCoreEvents(events: CoreEvents, m: Metrics): void {
  events.on('sent', e => {
    if (e.stored > 0) m.sent.inc({ queue: e.queue }, e.stored);
    if (e.duplicates > 0) m.duplicates.inc({ queue: e.queue }, e.duplicates);
  });
  events.on('leased', e => m.leased.inc({ queue: e.queue }, e.count));
  const settled = { acked: m.acked, nacked: m.nacked, released: m.released, dead_lettered: m.deadLettered };
  events.on('settled', e => settled[e.outcome].inc({ queue: e.queue }, e.count));
  events.on('expired', e => {
    m.leasesExpired.inc({ queue: e.queue }, e.count);
    if (e.deadLettered > 0) m.deadLettered.inc({ queue: e.queue }, e.deadLettered);
  });
}
