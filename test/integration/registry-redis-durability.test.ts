/**
 * The Redis registry's durability (SPEC §14, issue #32), with real
 * redis-servers on free ports and the proxy as a child process:
 * - a registry Redis killed and restarted empty is noticed (registry_emptied
 *   in /readyz, the metric, an error log line) and not read as "every key
 *   revoked": keys this replica knew keep answering, a key it never looked up
 *   gets 503, admin writes are refused, until the records are restored and
 *   confirmed (or the emptiness is confirmed through the admin API);
 * - a flushed registry (no reconnect) is noticed by the lookup that misses;
 * - an evicting maxmemory-policy refuses the start, and on a reconnect makes
 *   the registry untrusted; no persistence is a warning;
 * - registry.redis apart from store.redis: records there, counters in the store.
 */
import { spawn } from 'node:child_process';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { generateApiKey } from '../../src/auth/api-key-format.js';
import { RedisRegistry } from '../../src/registry/redis-registry.js';
import type { KeyRecord, TenantRecord } from '../../src/registry/types.js';
import { ADMIN_TOKEN, admin, callWith } from '../helpers/admin-api.js';
import { logLines, metric, until } from '../helpers/life-process.js';
import { RedisServer } from '../helpers/redis.js';
import { MAIN, spawnProxy, startUpstream, withTestDefaults, writeConfig, type SpawnedProxy, type Upstream } from '../helpers/servers.js';

let upstream: Upstream;
const procs: SpawnedProxy[] = [];
const servers: RedisServer[] = [];
const registries: RedisRegistry[] = [];

beforeAll(async () => {
  upstream = await startUpstream((req, res) => res.end(String(req.headers['x-tenant-id'])));
});
afterEach(async () => {
  while (procs.length > 0) await procs.pop()!.stop('SIGKILL');
  while (registries.length > 0) await registries.pop()!.close();
  while (servers.length > 0) await servers.pop()!.kill();
});
afterAll(async () => upstream.close());

async function redisServer(extraArgs: string[] = [], persistDir: string | null = null): Promise<RedisServer> {
  const r = new RedisServer(persistDir, extraArgs);
  servers.push(r);
  await r.start();
  return r;
}

let run = 0;
function yaml(store: string | null, registry: string | null, prefix = `rd${++run}:`): string {
  return `
admin: { host: 127.0.0.1, port: 0, token: "${ADMIN_TOKEN}" }
store: { ${store === null ? '' : `redis: "${store}", `}keyPrefix: "${prefix}", commandTimeoutMs: 200 }
${registry === null ? '' : `registry: { redis: "${registry}" }`}
plans:
  big: { rate: { perSecond: 1000, burst: 1000 }, quota: { daily: 1000 } }
routes:
  - { name: api, match: { pathPrefix: / }, upstream: "${upstream.url}", auth: [apiKey] }
`;
}

async function proxy(config: string): Promise<SpawnedProxy> {
  const p = await spawnProxy(config);
  procs.push(p);
  return p;
}

/** The registry through its interface, as `tenantgate registry export/import` use it. */
async function registryOf(url: string, prefix: string): Promise<RedisRegistry> {
  const r = new RedisRegistry({ redis: url, keyPrefix: prefix, commandTimeoutMs: 500 });
  registries.push(r);
  await r.ready(3000);
  return r;
}

const readyz = async (p: SpawnedProxy) => (await fetch(`${p.adminUrl}/readyz`)).json() as Promise<{ status: string; degraded?: string[] }>;
const degradedBy = (p: SpawnedProxy, reason: string) => async () => ((await readyz(p)).degraded?.includes(reason) ? true : undefined);

/** Status and error code of one call, and whether the upstream saw it. */
async function call(p: SpawnedProxy, key: string): Promise<{ status: number; code: string | null; reached: boolean }> {
  const before = upstream.requests.length;
  const res = await fetch(`${p.url}/x`, { headers: { 'x-api-key': key } });
  const text = await res.text();
  const code = res.status === 200 ? null : (JSON.parse(text) as { error: { code: string } }).error.code;
  return { status: res.status, code, reached: upstream.requests.length > before };
}

