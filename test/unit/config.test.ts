import { describe, it, expect } from 'vitest';
import { loadConfig, ConfigError, SETTINGS } from '../../server/config.js';

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
  });
});
