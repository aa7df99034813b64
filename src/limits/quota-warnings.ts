/**
 * Quota warnings (issue #5): a tenant whose daily or monthly usage crosses 80 %
 * or 95 % of the quota gets one `quota_warning` usage event per threshold and
 * period. No extra state is needed: quotas are charged atomically, so exactly
 * one admitted request moves the counter from below a threshold to at or
 * above it — on whichever replica it ran. The event id is derived from
 * (tenant, quota, period, threshold), so even a duplicate (the local fallback
 * limiter during a Redis outage counts on its own) de-duplicates downstream.
 */
import type { QuotaCrossing } from '../domain.js';
import type { LimitDecision, LimitRequest } from './types.js';

export const WARNING_THRESHOLDS: readonly number[] = [0.8, 0.95];

/** The thresholds an admitted request's charge crossed, or null (the common case: nothing allocated). */
export function quotaCrossings(request: LimitRequest, decision: LimitDecision): QuotaCrossing[] | null {
  let crossed: QuotaCrossing[] | null = null;
  for (let i = 0; i < request.quotas.length; i++) {
    const q = request.quotas[i]!;
    // Warnings are the shorthands' (daily, monthly); a named quota's use shows on the usage route.
    if (q.kind === 'quota') continue;
    const used = decision.quotaUsed[i]!;
    const before = used - q.cost;
    for (const threshold of WARNING_THRESHOLDS) {
      const mark = threshold * q.limit;
      if (before < mark && used >= mark) {
        const daily = q.kind === 'quota_daily';
        // The period is the UTC day or month the counter belongs to (it ends at resetAtMs).
        const period = new Date(q.resetAtMs - 1).toISOString().slice(0, daily ? 10 : 7);
        (crossed ??= []).push({ quota: daily ? 'daily' : 'monthly', threshold, used, limit: q.limit, period });
      }
    }
  }
  return crossed;
}

/** Stable id: the same crossing reported twice is one event after de-duplication. */
export function quotaWarningId(tenantId: string, c: QuotaCrossing): string {
  return `qw:${tenantId}:${c.quota}:${c.period}:${c.threshold}`;
}
