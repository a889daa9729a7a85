/**
 * The generated parts of docs/ (configuration, metrics, command line) match the code they are
 * generated from: each block is rendered here from the TypeScript sources, as `npm run docs`
 * renders it from dist/, and compared with the page. On a failure: `npm run docs`, then commit.
 */

import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { buildProgram } from '../../cli/program.js';
import { blocks, splice } from '../../scripts/gen-docs.mjs';
import { SETTINGS } from '../../server/config.js';
import { Metrics } from '../../server/metrics/metrics.js';

const read = (f: string) => fs.readFileSync(new URL(`../../${f}`, import.meta.url), 'utf8');
const generated = await blocks({ SETTINGS, Metrics, buildProgram });

describe('generated docs', () => {
  for (const block of generated) {
    it(`${block.file} is up to date with ${block.source} (else: npm run docs)`, () => {
      const page = read(block.file);
      expect(splice(page, block) === page, `${block.file} drifted from ${block.source}: run npm run docs and commit`).toBe(true);
    });
  }

  it('names every setting, metric and command', async () => {
    const [config, metrics, cli] = generated.map(b => b.text);
    for (const s of SETTINGS) expect(config).toContain(`| \`${s.env}\` | \`--${s.flag}\` |`);
    for (const m of new Metrics().registry.getMetricsAsArray()) expect(metrics).toContain(`| \`${m.name}\` |`);
    const names: string[] = [];
    const walk = (c: ReturnType<typeof buildProgram>, path: string[]) => {
      for (const sub of c.commands) {
        names.push([...path, sub.name()].join(' '));
        walk(sub, [...path, sub.name()]);
      }
    };
    walk(buildProgram('test'), ['inboxd']);
    expect(names.length).toBeGreaterThan(20);
    for (const n of names) expect(cli).toMatch(new RegExp(`### \`${n}( |\`)`));
  });

  it('splice refuses a page without markers', () => {
    expect(() => splice('# no markers\n', generated[0])).toThrow(/no generated block/);
  });
});
