/**
 * Two proxy processes sharing one real PostgreSQL registry (a database of
 * this test's own on the machine's server), with no Redis anywhere: a change
 * made through one replica's admin API is in force on the other within 1 s,
 * the schema migrates when replicas start at once, and a database that
 * becomes unreachable (a relay the test cuts) leaves known keys working, a
 * never-seen key 503 `store_unavailable`, /readyz saying so, and, once it is
 * back, every change made meanwhile in force.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, admin, callWith, within } from '../helpers/admin-api.js';
import { TcpRelay, TestDatabase } from '../helpers/postgres.js';
import { spawnProxy, startUpstream, type SpawnedProxy, type Upstream } from '../helpers/servers.js';

/** The bound docs/admin-api.md states for a change to reach every replica. */
const BOUND_MS = 1000;
const SECRET = 'pg-pass-never-logged';

let upstream: Upstream;
const procs: SpawnedProxy[] = [];
const databases: TestDatabase[] = [];
beforeAll(async () => {
  upstream = await startUpstream((req, res) => res.end(String(req.headers['x-tenant-id'])));
});
afterEach(async () => {
  while (procs.length > 0) await procs.pop()!.stop('SIGKILL');
  while (databases.length > 0) await databases.pop()!.drop();
});
afterAll(async () => upstream.close());

const yaml = (registryUrl: string) => `
admin: { host: 127.0.0.1, port: 0, token: "${ADMIN_TOKEN}" }
registry: { postgres: "${registryUrl}" }
plans: { big: { rate: { perSecond: 1000, burst: 1000 } } }
routes:
  - { name: api, match: { pathPrefix: / }, upstream: "${upstream.url}", auth: [apiKey] }
`;

async function database(): Promise<TestDatabase> {
  const db = await TestDatabase.create();
  databases.push(db);
  return db;
}

async function spawn(url: string): Promise<SpawnedProxy> {
  const p = await spawnProxy(yaml(url));
  procs.push(p);
  return p;
}

async function readyz(p: SpawnedProxy): Promise<{ status: number; body: { status: string; degraded?: string[] } }> {
  const res = await fetch(`${p.adminUrl}/readyz`);
  return { status: res.status, body: (await res.json()) as { status: string; degraded?: string[] } };
}

const forwarded = () => upstream.requests.length;
const forwardedFor = (header: string, value: string) => upstream.requests.filter((r) => r.headers[header] === value).length;

