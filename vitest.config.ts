import os from 'node:os';
import path from 'node:path';
import { defineConfig } from 'vitest/config';

// Node caches the code it compiles for every process of the run (workers, and the servers and CLIs
// the tests spawn): a process that loads the same modules again starts with less work.
process.env.NODE_COMPILE_CACHE ??= path.join(os.tmpdir(), 'inboxd-test-compile-cache');

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Three: the longest files mostly wait (outages, leases, restarts) while others work; on two
    // cores, 3 measured 80 s, 2 about 100 s, 4 about 90 s (CPU fought over).
    maxWorkers: 3,
    // A worker runs test file after test file in one process, modules loaded once: no test file
    // changes process-wide state (environment, mocks), and each stops what it started.
    isolate: false,
  },
});
