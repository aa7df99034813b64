/**
 * A config over POSITIONS_MAX_CHARS with problems is not read again with
 * positions (src/config/load.ts): its problems come from the fast reader —
 * the same paths and messages as the full path finds, without lines, and a
 * last line saying how to get them — unless positions: 'always' (the
 * validate command) asks for the full path; YAML the fast reader declines
 * still goes to the full path.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { generateApiKey } from '../../../src/auth/api-key-format.js';
import { ConfigError, loadConfig, parseConfig, parseFull, POSITIONS_MAX_CHARS, type ConfigProblem } from '../../../src/config/load.js';
import { MAIN, writeConfig } from '../../helpers/servers.js';

/** A config of `keys` API keys (one flow map per line) over POSITIONS_MAX_CHARS; `edit` changes its text. */
function bigConfig(edit: (yaml: string) => string = (y) => y): string {
  const lines = ['plans: { open: {} }', 'tenants:', '  - { id: acme, plan: open }', '  - { id: globex, plan: open }', 'apiKeys:'];
  const { hash } = generateApiKey({ env: 'live', id: 'ak_big' });
  let chars = 0;
  for (let i = 0; chars < POSITIONS_MAX_CHARS + 10_000; i++) {
    const line = `  - { id: ak_b${String(i).padStart(6, '0')}, tenant: ${i % 2 ? 'acme' : 'globex'}, hash: "${hash}", scopes: [orders:read] }`;
    lines.push(line);
    chars += line.length + 1;
  }
  lines.push('routes:', '  - { name: api, match: { pathPrefix: / }, upstream: http://127.0.0.1:3000 }');
  return edit(`${lines.join('\n')}\n`);
}

function problemsOf(fn: () => unknown): ConfigProblem[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error('unexpectedly valid');
}

const withoutLines = (problems: ConfigProblem[]) => problems.map((p) => `${p.path}: ${p.message}`).sort();

const BROKEN = (yaml: string) =>
  yaml
    .replace('plans: { open: {} }', 'store: { redis: "${TG_TEST_UNSET_BIG}" }\nplans: { open: {} }')
    .replace('{ id: ak_b000007, tenant: acme,', '{ id: ak_b000007, tenantt: acme,')
    .replace('{ id: ak_b000100, tenant: globex,', '{ id: ak_b000100, tenant: nobody,')
    .replace('{ id: ak_b005000, tenant: globex, hash: "', '{ id: ak_b005000, tenant: globex, env: "${TG_TEST_UNSET_ENV}", hash: "')
    .replace('{ id: ak_b005001,', '{ id: ak_b000003,');

describe(`a config over ${POSITIONS_MAX_CHARS} characters with problems`, () => {
  const text = bigConfig(BROKEN);

  it("reports the full path's problems, by path, without lines, and how to get the lines", () => {
    const bounded = problemsOf(() => parseConfig(text, 'big.yaml', {}));
    const full = problemsOf(() => parseFull(text, 'big.yaml', {}));
    expect(bounded.every((p) => p.line === undefined)).toBe(true);
    expect(full.every((p) => p.line !== undefined)).toBe(true);
    const note = bounded.at(-1)!;
    expect(note.path).toBe('');
    expect(note.message).toMatch(/^lines left out: at 1\.0 MB, reading the file again with positions would take ~\d+ MB of memory; `tenantgate validate -c big\.yaml` prints them$/);
    expect(withoutLines(bounded.slice(0, -1))).toEqual(withoutLines(full));
    // What the edits broke, each found once.
    expect(withoutLines(bounded.slice(0, -1))).toEqual(
      [
        'store.redis: environment variable TG_TEST_UNSET_BIG is not set (use ${NAME:-default} for an optional value)',
        'apiKeys[7].tenant: is required (string)',
        'apiKeys[7].tenantt: unknown key "tenantt"',
        'apiKeys[100].tenant: unknown tenant "nobody"',
        'apiKeys[5000].env: environment variable TG_TEST_UNSET_ENV is not set (use ${NAME:-default} for an optional value)',
        'apiKeys[5001].id: duplicate API key id "ak_b000003"',
      ].sort(),
    );
  });

  it("positions: 'always' (tenantgate validate) gives every problem its line", () => {
    const always = problemsOf(() => parseConfig(text, 'big.yaml', {}, undefined, { positions: 'always' }));
    expect(always).toEqual(problemsOf(() => parseFull(text, 'big.yaml', {})));
    expect(always.find((p) => p.path === 'apiKeys[7].tenantt')!.line).toBe(14); // the added store line, five header lines, then item 7
  });

  it('loadConfig (what serve and a reload use) leaves the lines out; `tenantgate validate` prints them', async () => {
    const file = writeConfig(text);
    const loaded = await loadConfig(file, {}).then(
      () => [],
      (err: ConfigError) => err.problems,
    );
    const typo = loaded.find((p) => p.path === 'apiKeys[7].tenantt')!;
    expect(typo.message).toBe('unknown key "tenantt"');
    expect(typo.line).toBeUndefined();
    const validate = await promisify(execFile)(process.execPath, [MAIN, 'validate', '-c', file], { env: { PATH: process.env.PATH } }).then(
      () => '',
      (err: { code: number; stderr: string }) => `${err.code}\n${err.stderr}`,
    );
    expect(validate).toMatch(/^1\n/);
    expect(validate).toContain(`${file}:14 apiKeys[7].tenantt: unknown key "tenantt"`);
  });

  it('YAML the fast reader declines (an anchor) still goes to the full path, with lines', () => {
    const anchored = bigConfig((y) => BROKEN(y).replace('  - { id: acme, plan: open }', '  - &t { id: acme, plan: open }'));
    const problems = problemsOf(() => parseConfig(anchored, 'big.yaml', {}));
    expect(problems.every((p) => p.line !== undefined)).toBe(true);
    expect(problems.map((p) => p.path)).toContain('apiKeys[7].tenantt');
  });

  it('a valid big config loads (the fast path), and its environment variables are substituted', () => {
    const config = parseConfig(bigConfig((y) => y.replace('plans: { open: {} }', 'store: { keyPrefix: "${TG_TEST_BIG_PREFIX}" }\nplans: { open: {} }')), 'big.yaml', { TG_TEST_BIG_PREFIX: 'big:' });
    expect(config.source.store.keyPrefix).toBe('big:');
    expect(config.source.apiKeys.length).toBeGreaterThan(5000);
  });
});
