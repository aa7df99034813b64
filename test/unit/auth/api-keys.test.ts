import { crc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { API_KEY_PATTERN, generateApiKey, hashApiKey, parseApiKey } from '../../../src/auth/api-key-format.js';
import { ApiKeyVerifier } from '../../../src/auth/api-key-verifier.js';
import type { ApiKeyRecord } from '../../../src/auth/types.js';

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
/** Characters a typo can produce: the key alphabet plus separators and neighbours. */
const TYPO_CHARS = `${BASE62}_-.:~ `;

/** The documented checksum, computed independently: CRC32 of the body, 6 base62 digits, most significant first. */
function checksum(body: string): string {
  let value = crc32(body);
  let out = '';
  for (let i = 0; i < 6; i++) {
    out = BASE62[value % 62] + out;
    value = Math.floor(value / 62);
  }
  return out;
}

/** Deterministic PRNG (mulberry32), so a failing fuzz case can be replayed. */
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

describe('API key format', () => {
  it('tg_<env>_<id>_<secret><checksum>, found by the scanner pattern, hash only', () => {
    const { key, id, hash } = generateApiKey({ env: 'live', id: 'ak_3f9c2d1e' });
    expect(key).toMatch(/^tg_live_ak_3f9c2d1e_[0-9A-Za-z]{30}$/);
    expect(id).toBe('ak_3f9c2d1e');
    expect(`leaked: ${key} in a log`.match(API_KEY_PATTERN)).toEqual([key]);
    expect(hash).toMatch(/^sha256:[A-Za-z0-9_-]{43}$/);
    expect(hash).toBe(hashApiKey(key));
    const secret = key.slice(-30, -6);
    for (let i = 0; i + 6 <= secret.length; i++) expect(hash).not.toContain(secret.slice(i, i + 6));
    expect(parseApiKey(key)).toEqual({ env: 'live', id: 'ak_3f9c2d1e' });
  });

  it('the checksum is CRC32 of everything before it, as 6 base62 characters', () => {
    for (let i = 0; i < 50; i++) {
      const { key } = generateApiKey({ env: i % 2 ? 'live' : 'test' });
      expect(key.slice(-6)).toBe(checksum(key.slice(0, -6)));
    }
  });

  it('generates distinct ≥128-bit secrets with a random id when none is given', () => {
    const keys = Array.from({ length: 200 }, () => generateApiKey({ env: 'test' }));
    expect(new Set(keys.map((k) => k.key.slice(-30, -6))).size).toBe(200);
    expect(new Set(keys.map((k) => k.id)).size).toBe(200);
    expect(24 * Math.log2(62)).toBeGreaterThanOrEqual(128);
    for (const k of keys) {
      expect(k.id).toMatch(/^ak_[0-9A-Za-z]{12}$/);
      expect(parseApiKey(k.key)).toEqual({ env: 'test', id: k.id });
    }
  });

  it('ids may contain _ . : - and be up to 128 characters; the id is everything up to the last _', () => {
    for (const id of ['ak_3f9c2d1e', 'a', 'a_b_c_d', 'team.web:ci-1', 'X'.repeat(128)]) {
      const { key } = generateApiKey({ env: 'live', id });
      expect(parseApiKey(key)).toEqual({ env: 'live', id });
      expect(key.match(API_KEY_PATTERN)).toEqual([key]);
    }
    for (const id of ['', '_a', '-a', 'a b', 'é', 'X'.repeat(129), 'a/b']) {
      expect(() => generateApiKey({ env: 'live', id }), id).toThrow(/invalid key id/);
    }
    const body = `tg_live_${'X'.repeat(129)}_${'a'.repeat(24)}`;
    expect(parseApiKey(body + checksum(body))).toBe('malformed');
  });

  it('every single-character substitution anywhere in the key fails offline', () => {
    const { key } = generateApiKey({ env: 'live', id: 'ak_3f9c2d1e' });
    for (let i = 0; i < key.length; i++) {
      for (const c of TYPO_CHARS) {
        if (c === key[i]) continue;
        const typo = key.slice(0, i) + c + key.slice(i + 1);
        // After the last "_" only the checksum can catch it; before it, the shape or the checksum does.
        expect(parseApiKey(typo), `position ${i} -> ${JSON.stringify(c)}`).toMatch(i >= key.length - 30 && c !== '_' && /[0-9A-Za-z]/.test(c) ? /^bad_checksum$/ : /^(malformed|bad_checksum)$/);
      }
    }
  });

  it('every swap of two adjacent different characters fails offline', () => {
    for (let round = 0; round < 5; round++) {
      const { key } = generateApiKey({ env: 'test', id: 'ak_swap' });
      for (let i = 0; i + 1 < key.length; i++) {
        if (key[i] === key[i + 1]) continue;
        const swapped = key.slice(0, i) + key[i + 1] + key[i] + key.slice(i + 2);
        expect(typeof parseApiKey(swapped), `swap at ${i}`).toBe('string');
      }
    }
  });

  it('truncations from either end, and dropped or doubled characters, fail offline', () => {
    const { key } = generateApiKey({ env: 'live', id: 'ak_x_y' });
    for (let n = 0; n < key.length; n++) {
      expect(typeof parseApiKey(key.slice(0, n)), `first ${n}`).toBe('string');
      expect(typeof parseApiKey(key.slice(key.length - n)), `last ${n}`).toBe('string');
    }
    for (let i = 0; i < key.length; i++) {
      expect(typeof parseApiKey(key.slice(0, i) + key.slice(i + 1)), `drop ${i}`).toBe('string');
      expect(typeof parseApiKey(key.slice(0, i) + key[i] + key.slice(i)), `double ${i}`).toBe('string');
    }
  });

  it('hostile inputs are malformed, never a throw', () => {
    const tail = 'a'.repeat(30);
    for (const bad of [
      '', 'tg_', 'tg_live', 'tg_live_', 'tg_live__', `tg_prod_ak_x_${tail}`, `TG_LIVE_ak_x_${tail}`, 'x'.repeat(65536), `tg_live_${'a'.repeat(65536)}_${tail}`,
      `tg_live_\u00e9_${tail}`, `tg_live__${tail}`, `tg_live_a_${'\u0661'.repeat(30)}`, '\ud800', `tg_live_a_${tail}\n`, ` tg_live_a_${tail}`, `tg_live_a_${tail}\u0000`,
    ]) {
      expect(parseApiKey(bad), JSON.stringify(bad.slice(0, 40))).toBe('malformed');
    }
  });

  it('the scanner pattern finds every key in a blob and ignores look-alikes', () => {
    const a = generateApiKey({ env: 'live' }).key;
    const b = generateApiKey({ env: 'test', id: 'ci.deploy:1' }).key;
    const text = `export A=${a}\n{"k":"${b}"}\ntg_prod_ak_1_${'a'.repeat(30)} tg_live_ak_1_${'a'.repeat(29)}`;
    expect([...text.matchAll(API_KEY_PATTERN)].map((m) => m[0])).toEqual([a, b]);
  });

  it('hashes with HMAC-SHA256 when a pepper is set', () => {
    const { key, hash } = generateApiKey({ env: 'live', id: 'ak_p', pepper: 'pepper' });
    expect(hash).toMatch(/^hmac-sha256:[A-Za-z0-9_-]{43}$/);
    expect(hash).toBe(hashApiKey(key, 'pepper'));
    expect(hash).not.toBe(hashApiKey(key, 'other'));
    expect(hash.slice('hmac-'.length)).not.toBe(hashApiKey(key));
  });
});

describe('ApiKeyVerifier', () => {
  const T0 = Date.parse('2026-06-01T00:00:00Z');
  function setup(overrides: Partial<ApiKeyRecord> = {}, pepper: string | null = null) {
    const generated = generateApiKey({ env: 'live', id: 'ak_1', pepper });
    const record: ApiKeyRecord = { id: 'ak_1', tenant: 'acme', hash: generated.hash, scopes: [], env: 'live', revoked: false, ...overrides };
    const records = new Map([[record.id, record]]);
    let lookups = 0;
    let now = T0;
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
    const edit = (patch: Partial<ApiKeyRecord>) => records.set('ak_1', { ...records.get('ak_1')!, ...patch });
    return { verifier, key: generated.key, records, edit, lookups: () => lookups, advance: (ms: number) => (now += ms) };
  }

  it('round trip: generate → parse → verify', () => {
    const t = setup();
    expect(parseApiKey(t.key)).toEqual({ env: 'live', id: 'ak_1' });
    expect(t.verifier.verify(t.key)).toMatchObject({ ok: true, record: { id: 'ak_1', tenant: 'acme' } });
  });

  it('malformed and bad-checksum keys are rejected without a lookup', () => {
    const t = setup();
    const last = t.key.at(-1) === 'a' ? 'b' : 'a';
    expect(t.verifier.verify(t.key.slice(0, -1) + last)).toEqual({ ok: false, reason: 'bad_checksum' });
    expect(t.verifier.verify(t.key.slice(0, -1))).toEqual({ ok: false, reason: 'malformed' });
    expect(t.verifier.verify('')).toEqual({ ok: false, reason: 'malformed' });
    expect(t.lookups()).toBe(0);
  });

  it('the right id with another secret and a valid checksum is wrong_secret', () => {
    const t = setup();
    const body = t.key.slice(0, -6);
    const i = body.length - 1;
    const forgedBody = body.slice(0, i) + (body[i] === 'Z' ? 'Y' : 'Z');
    const forged = forgedBody + checksum(forgedBody);
    expect(parseApiKey(forged)).toEqual({ env: 'live', id: 'ak_1' });
    expect(t.verifier.verify(forged)).toEqual({ ok: false, reason: 'wrong_secret' });
    // A failure is never cached as a success, and the real key still works afterwards.
    expect(t.verifier.verify(forged)).toEqual({ ok: false, reason: 'wrong_secret' });
    expect(t.verifier.verify(t.key).ok).toBe(true);
  });

  it('a warm key is served from the cache with no lookup, until cacheTtlMs has passed', () => {
    const t = setup();
    expect(t.verifier.verify(t.key).ok).toBe(true);
    for (let i = 0; i < 10; i++) expect(t.verifier.verify(t.key).ok).toBe(true);
    expect(t.lookups()).toBe(1);
    t.advance(9_999);
    expect(t.verifier.verify(t.key).ok).toBe(true);
    expect(t.lookups()).toBe(1);
    t.advance(2);
    expect(t.verifier.verify(t.key).ok).toBe(true);
    expect(t.lookups()).toBe(2);
  });

  it('a revocation is honoured once the cache entry expires (cacheTtlMs)', () => {
    const t = setup();
    expect(t.verifier.verify(t.key).ok).toBe(true);
    t.edit({ revoked: true });
    t.advance(9_999);
    expect(t.verifier.verify(t.key).ok).toBe(true);
    t.advance(2);
    expect(t.verifier.verify(t.key)).toEqual({ ok: false, reason: 'revoked' });
    // Failures are not cached: each call looks again (so an un-revoke is seen at once).
    const before = t.lookups();
    t.verifier.verify(t.key);
    expect(t.lookups()).toBe(before + 1);
  });

  it('a rotated hash (record edited) is honoured once the cache entry expires', () => {
    const t = setup();
    expect(t.verifier.verify(t.key).ok).toBe(true);
    const next = generateApiKey({ env: 'live', id: 'ak_1' });
    t.edit({ hash: next.hash });
    t.advance(10_001);
    expect(t.verifier.verify(t.key)).toEqual({ ok: false, reason: 'wrong_secret' });
    expect(t.verifier.verify(next.key).ok).toBe(true);
  });

  it('forget(id) drops every presented key cached under that id, also two at once (a hash edited while the old key was warm)', () => {
    const t = setup();
    expect(t.verifier.verify(t.key).ok).toBe(true);
    // The record's hash changes (edited in a store); the old key stays warm in the cache, the new one verifies and is cached too.
    const next = generateApiKey({ env: 'live', id: 'ak_1' });
    t.edit({ hash: next.hash });
    expect(t.verifier.verify(next.key).ok).toBe(true);
    expect(t.verifier.verify(t.key).ok).toBe(true);
    const before = t.lookups();
    t.verifier.forget('ak_1');
    // Both were dropped: each is looked up again, and the old key no longer matches.
    expect(t.verifier.verify(t.key)).toEqual({ ok: false, reason: 'wrong_secret' });
    expect(t.verifier.verify(next.key).ok).toBe(true);
    expect(t.lookups()).toBe(before + 2);
    // And once more with a single key cached under the id.
    t.verifier.forget('ak_1');
    expect(t.verifier.verify(next.key).ok).toBe(true);
    expect(t.lookups()).toBe(before + 3);
  });

  it('clear() (config reload) drops every cached verification and unknown id at once', () => {
    const t = setup();
    t.verifier.verify(t.key);
    const later = generateApiKey({ env: 'live', id: 'ak_later' });
    expect(t.verifier.verify(later.key)).toEqual({ ok: false, reason: 'unknown_key' });
    t.records.delete('ak_1');
    t.records.set('ak_later', { id: 'ak_later', tenant: 'acme', hash: later.hash, scopes: [], env: 'live', revoked: false });
    t.verifier.clear();
    expect(t.verifier.verify(t.key)).toEqual({ ok: false, reason: 'unknown_key' });
    expect(t.verifier.verify(later.key).ok).toBe(true);
  });

  it('expiry is checked on every call, cache hit or not, with the injected clock', () => {
    const t = setup({ expiresAt: '2026-06-01T00:00:05Z' });
    expect(t.verifier.verify(t.key).ok).toBe(true);
    t.advance(4_999);
    expect(t.verifier.verify(t.key).ok).toBe(true);
    t.advance(1);
    expect(t.verifier.verify(t.key)).toEqual({ ok: false, reason: 'expired' });
    expect(t.lookups()).toBe(1);
    const cold = setup({ expiresAt: '2026-05-31T23:59:59+00:00' });
    expect(cold.verifier.verify(cold.key)).toEqual({ ok: false, reason: 'expired' });
  });

  it('a key for the other env is env_mismatch (a test key never opens live)', () => {
    const t = setup({ env: 'test' });
    expect(t.verifier.verify(t.key)).toEqual({ ok: false, reason: 'env_mismatch' });
  });

  it('unknown ids are negatively cached for negativeTtlMs', () => {
    const t = setup();
    const stranger = generateApiKey({ env: 'live', id: 'ak_nobody' }).key;
    for (let i = 0; i < 5; i++) expect(t.verifier.verify(stranger)).toEqual({ ok: false, reason: 'unknown_key' });
    // Another secret for the same unknown id costs no lookup either.
    expect(t.verifier.verify(generateApiKey({ env: 'live', id: 'ak_nobody' }).key)).toEqual({ ok: false, reason: 'unknown_key' });
    expect(t.lookups()).toBe(1);
    t.advance(5_001);
    t.verifier.verify(stranger);
    expect(t.lookups()).toBe(2);
  });

  it('a stored hash of another algorithm or length is a mismatch, not a throw', () => {
    const t0 = setup();
    const right = t0.records.get('ak_1')!.hash;
    for (const hash of ['sha256:short', 'hmac-sha256:whatever', 'sha256:', '', 'md5:abc', right.slice(0, -1), `${right}A`, right.replace('sha256:', 'hmac-sha256:'), `sha512:${'A'.repeat(86)}`]) {
      const t = setup({ hash });
      expect(t.verifier.verify(t.key), hash).toEqual({ ok: false, reason: 'wrong_secret' });
    }
  });

  it('peppered records verify only with the same pepper', () => {
    const t = setup({}, 'pepper');
    expect(t.verifier.verify(t.key).ok).toBe(true);
    expect(new ApiKeyVerifier({ lookup: (id) => t.records.get(id) }).verify(t.key)).toEqual({ ok: false, reason: 'wrong_secret' });
    expect(new ApiKeyVerifier({ lookup: (id) => t.records.get(id), pepper: 'other' }).verify(t.key)).toEqual({ ok: false, reason: 'wrong_secret' });
  });

  it('a plain sha256 record still verifies when a pepper is configured (a pepper can be introduced without re-issuing keys)', () => {
    const t = setup();
    expect(new ApiKeyVerifier({ lookup: (id) => t.records.get(id), pepper: 'pepper' }).verify(t.key).ok).toBe(true);
  });

  it('never throws and never admits on random or hostile input', () => {
    const t = setup();
    const rand = prng(42);
    const alphabet = `${TYPO_CHARS}\u00e9\u0661\ud800\u0000\n`;
    const good = t.key;
    for (let i = 0; i < 3_000; i++) {
      let s: string;
      if (i % 3 === 0) {
        s = Array.from({ length: Math.floor(rand() * 200) }, () => alphabet[Math.floor(rand() * alphabet.length)]).join('');
      } else {
        // Mutate the real key: insert, delete or replace a few characters.
        s = good;
        for (let m = 1 + Math.floor(rand() * 3); m > 0; m--) {
          const p = Math.floor(rand() * s.length);
          const c = alphabet[Math.floor(rand() * alphabet.length)]!;
          const op = Math.floor(rand() * 3);
          s = op === 0 ? s.slice(0, p) + c + s.slice(p) : op === 1 ? s.slice(0, p) + s.slice(p + 1) : s.slice(0, p) + c + s.slice(p + 1);
        }
        if (s === good) continue;
      }
      expect(() => t.verifier.verify(s)).not.toThrow();
      expect(t.verifier.verify(s).ok, JSON.stringify(s)).toBe(false);
    }
    for (const s of ['', 'tg_', 'x'.repeat(65536), `${good}${'a'.repeat(65536)}`]) expect(t.verifier.verify(s).ok).toBe(false);
  });
});
