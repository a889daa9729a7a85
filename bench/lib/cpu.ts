import fs from 'node:fs';

const TICKS = 100; // USER_HZ

/** CPU seconds (user + system) of every process whose command is `comm` (e.g. all Postgres backends). */
export function cpuSecondsOf(comm: string): number {
  let total = 0;
  for (const pid of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      if (name !== comm) continue;
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // utime, stime, cutime, cstime: children that exited count too (backends that closed).
      total += (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / TICKS;
    } catch {
      // the process ended meanwhile
    }
  }
  return total;
}

/** CPU seconds this process has used. */
export function ownCpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/** Where CPU went while `fn` ran: this process, Postgres, and optionally a server process. */
export async function measureCpu<T>(fn: () => Promise<T>, server?: { cpuSeconds(): number }) {
  const c0 = ownCpuSeconds();
  const p0 = cpuSecondsOf('postgres');
  const s0 = server?.cpuSeconds() ?? 0;
  const out = await fn();
  return {
    out,
    cpu: {
      client_cpu_s: +(ownCpuSeconds() - c0).toFixed(2),
      postgres_cpu_s: +(cpuSecondsOf('postgres') - p0).toFixed(2),
      ...(server ? { server_cpu_s: +(server.cpuSeconds() - s0).toFixed(2) } : {}),
    },
  };
}
