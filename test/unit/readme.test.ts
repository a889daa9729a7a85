import { describe, it, expect } from 'vitest';
import fs from 'node:fs';
import { SETTINGS } from '../../server/config.js';

describe('README', () => {
  const readme = fs.readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

  it('lists every setting with its flag and default in the configuration table', () => {
    for (const s of SETTINGS) {
      const row = readme.split('\n').find(l => l.startsWith(`| \`${s.env}\` |`));
      expect(row, s.env).toBeDefined();
      expect(row).toContain(`\`--${s.flag}\``);
      expect(row).toContain(s.def === '' ? '(unset)' : `\`${s.def}\``);
    }
  });

  it('quick start has exactly the install+start and test commands', () => {
    const quick = readme.split('## Quick start')[1].split('##')[0];
    const block = /```sh\n([\s\S]*?)```/.exec(quick)![1].trim().split('\n');
    expect(block.map(l => l.split('#')[0].trim())).toEqual(['npm install && npm start', 'npm test']);
  });
});
