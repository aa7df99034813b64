/**
 * A tenant's limits as its usage card shows them (SPEC §11): every limit of
 * its plan (shorthands and named, overrides applied), each with what is used,
 * the limit, what remains and when it resets, read from the store without
 * charging anything. Named limits counted per project, key or subject are
 * read for `principal`'s scope (the caller's own); with no principal (the
 * admin API), for the tenant's scope, and those not counted per tenant show
 * `used: null`.
 */
import type { Principal } from '../domain.js';
import { namedKey, scopeOf } from '../stages/limit-named.js';
import { dayOf, monthOf } from './periods.js';
import type { EffectiveLimits } from './plans.js';
import { LEASE_TTL_MS, type BucketSpec, type ConcurrencySpec, type LimitRequest, type LimitStore, type QuotaSpec } from './types.js';

export interface LimitUsage {
  readonly name: string;
  readonly kind: 'rate' | 'quota' | 'concurrency';
  /** Whose count this is: tenant, project, key or subject. */
  readonly per: 'tenant' | 'project' | 'key' | 'subject';
  readonly used: number | null;
  readonly limit: number;
  readonly remaining: number | null;
  /** When the limit is whole again (a bucket full, a quota window's end); null for concurrency. */
  readonly resetAt: string | null;
}

interface Row {
  name: string;
  kind: LimitUsage['kind'];
  per: LimitUsage['per'];
  limit: number;
  /** Index into the request's buckets, quotas or concurrency; -1: not read. */
  at: number;
}

export async function limitUsage(store: LimitStore, prefix: string, tenantId: string, limits: EffectiveLimits, principal: Principal | null, nowMs: number): Promise<LimitUsage[]> {
  const base = `${prefix}{${tenantId}}:`;
  const buckets: BucketSpec[] = [];
  const quotas: QuotaSpec[] = [];
  const concurrency: ConcurrencySpec[] = [];
  const rows: Row[] = [];
  if (limits.rate !== null) {
    rows.push({ name: 'rate', kind: 'rate', per: 'tenant', limit: limits.rate.burst, at: buckets.length });
    buckets.push({ key: `${base}b:t`, ...limits.rate });
  }
  const day = dayOf(nowMs);
  const month = monthOf(nowMs);
  if (limits.daily !== null) {
    rows.push({ name: 'quota_daily', kind: 'quota', per: 'tenant', limit: limits.daily, at: quotas.length });
    quotas.push({ key: `${base}q:d:${day.id}`, kind: 'quota_daily', limit: limits.daily, cost: 1, resetAtMs: day.endsAtMs });
  }
  if (limits.monthly !== null) {
    rows.push({ name: 'quota_monthly', kind: 'quota', per: 'tenant', limit: limits.monthly, at: quotas.length });
    quotas.push({ key: `${base}q:m:${month.id}`, kind: 'quota_monthly', limit: limits.monthly, cost: 1, resetAtMs: month.endsAtMs });
  }
  if (limits.concurrency !== null) {
    rows.push({ name: 'concurrency', kind: 'concurrency', per: 'tenant', limit: limits.concurrency, at: concurrency.length });
    concurrency.push({ key: `${base}cr`, limit: limits.concurrency, leaseId: '', leaseTtlMs: LEASE_TTL_MS });
  }
  for (const l of limits.named) {
    const readable = principal !== null || l.per === 'tenant';
    const { key, resetAtMs } = namedKey(base, l, principal === null ? 't' : scopeOf(l.per, principal), nowMs, limits.billingDay);
    if (l.rate !== null) {
      rows.push({ name: l.name, kind: 'rate', per: l.per, limit: l.rate.burst, at: readable ? buckets.length : -1 });
      if (readable) buckets.push({ key, perSecond: l.rate.perSecond, burst: l.rate.burst });
    } else if (l.quota !== null) {
      rows.push({ name: l.name, kind: 'quota', per: l.per, limit: l.quota.limit, at: readable ? quotas.length : -1 });
      if (readable) quotas.push({ key, kind: 'quota', limit: l.quota.limit, cost: 1, resetAtMs });
    } else {
      rows.push({ name: l.name, kind: 'concurrency', per: l.per, limit: l.concurrency!, at: readable ? concurrency.length : -1 });
      if (readable) concurrency.push({ key, limit: l.concurrency!, leaseId: '', leaseTtlMs: LEASE_TTL_MS });
    }
  }
  const request: LimitRequest = { buckets, quotas, concurrency };
  const peek = await store.peek(request);
  const iso = (ms: number) => new Date(ms).toISOString();
  return rows.map((r): LimitUsage => {
    const row = { name: r.name, kind: r.kind, per: r.per, limit: r.limit };
    if (r.at < 0) return { ...row, used: null, remaining: null, resetAt: null };
    if (r.kind === 'rate') {
      const b = buckets[r.at]!;
      const tokens = peek.bucketTokens[r.at]!;
      const remaining = Math.max(0, Math.floor(tokens));
      return { ...row, used: b.burst - remaining, remaining, resetAt: iso(peek.nowMs + Math.ceil(((b.burst - tokens) * 1000) / b.perSecond)) };
    }
    if (r.kind === 'quota') {
      const used = peek.quotaUsed[r.at]!;
      return { ...row, used, remaining: Math.max(0, r.limit - used), resetAt: iso(quotas[r.at]!.resetAtMs) };
    }
    const used = peek.slotsHeld[r.at]!;
    return { ...row, used, remaining: Math.max(0, r.limit - used), resetAt: null };
  });
}
