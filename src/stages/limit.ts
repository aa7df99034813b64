/**
 * Stage 6 — limit. Per tenant: a token bucket (rate + burst), daily and
 * monthly quotas in route `cost` units (UTC calendar periods, chosen by this
 * replica's clock), and in-flight concurrency held by a lease until the
 * response ends or the client aborts; per API key too when the key has its
 * own `rate`; and the plan's named limits that apply to the route and method
 * (./limit-named.ts). All of it is one store call (at most one Redis round
 * trip: a busy tenant far from its limits is admitted on local credit, see
 * docs/limit-store.md), and a request refused by any limit charges none of them.
 *
 * Every limited response — admitted or refused — carries RateLimit-Limit /
 * -Remaining / -Reset (seconds) and X-RateLimit-* (Reset in epoch seconds) for
 * whichever limit is closest to running out, and the draft-10 RateLimit-Policy
 * and RateLimit fields naming the limits; refusals add Retry-After (the
 * refusing limit's) and the limit's name in the body.
 */
import type { RequestContext } from '../context.js';
import type { Lease } from '../domain.js';
import { reject, type ErrorCode, type Rejection } from '../errors.js';
import { PeriodClock } from '../limits/periods.js';
import { isUnlimited, UNLIMITED, type EffectiveLimits } from '../limits/plans.js';
import { quotaCrossings } from '../limits/quota-warnings.js';
import type { QuotaUsage } from '../observability/quota-usage.js';
import type { HistogramSeries } from '../observability/series-metrics.js';
import { bucketName, LEASE_TTL_MS, LimitCheckError, quotaName, StoreUnavailableError, type LimitDecision, type LimitKind, type LimitRequest, type LimitStore, type QuotaSpec, type BucketSpec } from '../limits/types.js';
import { NamedCache } from './limit-named.js';

const periods = new PeriodClock();
/** Lease ids only need to be unique within this process: the memory store (and the fallback) key by them; Redis counts per replica. */
let leaseCounter = 0;

const CODE: Record<LimitKind, ErrorCode> = {
  rate: 'rate_limited',
  quota_daily: 'quota_exceeded',
  quota_monthly: 'quota_exceeded',
  quota: 'quota_exceeded',
  concurrency: 'concurrency_limited',
};
const STORE_UNAVAILABLE = reject('store_unavailable', 'store_unavailable');

/**
 * A tenant's limit specs, built once per config (and per day for quotas), not
 * per request: the key strings and spec objects are shared by every request
 * of the tenant (they are read-only), which also lets the Redis store see at
 * a glance that a batch's requests check the same limits.
 */
interface TenantSpecs {
  readonly limits: EffectiveLimits;
  readonly prefix: string;
  readonly base: string;
  /** The tenant's bucket alone, or none. */
  readonly tenantBuckets: readonly BucketSpec[];
  /** Tenant bucket + the key's own, per API key id. */
  readonly keyBuckets: Map<string, { readonly perSecond: number; readonly burst: number; readonly buckets: readonly BucketSpec[] }>;
  readonly concurrencyKey: string;
  /** Quota specs per route cost, for `dayId`. */
  quotas: Map<number, readonly QuotaSpec[]>;
  dayId: string;
  /** Requests under named limits, per route, method and scope (./limit-named.ts). */
  readonly named: NamedCache;
}

const NONE: readonly never[] = Object.freeze([]);
/** Per compiled limits table (one per config): tenant id → specs. */
const specCache = new WeakMap<ReadonlyMap<string, EffectiveLimits>, Map<string, TenantSpecs>>();

function tenantSpecs(table: ReadonlyMap<string, EffectiveLimits>, tenantId: string, limits: EffectiveLimits, prefix: string): TenantSpecs {
  let byTenant = specCache.get(table);
  if (byTenant === undefined) specCache.set(table, (byTenant = new Map()));
  let specs = byTenant.get(tenantId);
  if (specs === undefined || specs.limits !== limits || specs.prefix !== prefix) {
    const base = `${prefix}{${tenantId}}:`;
    specs = {
      limits,
      prefix,
      base,
      tenantBuckets:
        limits.rate === null ? NONE : Object.freeze([Object.freeze({ key: `${base}b:t`, perSecond: limits.rate.perSecond, burst: limits.rate.burst, windowS: limits.rate.burst / limits.rate.perSecond })]),
      keyBuckets: new Map(),
      // `cr`: the per-replica hash (limit.lua). Not `c`, the per-request sorted set of earlier versions: during a
      // rolling upgrade the two kinds of replica count apart instead of failing on a key of the wrong type.
      concurrencyKey: `${base}cr`,
      quotas: new Map(),
      dayId: '',
      named: new NamedCache(),
    };
    byTenant.set(tenantId, specs);
  }
  return specs;
}

