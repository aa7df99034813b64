/**
 * Admin tokens (src/admin/tokens.ts): which token a bearer header presents,
 * for `admin.token` and for hashed `admin.tokens` of both hash formats, and
 * the hash recipes docs/admin-api.md gives, run as printed.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { hashApiKey } from '../../../src/auth/api-key-format.js';
import { ADMIN_SCOPES, identifyAdmin, type AdminTokenSettings } from '../../../src/admin/tokens.js';
import { configProblems } from '../../helpers/config-problems.js';
import { ROOT } from '../../helpers/servers.js';

const PEPPER = 'a-pepper-for-the-admin-token-tests';
const settings = (over: Partial<AdminTokenSettings> = {}): AdminTokenSettings => ({
  token: null,
  tokens: [
    { id: 'ci', hash: hashApiKey('ci-token-0123456789'), scopes: ['tenants:read', 'keys:write'] },
    { id: 'billing', hash: hashApiKey('billing-token-0123456789', PEPPER), scopes: ['usage:read'] },
  ],
  ...over,
});

describe('identifyAdmin', () => {
  it('finds a hashed token by what it hashes to, with its id and scopes', () => {
    expect(identifyAdmin('Bearer ci-token-0123456789', settings(), null)).toEqual({ id: 'ci', scopes: ['tenants:read', 'keys:write'] });
    expect(identifyAdmin('bearer   ci-token-0123456789', settings(), PEPPER)?.id).toBe('ci');
  });

  it('matches a peppered hash only when the proxy has that pepper', () => {
    expect(identifyAdmin('Bearer billing-token-0123456789', settings(), PEPPER)?.id).toBe('billing');
    expect(identifyAdmin('Bearer billing-token-0123456789', settings(), null)).toBeNull();
    expect(identifyAdmin('Bearer billing-token-0123456789', settings(), 'another-pepper-entirely')).toBeNull();
  });

  it('admin.token is the all-scopes token "admin", beside the hashed ones', () => {
    const both = settings({ token: 'the-shorthand-token-0123' });
    expect(identifyAdmin('Bearer the-shorthand-token-0123', both, null)).toEqual({ id: 'admin', scopes: ADMIN_SCOPES });
    expect(identifyAdmin('Bearer ci-token-0123456789', both, null)?.id).toBe('ci');
  });

  it.each([
    ['no header', undefined],
    ['another scheme', 'Basic ci-token-0123456789'],
    ['no token', 'Bearer '],
    ['a wrong token', 'Bearer ci-token-0123456780'],
    ['the hash instead of the token', `Bearer ${hashApiKey('ci-token-0123456789')}`],
    ['a prefix of the token', 'Bearer ci-token'],
  ])('%s is nobody', (_name, header) => {
    expect(identifyAdmin(header, settings({ token: 'the-shorthand-token-0123' }), PEPPER)).toBeNull();
  });
});

describe('the hash recipes in docs/admin-api.md', () => {
  const doc = readFileSync(join(ROOT, 'docs/admin-api.md'), 'utf8');
  const recipes = [...doc.matchAll(/```sh admin-token-hash\n([\s\S]*?)```/g)].map((m) => m[1]!);
  const token = 'f3a1c9e07b5d42e88c016a9d3b7e2f4150c8d96ab3e71f2d0c4b85a6e9d13f72';
  /** Runs a recipe with bash; the first one makes its own $TOKEN, so it is given a fixed one instead. */
  const run = (script: string, env: NodeJS.ProcessEnv) =>
    execFileSync('bash', ['-ec', script.replace(/^TOKEN=.*$/m, '')], { env: { PATH: process.env.PATH, TOKEN: token, ...env }, encoding: 'utf8' }).trim();

  it('there are two: with Node, and with openssl alone', () => {
    expect(recipes).toHaveLength(2);
    expect(recipes[0]).toMatch(/^TOKEN=\$\(openssl rand -hex 32\)$/m);
  });

  it.each([0, 1])('recipe %i prints the sha256 hash the proxy accepts, in the config and at the door', (i) => {
    const hash = run(recipes[i]!, {});
    expect(hash).toBe(hashApiKey(token));
    expect(configProblems(`admin: { tokens: [{ id: ops, hash: "${hash}", scopes: [keys:read] }] }\nroutes: [{ name: r, match: { pathPrefix: / }, upstream: "http://127.0.0.1:1", auth: [none] }]`)).toEqual([]);
    expect(identifyAdmin(`Bearer ${token}`, { token: null, tokens: [{ id: 'ops', hash, scopes: ['keys:read'] }] }, null)?.id).toBe('ops');
  });

  it('the Node recipe prints the peppered hash when TENANTGATE_KEY_PEPPER is set', () => {
    const hash = run(recipes[0]!, { TENANTGATE_KEY_PEPPER: PEPPER });
    expect(hash).toMatch(/^hmac-sha256:[A-Za-z0-9_-]{43}$/);
    expect(identifyAdmin(`Bearer ${token}`, { token: null, tokens: [{ id: 'ops', hash, scopes: ['keys:read'] }] }, PEPPER)?.id).toBe('ops');
  });

  it('the token it makes is 64 hex characters (256 bits)', () => {
    const made = execFileSync('bash', ['-ec', `${recipes[0]!.split('\n')[0]!}\nprintf %s "$TOKEN"`], { encoding: 'utf8' });
    expect(made).toMatch(/^[0-9a-f]{64}$/);
  });
});
