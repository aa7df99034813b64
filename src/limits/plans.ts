/**
 * Effective limits per tenant: the tenant's plan with its `overrides` applied
 * (rate and concurrency replace the plan's; quota merges daily and monthly one
 * by one; `overrides.limits.<name>` changes a named limit's numbers or, null,
 * disables it). `null` or absent means unlimited. Compiled with each config,
 * so a reload changes limits without touching the counters in the store.
 */
import type { Config } from '../config/schema.js';
import { validRate } from './bounds.js';
import { bucketOf, windowSeconds, type LimitOverride, type NamedLimitConfig, type QuotaWindow } from './named-schema.js';

/** A plan's named limit as one tenant has it (SPEC §11). */
export interface NamedLimit {
  readonly name: string;
  readonly kind: 'rate' | 'quota' | 'concurrency';
  /** Route names it applies to; null: every route. */
  readonly routes: ReadonlySet<string> | null;
  /** Methods it applies to (GET brings HEAD); null: every method. */
  readonly methods: ReadonlySet<string> | null;
  readonly per: 'tenant' | 'project' | 'key' | 'subject';
  /** kind rate: the bucket, and `limit` per `windowS` as the policy says it. */
  readonly rate: { readonly perSecond: number; readonly burst: number; readonly limit: number; readonly windowS: number } | null;
  readonly quota: { readonly limit: number; readonly window: QuotaWindow } | null;
  readonly concurrency: number | null;
}

export interface EffectiveLimits {
  readonly rate: { readonly perSecond: number; readonly burst: number } | null;
  readonly daily: number | null;
  readonly monthly: number | null;
  readonly concurrency: number | null;
  /** The plan's named limits with the tenant's overrides (disabled ones left out). */
  readonly named: readonly NamedLimit[];
  /** The day (1-31) each `1mo` window starts. */
  readonly billingDay: number;
  readonly entitlements: { readonly apiKeys: number | null; readonly projects: number | null };
}

export const UNLIMITED: EffectiveLimits = Object.freeze({
  rate: null,
  daily: null,
  monthly: null,
  concurrency: null,
  named: Object.freeze([]),
  billingDay: 1,
  entitlements: Object.freeze({ apiKeys: null, projects: null }),
});

type TenantConfig = Config['tenants'][number];

/** `l` with the override's numbers; null: disabled. An override of another kind changes nothing (the config check reports it). */
export function applyOverride(l: NamedLimitConfig, o: LimitOverride | undefined): NamedLimitConfig | null {
  if (o === undefined) return l;
  if (o === null) return null;
  if (l.rate !== undefined && o.rate !== undefined) return { ...l, rate: { ...l.rate, ...o.rate } };
  if (l.quota !== undefined && o.quota !== undefined) return { ...l, quota: { ...l.quota, ...o.quota } };
  if (l.concurrency !== undefined && o.concurrency !== undefined) return { ...l, concurrency: o.concurrency };
  return l;
}

function compileNamed(l: NamedLimitConfig): NamedLimit {
  const methods = l.methods === undefined ? null : new Set<string>(l.methods);
  if (methods?.has('GET')) methods.add('HEAD');
  const rate = l.rate === undefined ? null : { ...bucketOf(l.rate), limit: l.rate.limit, windowS: windowSeconds(l.rate.window)! };
  return Object.freeze({
    name: l.name,
    kind: l.rate !== undefined ? 'rate' : l.quota !== undefined ? 'quota' : 'concurrency',
    routes: l.routes === undefined ? null : new Set(l.routes),
    methods,
    per: l.per,
    rate,
    quota: l.quota ?? null,
    concurrency: l.concurrency ?? null,
  });
}

export function limitsOf(plan: Config['plans'][string] | undefined, t: Pick<TenantConfig, 'overrides' | 'billingDay'>): EffectiveLimits {
  const p = plan ?? { limits: [] };
  const o = t.overrides;
  const quota = { ...(p.quota ?? {}), ...(o.quota === null ? { daily: null, monthly: null } : (o.quota ?? {})) };
  const named: NamedLimit[] = [];
  for (const l of p.limits ?? []) {
    const effective = applyOverride(l, o.limits?.[l.name]);
    if (effective !== null) named.push(compileNamed(effective));
  }
  return Object.freeze({
    rate: (o.rate !== undefined ? o.rate : p.rate) ?? null,
    daily: quota.daily ?? null,
    monthly: quota.monthly ?? null,
    concurrency: (o.concurrency !== undefined ? o.concurrency : p.concurrency) ?? null,
    named: Object.freeze(named),
    billingDay: t.billingDay ?? 1,
    entitlements: Object.freeze({ apiKeys: p.entitlements?.apiKeys ?? null, projects: p.entitlements?.projects ?? null }),
  });
}

export function compileLimits(config: Pick<Config, 'plans' | 'tenants'>): ReadonlyMap<string, EffectiveLimits> {
  const out = new Map<string, EffectiveLimits>();
  for (const t of config.tenants) out.set(t.id, limitsOf(config.plans[t.plan], t));
  return out;
}

export function isUnlimited(l: EffectiveLimits): boolean {
  return l.rate === null && l.daily === null && l.monthly === null && l.concurrency === null && l.named.length === 0;
}

/**
 * What a schema cannot check about named limits: a route name that no
 * route has, an override of a limit the plan lacks or of another kind.
 * `overrides` of one tenant (admin API) alone, or every YAML tenant's.
 */
export function overrideProblems(plan: Config['plans'][string] | undefined, overrides: TenantConfig['overrides']): { name: string; message: string }[] {
  const problems: { name: string; message: string }[] = [];
  for (const [name, o] of Object.entries(overrides.limits ?? {})) {
    const l = plan?.limits?.find((x) => x.name === name);
    if (l === undefined) problems.push({ name, message: `the plan has no limit "${name}"` });
    else if (o !== null) {
      const kind = l.rate !== undefined ? 'rate' : l.quota !== undefined ? 'quota' : 'concurrency';
      const given = Object.keys(o);
      if (given.length !== 1 || given[0] !== kind) problems.push({ name, message: `"${name}" is a ${kind} limit: override it with { ${kind}: ... } or null` });
      else if (o.rate !== undefined && l.rate !== undefined) {
        const b = bucketOf({ ...l.rate, ...o.rate });
        if (!validRate(b.perSecond, b.burst)) problems.push({ name, message: `"${name}": the overridden rate is out of bounds` });
      }
    }
  }
  return problems;
}

export function namedLimitProblems(config: Config): { path: (string | number)[]; message: string }[] {
  const problems: { path: (string | number)[]; message: string }[] = [];
  const routes = new Set(config.routes.map((r) => r.name));
  for (const [planName, plan] of Object.entries(config.plans)) {
    (plan.limits ?? []).forEach((l, i) => {
      (l.routes ?? []).forEach((r, j) => {
        if (!routes.has(r)) problems.push({ path: ['plans', planName, 'limits', i, 'routes', j], message: `unknown route "${r}"` });
      });
    });
  }
  config.tenants.forEach((t, i) => {
    for (const p of overrideProblems(config.plans[t.plan], t.overrides)) problems.push({ path: ['tenants', i, 'overrides', 'limits', p.name], message: p.message });
  });
  return problems;
}