/** A key record made as the admin API makes one, written straight through the Registry interface. */
function keyRecord(tenant: string): { key: string; record: KeyRecord } {
  const { key, id, hash } = generateApiKey({ env: 'live' });
  const now = new Date().toISOString();
  return { key, record: { id, tenant, hash, scopes: ['*'], env: 'live', revoked: false, createdAt: now, updatedAt: now } as KeyRecord };
}

describe('a registry Redis restarted empty', () => {
  it('keeps serving what it knew, 503 for a key it never saw, refuses writes; a restore through the Registry interface and its confirmation clear it', async () => {
    const r = await redisServer();
    const prefix = `rd${++run}:`;
    const p = await proxy(yaml(r.url, null, prefix));
    expect((await admin(p.adminUrl, 'POST', '/admin/tenants', { id: 'acme', plan: 'big' })).status).toBe(201);
    const warm = (await admin(p.adminUrl, 'POST', '/admin/tenants/acme/keys', { scopes: ['*'] })).body;
    const revoked = (await admin(p.adminUrl, 'POST', '/admin/tenants/acme/keys', { scopes: ['*'] })).body;
    expect(await callWith(p.url, warm.key)).toBe(200);
    expect((await admin(p.adminUrl, 'DELETE', `/admin/keys/${revoked.record.id}`)).status).toBe(200);
    expect(await callWith(p.url, revoked.key)).toBe(401);
    // Written by another process: this replica has never looked it up.
    const outside = await registryOf(r.url, prefix);
    const cold = keyRecord('acme');
    expect(await outside.createKey(cold.record)).toBe(true);
    // The backup `registry export` would take: whole records, hashes only.
    const tenants: TenantRecord[] = await outside.listTenants();
    const keys: KeyRecord[] = await outside.listKeys('acme');
    expect(keys.map((k) => k.id).sort()).toEqual([warm.record.id, revoked.record.id, cold.record.id].sort());
    await outside.close();
    registries.pop();
    expect((await readyz(p)).degraded ?? []).toEqual([]);
    expect(await metric(p.adminUrl, 'tenantgate_registry_up')).toBe(1);

    await r.kill();
    await r.start();
    await until(degradedBy(p, 'registry_emptied'), 'registry_emptied in /readyz', 10_000);
    expect((await fetch(`${p.adminUrl}/readyz`)).status).toBe(200);
    expect(await metric(p.adminUrl, 'tenantgate_registry_problem', 'reason="registry_emptied"')).toBe(1);
    expect(await metric(p.adminUrl, 'tenantgate_registry_up')).toBe(0);
    await until(() => (logLines(p.logs, 'registry Redis was emptied').length > 0 ? true : undefined), 'the error log line');
    expect(logLines(p.logs, 'registry Redis was emptied')).toHaveLength(1);
    // No persistence: warned at start and again on the reconnect.
    await until(() => (logLines(p.logs, 'registry Redis persists nothing').length >= 2 ? true : undefined), 'the warning again on the reconnect');

    // Known records keep their verdicts, past the verifier's cache (cleared by the reconnect).
    for (let i = 0; i < 3; i++) expect(await call(p, warm.key)).toEqual({ status: 200, code: null, reached: true });
    expect(await call(p, revoked.key)).toEqual({ status: 401, code: 'unauthenticated', reached: false });
    // Never looked up here: no last known record, so no answer — never a 401 "revoked".
    expect(await call(p, cold.key)).toEqual({ status: 503, code: 'store_unavailable', reached: false });
    const unknown = generateApiKey({ env: 'live' }).key;
    expect(await call(p, unknown)).toEqual({ status: 503, code: 'store_unavailable', reached: false });
    // Writes refused, so they cannot re-create the marker and hide the loss.
    const write = await admin(p.adminUrl, 'POST', '/admin/tenants', { id: 'initech', plan: 'big' });
    expect(write.status).toBe(503);
    expect(write.body.error.code).toBe('store_unavailable');
    expect(write.body.error.message).toMatch(/emptied/);
    expect((await admin(p.adminUrl, 'POST', '/admin/tenants/acme/keys', {})).status).toBe(503);
    expect((await admin(p.adminUrl, 'GET', '/admin/tenants/acme/keys')).status).toBe(503);
    // The admin API still shows the tenant it knew.
    expect((await admin(p.adminUrl, 'GET', '/admin/tenants/acme')).status).toBe(200);

    // Restore as `registry import` does: the records through the Registry interface, then its confirmation.
    const importer = await registryOf(r.url, prefix);
    for (const t of tenants) expect(await importer.createTenant(t)).toBe(true);
    for (const k of keys) expect(await importer.createKey(k)).toBe(true);
    // Records back, not yet confirmed: still emptied (a process that did not know wrote to it).
    await new Promise((done) => setTimeout(done, 1500));
    expect((await readyz(p)).degraded).toEqual(['registry_emptied']);
    await importer.confirmContents();
    await until(async () => ((await readyz(p)).degraded === undefined ? true : undefined), 'registry_emptied to clear', 5000);
    expect(await metric(p.adminUrl, 'tenantgate_registry_problem', 'reason="registry_emptied"')).toBe(0);
    expect(await metric(p.adminUrl, 'tenantgate_registry_up')).toBe(1);
    expect(await call(p, cold.key)).toEqual({ status: 200, code: null, reached: true });
    expect(await call(p, warm.key)).toEqual({ status: 200, code: null, reached: true });
    expect(await call(p, revoked.key)).toEqual({ status: 401, code: 'unauthenticated', reached: false });
    expect(await call(p, unknown)).toEqual({ status: 401, code: 'unauthenticated', reached: false });
    expect((await admin(p.adminUrl, 'POST', '/admin/tenants', { id: 'initech', plan: 'big' })).status).toBe(201);
  }, 60_000);

  it('an operator confirms the emptiness through the admin API: the problem clears and the empty registry is believed', async () => {
    const r = await redisServer();
    const p = await proxy(yaml(r.url, null));
    await admin(p.adminUrl, 'POST', '/admin/tenants', { id: 'acme', plan: 'big' });
    const { key } = (await admin(p.adminUrl, 'POST', '/admin/tenants/acme/keys', { scopes: ['*'] })).body;
    expect(await callWith(p.url, key)).toBe(200);
    await r.kill();
    await r.start();
    await until(degradedBy(p, 'registry_emptied'), 'registry_emptied in /readyz', 10_000);
    expect(await callWith(p.url, key)).toBe(200);

    expect((await admin(p.adminUrl, 'POST', '/admin/registry/confirm', undefined, 'not-the-admin-token-xxxx')).status).toBe(401);
    const stray = await admin(p.adminUrl, 'POST', '/admin/registry/confirm', { force: true });
    expect([stray.status, stray.body.error.code, stray.body.error.message]).toEqual([400, 'bad_request', 'Invalid body: unknown field "force".']);
    expect((await admin(p.adminUrl, 'POST', '/admin/registry/confirm', '{not json')).status).toBe(400);
    expect((await admin(p.adminUrl, 'GET', '/admin/registry/confirm')).status).toBe(405);
    expect((await readyz(p)).degraded).toEqual(['registry_emptied']);
    const confirmed = await admin(p.adminUrl, 'POST', '/admin/registry/confirm');
    expect(confirmed.status).toBe(200);
    expect(confirmed.body).toEqual({ confirmed: true, before: 'registry_emptied', problem: null });
    expect((await readyz(p)).degraded).toBeUndefined();
    await until(async () => ((await callWith(p.url, key)) === 401 ? true : undefined), 'the key to be gone with the registry', 3000);
    await until(() => (logLines(p.logs, 'admin confirmed the registry').length === 1 ? true : undefined), 'the confirmation in the log');
    expect((await admin(p.adminUrl, 'POST', '/admin/tenants', { id: 'acme', plan: 'big' })).status).toBe(201);
  }, 60_000);

  it('across replicas: both notice; one started after the loss cannot, and its writes do not clear the others; a confirm on one clears all', async () => {
    const r = await redisServer();
    const config = yaml(r.url, null);
    const [a, b] = [await proxy(config), await proxy(config)];
    await admin(a.adminUrl, 'POST', '/admin/tenants', { id: 'acme', plan: 'big' });
    const { key } = (await admin(a.adminUrl, 'POST', '/admin/tenants/acme/keys', { scopes: ['*'] })).body;
    await until(async () => ((await callWith(b.url, key)) === 200 ? true : undefined), 'the key on B');
    await r.kill();
    await r.start();
    for (const p of [a, b]) await until(degradedBy(p, 'registry_emptied'), 'registry_emptied on both', 10_000);
    for (const p of [a, b]) expect(await callWith(p.url, key)).toBe(200);

    const c = await proxy(config);
    expect((await readyz(c)).degraded).toBeUndefined();
    expect(await callWith(c.url, key)).toBe(401);
    expect((await admin(c.adminUrl, 'POST', '/admin/tenants', { id: 'initech', plan: 'big' })).status).toBe(201);
    await until(() => (logLines(a.logs, 'the emptied registry Redis was written to').length > 0 ? true : undefined), "A's note of the write");
    for (const p of [a, b]) expect((await readyz(p)).degraded).toEqual(['registry_emptied']);
    expect(await callWith(a.url, key)).toBe(200);

    expect((await admin(b.adminUrl, 'POST', '/admin/registry/confirm')).status).toBe(200);
    await until(async () => ((await readyz(a)).degraded === undefined ? true : undefined), 'A to take the confirmation', 3000);
    expect(await callWith(a.url, key)).toBe(401);
  }, 60_000);

  it('a FLUSHALL (no reconnect) is noticed by the lookup that misses: 503, not 401', async () => {
    const r = await redisServer();
    const p = await proxy(yaml(r.url, null));
    await admin(p.adminUrl, 'POST', '/admin/tenants', { id: 'acme', plan: 'big' });
    const known = (await admin(p.adminUrl, 'POST', '/admin/tenants/acme/keys', { scopes: ['*'] })).body;
    expect(await callWith(p.url, known.key)).toBe(200);
    const control = new Redis(r.url);
    try {
      await control.flushall();
    } finally {
      control.disconnect();
    }
    expect(await call(p, generateApiKey({ env: 'live' }).key)).toEqual({ status: 503, code: 'store_unavailable', reached: false });
    expect((await readyz(p)).degraded).toEqual(['registry_emptied']);
    expect(await callWith(p.url, known.key)).toBe(200);
  }, 30_000);
});

