/**
 * A token's `membershipsClaim` → the tenants its subject may act for (SPEC
 * §10). Accepted shapes:
 *
 * - a list of tenant ids: `["acme", "wayne", 42]` (numbers as decimal strings);
 * - a map of tenant id → that tenant's roles: a list (`{"acme": ["admin"]}`),
 *   or an object with a `roles` list (`{"acme": {"roles": ["admin"]}}`).
 *   An object without `roles` (Keycloak 26's `organization` claim: alias →
 *   `{id}`), `true` or null is a membership with no roles of its own: the
 *   token's `rolesClaim` roles apply there.
 *
 * A tenant id that could not name a configured tenant, a role that is not a
 * header-safe token, or a value of another shape is dropped and counted, never
 * a reason to refuse the token. More than `maxItems` tenants (or roles in one
 * tenant) refuses it: the bound is what keeps a token's cost fixed.
 */
import type { Memberships } from '../domain.js';

/** The config's tenant id rule (src/config/schema.ts): anything else can never be a configured tenant. */
const TENANT_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
/** One role: printable ASCII without spaces (X-Roles joins them with spaces). */
const ROLE = /^[\x21-\x7e]{1,256}$/;

export type MembershipsResult =
  | { ok: true; memberships: Memberships | null; dropped: number }
  | { ok: false; reason: 'unsafe_claim' };

const TOO_MANY: MembershipsResult = Object.freeze({ ok: false, reason: 'unsafe_claim' });

/** A numeric id as its decimal string (a safe integer only: 1e21 or 0.5 names no tenant). */
function tenantIdOf(value: unknown): string | null {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 0 ? String(value) : null;
  return typeof value === 'string' && TENANT_ID.test(value) ? value : null;
}

/** Roles of one membership: a list, an object's `roles` list, or null (none of its own). undefined: unusable. */
function rolesOf(value: unknown, maxItems: number): { roles: readonly string[] | null; dropped: number } | undefined | 'too_many' {
  let list: unknown = value;
  if (value === null || value === true) return { roles: null, dropped: 0 };
  if (!Array.isArray(value)) {
    if (typeof value !== 'object') return undefined;
    if (!Object.hasOwn(value, 'roles')) return { roles: null, dropped: 0 };
    list = (value as Record<string, unknown>).roles;
    if (!Array.isArray(list)) return undefined;
  }
  const items = list as unknown[];
  if (items.length > maxItems) return 'too_many';
  const roles: string[] = [];
  for (const r of items) if (typeof r === 'string' && ROLE.test(r) && !roles.includes(r)) roles.push(r);
  return { roles: Object.freeze(roles), dropped: items.length - roles.length };
}

/** `value`: what the membershipsClaim path holds (undefined when absent). */
export function parseMemberships(value: unknown, maxItems: number): MembershipsResult {
  if (value === undefined || value === null) return { ok: true, memberships: null, dropped: 0 };
  const out = new Map<string, readonly string[] | null>();
  let dropped = 0;
  if (Array.isArray(value)) {
    if (value.length > maxItems) return TOO_MANY;
    for (const item of value) {
      const id = tenantIdOf(item);
      if (id === null) dropped++;
      else out.set(id, null);
    }
  } else if (typeof value === 'object') {
    const keys = Object.keys(value);
    if (keys.length > maxItems) return TOO_MANY;
    for (const key of keys) {
      const roles = tenantIdOf(key) === null ? undefined : rolesOf((value as Record<string, unknown>)[key], maxItems);
      if (roles === 'too_many') return TOO_MANY;
      if (roles === undefined) dropped++;
      else {
        out.set(key, roles.roles);
        dropped += roles.dropped;
      }
    }
  } else {
    const id = tenantIdOf(value);
    if (id === null) dropped++;
    else out.set(id, null);
  }
  return { ok: true, memberships: out.size === 0 ? null : out, dropped };
}
