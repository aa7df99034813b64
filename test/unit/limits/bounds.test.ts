/**
 * Limit values the store's arithmetic handles (src/limits/bounds.ts), held
 * in one place: the config schema refuses values outside them (a YAML plan,
 * an override, a key's own rate, and the admin API's key `rate`), and a
 * check carrying them anyway fails alone (see the contract suite).
 */
import { describe, expect, it } from 'vitest';
import { configProblems } from '../../helpers/config-problems.js';
import { createKeyBody } from '../../../src/admin/keys.js';
import { BOUNDS, invalidLimits, validRate } from '../../../src/limits/bounds.js';
import type { LimitRequest } from '../../../src/limits/types.js';

const HASH = `sha256:${'a'.repeat(43)}`;


const config = (plan: string, key = '') => `plans:
  p: ${plan}
tenants: [{ id: acme, plan: p }]
apiKeys: [{ id: ak_1, tenant: acme, hash: "${HASH}"${key} }]
routes: [{ name: api, match: { pathPrefix: / }, upstream: "http://127.0.0.1:1", auth: [apiKey] }]
`;

describe('limit bounds in the config', () => {
  it('a plan within them is valid', () => {
    expect(configProblems(config('{ rate: { perSecond: 0.001, burst: 10000 }, quota: { daily: 1000000000000 }, concurrency: 1000000 }'))).toEqual([]);
  });

  it.each([
    ['{ rate: { perSecond: 1e-300, burst: 1 } }', 'plans.p.rate.perSecond: Too small'],
    ['{ rate: { perSecond: 1e10, burst: 1 } }', 'plans.p.rate.perSecond: Too big'],
    ['{ rate: { perSecond: 5, burst: 2000000000 } }', 'plans.p.rate.burst: Too big'],
    ['{ rate: { perSecond: 0.00001, burst: 1000000 } }', 'plans.p.rate: burst / perSecond (seconds to refill an empty bucket) must be at most 10000000000'],
    ['{ quota: { daily: 1e13 } }', 'plans.p.quota.daily: Too big'],
    ['{ quota: { monthly: 1e13 } }', 'plans.p.quota.monthly: Too big'],
    ['{ concurrency: 2000000 }', 'plans.p.concurrency: Too big'],
  ])('%s is refused', (plan, problem) => {
    const problems = configProblems(config(plan));
    expect(problems.some((p) => p.startsWith(problem)), problems.join('\n')).toBe(true);
  });

  it("a key's own rate and a tenant's override are held to the same bounds", () => {
    const keyRate = configProblems(config('{ concurrency: 5 }', ', rate: { perSecond: 1e-300, burst: 1 }'));
    expect(keyRate.some((p) => p.startsWith('apiKeys[0].rate.perSecond: Too small')), keyRate.join('\n')).toBe(true);
    const override = configProblems(config('{ concurrency: 5 }').replace('{ id: acme, plan: p }', '{ id: acme, plan: p, overrides: { rate: { perSecond: 1e-300, burst: 1 } } }'));
    expect(override.some((p) => p.startsWith('tenants[0].overrides.rate.perSecond: Too small')), override.join('\n')).toBe(true);
  });

  it("the admin API refuses a key `rate` outside them (it validates with the config's schema)", () => {
    expect(createKeyBody.safeParse({ rate: { perSecond: 1e-300, burst: 1 } }).success).toBe(false);
    expect(createKeyBody.safeParse({ rate: { perSecond: 2, burst: 1e12 } }).success).toBe(false);
    expect(createKeyBody.safeParse({ rate: { perSecond: 2, burst: 4 } }).success).toBe(true);
  });
});

describe('invalidLimits: the same rules for a check', () => {
  const req = (over: Partial<LimitRequest>): LimitRequest => ({ buckets: [], quotas: [], concurrency: [], ...over });

  it('accepts a check within the bounds, and says which limit is out of them', () => {
    expect(invalidLimits(req({ buckets: [{ key: 'b', perSecond: 5, burst: 10 }], quotas: [{ key: 'q', kind: 'quota_daily', limit: 0, cost: 1, resetAtMs: 1_780_000_000_000 }] }))).toBeNull();
    expect(invalidLimits(req({ buckets: [{ key: 'b', perSecond: 1e-300, burst: 1 }] }))).toMatch(/^bucket b/);
    expect(invalidLimits(req({ buckets: [{ key: 'b', perSecond: Number.NaN, burst: 1 }] }))).toMatch(/^bucket b/);
    expect(invalidLimits(req({ quotas: [{ key: 'q', kind: 'quota_daily', limit: 10, cost: 0, resetAtMs: 1 }] }))).toMatch(/^quota q/);
    expect(invalidLimits(req({ concurrency: [{ key: 'c', limit: 0.5, leaseId: 'x', leaseTtlMs: 1000 }] }))).toMatch(/^concurrency c/);
  });

  it('the widest rate in bounds keeps the arithmetic in integers Redis takes (below 1e14 once Lua prints them)', () => {
    expect(validRate(BOUNDS.rateMin, 1)).toBe(true);
    expect(validRate(BOUNDS.burstMax / BOUNDS.refillMaxS, BOUNDS.burstMax)).toBe(true);
    // The bucket key's expiry (ms to refill) and the retry (ms for one token) at their largest.
    expect(BOUNDS.refillMaxS * 1000 + 1000).toBeLessThan(1e14);
    expect(1000 / BOUNDS.rateMin).toBeLessThan(1e14);
    expect(BOUNDS.burstMax * 1000).toBeLessThan(1e14);
  });
});
