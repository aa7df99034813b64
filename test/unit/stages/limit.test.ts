/**
 * Stage 6, limit (src/stages/limit.ts), after stages 1–5 on an in-memory
 * context, with the in-memory limit store: a token bucket that empties (429
 * rate_limited, Retry-After, rate-limit headers on ctx.limitHeaders) and
 * refills; a daily quota in route cost units (a refused request charges
 * nothing; warnings crossed); a concurrency lease set on ctx.lease and freed
 * by release or expiry; an API key's own bucket; a tenant without limits and
 * a public route pass untouched. The stage reads Date.now() itself, so Date
 * is faked (nothing else) and the store is given the same clock.
 */
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { generateApiKey } from '../../../src/auth/api-key-format.js';
import type { CompiledConfig } from '../../../src/config/compile.js';
import { MemoryLimitStore } from '../../../src/limits/memory-store.js';
import { HistogramSeries } from '../../../src/observability/series-metrics.js';
import { authenticate } from '../../../src/stages/authenticate.js';
import { authorize } from '../../../src/stages/authorize.js';
import { limit } from '../../../src/stages/limit.js';
import { route } from '../../../src/stages/route.js';
import { sanitize } from '../../../src/stages/sanitize.js';
import { resolveTenant } from '../../../src/stages/tenant.js';
import { compileConfig, refusal, requestContext, runStages } from '../../helpers/stage-context.js';

const NOW = Date.UTC(2026, 2, 10, 12, 0, 0); // noon UTC: the daily quota resets in 43,200 s
const NOW_S = NOW / 1000;
const KEYS = Object.fromEntries(['rated', 'metered', 'single', 'free', 'capped'].map((t) => [t, generateApiKey({ env: 'live', id: `ak_${t}` })]));

let config: CompiledConfig;
let store: MemoryLimitStore;
let wait: HistogramSeries;

beforeAll(async () => {
  config = await compileConfig(`
plans:
  burst2: { rate: { perSecond: 1, burst: 2 } }
  daily3: { quota: { daily: 3 } }
  one: { concurrency: 1 }
  free: {}
tenants:
  - { id: rated, plan: burst2 }
  - { id: metered, plan: daily3 }
  - { id: single, plan: one }
  - { id: free, plan: free }
apiKeys:
  - { id: ak_rated, tenant: rated, hash: "${KEYS.rated!.hash}" }
  - { id: ak_metered, tenant: metered, hash: "${KEYS.metered!.hash}" }
  - { id: ak_single, tenant: single, hash: "${KEYS.single!.hash}" }
  - { id: ak_free, tenant: free, hash: "${KEYS.free!.hash}" }
  - { id: ak_capped, tenant: free, hash: "${KEYS.capped!.hash}", rate: { perSecond: 1, burst: 1 } }
routes:
  - { name: api, match: { pathPrefix: /api }, upstream: "http://127.0.0.1:3000" }
  - { name: heavy, match: { pathPrefix: /heavy }, upstream: "http://127.0.0.1:3000", cost: 2 }
  - { name: public, match: { pathPrefix: /public }, upstream: "http://127.0.0.1:3000", auth: [none] }
`);
});
beforeEach(() => {
  vi.useFakeTimers({ toFake: ['Date'] });
  vi.setSystemTime(NOW);
  store = new MemoryLimitStore(() => Date.now());
  wait = new HistogramSeries(new Float64Array([0.001]));
});
afterEach(() => vi.useRealTimers());

async function limited(tenant: string | null, url = '/api/x') {
  const headers: [string, string][] = tenant === null ? [] : [['X-API-Key', KEYS[tenant]!.key]];
  const ctx = requestContext(config, { url, headers });
  const rejection = await runStages(ctx, [route, sanitize, authenticate, resolveTenant, authorize, (c) => limit(c, store, wait)]);
  return { ctx, refused: refusal(rejection), headers: rejection?.headers };
}

/** ctx.limitHeaders (name, value, …) as an object. */
const limitHeaders = (flat: readonly string[] | null): Record<string, string> | null =>
  flat === null ? null : Object.fromEntries(Array.from({ length: flat.length / 2 }, (_, i) => [flat[2 * i]!, flat[2 * i + 1]!]));

/** The fields of the limit nearest to refusing (`name`), and the draft-10 policy of all the request's limits. */
const rateHeaders = (limitValue: number, remaining: number, resetS: number, name = 'rate', policy = `"rate";q=${limitValue};w=${limitValue}`) => ({
  'ratelimit-limit': `${limitValue}`,
  'ratelimit-remaining': `${remaining}`,
  'ratelimit-reset': `${resetS}`,
  'x-ratelimit-limit': `${limitValue}`,
  'x-ratelimit-remaining': `${remaining}`,
  'x-ratelimit-reset': `${NOW_S + resetS}`,
  'ratelimit-policy': policy,
  ratelimit: `"${name}";r=${remaining};t=${resetS}`,
});
const dailyHeaders = (remaining: number) => rateHeaders(3, remaining, 43_200, 'quota_daily', '"quota_daily";q=3;w=86400');

