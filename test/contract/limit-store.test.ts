/**
 * One contract, two stores: the in-memory store (clock injected) and the
 * Redis store (a real redis-server on a free port; Redis's own clock, so the
 * Redis run waits real time where the memory run advances its clock).
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FailoverLimitStore, type FailureKind } from '../../src/limits/failover-store.js';
import { MemoryLimitStore } from '../../src/limits/memory-store.js';
import { RedisLimitStore } from '../../src/limits/redis-store.js';
import { LimitCheckError, StoreUnavailableError, type LimitDecision, type LimitRequest, type LimitStore } from '../../src/limits/types.js';
import type { Logger } from '../../src/observability/logger.js';
import { RedisServer } from '../helpers/redis.js';

interface Harness {
  store: LimitStore;
  /** Lets `ms` pass for the store. */
  advance(ms: number): Promise<void>;
  /**
   * Another replica on the same counts, and how it dies (no releases, no
   * renewals). The memory store has no other replica: its own unrenewed
   * leases stand in for a crashed one's.
   */
  replica(): Promise<{ store: LimitStore; crash(): Promise<void> }>;
}

const redis = new RedisServer();
let redisStore: RedisLimitStore;
/** The same with local credit on (the config's default): far from the limits it may decide without Redis. */
let creditStore: RedisLimitStore;
let fakeNow = Date.parse('2026-06-01T12:00:00Z');
const memoryStore = new MemoryLimitStore(() => fakeNow);

beforeAll(async () => {
  await redis.start();
  redisStore = new RedisLimitStore({ redis: redis.url, commandTimeoutMs: 1000 });
  creditStore = new RedisLimitStore({ redis: redis.url, commandTimeoutMs: 1000, localCreditMs: 50 });
  await Promise.all([redisStore.ready(5000), creditStore.ready(5000)]);
});
afterAll(async () => {
  await redisStore.close();
  await creditStore.close();
  await redis.kill();
});

const harnesses: [string, () => Harness][] = [
  ['memory', () => ({ store: memoryStore, advance: async (ms) => void (fakeNow += ms), replica: async () => ({ store: memoryStore, crash: async () => {} }) })],
  [
    'redis',
    () => ({
      store: redisStore,
      advance: (ms) => new Promise((r) => setTimeout(r, ms)),
      replica: async () => {
        const store = new RedisLimitStore({ redis: redis.url, commandTimeoutMs: 1000 });
        await store.ready(5000);
        return { store, crash: async () => store.client.disconnect() };
      },
    }),
  ],
  [
    'redis (local credit)',
    () => ({
      store: creditStore,
      advance: (ms) => new Promise((r) => setTimeout(r, ms)),
      replica: async () => {
        const store = new RedisLimitStore({ redis: redis.url, commandTimeoutMs: 1000, localCreditMs: 50 });
        await store.ready(5000);
        return { store, crash: async () => store.client.disconnect() };
      },
    }),
  ],
];

