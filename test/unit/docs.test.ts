import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/servers.js';

/** The project carries its own reference: README and docs/ link only to files of this repository. */
describe('README and docs/ links', () => {
  const files = ['README.md', 'bench/README.md', 'bench/lab/README.md', ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];

  it.each(files)('%s links nowhere outside the repository', (file) => {
    const text = readFileSync(join(ROOT, file), 'utf8');
    for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      expect(target, `${file}: ${target}`).not.toMatch(/^[a-z][a-z0-9+.-]*:/i);
      const path = target.split('#')[0];
      if (path === '') continue;
      expect(relative(ROOT, resolve(dirname(join(ROOT, file)), path)), `${file}: ${target}`).not.toMatch(/^\.\./);
    }
  });
});
