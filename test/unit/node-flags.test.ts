/**
 * The server's Node flags (server/node-flags.ts) are on every command line that starts it: they
 * size V8's heap, read only when the process starts, so a launcher without them runs a server that
 * holds a third more memory with 10,000 idle streams.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SERVER_NODE_FLAGS } from '../../server/node-flags.js';

const read = (f: string) => fs.readFileSync(new URL(`../../${f}`, import.meta.url), 'utf8');
const flags = SERVER_NODE_FLAGS.join(' ');

describe("the server's Node flags", () => {
  // `npm start` and the Docker image's CMD: test/compose.test.ts (the CMD is what npm start runs).
  it("are on the inboxd bin's shebang (npx inboxd serve, a global install)", () => {
    expect(read('cli/main.ts').split('\n')[0]).toBe(`#!/usr/bin/env -S node ${flags}`);
  });

  it("are on the benchmarks' and the chaos suite's server processes", () => {
    expect(read('bench/lib/server-process.ts')).toContain('SERVER_NODE_FLAGS');
    expect(read('bench/chaos/server.ts')).toMatch(/spawn\(process\.execPath, \[\.\.\.SERVER_NODE_FLAGS, MAIN\]/);
  });

  it('are taken by this Node and cap the young generation at two semi-spaces of 16 MiB', () => {
    const out = spawnSync(
      process.execPath,
      [
        ...SERVER_NODE_FLAGS,
        '-e',
        `const v8 = require('v8'); const keep = []; for (let r = 0; r < 100; r++) { const t = []; for (let i = 0; i < 1e5; i++) t.push({ i }); keep.push(t[0]); } console.log(v8.getHeapSpaceStatistics().find(s => s.space_name === 'new_space').space_size)`,
      ],
      { encoding: 'utf8' },
    );
    expect(out.stderr).toBe('');
    expect(Number(out.stdout)).toBeGreaterThan(0);
    expect(Number(out.stdout)).toBeLessThanOrEqual(2 * 16 * 2 ** 20);
  });
});
