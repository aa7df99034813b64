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
import { invalidLimits } from './bounds.js';
import { bucketName, concurrencyName, LimitCheckError, quotaName, type LimitDecision, type LimitKind, type LimitPeek, type LimitRequest, type LimitStore } from './types.js';

interface Bucket {
  tokens: number;
  ts: number;
  /** When the bucket is full again; past then, a missing bucket means the same thing. */
  fullAtMs: number;
}

/** One concurrency key's leases: lease id → expiry (epoch ms). */
interface Leases {
  readonly expiries: Map<string, number>;
  /** No lease expires before this (a lower bound: renewals only push expiries later), so most checks scan nothing. */
  earliestExpiry: number;
}

export class MemoryLimitStore implements LimitStore {
  private readonly buckets = new Map<string, Bucket>();
  private readonly quotas = new Map<string, { used: number; resetAtMs: number }>();
  private readonly leases = new Map<string, Leases>();
  private sweeps = 0;
  readonly up = true;

  constructor(private readonly now: () => number = Date.now) {}

  /** Plain loops and counters updated in place: this runs per request when there is one replica. */
  check(request: LimitRequest): LimitDecision {
    const problem = invalidLimits(request);
    if (problem !== null) throw new LimitCheckError('invalid_limits', problem);
    const now = this.now();
    if (++this.sweeps % 10_000 === 0) this.sweep(now);
    let rejectedBy: string | null = null;
    let rejectedKind: LimitKind | null = null;
    let retryAfterMs = 0;
    const { buckets, quotas, concurrency } = request;
    const bucketTokens: number[] = [];
    for (let i = 0; i < buckets.length; i++) {
      const b = buckets[i]!;
      const state = this.buckets.get(b.key);
      const tokens = state === undefined ? b.burst : Math.min(b.burst, state.tokens + (Math.max(0, now - state.ts) * b.perSecond) / 1000);
      bucketTokens.push(tokens);
      if (tokens < 1 && rejectedBy === null) {
        rejectedBy = bucketName(b);
        rejectedKind = 'rate';
        retryAfterMs = Math.ceil(((1 - tokens) * 1000) / b.perSecond);
      }
    }
    const quotaUsed: number[] = [];
    for (let i = 0; i < quotas.length; i++) {
      const q = quotas[i]!;
      const state = this.quotas.get(q.key);
      const used = state === undefined || state.resetAtMs <= now ? 0 : state.used;
      quotaUsed.push(used);
      if (used + q.cost > q.limit && rejectedBy === null) {
        rejectedBy = quotaName(q);
        rejectedKind = q.kind;
        retryAfterMs = q.resetAtMs - now;
      }
    }
    for (let i = 0; i < concurrency.length && rejectedBy === null; i++) {
      const c = concurrency[i]!;
      if (this.liveLeases(c.key, now).expiries.size >= c.limit) {
        rejectedBy = concurrencyName(c);
        rejectedKind = 'concurrency';
        retryAfterMs = 1000;
      }
    }
    if (rejectedBy !== null) return { allowed: false, rejectedBy, rejectedKind, retryAfterMs, bucketTokens, quotaUsed, nowMs: now };

    for (let i = 0; i < buckets.length; i++) {
      const b = buckets[i]!;
      const tokens = bucketTokens[i]! - 1;
      bucketTokens[i] = tokens;
      const fullAtMs = now + ((b.burst - tokens) * 1000) / b.perSecond;
      const state = this.buckets.get(b.key);
      if (state === undefined) this.buckets.set(b.key, { tokens, ts: now, fullAtMs });
      else {
        state.tokens = tokens;
        state.ts = now;
        state.fullAtMs = fullAtMs;
      }
    }
    for (let i = 0; i < quotas.length; i++) {
      const q = quotas[i]!;
      const used = quotaUsed[i]! + q.cost;
      quotaUsed[i] = used;
      const state = this.quotas.get(q.key);
      if (state === undefined) this.quotas.set(q.key, { used, resetAtMs: q.resetAtMs });
      else {
        state.used = used;
        state.resetAtMs = q.resetAtMs;
      }
    }
    for (let i = 0; i < concurrency.length; i++) {
      const c = concurrency[i]!;
      const held = this.liveLeases(c.key, now);
      const expiresAt = now + c.leaseTtlMs;
      held.expiries.set(c.leaseId, expiresAt);
      if (expiresAt < held.earliestExpiry) held.earliestExpiry = expiresAt;
    }
    return { allowed: true, rejectedBy: null, rejectedKind: null, retryAfterMs: 0, bucketTokens, quotaUsed, nowMs: now };
  }

  release(key: string, leaseId: string): void {
    this.leases.get(key)?.expiries.delete(leaseId);
  }

  renew(key: string, leaseId: string, leaseTtlMs: number): void {
    const held = this.leases.get(key);
    if (held === undefined || !held.expiries.has(leaseId)) return;
    const expiresAt = this.now() + leaseTtlMs;
    held.expiries.set(leaseId, expiresAt);
    if (expiresAt < held.earliestExpiry) held.earliestExpiry = expiresAt;
  }

  /** The state of `request`'s limits now, charging nothing (a usage view). */
  peek(request: LimitRequest): LimitPeek {
    const now = this.now();
    const bucketTokens = request.buckets.map((b) => {
      const state = this.buckets.get(b.key);
      return state === undefined ? b.burst : Math.min(b.burst, state.tokens + (Math.max(0, now - state.ts) * b.perSecond) / 1000);
    });
    const slotsHeld = request.concurrency.map((c) => (this.leases.has(c.key) ? this.liveLeases(c.key, now).expiries.size : 0));
    return { bucketTokens, quotaUsed: this.quotaUsed(request.quotas.map((q) => q.key)), slotsHeld, nowMs: now };
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

  /** `key`'s leases without the expired ones. Scans only once the earliest expiry has passed (not per request). */
  private liveLeases(key: string, now: number): Leases {
    let held = this.leases.get(key);
    if (held === undefined) this.leases.set(key, (held = { expiries: new Map(), earliestExpiry: Infinity }));
    else if (held.earliestExpiry <= now) {
      let earliest = Infinity;
      for (const [id, expiresAt] of held.expiries) {
        if (expiresAt <= now) held.expiries.delete(id);
        else if (expiresAt < earliest) earliest = expiresAt;
      }
      held.earliestExpiry = earliest;
    }
    return held;
  }

  /** Drops state that has no effect any more (full buckets, past periods, empty lease sets), so memory stays bounded. */
  private sweep(now: number): void {
    for (const [key, q] of this.quotas) if (q.resetAtMs <= now) this.quotas.delete(key);
    for (const key of this.leases.keys()) if (this.liveLeases(key, now).expiries.size === 0) this.leases.delete(key);
    for (const [key, b] of this.buckets) if (b.fullAtMs <= now) this.buckets.delete(key);
  }
}
