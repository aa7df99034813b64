/**
 * Local credit (src/limits/credit.ts) against a real redis-server: what a
 * replica reserves ahead is charged in Redis, admitted locally only while it
 * lasts, given back when unused, never granted near a limit, and two
 * replicas together never admit more than the limit.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MIN_CREDIT } from '../../src/limits/credit.js';
import { RedisLimitStore } from '../../src/limits/redis-store.js';
import type { LimitDecision, LimitRequest } from '../../src/limits/types.js';
import { RedisServer } from '../helpers/redis.js';

const redis = new RedisServer();
const stores: RedisLimitStore[] = [];

beforeAll(async () => {
  await redis.start();
});
afterAll(async () => {
  await Promise.all(stores.map((s) => s.close()));
  await redis.kill();
});

async function creditStore(localCreditMs: number, url = redis.url): Promise<RedisLimitStore> {
  const store = new RedisLimitStore({ redis: url, commandTimeoutMs: 1000, localCreditMs });
  stores.push(store);
  await store.ready(5000);
  return store;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Polls `check` until it holds (sweeps run once per lifetime: timing is theirs, not the test's). */
async function until(check: () => Promise<boolean>, timeoutMs = 3000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not reached in time');
    await sleep(10);
  }
}
const base = () => `t:{${randomUUID()}}:`;
const resetAtMs = () => Date.now() + 3_600_000;
/** The first credit a shape asks for (credit.ts: twice the minimum). */
const FIRST_ASK = MIN_CREDIT * 2;

/** A bucket that does not refill in the test's time, a daily quota and a concurrency limit: all far away. */
function roomy(b: string, quota = 100_000): LimitRequest {
  return {
    buckets: [{ key: `${b}b`, perSecond: 0.001, burst: 10_000 }],
    quotas: [{ key: `${b}q`, kind: 'quota_daily', limit: quota, cost: 1, resetAtMs: resetAtMs() }],
    concurrency: [{ key: `${b}c`, limit: 1000, leaseId: 'x', leaseTtlMs: 60_000 }],
  };
}

/** `n` checks in one turn (one batch, one run: demand). */
const turn = (store: RedisLimitStore, req: LimitRequest, n: number) => Promise.all(Array.from({ length: n }, () => store.check(req)));
const slotsHeld = async (store: RedisLimitStore, key: string) =>
  Object.values(await store.client.hgetall(key)).reduce((sum, v) => sum + Number(v.split(' ')[0]), 0);
const bucketTokens = async (store: RedisLimitStore, key: string) => Number((await store.client.get(key))?.split(' ')[0] ?? NaN);

