/**
 * Stage 5 — authorize. The route's permission for this method (or its
 * any-method permission) must be granted: for an API key by its scopes, for
 * a JWT by its scopes claim or by a role mapped in `roles:`; a scope also
 * grants what `scopes:` maps it to. Grants may use wildcards (`orders:*`,
 * `*`). Missing → 403 `forbidden`. A JWT's roles are those of the active
 * tenant: for a member of several tenants, the resolve-tenant stage put the
 * principal acting for it on the context. Compiled grants are
 * memoised per scopes/roles array, which the key record or the verified-token
 * cache keeps stable, so a warm caller compiles nothing.
 */
import { grants, grantsForScopes, mergeGrants, NO_GRANTS, type Grants, type ScopeTable } from '../auth/permissions.js';
import type { RequestContext } from '../context.js';
import { reject, type Rejection } from '../errors.js';

const FORBIDDEN = reject('forbidden', 'missing_permission');
/** Scope grants depend on the config's `scopes:` too, so the memo remembers which table it was built from. */
const scopeGrants = new WeakMap<readonly string[], { table: ScopeTable; grants: Grants }>();
/** Role grants depend on the config's `roles:` too, so the memo remembers which config it was built from. */
const roleGrants = new WeakMap<readonly string[], { table: ReadonlyMap<string, Grants>; grants: Grants }>();

export function authorize(ctx: RequestContext): Rejection | undefined {
  const principal = ctx.principal;
  if (principal === null) return undefined;
  const perms = ctx.route!.permission;
  if (perms.size === 0) return undefined;
  const needed = perms.get(ctx.req.method!) ?? perms.get('*');
  if (needed === undefined) return undefined;

  const scopeTable = ctx.config.scopeGrants;
  let fromScopes = scopeGrants.get(principal.scopes);
  if (fromScopes === undefined || fromScopes.table !== scopeTable) {
    fromScopes = { table: scopeTable, grants: grantsForScopes(principal.scopes, scopeTable) };
    scopeGrants.set(principal.scopes, fromScopes);
  }
  if (grants(fromScopes.grants, needed)) return undefined;
  if (principal.kind !== 'jwt' || principal.roles.length === 0) return FORBIDDEN;

  const table = ctx.config.roleGrants;
  let fromRoles = roleGrants.get(principal.roles);
  if (fromRoles === undefined || fromRoles.table !== table) {
    fromRoles = { table, grants: mergeGrants(principal.roles.map((r) => table.get(r) ?? NO_GRANTS)) };
    roleGrants.set(principal.roles, fromRoles);
  }
  return grants(fromRoles.grants, needed) ? undefined : FORBIDDEN;
}