function keyBuckets(specs: TenantSpecs, apiKeyId: string | null, rate: { readonly perSecond: number; readonly burst: number }): readonly BucketSpec[] {
  const id = apiKeyId ?? '';
  const cached = specs.keyBuckets.get(id);
  if (cached !== undefined && cached.perSecond === rate.perSecond && cached.burst === rate.burst) return cached.buckets;
  const own: BucketSpec = Object.freeze({ key: `${specs.base}b:k:${apiKeyId}`, perSecond: rate.perSecond, burst: rate.burst, windowS: rate.burst / rate.perSecond });
  const buckets = Object.freeze([...specs.tenantBuckets, own]);
  specs.keyBuckets.set(id, { perSecond: rate.perSecond, burst: rate.burst, buckets });
  return buckets;
}

function quotaSpecs(specs: TenantSpecs, cost: number, nowMs: number): readonly QuotaSpec[] {
  const limits = specs.limits;
  const { day, month } = periods.at(nowMs);
  if (specs.dayId !== day.id) {
    specs.quotas = new Map();
    specs.dayId = day.id;
  }
  let quotas = specs.quotas.get(cost);
  if (quotas === undefined) {
    const list: QuotaSpec[] = [];
    if (limits.daily !== null) list.push(Object.freeze({ key: `${specs.base}q:d:${day.id}`, kind: 'quota_daily', limit: limits.daily, cost, resetAtMs: day.endsAtMs, windowS: 86_400 }));
    if (limits.monthly !== null) {
      const windowS = (month.endsAtMs - Date.UTC(Number(month.id.slice(0, 4)), Number(month.id.slice(4)) - 1, 1)) / 1000;
      list.push(Object.freeze({ key: `${specs.base}q:m:${month.id}`, kind: 'quota_monthly', limit: limits.monthly, cost, resetAtMs: month.endsAtMs, windowS }));
    }
    specs.quotas.set(cost, (quotas = Object.freeze(list)));
  }
  return quotas;
}

export function limitRequestFor(ctx: RequestContext, prefix: string, nowMs: number): LimitRequest | null {
  const tenant = ctx.tenant;
  if (tenant === null) return null;
  const table = ctx.config.limits;
  const limits = table.get(tenant.id) ?? UNLIMITED;
  const keyRate = ctx.principal?.rate ?? null;
  if (keyRate === null && isUnlimited(limits)) return null;
  const specs = tenantSpecs(table, tenant.id, limits, prefix);
  const buckets = keyRate === null ? specs.tenantBuckets : keyBuckets(specs, ctx.principal!.apiKeyId, keyRate);
  const cost = ctx.route!.cost;
  const quotas = cost > 0 && (limits.daily !== null || limits.monthly !== null) ? quotaSpecs(specs, cost, nowMs) : NONE;
  if (limits.named.length === 0) {
    const concurrency =
      limits.concurrency === null ? NONE : [{ key: specs.concurrencyKey, limit: limits.concurrency, leaseId: String(++leaseCounter), leaseTtlMs: LEASE_TTL_MS }];
    return { buckets, quotas, concurrency };
  }
  const shorthand = limits.concurrency === null ? null : { key: specs.concurrencyKey, limit: limits.concurrency, leaseTtlMs: LEASE_TTL_MS };
  const entry = specs.named.get(ctx, specs.base, limits, buckets, quotas, shorthand, nowMs);
  if (entry.buckets.length === 0 && entry.quotas.length === 0 && entry.concurrency.length === 0) return null;
  const leaseId = String(++leaseCounter);
  const concurrency = entry.concurrency.length === 0 ? NONE : entry.concurrency.map((c) => ({ key: c.key, name: c.name, limit: c.limit, leaseId, leaseTtlMs: c.leaseTtlMs }));
  return { buckets: entry.buckets, quotas: entry.quotas, concurrency };
}

/**
 * The limit closest to running out: as rate-limit headers (name, value, …),
 * one array per request. Plain loops: it runs per request.
 */
function headline(request: LimitRequest, d: LimitDecision): string[] {
  let limit = 0;
  let remaining = 0;
  let resetS = 0;
  let bestShare = Infinity;
  let name = '';
  for (let i = 0; i < request.buckets.length; i++) {
    const b = request.buckets[i]!;
    const tokens = d.bucketTokens[i]!;
    const left = Math.floor(tokens);
    if (left / b.burst < bestShare) {
      bestShare = left / b.burst;
      name = bucketName(b);
      limit = b.burst;
      remaining = left;
      resetS = (b.burst - tokens) / b.perSecond;
    }
  }
  for (let i = 0; i < request.quotas.length; i++) {
    const q = request.quotas[i]!;
    const left = q.limit - d.quotaUsed[i]!;
    if (left / q.limit < bestShare) {
      bestShare = left / q.limit;
      name = quotaName(q);
      limit = q.limit;
      remaining = left;
      resetS = (q.resetAtMs - d.nowMs) / 1000;
    }
  }
  const limitText = `${limit}`;
  const remainingText = `${Math.max(0, remaining)}`;
  const reset = Math.max(0, Math.ceil(resetS));
  return [
    'ratelimit-limit', limitText,
    'ratelimit-remaining', remainingText,
    'ratelimit-reset', `${reset}`,
    'x-ratelimit-limit', limitText,
    'x-ratelimit-remaining', remainingText,
    'x-ratelimit-reset', `${Math.ceil(d.nowMs / 1000) + reset}`,
    'ratelimit-policy', policyOf(request),
    'ratelimit', `"${name}";r=${remainingText};t=${reset}`,
  ];
}