/** `node dist/main.js serve` to its exit (or its listening line): exit code and stderr. */
function serveOnce(config: string): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [MAIN, 'serve', '-c', writeConfig(withTestDefaults(config))], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  child.stdout.on('data', (c: Buffer) => {
    if (c.toString().includes('tenantgate listening')) child.kill('SIGKILL');
  });
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, stderr })));
}

describe('maxmemory-policy and persistence of the registry Redis', () => {
  it('allkeys-lru: the proxy refuses to start, exit 1, naming maxmemory-policy and the fix — as store.redis or as registry.redis', async () => {
    const evicting = await redisServer(['--maxmemory-policy', 'allkeys-lru']);
    const fine = await redisServer();
    for (const config of [yaml(evicting.url, null), yaml(fine.url, evicting.url), yaml(null, evicting.url)]) {
      const { code, stderr } = await serveOnce(config);
      expect(code).toBe(1);
      expect(stderr).toMatch(/maxmemory-policy allkeys-lru/);
      expect(stderr).toMatch(/noeviction/);
      expect(stderr).not.toMatch(/\n\s+at /); // no stack trace
    }
  }, 60_000);

  it('noeviction and volatile-lru start; appendonly no + save "" starts with one warning; AOF on, no warning', async () => {
    const noeviction = await redisServer();
    const volatile = await redisServer(['--maxmemory-policy', 'volatile-lru']);
    const { mkdtempSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const aof = await redisServer([], mkdtempSync(join(tmpdir(), 'tg-aof-')));
    const a = await proxy(yaml(noeviction.url, null));
    expect(logLines(a.logs, 'registry Redis persists nothing')).toHaveLength(1);
    expect((await readyz(a)).status).toBe('ready');
    const b = await proxy(yaml(volatile.url, null));
    expect((await readyz(b)).degraded).toBeUndefined();
    const c = await proxy(yaml(aof.url, null));
    expect(logLines(c.logs, 'registry Redis persists nothing')).toHaveLength(0);
    expect(logLines(c.logs, 'could not check')).toHaveLength(0);
  }, 60_000);

  it('the policy turned evicting while running is found on the next reconnect: registry_evicting_policy, known keys still served, writes refused', async () => {
    const r = await redisServer();
    const p = await proxy(yaml(r.url, null));
    await admin(p.adminUrl, 'POST', '/admin/tenants', { id: 'acme', plan: 'big' });
    const { key } = (await admin(p.adminUrl, 'POST', '/admin/tenants/acme/keys', { scopes: ['*'] })).body;
    expect(await callWith(p.url, key)).toBe(200);
    const control = new Redis(r.url);
    try {
      await control.config('SET', 'maxmemory-policy', 'allkeys-lfu');
      await control.client('KILL', 'TYPE', 'normal', 'SKIPME', 'yes');
      await until(degradedBy(p, 'registry_evicting_policy'), 'registry_evicting_policy in /readyz', 10_000);
      const line = await until(() => logLines(p.logs, 'registry untrusted: the registry Redis')[0], 'the error log line');
      expect(line.msg).toMatch(/maxmemory-policy allkeys-lfu/);
      expect(await callWith(p.url, key)).toBe(200);
      expect((await admin(p.adminUrl, 'POST', '/admin/tenants', { id: 'initech', plan: 'big' })).status).toBe(503);
      // Fixed, and found on the next reconnect.
      await control.config('SET', 'maxmemory-policy', 'noeviction');
      await control.client('KILL', 'TYPE', 'normal', 'SKIPME', 'yes');
      await until(async () => ((await readyz(p)).degraded === undefined ? true : undefined), 'the problem to clear', 10_000);
      expect((await admin(p.adminUrl, 'POST', '/admin/tenants', { id: 'initech', plan: 'big' })).status).toBe(201);
    } finally {
      control.disconnect();
    }
  }, 60_000);
});

describe('registry.redis apart from store.redis', () => {
  it('tenants and keys land in the registry Redis, counters stay in store.redis, and the admin API reads usage from there', async () => {
    const store = await redisServer();
    const registry = await redisServer();
    const prefix = `rd${++run}:`;
    const p = await proxy(yaml(store.url, registry.url, prefix));
    expect((await admin(p.adminUrl, 'POST', '/admin/tenants', { id: 'acme', plan: 'big' })).status).toBe(201);
    const { key, record } = (await admin(p.adminUrl, 'POST', '/admin/tenants/acme/keys', { scopes: ['*'] })).body;
    expect(await callWith(p.url, key)).toBe(200);
    expect(await callWith(p.url, key)).toBe(200);
    const [s, g] = [new Redis(store.url), new Redis(registry.url)];
    try {
      expect(await g.exists(`${prefix}key:${record.id}`, `${prefix}{acme}:tenant`, `${prefix}registry:epoch`)).toBe(3);
      expect(await s.exists(`${prefix}key:${record.id}`, `${prefix}{acme}:tenant`, `${prefix}registry:epoch`)).toBe(0);
      const counters = await s.keys(`${prefix}{acme}:q:*`);
      expect(counters.length).toBeGreaterThan(0);
      expect(await g.keys(`${prefix}{acme}:q:*`)).toEqual([]);
    } finally {
      s.disconnect();
      g.disconnect();
    }
    const usage = await admin(p.adminUrl, 'GET', '/admin/tenants/acme');
    expect(usage.body.usage.daily.used).toBe(2);
  }, 30_000);

  it('registry.redis without store.redis: in-memory limits, tenants and keys in Redis', async () => {
    const registry = await redisServer();
    const prefix = `rd${++run}:`;
    const p = await proxy(yaml(null, registry.url, prefix));
    expect((await admin(p.adminUrl, 'POST', '/admin/tenants', { id: 'acme', plan: 'big' })).status).toBe(201);
    const { key, record } = (await admin(p.adminUrl, 'POST', '/admin/tenants/acme/keys', { scopes: ['*'] })).body;
    expect(await callWith(p.url, key)).toBe(200);
    const g = new Redis(registry.url);
    try {
      expect(await g.exists(`${prefix}key:${record.id}`)).toBe(1);
      expect(await g.keys(`${prefix}{acme}:q:*`)).toEqual([]);
    } finally {
      g.disconnect();
    }
    expect((await admin(p.adminUrl, 'GET', '/admin/tenants/acme')).body.usage.daily.used).toBe(1);
  }, 30_000);
});
