/**
 * The inboxd command line as a commander program, built without running it: cli/main.ts parses
 * process.argv with it, scripts/gen-docs.mjs renders docs/cli.md from it.
 */
import { Command } from 'commander';
import { auditCommand } from './commands/audit.js';
import { dlqCommand } from './commands/dlq.js';
import { grantsCommand } from './commands/grants.js';
import { healthCommand } from './commands/health.js';
import { keysCommand } from './commands/keys.js';
import { messageCommands } from './commands/messages.js';
import { principalsCommand } from './commands/principals.js';
import { queuesCommand } from './commands/queues.js';
import { sendCommand } from './commands/send.js';
import { serveCommand } from './commands/serve.js';
import { tailCommand } from './commands/tail.js';
import { whoamiCommand } from './commands/whoami.js';
import { io } from './io.js';

/** Every command: errors thrown (not process.exit) so they map to our exit codes; help after a usage error; output through io(). */
function configure(cmd: Command): void {
  cmd
    .exitOverride()
    .showHelpAfterError('(add --help for usage)')
    .configureOutput({ writeOut: text => io().stdout.write(text), writeErr: text => io().stderr.write(text) });
  for (const sub of cmd.commands) configure(sub);
}

/** The `inboxd` program with every command (`version`: what --version prints); parsing it runs the command named. */
export function buildProgram(version: string): Command {
  const program = new Command('inboxd')
    .description('Durable inboxes for services and AI agents, over gRPC, on Postgres.')
    .version(version, '-V, --version')
    .addCommand(serveCommand())
    .addCommand(healthCommand())
    .addCommand(queuesCommand())
    .addCommand(sendCommand())
    .addHelpText(
      'after',
      `
Exit codes: 0 ok, 1 the server refused or failed, 2 bad usage (unknown flag, bad value),
3 server unavailable (down, not serving, timed out), 4 not found,
5 not allowed (no valid credential: pass --api-key / INBOXD_API_KEY; or no grant for it).

Credentials (every command that talks to a server): --api-key <key> (INBOXD_API_KEY);
TLS with --tls (system roots) or --tls-ca <file> (INBOXD_TLS_CA); a client certificate with
--tls-cert <file> --tls-key <file> (INBOXD_TLS_CERT, INBOXD_TLS_KEY).

Examples:
  inboxd serve --port 50051
  inboxd queues create jobs --max-attempts 3
  echo '{"task":"summarise"}' | inboxd send jobs --as json
  inboxd tail jobs --ack

Access (as an admin):
  inboxd principals create billing-agent
  KEY=$(inboxd keys create billing-agent --expires 90d)
  inboxd grants add billing-agent --queue 'billing.*' --verbs send,consume
  INBOXD_API_KEY=$KEY inboxd whoami
  inboxd audit --action denied`,
    );

  for (const cmd of [...messageCommands(), tailCommand(), dlqCommand(), whoamiCommand(), principalsCommand(), keysCommand(), grantsCommand(), auditCommand()]) {
    program.addCommand(cmd);
  }
  configure(program);
  return program;
}
