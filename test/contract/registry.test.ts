/**
 * One contract for every registry (the local state file, Redis, PostgreSQL): atomic
 * creates, whole-record writes, per-tenant key listing, batched lastUsedAt
 * that never creates a record, and invalidations reaching a subscriber. Plus
 * what only the file registry promises: a reopen keeps everything, a write
 * leaves no temp file, and a file that is not state is refused.
 */
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileRegistry } from '../../src/registry/file-registry.js';
import { PostgresRegistry } from '../../src/registry/postgres-registry.js';
import { RedisRegistry } from '../../src/registry/redis-registry.js';
import type { KeyRecord, Registry, TenantRecord } from '../../src/registry/types.js';
import { TestDatabase } from '../helpers/postgres.js';
import { RedisServer } from '../helpers/redis.js';

const NOW = '2026-11-25T00:00:00.000Z';
const tenant = (id: string, extra: Partial<TenantRecord> = {}): TenantRecord => ({ id, plan: 'pro', status: 'active', hosts: [], overrides: {}, createdAt: NOW, updatedAt: NOW, ...extra });
const key = (id: string, tenantId: string, extra: Partial<KeyRecord> = {}): KeyRecord =>
  ({ id, tenant: tenantId, hash: `sha256:${id}`, scopes: ['a'], env: 'live', revoked: false, createdAt: NOW, updatedAt: NOW, ...extra }) as KeyRecord;

const redis = new RedisServer();
let prefixes = 0;
const kinds: [string, () => Promise<Registry>][] = [
  ['file', async () => FileRegistry.open(join(mkdtempSync(join(tmpdir(), 'tg-reg-')), 'state.json'))],
  [
    'redis',
    async () => {
      const r = new RedisRegistry({ redis: redis.url, keyPrefix: `c${++prefixes}:`, commandTimeoutMs: 1000 });
      await r.ready(3000);
      return r;
    },
  ],
  [
    'postgres',
    async () => {
      // A database per registry: each case starts empty, as with a fresh key prefix.
      const db = await TestDatabase.create();
      databases.push(db);
      const r = new PostgresRegistry({ url: db.url(), queryTimeoutMs: 1000, connectTimeoutMs: 2000 });
      await r.ready(3000);
      return r;
    },
  ],
];
const databases: TestDatabase[] = [];

beforeAll(async () => redis.start());
afterAll(async () => {
  await redis.kill();
  for (const db of databases) await db.drop();
});

describe.each(kinds)('registry contract: %s', (_kind, open) => {
  it('creates atomically: a second create of the same id is refused and changes nothing', async () => {
    const r = await open();
    expect(await r.createTenant(tenant('acme'))).toBe(true);
    expect(await r.createTenant(tenant('acme', { plan: 'free' }))).toBe(false);
    expect((await r.getTenant('acme'))?.plan).toBe('pro');
    expect(await r.getTenant('nobody')).toBeNull();
    const results = await Promise.all([r.createKey(key('ak_1', 'acme')), r.createKey(key('ak_1', 'acme', { scopes: ['b'] }))]);
    expect(results.sort()).toEqual([false, true]);
    await r.close();
  });

  it('writes whole records (a field left out is gone) and lists keys per tenant', async () => {
    const r = await open();
    await r.createTenant(tenant('acme'));
    await r.createTenant(tenant('globex'));
    await r.putTenant(tenant('acme', { status: 'suspended', hosts: ['a.example.com'], overrides: { quota: { daily: 5 } } }));
    expect(await r.getTenant('acme')).toMatchObject({ status: 'suspended', hosts: ['a.example.com'], overrides: { quota: { daily: 5 } } });
    expect((await r.listTenants()).map((t) => t.id).sort()).toEqual(['acme', 'globex']);

    await r.createKey(key('ak_1', 'acme', { expiresAt: '2030-01-01T00:00:00Z', project: 'web' }));
    await r.createKey(key('ak_2', 'acme'));
    await r.createKey(key('ak_3', 'globex'));
    await r.putKey(key('ak_1', 'acme', { revoked: true }));
    const k1 = await r.getKey('ak_1');
    expect(k1).toMatchObject({ revoked: true, scopes: ['a'] });
    expect(k1?.expiresAt).toBeUndefined();
    expect(k1?.project).toBeUndefined();
    expect((await r.listKeys('acme')).map((k) => k.id).sort()).toEqual(['ak_1', 'ak_2']);
    expect(await r.listKeys('nobody')).toEqual([]);
    expect(await r.getKey('ak_9')).toBeNull();
    await r.close();
  });

  it('touchKeys sets lastUsedAt on existing records only', async () => {
    const r = await open();
    await r.createKey(key('ak_1', 'acme'));
    await r.touchKeys(new Map([['ak_1', '2026-11-25T10:00:00.000Z'], ['ak_from_yaml', '2026-11-25T10:00:00.000Z']]));
    expect((await r.getKey('ak_1'))?.lastUsedAt).toBe('2026-11-25T10:00:00.000Z');
    expect(await r.getKey('ak_from_yaml')).toBeNull();
    await r.close();
  });

  it('an invalidation reaches the subscriber', async () => {
    const r = await open();
    const got: string[] = [];
    let live = false;
    r.subscribe({ message: (m) => got.push(m), reset: () => {}, status: (s) => (live = s) });
    const end = Date.now() + 3000;
    while (!live && Date.now() < end) await new Promise((res) => setTimeout(res, 10));
    expect(live).toBe(true);
    await r.publish('key:ak_1');
    await r.publish('tenant:acme');
    while (got.length < 2 && Date.now() < end) await new Promise((res) => setTimeout(res, 10));
    expect(got).toEqual(['key:ak_1', 'tenant:acme']);
    await r.close();
  });
});

describe('file registry', () => {
  it('a reopen keeps every change; writes leave no temp file behind', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tg-reg-'));
    const path = join(dir, 'state.json');
    const r = await FileRegistry.open(path);
    await Promise.all([r.createTenant(tenant('acme')), r.createTenant(tenant('globex')), r.createKey(key('ak_1', 'acme'))]);
    await r.putTenant(tenant('acme', { status: 'suspended' }));
    await r.close();
    expect(readdirSync(dir)).toEqual(['state.json']);
    const again = await FileRegistry.open(path);
    expect((await again.listTenants()).map((t) => `${t.id}:${t.status}`).sort()).toEqual(['acme:suspended', 'globex:active']);
    expect(again.getKey('ak_1')?.tenant).toBe('acme');
  });

  it('refuses a file that is not tenantgate state instead of replacing it', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'tg-reg-')), 'state.json');
    writeFileSync(path, '{"something": "else"}');
    await expect(FileRegistry.open(path)).rejects.toThrow(/not a tenantgate state file/);
  });

  it('a write that fails changes nothing in memory', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tg-reg-'));
    const r = await FileRegistry.open(join(dir, 'missing-dir', 'state.json'));
    await expect(r.createTenant(tenant('acme'))).rejects.toThrow();
    expect(await r.getTenant('acme')).toBeNull();
  });
});
