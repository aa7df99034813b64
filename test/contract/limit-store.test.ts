/**
 * One contract, two stores: the in-memory store (clock injected) and the
 * Redis store (a real redis-server on a free port; Redis's own clock, so the
 * Redis run waits real time where the memory run advances its clock).
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryLimitStore } from '../../src/limits/memory-store.js';
import { RedisLimitStore } from '../../src/limits/redis-store.js';
import type { LimitRequest, LimitStore } from '../../src/limits/types.js';
import { RedisServer } from '../helpers/redis.js';

interface Harness {
  store: LimitStore;
  /** Lets `ms` pass for the store. */
  advance(ms: number): Promise<void>;
}

const redis = new RedisServer();
let redisStore: RedisLimitStore;
let fakeNow = Date.parse('2026-06-01T12:00:00Z');
const memoryStore = new MemoryLimitStore(() => fakeNow);

beforeAll(async () => {
  await redis.start();
  redisStore = new RedisLimitStore({ redis: redis.url, commandTimeoutMs: 1000 });
  await new Promise<void>((resolve) => redisStore.client.once('ready', () => resolve()));
});
afterAll(async () => {
  await redisStore.close();
  await redis.kill();
});

const harnesses: [string, () => Harness][] = [
  ['memory', () => ({ store: memoryStore, advance: async (ms) => void (fakeNow += ms) })],
  ['redis', () => ({ store: redisStore, advance: (ms) => new Promise((r) => setTimeout(r, ms)) })],
];

describe.each(harnesses)('LimitStore contract: %s', (_name, make) => {
  const base = () => `t:{${randomUUID()}}:`;
  const resetAtMs = () => Date.now() + 3_600_000;
  const bucketOnly = (b: string, perSecond = 5, burst = 10): LimitRequest => ({ buckets: [{ key: `${b}b`, perSecond, burst }], quotas: [], concurrency: null });

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
    const req: LimitRequest = { buckets: [], quotas: [{ key: `${b}q`, kind: 'quota_daily', limit: 10, cost: 3, resetAtMs: reset }], concurrency: null };
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
      concurrency: null,
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
      concurrency: null,
    };
    const results = [];
    for (let i = 0; i < 4; i++) results.push(await store.check(req));
    expect(results.map((d) => d.allowed)).toEqual([true, true, false, false]);
    expect(Math.floor(results[3]!.bucketTokens[0]!)).toBe(98);
  });

  it('concurrency leases: a full set refuses, a release frees a slot, an unrenewed lease expires', async () => {
    const { store, advance } = make();
    const b = base();
    const lease = (leaseId: string, leaseTtlMs = 60_000): LimitRequest => ({ buckets: [], quotas: [], concurrency: { key: `${b}c`, limit: 2, leaseId, leaseTtlMs } });
    expect((await store.check(lease('a'))).allowed).toBe(true);
    expect((await store.check(lease('b', 300))).allowed).toBe(true);
    const refused = await store.check(lease('c'));
    expect(refused.rejectedBy).toBe('concurrency');
    store.release(`${b}c`, 'a');
    await advance(20);
    expect((await store.check(lease('d'))).allowed).toBe(true);
    expect((await store.check(lease('e'))).allowed).toBe(false);
    await advance(400); // 'b' was never renewed: a crashed replica's slot
    expect((await store.check(lease('f'))).allowed).toBe(true);
  });

  it('a renewed lease keeps its slot past its original TTL', async () => {
    const { store, advance } = make();
    const b = base();
    const req = (leaseId: string): LimitRequest => ({ buckets: [], quotas: [], concurrency: { key: `${b}c`, limit: 1, leaseId, leaseTtlMs: 300 } });
    expect((await store.check(req('long'))).allowed).toBe(true);
    await advance(200);
    store.renew(`${b}c`, 'long', 300);
    await advance(200);
    expect((await store.check(req('other'))).allowed).toBe(false);
  });
});