describe.each(harnesses)('LimitStore contract: %s', (_name, make) => {
  const base = () => `t:{${randomUUID()}}:`;
  const resetAtMs = () => Date.now() + 3_600_000;
  const bucketOnly = (b: string, perSecond = 5, burst = 10): LimitRequest => ({ buckets: [{ key: `${b}b`, perSecond, burst }], quotas: [], concurrency: [] });

  it('a 5/s burst-10 bucket admits 10 of 30 at once, then about 5 per second', async () => {
    const { store, advance } = make();
    const b = base();
    const first = await Promise.all(Array.from({ length: 30 }, () => store.check(bucketOnly(b))));
    expect(first.filter((d) => d.allowed)).toHaveLength(10);
    const refused = first.find((d) => !d.allowed)!;
    expect(refused.rejectedBy).toBe('rate');
    expect(refused.retryAfterMs).toBeGreaterThan(0);
    expect(refused.retryAfterMs).toBeLessThanOrEqual(200);
    await advance(1000);
    const later = await Promise.all(Array.from({ length: 30 }, () => store.check(bucketOnly(b))));
    const admitted = later.filter((d) => d.allowed).length;
    expect(admitted).toBeGreaterThanOrEqual(5);
    expect(admitted).toBeLessThanOrEqual(6);
  });

  it('quotas count cost units and refuse past the limit, with retry at the period end', async () => {
    const { store } = make();
    const b = base();
    const reset = resetAtMs();
    const req: LimitRequest = { buckets: [], quotas: [{ key: `${b}q`, kind: 'quota_daily', limit: 10, cost: 3, resetAtMs: reset }], concurrency: [] };
    const results = [];
    for (let i = 0; i < 4; i++) results.push(await store.check(req));
    expect(results.map((d) => d.allowed)).toEqual([true, true, true, false]);
    expect(results[2]!.quotaUsed).toEqual([9]);
    expect(results[3]!.rejectedBy).toBe('quota_daily');
    expect(results[3]!.retryAfterMs).toBeGreaterThan(3_500_000);
  });

  it('a request refused by one limit charges none of the others', async () => {
    const { store } = make();
    const b = base();
    const withQuota = (kind: 'quota_daily' | 'quota_monthly'): LimitRequest => ({
      buckets: [{ key: `${b}b`, perSecond: 0.001, burst: 10 }],
      quotas: [{ key: `${b}q`, kind, limit: 2, cost: 1, resetAtMs: resetAtMs() }],
      concurrency: [],
    });
    const outcomes = [];
    for (let i = 0; i < 5; i++) outcomes.push(await store.check(withQuota('quota_monthly')));
    expect(outcomes.map((d) => d.allowed)).toEqual([true, true, false, false, false]);
    expect(outcomes[4]!.rejectedBy).toBe('quota_monthly');
    const after = await store.check({ ...bucketOnly(b, 0.001, 10), buckets: [{ key: `${b}b`, perSecond: 0.001, burst: 10 }] });
    expect(Math.floor(after.bucketTokens[0]!)).toBe(7); // 10 - 2 admitted - this one; the 3 refused charged nothing
  });

  it('a per-key bucket refuses without charging the tenant bucket', async () => {
    const { store } = make();
    const b = base();
    const req: LimitRequest = {
      buckets: [
        { key: `${b}b:t`, perSecond: 0.001, burst: 100 },
        { key: `${b}b:k`, perSecond: 0.001, burst: 2 },
      ],
      quotas: [],
      concurrency: [],
    };
    const results = [];
    for (let i = 0; i < 4; i++) results.push(await store.check(req));
    expect(results.map((d) => d.allowed)).toEqual([true, true, false, false]);
    expect(Math.floor(results[3]!.bucketTokens[0]!)).toBe(98);
  });

  it('concurrency: a full set refuses, a release frees a slot', async () => {
    const { store, advance } = make();
    const b = base();
    const lease = (leaseId: string): LimitRequest => ({ buckets: [], quotas: [], concurrency: [{ key: `${b}c`, limit: 2, leaseId, leaseTtlMs: 60_000 }] });
    expect((await store.check(lease('a'))).allowed).toBe(true);
    expect((await store.check(lease('b'))).allowed).toBe(true);
    const refused = await store.check(lease('c'));
    expect(refused.rejectedBy).toBe('concurrency');
    expect(refused.retryAfterMs).toBe(1000);
    store.release(`${b}c`, 'a');
    await advance(20);
    expect((await store.check(lease('d'))).allowed).toBe(true);
    expect((await store.check(lease('e'))).allowed).toBe(false);
  });

  it("a crashed replica's slots free themselves once its lease TTL passes unrenewed", async () => {
    const { advance, replica } = make();
    const b = base();
    const lease = (leaseId: string, leaseTtlMs: number): LimitRequest => ({ buckets: [], quotas: [], concurrency: [{ key: `${b}c`, limit: 2, leaseId, leaseTtlMs }] });
    const crashing = await replica();
    expect((await crashing.store.check(lease('a', 300))).allowed).toBe(true);
    expect((await crashing.store.check(lease('b', 300))).allowed).toBe(true);
    await crashing.crash(); // no release, no renewal
    const { store } = make();
    expect((await store.check(lease('c', 60_000))).rejectedBy).toBe('concurrency');
    await advance(400);
    expect((await store.check(lease('d', 60_000))).allowed).toBe(true);
    expect((await store.check(lease('e', 60_000))).allowed).toBe(true);
    expect((await store.check(lease('f', 60_000))).allowed).toBe(false);
  });

  it('concurrent checks in one turn, across tenants and keys, each decided on its own limits', async () => {
    const { store } = make();
    const [t1, t2] = [base(), base()];
    const reset = resetAtMs();
    // Interleaved: tenant 1 (burst 3), tenant 2 (burst 5), tenant 2 with a per-key bucket of 2.
    const req1: LimitRequest = { buckets: [{ key: `${t1}b:t`, perSecond: 0.001, burst: 3 }], quotas: [], concurrency: [] };
    const req2: LimitRequest = { buckets: [{ key: `${t2}b:t`, perSecond: 0.001, burst: 5 }], quotas: [{ key: `${t2}q`, kind: 'quota_daily', limit: 100, cost: 2, resetAtMs: reset }], concurrency: [] };
    const req2k: LimitRequest = { ...req2, buckets: [req2.buckets[0]!, { key: `${t2}b:k`, perSecond: 0.001, burst: 2 }] };
    const requests = Array.from({ length: 12 }, (_, i) => [req1, req2, req2k][i % 3]!);
    const out = await Promise.all(requests.map((r) => store.check(r)));
    // Tenant 1: 4 requests, 3 admitted. Tenant 2: 4 plain + 4 with the key bucket, 5 tokens shared;
    // the key's own bucket admits 2 of its 4.
    expect(out.filter((d, i) => i % 3 === 0).map((d) => d.allowed)).toEqual([true, true, true, false]);
    const t2Outcomes = out.filter((_d, i) => i % 3 !== 0);
    expect(t2Outcomes.map((d) => d.allowed)).toEqual([true, true, true, true, true, false, false, false]);
    expect(t2Outcomes[5]!.rejectedBy).toBe('rate');
    expect(t2Outcomes.map((d) => d.quotaUsed[0])).toEqual([2, 4, 6, 8, 10, 10, 10, 10]);
    expect(Math.floor(t2Outcomes[3]!.bucketTokens[1]!)).toBe(0); // the key's 2nd request took its last token
  });

  it('in one turn, a refused request charges nothing and later requests see earlier charges', async () => {
    const { store } = make();
    const b = base();
    const reset = resetAtMs();
    // Quota 5, cost 2: admitted, admitted, refused (would reach 6), then a cost-1 request still fits.
    const cost = (n: number): LimitRequest => ({
      buckets: [{ key: `${b}b`, perSecond: 0.001, burst: 100 }],
      quotas: [{ key: `${b}q`, kind: 'quota_daily', limit: 5, cost: n, resetAtMs: reset }],
      concurrency: [{ key: `${b}c`, limit: 10, leaseId: `l${n}-${Math.random()}`, leaseTtlMs: 60_000 }],
    });
    const out = await Promise.all([cost(2), cost(2), cost(2), cost(1), cost(1)].map((r) => store.check(r)));
    expect(out.map((d) => d.allowed)).toEqual([true, true, false, true, false]);
    expect(out.map((d) => d.quotaUsed[0])).toEqual([2, 4, 4, 5, 5]);
    // The refused ones took no token and no slot.
    expect(out.map((d) => Math.floor(d.bucketTokens[0]!))).toEqual([99, 98, 98, 97, 97]);
    const after = await store.check({ buckets: [], quotas: [], concurrency: [{ key: `${b}c`, limit: 4, leaseId: 'last', leaseTtlMs: 60_000 }] });
    expect(after.allowed).toBe(true); // 3 slots held, limit 4
    const full = await store.check({ buckets: [], quotas: [], concurrency: [{ key: `${b}c`, limit: 4, leaseId: 'over', leaseTtlMs: 60_000 }] });
    expect(full.rejectedBy).toBe('concurrency');
  });

  it('identical requests in one turn: a prefix is admitted, each sees the charges before it, the rest see the same state', async () => {
    const { store } = make();
    const b = base();
    const req: LimitRequest = {
      buckets: [{ key: `${b}b`, perSecond: 0.001, burst: 100 }],
      quotas: [{ key: `${b}q`, kind: 'quota_monthly', limit: 7, cost: 2, resetAtMs: resetAtMs() }],
      concurrency: [{ key: `${b}c`, limit: 10, leaseId: 'same', leaseTtlMs: 60_000 }],
    };
    const out = await Promise.all(Array.from({ length: 6 }, () => store.check(req)));
    expect(out.map((d) => d.allowed)).toEqual([true, true, true, false, false, false]);
    expect(out.map((d) => d.quotaUsed[0])).toEqual([2, 4, 6, 6, 6, 6]);
    expect(out.map((d) => Math.floor(d.bucketTokens[0]!))).toEqual([99, 98, 97, 97, 97, 97]);
    expect(out.slice(3).every((d) => d.rejectedBy === 'quota_monthly' && d.retryAfterMs > 3_500_000)).toBe(true);
    expect(out.slice(0, 3).every((d) => d.rejectedBy === null && d.retryAfterMs === 0)).toBe(true);
  });

  it('a release and checks in the same turn: the slot is free for them', async () => {
    const { store } = make();
    const b = base();
    const lease = (leaseId: string): LimitRequest => ({ buckets: [], quotas: [], concurrency: [{ key: `${b}c`, limit: 1, leaseId, leaseTtlMs: 60_000 }] });
    expect((await store.check(lease('a'))).allowed).toBe(true);
    store.release(`${b}c`, 'a');
    const [first, second] = await Promise.all([store.check(lease('b')), store.check(lease('c'))]);
    expect([first.allowed, second.allowed]).toEqual([true, false]);
  });

  it('a renewed lease keeps its slot past its original TTL', async () => {
    const { store, advance } = make();
    const b = base();
    const req = (leaseId: string): LimitRequest => ({ buckets: [], quotas: [], concurrency: [{ key: `${b}c`, limit: 1, leaseId, leaseTtlMs: 300 }] });
    expect((await store.check(req('long'))).allowed).toBe(true);
    await advance(200);
    store.renew(`${b}c`, 'long', 300);
    await advance(200);
    expect((await store.check(req('other'))).allowed).toBe(false);
  });

  it('a check whose limits the store cannot handle fails alone: the other checks of its turn are decided', async () => {
    const { store } = make();
    const b = base();
    const ok: LimitRequest = { buckets: [{ key: `${b}b`, perSecond: 0.001, burst: 3 }], quotas: [], concurrency: [{ key: `${b}c`, limit: 5, leaseId: 'ok', leaseTtlMs: 60_000 }] };
    const tiny: LimitRequest = { ...ok, buckets: [...ok.buckets, { key: `${b}b:k`, perSecond: 1e-300, burst: 1 }] };
    const huge: LimitRequest = { buckets: [], quotas: [{ key: `${b}q`, kind: 'quota_daily', limit: 1e300, cost: 1, resetAtMs: resetAtMs() }], concurrency: [] };
    // The memory store refuses at once (a throw), the Redis store per check in its batch's reply.
    const settle = (r: LimitRequest) => Promise.resolve().then(() => store.check(r)).then((d) => (d.allowed ? 'admitted' : d.rejectedBy), (e: unknown) => (e instanceof LimitCheckError ? e.reason : String(e)));
    const out = await Promise.all([ok, tiny, ok, huge, ok, ok].map(settle));
    expect(out).toEqual(['admitted', 'invalid_limits', 'admitted', 'invalid_limits', 'admitted', 'rate']);
    // The failed ones charged nothing: three tokens and three slots taken, by the three admitted.
    const after = await store.check({ ...ok, concurrency: [{ key: `${b}c`, limit: 3, leaseId: 'after', leaseTtlMs: 60_000 }] });
    expect(after.rejectedBy).toBe('rate');
    expect(Math.floor(after.bucketTokens[0]!)).toBe(0);
  });

  it("a replica's unused local credit never refuses what the limit allows: waves of up to 16 in flight under concurrency 20", async () => {
    const { store } = make();
    const b = base();
    const limits = { buckets: [{ key: `${b}b`, perSecond: 1e6, burst: 1e6 }], quotas: [{ key: `${b}q`, kind: 'quota_daily' as const, limit: 1e9, cost: 1, resetAtMs: resetAtMs() }] };
    let lease = 0;
    const req = (): LimitRequest => ({ ...limits, concurrency: [{ key: `${b}c`, limit: 20, leaseId: `w${++lease}`, leaseTtlMs: 60_000 }] });
    // A fixed pseudo-random pattern: each wave's checks arrive over a few turns, and all end before the next wave.
    let seed = 7;
    const random = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
    let refused = 0;
    for (let wave = 0; wave < 150; wave++) {
      const n = 1 + Math.floor(random() * 16);
      const pending: (LimitDecision | Promise<LimitDecision>)[] = [];
      const leases: string[] = [];
      for (let i = 0; i < n; i++) {
        const r = req();
        leases.push(r.concurrency[0]!.leaseId);
        pending.push(store.check(r));
        if (random() < 0.3) await new Promise((resolve) => setImmediate(resolve));
      }
      const decisions = await Promise.all(pending);
      refused += decisions.filter((d) => !d.allowed).length;
      decisions.forEach((d, i) => d.allowed && store.release(`${b}c`, leases[i]!));
    }
    expect(refused).toBe(0);
  });

  it('two shapes of one tenant (two keys with their own rate) share its concurrency: what one reserved ahead does not refuse the other', async () => {
    const { store } = make();
    const b = base();
    const tenantBucket = { key: `${b}b:t`, perSecond: 1e6, burst: 1e6 };
    const shape = (k: string, leaseId: string): LimitRequest => ({
      buckets: [tenantBucket, { key: `${b}b:${k}`, perSecond: 1e6, burst: 1e6 }],
      quotas: [],
      concurrency: [{ key: `${b}c`, limit: 20, leaseId, leaseTtlMs: 60_000 }],
    });
    const first = await Promise.all(Array.from({ length: 4 }, (_, i) => store.check(shape('a', `a${i}`))));
    expect(first.every((d) => d.allowed)).toBe(true);
    for (let i = 0; i < 4; i++) store.release(`${b}c`, `a${i}`);
    const other = await Promise.all(Array.from({ length: 16 }, (_, i) => store.check(shape('b', `b${i}`))));
    expect(other.filter((d) => !d.allowed)).toEqual([]);
  });

  // Named limits (SPEC §11): each item names its limit; several concurrency limits; windows ending at any instant.
  const named = (b: string, leaseId: string, project: string): LimitRequest => ({
    buckets: [{ key: `${b}n:api:r:t`, name: 'api-per-minute', perSecond: 1000 / 60, burst: 1000 }],
    quotas: [{ key: `${b}n:deploy:q:1h:0:t`, name: 'deployments', kind: 'quota', limit: 6, cost: 1, resetAtMs: Date.now() + 60_000 }],
    concurrency: [
      { key: `${b}cr`, limit: 4, leaseId, leaseTtlMs: 60_000 },
      { key: `${b}n:jobs:c:p:${project}`, name: 'jobs', limit: 2, leaseId, leaseTtlMs: 60_000 },
    ],
  });

  it('named limits, all or nothing: the one that refuses is named, and a refusal takes no slot, token or unit of the others', async () => {
    const { store } = make();
    const b = base();
    // 5 at once for project p1: 2 fit the per-project jobs limit.
    const out = await Promise.all(Array.from({ length: 5 }, (_, i) => store.check(named(b, `p1-${i}`, 'p1'))));
    expect(out.map((d) => d.allowed)).toEqual([true, true, false, false, false]);
    expect(out.slice(2).map((d) => [d.rejectedBy, d.rejectedKind, d.retryAfterMs])).toEqual(Array(3).fill(['jobs', 'concurrency', 1000]));
    expect(out.map((d) => d.quotaUsed[0])).toEqual([1, 2, 2, 2, 2]);
    // Project p2: 2 more fit the tenant's concurrency of 4; then it refuses (named by its shorthand name).
    const p2 = await Promise.all(Array.from({ length: 3 }, (_, i) => store.check(named(b, `p2-${i}`, 'p2'))));
    expect(p2.map((d) => d.rejectedBy)).toEqual([null, null, 'concurrency']);
    const peek = await store.peek(named(b, 'x', 'p1'));
    expect(peek.quotaUsed).toEqual([4]);
    expect(peek.slotsHeld).toEqual([4, 2]);
    expect(Math.round(peek.bucketTokens[0]!)).toBe(996);
  });

  it('a named quota refuses with its window\'s end as Retry-After, and its refusal holds no slot', async () => {
    const { store } = make();
    const b = base();
    const quota = (leaseId: string, resetAtMs: number): LimitRequest => ({
      buckets: [],
      quotas: [{ key: `${b}n:m:q:1m:0:t`, name: 'per-minute', kind: 'quota', limit: 2, cost: 1, resetAtMs }],
      concurrency: [{ key: `${b}n:c:c:t`, name: 'c', limit: 3, leaseId, leaseTtlMs: 60_000 }],
    });
    const end = Date.now() + 42_000;
    const out = await Promise.all(['a', 'b', 'c'].map((id) => store.check(quota(id, end))));
    expect(out.map((d) => d.rejectedBy)).toEqual([null, null, 'per-minute']);
    expect(out[2]!.rejectedKind).toBe('quota');
    // To the window's end by the store's clock (Redis keeps whole seconds of it).
    expect(Math.abs(out[2]!.retryAfterMs - (end - out[2]!.nowMs))).toBeLessThanOrEqual(1000);
    expect((await store.peek(quota('x', end))).slotsHeld).toEqual([2]);
  });
});

