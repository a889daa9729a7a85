import { startApp } from './app.js';
import { type Config, ConfigError, loadConfig } from './config.js';
import { createLogger } from './logger.js';
import { type MetricsServer, startMetricsServer } from './metrics/http.js';
import { Metrics } from './metrics/metrics.js';
import { type EmbeddedDb, startEmbeddedPostgres } from './postgres.js';

/** Exit codes of the server process. */
export const SERVE_EXIT = { ok: 0, failed: 1, badConfig: 2 } as const;

/**
 * The inboxd server: resolve the configuration from `argv` (flags) and `env`, start Postgres if
 * needed, serve gRPC and the metrics endpoint, drain on SIGTERM/SIGINT and exit. A bad setting
 * exits 2 naming it; a failure to start exits 1.
 */
export async function serve(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<void> {
  let config: Config;
  try {
    config = loadConfig(argv, env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`inboxd: bad configuration: ${err.message}\n`);
      process.exit(SERVE_EXIT.badConfig);
    }
    throw err;
  }
  const log = createLogger(config.logLevel, config.logFormat);
  let embedded: EmbeddedDb | undefined;
  let metricsServer: MetricsServer | undefined;
  try {
    if (!config.databaseUrl) {
      embedded = await startEmbeddedPostgres(config.dataDir, config.embeddedPgPort, log);
      config.databaseUrl = embedded.url;
    }
    const metrics = new Metrics({ processMetrics: true });
    // The drain's deadline covers the whole stop: with an embedded Postgres, its own fast shutdown
    // (a checkpoint) gets the last part of it.
    const pgStopReserveMs = embedded ? Math.min(1000, Math.floor(config.shutdownTimeoutMs / 4)) : 0;
    const app = await startApp({ ...config, shutdownTimeoutMs: config.shutdownTimeoutMs - pgStopReserveMs }, log, metrics);
    if (config.metricsPort !== null) {
      try {
        metricsServer = await startMetricsServer(metrics, config.metricsHost, config.metricsPort, log);
      } catch (err) {
        await app.stop().catch(() => {});
        throw new Error(
          `the metrics endpoint cannot listen on ${config.metricsHost}:${config.metricsPort} (${(err as Error).message}): ` +
            'set INBOXD_METRICS_PORT / --metrics-port to a free port, 0 for any, or off',
        );
      }
      log.info({ metrics: metricsServer.url }, `metrics on ${metricsServer.url}`);
    }
    let stopping = false;
    const shutdown = async (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info({ signal }, 'draining');
      try {
        await app.stop();
        await metricsServer?.close();
        await embedded?.stop();
        log.info('stopped');
        process.exit(SERVE_EXIT.ok);
      } catch (err) {
        log.error({ err }, 'shutdown failed');
        process.exit(SERVE_EXIT.failed);
      }
    };
    process.on('SIGTERM', () => void shutdown('SIGTERM'));
    process.on('SIGINT', () => void shutdown('SIGINT'));
    // Announced only once a SIGTERM is handled: a supervisor stopping the server the moment it is up gets a drain, not a kill.
    log.info(
      { address: app.address, metrics: metricsServer?.url, database: embedded ? `embedded (${config.dataDir})` : 'DATABASE_URL' },
      `inboxd listening on ${app.address}`,
    );
  } catch (err) {
    log.fatal({ err }, 'failed to start');
    await embedded?.stop().catch(() => {});
    process.stderr.write(`inboxd: failed to start: ${(err as Error | undefined)?.message || String(err ?? 'no reason given')}\n`);
    process.exit(SERVE_EXIT.failed);
  }
}
