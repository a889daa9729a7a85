import fs from 'node:fs';
import os from 'node:os';

const TICKS = 100; // USER_HZ

/**
 * CPU seconds (user + system) of every process whose command is `comm` (e.g. all Postgres
 * backends); with `under`, only those descending from that process (e.g. the bench's own embedded
 * Postgres, not another one on the machine).
 */
export function cpuSecondsOf(comm: string, under?: number): number {
  let total = 0;
  const parent = new Map<number, number>();
  const matches: { pid: number; seconds: number }[] = [];
  for (const pid of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      parent.set(Number(pid), Number(f[1]));
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      if (name !== comm) continue;
      // utime, stime, cutime, cstime: children that exited count too (backends that closed).
      matches.push({ pid: Number(pid), seconds: (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / TICKS });
    } catch {
      // the process ended meanwhile
    }
  }
  const descends = (pid: number) => {
    for (let p = parent.get(pid); p !== undefined && p > 1; p = parent.get(p)) if (p === under) return true;
    return false;
  };
  for (const m of matches) if (under === undefined || descends(m.pid)) total += m.seconds;
  return total;
}

/**
 * CPU seconds of the Postgres the bench runs on: its embedded one's processes (descendants of this
 * process), or every `postgres` process on the machine when DATABASE_URL points elsewhere.
 */
export function benchPostgresCpuSeconds(): number {
  return cpuSecondsOf('postgres', process.env.DATABASE_URL ? undefined : process.pid);
}

/** CPU seconds this process has used. */
export function ownCpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/** Where CPU went while `fn` ran: this process, Postgres, and optionally a server process. */
export async function measureCpu<T>(fn: () => Promise<T>, server?: { cpuSeconds(): number }) {
  const c0 = ownCpuSeconds();
  const p0 = benchPostgresCpuSeconds();
  const s0 = server?.cpuSeconds() ?? 0;
  const out = await fn();
  return {
    out,
    cpu: {
      client_cpu_s: +(ownCpuSeconds() - c0).toFixed(2),
      postgres_cpu_s: +(benchPostgresCpuSeconds() - p0).toFixed(2),
      ...(server ? { server_cpu_s: +(server.cpuSeconds() - s0).toFixed(2) } : {}),
    },
  };
}

/** The machine-wide CPU counters of /proc/stat's `cpu` line (all CPUs), in ticks. */
export interface BoxTicks {
  total: number;
  idle: number;
  iowait: number;
}

/**
 * Reads /proc/stat's aggregate `cpu` line: user nice system idle iowait irq softirq steal guest
 * guest_nice. total sums the first eight (guest time is already counted in user and nice).
 */
export function readBoxTicks(): BoxTicks {
  const line = fs.readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '';
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  if (!line.startsWith('cpu ') || f.length < 8 || f.some(Number.isNaN)) throw new Error(`unexpected /proc/stat first line: ${line}`);
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  return { total, idle: f[3]!, iowait: f[4]! };
}

/** Busy share of the whole box between two readings, percent (all CPUs: 2 cores both busy = 100). */
export function boxBusyPct(a: BoxTicks, b: BoxTicks): number {
  const total = b.total - a.total;
  const busy = total - (b.idle - a.idle) - (b.iowait - a.iowait);
  return total > 0 ? +((100 * busy) / total).toFixed(1) : NaN;
}

/**
 * Starts a measuring window: call the returned function when it ends. It gives the box's busy
 * percent from /proc/stat (busy = total - idle - iowait, all CPUs) over exactly that window, and
 * for each named process source its CPU over the window as a percent of the whole box
 * (cpu seconds / (window seconds x CPUs)), so the parts and box_cpu_pct are on one scale; the
 * rest of box_cpu_pct is everything else on the machine (the lead's runs, other brokers).
 */
export function cpuWindow(sources: Record<string, () => number>) {
  const cpus = os.cpus().length;
  const names = Object.keys(sources);
  const s0 = names.map(n => sources[n]!());
  const t0 = performance.now();
  const b0 = readBoxTicks();
  return (): Record<string, number> => {
    const b1 = readBoxTicks();
    const seconds = (performance.now() - t0) / 1000;
    const out: Record<string, number> = { box_cpu_pct: boxBusyPct(b0, b1), cpu_window_s: +seconds.toFixed(2) };
    names.forEach((n, i) => {
      out[`${n}_cpu_pct`] = +((100 * (sources[n]!() - s0[i]!)) / (seconds * cpus)).toFixed(1);
    });
    return out;
  };
}
