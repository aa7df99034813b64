/**
 * The ranges of limit values the store's arithmetic handles: the config
 * schema refuses values outside them, and both stores refuse a check whose
 * limits fall outside them (that check alone fails, see ./types.ts
 * LimitCheckError). The Lua script gets the same numbers (./wire.ts).
 *
 * Why these: Redis takes an expiry or increment only as an integer below
 * 1e14 once Lua prints it (Lua prints larger numbers as 1e+14), and a
 * bucket's key expires when it is full again: burst / perSecond seconds.
 */
import type { LimitRequest } from './types.js';

export const BOUNDS = Object.freeze({
  /** Tokens per second: one every 12 days at least. */
  rateMin: 1e-6,
  rateMax: 1e9,
  burstMax: 1e9,
  /** burst / perSecond: seconds an empty bucket takes to fill (its key's expiry, in ms, must stay below 1e14). */
  refillMaxS: 1e10,
  quotaMax: 1e12,
  costMax: Number.MAX_SAFE_INTEGER,
  concurrencyMax: 1e6,
  leaseTtlMaxMs: 1e9,
  /** A quota period's end, epoch seconds. */
  resetAtMaxS: 1e11,
});

const within = (x: number, lo: number, hi: number): boolean => x >= lo && x <= hi; // false for NaN
const intWithin = (x: number, lo: number, hi: number): boolean => Number.isInteger(x) && within(x, lo, hi);

/** A token bucket the arithmetic handles. */
export function validRate(perSecond: number, burst: number): boolean {
  return within(perSecond, BOUNDS.rateMin, BOUNDS.rateMax) && intWithin(burst, 1, BOUNDS.burstMax) && burst / perSecond <= BOUNDS.refillMaxS;
}

/** Why `request` cannot be checked (the same rules as ./limit.lua's), or null. */
export function invalidLimits(request: LimitRequest): string | null {
  for (const b of request.buckets) if (!validRate(b.perSecond, b.burst)) return `bucket ${b.key}: perSecond ${b.perSecond}, burst ${b.burst}`;
  for (const q of request.quotas) {
    if (!intWithin(q.limit, 0, BOUNDS.quotaMax) || !intWithin(q.cost, 1, BOUNDS.costMax) || !within(q.resetAtMs, 1, BOUNDS.resetAtMaxS * 1000)) return `quota ${q.key}: limit ${q.limit}, cost ${q.cost}`;
  }
  for (const c of request.concurrency) {
    if (!intWithin(c.limit, 1, BOUNDS.concurrencyMax) || !intWithin(c.leaseTtlMs, 1, BOUNDS.leaseTtlMaxMs)) return `concurrency ${c.key}: limit ${c.limit}`;
  }
  return null;
}
