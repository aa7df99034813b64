/**
 * Named limits end to end: two proxy processes on one real redis-server
 * never admitting more than a named quota allows (exactly), nor a named rate
 * more than its burst plus refill; a reload mid-window that keeps the
 * counters of the limits whose names stay; the usage route refusing what it
 * must (no credential, a method other than GET/HEAD) and never reaching the
 * upstream; registry tenants' billingDay, overrides and entitlements through
 * the admin API.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { generateApiKey } from '../../src/auth/api-key-format.js';
import { ADMIN_TOKEN, admin, within } from '../helpers/admin-api.js';
import { RedisServer } from '../helpers/redis.js';
import { spawnProxy, startProxy, startUpstream, withTestDefaults, type RunningProxy, type SpawnedProxy, type Upstream } from '../helpers/servers.js';

const key = generateApiKey({ env: 'live', id: 'ak_named' });
const keys = `apiKeys:\n  - { id: ak_named, tenant: acme, project: p1, hash: "${key.hash}", scopes: ["*"] }\n`;
const call = (url: string, path = '/api/x', method = 'GET', k: string | null = key.key) => fetch(`${url}${path}`, { method, headers: k === null ? {} : { 'x-api-key': k } });

let upstream: Upstream;
beforeAll(async () => {
  upstream = await startUpstream();
});
afterAll(async () => upstream.close());

describe('two proxy processes on one Redis', () => {
  const redis = new RedisServer();
  const proxies: SpawnedProxy[] = [];
  beforeAll(async () => {
    await redis.start();
  });
  afterAll(async () => {
    await Promise.all(proxies.map((p) => p.stop()));
    await redis.kill();
  });

  it('a named quota admits exactly its limit across both (local credit on), a named rate at most its burst plus refill; each refusal names its limit', async () => {
    const yaml = `store: { redis: "${redis.url}", keyPrefix: "tg${randomUUID().slice(0, 8)}:", commandTimeoutMs: 1000 }
plans:
  team:
    limits:
      - { name: api-per-minute, routes: [limited], rate: { limit: 10, window: 1m } }
      - { name: hourly, routes: [api], quota: { limit: 30, window: 1h } }
      - { name: jobs, routes: [api], per: project, concurrency: 50 }
tenants: [{ id: acme, plan: team }]
${keys}routes:
  - { name: api, match: { pathPrefix: /api }, upstream: "${upstream.url}" }
  - { name: limited, match: { pathPrefix: /limited }, upstream: "${upstream.url}" }
  - { name: usage, match: { pathPrefix: /usage }, usage: true }
`;
    proxies.push(await spawnProxy(yaml), await spawnProxy(yaml));
    const [a, b] = proxies as [SpawnedProxy, SpawnedProxy];
    const before = upstream.requests.length;
    const answers = await Promise.all(Array.from({ length: 80 }, (_, i) => call(i % 2 === 0 ? a.url : b.url).then(async (r) => ({ status: r.status, body: r.status === 429 ? await r.json() : await r.text() }))));
    expect(answers.filter((x) => x.status === 200)).toHaveLength(30);
    const refused = answers.filter((x) => x.status !== 200);
    expect(refused).toHaveLength(50);
    for (const r of refused) expect(r).toMatchObject({ status: 429, body: { error: { code: 'quota_exceeded', limit: 'hourly' } } });
    expect(upstream.requests.slice(before).filter((r) => r.url.startsWith('/api'))).toHaveLength(30);

    const rated = await Promise.all(Array.from({ length: 40 }, (_, i) => call(i % 2 === 0 ? a.url : b.url, '/limited/x').then(async (r) => (await r.text(), r.status))));
    const admitted = rated.filter((s) => s === 200).length;
    // Burst 10, then one token every 6 s.
    expect(admitted).toBeGreaterThanOrEqual(10);
    expect(admitted).toBeLessThanOrEqual(11);

    // Either process reads the shared counts for the usage card.
    const card = await (await call(b.url, '/usage')).json();
    expect(card.limits.find((l: { name: string }) => l.name === 'hourly')).toMatchObject({ kind: 'quota', used: 30, limit: 30, remaining: 0 });
    expect(card.limits.find((l: { name: string }) => l.name === 'jobs')).toMatchObject({ kind: 'concurrency', used: 0, limit: 50, remaining: 50, resetAt: null });
  });
});

describe('a reload mid-window', () => {
  let proxy: RunningProxy;
  afterEach(async () => proxy?.close());

  const config = (limits: string) => `plans:
  team:
    limits:
${limits}
tenants: [{ id: acme, plan: team }]
${keys}routes:
  - { name: api, match: { pathPrefix: /api }, upstream: "${upstream.url}" }
  - { name: other, match: { pathPrefix: /other }, upstream: "${upstream.url}" }
  - { name: usage, match: { pathPrefix: /usage }, usage: true }
`;

  it('keeps the counters of the limits whose names stay (with their new numbers); renamed and added ones start at zero', async () => {
    proxy = await startProxy(
      config(`      - { name: deployments, routes: [api], quota: { limit: 3, window: 1h } }
      - { name: old-name, routes: [other], quota: { limit: 2, window: 1h } }`),
    );
    for (let i = 0; i < 2; i++) expect((await call(proxy.url)).status).toBe(200);
    for (let i = 0; i < 2; i++) expect((await call(proxy.url, '/other/x')).status).toBe(200);
    expect((await call(proxy.url, '/other/x')).status).toBe(429);

    writeFileSync(
      proxy.configFile,
      withTestDefaults(
        config(`      - { name: deployments, routes: [api], quota: { limit: 4, window: 1h } }
      - { name: new-name, routes: [other], quota: { limit: 2, window: 1h } }
      - { name: added, routes: [api], quota: { limit: 10, window: 1d } }`),
      ),
    );
    expect(await proxy.gate.reload()).toBe(true);
    const card = await (await call(proxy.url, '/usage')).json();
    expect(card.limits.map((l: { name: string; used: number; limit: number }) => [l.name, l.used, l.limit])).toEqual([
      ['deployments', 2, 4],
      ['new-name', 0, 2],
      ['added', 0, 10],
    ]);
    // deployments: 2 of 4 used before the reload, so 2 more.
    for (let i = 0; i < 2; i++) expect((await call(proxy.url)).status).toBe(200);
    const refused = await call(proxy.url);
    expect(refused.status).toBe(429);
    expect((await refused.json()).error.limit).toBe('deployments');
    // new-name is a new limit: it counts from zero.
    expect((await call(proxy.url, '/other/x')).status).toBe(200);
  });
});

describe('the usage route refuses what it must', () => {
  let proxy: RunningProxy;
  afterEach(async () => proxy?.close());

  it('no credential → 401; POST → 405 with Allow; neither reaches the upstream nor charges', async () => {
    proxy = await startProxy(`plans:
  team:
    limits:
      - { name: calls, quota: { limit: 5, window: 1d } }
tenants: [{ id: acme, plan: team }]
${keys}routes:
  - { name: usage, match: { pathPrefix: /usage }, usage: true }
`);
    const before = upstream.requests.length;
    const anonymous = await call(proxy.url, '/usage', 'GET', null);
    expect(anonymous.status).toBe(401);
    expect((await anonymous.json()).error.code).toBe('unauthenticated');
    const post = await call(proxy.url, '/usage', 'POST');
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
    expect((await post.json()).error.code).toBe('method_not_allowed');
    const head = await call(proxy.url, '/usage', 'HEAD');
    expect(head.status).toBe(200);
    expect(head.headers.get('content-type')).toMatch(/^application\/json/);
    const card = await (await call(proxy.url, '/usage')).json();
    expect(card).toEqual({ tenant: 'acme', plan: 'team', limits: [{ name: 'calls', kind: 'quota', used: 0, limit: 5, remaining: 5, resetAt: expect.any(String) }] });
    expect(upstream.requests.length).toBe(before);
  });

  it("never another tenant's: a key of acme naming tenant other is 403 cross_tenant; other's own card shows other's counts", async () => {
    const otherKey = generateApiKey({ env: 'live', id: 'ak_other' });
    proxy = await startProxy(`plans:
  team:
    limits:
      - { name: calls, quota: { limit: 5, window: 1d } }
tenants: [{ id: acme, plan: team }, { id: other, plan: team }]
tenancy: { select: [header] }
${keys}  - { id: ak_other, tenant: other, hash: "${otherKey.hash}", scopes: ["*"] }
routes:
  - { name: api, match: { pathPrefix: /api }, upstream: "${upstream.url}" }
  - { name: usage, match: { pathPrefix: /usage }, usage: true }
`);
    for (let i = 0; i < 2; i++) expect((await call(proxy.url)).status).toBe(200);
    const spoofed = await fetch(`${proxy.url}/usage`, { headers: { 'x-api-key': key.key, 'x-tenant-id': 'other' } });
    expect(spoofed.status).toBe(403);
    const body = await spoofed.json();
    expect(body.error.code).toBe('cross_tenant');
    expect(JSON.stringify(body)).not.toContain('calls');
    const own = await (await call(proxy.url, '/usage', 'GET', otherKey.key)).json();
    expect(own).toMatchObject({ tenant: 'other', limits: [{ name: 'calls', used: 0 }] });
    const mine = await (await call(proxy.url, '/usage')).json();
    expect(mine).toMatchObject({ tenant: 'acme', limits: [{ name: 'calls', used: 2 }] });
  });

  it('a route without upstream that is not a usage route is a config error', async () => {
    await expect(startProxy(`routes:\n  - { name: api, match: { pathPrefix: /api } }\n`)).rejects.toThrow(/routes\[0\]\.upstream: is required \(only a usage: true route has none\)/);
  });
});

describe('admin API: billingDay, overrides.limits and limits of registry tenants', () => {
  let proxy: RunningProxy;
  afterEach(async () => proxy?.close());

  it('a tenant created with billingDay 15 and an override: checked against the plan, applied to its requests, shown with its use', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tg-lim-admin-'));
    proxy = await startProxy(`admin: { host: 127.0.0.1, port: 0, token: "${ADMIN_TOKEN}", stateFile: "${join(dir, 'state.json')}" }
plans:
  standard:
    limits:
      - { name: api-calls, quota: { limit: 100, window: 1mo } }
      - { name: jobs, per: project, concurrency: 4 }
    entitlements: { apiKeys: 3, projects: 1 }
routes:
  - { name: api, match: { pathPrefix: /api }, upstream: "${upstream.url}" }
  - { name: usage, match: { pathPrefix: /usage }, usage: true }
`);
    const create = (body: unknown) => admin(proxy.adminUrl, 'POST', '/admin/tenants', body);
    const unknown = await create({ id: 'x1', plan: 'standard', overrides: { limits: { nope: null } } });
    expect([unknown.status, unknown.body.error.code, unknown.body.error.message]).toEqual([400, 'bad_request', 'Invalid body: overrides.limits.nope: the plan has no limit "nope".']);
    const kind = await create({ id: 'x1', plan: 'standard', overrides: { limits: { jobs: { quota: { limit: 3 } } } } });
    expect([kind.status, kind.body.error.message]).toEqual([400, 'Invalid body: overrides.limits.jobs: "jobs" is a concurrency limit: override it with { concurrency: ... } or null.']);
    expect((await create({ id: 'x1', plan: 'standard', billingDay: 0 })).status).toBe(400);

    const made = await create({ id: 'umbrella', plan: 'standard', billingDay: 15, overrides: { limits: { 'api-calls': { quota: { limit: 2 } } } } });
    expect(made.status).toBe(201);
    expect(made.body).toMatchObject({ id: 'umbrella', billingDay: 15, overrides: { limits: { 'api-calls': { quota: { limit: 2 } } } } });
    const k = await admin(proxy.adminUrl, 'POST', '/admin/tenants/umbrella/keys', { project: 'p1', scopes: ['*'] });
    expect(k.status).toBe(201);
    const otherProject = await admin(proxy.adminUrl, 'POST', '/admin/tenants/umbrella/keys', { project: 'p2', scopes: ['*'] });
    expect([otherProject.status, otherProject.body.error.code]).toEqual([409, 'entitlement_exceeded']);

    const now = new Date();
    const start15 = (y: number, m: number) => Date.UTC(y, m, 15);
    const reset = start15(now.getUTCFullYear(), now.getUTCMonth()) > now.getTime() ? start15(now.getUTCFullYear(), now.getUTCMonth()) : start15(now.getUTCFullYear(), now.getUTCMonth() + 1);
    await within(3000, async () => (await call(proxy.url, '/api/x', 'GET', k.body.key)).status === 200);
    const second = await call(proxy.url, '/api/x', 'GET', k.body.key);
    const third = await call(proxy.url, '/api/x', 'GET', k.body.key);
    expect([second.status, third.status]).toEqual([200, 429]);
    expect((await third.json()).error.limit).toBe('api-calls');

    const shown = await admin(proxy.adminUrl, 'GET', '/admin/tenants/umbrella');
    expect(shown.body.limits).toEqual([
      { name: 'api-calls', kind: 'quota', per: 'tenant', used: 2, limit: 2, remaining: 0, resetAt: new Date(reset).toISOString() },
      { name: 'jobs', kind: 'concurrency', per: 'project', used: null, limit: 4, remaining: null, resetAt: null },
    ]);
    const card = await (await call(proxy.url, '/usage', 'GET', k.body.key)).json();
    expect(card.limits[1]).toEqual({ name: 'jobs', kind: 'concurrency', used: 0, limit: 4, remaining: 4, resetAt: null });
  });
});
