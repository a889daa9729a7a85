import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, SETTINGS } from '../../server/config.js';

describe('configuration', () => {
  it('has a default for every setting', () => {
    const c = loadConfig([], {});
    expect(c.host).toBe('127.0.0.1');
    expect(c.port).toBe(50051);
    expect(c.autoCreateQueues).toBe(false);
    for (const s of SETTINGS) expect(c[s.key], s.flag).not.toBeUndefined();
  });

  it('takes flags over environment over defaults', () => {
    expect(loadConfig([], { INBOXD_PORT: '6000' }).port).toBe(6000);
    expect(loadConfig(['--port', '7000'], { INBOXD_PORT: '6000' }).port).toBe(7000);
    expect(loadConfig([], { INBOXD_AUTO_CREATE_QUEUES: 'true' }).autoCreateQueues).toBe(true);
    expect(loadConfig([], { DATABASE_URL: 'postgres://x/y' }).databaseUrl).toBe('postgres://x/y');
  });

  it('refuses a bad value naming the setting', () => {
    expect(() => loadConfig([], { INBOXD_PORT: 'abc' })).toThrow(ConfigError);
    expect(() => loadConfig([], { INBOXD_PORT: 'abc' })).toThrow(/INBOXD_PORT.*integer from 0 to 65535/);
    expect(() => loadConfig(['--max-message-bytes', '0'], {})).toThrow(/--max-message-bytes/);
    expect(() => loadConfig([], { INBOXD_AUTO_CREATE_QUEUES: 'maybe' })).toThrow(/INBOXD_AUTO_CREATE_QUEUES.*boolean/);
    expect(() => loadConfig([], { INBOXD_LOG_LEVEL: 'loud' })).toThrow(/INBOXD_LOG_LEVEL/);
    expect(() => loadConfig(['--no-such-flag', '1'], {})).toThrow(/no-such-flag/);
    expect(() => loadConfig([], { INBOXD_METRICS_PORT: '-1' })).toThrow(/INBOXD_METRICS_PORT.*"-1" must be an integer from 0 to 65535, or off/);
    expect(() => loadConfig(['--log-format', 'xml'], {})).toThrow(/--log-format.*"xml" is not one of auto, json, pretty/);
  });

  it('resolves the metrics endpoint: a port, 0, or off; its host defaults to the gRPC host', () => {
    expect(loadConfig([], {})).toMatchObject({ metricsPort: 9464, metricsHost: '127.0.0.1', logFormat: 'auto' });
    expect(loadConfig(['--metrics-port', 'off'], {}).metricsPort).toBeNull();
    expect(loadConfig([], { INBOXD_METRICS_PORT: 'OFF' }).metricsPort).toBeNull();
    expect(loadConfig([], { INBOXD_METRICS_PORT: '0' }).metricsPort).toBe(0);
    expect(loadConfig(['--host', '0.0.0.0'], {}).metricsHost).toBe('0.0.0.0');
    expect(loadConfig(['--host', '0.0.0.0', '--metrics-host', '127.0.0.1'], {}).metricsHost).toBe('127.0.0.1');
    expect(loadConfig([], { INBOXD_LOG_FORMAT: 'pretty' }).logFormat).toBe('pretty');
  });
});
