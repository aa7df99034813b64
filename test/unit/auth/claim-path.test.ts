/**
 * Claim paths: the syntax (bare segments, brackets with quotes, escapes), the
 * errors a config author sees, and the walk (whole name first, own
 * properties of plain objects only).
 */
import { describe, expect, it } from 'vitest';
import { claimAt, compileClaimPath, parseClaimPath } from '../../../src/auth/claim-path.js';

const segments = (path: string) => {
  const parsed = parseClaimPath(path);
  if (!parsed.ok) throw new Error(parsed.error);
  return parsed.path.segments;
};
const error = (path: string) => {
  const parsed = parseClaimPath(path);
  return parsed.ok ? null : parsed.error;
};

describe('parseClaimPath: valid syntax', () => {
  it.each([
    ['tid', ['tid']],
    ['org.id', ['org', 'id']],
    ['realm_access.roles', ['realm_access', 'roles']],
    ['resource_access.orders-api.roles', ['resource_access', 'orders-api', 'roles']],
    ['resource_access["api.example.com"].roles', ['resource_access', 'api.example.com', 'roles']],
    ["resource_access['api.example.com'].roles", ['resource_access', 'api.example.com', 'roles']],
    ['["https://example.com/app_metadata"].tenant', ['https://example.com/app_metadata', 'tenant']],
    ['a["b.c"]["d.e"]', ['a', 'b.c', 'd.e']],
    ['a["b"].c', ['a', 'b', 'c']],
    ['cognito:groups', ['cognito:groups']],
    ['custom:tenant_id', ['custom:tenant_id']],
    ['https://example.com/tenant', ['https://example', 'com/tenant']],
    ['a["say \\"hi\\""]', ['a', 'say "hi"']],
    ["a['it\\'s']", ['a', "it's"]],
    ['a["back\\\\slash"]', ['a', 'back\\slash']],
    ['a["[not].a.path"]', ['a', '[not].a.path']],
  ])('%s', (path, expected) => {
    expect(segments(path)).toEqual(expected);
  });
});

describe('parseClaimPath: invalid syntax names the position', () => {
  it.each([
    ['', /non-empty/],
    ['.a', /position 1: expected a claim name \(empty segment\)/],
    ['a.', /ends with "\."/],
    ['a..b', /position 3: expected a claim name \(empty segment\)/],
    ['a[b]', /position 2: expected a quote after "\["/],
    ['a["b"', /expected "\]" after the closing quote/],
    ['a["b', /unterminated quote/],
    ['a["b\']', /unterminated quote/],
    ['a[""]', /empty segment/],
    ['a["b"]c', /expected "\." or "\[" after a segment, got "c"/],
    ['a]', /expected "\." or "\[" after a segment, got "\]"/],
    ['a"b', /expected "\." or "\[" after a segment/],
    ['a["b\\n"]', /only \\", \\' and \\\\ may be escaped/],
    ['a.[', /expected a quote/],
  ])('%j', (path, message) => {
    expect(error(path)).toMatch(message);
  });

  it('compileClaimPath throws with the path in the message', () => {
    expect(() => compileClaimPath('a..b')).toThrow(/claim path "a\.\.b": position 3/);
  });
});

describe('claimAt', () => {
  const payload = JSON.parse(
    JSON.stringify({
      tid: 'acme',
      'https://example.com/tenant': 'initech',
      'https://example.com/app_metadata': { tenant: 'globex', roles: ['admin'] },
      resource_access: { 'api.example.com': { roles: ['reader'] }, 'orders-api': { roles: ['writer'] } },
      org: { id: 'wayne', list: ['a', 'b'] },
      'org.id': 'whole-name-wins',
    }),
  ) as Record<string, unknown>;

  it.each([
    ['tid', 'acme'],
    ['https://example.com/tenant', 'initech'],
    ['["https://example.com/app_metadata"].tenant', 'globex'],
    ['resource_access["api.example.com"].roles', ['reader']],
    ['resource_access.orders-api.roles', ['writer']],
    ['org.id', 'whole-name-wins'],
    ['org.list', ['a', 'b']],
    ['org.missing', undefined],
    ['tid.length', undefined],
    ['org.list.length', undefined],
    ['org.list.0', undefined],
  ])('%s', (path, expected) => {
    expect(claimAt(payload, compileClaimPath(path))).toEqual(expected);
    expect(claimAt(payload, path)).toEqual(expected);
  });

  it('never resolves an inherited property (__proto__, constructor, toString)', () => {
    for (const path of ['__proto__', 'constructor', 'toString', 'org.constructor', 'org.__proto__', 'org.hasOwnProperty', '["__proto__"].polluted']) {
      expect(claimAt(payload, path)).toBeUndefined();
    }
  });

  it('an own "__proto__" claim (JSON.parse makes it an own property) resolves as what the token said', () => {
    const hostile = JSON.parse('{"__proto__": {"tenant": "evil"}, "org": {"__proto__": "x"}}') as Record<string, unknown>;
    expect(claimAt(hostile, '__proto__.tenant')).toBe('evil');
    expect(claimAt(hostile, 'org.__proto__')).toBe('x');
    expect(({} as Record<string, unknown>).tenant).toBeUndefined();
  });
});
