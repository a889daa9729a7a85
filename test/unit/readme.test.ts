import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SETTINGS } from '../../server/config.js';

const read = (f: string) => fs.readFileSync(new URL(`../../${f}`, import.meta.url), 'utf8');

describe('README', () => {
  const readme = read('README.md');

  it('is a front door: at most 12 KB, the reference is in docs/', () => {
    expect(Buffer.byteLength(readme)).toBeLessThanOrEqual(12 * 1024);
  });

  it('quick start has exactly the install+start and test commands', () => {
    const quick = readme.split('## Quick start')[1].split('##')[0];
    const block = /```sh\n([\s\S]*?)```/.exec(quick)![1].trim().split('\n');
    expect(block.map(l => l.split('#')[0].trim())).toEqual(['npm install && npm start', 'npm test']);
  });

  it('links to every page of docs/, and every link to a page resolves', () => {
    const index = read('docs/README.md');
    for (const page of fs.readdirSync(new URL('../../docs', import.meta.url)).filter(f => f.endsWith('.md') && f !== 'README.md')) {
      expect(readme, page).toContain(`](docs/${page}`);
      expect(index, page).toContain(`](${page}`);
    }
    for (const [, target] of readme.matchAll(/\]\(((?:docs|sdk)\/[^)#]+|[A-Z]+\.md|LICENSE)(?:#[^)]*)?\)/g)) {
      expect(fs.existsSync(new URL(`../../${target}`, import.meta.url)), target).toBe(true);
    }
  });
});

describe('docs/configuration.md', () => {
  const page = read('docs/configuration.md');

  it('lists every setting with its flag and default in the configuration table', () => {
    for (const s of SETTINGS) {
      const row = page.split('\n').find(l => l.startsWith(`| \`${s.env}\` |`));
      expect(row, s.env).toBeDefined();
      expect(row).toContain(`\`--${s.flag}\``);
      expect(row).toContain(s.def === '' ? '(unset)' : `\`${s.def}\``);
    }
  });
});
