/**
 * The `inboxd` command line, run as its own process against a real server: what it prints, in
 * tables and as JSON, and how it exits (0 ok, 1 refused, 2 usage, 3 unavailable, 4 not found).
 */

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, spawnCli } from './support/cli.js';
import { migratedDatabase, ROOT, type ServerProcess, spawnServer } from './support/harness.js';
import { freePort } from './support/net.js';

describe('inboxd CLI', () => {
  let db: string;
  let server: ServerProcess;
  let cli: (args: string[], opts?: { input?: string | Buffer; env?: Record<string, string> }) => ReturnType<typeof runCli>;
  let tmp: string;

  beforeAll(async () => {
    db = await migratedDatabase();
    server = await spawnServer(db);
    cli = (args, opts = {}) => runCli(args, { ...opts, env: { INBOXD_ADDRESS: server.address, ...opts.env } });
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'inboxd-cli-'));
  });
  afterAll(async () => {
    server?.proc.kill('SIGTERM');
    await server?.exited;
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  const json = <T = any>(s: string): T => JSON.parse(s) as T;

  it('runs in-process on an environment of its own, which reaches the flags and leaves process.env as it was', async () => {
    const before = process.env.INBOXD_ADDRESS;
    const [here, down] = await Promise.all([
      cli(['queues', 'list', '--json']),
      runCli(['queues', 'list', '--timeout', '1s'], { env: { INBOXD_ADDRESS: '127.0.0.1:1' } }),
    ]);
    expect(here.code).toBe(0);
    expect(down).toMatchObject({ code: 3 });
    expect(down.stderr).toContain('cannot reach inboxd at 127.0.0.1:1');
    expect(process.env.INBOXD_ADDRESS).toBe(before);
  });

  it('has --help everywhere, and refuses unknown commands, flags and bad values with exit 2', async () => {
    const [top, queues, create, dlq, tail, send, badCmd, badFlag, badValue, badChoice] = await Promise.all([
      cli(['--help']),
      cli(['queues', '--help']),
      cli(['queues', 'create', '--help']),
      cli(['dlq', '--help']),
      cli(['tail', '--help']),
      cli(['send', '--help']),
      cli(['queus', 'list']),
      cli(['queues', 'list', '--bogus']),
      cli(['lease', 'q', '--wait', 'soon']),
      cli(['send', 'q', 'x', '--as', 'xml']),
    ]);
    expect(top.code).toBe(0);
    for (const c of ['serve', 'health', 'queues', 'send', 'lease', 'ack', 'nack', 'tail', 'dlq']) expect(top.stdout).toMatch(new RegExp(`^  ${c}\\b`, 'm'));
    expect(top.stdout).toContain('Exit codes: 0 ok');
    expect(queues.code).toBe(0);
    for (const c of ['create', 'list', 'get', 'delete', 'purge', 'stats']) expect(queues.stdout).toMatch(new RegExp(`^  ${c}\\b`, 'm'));
    expect(create.code).toBe(0);
    expect(create.stdout).toContain('--max-attempts <n>');
    expect(create.stdout).toContain('--address <host:port>');
    expect(create.stdout).toContain('env: INBOXD_ADDRESS');
    expect(dlq.code).toBe(0);
    expect(dlq.stdout).toMatch(/^ {2}list\b/m);
    expect(dlq.stdout).toMatch(/^ {2}redrive\b/m);
    expect(tail.stdout).toContain('--ack');
    expect(send.stdout).toContain('--file <path>');

    expect(badCmd).toMatchObject({ code: 2, stdout: '' });
    expect(badCmd.stderr).toContain("unknown command 'queus'");
    expect(badFlag.code).toBe(2);
    expect(badFlag.stderr).toContain("unknown option '--bogus'");
    expect(badValue.code).toBe(2);
    expect(badValue.stderr).toContain('"soon" is not a duration');
    expect(badChoice.code).toBe(2);
    expect(badChoice.stderr).toMatch(/argument 'xml' is invalid.*json, text, bytes/);
  });

  it('health: SERVING and exit 0; a server that is not there: exit 3 with a clear message', async () => {
    const port = await freePort();
    const [ok, okJson, service, unknown, down, downJson] = await Promise.all([
      cli(['health']),
      cli(['health', '--json']),
      cli(['health', '--service', 'inboxd.v1.Inbox']),
      cli(['health', '--service', 'no.such.Service']),
      cli(['health', '--address', `127.0.0.1:${port}`]),
      cli(['queues', 'list', '--json'], { env: { INBOXD_ADDRESS: `127.0.0.1:${port}` } }),
    ]);
    expect(ok).toMatchObject({ code: 0, stdout: 'SERVING\n' });
    expect(json(okJson.stdout)).toEqual({ status: 'SERVING' });
    expect(service).toMatchObject({ code: 0, stdout: 'SERVING\n' });
    expect(unknown.code).toBe(4);
    expect(unknown.stderr).toContain('no service "no.such.Service"');
    expect(down.code).toBe(3);
    expect(down.stderr).toContain(`cannot reach inboxd at 127.0.0.1:${port}`);
    expect(down.stderr).toContain('is it running?');
    expect(downJson.code).toBe(3);
    expect(json(downJson.stderr).error).toMatchObject({ code: 'UNAVAILABLE', exitCode: 3 });
  });

  it('queues: create, list, get, stats, purge, delete; exit 1 on a refusal, 4 on a missing queue', async () => {
    const created = await cli(['queues', 'create', 'cli-q', '--max-attempts', '3', '--visibility-timeout', '45s', '--retry-delay', '2s']);
    expect(created.code).toBe(0);
    const [header, row] = created.stdout.trim().split('\n');
    expect(header).toMatch(/^NAME\s+VISIBILITY\s+MAX ATTEMPTS\s+DEAD LETTER QUEUE\s+RETRY DELAY\s+ACKED RETENTION\s+TTL\s+MAX DEPTH\s+DEDUP\s+CREATED$/);
    expect(row).toMatch(/^cli-q\s+45s\s+3\s+-\s+2s\s+1h\s+-\s+-\s+5m\s+\d{4}-\d\d-\d\dT/);
    const bounded = await cli([
      'queues',
      'create',
      'cli-bounded',
      '--max-depth',
      '10',
      '--overflow',
      'drop_oldest',
      '--message-ttl',
      '10m',
      '--content-dedup',
      '--json',
    ]);
    expect(bounded.code).toBe(0);
    expect(json(bounded.stdout)).toMatchObject({ maxDepth: 10, overflow: 'drop_oldest', messageTtlMs: 600_000, contentDedup: true });
    const badOverflow = await cli(['queues', 'create', 'cli-bad', '--overflow', 'sometimes']);
    expect(badOverflow.code).toBe(2);
    expect(badOverflow.stderr).toContain('expected reject, drop_oldest or drop_newest');

    const again = await cli(['queues', 'create', 'cli-q']);
    expect(again).toMatchObject({ code: 1, stdout: '' });
    expect(again.stderr).toMatch(
      /^inboxd: queue cli-q already exists with other settings \(visibility_timeout, max_attempts, retry_delay\): UpdateQueue changes settings \(request [\w-]+\)\n$/,
    );
    const ensured = await cli(['queues', 'create', 'cli-q', '--if-not-exists', '--json']);
    expect(ensured.code).toBe(0);
    expect(json(ensured.stdout)).toMatchObject({ name: 'cli-q', maxAttempts: 3, visibilityTimeoutMs: 45_000 });

    await cli(['queues', 'create', 'cli-q2', '--dead-letter-queue', 'cli-q']);
    const [list, listJson, get, badName, badDlq] = await Promise.all([
      cli(['queues', 'list']),
      cli(['queues', 'list', '--json']),
      cli(['queues', 'get', 'cli-q2', '--json']),
      cli(['queues', 'create', 'bad name!']),
      cli(['queues', 'create', 'cli-q3', '--dead-letter-queue', 'nope']),
    ]);
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/^cli-q\s+45s/m);
    expect(list.stdout).toMatch(/^cli-q2\s+30s\s+5\s+cli-q\s/m);
    expect(json<{ name: string }[]>(listJson.stdout).map(q => q.name)).toEqual(expect.arrayContaining(['cli-q', 'cli-q2']));
    expect(json(get.stdout)).toMatchObject({ name: 'cli-q2', deadLetterQueue: 'cli-q', maxAttempts: 5 });
    expect(badName.code).toBe(2); // INVALID_ARGUMENT from the server
    expect(badName.stderr).toContain('name');
    expect(badDlq.code).toBe(1); // FAILED_PRECONDITION
    expect(badDlq.stderr).toContain('dead_letter_queue nope does not exist');

    expect((await cli(['send', 'cli-q', 'one'])).code).toBe(0);
    expect((await cli(['send', 'cli-q', 'two'])).code).toBe(0);
    const stats = await cli(['queues', 'stats', 'cli-q']);
    expect(stats.code).toBe(0);
    expect(stats.stdout).toMatch(/^QUEUE\s+DEPTH\s+READY\s+DELAYED\s+LEASED\s+DEAD-LETTERED\s+ACKED\s+OLDEST\s+EXPIRED\s+DROPPED\s+SENT\/S\s+ACKED\/S$/m);
    expect(stats.stdout).toMatch(/^cli-q\s+2\s+2\s+0\s+0\s+0\s+0\s+\d+s\s+0\s+0\s+0\.03\s+0\.00$/m);
    const statsJson = json<{ queue: string; depth: number }[]>((await cli(['queues', 'stats', '--json'])).stdout);
    expect(statsJson.find(s => s.queue === 'cli-q')).toMatchObject({ depth: 2, ready: 2 });
    expect(statsJson.find(s => s.queue === 'cli-q2')).toMatchObject({ depth: 0 });

    const purged = await cli(['queues', 'purge', 'cli-q']);
    expect(purged).toMatchObject({ code: 0, stdout: 'purged 2 messages from cli-q\n' });
    const inUse = await cli(['queues', 'delete', 'cli-q']);
    expect(inUse.code).toBe(1); // the dead-letter queue of cli-q2
    expect(inUse.stderr).toContain('dead_letter_queue');
    expect(await cli(['queues', 'delete', 'cli-q2'])).toMatchObject({ code: 0, stdout: 'deleted queue cli-q2\n' });
    expect(json((await cli(['queues', 'delete', 'cli-q', '--json'])).stdout)).toEqual({ deleted: 'cli-q' });

    const [gone, goneJson, goneStats] = await Promise.all([
      cli(['queues', 'get', 'cli-q']),
      cli(['queues', 'get', 'cli-q', '--json']),
      cli(['queues', 'stats', 'cli-q']),
    ]);
    expect(gone.code).toBe(4);
    expect(gone.stderr).toContain('queue cli-q not found');
    expect(json(goneJson.stderr).error).toMatchObject({ code: 'NOT_FOUND', exitCode: 4, message: expect.stringContaining('cli-q') });
    expect(goneStats.code).toBe(4);
  });

  it('send: from an argument, a file, stdin, line by line; JSON checked; lease, ack and nack what was sent', async () => {
    await cli(['queues', 'create', 'cli-send']);
    const file = path.join(tmp, 'payload.bin');
    const bytes = Buffer.from([0, 1, 2, 250, 251, 252]);
    fs.writeFileSync(file, bytes);

    const fromArg = await cli(['send', 'cli-send', 'hello from the cli', '-H', 'trace=abc', '--subject', 'greeting']);
    expect(fromArg.code).toBe(0);
    expect(fromArg.stdout).toMatch(/^sent [0-9a-f-]{36} to cli-send\n$/);
    const fromFile = await cli(['send', 'cli-send', '--file', file, '--json']);
    expect(fromFile.code).toBe(0);
    const fileId = json<{ ids: string[] }>(fromFile.stdout).ids[0];
    const fromStdin = await cli(['send', 'cli-send', '--as', 'json'], { input: '{"task":"summarise"}' });
    expect(fromStdin.code).toBe(0);
    const lines = await cli(['send', 'cli-send', '--lines', '--json'], { input: 'l1\nl2\n\nl3\n' });
    expect(json<{ ids: string[] }>(lines.stdout).ids).toHaveLength(3);

    const [notJson, noPayload, noQueue, both] = await Promise.all([
      cli(['send', 'cli-send', '--as', 'json'], { input: '{"task":' }),
      cli(['send', 'cli-send']),
      cli(['send', 'no-such-queue', 'x']),
      cli(['send', 'cli-send', 'x', '--file', file]),
    ]);
    expect(notJson.code).toBe(2);
    expect(notJson.stderr).toContain('payload is not valid JSON');
    expect(noPayload.code).toBe(2);
    expect(noPayload.stderr).toContain('no payload');
    expect(noQueue.code).toBe(4);
    expect(noQueue.stderr).toContain('queue no-such-queue not found');
    expect(both.code).toBe(2);

    // Lease all six: the table for people, JSON for the tokens.
    const table = await cli(['lease', 'cli-send', '--max', '2', '--visibility-timeout', '60s']);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^ID\s+ATTEMPT\s+CONTENT TYPE\s+PAYLOAD\s+LEASE TOKEN$/m);
    expect(table.stdout).toMatch(/^[0-9a-f-]{36}\s+1\s+text\/plain; charset=utf-8\s+hello from the cli\s+\S+$/m);
    expect(table.stdout).toMatch(/^[0-9a-f-]{36}\s+1\s+application\/octet-stream\s+<6 bytes>\s+\S+$/m);
    const rest = json<any[]>((await cli(['lease', 'cli-send', '--max', '10', '--json'])).stdout);
    expect(rest).toHaveLength(4);
    const task = rest.find(m => m.contentType === 'application/json');
    expect(task).toMatchObject({
      queue: 'cli-send',
      attempt: 1,
      text: '{"task":"summarise"}',
      payload: Buffer.from('{"task":"summarise"}').toString('base64'),
    });
    expect(
      rest
        .filter(m => m.contentType === 'application/octet-stream')
        .map(m => m.text)
        .sort(),
    ).toEqual(['l1', 'l2', 'l3']);

    const acked = await cli(['ack', task.leaseToken]);
    expect(acked).toMatchObject({ code: 0, stdout: 'acked 1\n' });
    // Acking again what was acked succeeds (a retry after a lost answer).
    expect((await cli(['ack', task.leaseToken])).code).toBe(0);
    const others = rest.filter(m => m !== task).map(m => m.leaseToken);
    const nacked = await cli(['nack', ...others, '--delay', '0s', '--json']);
    expect(nacked.code).toBe(0);
    expect(json(nacked.stdout)).toEqual({ requeued: 3, deadLettered: 0 });
    const stale = await cli(['ack', others[0]]);
    expect(stale.code).toBe(1);
    expect(stale.stderr).toContain('stale');
    const malformed = await cli(['ack', 'not-a-token']);
    expect(malformed.code).toBe(2);
    expect(malformed.stderr).toContain('malformed lease token');

    // The three nacked come back as second attempts, acked at once with --ack; then the queue is empty.
    const again = json<any[]>((await cli(['lease', 'cli-send', '--max', '10', '--ack', '--json'])).stdout);
    expect(again.map(m => m.attempt)).toEqual([2, 2, 2]);
    const byteMsg = json<any[]>((await cli(['lease', 'cli-send', '--max', '10', '--json'])).stdout);
    // The two leased by the table above are still leased (60s): nothing is ready.
    expect(byteMsg).toEqual([]);
    const empty = await cli(['lease', 'cli-send', '--wait', '300ms']);
    expect(empty).toMatchObject({ code: 0, stdout: 'no messages ready in cli-send\n' });
    const stats = json<any[]>((await cli(['queues', 'stats', 'cli-send', '--json'])).stdout)[0];
    expect(stats).toMatchObject({ ready: 0, leased: 2, acked: 4 });
    const file2 = await cli(['lease', 'no-such-queue']);
    expect(file2.code).toBe(4);
    expect(fileId).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('tail: prints messages as they arrive; --ack consumes them, without it they go back', async () => {
    await cli(['queues', 'create', 'cli-tail', '--max-attempts', '10']);
    await cli(['send', 'cli-tail', '--lines'], { input: 'first\nsecond\n' });

    // Without --ack: two shown, both back in the queue once tail stops.
    const peek = await cli(['tail', 'cli-tail', '--count', '2']);
    expect(peek.code).toBe(0);
    const shown = peek.stdout.trim().split('\n');
    expect(shown).toHaveLength(2);
    for (const l of shown) expect(l).toMatch(/^\d{4}-\d\d-\d\dT\S+Z {2}[0-9a-f-]{36} {2}attempt 1 {2}application\/octet-stream {2}(first|second)$/);
    const after = json<any[]>((await cli(['queues', 'stats', 'cli-tail', '--json'])).stdout)[0];
    expect(after).toMatchObject({ ready: 2, leased: 0, acked: 0 });

    // A tail that follows: started first, it prints what is sent after, one JSON object a line, and acks.
    const proc = spawn(process.execPath, [`${ROOT}/dist/cli/main.js`, 'tail', 'cli-tail', '--ack', '--json', '--count', '3'], {
      env: { ...process.env, INBOXD_ADDRESS: server.address },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    proc.stdout.on('data', d => (out += d));
    const exited = new Promise<number | null>(resolve => proc.on('close', code => resolve(code)));
    await cli(['send', 'cli-tail', '{"n":3}', '--as', 'json']);
    expect(await exited).toBe(0);
    const got = out
      .trim()
      .split('\n')
      .map(l => JSON.parse(l));
    expect(got.map(m => m.text).sort()).toEqual(['first', 'second', '{"n":3}']);
    for (const m of got) expect(m).toMatchObject({ queue: 'cli-tail', leaseToken: expect.any(String), id: expect.stringMatching(/^[0-9a-f-]{36}$/) });
    const consumed = json<any[]>((await cli(['queues', 'stats', 'cli-tail', '--json'])).stdout)[0];
    expect(consumed).toMatchObject({ depth: 0, leased: 0, acked: 3 });

    // Stopped by a signal: exits 0, giving back what it held.
    await cli(['send', 'cli-tail', 'held']);
    const held = spawn(process.execPath, [`${ROOT}/dist/cli/main.js`, 'tail', 'cli-tail'], {
      env: { ...process.env, INBOXD_ADDRESS: server.address },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let heldOut = '';
    held.stdout.on('data', d => (heldOut += d));
    const heldExit = new Promise<number | null>(resolve => held.on('close', code => resolve(code)));
    const deadline = Date.now() + 10_000;
    while (!heldOut.includes('held') && Date.now() < deadline) await new Promise(r => setTimeout(r, 20));
    expect(heldOut).toContain('held');
    held.kill('SIGINT');
    expect(await heldExit).toBe(0);
    expect(json<any[]>((await cli(['queues', 'stats', 'cli-tail', '--json'])).stdout)[0]).toMatchObject({ ready: 1, leased: 0 });

    const missing = await cli(['tail', 'no-such-queue']);
    expect(missing.code).toBe(4);
    expect(missing.stderr).toContain('queue no-such-queue not found');
  });

  it('dlq list and redrive: the dead-lettered messages, or "not supported by this server yet"', async () => {
    await cli(['queues', 'create', 'cli-dead']);
    await cli(['queues', 'create', 'cli-work', '--max-attempts', '1', '--dead-letter-queue', 'cli-dead']);
    await cli(['send', 'cli-work', 'doomed']);
    const leased = json<any[]>((await cli(['lease', 'cli-work', '--json'])).stdout);
    expect(json((await cli(['nack', leased[0].leaseToken, '--json'])).stdout)).toEqual({ requeued: 0, deadLettered: 1 });

    const [list, redrive] = [await cli(['dlq', 'list', 'cli-dead']), await cli(['dlq', 'redrive', 'cli-dead'])];
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/^ID\s+STATE\s+FROM QUEUE\s+ATTEMPTS\s+LAST ERROR\s+CREATED\s+PAYLOAD$/m);
    expect(list.stdout).toMatch(/\s+cli-work\s+1\s+.*doomed$/m);
    expect(redrive).toMatchObject({ code: 0, stdout: 'redriven 1\n' });
    // Back in the queue it failed in, with fresh attempts; the dead-letter queue is empty.
    expect(json<any[]>((await cli(['queues', 'stats', 'cli-work', '--json'])).stdout)[0]).toMatchObject({ ready: 1 });
    expect(json<any[]>((await cli(['dlq', 'list', 'cli-dead', '--json'])).stdout).filter(m => m.state === 'queued')).toEqual([]);
    expect((await cli(['dlq', 'redrive', 'no-such-dlq'])).code).toBe(4);

    // nack --dead-letter --error: straight there with attempts to spare, the error kept.
    const again = json<any[]>((await cli(['lease', 'cli-work', '--json'])).stdout);
    await cli(['queues', 'create', 'cli-work2', '--max-attempts', '9', '--dead-letter-queue', 'cli-dead']);
    await cli(['send', 'cli-work2', 'poison']);
    const poison = json<any[]>((await cli(['lease', 'cli-work2', '--json'])).stdout);
    expect(json((await cli(['nack', poison[0].leaseToken, '--dead-letter', '--error', 'schema v3 unsupported', '--json'])).stdout)).toEqual({
      requeued: 0,
      deadLettered: 1,
    });
    const dead = await cli(['dlq', 'list', 'cli-dead']);
    expect(dead.stdout).toMatch(/\s+cli-work2\s+1\s+schema v3 unsupported\s+.*poison$/m);
    await cli(['ack', again[0].leaseToken]);
  });

  it('serve: runs the server with its settings as flags; a bad one exits 2 naming it', async () => {
    const bad = await spawnCli(['serve', '--port', '70000'], { env: { DATABASE_URL: db } });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('bad configuration: flag --port (INBOXD_PORT / --port): "70000" must be an integer from 0 to 65535');
    const badEnv = await spawnCli(['serve'], { env: { DATABASE_URL: db, INBOXD_METRICS_PORT: 'nine' } });
    expect(badEnv.code).toBe(2);
    expect(badEnv.stderr).toContain(
      'environment INBOXD_METRICS_PORT (INBOXD_METRICS_PORT / --metrics-port): "nine" must be an integer from 0 to 65535, or off',
    );
    const help = await spawnCli(['serve', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('--metrics-port <value>');
    expect(help.stdout).toContain('[env INBOXD_METRICS_PORT, default 9464]');

    const proc = spawn(process.execPath, [`${ROOT}/dist/cli/main.js`, 'serve', '--port', '0', '--metrics-port', 'off', '--log-level', 'info'], {
      env: { ...process.env, DATABASE_URL: db },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    proc.stdout.on('data', d => (out += d));
    proc.stderr.on('data', d => (out += d));
    const exited = new Promise<number | null>(resolve => proc.on('close', code => resolve(code)));
    const deadline = Date.now() + 20_000;
    while (!/inboxd listening on (\S+?)"/.test(out) && Date.now() < deadline) await new Promise(r => setTimeout(r, 20));
    const address = /inboxd listening on (\S+?)"/.exec(out)?.[1];
    expect(address, out).toBeDefined();
    expect(out).not.toContain('metrics on');
    expect(await runCli(['health', '--address', address!])).toMatchObject({ code: 0, stdout: 'SERVING\n' });
    proc.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(out).toContain('"msg":"stopped"');
  });
});
