import { loadConfig, ConfigError } from './config.js';
import { createLogger } from './logger.js';
import { startEmbeddedPostgres, type EmbeddedDb } from './postgres.js';
import { startApp } from './app.js';

/** `inboxd` server entry: resolve config, start Postgres if needed, serve, drain on SIGTERM/SIGINT. */
async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig(process.argv.slice(2), process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`inboxd: bad configuration: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const log = createLogger(config.logLevel);
  let embedded: EmbeddedDb | undefined;
  if (!config.databaseUrl) {
    embedded = await startEmbeddedPostgres(config.dataDir, config.embeddedPgPort, log);
    config.databaseUrl = embedded.url;
  }
  const app = await startApp(config, log);
  log.info({ address: app.address, database: embedded ? `embedded (${config.dataDir})` : 'DATABASE_URL' }, `inboxd listening on ${app.address}`);

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'draining');
    try {
      await app.stop();
      await embedded?.stop();
      log.info('stopped');
      process.exit(0);
    } catch (err) {
      log.error({ err }, 'shutdown failed');
      process.exit(1);
    }
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}

main().catch(err => {
  process.stderr.write(`inboxd: failed to start: ${err?.stack ?? err}\n`);
  process.exit(1);
});
