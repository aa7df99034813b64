import { describe, expect, it } from 'vitest';
import { API_KEY_PATTERN, generateApiKey, hashApiKey, parseApiKey } from '../../src/auth/api-key-format.js';
import { ApiKeyVerifier } from '../../src/auth/api-key-verifier.js';
import type { ApiKeyRecord } from '../../src/auth/types.js';

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

describe('API key format', () => {
  it('tg_<env>_<id>_<secret><checksum>, found by the scanner pattern, hash only', () => {
    const { key, id, hash } = generateApiKey({ env: 'live', id: 'ak_3f9c2d1e' });
    expect(key).toMatch(/^tg_live_ak_3f9c2d1e_[0-9A-Za-z]{30}$/);
    expect(id).toBe('ak_3f9c2d1e');
    expect(`leaked: ${key} in a log`.match(API_KEY_PATTERN)).toEqual([key]);
    expect(hash).toMatch(/^sha256:[A-Za-z0-9_-]{43}$/);
    const secret = key.slice(-30, -6);
    expect(hash).not.toContain(secret.slice(0, 8));
    expect(parseApiKey(key)).toEqual({ env: 'live', id: 'ak_3f9c2d1e' });
  });

  it('generates distinct secrets with a random id when none is given', () => {
    const a = generateApiKey({ env: 'test' });
    const b = generateApiKey({ env: 'test' });
    expect(a.key).not.toBe(b.key);
    expect(a.id).toMatch(/^ak_[0-9A-Za-z]{12}$/);
    expect(parseApiKey(a.key)).toEqual({ env: 'test', id: a.id });
  });

  it('every single-character typo in the secret or checksum fails the checksum offline', () => {
    const { key } = generateApiKey({ env: 'live', id: 'ak_x' });
    const tailStart = key.length - 30;
    for (let i = tailStart; i < key.length; i++) {
      const replacement = BASE62[(BASE62.indexOf(key[i]!) + 17) % 62]!;
      expect(parseApiKey(key.slice(0, i) + replacement + key.slice(i + 1)), `position ${i}`).toBe('bad_checksum');
    }
  });

  it('truncations, garbage and hostile inputs are malformed, never a throw', () => {
    const { key } = generateApiKey({ env: 'live', id: 'ak_x' });
    for (let n = 0; n < key.length; n++) expect(parseApiKey(key.slice(0, n))).toMatch(/malformed|bad_checksum/);
    for (const bad of ['', 'tg_', 'tg_prod_ak_x_' + 'a'.repeat(30), 'x'.repeat(65536), 'tg_live_\u00e9_' + 'a'.repeat(30), `tg_live__${'a'.repeat(30)}`]) {
      expect(parseApiKey(bad)).toBe('malformed');
    }
  });

  it('hashes with HMAC-SHA256 when a pepper is set', () => {
    const { key, hash } = generateApiKey({ env: 'live', id: 'ak_p', pepper: 'pepper' });
    expect(hash.startsWith('hmac-sha256:')).toBe(true);
    expect(hash).toBe(hashApiKey(key, 'pepper'));
    expect(hash).not.toBe(hashApiKey(key, 'other'));
  });
});

describe('ApiKeyVerifier', () => {
  function setup(overrides: Partial<ApiKeyRecord> = {}, pepper: string | null = null) {
    const generated = generateApiKey({ env: 'live', id: 'ak_1', pepper });
    const record: ApiKeyRecord = { id: 'ak_1', tenant: 'acme', hash: generated.hash, scopes: [], env: 'live', revoked: false, ...overrides };
    const records = new Map([[record.id, record]]);
    let lookups = 0;
    let now = Date.parse('2026-06-01T00:00:00Z');
    const verifier = new ApiKeyVerifier({
      lookup: (id) => {
        lookups++;
        return records.get(id);
      },
      pepper,
      cacheTtlMs: 10_000,
      negativeTtlMs: 5_000,
      now: () => now,
    });
    return { verifier, key: generated.key, records, lookups: () => lookups, advance: (ms: number) => (now += ms) };
  }

  it('verifies, then serves a warm key from the cache without a lookup', () => {
    const t = setup();
    expect(t.verifier.verify(t.key)).toMatchObject({ ok: true, record: { tenant: 'acme' } });
    expect(t.verifier.verify(t.key).ok).toBe(true);
    expect(t.lookups()).toBe(1);
  });

  it('a revocation is honoured once the cache entry expires (cacheTtlMs)', () => {
    const t = setup();
    expect(t.verifier.verify(t.key).ok).toBe(true);
    t.records.set('ak_1', { ...t.records.get('ak_1')!, revoked: true });
    t.advance(9_999);
    expect(t.verifier.verify(t.key).ok).toBe(true);
    t.advance(2);
    expect(t.verifier.verify(t.key)).toEqual({ ok: false, reason: 'revoked' });
  });

  it('clear() drops every cached verification at once', () => {
    const t = setup();
    t.verifier.verify(t.key);
    t.records.delete('ak_1');
    t.verifier.clear();
    expect(t.verifier.verify(t.key)).toEqual({ ok: false, reason: 'unknown_key' });
  });

  it('expiry is checked on every call, cache hit or not', () => {
    const t = setup({ expiresAt: '2026-06-01T00:00:05Z' });
    expect(t.verifier.verify(t.key).ok).toBe(true);
    t.advance(5_000);
    expect(t.verifier.verify(t.key)).toEqual({ ok: false, reason: 'expired' });
  });

  it('wrong secret, env mismatch and unknown ids fail precisely; unknown ids are negatively cached', () => {
    const t = setup({ env: 'test' });
    expect(t.verifier.verify(generateApiKey({ env: 'live', id: 'ak_1' }).key)).toEqual({ ok: false, reason: 'wrong_secret' });
    expect(t.verifier.verify(t.key)).toEqual({ ok: false, reason: 'env_mismatch' });
    const stranger = generateApiKey({ env: 'live', id: 'ak_nobody' }).key;
    const before = t.lookups();
    for (let i = 0; i < 5; i++) expect(t.verifier.verify(stranger)).toEqual({ ok: false, reason: 'unknown_key' });
    expect(t.lookups() - before).toBe(1);
    t.advance(5_001);
    t.verifier.verify(stranger);
    expect(t.lookups() - before).toBe(2);
  });

  it('a stored hash of another algorithm or length is a mismatch, not a throw', () => {
    for (const hash of ['sha256:short', 'hmac-sha256:whatever', 'sha256:']) {
      const t = setup({ hash });
      expect(t.verifier.verify(t.key)).toEqual({ ok: false, reason: 'wrong_secret' });
    }
  });

  it('peppered records verify only with the pepper', () => {
    const t = setup({}, 'pepper');
    expect(t.verifier.verify(t.key).ok).toBe(true);
    const noPepper = new ApiKeyVerifier({ lookup: (id) => t.records.get(id) });
    expect(noPepper.verify(t.key)).toEqual({ ok: false, reason: 'wrong_secret' });
  });
});
