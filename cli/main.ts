#!/usr/bin/env -S node --max-semi-space-size=16
/**
 * The inboxd command line: `inboxd serve` runs the server; the other commands talk to one
 * (--address, INBOXD_ADDRESS; default 127.0.0.1:50051) through the SDK, with an API key
 * (--api-key, INBOXD_API_KEY) and TLS (--tls, --tls-ca, --tls-cert, --tls-key) when the server
 * asks for them. Tables for people, --json for scripts; exit codes in exit-codes.ts.
 */
import { readFileSync } from 'node:fs';
import { run } from './run.js';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

process.exit(await run(process.argv.slice(2), pkg.version));