/** A refusal's headers: the rate-limit ones and Retry-After. */
function refusalHeaders(flat: readonly string[] | null, retryAfterMs: number): Record<string, string> {
  const headers: Record<string, string> = {};
  if (flat !== null) for (let i = 0; i < flat.length; i += 2) headers[flat[i]!] = flat[i + 1]!;
  headers['retry-after'] = String(Math.max(1, Math.ceil(retryAfterMs / 1000)));
  return headers;
}

/** RateLimit-Policy (draft 10): each limit with a window as `"name";q=<quota>;w=<seconds>`, once per request shape. */
const policies = new WeakMap<readonly BucketSpec[], WeakMap<readonly QuotaSpec[], string>>();
function policyOf(request: LimitRequest): string {
  let byQuotas = policies.get(request.buckets);
  if (byQuotas === undefined) policies.set(request.buckets, (byQuotas = new WeakMap()));
  let policy = byQuotas.get(request.quotas);
  if (policy === undefined) {
    const items = new Map<string, string>();
    for (const b of request.buckets) {
      const w = b.windowS ?? b.burst / b.perSecond;
      const name = bucketName(b);
      if (!items.has(name)) items.set(name, `"${name}";q=${Math.round(b.perSecond * w)};w=${Math.max(1, Math.round(w))}`);
    }
    for (const q of request.quotas) {
      const name = quotaName(q);
      if (!items.has(name)) items.set(name, `"${name}";q=${q.limit};w=${Math.round(q.windowS ?? (q.resetAtMs - Date.now()) / 1000)}`);
    }
    policy = [...items.values()].join(', ');
    byQuotas.set(request.quotas, policy);
  }
  return policy;
}

function decide(ctx: RequestContext, request: LimitRequest, d: LimitDecision, quotaUsage: QuotaUsage | null): Rejection | undefined {
  if (quotaUsage !== null && request.quotas.length > 0) quotaUsage.record(ctx.tenant!.id, request.quotas, d.quotaUsed);
  const headers = request.buckets.length > 0 || request.quotas.length > 0 ? headline(request, d) : null;
  ctx.limitHeaders = headers;
  if (d.allowed) {
    if (request.quotas.length > 0) ctx.quotaCrossings = quotaCrossings(request, d);
    // The spec is a lease (its key and id): no object of its own per request.
    if (request.concurrency.length > 0) ctx.lease = request.concurrency;
    return undefined;
  }
  ctx.limitedBy = d.rejectedBy;
  return { code: CODE[d.rejectedKind!], reason: d.rejectedKind!, headers: refusalHeaders(headers, d.retryAfterMs), limit: d.rejectedBy! };
}

/** The store could not decide: down (failureMode closed), or this request's own limits could not be checked (it alone fails). */
function storeFailed(err: unknown): Rejection {
  if (err instanceof StoreUnavailableError || err instanceof LimitCheckError) return STORE_UNAVAILABLE;
  throw err;
}

/**
 * `wait`: tenantgate_limit_wait_seconds — 0 for a check decided at once, else how long the store took to answer.
 * `quotaUsage`: tenantgate_quota_used_ratio, fed with every answer (null: metrics off).
 */
export function limit(ctx: RequestContext, store: LimitStore, wait: HistogramSeries, quotaUsage: QuotaUsage | null = null): Rejection | undefined | Promise<Rejection | undefined> {
  if (ctx.tenant === null) return undefined; // public route: nothing to count (and no clock read)
  const request = limitRequestFor(ctx, ctx.config.source.store.keyPrefix, Date.now());
  if (request === null) return undefined;
  let decision: LimitDecision | Promise<LimitDecision>;
  try {
    decision = store.check(request);
  } catch (err) {
    wait.observe(0);
    return storeFailed(err);
  }
  if (decision instanceof Promise) {
    if (ctx.trace !== null) decision = ctx.trace.storeCall(decision);
    const askedAt = performance.now();
    return decision.then(
      (d) => {
        wait.observe((performance.now() - askedAt) / 1000);
        return decide(ctx, request, d, quotaUsage);
      },
      (err: unknown) => {
        // A refusal after commandTimeoutMs waited too (the answer is a 503 store_unavailable).
        wait.observe((performance.now() - askedAt) / 1000);
        return storeFailed(err);
      },
    );
  }
  wait.observe(0);
  return decide(ctx, request, decision, quotaUsage);
}
