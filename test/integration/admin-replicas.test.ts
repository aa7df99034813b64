/**
 * Two proxy processes sharing one real Redis (on a free port): a change made
 * through the admin API of replica A is in force on replica B within the
 * stated bound (1 s) — key creation, revocation, rotation with overlap,
 * suspension and activation, plan changes — and `lastUsedAt` is written in
 * batches. Each test uses its own key prefix, so no state leaks between them.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, admin, callWith, within } from '../helpers/admin-api.js';
import { RedisServer } from '../helpers/redis.js';
import { spawnProxy, startUpstream, type SpawnedProxy, type Upstream } from '../helpers/servers.js';

/** The bound docs/admin-api.md states for a change to reach every replica. */
const BOUND_MS = 1000;

let upstream: Upstream;
const redis = new RedisServer();
const procs: SpawnedProxy[] = [];
beforeAll(async () => {
  upstream = await startUpstream((req, res) => res.end(String(req.headers['x-tenant-id'])));
  await redis.start();
});
afterEach(async () => {
  while (procs.length > 0) await procs.pop()!.stop('SIGKILL');
});
afterAll(async () => {
  await redis.kill();
  await upstream.close();
});

let run = 0;
async function replicas(): Promise<[SpawnedProxy, SpawnedProxy]> {
  const prefix = `adm${++run}:`;
  const yaml = `
admin: { host: 127.0.0.1, port: 0, token: "${ADMIN_TOKEN}" }
store: { redis: "${redis.url}", keyPrefix: "${prefix}", commandTimeoutMs: 200 }
plans:
  small: { rate: { perSecond: 0.01, burst: 2 } }
  big: { rate: { perSecond: 1000, burst: 1000 } }
routes:
  - { name: api, match: { pathPrefix: / }, upstream: "${upstream.url}", auth: [apiKey] }
`;
  const a = await spawnProxy(yaml);
  procs.push(a);
  const b = await spawnProxy(yaml);
  procs.push(b);
  return [a, b];
}

