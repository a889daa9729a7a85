/**
 * docker-compose.yml and the Dockerfile, checked without a Docker engine: the compose file's
 * services, ports, environment, health checks and volumes; the Dockerfile's stages, user, health
 * check, and that the commands it runs are the project's own (package.json scripts, the README's
 * quick start) and documented (docs/operations.md).
 */

import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadConfig, SETTINGS } from '../server/config.js';
import { SERVER_NODE_FLAGS } from '../server/node-flags.js';
import { runCli } from './support/cli.js';
import { ROOT } from './support/harness.js';

const read = (f: string) => fs.readFileSync(`${ROOT}/${f}`, 'utf8');
const pkg = JSON.parse(read('package.json')) as { scripts: Record<string, string>; bin: Record<string, string>; workspaces: string[] };

interface Service {
  image?: string;
  build?: { context: string; dockerfile: string };
  environment?: Record<string, string>;
  ports?: string[];
  volumes?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[]; interval?: string; timeout?: string; retries?: number; start_period?: string };
  stop_grace_period?: string;
}

/**
 * Compose's variable interpolation, for the forms the file uses: ${NAME}, ${NAME:-default},
 * ${NAME:?error} (an error when unset or empty, as `docker compose up` gives).
 */
function interpolate(text: string, env: Record<string, string>): string {
  return text.replace(/\$\{(\w+)(?::([-?])([^}]*))?\}/g, (_m, name: string, op: string | undefined, arg: string) => {
    const v = env[name];
    if (v) return v;
    if (op === '?') throw new Error(`compose: ${arg}`);
    return op === '-' ? arg : '';
  });
}