describe('Redis store: local credit', () => {
  it('a shape under several concurrency limits (named ones): credit reserves a slot of each, locally admitted requests hold one of each, releases free both', async () => {
    const store = await creditStore(5000);
    const b = base();
    const req: LimitRequest = {
      ...roomy(b),
      concurrency: [
        { key: `${b}c`, limit: 1000, leaseId: 'x', leaseTtlMs: 60_000 },
        { key: `${b}n:jobs:c:p:p1`, name: 'jobs', limit: 1000, leaseId: 'x', leaseTtlMs: 60_000 },
      ],
    };
    await turn(store, req, 10);
    expect([await slotsHeld(store, `${b}c`), await slotsHeld(store, `${b}n:jobs:c:p:p1`)]).toEqual([10 + FIRST_ASK, 10 + FIRST_ASK]);
    for (let i = 0; i < 4; i++) expect(store.check(req)).not.toBeInstanceOf(Promise);
    // 14 admitted hold a slot of each; releasing them and closing gives every slot back.
    for (let i = 0; i < 14; i++) {
      store.release(`${b}c`, 'x');
      store.release(`${b}n:jobs:c:p:p1`, 'x');
    }
    await store.close();
    const reader = await creditStore(0);
    await until(async () => (await slotsHeld(reader, `${b}c`)) === 0 && (await slotsHeld(reader, `${b}n:jobs:c:p:p1`)) === 0);
  });

  it('a busy shape far from its limits is granted credit: the next checks are answered without Redis, each counted once', async () => {
    const store = await creditStore(5000);
    const b = base();
    const req = roomy(b);
    const first = await turn(store, req, 10);
    expect(first.map((d) => d.quotaUsed[0])).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    // The run of 10 was charged, and so was the credit it asked for.
    expect(Number(await store.client.get(`${b}q`))).toBe(10 + FIRST_ASK);
    expect(Math.floor(await bucketTokens(store, `${b}b`))).toBe(10_000 - 10 - FIRST_ASK);
    expect(await slotsHeld(store, `${b}c`)).toBe(10 + FIRST_ASK);

    const local: LimitDecision[] = [];
    const spend = (n: number) => {
      for (let i = 0; i < n; i++) {
        const d = store.check(req);
        expect(d).not.toBeInstanceOf(Promise); // decided here, no round trip
        local.push(d as LimitDecision);
      }
    };
    // Down to a quarter left: a top-up of the same size goes out, and the checks go on locally meanwhile.
    spend(FIRST_ASK - FIRST_ASK / 4);
    expect(Number(await store.client.get(`${b}q`))).toBe(10 + FIRST_ASK); // nothing sent while spending
    await until(async () => Number(await store.client.get(`${b}q`)) === 10 + 2 * FIRST_ASK);
    spend(FIRST_ASK / 4 + FIRST_ASK);
    // One replica: its figures are what Redis would have said request by request.
    expect(local.map((d) => d.quotaUsed[0])).toEqual(Array.from({ length: 2 * FIRST_ASK }, (_, i) => 11 + i));
    expect(local.map((d) => Math.floor(d.bucketTokens[0]!))).toEqual(Array.from({ length: 2 * FIRST_ASK }, (_, i) => 10_000 - 11 - i));
    expect(local.every((d) => d.allowed && d.rejectedBy === null)).toBe(true);

    // Used up before its top-up went out (it was spent in one turn): the next check asks Redis; the top-up asks
    // for twice as much, since the credit ran out within its lifetime.
    const next = store.check(req);
    expect(next).toBeInstanceOf(Promise);
    expect((await next).quotaUsed[0]).toBe(11 + 2 * FIRST_ASK);
    await until(async () => Number(await store.client.get(`${b}q`)) === 11 + 2 * FIRST_ASK + 2 * FIRST_ASK);

    // Every slot comes back: the used ones with their releases, the reserved ones when the store closes.
    for (let i = 0; i < 11 + 2 * FIRST_ASK; i++) store.release(`${b}c`, 'x');
    await store.close();
    const other = await creditStore(0);
    expect(await other.client.exists(`${b}c`)).toBe(0);
    expect(Number(await other.client.get(`${b}q`))).toBe(11 + 2 * FIRST_ASK);
  });

  it("unused credit goes back: a quiet shape's after its lifetime, a busy one's beyond the demand of that lifetime", async () => {
    const store = await creditStore(100);
    const b = base();
    const req = roomy(b);
    const quotaInRedis = async () => Number(await store.client.get(`${b}q`));
    await turn(store, req, 10);
    for (let i = 0; i < 3; i++) expect(store.check(req)).not.toBeInstanceOf(Promise);
    expect(await quotaInRedis()).toBe(10 + FIRST_ASK);
    // A lifetime on: it served 3, so it keeps 3 for the next lifetime and gives the other FIRST_ASK − 6 back.
    await until(async () => (await quotaInRedis()) === 16);
    expect(Math.floor(await bucketTokens(store, `${b}b`))).toBe(10_000 - 16);
    expect(await slotsHeld(store, `${b}c`)).toBe(16);
    // The 3 kept are still this replica's to admit.
    for (let i = 0; i < 2; i++) expect(store.check(req)).not.toBeInstanceOf(Promise);
    // Then nothing for a lifetime: the last one goes back, and only what was admitted stays charged.
    await until(async () => (await quotaInRedis()) === 15);
    expect(Math.floor(await bucketTokens(store, `${b}b`))).toBe(10_000 - 15);
    expect(await slotsHeld(store, `${b}c`)).toBe(15);
    expect(store.check(req)).toBeInstanceOf(Promise);
  });

  it('near a limit nothing is reserved: past half of the quota every check goes to Redis, and the quota is exact', async () => {
    const store = await creditStore(5000);
    const b = base();
    const req = roomy(b, 40);
    let admitted = 0;
    let local = 0;
    let refused: LimitDecision | null = null;
    while (refused === null) {
      const out = await Promise.all(
        Array.from({ length: 5 }, () => {
          const d = store.check(req);
          if (!(d instanceof Promise)) local++;
          return d;
        }),
      );
      for (const d of out) {
        if (d.allowed) admitted++;
        else refused ??= d;
      }
    }
    expect(admitted).toBe(40);
    expect(refused.rejectedBy).toBe('quota_daily');
    // Credit only ever came from the first half: at most 20 − 5 (the first run) requests were decided locally.
    expect(local).toBeGreaterThan(0);
    expect(local).toBeLessThanOrEqual(15);
    expect(Number(await store.client.get(`${b}q`))).toBe(40);
  });

  it('a lone client (one check at a time) never asks for credit', async () => {
    const store = await creditStore(5000);
    const req = roomy(base());
    for (let i = 0; i < 20; i++) {
      const d = store.check(req);
      expect(d).toBeInstanceOf(Promise);
      expect((await d).allowed).toBe(true);
    }
  });

  it('two replicas with credit never admit more than the quota together, and all of it is used once unused credit goes back', async () => {
    const [a, c] = [await creditStore(50), await creditStore(50)];
    const b = base();
    const quota = 2000;
    const req = roomy(b, quota);
    let admitted = 0;
    let local = 0;
    const load = async (store: RedisLimitStore) => {
      const out = await Promise.all(
        Array.from({ length: 8 }, () => {
          const d = store.check(req);
          if (!(d instanceof Promise)) local++;
          return d;
        }),
      );
      const n = out.filter((d) => d.allowed).length;
      // Requests end: their slots are released (the concurrency credit is exercised, not exhausted).
      for (let i = 0; i < n; i++) store.release(`${b}c`, 'x');
      return n;
    };
    // Until both replicas are refused for a while (credit held by the other expires meanwhile).
    let quiet = 0;
    while (quiet < 20) {
      const n = (await Promise.all([load(a), load(c)])).reduce((x, y) => x + y, 0);
      admitted += n;
      quiet = n === 0 ? quiet + 1 : 0;
      if (n === 0) await sleep(10);
    }
    expect(admitted).toBe(quota);
    expect(local).toBeGreaterThan(0);
    expect(Number(await a.client.get(`${b}q`))).toBe(quota);
  });

  it("slots this replica reserved ahead are its own requests' first: the concurrency limit is reached exactly, never refused short of it", async () => {
    const store = await creditStore(5000);
    const b = base();
    const shape = (k: string, i: number): LimitRequest => ({
      buckets: [{ key: `${b}b:${k}`, perSecond: 0.001, burst: 10_000 }],
      quotas: [],
      concurrency: [{ key: `${b}c`, limit: 20, leaseId: `${k}${i}`, leaseTtlMs: 60_000 }],
    });
    // Key a's 4 checks ask for credit: 6 more requests' worth (up to half the 20 slots), held in Redis.
    expect((await turn(store, shape('a', 0), 4)).every((d) => d.allowed)).toBe(true);
    expect(await slotsHeld(store, `${b}c`)).toBe(10);
    for (let i = 0; i < 4; i++) store.release(`${b}c`, 'a');
    // Key b (its own bucket, the same tenant's slots) sends 16: the 6 spare slots are lent to them.
    const other = await Promise.all(Array.from({ length: 16 }, (_, i) => store.check(shape('b', i))));
    expect(other.filter((d) => !d.allowed)).toEqual([]);
    // Key a's credit has no slot left to admit on: its next 4 go to Redis, which has exactly 4 slots left.
    const last = await Promise.all(Array.from({ length: 5 }, (_, i) => store.check(shape('a', 10 + i))));
    expect(last.map((d) => d.allowed)).toEqual([true, true, true, true, false]);
    expect(last[4]!.rejectedBy).toBe('concurrency');
    expect(await slotsHeld(store, `${b}c`)).toBe(20);
  });

  it('checks sent while a grant is on its way are not refused by it: admitted on it when it arrives, or on its lent slots', async () => {
    const store = await creditStore(5000);
    const b = base();
    const req: LimitRequest = { buckets: [], quotas: [], concurrency: [{ key: `${b}c`, limit: 20, leaseId: 'x', leaseTtlMs: 60_000 }] };
    const first = Promise.all(Array.from({ length: 4 }, () => store.check(req)));
    // The first batch (which asks for credit) has gone; these 16 go in the next, before or after its answer.
    await new Promise((resolve) => setImmediate(resolve));
    const second = Promise.all(Array.from({ length: 16 }, () => store.check(req)));
    const decisions = [...(await first), ...(await second)];
    expect(decisions.filter((d) => !d.allowed)).toEqual([]);
    // 20 in flight: the limit, held exactly, and the next one refused.
    expect(await slotsHeld(store, `${b}c`)).toBe(20);
    expect((await store.check(req)).rejectedBy).toBe('concurrency');
  });

  it('when the connection drops, credit is given up: nothing is admitted locally while Redis is gone', async () => {
    const own = new RedisServer();
    await own.start();
    try {
      const store = await creditStore(60_000, own.url);
      const req = roomy(base());
      await turn(store, req, 10);
      expect(store.check(req)).not.toBeInstanceOf(Promise);
      await own.kill();
      await until(async () => !store.up);
      const d = store.check(req);
      expect(d).toBeInstanceOf(Promise);
      await expect(d).rejects.toThrow();
    } finally {
      await own.kill();
    }
  });
});