describe('admin API across two replicas sharing Redis', () => {
  it('a key created on A works on B at once; revoked on A → 401 on B within the bound', async () => {
    const [a, b] = await replicas();
    expect((await admin(a.adminUrl, 'POST', '/admin/tenants', { id: 'globex', plan: 'big' })).status).toBe(201);
    const created = await admin(a.adminUrl, 'POST', '/admin/tenants/globex/keys', { scopes: ['*'] });
    expect(created.status).toBe(201);
    // B has never seen the tenant's record by request: it arrived through the invalidation.
    await within(BOUND_MS, async () => (await callWith(b.url, created.body.key)) === 200);
    for (let i = 0; i < 3; i++) expect(await callWith(b.url, created.body.key)).toBe(200); // warm in B's cache
    // B's view of the key through its own admin API too.
    expect((await admin(b.adminUrl, 'GET', `/admin/keys/${created.body.record.id}`)).body.tenant).toBe('globex');

    expect((await admin(a.adminUrl, 'DELETE', `/admin/keys/${created.body.record.id}`)).status).toBe(200);
    const took = await within(BOUND_MS, async () => (await callWith(b.url, created.body.key)) === 401);
    expect(took).toBeLessThan(BOUND_MS);
    expect(await callWith(a.url, created.body.key)).toBe(401);
  });

  it('an id tried on B before it exists is not stuck as unknown once A creates it', async () => {
    const [a, b] = await replicas();
    await admin(a.adminUrl, 'POST', '/admin/tenants', { id: 'globex', plan: 'big' });
    // Same id and secret shape: B caches "unknown id" for ak_later.
    const { generateApiKey } = await import('../../src/auth/api-key-format.js');
    expect(await callWith(b.url, generateApiKey({ env: 'live', id: 'ak_later' }).key)).toBe(401);
    const created = await admin(a.adminUrl, 'POST', '/admin/tenants/globex/keys', { id: 'ak_later' });
    expect(created.status).toBe(201);
    await within(BOUND_MS, async () => (await callWith(b.url, created.body.key)) === 200);
  });

  it('rotate on A with an overlap: both keys work on B during it, only the new one after', async () => {
    const [a, b] = await replicas();
    await admin(a.adminUrl, 'POST', '/admin/tenants', { id: 'globex', plan: 'big' });
    const old = (await admin(a.adminUrl, 'POST', '/admin/tenants/globex/keys', {})).body;
    expect(await callWith(b.url, old.key)).toBe(200);
    const rotated = await admin(a.adminUrl, 'POST', `/admin/keys/${old.record.id}/rotate`, { overlapSec: 2 });
    expect(rotated.status).toBe(201);
    const overlapEnd = Date.parse(rotated.body.previous.expiresAt);
    expect(await callWith(b.url, rotated.body.key)).toBe(200);
    expect(await callWith(b.url, old.key)).toBe(200);
    await new Promise((r) => setTimeout(r, Math.max(0, overlapEnd - Date.now() + 50)));
    expect(await callWith(b.url, old.key)).toBe(401);
    expect(await callWith(a.url, old.key)).toBe(401);
    expect(await callWith(b.url, rotated.body.key)).toBe(200);
  });

  it('suspend on A → 403 tenant_suspended on B within the bound, and back after activate; plan changes too', async () => {
    const [a, b] = await replicas();
    await admin(a.adminUrl, 'POST', '/admin/tenants', { id: 'globex', plan: 'big' });
    const { key } = (await admin(a.adminUrl, 'POST', '/admin/tenants/globex/keys', {})).body;
    await within(BOUND_MS, async () => (await callWith(b.url, key)) === 200);

    await admin(a.adminUrl, 'POST', '/admin/tenants/globex/suspend');
    expect(await within(BOUND_MS, async () => (await callWith(b.url, key)) === 403)).toBeLessThan(BOUND_MS);
    const res = await fetch(`${b.url}/x`, { headers: { 'x-api-key': key } });
    expect((await res.json()).error.code).toBe('tenant_suspended');
    await admin(a.adminUrl, 'POST', '/admin/tenants/globex/activate');
    expect(await within(BOUND_MS, async () => (await callWith(b.url, key)) === 200)).toBeLessThan(BOUND_MS);

    // Plan change: B limits by the new plan (burst 2) within the bound.
    await admin(a.adminUrl, 'PATCH', '/admin/tenants/globex', { plan: 'small' });
    await within(BOUND_MS, async () => {
      const r = await fetch(`${b.url}/x`, { headers: { 'x-api-key': key } });
      await r.arrayBuffer();
      return r.headers.get('ratelimit-limit') === '2';
    });
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push(await callWith(b.url, key));
    expect(statuses).toContain(429);
  });

  it('the invalidation connection dropped (CLIENT KILL TYPE pubsub) while a key is revoked: B still stops it within the bound', async () => {
    const [a, b] = await replicas();
    await admin(a.adminUrl, 'POST', '/admin/tenants', { id: 'globex', plan: 'big' });
    const created = (await admin(a.adminUrl, 'POST', '/admin/tenants/globex/keys', {})).body;
    await within(BOUND_MS, async () => (await callWith(b.url, created.key)) === 200);
    const { Redis } = await import('ioredis');
    const control = new Redis(redis.url);
    try {
      // Both replicas' subscribers are cut; the revocation's message is published while they reconnect.
      expect(await control.client('KILL', 'TYPE', 'pubsub')).toBeGreaterThanOrEqual(2);
      expect((await admin(a.adminUrl, 'DELETE', `/admin/keys/${created.record.id}`)).status).toBe(200);
      expect(await within(BOUND_MS, async () => (await callWith(b.url, created.key)) === 401)).toBeLessThan(BOUND_MS);
    } finally {
      control.disconnect();
    }
  });

  it('a replica started later loads every tenant; lastUsedAt is written in batches, not per request', async () => {
    const [a, b] = await replicas();
    await admin(a.adminUrl, 'POST', '/admin/tenants', { id: 'globex', plan: 'big' });
    const created = (await admin(a.adminUrl, 'POST', '/admin/tenants/globex/keys', {})).body;
    expect(created.record.lastUsedAt).toBeUndefined();
    expect(await callWith(b.url, created.key)).toBe(200);
    // Written by B's batch timer (every 5 s), read by A from Redis.
    await within(7000, async () => (await admin(a.adminUrl, 'GET', `/admin/keys/${created.record.id}`)).body.lastUsedAt !== undefined);
    const c = await spawnProxy('', {}, a.configFile);
    procs.push(c);
    expect(await callWith(c.url, created.key)).toBe(200);
    expect((await admin(c.adminUrl, 'GET', '/admin/tenants')).body.data.map((t: { id: string }) => t.id)).toEqual(['globex']);
  });

  it('Redis down (failureMode open): keys verified before keep working; a never-seen key is 503 store_unavailable, not 401', async () => {
    const own = new RedisServer();
    await own.start();
    try {
      const p = await spawnProxy(`
admin: { host: 127.0.0.1, port: 0, token: "${ADMIN_TOKEN}" }
store: { redis: "${own.url}", commandTimeoutMs: 100, failureMode: open }
plans: { big: { rate: { perSecond: 1000, burst: 1000 } } }
routes:
  - { name: api, match: { pathPrefix: / }, upstream: "${upstream.url}", auth: [apiKey] }
`);
      procs.push(p);
      await admin(p.adminUrl, 'POST', '/admin/tenants', { id: 'globex', plan: 'big' });
      const seen = (await admin(p.adminUrl, 'POST', '/admin/tenants/globex/keys', {})).body;
      const unseen = (await admin(p.adminUrl, 'POST', '/admin/tenants/globex/keys', {})).body;
      expect(await callWith(p.url, seen.key)).toBe(200);
      await own.kill();
      // Past the 0.5 s fallback TTL (and the 10 s one) the entry is stale; the failed lookup falls back on it.
      for (const wait of [0, 600, 600]) {
        await new Promise((r) => setTimeout(r, wait));
        expect(await callWith(p.url, seen.key)).toBe(200);
      }
      const refused = await fetch(`${p.url}/x`, { headers: { 'x-api-key': unseen.key } });
      expect(refused.status).toBe(503);
      expect((await refused.json()).error.code).toBe('store_unavailable');
    } finally {
      await own.kill();
    }
  });
});