describe('Redis store: concurrency counted per replica', () => {
  const conc = (b: string, limit: number, leaseId: string): LimitRequest => ({ buckets: [], quotas: [], concurrency: [{ key: `${b}c`, limit, leaseId, leaseTtlMs: 60_000 }] });
  const other = async () => {
    const store = new RedisLimitStore({ redis: redis.url, commandTimeoutMs: 1000 });
    await store.ready(5000);
    return store;
  };

  it('two replicas share one limit: slots held by one are refused to the other until released', async () => {
    const b = `t:{${randomUUID()}}:`;
    const replicaB = await other();
    try {
      expect((await redisStore.check(conc(b, 3, 'a1'))).allowed).toBe(true);
      expect((await redisStore.check(conc(b, 3, 'a2'))).allowed).toBe(true);
      expect((await replicaB.check(conc(b, 3, 'b1'))).allowed).toBe(true);
      expect((await replicaB.check(conc(b, 3, 'b2'))).rejectedBy).toBe('concurrency');
      expect((await redisStore.check(conc(b, 3, 'a3'))).rejectedBy).toBe('concurrency');
      redisStore.release(`${b}c`, 'a1');
      await new Promise((r) => setTimeout(r, RedisLimitStore.RELEASE_HOLD_MS * 5)); // the release goes alone
      expect((await replicaB.check(conc(b, 3, 'b3'))).allowed).toBe(true);
      // One field per replica, each with its own count.
      const fields = await redisStore.client.hgetall(`${b}c`);
      expect(Object.values(fields).map((v) => Number(v.split(' ')[0])).sort()).toEqual([1, 2]);
    } finally {
      await replicaB.close();
    }
  });

  it("a wrong count (a batch Redis ran but whose answer was lost) is repaired by the replica's next renewal", async () => {
    const b = `t:{${randomUUID()}}:`;
    const replicaB = await other();
    try {
      expect((await redisStore.check(conc(b, 3, 'a1'))).allowed).toBe(true);
      const [field] = Object.keys(await redisStore.client.hgetall(`${b}c`));
      await redisStore.client.hset(`${b}c`, field!, `3 ${Date.now() + 60_000}`); // 2 grants this replica never heard of
      expect((await replicaB.check(conc(b, 3, 'b1'))).rejectedBy).toBe('concurrency');
      redisStore.renew(`${b}c`, 'a1', 60_000);
      await new Promise((r) => setTimeout(r, RedisLimitStore.RELEASE_HOLD_MS * 5));
      expect((await redisStore.client.hget(`${b}c`, field!))?.split(' ')[0]).toBe('1');
      expect((await replicaB.check(conc(b, 3, 'b2'))).allowed).toBe(true);
      expect((await replicaB.check(conc(b, 3, 'b3'))).allowed).toBe(true);
      expect((await replicaB.check(conc(b, 3, 'b4'))).rejectedBy).toBe('concurrency');
    } finally {
      await replicaB.close();
    }
  });

  it('a replica that releases everything leaves no field behind', async () => {
    const b = `t:{${randomUUID()}}:`;
    expect((await redisStore.check(conc(b, 3, 'a1'))).allowed).toBe(true);
    expect(await redisStore.client.hlen(`${b}c`)).toBe(1);
    redisStore.release(`${b}c`, 'a1');
    await new Promise((r) => setTimeout(r, RedisLimitStore.RELEASE_HOLD_MS * 5));
    expect(await redisStore.client.exists(`${b}c`)).toBe(0);
  });
});