describe('docker-compose.yml', () => {
  const ADMIN_KEY = 'c0ffee'.repeat(8);
  const compose = parse(interpolate(read('docker-compose.yml'), { INBOXD_ADMIN_KEY: ADMIN_KEY })) as {
    services: Record<string, Service>;
    volumes: Record<string, unknown>;
  };
  const { postgres, inboxd } = compose.services;

  it('runs inboxd with auth required, its admin key from the environment (refusing to start without one), ports on loopback only', () => {
    const config = loadConfig([], inboxd.environment!);
    expect(config.auth).toBe('required');
    expect(config.adminKey).toBe(ADMIN_KEY);
    expect(() => interpolate(read('docker-compose.yml'), {})).toThrow(/set INBOXD_ADMIN_KEY/);
    for (const p of inboxd.ports!) expect(p.split(':')[0]).toBe('127.0.0.1');
  });

  it('has Postgres 18 with a named volume and a pg_isready health check', () => {
    expect(Object.keys(compose.services).sort()).toEqual(['inboxd', 'postgres']);
    expect(postgres.image).toMatch(/^postgres:18(\b|$)/);
    const [volume, target] = postgres.volumes![0].split(':');
    expect(Object.keys(compose.volumes)).toContain(volume);
    // Postgres 18 images keep PGDATA in a versioned directory under /var/lib/postgresql.
    expect(target).toBe('/var/lib/postgresql');
    const test = postgres.healthcheck!.test.join(' ');
    expect(test).toContain('pg_isready');
    expect(test).toContain(`-U ${postgres.environment!.POSTGRES_USER}`);
    expect(test).toContain(`-d ${postgres.environment!.POSTGRES_DB}`);
    expect(postgres.healthcheck!.retries).toBeGreaterThan(0);
  });

  it('builds inboxd from the Dockerfile here, once Postgres is healthy, with a DATABASE_URL that reaches it', () => {
    expect(inboxd.build).toEqual({ context: '.', dockerfile: 'Dockerfile' });
    expect(fs.existsSync(`${ROOT}/${inboxd.build!.dockerfile}`)).toBe(true);
    expect(inboxd.depends_on).toEqual({ postgres: { condition: 'service_healthy' } });
    const env = inboxd.environment!;
    const db = new URL(env.DATABASE_URL);
    expect(db.protocol).toBe('postgres:');
    expect(db.hostname).toBe('postgres');
    expect(db.port).toBe('5432');
    expect(decodeURIComponent(db.username)).toBe(postgres.environment!.POSTGRES_USER);
    expect(decodeURIComponent(db.password)).toBe(postgres.environment!.POSTGRES_PASSWORD);
    expect(db.pathname).toBe(`/${postgres.environment!.POSTGRES_DB}`);
  });

  it('sets only settings inboxd knows, with values it accepts, and publishes its gRPC and metrics ports', () => {
    const env = inboxd.environment!;
    const known = new Set(SETTINGS.map(s => s.env));
    for (const k of Object.keys(env)) expect(known, k).toContain(k);
    const config = loadConfig([], env); // throws on a bad value
    expect(config.host).toBe('0.0.0.0');
    expect(config.metricsPort).not.toBeNull();
    const published = inboxd.ports!.map(p => p.split(':').slice(-2).map(Number));
    expect(published).toContainEqual([config.port, config.port]);
    expect(published).toContainEqual([config.metricsPort, config.metricsPort]);
    expect(config.metricsHost).toBe('0.0.0.0');
  });

  it('health-checks inboxd through the gRPC health service with the CLI, and gives the drain time to finish', async () => {
    const test = inboxd.healthcheck!.test;
    expect(test.slice(0, 4)).toEqual(['CMD', 'node', pkg.bin.inboxd, 'health']);
    const port = loadConfig([], inboxd.environment!).port;
    expect(test.join(' ')).toContain(`--address 127.0.0.1:${port}`);
    expect(inboxd.healthcheck!.retries).toBeGreaterThan(0);
    // The command exists and takes these flags.
    const help = await runCli([...test.slice(3), '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('--timeout');
    const grace = Number(/^(\d+)s$/.exec(inboxd.stop_grace_period!)![1]) * 1000;
    expect(grace).toBeGreaterThan(loadConfig([], inboxd.environment!).shutdownTimeoutMs);
  });
});

describe('Dockerfile', () => {
  const lines = read('Dockerfile')
    .split('\n')
    .map(l => l.trim())
    .filter(l => l && !l.startsWith('#'));
  // Backslash-continued instructions as one line each.
  const instructions: string[] = [];
  for (const l of lines) {
    const prev = instructions[instructions.length - 1];
    if (prev?.endsWith('\\')) instructions[instructions.length - 1] = `${prev.slice(0, -1).trim()} ${l}`;
    else instructions.push(l);
  }
  const of = (kw: string) => instructions.filter(i => i.split(/\s+/)[0].toUpperCase() === kw);
  const froms = of('FROM');
  const finalStage = instructions.slice(instructions.lastIndexOf(froms[froms.length - 1]));
  const jsonArgs = (i: string) => JSON.parse(i.slice(i.indexOf('['))) as string[];

  it('is multi-stage: builds in one Node 24 image, runs from a fresh one', () => {
    expect(froms.length).toBeGreaterThanOrEqual(2);
    expect(froms[0]).toMatch(/^FROM node:24\S* AS build$/);
    expect(froms[froms.length - 1]).toMatch(/^FROM node:24\S*$/);
    const copied = finalStage.filter(i => i.startsWith('COPY'));
    expect(copied.length).toBeGreaterThan(0);
    for (const c of copied) expect(c).toMatch(/^COPY --from=build /);
  });

  it('runs as a non-root user', () => {
    const users = finalStage.filter(i => i.startsWith('USER'));
    expect(users).toHaveLength(1);
    expect(users[0].split(/\s+/)[1]).not.toMatch(/^(root|0)(:.*)?$/);
    // USER comes before the command it applies to.
    expect(finalStage.indexOf(users[0])).toBeLessThan(finalStage.findIndex(i => i.startsWith('CMD')));
  });

  it('health-checks through the gRPC health service (inboxd health) at the address it serves', () => {
    const hc = of('HEALTHCHECK');
    expect(hc).toHaveLength(1);
    const cmd = jsonArgs(hc[0].slice(hc[0].indexOf('CMD') + 3));
    expect(cmd.slice(0, 3)).toEqual(['node', pkg.bin.inboxd, 'health']);
    const env = Object.fromEntries(finalStage.filter(i => i.startsWith('ENV')).flatMap(i => [...i.slice(3).matchAll(/(\w+)=(\S+)/g)].map(m => [m[1], m[2]])));
    // The health command's default address (INBOXD_ADDRESS) is the port the server listens on.
    expect(env.INBOXD_ADDRESS).toBe(`127.0.0.1:${env.INBOXD_PORT}`);
    expect(env.INBOXD_HOST).toBe('0.0.0.0');
    const config = loadConfig([], env);
    const exposed = of('EXPOSE').flatMap(i => i.split(/\s+/).slice(1).map(Number));
    expect(exposed).toEqual(expect.arrayContaining([config.port, config.metricsPort]));
  });

  it("runs the project's own commands: the README's install, package.json's build, and what npm start runs", () => {
    const runs = of('RUN').flatMap(i =>
      i
        .slice(3)
        .split('&&')
        .map(c => c.trim()),
    );
    const npm = runs.filter(c => c.startsWith('npm '));
    expect(npm[0]).toMatch(/^npm install\b/);
    // The README's quick start installs with npm install, as does CI.
    expect(read('README.md')).toContain('npm install && npm start');
    expect(read('.ci/run')).toMatch(/^npm install\b/m);
    for (const c of npm) {
      const script = /^npm run (\S+)/.exec(c)?.[1];
      if (script) expect(Object.keys(pkg.scripts)).toContain(script);
      else expect(c).toMatch(/^npm (install|prune)\b/);
    }
    expect(npm).toContain('npm run build');
    // CMD is what `npm start` runs once built, through package.json's bin.
    const cmd = jsonArgs(of('CMD')[0]);
    expect(cmd).toEqual(['node', ...SERVER_NODE_FLAGS, pkg.bin.inboxd, 'serve']);
    expect(pkg.scripts.start).toBe(`npm run build --silent && ${cmd.join(' ')}`);
    // docs/operations.md (Docker) names what the image builds with and runs.
    const docker = read('docs/operations.md').split('## Docker')[1];
    for (const c of ['npm install', 'npm run build', cmd.join(' ')]) expect(docker, c).toContain(`\`${c}\``);
  });

  it('copies every source directory the build compiles, the workspace packages it references, and no bench, example or test', () => {
    const tsconfig = JSON.parse(read('tsconfig.build.json')) as { include: string[]; references: { path: string }[] };
    const copied = of('COPY').map(i => i.split(/\s+/).slice(1, -1).join(' '));
    for (const dir of tsconfig.include.filter(d => fs.existsSync(`${ROOT}/${d}`))) expect(copied, dir).toContain(dir);
    for (const ref of tsconfig.references.map(r => r.path.replace(/^\.\//, ''))) {
      expect(copied, ref).toContain(ref);
      // npm install sees every workspace's manifest before the sources arrive.
      expect(copied, ref).toContain(`${ref}/package.json`);
    }
    expect(pkg.workspaces).toEqual(tsconfig.references.map(r => r.path.replace(/^\.\//, '')));
    for (const f of ['package.json package-lock.json', 'tsconfig.base.json tsconfig.json tsconfig.build.json buf.gen.yaml']) expect(copied).toContain(f);
    for (const dir of ['bench', 'examples', 'test']) {
      expect(tsconfig.include).not.toContain(dir);
      expect(copied.filter(c => c.split(/\s+/).some(p => p === dir || p.startsWith(`${dir}/`)))).toEqual([]);
    }
  });
});