describe('token bucket', () => {
  it('burst 2: two admitted with headers counting down, the third → 429 rate_limited with Retry-After', async () => {
    const first = await limited('rated');
    expect(first.refused).toBeUndefined();
    expect(limitHeaders(first.ctx.limitHeaders)).toEqual(rateHeaders(2, 1, 1));
    const second = await limited('rated');
    expect(limitHeaders(second.ctx.limitHeaders)).toEqual(rateHeaders(2, 0, 2));

    const third = await limited('rated');
    expect(third.refused).toEqual({ status: 429, code: 'rate_limited', reason: 'rate' });
    expect(third.headers).toEqual({ ...rateHeaders(2, 0, 2), 'retry-after': '1' });
    expect(third.ctx.limitedBy).toBe('rate');
    expect(limitHeaders(third.ctx.limitHeaders)).toEqual(rateHeaders(2, 0, 2));
    expect(third.ctx.lease).toBeNull();
    expect([wait.count, wait.sum]).toEqual([3, 0]); // the memory store decides at once
  });

  it('one token back after a second of the store clock', async () => {
    await limited('rated');
    await limited('rated');
    expect((await limited('rated')).refused?.code).toBe('rate_limited');
    vi.setSystemTime(NOW + 1000);
    const again = await limited('rated');
    expect(again.refused).toBeUndefined();
    expect(limitHeaders(again.ctx.limitHeaders)!['ratelimit-remaining']).toBe('0');
  });

  it("an API key's own bucket limits it inside an unlimited tenant", async () => {
    const first = await limited('capped');
    expect(first.refused).toBeUndefined();
    expect(limitHeaders(first.ctx.limitHeaders)).toEqual(rateHeaders(1, 0, 1));
    const second = await limited('capped');
    expect(second.refused).toEqual({ status: 429, code: 'rate_limited', reason: 'rate' });
    expect(second.headers!['retry-after']).toBe('1');
    // The tenant's other key has no bucket of its own: not limited.
    expect((await limited('free')).refused).toBeUndefined();
  });
});

describe('quota', () => {
  it('daily 3 in cost units: a refused request charges nothing; warnings at 80 % and 95 %', async () => {
    expect((await limited('metered')).refused).toBeUndefined();
    const second = await limited('metered');
    expect(limitHeaders(second.ctx.limitHeaders)).toEqual(dailyHeaders(1));
    expect(second.ctx.quotaCrossings).toBeNull();

    const heavy = await limited('metered', '/heavy/report'); // cost 2: 2 + 2 > 3
    expect(heavy.refused).toEqual({ status: 429, code: 'quota_exceeded', reason: 'quota_daily' });
    expect(heavy.headers!['retry-after']).toBe('43200');
    expect(heavy.ctx.limitedBy).toBe('quota_daily');

    const third = await limited('metered'); // cost 1 still fits: the heavy one took nothing
    expect(third.refused).toBeUndefined();
    expect(limitHeaders(third.ctx.limitHeaders)!['ratelimit-remaining']).toBe('0');
    expect(third.ctx.quotaCrossings).toEqual([
      { quota: 'daily', threshold: 0.8, used: 3, limit: 3, period: '2026-03-10' },
      { quota: 'daily', threshold: 0.95, used: 3, limit: 3, period: '2026-03-10' },
    ]);

    const fourth = await limited('metered');
    expect(fourth.refused).toEqual({ status: 429, code: 'quota_exceeded', reason: 'quota_daily' });
    expect(fourth.headers).toEqual({ ...dailyHeaders(0), 'retry-after': '43200' });
  });

  it('a new UTC day starts a new count', async () => {
    for (let i = 0; i < 3; i++) await limited('metered');
    expect((await limited('metered')).refused?.code).toBe('quota_exceeded');
    vi.setSystemTime(Date.UTC(2026, 2, 11, 0, 0, 1));
    const nextDay = await limited('metered');
    expect(nextDay.refused).toBeUndefined();
    expect(limitHeaders(nextDay.ctx.limitHeaders)!['ratelimit-remaining']).toBe('2');
  });
});

describe('concurrency', () => {
  it('the lease is set on ctx.lease; a second request → 429 concurrency_limited until it is released', async () => {
    const first = await limited('single');
    expect(first.refused).toBeUndefined();
    expect(first.ctx.lease).toHaveLength(1);
    const lease = first.ctx.lease![0]!;
    expect(lease).toMatchObject({ key: 'tg:{single}:cr' });
    expect(lease.leaseId).toMatch(/^\d+$/);
    expect(first.ctx.limitHeaders).toBeNull(); // no bucket or quota to report

    const second = await limited('single');
    expect(second.refused).toEqual({ status: 429, code: 'concurrency_limited', reason: 'concurrency' });
    expect(second.headers).toEqual({ 'retry-after': '1' });
    expect(second.ctx.lease).toBeNull();
    expect(second.ctx.limitedBy).toBe('concurrency');

    store.release(lease.key, lease.leaseId);
    const third = await limited('single');
    expect(third.refused).toBeUndefined();
    expect(third.ctx.lease![0]!.leaseId).not.toBe(lease.leaseId);
  });

  it('a lease not renewed frees its slot after the lease TTL', async () => {
    expect((await limited('single')).refused).toBeUndefined();
    expect((await limited('single')).refused?.code).toBe('concurrency_limited');
    vi.setSystemTime(NOW + 30_000);
    expect((await limited('single')).refused).toBeUndefined();
  });
});

describe('nothing to limit', () => {
  it('a tenant with no limits passes: no headers, no lease, no store call', async () => {
    for (let i = 0; i < 5; i++) {
      const { ctx, refused } = await limited('free');
      expect(refused).toBeUndefined();
      expect(ctx.tenant!.id).toBe('free');
      expect([ctx.limitHeaders, ctx.lease, ctx.limitedBy, ctx.quotaCrossings]).toEqual([null, null, null, null]);
    }
    expect(wait.count).toBe(0);
  });

  it('a public route has no tenant: passes without a check', async () => {
    const { ctx, refused } = await limited(null, '/public/x');
    expect(refused).toBeUndefined();
    expect([ctx.tenant, ctx.limitHeaders, ctx.lease]).toEqual([null, null, null]);
    expect(wait.count).toBe(0);
  });
});
