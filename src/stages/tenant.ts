/**
 * Stage 4 — resolve tenant: which tenant the request acts for (SPEC §1, §10).
 *
 * - The credential may act for its own tenant (the API key's, the token's
 *   `tenantClaim`) and, for a token, its memberships (`membershipsClaim`).
 * - With `tenancy.select`, the request may name one of those (path, host,
 *   header; ./tenant-select.ts). Selectors that name different tenants, or a
 *   tenant the credential may not act for → 403 `cross_tenant`: never a
 *   silent switch. Nothing named: the credential's tenant, or its only
 *   membership; several memberships and no tenant → 400 `tenant_required`.
 * - Without `host` among the selectors, a Host bound to a tenant
 *   (`tenants[].hosts`) only admits that tenant: anything else is 403 `cross_tenant`.
 * - A route's `tenantIn` ids (path segment, query values) must be the active
 *   tenant (./tenant-in-url.ts); a missing query parameter is appended.
 * - Unknown tenant → 403 `unknown_tenant`; suspended → 403 `tenant_suspended`.
 *
 * The context's principal then acts for the active tenant (its id, and its
 * roles there when the membership names roles), so every later stage —
 * authorize, limit, the headers, the usage event — reads one tenant. Refusals
 * leave the credential's principal in place: the account stage counts a
 * cross-tenant attempt by the credential's tenant. Public routes (no
 * principal) skip this stage.
 */
import { hostTenant } from '../auth/tenants.js';
import type { RequestContext } from '../context.js';
import type { Principal } from '../domain.js';
import { reject, type Rejection } from '../errors.js';
import { checkTenantIn, recordRequested } from './tenant-in-url.js';
import { selectTenant } from './tenant-select.js';

const UNKNOWN = reject('unknown_tenant', 'unknown_tenant');
const CROSS = reject('cross_tenant', 'host_owned_by_other_tenant');
const NOT_A_MEMBER = reject('cross_tenant', 'not_a_member', 'The credential may not act for the tenant this request names.');
const SUSPENDED = reject('tenant_suspended', 'tenant_suspended');
const REQUIRED = reject('tenant_required', 'tenant_required');

export function resolveTenant(ctx: RequestContext): Rejection | undefined {
  const principal = ctx.principal;
  if (principal === null) return undefined;
  const tenancy = ctx.config.tenancy;
  const tenantIn = ctx.route!.tenantIn;
  // Neither selection nor tenant ids in the URL, and a credential of one tenant: the single-tenant path, allocation-free.
  if (tenancy === null && tenantIn === null && principal.memberships === null) return ownTenant(ctx, principal.tenantId!);

  let active: string | null;
  let selectsHost = false;
  if (tenancy !== null) {
    const named = selectTenant(ctx, tenancy);
    if (typeof named === 'object' && named !== null) return named;
    selectsHost = tenancy.select.includes('host');
    if (named !== null) {
      recordRequested(ctx, named);
      if (named !== principal.tenantId && principal.memberships?.has(named) !== true) return NOT_A_MEMBER;
    }
    active = named ?? defaultTenant(principal);
  } else active = defaultTenant(principal);
  if (active === null) return REQUIRED;

  const dir = ctx.config.tenants;
  if (!selectsHost) {
    const owner = hostTenant(dir, ctx.host);
    if (owner !== undefined && owner !== active) return CROSS;
  }
  const tenant = dir.byId.get(active);
  if (tenant === undefined) return UNKNOWN;
  if (tenantIn !== null) {
    const refused = checkTenantIn(ctx, tenantIn, active);
    if (refused !== undefined) return refused;
  }
  if (tenant.status === 'suspended') return SUSPENDED;
  ctx.tenant = tenant;
  ctx.principal = actingFor(principal, active);
  return undefined;
}

/** Today's rule for a credential of one tenant: its tenant, on a Host that is shared or its own. */
function ownTenant(ctx: RequestContext, tenantId: string): Rejection | undefined {
  const dir = ctx.config.tenants;
  const tenant = dir.byId.get(tenantId);
  if (tenant === undefined) return UNKNOWN;
  const owner = hostTenant(dir, ctx.host);
  if (owner !== undefined && owner !== tenant.id) return CROSS;
  if (tenant.status === 'suspended') return SUSPENDED;
  ctx.tenant = tenant;
  return undefined;
}

/** Nothing selected: the credential's own tenant, else its only membership; null when it has several. */
function defaultTenant(principal: Principal): string | null {
  if (principal.tenantId !== null) return principal.tenantId;
  const memberships = principal.memberships!;
  if (memberships.size !== 1) return null;
  return memberships.keys().next().value!;
}

/** Principals acting for another tenant than their credential's, or with that tenant's roles: one per (principal, tenant), so grant and assertion memos stay warm. */
const acting = new WeakMap<Principal, Map<string, Principal>>();

/** The principal as it acts for `tenantId`: that id, and the membership's roles when it names any. */
export function actingFor(principal: Principal, tenantId: string): Principal {
  const roles = principal.memberships?.get(tenantId) ?? null;
  if (tenantId === principal.tenantId && roles === null) return principal;
  let byTenant = acting.get(principal);
  if (byTenant === undefined) acting.set(principal, (byTenant = new Map()));
  let p = byTenant.get(tenantId);
  if (p === undefined) byTenant.set(tenantId, (p = Object.freeze({ ...principal, tenantId, roles: roles ?? principal.roles })));
  return p;
}