describe('Redis store: batches', () => {
  it('more checks in one turn than one batch holds: all decided, in order', async () => {
    const b = `t:{${randomUUID()}}:`;
    const n = RedisLimitStore.MAX_BATCH * 2 + 5;
    const out = await Promise.all(Array.from({ length: n }, () => redisStore.check({ buckets: [{ key: `${b}b`, perSecond: 0.001, burst: 100 }], quotas: [], concurrency: [] })));
    expect(out.filter((d) => d.allowed)).toHaveLength(100);
    expect(out.slice(0, 100).every((d) => d.allowed)).toBe(true);
  });

  it('Redis dies with a batch in flight: every check of it fails (none hangs), and the store works again once Redis is back', async () => {
    const own = new RedisServer();
    await own.start();
    const store = new RedisLimitStore({ redis: own.url, commandTimeoutMs: 300 });
    try {
      await store.ready(5000);
      const b = `t:{${randomUUID()}}:`;
      const req = (i: number): LimitRequest => ({
        buckets: [{ key: `${b}b`, perSecond: 1000, burst: 1000 }],
        quotas: [],
        concurrency: [{ key: `${b}c`, limit: 100, leaseId: `l${i}`, leaseTtlMs: 60_000 }],
      });
      expect((await store.check(req(0))).allowed).toBe(true);
      // Queued in this turn, sent at its end; Redis is killed meanwhile.
      const inFlight = Array.from({ length: 20 }, (_, i) => Promise.resolve(store.check(req(i + 1))).then(() => 'answered', (err: Error) => err.message));
      await own.kill();
      const outcomes = await Promise.all(inFlight);
      // Either Redis ran the whole batch before it died, or none of it: never a mix.
      expect(new Set(outcomes).size).toBe(1);
      if (outcomes[0] !== 'answered') expect(outcomes[0]).toMatch(/Connection|closed|max retries|timed? ?out|writable|ECONNRESET/i);
      // Down: a check fails at once.
      await expect(Promise.resolve(store.check(req(99)))).rejects.toThrow();
      await own.start();
      await store.ready(5000);
      const back = await store.check(req(100));
      expect(back.allowed).toBe(true);
    } finally {
      await store.close();
      await own.kill();
    }
  });
});

