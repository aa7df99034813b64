/**
 * The plan's named limits (SPEC §11) that apply to a request: chosen by route
 * and method, counted per tenant, project, key or subject, and added to the
 * shorthands' specs so the store checks and charges them all at once.
 *
 * Store keys hold the limit's name and scope, never the plan's: a tenant that
 * changes plan, or a reload that keeps a limit's name, keeps its counters.
 * A quota's key also holds its window and the window's start, so a changed
 * window starts a fresh count and an ended one is never read again.
 *
 *   <prefix>{<tenant>}:n:<name>:r:<scope>                 rate (token bucket)
 *   <prefix>{<tenant>}:n:<name>:q:<window>:<startS>:<scope> quota
 *   <prefix>{<tenant>}:n:<name>:c:<scope>                 concurrency
 *
 * `<scope>`: `t` (tenant), `p:<project>`, `k:<API key id>`, `s:<subject>`.
 * A credential without the thing its limit counts by falls back: project →
 * tenant; key → subject (a token has no key) → tenant; subject → key (an API
 * key has no subject: it is its own) → tenant.
 */
import type { RequestContext } from '../context.js';
import type { Principal } from '../domain.js';
import { windowOf } from '../limits/periods.js';
import type { EffectiveLimits, NamedLimit } from '../limits/plans.js';
import { LEASE_TTL_MS, type BucketSpec, type ConcurrencySpec, type QuotaSpec } from '../limits/types.js';

type ConcurrencyTemplate = Omit<ConcurrencySpec, 'leaseId'>;

export interface NamedEntry {
  readonly buckets: readonly BucketSpec[];
  readonly quotas: readonly QuotaSpec[];
  /** Without lease ids (each request gets its own). */
  readonly concurrency: readonly ConcurrencyTemplate[];
  /** The earliest end of its quotas' windows: rebuilt then. */
  readonly validUntilMs: number;
  /** The shorthand specs it was built on (rebuilt when they change: a new day, a reload). */
  readonly fromBuckets: readonly BucketSpec[];
  readonly fromQuotas: readonly QuotaSpec[];
}

/** Entries kept per tenant at most (subjects and projects are unbounded): past it, the cache starts over. */
const MAX_ENTRIES = 10_000;

export function scopeOf(per: NamedLimit['per'], p: Principal | null): string {
  switch (per) {
    case 'tenant':
      return 't';
    case 'project':
      return p?.projectId ? `p:${p.projectId}` : 't';
    case 'key':
      return p?.apiKeyId ? `k:${p.apiKeyId}` : p?.subject ? `s:${p.subject}` : 't';
    case 'subject':
      return p?.subject ? `s:${p.subject}` : p?.apiKeyId ? `k:${p.apiKeyId}` : 't';
  }
}

/** Whether `l` applies to a request on `route` with `method`. */
export const applies = (l: NamedLimit, route: string, method: string): boolean => (l.routes === null || l.routes.has(route)) && (l.methods === null || l.methods.has(method));

/** The store keys of a named limit for a scope at `nowMs` (also read by the usage views). */
export function namedKey(base: string, l: NamedLimit, scope: string, nowMs: number, billingDay: number): { key: string; resetAtMs: number } {
  if (l.quota !== null) {
    const w = windowOf(l.quota.window, nowMs, billingDay);
    return { key: `${base}n:${l.name}:q:${l.quota.window}:${w.startMs / 1000}:${scope}`, resetAtMs: w.endsAtMs };
  }
  return { key: `${base}n:${l.name}:${l.rate !== null ? 'r' : 'c'}:${scope}`, resetAtMs: 0 };
}

/** A named limit's specs for one scope (quotas charge the route's cost; a cost of 0 charges none). */
export function namedSpecs(base: string, limits: EffectiveLimits, list: readonly NamedLimit[], p: Principal | null, cost: number, nowMs: number, leaseTtlMs: number) {
  const buckets: BucketSpec[] = [];
  const quotas: QuotaSpec[] = [];
  const concurrency: ConcurrencyTemplate[] = [];
  let validUntilMs = Infinity;
  for (const l of list) {
    const { key, resetAtMs } = namedKey(base, l, scopeOf(l.per, p), nowMs, limits.billingDay);
    if (l.rate !== null) buckets.push(Object.freeze({ key, name: l.name, perSecond: l.rate.perSecond, burst: l.rate.burst, windowS: l.rate.windowS }));
    else if (l.quota !== null) {
      if (cost === 0) continue;
      const w = windowOf(l.quota.window, nowMs, limits.billingDay);
      quotas.push(Object.freeze({ key, name: l.name, kind: 'quota' as const, limit: l.quota.limit, cost, resetAtMs, windowS: (w.endsAtMs - w.startMs) / 1000 }));
      validUntilMs = Math.min(validUntilMs, resetAtMs);
    } else concurrency.push(Object.freeze({ key, name: l.name, limit: l.concurrency!, leaseTtlMs }));
  }
  return { buckets, quotas, concurrency, validUntilMs };
}

/** Per tenant: the specs of a route, method and scope, built once per window rather than per request. */
export class NamedCache {
  private readonly entries = new Map<string, NamedEntry>();
  private readonly lists = new Map<string, readonly NamedLimit[]>();

  get(
    ctx: RequestContext,
    base: string,
    limits: EffectiveLimits,
    buckets: readonly BucketSpec[],
    quotas: readonly QuotaSpec[],
    shorthand: ConcurrencyTemplate | null,
    nowMs: number,
  ): NamedEntry {
    const route = ctx.route!;
    const method = ctx.req.method ?? 'GET';
    const p = ctx.principal;
    const id = `${route.name}\n${method}\n${p?.apiKeyId ?? ''}\n${p?.projectId ?? ''}\n${p?.subject ?? ''}`;
    const cached = this.entries.get(id);
    if (cached !== undefined && nowMs < cached.validUntilMs && cached.fromBuckets === buckets && cached.fromQuotas === quotas) return cached;
    const listId = `${route.name}\n${method}`;
    let list = this.lists.get(listId);
    if (list === undefined) this.lists.set(listId, (list = limits.named.filter((l) => applies(l, route.name, method))));
    const named = namedSpecs(base, limits, list, p, route.cost, nowMs, LEASE_TTL_MS);
    const entry: NamedEntry = {
      buckets: Object.freeze([...buckets, ...named.buckets]),
      quotas: Object.freeze([...quotas, ...named.quotas]),
      concurrency: Object.freeze(shorthand === null ? named.concurrency : [shorthand, ...named.concurrency]),
      validUntilMs: named.validUntilMs,
      fromBuckets: buckets,
      fromQuotas: quotas,
    };
    if (this.entries.size >= MAX_ENTRIES) this.entries.clear();
    this.entries.set(id, entry);
    return entry;
  }
}
