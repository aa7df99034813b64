/**
 * Stage 4 — resolve tenant. The tenant comes from the credential, never from
 * the request. A Host bound to a tenant (`tenants[].hosts`) only admits that
 * tenant's credentials: anything else is 403 `cross_tenant` (counted by the
 * account stage). Unknown tenant → 403 `unknown_tenant`; suspended → 403
 * `tenant_suspended`. Public routes (no principal) skip this stage.
 */
import { hostTenant } from '../auth/tenants.js';
import type { RequestContext } from '../context.js';
import { reject, type Rejection } from '../errors.js';

const UNKNOWN = reject('unknown_tenant', 'unknown_tenant');
const CROSS = reject('cross_tenant', 'host_owned_by_other_tenant');
const SUSPENDED = reject('tenant_suspended', 'tenant_suspended');

export function resolveTenant(ctx: RequestContext): Rejection | undefined {
  const principal = ctx.principal;
  if (principal === null) return undefined;
  const dir = ctx.config.tenants;
  const tenant = dir.byId.get(principal.tenantId);
  if (tenant === undefined) return UNKNOWN;
  const owner = hostTenant(dir, ctx.host);
  if (owner !== undefined && owner !== tenant.id) return CROSS;
  if (tenant.status === 'suspended') return SUSPENDED;
  ctx.tenant = tenant;
  return undefined;
}
