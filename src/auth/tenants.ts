/**
 * The tenant directory, compiled once per config: tenants by id, and the hosts
 * bound to a tenant (`tenants[].hosts`: exact names and `*.example.com`
 * wildcards, longest suffix first) for the cross-tenant check.
 */
import type { Config } from '../config/schema.js';
import type { Tenant, TenantDirectory } from '../domain.js';

export function compileTenants(tenants: Config['tenants']): TenantDirectory {
  const byId = new Map<string, Tenant>();
  const hostOwner = new Map<string, string>();
  const wildcardOwners: { suffix: string; tenantId: string }[] = [];
  for (const t of tenants) {
    byId.set(t.id, Object.freeze({ id: t.id, plan: t.plan, status: t.status }));
    for (const h of t.hosts) {
      const host = h.toLowerCase();
      if (host.startsWith('*.')) wildcardOwners.push({ suffix: host.slice(1), tenantId: t.id });
      else hostOwner.set(host, t.id);
    }
  }
  wildcardOwners.sort((a, b) => b.suffix.length - a.suffix.length);
  return { byId, hostOwner, wildcardOwners };
}

/** The tenant a Host belongs to, or undefined when the host is shared. */
export function hostTenant(dir: TenantDirectory, host: string): string | undefined {
  const owner = dir.hostOwner.get(host);
  if (owner !== undefined || dir.wildcardOwners.length === 0) return owner;
  for (const w of dir.wildcardOwners) if (host.endsWith(w.suffix) && host.length > w.suffix.length) return w.tenantId;
  return undefined;
}
