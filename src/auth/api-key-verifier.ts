/**
 * Verifies presented API keys: parse → checksum (offline) → O(1) lookup by id
 * → constant-time hash compare → revoked → env → expiry.
 *
 * Caches (lru-cache, with the injectable clock):
 * - verified keys, keyed by the presented key, for `cacheTtlMs` (10 s): a warm
 *   key costs no hashing and no lookup. Expiry (`expiresAt`) is checked on
 *   every call, hit or miss. A key revoked or edited in the config keeps
 *   working for at most `cacheTtlMs` — except that a config reload builds a
 *   new verifier, so a reload (SIGHUP or file change) takes effect at once.
 * - unknown ids, for `negativeTtlMs` (10 s), so brute force over well-formed
 *   keys costs no repeated lookups (which matters once lookups hit a store).
 */
import { timingSafeEqual } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { hashApiKey, parseApiKey } from './api-key-format.js';
import type { ApiKeyRecord, KeyVerifier } from './types.js';

export type ApiKeyFailure = 'malformed' | 'bad_checksum' | 'unknown_key' | 'wrong_secret' | 'revoked' | 'expired' | 'env_mismatch';
export type ApiKeyResult = { ok: true; record: ApiKeyRecord } | { ok: false; reason: ApiKeyFailure };

export interface ApiKeyVerifierOptions {
  lookup: (id: string) => ApiKeyRecord | undefined;
  pepper?: string | null;
  cacheTtlMs?: number;
  cacheMax?: number;
  negativeTtlMs?: number;
  /** Milliseconds since the epoch (injectable for tests). */
  now?: () => number;
}

const fail = (reason: ApiKeyFailure): ApiKeyResult => ({ ok: false, reason });
const FAILURES = Object.fromEntries(
  (['malformed', 'bad_checksum', 'unknown_key', 'wrong_secret', 'revoked', 'expired', 'env_mismatch'] as const).map((r) => [r, fail(r)]),
) as Record<ApiKeyFailure, ApiKeyResult>;

export class ApiKeyVerifier implements KeyVerifier {
  private readonly verified: LRUCache<string, { record: ApiKeyRecord; result: ApiKeyResult; expiresAtMs: number }>;
  private readonly unknownIds: LRUCache<string, true>;
  private readonly lookup: (id: string) => ApiKeyRecord | undefined;
  private readonly pepper: string | null;
  private readonly now: () => number;

  constructor(opts: ApiKeyVerifierOptions) {
    this.lookup = opts.lookup;
    this.pepper = opts.pepper ?? null;
    this.now = opts.now ?? Date.now;
    const perf = { now: this.now };
    // ttlResolution 0: no cached "now", so an injected clock is read on every check.
    const clock = { perf, ttlResolution: 0 };
    this.verified = new LRUCache({ max: opts.cacheMax ?? 100_000, ttl: opts.cacheTtlMs ?? 10_000, ...clock });
    this.unknownIds = new LRUCache({ max: 10_000, ttl: opts.negativeTtlMs ?? 10_000, ...clock });
  }

  verify(presented: string): ApiKeyResult {
    const hit = this.verified.get(presented);
    if (hit !== undefined) return this.now() < hit.expiresAtMs ? hit.result : FAILURES.expired;

    const parsed = parseApiKey(presented);
    if (typeof parsed === 'string') return FAILURES[parsed];
    if (this.unknownIds.has(parsed.id)) return FAILURES.unknown_key;
    const record = this.lookup(parsed.id);
    if (record === undefined) {
      this.unknownIds.set(parsed.id, true);
      return FAILURES.unknown_key;
    }
    if (!this.hashMatches(presented, record.hash)) return FAILURES.wrong_secret;
    if (record.revoked) return FAILURES.revoked;
    if (record.env !== parsed.env) return FAILURES.env_mismatch;
    // An expiry that does not parse (a store-backed record the schema never saw) fails closed.
    const expiresAtMs = record.expiresAt === undefined ? Infinity : Date.parse(record.expiresAt);
    if (Number.isNaN(expiresAtMs) || this.now() >= expiresAtMs) return FAILURES.expired;
    const result: ApiKeyResult = { ok: true, record };
    this.verified.set(presented, { record, result, expiresAtMs });
    return result;
  }

  clear(): void {
    this.verified.clear();
    this.unknownIds.clear();
  }

  private hashMatches(presented: string, stored: string): boolean {
    const hmac = stored.startsWith('hmac-sha256:');
    // A peppered record without the pepper configured can never match (and says nothing about why).
    if (hmac && this.pepper === null) return false;
    const computed = Buffer.from(hashApiKey(presented, hmac ? this.pepper : null));
    const expected = Buffer.from(stored);
    return computed.length === expected.length && timingSafeEqual(computed, expected);
  }
}
