/**
 * tenantgate_quota_used_ratio{tenant, limit}: how much of each quota a tenant
 * has used in the current period, as the limit store last answered it on this
 * replica. The "quota near exhaustion" alert reads it. A series leaves the
 * scrape when its period ends, so a tenant idle since midnight does not stay
 * "near exhaustion" on yesterday's number.
 */
import type { Registry } from 'prom-client';
import type { QuotaSpec } from '../limits/types.js';

interface Reading {
  ratio: number;
  /** End of the period the reading belongs to, epoch ms. */
  resetAtMs: number;
}

export class QuotaUsage {
  readonly type = 'gauge' as const;
  /** Replicas' views of one quota differ only by when they last asked: the largest is the latest. */
  readonly aggregator = 'max' as const;
  /** tenant label → limit → last reading. Bounded by the tenant label's bound × the tenant's quotas. */
  private readonly readings = new Map<string, Map<string, Reading>>();

  constructor(
    readonly name: string,
    readonly help: string,
    registry: Registry,
    /** The bounded tenant label (Metrics.tenantLabel); tenants past the bound are not tracked: a ratio of "other" means nothing. */
    private readonly tenantLabel: (tenantId: string) => string,
  ) {
    registry.registerMetric(this as never);
  }

  /** One limit-store answer: `used[i]` units of `quotas[i]` (same order) are spent. */
  record(tenantId: string, quotas: readonly QuotaSpec[], used: readonly number[]): void {
    let byLimit = this.readings.get(tenantId);
    if (byLimit === undefined) {
      if (this.tenantLabel(tenantId) !== tenantId) return;
      this.readings.set(tenantId, (byLimit = new Map()));
    }
    for (let i = 0; i < quotas.length; i++) {
      const q = quotas[i]!;
      const ratio = used[i]! / q.limit;
      // A named quota by its name; the shorthands by quota_daily / quota_monthly.
      const limit = q.name ?? q.kind;
      const r = byLimit.get(limit);
      if (r === undefined) byLimit.set(limit, { ratio, resetAtMs: q.resetAtMs });
      else {
        r.ratio = ratio;
        r.resetAtMs = q.resetAtMs;
      }
    }
  }

  async get(): Promise<{ name: string; help: string; type: 'gauge'; aggregator: 'max'; values: { labels: Record<string, string>; value: number }[] }> {
    const now = Date.now();
    const values: { labels: Record<string, string>; value: number }[] = [];
    for (const [tenant, byLimit] of this.readings) {
      for (const [limit, r] of byLimit) if (r.resetAtMs > now) values.push({ labels: { tenant, limit }, value: r.ratio });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  reset(): void {
    this.readings.clear();
  }
}
