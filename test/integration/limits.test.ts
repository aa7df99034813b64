/**
 * The limit stage end to end: rate-limit headers on admitted and refused
 * responses, 429 bodies, quota and concurrency refusals, two proxy processes
 * sharing one real Redis, Redis killed mid-load in both failure modes, and
 * stalled (SIGSTOP) mid-load; one tenant's unreadable key in Redis.
 */
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { generateApiKey } from '../../src/auth/api-key-format.js';
import { RedisServer } from '../helpers/redis.js';
import { spawnProxy, startProxy, startUpstream, type RunningProxy, type SpawnedProxy, type Upstream } from '../helpers/servers.js';

const key = generateApiKey({ env: 'live', id: 'ak_lim' });
const perKey = generateApiKey({ env: 'live', id: 'ak_perkey' });
const otherTenantKey = generateApiKey({ env: 'live', id: 'ak_other' });

function config(upstream: string, plan: string, extra = ''): string {
  return `${extra}
plans:
  limited: ${plan}
tenants: [{ id: acme, plan: limited }, { id: other, plan: limited }]
apiKeys:
  - { id: ak_lim, tenant: acme, hash: "${key.hash}", scopes: ["*"] }
  - { id: ak_perkey, tenant: acme, hash: "${perKey.hash}", scopes: ["*"], rate: { perSecond: 0.01, burst: 2 } }
  - { id: ak_other, tenant: other, hash: "${otherTenantKey.hash}", scopes: ["*"] }
routes:
  - { name: api, match: { pathPrefix: / }, upstream: "${upstream}", auth: [apiKey], cost: 1 }
`;
}

/** Quota counter writes Redis has run (the limit script's INCRBYs: one per batch that charges, or refund). */
async function quotaWrites(url: string): Promise<number> {
  const client = new Redis(url);
  try {
    return Number(/^cmdstat_incrby:calls=(\d+)/m.exec(await client.info('commandstats'))?.[1] ?? 0);
  } finally {
    client.disconnect();
  }
}

const call = (url: string, k = key.key) => fetch(`${url}/x`, { headers: { 'x-api-key': k } });

let upstream: Upstream;
let release: (() => void) | null = null;
beforeAll(async () => {
  upstream = await startUpstream((req, res) => {
    if (req.url === '/slow') {
      release = () => res.end('slow done');
      return;
    }
    res.end('ok');
  });
});
afterAll(async () => {
  release?.();
  await upstream.close();
});

