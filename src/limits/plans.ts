/**
 * Effective limits per tenant: the tenant's plan with its `overrides` applied
 * (rate and concurrency replace the plan's; quota merges daily and monthly one
 * by one). `null` or absent means unlimited. Compiled with each config, so a
 * reload changes limits without touching the counters in the store.
 */
import type { Config } from '../config/schema.js';

export interface EffectiveLimits {
  readonly rate: { readonly perSecond: number; readonly burst: number } | null;
  readonly daily: number | null;
  readonly monthly: number | null;
  readonly concurrency: number | null;
}

export const UNLIMITED: EffectiveLimits = Object.freeze({ rate: null, daily: null, monthly: null, concurrency: null });

export function compileLimits(config: Config): ReadonlyMap<string, EffectiveLimits> {
  const out = new Map<string, EffectiveLimits>();
  for (const t of config.tenants) {
    const plan = config.plans[t.plan] ?? {};
    const o = t.overrides;
    const quota = { ...(plan.quota ?? {}), ...(o.quota === null ? { daily: null, monthly: null } : (o.quota ?? {})) };
    const limits: EffectiveLimits = Object.freeze({
      rate: (o.rate !== undefined ? o.rate : plan.rate) ?? null,
      daily: quota.daily ?? null,
      monthly: quota.monthly ?? null,
      concurrency: (o.concurrency !== undefined ? o.concurrency : plan.concurrency) ?? null,
    });
    out.set(t.id, limits);
  }
  return out;
}

export function isUnlimited(l: EffectiveLimits): boolean {
  return l.rate === null && l.daily === null && l.monthly === null && l.concurrency === null;
}
