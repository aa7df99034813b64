/**
 * The PostgreSQL registry beyond the shared contract: the URL and error texts
 * never carry the password; tenant ids that differ only in case are refused
 * atomically (deleted ones included); a warm key costs no lookup; and what
 * happens when the database cannot be reached (through a relay the test cuts,
 * or freezes): known state stays, lookups fail as unavailable, problem()
 * says so, and after the database is back the caches are reset, since a
 * change made meanwhile sent its NOTIFY to nobody.
 */
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { generateApiKey } from '../../../src/auth/api-key-format.js';
import { ApiKeyVerifier } from '../../../src/auth/api-key-verifier.js';
import type { CompiledConfig } from '../../../src/config/compile.js';
import { parseConfig } from '../../../src/config/load.js';
import { Directory } from '../../../src/registry/directory.js';
import { certificateCheckOff, PostgresRegistry, redactText, redactUrl, RegistryUnavailableError } from '../../../src/registry/postgres-registry.js';
import type { InvalidationHandlers, KeyRecord, TenantRecord } from '../../../src/registry/types.js';
import { TcpRelay, TestDatabase } from '../../helpers/postgres.js';

const NOW = '2026-11-25T00:00:00.000Z';
const tenant = (id: string, extra: Partial<TenantRecord> = {}): TenantRecord => ({ id, plan: 'pro', status: 'active', hosts: [], overrides: {}, createdAt: NOW, updatedAt: NOW, ...extra });
const SECRET = 'hunter2-$ecret';
const until = async (probe: () => boolean, ms = 5000) => {
  const end = Date.now() + ms;
  while (!probe() && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  return probe();
};

describe('URL redaction and certificate checks', () => {
  it('replaces the password in the userinfo and in password= parameters, keeps the rest', () => {
    expect(redactUrl('postgres://app:s3cret@db.internal:5432/tg?sslmode=verify-full')).toBe('postgres://app:***@db.internal:5432/tg?sslmode=verify-full');
    expect(redactUrl('postgresql://app:p%40ss@db/tg')).toBe('postgresql://app:***@db/tg');
    expect(redactUrl('postgres://db/tg?user=app&password=s3cret')).toBe('postgres://db/tg?user=app&password=***');
    expect(redactUrl('postgres://app@db/tg')).toBe('postgres://app@db/tg');
    expect(redactText('connect to postgres://app:s3cret@db/tg failed')).toBe('connect to postgres://app:***@db/tg failed');
  });

  it('flags only the sslmodes with which pg skips the certificate check', () => {
    expect(certificateCheckOff('postgres://db/tg?sslmode=no-verify')).toBe(true);
    expect(certificateCheckOff('postgres://db/tg?uselibpqcompat=true&sslmode=require')).toBe(true);
    expect(certificateCheckOff('postgres://db/tg?uselibpqcompat=true&sslmode=prefer')).toBe(true);
    for (const mode of ['require', 'verify-ca', 'verify-full', 'disable']) expect(certificateCheckOff(`postgres://db/tg?sslmode=${mode}`)).toBe(false);
    expect(certificateCheckOff('postgres://db/tg')).toBe(false);
  });
});

describe('PostgresRegistry on a real database', () => {
  let db: TestDatabase;
  const relay = new TcpRelay();
  const open: PostgresRegistry[] = [];
  const registry = (url: string) => {
    const r = new PostgresRegistry({ url, queryTimeoutMs: 500, connectTimeoutMs: 1000 });
    open.push(r);
    return r;
  };
  beforeAll(async () => {
    db = await TestDatabase.create();
    await relay.start();
  });
  afterEach(async () => {
    relay.frozen = false;
    await relay.restore().catch(() => {});
    while (open.length > 0) await open.pop()!.close();
  });
  afterAll(async () => {
    await relay.cut();
    await db.drop();
  });

  it('refuses a tenant id that differs only in case, atomically, deleted ones included', async () => {
    const r = registry(db.url());
    await r.ready(3000);
    const results = await Promise.all(['Initech', 'initech', 'INITECH'].map((id) => r.createTenant(tenant(id))));
    expect(results.filter(Boolean)).toHaveLength(1);
    expect((await r.listTenants()).filter((t) => t.id.toLowerCase() === 'initech')).toHaveLength(1);

    expect(await r.createTenant(tenant('hooli'))).toBe(true);
    await r.putTenant(tenant('hooli', { status: 'deleted' }));
    expect(await r.createTenant(tenant('Hooli'))).toBe(false);
    expect(await r.getTenant('Hooli')).toBeNull();
  });

  it('touchKeys writes a large batch in parts, every existing key touched', async () => {
    const r = registry(db.url());
    await r.ready(3000);
    const ids = ['ak_t0', 'ak_t600', 'ak_t1199'];
    for (const id of ids) await r.createKey({ id, tenant: 'touchco', hash: 'sha256:x', scopes: [], env: 'live', revoked: false, createdAt: NOW, updatedAt: NOW } as KeyRecord);
    const times = new Map(Array.from({ length: 1200 }, (_, i) => [`ak_t${i}`, `2026-11-25T10:00:00.${String(i % 1000).padStart(3, '0')}Z`]));
    await r.touchKeys(times);
    expect((await r.listKeys('touchco')).map((k) => [k.id, k.lastUsedAt])).toEqual(ids.sort().map((id) => [id, times.get(id)]));
    expect(await r.getKey('ak_t5')).toBeNull();
  });

  it('a cold key costs one lookup, a warm key none', async () => {
    const r = registry(db.url());
    await r.ready(3000);
    const generated = generateApiKey({ env: 'live', id: 'ak_warm' });
    await r.createTenant(tenant('warmco'));
    await r.createKey({ id: 'ak_warm', tenant: 'warmco', hash: generated.hash, scopes: [], env: 'live', revoked: false, createdAt: NOW, updatedAt: NOW } as KeyRecord);
    let lookups = 0;
    const getKey = r.getKey.bind(r);
    r.getKey = (id: string) => (lookups++, getKey(id));
    const directory = new Directory({ registry: r, logger: pino({ level: 'silent' }), pepper: null });
    await directory.start();
    const yaml = 'plans: { pro: {} }\nroutes: [{ name: r, match: {}, upstream: "http://127.0.0.1:1" }]\n';
    const config = directory.attach({ ...parseConfig(yaml, 'test.yaml'), auth: { apiKeys: new ApiKeyVerifier({ lookup: () => undefined }), jwt: null, assertion: null }, redisTls: null } as CompiledConfig);
    const verifier = config.auth.apiKeys as ApiKeyVerifier;
    const cold = verifier.verify(generated.key);
    expect(cold).toBeInstanceOf(Promise);
    expect((await cold).ok).toBe(true);
    for (let i = 0; i < 5; i++) expect(verifier.verify(generated.key)).toMatchObject({ ok: true });
    expect(lookups).toBe(1);
    open.splice(open.indexOf(r), 1);
    await directory.close();

    // That lookup is by primary key, however many keys there are.
    await db.sql(`INSERT INTO tenantgate_keys (id, tenant, record) SELECT 'ak_' || i, 'warmco', '{}' FROM generate_series(1, 5000) i`);
    await db.sql('ANALYZE tenantgate_keys');
    const plan = await db.sql<{ 'QUERY PLAN': string }>(`EXPLAIN SELECT record FROM tenantgate_keys WHERE id = 'ak_warm'`);
    expect(plan[0]!['QUERY PLAN']).toMatch(/^Index Scan using tenantgate_keys_pkey/);
  });

  it('database cut: lookups fail as unavailable (no password in the error), problem() says so; back: reset, and a change made meanwhile is seen', async () => {
    const r = registry(db.url(relay.port, `postgres:${encodeURIComponent(SECRET)}`));
    const direct = registry(db.url());
    await r.ready(3000);
    await r.createTenant(tenant('cutco'));
    const events: string[] = [];
    const handlers: InvalidationHandlers = { message: (m) => events.push(m), reset: () => events.push('reset'), status: (live) => events.push(`live:${live}`) };
    r.subscribe(handlers);
    expect(await until(() => events.includes('live:true'))).toBe(true);
    expect(r.problem()).toBeNull();

    await relay.cut();
    expect(await until(() => events.includes('live:false'))).toBe(true);
    expect(r.problem()).toBe('registry_unavailable');
    const err = await r.getKey('ak_any').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RegistryUnavailableError);
    expect((err as Error).message).toMatch(/^registry_unavailable: /);
    expect((err as Error).message).not.toContain(SECRET);
    expect(r.redactedUrl).not.toContain(SECRET);

    // Made while r cannot hear: its NOTIFY reaches nobody on r's side.
    await direct.putTenant(tenant('cutco', { status: 'suspended' }));
    await direct.publish('tenant:cutco');
    events.length = 0;
    await relay.restore();
    expect(await until(() => events.includes('live:true'))).toBe(true);
    expect(events.slice(0, 2)).toEqual(['reset', 'live:true']);
    expect((await r.getTenant('cutco'))?.status).toBe('suspended');
    expect(r.problem()).toBeNull();
    await direct.publish('key:ak_after');
    expect(await until(() => events.includes('key:ak_after'))).toBe(true);
  });

  it('a database that goes silent (connections open, no answers) is noticed by the listener check, and a query is bounded', async () => {
    const r = registry(db.url(relay.port));
    await r.ready(3000);
    const events: string[] = [];
    r.subscribe({ message: () => {}, reset: () => {}, status: (live) => events.push(`live:${live}`) });
    expect(await until(() => events.includes('live:true'))).toBe(true);
    await r.getTenant('warm-the-pool');
    relay.frozen = true;
    await expect(r.getTenant('x')).rejects.toBeInstanceOf(RegistryUnavailableError);
    expect(r.problem()).toBe('registry_unavailable');
    expect(await until(() => events.includes('live:false'), 8000)).toBe(true);
  });

  it('unreachable at start: ready() gives up without throwing; once reachable, the first query migrates and answers', async () => {
    const fresh = await TestDatabase.create();
    try {
      await relay.cut();
      const r = registry(fresh.url(relay.port));
      await r.ready(500);
      await expect(r.listTenants()).rejects.toBeInstanceOf(RegistryUnavailableError);
      expect(r.problem()).toBe('registry_unavailable');
      await relay.restore();
      expect(await r.createTenant(tenant('lateco'))).toBe(true);
      expect(r.problem()).toBeNull();
      expect((await fresh.sql<{ id: string }>('SELECT id FROM tenantgate_tenants')).map((x) => x.id)).toEqual(['lateco']);
      await r.close();
      open.splice(open.indexOf(r), 1);
    } finally {
      await fresh.drop();
    }
  });

  it('a database the registry cannot use (newer schema) is an error at start, naming the URL without its password', async () => {
    const fresh = await TestDatabase.create();
    try {
      await fresh.sql('CREATE TABLE tenantgate_schema_version (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())');
      await fresh.sql('INSERT INTO tenantgate_schema_version (version) VALUES (999)');
      const r = registry(fresh.url(5432, `postgres:${encodeURIComponent(SECRET)}`));
      const err = await r.ready(3000).catch((e: unknown) => e as Error);
      expect(err).toBeInstanceOf(Error);
      expect((err as Error).message).toContain('schema version 999');
      expect((err as Error).message).toContain('postgres:***@');
      expect((err as Error).message).not.toContain(SECRET);
    } finally {
      while (open.length > 0) await open.pop()!.close();
      await fresh.drop();
    }
  });
});
