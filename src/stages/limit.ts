/**
 * Stage 6 — limit. Per tenant: a token bucket (rate + burst), daily and
 * monthly quotas in route `cost` units (UTC calendar periods, chosen by this
 * replica's clock), and in-flight concurrency held by a lease until the
 * response ends or the client aborts; per API key too when the key has its
 * own `rate`. All of it is one store call (one Redis round trip), and a
 * request refused by any limit charges none of them.
 *
 * Every limited response — admitted or refused — carries RateLimit-Limit /
 * -Remaining / -Reset (seconds) and X-RateLimit-* (Reset in epoch seconds) for
 * whichever limit is closest to running out; refusals add Retry-After.
 */
import { randomBytes } from 'node:crypto';
import type { RequestContext } from '../context.js';
import { reject, type ErrorCode, type Rejection } from '../errors.js';
import { PeriodClock } from '../limits/periods.js';
import { isUnlimited, UNLIMITED } from '../limits/plans.js';
import { quotaCrossings } from '../limits/quota-warnings.js';
import { StoreUnavailableError, type LimitDecision, type LimitKind, type LimitRequest, type LimitStore, type QuotaSpec } from '../limits/types.js';

/** A lease not renewed for this long frees its slot; live ones are renewed by the LeaseKeeper. */
export const LEASE_TTL_MS = 30_000;

const periods = new PeriodClock();
const instance = randomBytes(6).toString('base64url');
let leaseCounter = 0;

const CODE: Record<LimitKind, ErrorCode> = {
  rate: 'rate_limited',
  quota_daily: 'quota_exceeded',
  quota_monthly: 'quota_exceeded',
  concurrency: 'concurrency_limited',
};
const STORE_UNAVAILABLE = reject('store_unavailable', 'store_unavailable');

export interface Lease {
  readonly key: string;
  readonly leaseId: string;
}

export function limitRequestFor(ctx: RequestContext, prefix: string, nowMs: number): LimitRequest | null {
  const tenant = ctx.tenant;
  if (tenant === null) return null;
  const limits = ctx.config.limits.get(tenant.id) ?? UNLIMITED;
  const keyRate = ctx.principal?.rate ?? null;
  if (keyRate === null && isUnlimited(limits)) return null;
  const base = `${prefix}{${tenant.id}}:`;
  const buckets = [];
  if (limits.rate !== null) buckets.push({ key: `${base}b:t`, perSecond: limits.rate.perSecond, burst: limits.rate.burst });
  if (keyRate !== null) buckets.push({ key: `${base}b:k:${ctx.principal!.apiKeyId}`, perSecond: keyRate.perSecond, burst: keyRate.burst });
  const quotas: QuotaSpec[] = [];
  const cost = ctx.route!.cost;
  if (cost > 0 && (limits.daily !== null || limits.monthly !== null)) {
    const { day, month } = periods.at(nowMs);
    if (limits.daily !== null) quotas.push({ key: `${base}q:d:${day.id}`, kind: 'quota_daily', limit: limits.daily, cost, resetAtMs: day.endsAtMs });
    if (limits.monthly !== null) quotas.push({ key: `${base}q:m:${month.id}`, kind: 'quota_monthly', limit: limits.monthly, cost, resetAtMs: month.endsAtMs });
  }
  const concurrency =
    limits.concurrency === null ? null : { key: `${base}c`, limit: limits.concurrency, leaseId: `${instance}:${++leaseCounter}`, leaseTtlMs: LEASE_TTL_MS };
  return { buckets, quotas, concurrency };
}

/** The limit closest to running out: [limit, remaining, seconds until reset]. */
function headline(request: LimitRequest, d: LimitDecision): [number, number, number] {
  let best: [number, number, number] | null = null;
  let bestShare = Infinity;
  const consider = (limit: number, remaining: number, resetS: number) => {
    const share = remaining / limit;
    if (share < bestShare) {
      bestShare = share;
      best = [limit, Math.max(0, remaining), Math.max(0, Math.ceil(resetS))];
    }
  };
  request.buckets.forEach((b, i) => consider(b.burst, Math.floor(d.bucketTokens[i]!), (b.burst - d.bucketTokens[i]!) / b.perSecond));
  request.quotas.forEach((q, i) => consider(q.limit, q.limit - d.quotaUsed[i]!, (q.resetAtMs - d.nowMs) / 1000));
  return best ?? [0, 0, 0];
}

function decide(ctx: RequestContext, request: LimitRequest, d: LimitDecision): Rejection | undefined {
  const headers: Record<string, string> = {};
  if (request.buckets.length > 0 || request.quotas.length > 0) {
    const [limit, remaining, resetS] = headline(request, d);
    headers['ratelimit-limit'] = String(limit);
    headers['ratelimit-remaining'] = String(remaining);
    headers['ratelimit-reset'] = String(resetS);
    headers['x-ratelimit-limit'] = String(limit);
    headers['x-ratelimit-remaining'] = String(remaining);
    headers['x-ratelimit-reset'] = String(Math.ceil(d.nowMs / 1000) + resetS);
  }
  ctx.limitHeaders = headers;
  if (d.allowed) {
    if (request.quotas.length > 0) ctx.quotaCrossings = quotaCrossings(request, d);
    if (request.concurrency !== null) ctx.lease = { key: request.concurrency.key, leaseId: request.concurrency.leaseId };
    return undefined;
  }
  ctx.limitedBy = d.rejectedBy;
  return { code: CODE[d.rejectedBy!], reason: d.rejectedBy!, headers: { ...headers, 'retry-after': String(Math.max(1, Math.ceil(d.retryAfterMs / 1000))) } };
}

function storeFailed(err: unknown): Rejection {
  if (err instanceof StoreUnavailableError) return STORE_UNAVAILABLE;
  throw err;
}

export function limit(ctx: RequestContext, store: LimitStore): Rejection | undefined | Promise<Rejection | undefined> {
  if (ctx.tenant === null) return undefined; // public route: nothing to count (and no clock read)
  const request = limitRequestFor(ctx, ctx.config.source.store.keyPrefix, Date.now());
  if (request === null) return undefined;
  const decision = store.check(request);
  if (decision instanceof Promise) return decision.then((d) => decide(ctx, request, d), storeFailed);
  return decide(ctx, request, decision);
}