describe('Redis store: one check cannot fail its batch, and is not the store being down', () => {
  it("a key holding another type fails only the checks naming it; failureMode closed answers those 503, the store stays up", async () => {
    const failures: FailureKind[] = [];
    const logs: string[] = [];
    const logger = { info: (m: string) => logs.push(m), warn: (m: string) => logs.push(m), error: (_o: unknown, m: string) => logs.push(m) } as unknown as Logger;
    const primary = new RedisLimitStore({ redis: redis.url, commandTimeoutMs: 1000 });
    const store = new FailoverLimitStore(primary, 'closed', logger, (kind) => failures.push(kind));
    try {
      await store.ready(5000);
      const [good, bad] = [`t:{${randomUUID()}}:`, `t:{${randomUUID()}}:`];
      await primary.client.set(`${bad}c`, 'not a hash');
      await primary.client.hset(`${bad}q`, 'not', 'a counter');
      const req = (b: string, i: number, concurrency = true): LimitRequest => ({
        buckets: [{ key: `${b}b`, perSecond: 0.001, burst: 100 }],
        quotas: [{ key: `${b}q2`, kind: 'quota_daily', limit: 100, cost: 1, resetAtMs: Date.now() + 3_600_000 }],
        concurrency: concurrency ? [{ key: `${b}c`, limit: 10, leaseId: `l${i}`, leaseTtlMs: 60_000 }] : [],
      });
      const quotaOfAnotherType: LimitRequest = { buckets: [], quotas: [{ key: `${bad}q`, kind: 'quota_monthly', limit: 100, cost: 1, resetAtMs: Date.now() + 3_600_000 }], concurrency: [] };
      const batch = [req(good, 1), req(bad, 2), req(good, 3), quotaOfAnotherType, req(bad, 4, false), req(good, 5)];
      const out = await Promise.all(batch.map((r) => Promise.resolve(store.check(r)).then((d) => d.allowed, (e: unknown) => (e instanceof StoreUnavailableError ? 503 : String(e)))));
      expect(out).toEqual([true, 503, true, 503, true, true]);
      expect(failures).toEqual(['unreadable_key', 'unreadable_key']);
      expect(store.up).toBe(true);
      expect(logs).not.toContain('limit store unavailable');
      expect(logs).toContain('limit check failed; the store is up');
      // Nothing was written over the foreign keys; the good tenant was charged 3.
      expect(await primary.client.get(`${bad}c`)).toBe('not a hash');
      expect(await primary.client.hgetall(`${bad}q`)).toEqual({ not: 'a counter' });
      expect(Number(await primary.client.get(`${good}q2`))).toBe(3);
    } finally {
      await store.close();
    }
  });

  it('limits out of bounds in failureMode open: that check is refused (its limits cannot be counted anywhere), the rest go on', async () => {
    const failures: FailureKind[] = [];
    const logger = { info() {}, warn() {}, error() {} } as unknown as Logger;
    const store = new FailoverLimitStore(new RedisLimitStore({ redis: redis.url, commandTimeoutMs: 1000 }), 'open', logger, (kind) => failures.push(kind));
    try {
      await store.ready(5000);
      const b = `t:{${randomUUID()}}:`;
      const req = (perSecond: number): LimitRequest => ({ buckets: [{ key: `${b}b${perSecond}`, perSecond, burst: 1 }], quotas: [], concurrency: [] });
      const out = await Promise.all([req(1), req(1e-300), req(2)].map((r) => Promise.resolve(store.check(r)).then((d) => d.allowed, (e: unknown) => (e instanceof LimitCheckError ? e.reason : String(e)))));
      expect(out).toEqual([true, 'invalid_limits', true]);
      expect(failures).toEqual(['invalid_limits']);
      expect(store.up).toBe(true);
    } finally {
      await store.close();
    }
  });
});

