/**
 * `admin.tokens` in the config schema: what is accepted, and each mistake
 * reported with its YAML path (duplicate ids, the reserved id, unknown
 * scopes, malformed hashes, unknown fields).
 */
import { describe, expect, it } from 'vitest';
import { hashApiKey } from '../../../src/auth/api-key-format.js';
import { parseConfig } from '../../../src/config/load.js';
import { configProblems } from '../../helpers/config-problems.js';

const ROUTES = 'routes: [{ name: r, match: { pathPrefix: / }, upstream: "http://127.0.0.1:1", auth: [none] }]';
const H1 = hashApiKey('first-token-0123456789');
const H2 = hashApiKey('second-token-0123456789', 'pepper');
const withTokens = (tokens: string) => `admin:\n  tokens:\n${tokens}\n${ROUTES}`;

describe('admin.tokens', () => {
  it('accepts several tokens, both hash formats, beside admin.token or alone', () => {
    const yaml = withTokens(`    - { id: ci, hash: "${H1}", scopes: [tenants:read, keys:write] }\n    - { id: billing, hash: "${H2}", scopes: [usage:read] }`);
    expect(configProblems(yaml)).toEqual([]);
    const { source } = parseConfig(yaml, 'test.yaml', {});
    expect(source.admin.token).toBeNull();
    expect(source.admin.tokens).toEqual([
      { id: 'ci', hash: H1, scopes: ['tenants:read', 'keys:write'] },
      { id: 'billing', hash: H2, scopes: ['usage:read'] },
    ]);
    expect(configProblems(`admin:\n  token: shorthand-token-0123456789\n  tokens:\n    - { id: ci, hash: "${H1}", scopes: [keys:read] }\n${ROUTES}`)).toEqual([]);
    expect(parseConfig(ROUTES, 'test.yaml', {}).source.admin.tokens).toEqual([]);
  });

  it.each([
    ['a duplicate id', `    - { id: ci, hash: "${H1}", scopes: [keys:read] }\n    - { id: ci, hash: "${H2}", scopes: [keys:read] }`, 'admin.tokens[1].id: duplicate admin token id "ci"'],
    ['the id of admin.token', `    - { id: admin, hash: "${H1}", scopes: [keys:read] }`, 'admin.tokens[0].id: "admin" is the id of admin.token'],
    ['the same hash twice', `    - { id: a, hash: "${H1}", scopes: [keys:read] }\n    - { id: b, hash: "${H1}", scopes: [keys:read] }`, 'admin.tokens[1].hash: the same hash as another admin token'],
    ['an id that is not one', `    - { id: "no spaces", hash: "${H1}", scopes: [keys:read] }`, 'admin.tokens[0].id: must be 1-128 characters'],
  ])('refuses %s, naming where', (_name, tokens, expected) => {
    const problems = configProblems(withTokens(tokens));
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain(expected);
  });

  it.each([
    ['an unknown scope', `    - { id: ci, hash: "${H1}", scopes: [tenants:read, tenants:admin] }`, 'admin.tokens[0].scopes[1]'],
    ['a wildcard scope', `    - { id: ci, hash: "${H1}", scopes: ["*"] }`, 'admin.tokens[0].scopes[0]'],
    ['no scopes', `    - { id: ci, hash: "${H1}", scopes: [] }`, 'admin.tokens[0].scopes'],
    ['a plaintext token as the hash', '    - { id: ci, hash: "first-token-0123456789", scopes: [keys:read] }', 'admin.tokens[0].hash'],
    ['a hex digest (sha256sum)', `    - { id: ci, hash: "sha256:${'ab'.repeat(32)}", scopes: [keys:read] }`, 'admin.tokens[0].hash'],
    ['a truncated digest', `    - { id: ci, hash: "${H1.slice(0, -1)}", scopes: [keys:read] }`, 'admin.tokens[0].hash'],
    ['an unknown hash kind', `    - { id: ci, hash: "${H1.replace('sha256', 'md5')}", scopes: [keys:read] }`, 'admin.tokens[0].hash'],
    ['a missing hash', '    - { id: ci, scopes: [keys:read] }', 'admin.tokens[0].hash'],
    ['an unknown field', `    - { id: ci, hash: "${H1}", scopes: [keys:read], token: "first-token-0123456789" }`, 'admin.tokens[0].token'],
  ])('refuses %s at its path', (_name, tokens, path) => {
    const problems = configProblems(withTokens(tokens));
    expect(problems).toHaveLength(1);
    expect(problems[0]!.startsWith(`${path}: `), problems[0]).toBe(true);
  });

  it('a malformed hash is explained with the accepted format, and the value is not echoed', () => {
    const [problem] = configProblems(withTokens('    - { id: ci, hash: "first-token-0123456789", scopes: [keys:read] }'));
    expect(problem).toContain('"sha256:<digest>" or "hmac-sha256:<digest>"');
    expect(problem).not.toContain('first-token-0123456789');
  });
});
