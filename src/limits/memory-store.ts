/**
 * In-memory limit store: one replica, no Redis; also the per-replica fallback
 * when Redis fails with `failureMode: open`. It mirrors the Lua script
 * (./limit.lua) exactly, so one contract suite runs against both.
 *
 * Why not rate-limiter-flexible here: its limiters are fixed/sliding windows
 * that charge as they check; a request needs a continuous-refill token bucket
 * per tenant AND per key, two calendar quotas and a lease-based concurrency
 * count checked together and charged only if all admit it — which no
 * combination of its limiters does atomically.
 */
import type { LimitDecision, LimitRequest, LimitStore } from './types.js';

interface Bucket {
  tokens: number;
  ts: number;
  /** When the bucket is full again; past then, a missing bucket means the same thing. */
  fullAtMs: number;
}

export class MemoryLimitStore implements LimitStore {
  private readonly buckets = new Map<string, Bucket>();
  private readonly quotas = new Map<string, { used: number; resetAtMs: number }>();
  private readonly leases = new Map<string, Map<string, number>>();
  private sweeps = 0;
  readonly up = true;

  constructor(private readonly now: () => number = Date.now) {}

  check(request: LimitRequest): LimitDecision {
    const now = this.now();
    if (++this.sweeps % 10_000 === 0) this.sweep(now);
    let rejectedBy: LimitDecision['rejectedBy'] = null;
    let retryAfterMs = 0;
    const bucketTokens: number[] = [];
    for (const b of request.buckets) {
      const state = this.buckets.get(b.key);
      const tokens = state === undefined ? b.burst : Math.min(b.burst, state.tokens + (Math.max(0, now - state.ts) * b.perSecond) / 1000);
      bucketTokens.push(tokens);
      if (tokens < 1 && rejectedBy === null) {
        rejectedBy = 'rate';
        retryAfterMs = Math.ceil(((1 - tokens) * 1000) / b.perSecond);
      }
    }
    const quotaUsed: number[] = [];
    for (const q of request.quotas) {
      const state = this.quotas.get(q.key);
      const used = state === undefined || state.resetAtMs <= now ? 0 : state.used;
      quotaUsed.push(used);
      if (used + q.cost > q.limit && rejectedBy === null) {
        rejectedBy = q.kind;
        retryAfterMs = q.resetAtMs - now;
      }
    }
    const c = request.concurrency;
    if (c !== null) {
      const held = this.liveLeases(c.key, now);
      if (held.size >= c.limit && rejectedBy === null) {
        rejectedBy = 'concurrency';
        retryAfterMs = 1000;
      }
    }
    if (rejectedBy !== null) return { allowed: false, rejectedBy, retryAfterMs, bucketTokens, quotaUsed, nowMs: now };

    request.buckets.forEach((b, i) => {
      bucketTokens[i] = bucketTokens[i]! - 1;
      this.buckets.set(b.key, { tokens: bucketTokens[i]!, ts: now, fullAtMs: now + ((b.burst - bucketTokens[i]!) * 1000) / b.perSecond });
    });
    request.quotas.forEach((q, i) => {
      quotaUsed[i] = quotaUsed[i]! + q.cost;
      this.quotas.set(q.key, { used: quotaUsed[i]!, resetAtMs: q.resetAtMs });
    });
    if (c !== null) this.liveLeases(c.key, now).set(c.leaseId, now + c.leaseTtlMs);
    return { allowed: true, rejectedBy: null, retryAfterMs: 0, bucketTokens, quotaUsed, nowMs: now };
  }

  release(key: string, leaseId: string): void {
    this.leases.get(key)?.delete(leaseId);
  }

  renew(key: string, leaseId: string, leaseTtlMs: number): void {
    const held = this.leases.get(key);
    if (held?.has(leaseId)) held.set(leaseId, this.now() + leaseTtlMs);
  }

  /** Current value of quota counters (admin API: a tenant's use this period); a missing or past one is 0. */
  quotaUsed(keys: readonly string[]): number[] {
    const now = this.now();
    return keys.map((k) => {
      const q = this.quotas.get(k);
      return q === undefined || q.resetAtMs <= now ? 0 : q.used;
    });
  }

  async ready(): Promise<void> {}

  async close(): Promise<void> {}

  private liveLeases(key: string, now: number): Map<string, number> {
    let held = this.leases.get(key);
    if (held === undefined) this.leases.set(key, (held = new Map()));
    for (const [id, expiresAt] of held) if (expiresAt <= now) held.delete(id);
    return held;
  }

  /** Drops state that has no effect any more (full buckets, past periods, empty lease sets), so memory stays bounded. */
  private sweep(now: number): void {
    for (const [key, q] of this.quotas) if (q.resetAtMs <= now) this.quotas.delete(key);
    for (const [key, held] of this.leases) if (this.liveLeases(key, now).size === 0 && held.size === 0) this.leases.delete(key);
    for (const [key, b] of this.buckets) if (b.fullAtMs <= now) this.buckets.delete(key);
  }
}