describe('Redis store: a stalled Redis', () => {
  it('checks that timed out here do nothing when Redis runs them late: no phantom charges, no refusals after', async () => {
    const own = new RedisServer();
    await own.start();
    const store = new RedisLimitStore({ redis: own.url, commandTimeoutMs: 200 });
    const reader = new Redis(own.url);
    try {
      await store.ready(5000);
      const b = `t:{${randomUUID()}}:`;
      const req = (i: number): LimitRequest => ({
        buckets: [{ key: `${b}b`, perSecond: 0.001, burst: 1000 }],
        quotas: [{ key: `${b}q`, kind: 'quota_daily', limit: 102, cost: 1, resetAtMs: Date.now() + 3_600_000 }],
        concurrency: [{ key: `${b}c`, limit: 1000, leaseId: `l${i}`, leaseTtlMs: 60_000 }],
      });
      // One answer first: from it the store knows Redis's clock.
      expect((await store.check(req(0))).allowed).toBe(true);
      const pid = Number(/process_id:(\d+)/.exec(await reader.info('server'))![1]);
      process.kill(pid, 'SIGSTOP');
      let outcomes: string[];
      try {
        const pending: Promise<string>[] = [];
        for (let turn = 0; turn < 4; turn++) {
          for (let i = 0; i < 25; i++) pending.push(Promise.resolve(store.check(req(1 + turn * 25 + i))).then(() => 'answered', (e: Error) => e.message));
          await new Promise((resolve) => setImmediate(resolve));
        }
        outcomes = await Promise.all(pending);
      } finally {
        process.kill(pid, 'SIGCONT');
      }
      expect(new Set(outcomes)).toEqual(new Set(['Command timed out']));
      // One connection answers in order: once this is answered, Redis has run every stalled batch.
      await store.client.ping();
      expect(Number(await reader.get(`${b}q`))).toBe(1);
      expect(Math.round(Number((await reader.get(`${b}b`))!.split(' ')[0]))).toBe(999);
      expect(Object.values(await reader.hgetall(`${b}c`)).map((v) => v.split(' ')[0])).toEqual(['1']);
      // Every unit the stall did not charge is still there: 101 more fit the quota of 102.
      const after = await Promise.all(Array.from({ length: 101 }, (_, i) => store.check(req(1000 + i))));
      expect(after.filter((d) => !d.allowed)).toEqual([]);
      expect((await store.check(req(2000))).rejectedBy).toBe('quota_daily');
    } finally {
      reader.disconnect();
      await store.close();
      await own.kill();
    }
  });
});

