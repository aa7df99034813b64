/**
 * The Redis limit store against a real three-node Redis Cluster (store.redis
 * as a node list): a batch holds one `{tenant}` hash tag, so the checks of
 * many tenants in one turn go out as one script call per tag, each on the
 * node that owns the tag's slot (a script naming keys of two slots would
 * fail with CROSSSLOT); local credit is granted, spent and given back there
 * too; two replicas together admit exactly a quota.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisLimitStore } from '../../src/limits/redis-store.js';
import type { LimitDecision, LimitRequest } from '../../src/limits/types.js';
import { RedisCluster } from '../helpers/redis-cluster.js';

const cluster = new RedisCluster();
const stores: RedisLimitStore[] = [];

beforeAll(async () => {
  await cluster.start();
}, 60_000);
afterAll(async () => {
  await Promise.all(stores.map((s) => s.close()));
  await cluster.stop();
});

async function clusterStore(localCreditMs: number): Promise<RedisLimitStore> {
  const store = new RedisLimitStore({ redis: cluster.urls, commandTimeoutMs: 2000, localCreditMs });
  stores.push(store);
  await store.ready(10_000);
  expect(store.up).toBe(true);
  return store;
}

const quotaReq = (b: string, limit: number, burst = 10_000): LimitRequest => ({
  buckets: [{ key: `${b}b`, perSecond: 0.001, burst }],
  quotas: [{ key: `${b}q`, kind: 'quota_daily', limit, cost: 1, resetAtMs: Date.now() + 3_600_000 }],
  concurrency: [{ key: `${b}c`, limit: 1000, leaseId: 'x', leaseTtlMs: 60_000 }],
});

describe('Redis Cluster: the limit store', () => {
  it('checks of many tenants in one turn: one script call per hash tag, each decided on its own limits', async () => {
    const store = await clusterStore(0);
    const tenants = Array.from({ length: 8 }, () => `t:{${randomUUID()}}:`);
    // Interleaved: tenant i's requests are not consecutive, so every tag's batch is split out of one turn.
    const requests = Array.from({ length: 8 * 5 }, (_, i) => quotaReq(tenants[i % 8]!, 1000, 3));
    const out = await Promise.all(requests.map((r) => store.check(r)));
    for (let t = 0; t < 8; t++) {
      const mine = out.filter((_d, i) => i % 8 === t);
      expect(mine.map((d) => d.allowed)).toEqual([true, true, true, false, false]);
      expect(mine[3]!.rejectedBy).toBe('rate');
      expect(Number(await store.client.get(`${tenants[t]}q`))).toBe(3);
    }
    // The tenants' keys are spread over the nodes (so the test did cross nodes).
    const slots = await Promise.all(tenants.map((b) => store.client.cluster('KEYSLOT', `${b}q`) as Promise<number>));
    const owners = new Set(slots.map((s) => Math.floor(s / (16384 / 3))));
    expect(owners.size).toBeGreaterThan(1);
  });

  it('named limits: every key of a request under the tenant\'s tag, one script call for two concurrency hashes, a quota and a bucket; peek reads them', async () => {
    const store = await clusterStore(0);
    const b = `t:{${randomUUID()}}:`;
    const named = (leaseId: string): LimitRequest => ({
      buckets: [{ key: `${b}n:api:r:t`, name: 'api', perSecond: 100, burst: 100 }],
      quotas: [{ key: `${b}n:deploy:q:1h:0:t`, name: 'deployments', kind: 'quota', limit: 100, cost: 1, resetAtMs: Date.now() + 3_600_000 }],
      concurrency: [
        { key: `${b}cr`, limit: 10, leaseId, leaseTtlMs: 60_000 },
        { key: `${b}n:jobs:c:p:p1`, name: 'jobs', limit: 3, leaseId, leaseTtlMs: 60_000 },
      ],
    });
    const out = await Promise.all(Array.from({ length: 5 }, (_, i) => store.check(named(`l${i}`))));
    expect(out.map((d) => d.rejectedBy)).toEqual([null, null, null, 'jobs', 'jobs']);
    const peek = await store.peek(named('x'));
    expect([peek.quotaUsed, peek.slotsHeld]).toEqual([[3], [3, 3]]);
  });

  it('local credit is granted, spent locally and given back on a cluster', async () => {
    const store = await clusterStore(5000);
    const b = `t:{${randomUUID()}}:`;
    const req = quotaReq(b, 100_000);
    const first = await Promise.all(Array.from({ length: 10 }, () => store.check(req)));
    expect(first.every((d) => d.allowed)).toBe(true);
    const local = store.check(req);
    expect(local).not.toBeInstanceOf(Promise);
    expect((local as LimitDecision).quotaUsed[0]).toBe(11);
    expect(Number(await store.client.get(`${b}q`))).toBeGreaterThan(11); // the credit is charged in Redis
    for (let i = 0; i < 11; i++) store.release(`${b}c`, 'x');
    await store.close();
    const other = await clusterStore(0);
    expect(Number(await other.client.get(`${b}q`))).toBe(11);
    expect(await other.client.exists(`${b}c`)).toBe(0);
  });

  it('two replicas with credit admit exactly a quota between them', async () => {
    const [a, c] = [await clusterStore(50), await clusterStore(50)];
    const b = `t:{${randomUUID()}}:`;
    const quota = 1000;
    const req = quotaReq(b, quota);
    let admitted = 0;
    let quiet = 0;
    const load = async (store: RedisLimitStore) => {
      const out = await Promise.all(Array.from({ length: 8 }, () => store.check(req)));
      const n = out.filter((d) => d.allowed).length;
      for (let i = 0; i < n; i++) store.release(`${b}c`, 'x');
      return n;
    };
    while (quiet < 20) {
      const n = (await Promise.all([load(a), load(c)])).reduce((x, y) => x + y, 0);
      admitted += n;
      quiet = n === 0 ? quiet + 1 : 0;
      if (n === 0) await new Promise((r) => setTimeout(r, 10));
    }
    expect(admitted).toBe(quota);
    expect(Number(await a.client.get(`${b}q`))).toBe(quota);
  });
});
