/**
 * The cache layer: the key verifier with an asynchronous lookup (cold keys
 * are a Promise, warm ones synchronous, one lookup per id however many wait,
 * `forget(id)` drops every verdict about an id, a lookup in flight across a
 * forget is not cached, a failing store is `store_unavailable`), and the
 * directory merging config and registry tenants (the config wins; a deleted
 * tenant or one whose plan is gone is unknown, never unlimited).
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { generateApiKey } from '../../../src/auth/api-key-format.js';
import { ApiKeyVerifier } from '../../../src/auth/api-key-verifier.js';
import type { ApiKeyRecord } from '../../../src/auth/types.js';
import type { CompiledConfig } from '../../../src/config/compile.js';
import { parseConfig } from '../../../src/config/load.js';
import { Directory } from '../../../src/registry/directory.js';
import { FileRegistry } from '../../../src/registry/file-registry.js';
import type { TenantRecord } from '../../../src/registry/types.js';

const k = generateApiKey({ env: 'live', id: 'ak_dyn' });
const record = (extra: Partial<ApiKeyRecord> = {}): ApiKeyRecord => ({ id: 'ak_dyn', tenant: 'globex', hash: k.hash, scopes: [], env: 'live', revoked: false, ...extra });

function deferred<T>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

describe('ApiKeyVerifier with an asynchronous lookup', () => {
  it('a cold key is a Promise (one lookup however many wait), a warm one answers synchronously', async () => {
    let lookups = 0;
    const v = new ApiKeyVerifier({ lookup: async () => (lookups++, record()) });
    const [a, b] = [v.verify(k.key), v.verify(k.key)];
    expect(a).toBeInstanceOf(Promise);
    expect((await a).ok).toBe(true);
    expect((await b).ok).toBe(true);
    expect(lookups).toBe(1);
    const warm = v.verify(k.key);
    expect(warm).not.toBeInstanceOf(Promise);
    expect((warm as { ok: boolean }).ok).toBe(true);
  });

  it('forget(id) drops the verified and the unknown verdicts; the next call sees the new record', async () => {
    let current: ApiKeyRecord | undefined;
    const v = new ApiKeyVerifier({ lookup: async () => current });
    expect(await v.verify(k.key)).toEqual({ ok: false, reason: 'unknown_key' });
    current = record();
    expect(await v.verify(k.key)).toEqual({ ok: false, reason: 'unknown_key' }); // negatively cached
    v.forget('ak_dyn');
    expect((await v.verify(k.key)).ok).toBe(true);
    current = record({ revoked: true });
    expect((v.verify(k.key) as { ok: boolean }).ok).toBe(true); // cached until told
    v.forget('ak_dyn');
    expect(await v.verify(k.key)).toEqual({ ok: false, reason: 'revoked' });
  });

  it('a lookup in flight when forget(id) arrives is answered but not cached', async () => {
    const first = deferred<ApiKeyRecord | undefined>();
    let calls = 0;
    const v = new ApiKeyVerifier({ lookup: () => (++calls === 1 ? first.promise : Promise.resolve(record({ revoked: true }))) });
    const pending = v.verify(k.key);
    v.forget('ak_dyn');
    first.resolve(record());
    expect((await pending).ok).toBe(true);
    expect(await v.verify(k.key)).toEqual({ ok: false, reason: 'revoked' });
  });

  it('a store that fails is store_unavailable, and nothing is cached', async () => {
    let fail = true;
    const v = new ApiKeyVerifier({ lookup: async () => (fail ? Promise.reject(new Error('down')) : record()) });
    expect(await v.verify(k.key)).toEqual({ ok: false, reason: 'store_unavailable' });
    fail = false;
    expect((await v.verify(k.key)).ok).toBe(true);
  });

  it('cacheTtl shortens the cache while invalidations cannot arrive', async () => {
    let now = 1_000_000;
    let ttl: number | undefined = 1000;
    let lookups = 0;
    const v = new ApiKeyVerifier({ lookup: async () => (lookups++, record()), now: () => now, cacheTtl: () => ttl });
    await v.verify(k.key);
    now += 1500;
    await v.verify(k.key);
    expect(lookups).toBe(2);
    ttl = undefined;
    now += 1500;
    await v.verify(k.key);
    now += 1500;
    await v.verify(k.key);
    expect(lookups).toBe(2 + 1);
  });
});

describe('ApiKeyVerifier when the store cannot answer', () => {
  const setup = (staleOnError: boolean) => {
    let now = 1_000_000;
    let down = false;
    const v = new ApiKeyVerifier({ lookup: async () => (down ? Promise.reject(new Error('down')) : record()), now: () => now, staleOnError });
    return { v, tick: (ms: number) => (now += ms), setDown: (d: boolean) => (down = d) };
  };

  it('staleOnError (failureMode open): a key verified before keeps working past its cache TTL', async () => {
    const { v, tick, setDown } = setup(true);
    expect((await v.verify(k.key)).ok).toBe(true);
    setDown(true);
    tick(60_000);
    expect((await v.verify(k.key)).ok).toBe(true);
    // Never seen before: nothing to fall back on.
    expect(await v.verify(generateApiKey({ env: 'live', id: 'ak_other' }).key)).toEqual({ ok: false, reason: 'store_unavailable' });
    // A forgotten (revoked, rotated…) key is never served stale.
    v.forget('ak_dyn');
    expect(await v.verify(k.key)).toEqual({ ok: false, reason: 'store_unavailable' });
  });

  it('expireAll (a reset after missed invalidations): every key is looked up again, yet still served stale if the store then fails', async () => {
    let now = 1_000_000;
    let down = false;
    let lookups = 0;
    const v = new ApiKeyVerifier({ lookup: async () => (lookups++, down ? Promise.reject(new Error('down')) : record()), now: () => now, staleOnError: true });
    expect((await v.verify(k.key)).ok).toBe(true);
    v.expireAll();
    now += 1;
    expect((await v.verify(k.key)).ok).toBe(true);
    expect(lookups).toBe(2);
    v.expireAll();
    now += 1;
    down = true;
    expect((await v.verify(k.key)).ok).toBe(true);
    expect(lookups).toBe(3);
  });

  it('a lookup in flight across expireAll is kept as a stale verdict: looked up again next time, served if the store then fails', async () => {
    let now = 1_000_000;
    let down = false;
    let lookups = 0;
    let answer: (r: ApiKeyRecord) => void = () => {};
    const v = new ApiKeyVerifier({
      lookup: (): Promise<ApiKeyRecord> => (++lookups === 1 ? new Promise((r) => (answer = r)) : down ? Promise.reject(new Error('down')) : Promise.resolve(record())),
      now: () => now,
      staleOnError: true,
    });
    const first = v.verify(k.key);
    v.expireAll();
    answer(record());
    expect((await first).ok).toBe(true);
    now += 1;
    down = true;
    expect((await v.verify(k.key)).ok).toBe(true);
    expect(lookups).toBe(2);
  });

  it('without it (failureMode closed): store_unavailable once the entry expired', async () => {
    const { v, tick, setDown } = setup(false);
    expect((await v.verify(k.key)).ok).toBe(true);
    setDown(true);
    tick(60_000);
    expect(await v.verify(k.key)).toEqual({ ok: false, reason: 'store_unavailable' });
  });

  it('expireWithin(ms): cached verdicts expire within ms (then a fresh lookup), unknown ids at once', async () => {
    let now = 1_000_000;
    let current: ApiKeyRecord | undefined = record();
    const v = new ApiKeyVerifier({ lookup: async () => current, now: () => now });
    const other = generateApiKey({ env: 'live', id: 'ak_later' });
    await v.verify(k.key);
    await v.verify(other.key); // unknown, cached
    current = record({ revoked: true });
    v.expireWithin(1000);
    expect((v.verify(k.key) as { ok: boolean }).ok).toBe(true);
    now += 1001;
    expect(await v.verify(k.key)).toEqual({ ok: false, reason: 'revoked' });
    expect(v.verify(other.key)).toBeInstanceOf(Promise);
  });
});

describe('Directory', () => {
  const yaml = `
plans: { free: { rate: { perSecond: 1, burst: 1 } }, pro: { quota: { daily: 10 } } }
tenants: [{ id: acme, plan: free, hosts: [acme.example.com] }]
routes: [{ name: r, match: {}, upstream: "http://127.0.0.1:1" }]
`;
  const compiled = (): CompiledConfig => ({ ...parseConfig(yaml, 'test.yaml'), auth: { apiKeys: new ApiKeyVerifier({ lookup: () => undefined }), jwt: null, assertion: null } });
  const now = new Date().toISOString();
  const tenant = (id: string, extra: Partial<TenantRecord> = {}): TenantRecord => ({ id, plan: 'pro', status: 'active', hosts: [], overrides: {}, createdAt: now, updatedAt: now, ...extra });

  it('merges registry tenants behind the config ones, compiles their limits, hides deleted ones and unknown plans', async () => {
    const registry = await FileRegistry.open(join(mkdtempSync(join(tmpdir(), 'tg-dir-')), 'state.json'));
    for (const t of [
      tenant('globex', { hosts: ['globex.example.com'], overrides: { quota: { daily: 3 } } }),
      tenant('acme', { plan: 'pro', hosts: ['stolen.example.com'] }),
      tenant('gone', { status: 'deleted' }),
      tenant('orphan', { plan: 'platinum' }),
      tenant('paused', { status: 'suspended' }),
    ])
      await registry.createTenant(t);
    const directory = new Directory({ registry, logger: pino({ level: 'silent' }), pepper: null });
    await directory.start();
    const config = directory.attach(compiled());
    expect(config.tenants.byId.get('acme')?.plan).toBe('free'); // the config wins
    expect(config.tenants.hostOwner.get('stolen.example.com')).toBeUndefined();
    expect(config.tenants.byId.get('globex')?.plan).toBe('pro');
    expect(config.tenants.hostOwner.get('globex.example.com')).toBe('globex');
    expect(config.limits.get('globex')).toMatchObject({ daily: 3, rate: null });
    expect(config.tenants.byId.has('gone')).toBe(false);
    expect(config.tenants.byId.has('orphan')).toBe(false);
    expect(config.limits.has('orphan')).toBe(false);
    expect(config.tenants.byId.get('paused')?.status).toBe('suspended');

    // A change made here is in force at once, in the same map objects the config carries.
    const changed = tenant('globex', { plan: 'free', status: 'suspended' });
    await registry.putTenant(changed);
    await directory.changed('tenant:globex', changed);
    expect(config.tenants.byId.get('globex')).toMatchObject({ plan: 'free', status: 'suspended' });
    expect(config.limits.get('globex')?.rate).toEqual({ perSecond: 1, burst: 1 });
    expect(config.tenants.hostOwner.get('globex.example.com')).toBeUndefined();
    await directory.close();
  });
});
