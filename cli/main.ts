#!/usr/bin/env node
import { readFileSync } from 'node:fs';
/**
 * The inboxd command line: `inboxd serve` runs the server; the other commands talk to one
 * (--address, INBOXD_ADDRESS; default 127.0.0.1:50051) through the SDK, with an API key
 * (--api-key, INBOXD_API_KEY) and TLS (--tls, --tls-ca, --tls-cert, --tls-key) when the server
 * asks for them. Tables for people, --json for scripts; exit codes in exit-codes.ts.
 */
import { CommanderError } from 'commander';
import { DEFAULT_ADDRESS } from './client.js';
import { EXIT, explain } from './exit-codes.js';
import { buildProgram } from './program.js';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

const program = buildProgram(pkg.version);

let current: { address?: string; json?: boolean; apiKey?: string } = {};
program.hook('preAction', (_root, action) => {
  current = action.opts();
});

async function main(): Promise<number> {
  try {
    await program.parseAsync(process.argv);
    return EXIT.ok;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Commander printed the message (or the help / version, exit code 0).
      return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    const e = explain(err, current.address ?? DEFAULT_ADDRESS, Boolean(current.apiKey?.trim()));
    if (current.json) process.stderr.write(`${JSON.stringify({ error: e })}\n`);
    else process.stderr.write(`inboxd: ${e.message}${e.requestId ? ` (request ${e.requestId})` : ''}\n`);
    return e.exitCode;
  }
}

process.exit(await main());
