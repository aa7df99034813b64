/**
 * Grants from scopes with the `scopes:` map (SPEC §10): a scope grants its
 * own name and what the map gives it; wildcards in the map work as in `roles:`.
 */
import { describe, expect, it } from 'vitest';
import { grants, grantsForScopes } from '../../../src/auth/permissions.js';

const table = new Map<string, readonly string[]>([
  ['orders.read', ['orders:read']],
  ['api://orders/Orders.Manage', ['orders:*']],
  ['everything', ['*']],
]);

describe('grantsForScopes', () => {
  it('a mapped scope grants its permissions and still its own name', () => {
    const g = grantsForScopes(['orders.read'], table);
    expect(grants(g, 'orders:read')).toBe(true);
    expect(grants(g, 'orders.read')).toBe(true);
    expect(grants(g, 'orders:write')).toBe(false);
  });

  it('wildcards in the map: namespace and everything', () => {
    const g = grantsForScopes(['api://orders/Orders.Manage'], table);
    expect(grants(g, 'orders:refunds:write')).toBe(true);
    expect(grants(g, 'users:manage')).toBe(false);
    expect(grants(grantsForScopes(['everything'], table), 'users:manage')).toBe(true);
  });

  it('an unmapped scope grants only its own name; an empty table changes nothing', () => {
    expect(grants(grantsForScopes(['orders:write'], table), 'orders:write')).toBe(true);
    expect(grants(grantsForScopes(['orders:write'], table), 'orders:read')).toBe(false);
    expect(grants(grantsForScopes(['orders.read'], new Map()), 'orders:read')).toBe(false);
  });

  it('a map key is matched exactly: no prefix, case or inherited-name match', () => {
    for (const scope of ['orders.reader', 'ORDERS.READ', 'constructor', '__proto__', 'toString']) {
      expect(grants(grantsForScopes([scope], table), 'orders:read')).toBe(false);
    }
  });
});