describe('PostgreSQL registry shared by two replicas', () => {
  it('two replicas starting at once on a fresh database migrate it once; a third start finds nothing to do', async () => {
    const db = await database();
    const [a, b] = await Promise.all([spawn(db.url()), spawn(db.url())]);
    expect(await db.sql('SELECT version FROM tenantgate_schema_version ORDER BY version')).toEqual([{ version: 1 }]);
    const c = await spawn(db.url());
    expect(await db.sql('SELECT count(*)::int AS n FROM tenantgate_schema_version')).toEqual([{ n: 1 }]);
    const migrated = [a, b, c].flatMap((p) => p.logs).filter((l) => (l as { msg?: string }).msg === 'registry schema migrated');
    expect(migrated).toHaveLength(1);
    for (const p of [a, b, c]) expect((await readyz(p)).body).toEqual({ status: 'ready' });
  });

  it('a key created on A works on B; revoked on A, B refuses it within 1 s; suspension too', async () => {
    const db = await database();
    const [a, b] = await Promise.all([spawn(db.url()), spawn(db.url())]);
    expect((await admin(a.adminUrl, 'POST', '/admin/tenants', { id: 'globex', plan: 'big' })).status).toBe(201);
    expect((await admin(b.adminUrl, 'POST', '/admin/tenants', { id: 'GLOBEX', plan: 'big' })).status).toBe(409);
    const created = await admin(a.adminUrl, 'POST', '/admin/tenants/globex/keys', { scopes: ['*'] });
    expect(created.status).toBe(201);
    await within(BOUND_MS, async () => (await callWith(b.url, created.body.key)) === 200);
    expect(await db.sql('SELECT id, tenant FROM tenantgate_keys')).toEqual([{ id: created.body.record.id, tenant: 'globex' }]);

    expect((await admin(a.adminUrl, 'DELETE', `/admin/keys/${created.body.record.id}`)).status).toBe(200);
    expect(await within(BOUND_MS, async () => (await callWith(b.url, created.body.key)) === 401)).toBeLessThan(BOUND_MS);
    const reached = forwardedFor('x-api-key-id', created.body.record.id);
    expect([await callWith(a.url, created.body.key), await callWith(b.url, created.body.key)]).toEqual([401, 401]);
    expect(forwardedFor('x-api-key-id', created.body.record.id)).toBe(reached);

    const other = (await admin(b.adminUrl, 'POST', '/admin/tenants/globex/keys', {})).body;
    expect(await callWith(a.url, other.key)).toBe(200);
    await admin(b.adminUrl, 'POST', '/admin/tenants/globex/suspend');
    expect(await within(BOUND_MS, async () => (await callWith(a.url, other.key)) === 403)).toBeLessThan(BOUND_MS);
    const admitted = forwardedFor('x-tenant-id', 'globex');
    expect(await callWith(a.url, other.key)).toBe(403);
    expect(forwardedFor('x-tenant-id', 'globex')).toBe(admitted);
  });

  it('database unreachable for A: known key keeps working, never-seen key 503, readyz degraded; back: changes made meanwhile are in force', async () => {
    const db = await database();
    const relay = new TcpRelay();
    await relay.start();
    try {
      const [a, b] = await Promise.all([spawn(db.url(relay.port)), spawn(db.url())]);
      await admin(b.adminUrl, 'POST', '/admin/tenants', { id: 'globex', plan: 'big' });
      const seen = (await admin(b.adminUrl, 'POST', '/admin/tenants/globex/keys', {})).body;
      const unseen = (await admin(b.adminUrl, 'POST', '/admin/tenants/globex/keys', {})).body;
      await within(BOUND_MS, async () => (await callWith(a.url, seen.key)) === 200);

      await relay.cut();
      await within(3000, async () => (await readyz(a)).body.degraded?.includes('registry_unavailable') === true);
      expect((await readyz(a)).status).toBe(200); // failureMode open: serving from what it knows
      expect((await readyz(b)).body).toEqual({ status: 'ready' });
      // Past the 0.5 s fallback TTL the verdict is stale; the failed lookup falls back on it.
      for (const wait of [0, 600, 600]) {
        await new Promise((r) => setTimeout(r, wait));
        expect(await callWith(a.url, seen.key)).toBe(200);
      }
      const before = forwarded();
      const refused = await fetch(`${a.url}/x`, { headers: { 'x-api-key': unseen.key } });
      expect(refused.status).toBe(503);
      expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('store_unavailable');
      expect(forwarded()).toBe(before);
      const write = await admin(a.adminUrl, 'POST', '/admin/tenants', { id: 'umbrella', plan: 'big' });
      expect(write.status).toBe(503);
      expect(write.body.error.code).toBe('store_unavailable');

      // Made on B while A hears nothing: the NOTIFYs are lost for A.
      expect((await admin(b.adminUrl, 'DELETE', `/admin/keys/${seen.record.id}`)).status).toBe(200);
      expect((await admin(b.adminUrl, 'POST', '/admin/tenants', { id: 'initech', plan: 'big' })).status).toBe(201);
      const late = (await admin(b.adminUrl, 'POST', '/admin/tenants/initech/keys', {})).body;

      await relay.restore();
      await within(3000, async () => (await readyz(a)).body.degraded === undefined);
      expect(await callWith(a.url, seen.key)).toBe(401);
      expect(await callWith(a.url, unseen.key)).toBe(200);
      expect(await callWith(a.url, late.key)).toBe(200);
      expect((await admin(a.adminUrl, 'GET', '/admin/tenants')).body.data.map((t: { id: string }) => t.id).sort()).toEqual(['globex', 'initech']);
    } finally {
      await relay.cut();
    }
  });

  it('database unreachable at start: A starts, says so without its password, and catches up once it is reachable', async () => {
    const db = await database();
    const relay = new TcpRelay();
    await relay.start();
    await relay.cut();
    try {
      const b = await spawn(db.url());
      await admin(b.adminUrl, 'POST', '/admin/tenants', { id: 'globex', plan: 'big' });
      const key = (await admin(b.adminUrl, 'POST', '/admin/tenants/globex/keys', {})).body;

      const a = await spawn(db.url(relay.port, `postgres:${SECRET}`));
      expect((await readyz(a)).body.degraded).toEqual(['registry_unavailable']);
      const refused = await fetch(`${a.url}/x`, { headers: { 'x-api-key': key.key } });
      expect(refused.status).toBe(503);
      await refused.arrayBuffer();
      const logs = JSON.stringify(a.logs);
      expect(logs).toContain('PostgreSQL registry unreachable at start');
      expect(logs).toContain(`postgres:***@127.0.0.1:${relay.port}`);
      expect(logs).not.toContain(SECRET);
      const metrics = await (await fetch(`${a.adminUrl}/metrics`)).text();
      expect(metrics).not.toContain(SECRET);

      await relay.restore();
      await within(3000, async () => (await readyz(a)).body.degraded === undefined);
      expect(await callWith(a.url, key.key)).toBe(200);
      expect((await admin(a.adminUrl, 'GET', '/admin/tenants')).body.data.map((t: { id: string }) => t.id)).toEqual(['globex']);
      expect(JSON.stringify(a.logs)).not.toContain(SECRET);
    } finally {
      await relay.cut();
    }
  });

  it('a database that answers but cannot be used (it does not exist) stops the start with a clear line, password hidden', async () => {
    const url = `postgres://postgres:${SECRET}@127.0.0.1:5432/tg_test_missing_${Date.now()}`;
    const err = await spawnProxy(yaml(url)).catch((e: unknown) => e as Error);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/cannot start: PostgreSQL registry postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:5432\/tg_test_missing_\d+: database "tg_test_missing_\d+" does not exist/);
    expect((err as Error).message).not.toContain(SECRET);
  });
});