describe('limits with the in-memory store', () => {
  let proxy: RunningProxy;
  afterEach(async () => proxy?.close());

  it('token bucket: headers on every response, 429 rate_limited with Retry-After once empty, nothing forwarded', async () => {
    proxy = await startProxy(config(upstream.url, '{ rate: { perSecond: 0.01, burst: 3 } }'));
    const before = upstream.requests.length;
    const statuses = [];
    for (let i = 0; i < 5; i++) {
      const res = await call(proxy.url);
      statuses.push(res.status);
      expect(res.headers.get('ratelimit-limit')).toBe('3');
      expect(res.headers.get('x-ratelimit-limit')).toBe('3');
      expect(Number(res.headers.get('x-ratelimit-reset'))).toBeGreaterThan(Date.now() / 1000);
      if (i === 0) expect(res.headers.get('ratelimit-remaining')).toBe('2');
      if (res.status === 429) {
        expect((await res.json()).error.code).toBe('rate_limited');
        expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
        expect(res.headers.get('ratelimit-remaining')).toBe('0');
      } else await res.text();
    }
    expect(statuses).toEqual([200, 200, 200, 429, 429]);
    expect(upstream.requests.length - before).toBe(3);
    const metrics = await (await fetch(`${proxy.adminUrl}/metrics`)).text();
    expect(metrics).toMatch(/tenantgate_limited_total\{tenant="acme",route="api",limit="rate"\} 2/);
  });

  it('a key with its own rate is limited by it as well as by the tenant', async () => {
    proxy = await startProxy(config(upstream.url, '{ rate: { perSecond: 100, burst: 100 } }'));
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await call(proxy.url, perKey.key)).status);
    expect(statuses).toEqual([200, 200, 429]);
    expect((await call(proxy.url)).status).toBe(200);
  });

  it('daily quota: 429 quota_exceeded with Retry-After to the next UTC midnight', async () => {
    proxy = await startProxy(config(upstream.url, '{ quota: { daily: 2, monthly: 100 } }'));
    expect((await call(proxy.url)).status).toBe(200);
    const second = await call(proxy.url);
    expect(second.headers.get('ratelimit-limit')).toBe('2');
    expect(second.headers.get('ratelimit-remaining')).toBe('0');
    const res = await call(proxy.url);
    expect(res.status).toBe(429);
    expect((await res.json()).error.code).toBe('quota_exceeded');
    const now = new Date();
    const midnight = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1);
    expect(Math.abs(Number(res.headers.get('retry-after')) - (midnight - Date.now()) / 1000)).toBeLessThan(5);
  });

  it('overrides replace plan limits, and a reload applies new limits without resetting counters', async () => {
    proxy = await startProxy(config(upstream.url, '{ quota: { daily: 1 } }').replace('{ id: acme, plan: limited }', '{ id: acme, plan: limited, overrides: { quota: { daily: 3 } } }'));
    expect((await call(proxy.url)).status).toBe(200);
    expect((await call(proxy.url)).status).toBe(200);
    const { writeFileSync } = await import('node:fs');
    writeFileSync(proxy.configFile, `listen: { host: 127.0.0.1, port: 0 }\nadmin: { host: 127.0.0.1, port: 0 }\n${config(upstream.url, '{ quota: { daily: 3 } }')}`);
    expect(await proxy.gate.reload()).toBe(true);
    expect((await call(proxy.url)).status).toBe(200);
    expect((await call(proxy.url)).status).toBe(429);
  });

  it('concurrency: held while the upstream answers, released when the response ends', async () => {
    proxy = await startProxy(config(upstream.url, '{ concurrency: 1 }'));
    const slow = fetch(`${proxy.url}/slow`, { headers: { 'x-api-key': key.key } });
    await until(() => release !== null);
    const refused = await call(proxy.url);
    expect(refused.status).toBe(429);
    expect((await refused.json()).error.code).toBe('concurrency_limited');
    release!();
    release = null;
    expect(await (await slow).text()).toBe('slow done');
    expect((await call(proxy.url)).status).toBe(200);
  });
});

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('limits shared through Redis', () => {
  const redis = new RedisServer();
  const procs: SpawnedProxy[] = [];
  beforeAll(async () => redis.start());
  afterEach(async () => {
    while (procs.length > 0) await procs.pop()!.stop('SIGKILL');
  });
  afterAll(async () => redis.kill());

  let run = 0;
  const spawnWith = async (plan: string, failureMode: 'open' | 'closed', prefix = `run${++run}:`) => {
    const p = await spawnProxy(config(upstream.url, plan, `store: { redis: "${redis.url}", keyPrefix: "${prefix}", commandTimeoutMs: 200, failureMode: ${failureMode} }`));
    procs.push(p);
    expect((await fetch(`${p.adminUrl}/readyz`)).status).toBe(200);
    return p;
  };

  it('two proxy processes never admit more in total than burst + rate × time', async () => {
    const plan = '{ rate: { perSecond: 5, burst: 10 } }';
    // Same key prefix for both: they must share one bucket.
    const [a, b] = [await spawnWith(plan, 'open', 'shared:'), await spawnWith(plan, 'open', 'shared:')];
    const started = Date.now();
    let admitted = 0;
    let total = 0;
    while (Date.now() - started < 2000) {
      const results = await Promise.all([call(a.url), call(b.url), call(a.url), call(b.url)]);
      for (const r of results) {
        total++;
        if (r.status === 200) admitted++;
        else expect(r.status).toBe(429);
        await r.arrayBuffer();
      }
    }
    const elapsed = (Date.now() - started) / 1000;
    expect(total).toBeGreaterThan(40);
    // Tolerance: one extra token for the time the last batch was in flight.
    expect(admitted).toBeLessThanOrEqual(10 + Math.ceil(5 * elapsed) + 1);
    expect(admitted).toBeGreaterThanOrEqual(10 + Math.floor(5 * (elapsed - 0.5)) - 1);
  });

  it('two busy proxy processes with local credit (the default) admit exactly a quota between them, with headers on every response', async () => {
    const quota = 2000;
    const plan = `{ rate: { perSecond: 100000, burst: 100000 }, quota: { daily: ${quota} }, concurrency: 1000 }`;
    const [a, b] = [await spawnWith(plan, 'open', 'credit:'), await spawnWith(plan, 'open', 'credit:')];
    const before = upstream.requests.length;
    let admitted = 0;
    let checks = 0;
    const turn = async (): Promise<number> => {
      const results = await Promise.all(Array.from({ length: 16 }, (_, i) => call(i % 2 === 0 ? a.url : b.url)));
      checks += results.length;
      let n = 0;
      for (const r of results) {
        expect(r.headers.get('ratelimit-limit')).not.toBeNull();
        expect(r.headers.get('x-ratelimit-remaining')).not.toBeNull();
        if (r.status === 200) {
          n++;
          await r.arrayBuffer();
        } else {
          expect(r.status).toBe(429);
          expect((await r.json()).error.code).toBe('quota_exceeded');
        }
      }
      admitted += n;
      return n;
    };
    // Far from the quota: credit decides most requests. How much less often the quota counter is written
    // depends on how fast turns come (credit lives 50 ms), so it is not asserted here (bench/limit-store.js
    // measures it); that credit was granted and used is, below.
    const writes0 = await quotaWrites(redis.url);
    while (admitted < 800) await turn();
    expect((await quotaWrites(redis.url)) - writes0).toBeGreaterThan(0);
    // Then until both are refused for a while: unused credit (held up to 50 ms) has gone back and been used by then.
    let quiet = 0;
    while (quiet < 10) {
      if ((await turn()) > 0) quiet = 0;
      else {
        quiet++;
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    expect(admitted).toBe(quota);
    expect(upstream.requests.length - before).toBe(quota);
    // What each proxy reserved ahead and gave back is on its /metrics; so is how long each check waited for Redis.
    let waitCounted = 0;
    for (const p of [a, b]) {
      const metrics = await (await fetch(`${p.adminUrl}/metrics`)).text();
      const granted = Number(/^tenantgate_limit_credit_total\{event="granted"\} (\d+)/m.exec(metrics)?.[1] ?? 0);
      const returned = Number(/^tenantgate_limit_credit_total\{event="returned"\} (\d+)/m.exec(metrics)?.[1] ?? 0);
      expect(granted).toBeGreaterThan(0);
      expect(returned).toBeLessThanOrEqual(granted);
      const count = Number(/^tenantgate_limit_wait_seconds_count (\d+)$/m.exec(metrics)?.[1]);
      const atOnce = Number(/^tenantgate_limit_wait_seconds_bucket\{le="0.0001"\} (\d+)$/m.exec(metrics)?.[1]);
      const sum = Number(/^tenantgate_limit_wait_seconds_sum (\S+)$/m.exec(metrics)?.[1]);
      // Credit decided some at once (they count as 0, in the first bucket); the first of each shape, and those
      // near the quota, waited for Redis (a positive sum; how long is the machine's business, so not asserted).
      expect(atOnce).toBeGreaterThan(0);
      expect(atOnce).toBeLessThanOrEqual(count);
      expect(sum).toBeGreaterThan(0);
      waitCounted += count;
    }
    // One observation per limit check: every request of both proxies.
    expect(waitCounted).toBe(checks);
  });

  it('failureMode open: Redis killed mid-load → admitted on local limits, store_up 0, ready; back when Redis returns', async () => {
    const p = await spawnWith('{ rate: { perSecond: 1000, burst: 1000 } }', 'open');
    expect((await call(p.url)).status).toBe(200);
    await redis.kill();
    for (let i = 0; i < 5; i++) expect((await call(p.url)).status).toBe(200);
    const metrics = await (await fetch(`${p.adminUrl}/metrics`)).text();
    expect(metrics).toMatch(/tenantgate_store_up 0/);
    expect(metrics).toMatch(/tenantgate_store_failures_total\{reason="\w+"\} [1-9]/);
    expect((await fetch(`${p.adminUrl}/readyz`)).status).toBe(200);
    await until(() => p.logs.some((l) => (l as { msg?: string }).msg === 'limit store unavailable'));
    expect(p.logs.filter((l) => (l as { msg?: string }).msg === 'limit store unavailable')).toHaveLength(1);
    await redis.start();
    const back = Date.now() + 5000;
    while (Date.now() < back && !/tenantgate_store_up 1/.test(await (await fetch(`${p.adminUrl}/metrics`)).text())) await new Promise((r) => setTimeout(r, 100));
    expect((await call(p.url)).status).toBe(200);
    expect(await (await fetch(`${p.adminUrl}/metrics`)).text()).toMatch(/tenantgate_store_up 1/);
  });

  it('one proxy at 16 in flight under concurrency 20, with local credit (the default): no request refused', async () => {
    const p = await spawnWith('{ rate: { perSecond: 100000, burst: 100000 }, quota: { daily: 100000000 }, concurrency: 20 }', 'open');
    const statuses: Record<number, number> = {};
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        for (let i = 0; i < 100; i++) {
          const res = await call(p.url);
          await res.arrayBuffer();
          statuses[res.status] = (statuses[res.status] ?? 0) + 1;
        }
      }),
    );
    const metrics = await (await fetch(`${p.adminUrl}/metrics`)).text();
    // A batch whose reply came after commandTimeoutMs (a loaded CI machine) ran in Redis all the same: its slots
    // count there until the next exact count (docs/limit-store.md). Credit itself must never refuse.
    const timeouts = Number(/tenantgate_store_failures_total\{reason="timeout"\} (\d+)/.exec(metrics)?.[1] ?? 0);
    if (timeouts === 0) {
      expect(statuses, metrics.split('\n').filter((l) => l.startsWith('tenantgate_store') || l.startsWith('tenantgate_limited')).join('\n')).toEqual({ 200: 1600 });
      expect(metrics).not.toMatch(/tenantgate_limited_total\{tenant="acme",route="api",limit="concurrency"\}/);
    } else expect(statuses[429] ?? 0).toBeLessThanOrEqual(timeouts * 16);
  });

  it("failureMode closed: a tenant whose key in Redis holds something else gets 503, the others are served, the store stays up and ready", async () => {
    const prefix = `broken${++run}:`;
    const p = await spawnWith('{ rate: { perSecond: 1000, burst: 1000 }, concurrency: 10 }', 'closed', prefix);
    const client = new Redis(redis.url);
    try {
      await client.set(`${prefix}{acme}:cr`, 'not a hash');
      const before = upstream.requests.length;
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => call(p.url, i % 2 === 0 ? key.key : otherTenantKey.key)));
      const statuses = await Promise.all(results.map(async (r) => `${r.status} ${r.status === 503 ? (await r.json()).error.code : await r.text()}`));
      expect(statuses.filter((_s, i) => i % 2 === 0)).toEqual(Array.from({ length: 10 }, () => '503 store_unavailable'));
      expect(statuses.filter((_s, i) => i % 2 === 1)).toEqual(Array.from({ length: 10 }, () => '200 ok'));
      expect(upstream.requests.length - before).toBe(10);
      expect((await fetch(`${p.adminUrl}/readyz`)).status).toBe(200);
      const metrics = await (await fetch(`${p.adminUrl}/metrics`)).text();
      expect(metrics).toMatch(/tenantgate_store_up 1/);
      expect(metrics).toMatch(/tenantgate_store_failures_total\{reason="unreadable_key"\} 10/);
      expect(metrics).not.toMatch(/reason="down"\} [1-9]/);
      expect(p.logs.some((l) => (l as { msg?: string }).msg === 'limit store unavailable')).toBe(false);
      expect(await client.get(`${prefix}{acme}:cr`)).toBe('not a hash');
    } finally {
      client.disconnect();
    }
  });

  it('failureMode open: Redis stalled (SIGSTOP) mid-load → admitted on local limits; once it runs again (SIGCONT) nothing it ran late is charged', async () => {
    const prefix = `stall${++run}:`;
    const p = await spawnWith('{ quota: { daily: 1000 } }', 'open', prefix);
    const client = new Redis(redis.url);
    const quotaUsed = async () => {
      const [counter] = await client.keys(`${prefix}{acme}:q:d:*`);
      return counter === undefined ? 0 : Number(await client.get(counter));
    };
    try {
      expect((await call(p.url)).status).toBe(200);
      expect(await quotaUsed()).toBe(1);
      const pid = Number(/process_id:(\d+)/.exec(await client.info('server'))![1]);
      process.kill(pid, 'SIGSTOP');
      let statuses: number[];
      try {
        // Each waits commandTimeoutMs (200) for Redis, then the local limiter admits it.
        statuses = await Promise.all(Array.from({ length: 100 }, async () => (await call(p.url)).status));
      } finally {
        process.kill(pid, 'SIGCONT');
      }
      expect(new Set(statuses)).toEqual(new Set([200]));
      // This one goes over the same connection, after every stalled batch: Redis has run them all when it answers.
      expect((await call(p.url)).status).toBe(200);
      // It may also reserve local credit (the stall left demand behind), which goes back unused within two lifetimes.
      const end = Date.now() + 5000;
      while ((await quotaUsed()) !== 2 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
      expect(await quotaUsed()).toBe(2);
    } finally {
      client.disconnect();
    }
  });

  it('failureMode closed: Redis down → 503 store_unavailable, nothing forwarded, not ready', async () => {
    const p = await spawnWith('{ rate: { perSecond: 1000, burst: 1000 } }', 'closed');
    expect((await call(p.url)).status).toBe(200);
    await redis.kill();
    try {
      const before = upstream.requests.length;
      const res = await call(p.url);
      expect(res.status).toBe(503);
      expect((await res.json()).error.code).toBe('store_unavailable');
      expect(upstream.requests.length).toBe(before);
      expect((await fetch(`${p.adminUrl}/readyz`)).status).toBe(503);
    } finally {
      await redis.start();
    }
  });
});
