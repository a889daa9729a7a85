/**
 * Runs one `inboxd …` command line to its end and answers its exit code (exit-codes.ts), without
 * exiting: cli/main.ts runs it on the process's streams and exits with the code; a program (the
 * tests) can run it on streams of its own.
 */
import { CommanderError } from 'commander';
import { DEFAULT_ADDRESS } from './client.js';
import { EXIT, explain } from './exit-codes.js';
import { type CliIo, io, processIo, withIo } from './io.js';
import { buildProgram } from './program.js';

/** `argv`: the arguments after `inboxd` (`['queues', 'list', '--json']`). */
export function run(argv: string[], version: string, streams: CliIo = processIo()): Promise<number> {
  return withIo(streams, () => runHere(argv, version));
}

async function runHere(argv: string[], version: string): Promise<number> {
  // A program holds what it parsed: a fresh one for every run.
  const program = buildProgram(version);
  let current: { address?: string; json?: boolean; apiKey?: string } = {};
  program.hook('preAction', (_root, action) => {
    current = action.opts();
  });
  try {
    await parse(program, argv, io().env);
    return EXIT.ok;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Commander printed the message (or the help / version, exit code 0).
      return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    const e = explain(err, current.address ?? DEFAULT_ADDRESS, Boolean(current.apiKey?.trim()));
    if (current.json) io().stderr.write(`${JSON.stringify({ error: e })}\n`);
    else io().stderr.write(`inboxd: ${e.message}${e.requestId ? ` (request ${e.requestId})` : ''}\n`);
    return e.exitCode;
  }
}

/**
 * Commander reads the flags' environment variables from process.env, while it parses, before any
 * command runs: when the run has an environment of its own, it is put in place for exactly that
 * synchronous part and taken away before anything else can run.
 */
function parse(program: ReturnType<typeof buildProgram>, argv: string[], env: CliIo['env']): Promise<unknown> {
  if (env === process.env) return program.parseAsync(argv, { from: 'user' });
  const names = new Set<string>();
  const visit = (cmd: typeof program) => {
    for (const o of cmd.options) if (o.envVar) names.add(o.envVar);
    for (const sub of cmd.commands) visit(sub);
  };
  visit(program);
  const saved = new Map([...names].map(n => [n, process.env[n]]));
  const put = (values: (name: string) => string | undefined) => {
    for (const n of names) {
      const v = values(n);
      if (v === undefined) delete process.env[n];
      else process.env[n] = v;
    }
  };
  put(n => env[n]);
  try {
    return program.parseAsync(argv, { from: 'user' });
  } finally {
    put(n => saved.get(n));
  }
}
