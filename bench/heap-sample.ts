/**
 * What a process allocates, by where: V8's sampling heap profiler, counting objects the garbage
 * collector has since freed too (what GC pressure is made of, not what stays).
 *
 * Record, in any Node process of the bench (the bench itself, or the server through
 * BENCH_SERVER_NODE_ARGS):
 *
 *   BENCH_HEAP_SAMPLE=dir:10000:20000 node --import ./dist/bench/heap-sample.js dist/bench/run.js --only latency_at_rate
 *
 * samples from 10 s to 20 s after the process starts and writes dir/heap-<pid>.heapprofile (Chrome
 * DevTools opens it). Read: `node dist/bench/heap-sample.js <file>` prints the bytes sampled in
 * all and the 25 sites that allocated most.
 */
import fs from 'node:fs';
import { Session } from 'node:inspector';
import { fileURLToPath } from 'node:url';

interface ProfileNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: ProfileNode[];
}

function record(spec: string): void {
  const [dir = '.', start = '10000', stop = '20000'] = spec.split(':');
  const session = new Session();
  session.connect();
  const post = <T>(method: string, params?: object) =>
    new Promise<T>((resolve, reject) => session.post(method, params, (err, res) => (err ? reject(err) : resolve(res as T))));
  setTimeout(async () => {
    await post('HeapProfiler.enable');
    await post('HeapProfiler.startSampling', { samplingInterval: 4096, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
    setTimeout(async () => {
      const { profile } = await post<{ profile: { head: ProfileNode } }>('HeapProfiler.stopSampling');
      fs.writeFileSync(`${dir}/heap-${process.pid}.heapprofile`, JSON.stringify(profile));
    }, Number(stop) - Number(start)).unref();
  }, Number(start)).unref();
}

function summarize(file: string): void {
  const { head } = JSON.parse(fs.readFileSync(file, 'utf8')) as { head: ProfileNode };
  const bySite = new Map<string, number>();
  let total = 0;
  const walk = (n: ProfileNode) => {
    const f = n.callFrame;
    const site = `${f.functionName || '(anonymous)'} ${f.url.replace(/^.*node_modules\//, '').replace(/^.*\/dist\//, '')}:${f.lineNumber + 1}`;
    bySite.set(site, (bySite.get(site) ?? 0) + n.selfSize);
    total += n.selfSize;
    for (const c of n.children) walk(c);
  };
  walk(head);
  console.log(`${(total / 1e6).toFixed(1)} MB sampled`);
  for (const [site, bytes] of [...bySite].sort((a, b) => b[1] - a[1]).slice(0, 25)) {
    console.log(`${(bytes / 1e6).toFixed(1).padStart(7)} MB ${((100 * bytes) / total).toFixed(1).padStart(5)} %  ${site}`);
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const file = process.argv[2];
  if (!file) throw new Error('usage: node dist/bench/heap-sample.js <file.heapprofile>');
  summarize(file);
} else if (process.env.BENCH_HEAP_SAMPLE) {
  record(process.env.BENCH_HEAP_SAMPLE);
}
