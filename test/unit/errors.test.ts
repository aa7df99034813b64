import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERRORS } from '../../src/errors.js';
import { ROOT } from '../helpers/servers.js';

describe('errors table', () => {
  const doc = readFileSync(join(ROOT, 'docs/errors.md'), 'utf8');

  it.each(Object.entries(ERRORS))('docs/errors.md lists %s with its status', (code, { status }) => {
    expect(doc).toMatch(new RegExp(`^\\| ${status} \\| \`${code}\` \\|`, 'm'));
  });

  it('docs/errors.md lists no code that src/errors.ts lacks', () => {
    const rows = [...doc.matchAll(/^\| (\d{3}) \| `([a-z_]+)` \|/gm)].map((m) => [m[2], Number(m[1])] as const);
    expect(rows.length).toBe(Object.keys(ERRORS).length);
    for (const [code, status] of rows) expect(ERRORS[code as keyof typeof ERRORS]?.status, code).toBe(status);
  });

  it('keeps every SPEC §4 code', () => {
    const spec = readFileSync(join(ROOT, '../shared/SPEC.md'), 'utf8');
    const specCodes = [...spec.matchAll(/\| (\d{3}) \| `([a-z_]+)` \|/g)].map((m) => [m[2], Number(m[1])]);
    expect(specCodes.length).toBeGreaterThan(10);
    for (const [code, status] of specCodes) expect(ERRORS[code as keyof typeof ERRORS]?.status, String(code)).toBe(status);
  });
});
