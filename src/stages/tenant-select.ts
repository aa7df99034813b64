/**
 * `tenancy.select`: the tenant a request names (SPEC §10), selectors tried in
 * order — `path` (the route's `tenantIn.path` segment), `host` (`hostPattern`,
 * then `tenants[].hosts`), `header` (`tenancy.header`, captured by sanitize,
 * which strips it). The first that names a tenant wins; any two that name
 * different tenants are refused, as is one header sent twice with two values.
 */
import { hostTenant } from '../auth/tenants.js';
import type { RequestContext } from '../context.js';
import type { Tenancy } from '../domain.js';
import { reject, type Rejection } from '../errors.js';
import { pathTenant, recordRequested } from './tenant-in-url.js';

const DISAGREE = reject('cross_tenant', 'selectors_disagree', 'The request names more than one tenant.');
const HEADER_CONFLICT = reject('cross_tenant', 'tenant_header_conflict', 'The request names more than one tenant.');

/** The tenant the request names, null when none does, or the refusal. */
export function selectTenant(ctx: RequestContext, tenancy: Tenancy): string | null | Rejection {
  let named: string | null = null;
  for (const selector of tenancy.select) {
    let t: string | null | Rejection;
    if (selector === 'path') {
      const template = ctx.route!.tenantIn?.path ?? null;
      t = template === null ? null : pathTenant(ctx.path, template, ctx.config.routes.caseInsensitive);
    } else if (selector === 'host') t = hostSelection(ctx, tenancy);
    else if (ctx.tenantHeaderConflict) return HEADER_CONFLICT;
    else t = ctx.tenantHeader;
    if (t === null) continue;
    if (typeof t !== 'string') return t;
    if (named === null) named = t;
    else if (t !== named) {
      recordRequested(ctx, named);
      return DISAGREE;
    }
  }
  return named;
}

/** `hostPattern`'s `{tenant}` label, and the owner of a custom domain (`tenants[].hosts`); both, when they differ, are a refusal. */
function hostSelection(ctx: RequestContext, tenancy: Tenancy): string | null | Rejection {
  const host = ctx.host;
  const owner = hostTenant(ctx.config.tenants, host) ?? null;
  const p = tenancy.hostPattern;
  if (p === null || host.length <= p.prefix.length + p.suffix.length || !host.startsWith(p.prefix) || !host.endsWith(p.suffix)) return owner;
  const label = host.slice(p.prefix.length, host.length - p.suffix.length);
  if (label.includes('.')) return owner;
  if (owner !== null && owner !== label) {
    recordRequested(ctx, label);
    return DISAGREE;
  }
  return label;
}
