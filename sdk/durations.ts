import type { Duration as ProtoDuration } from '@inboxd/proto/google/protobuf/duration';

/** A duration: milliseconds as a number, or a string such as '250ms', '30s', '5m', '1h'. */
export type Duration = number | `${number}${'ms' | 's' | 'm' | 'h'}`;

const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;

export function toMs(d: Duration): number {
  if (typeof d === 'number') {
    if (!Number.isFinite(d) || d < 0) throw new RangeError(`invalid duration ${d}: want milliseconds >= 0`);
    return d;
  }
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(d);
  if (!m) throw new RangeError(`invalid duration ${JSON.stringify(d)}: want e.g. '250ms', '30s', '5m', '1h'`);
  return Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS];
}

export function toProto(d: Duration): ProtoDuration {
  const ms = toMs(d);
  const seconds = Math.floor(ms / 1000);
  return { seconds: String(seconds), nanos: Math.round((ms - seconds * 1000) * 1e6) };
}

export function fromProto(d: ProtoDuration | undefined): number {
  return d ? Number(d.seconds) * 1000 + d.nanos / 1e6 : 0;
}
