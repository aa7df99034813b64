/**
 * `membershipsClaim` parsing (src/auth/memberships.ts): a list of ids, a map
 * id → roles (a list, or an object with `roles`; Keycloak 26's `organization`
 * map of alias → {id}), numeric ids, unusable items dropped and counted, the
 * item bound refusing the token.
 */
import { describe, expect, it } from 'vitest';
import { parseMemberships } from '../../../src/auth/memberships.js';

const parse = (value: unknown, max = 4) => {
  const r = parseMemberships(value, max);
  return r.ok ? { memberships: r.memberships === null ? null : Object.fromEntries(r.memberships), dropped: r.dropped } : r;
};

describe('shapes', () => {
  it('a list of ids: memberships with no roles of their own', () => {
    expect(parse(['acme', 'wayne'])).toEqual({ memberships: { acme: null, wayne: null }, dropped: 0 });
  });

  it('numeric ids become decimal strings; fractions, negatives and unsafe integers are dropped', () => {
    expect(parse([42, 0.5, -1, 2 ** 60])).toEqual({ memberships: { 42: null }, dropped: 3 });
  });

  it('a map of id → roles list, and of id → { roles: [...] }', () => {
    expect(parse({ acme: ['admin'], wayne: { roles: ['readonly'], name: 'Wayne' } })).toEqual({
      memberships: { acme: ['admin'], wayne: ['readonly'] },
      dropped: 0,
    });
  });

  it("Keycloak 26's organization claim (alias → {id}): members with the token's roles", () => {
    expect(parse({ acme: { id: '5f1c…' }, wayne: {} })).toEqual({ memberships: { acme: null, wayne: null }, dropped: 0 });
  });

  it('an empty roles list is "no roles here", not "the token\'s roles"', () => {
    expect(parse({ acme: [] })).toEqual({ memberships: { acme: [] }, dropped: 0 });
  });

  it('a single id string is one membership', () => {
    expect(parse('acme')).toEqual({ memberships: { acme: null }, dropped: 0 });
  });

  it('absent, null, an empty list or an empty map: no memberships', () => {
    for (const v of [undefined, null, [], {}]) expect(parse(v)).toEqual({ memberships: null, dropped: 0 });
  });
});

describe('unusable items are dropped and counted, not fatal', () => {
  it('ids that could name no tenant: spaces, CR/LF, non-ASCII, too long, a leading dot, non-strings', () => {
    const bad = ['acme corp', 'a\r\nX-Evil: 1', 'ünï', 'x'.repeat(129), '.hidden', { id: 'acme' }, true, null];
    expect(parse(['acme', ...bad], 16)).toEqual({ memberships: { acme: null }, dropped: bad.length });
  });

  it('map keys that could name no tenant, values of another shape, unsafe roles', () => {
    expect(parse({ 'a b': ['x'], '-x': [], acme: ['ok', 'has space', 7, 'ok'], wayne: 'admin', initech: { roles: 'admin' } }, 8)).toEqual({
      memberships: { acme: ['ok'] },
      dropped: 2 + 3 + 2, // two keys, three of acme's roles (a space, a number, a repeat), two values of another shape
    });
  });

  it('a map parsed from JSON with a "__proto__" key pollutes nothing', () => {
    const value = JSON.parse('{"__proto__": {"roles": ["owner"]}, "acme": ["member"]}');
    expect(parse(value)).toEqual({ memberships: { acme: ['member'] }, dropped: 1 });
    expect(({} as Record<string, unknown>).roles).toBeUndefined();
  });
});

describe('the bound', () => {
  it('more ids than maxItems refuses the token (unsafe_claim), as a list and as a map', () => {
    expect(parse(['a', 'b', 'c', 'd', 'e'])).toEqual({ ok: false, reason: 'unsafe_claim' });
    expect(parse({ a: [], b: [], c: [], d: [], e: [] })).toEqual({ ok: false, reason: 'unsafe_claim' });
  });

  it('more roles in one membership than maxItems refuses it too', () => {
    expect(parse({ acme: ['1', '2', '3', '4', '5'] })).toEqual({ ok: false, reason: 'unsafe_claim' });
  });

  it('exactly maxItems is accepted', () => {
    expect(parse(['a', 'b', 'c', 'd'])).toMatchObject({ dropped: 0 });
  });
});