describe('Memory store: lease expiry without a scan per check', () => {
  let now = Date.parse('2026-06-01T12:00:00Z');
  const conc = (limit: number, leaseId: string, leaseTtlMs: number): LimitRequest => ({ buckets: [], quotas: [], concurrency: [{ key: 'c', limit, leaseId, leaseTtlMs }] });

  it('a lease that expires before the others frees its slot on time', () => {
    const store = new MemoryLimitStore(() => now);
    expect(store.check(conc(2, 'long', 10_000)).allowed).toBe(true);
    expect(store.check(conc(2, 'short', 100)).allowed).toBe(true);
    expect(store.check(conc(2, 'x', 10_000)).rejectedBy).toBe('concurrency');
    now += 150;
    expect(store.check(conc(2, 'y', 10_000)).allowed).toBe(true);
    expect(store.check(conc(2, 'z', 10_000)).rejectedBy).toBe('concurrency');
  });

  it('a renewal with a shorter TTL moves the expiry earlier', () => {
    const store = new MemoryLimitStore(() => now);
    expect(store.check(conc(1, 'a', 10_000)).allowed).toBe(true);
    store.renew('c', 'a', 100);
    now += 150;
    expect(store.check(conc(1, 'b', 10_000)).allowed).toBe(true);
  });

  it('releases and expiries of many leases keep the count exact', () => {
    const store = new MemoryLimitStore(() => now);
    for (let i = 0; i < 100; i++) expect(store.check(conc(100, `l${i}`, i % 2 === 0 ? 50 : 60_000)).allowed).toBe(true);
    expect(store.check(conc(100, 'over', 60_000)).allowed).toBe(false);
    for (let i = 1; i < 20; i += 2) store.release('c', `l${i}`); // 10 long-lived ones released
    now += 100; // the 50 short-lived ones expire
    for (let i = 0; i < 60; i++) expect(store.check(conc(100, `n${i}`, 60_000)).allowed).toBe(true);
    expect(store.check(conc(100, 'over2', 60_000)).rejectedBy).toBe('concurrency');
  });
});
