/**
 * A request's "shape": the limits it checks, without its lease id. Requests
 * of one tenant, key and route share one (the limit stage caches the spec
 * arrays), so comparing shapes is mostly identity checks.
 */
import type { LimitRequest } from './types.js';

export function sameShape(a: LimitRequest, b: LimitRequest): boolean {
  if (a.buckets !== b.buckets) {
    if (a.buckets.length !== b.buckets.length) return false;
    for (let i = 0; i < a.buckets.length; i++) {
      const x = a.buckets[i]!;
      const y = b.buckets[i]!;
      if (x !== y && (x.key !== y.key || x.perSecond !== y.perSecond || x.burst !== y.burst || x.name !== y.name)) return false;
    }
  }
  if (a.quotas !== b.quotas) {
    if (a.quotas.length !== b.quotas.length) return false;
    for (let i = 0; i < a.quotas.length; i++) {
      const x = a.quotas[i]!;
      const y = b.quotas[i]!;
      if (x !== y && (x.key !== y.key || x.limit !== y.limit || x.cost !== y.cost || x.resetAtMs !== y.resetAtMs || x.name !== y.name || x.kind !== y.kind)) return false;
    }
  }
  if (a.concurrency.length !== b.concurrency.length) return false;
  for (let i = 0; i < a.concurrency.length; i++) {
    const x = a.concurrency[i]!;
    const y = b.concurrency[i]!;
    if (x.key !== y.key || x.limit !== y.limit || x.leaseTtlMs !== y.leaseTtlMs || x.name !== y.name) return false;
  }
  return true;
}

/** A key every request of the shape names (all of a shape's keys share one `{tenant}` tag). */
export const firstKey = (r: LimitRequest): string => r.buckets[0]?.key ?? r.quotas[0]?.key ?? r.concurrency[0]?.key ?? '';
