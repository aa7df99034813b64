/**
 * Verifies presented API keys: parse → checksum (offline) → O(1) lookup by id
 * → constant-time hash compare → revoked → env → expiry.
 *
 * The lookup may be asynchronous (keys kept in Redis by the admin API): then
 * a cold key answers with a Promise (one lookup, shared by concurrent callers
 * of the same id) while a warm key still answers synchronously from the cache.
 * `forget(id)` drops every cached verdict about one id (an invalidation from
 * another replica); a lookup that was in flight across a forget is not cached.
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

export type ApiKeyFailure = 'malformed' | 'bad_checksum' | 'unknown_key' | 'wrong_secret' | 'revoked' | 'expired' | 'env_mismatch' | 'store_unavailable';
export type ApiKeyResult = { ok: true; record: ApiKeyRecord } | { ok: false; reason: ApiKeyFailure };

export interface ApiKeyVerifierOptions {
  lookup: (id: string) => ApiKeyRecord | undefined | Promise<ApiKeyRecord | undefined>;
  pepper?: string | null;
  cacheTtlMs?: number;
  /** Overrides cacheTtlMs per entry when it returns a number (a shorter TTL while invalidations cannot arrive). */
  cacheTtl?: () => number | undefined;
  /**
   * When the lookup fails (store down), answer from an expired cache entry
   * for the same presented key if there is one (failureMode open) instead of
   * `store_unavailable`. Entries dropped by forget()/clear() are never used;
   * those expireAll() expired are.
   */
  staleOnError?: boolean;
  /** Called on each successful verification (for `lastUsedAt`); must not block. */
  onVerified?: (id: string, nowMs: number) => void;
  cacheMax?: number;
  negativeTtlMs?: number;
  /** Milliseconds since the epoch (injectable for tests). */
  now?: () => number;
}

const fail = (reason: ApiKeyFailure): ApiKeyResult => ({ ok: false, reason });
const FAILURES = Object.fromEntries(
  (['malformed', 'bad_checksum', 'unknown_key', 'wrong_secret', 'revoked', 'expired', 'env_mismatch', 'store_unavailable'] as const).map((r) => [r, fail(r)]),
) as Record<ApiKeyFailure, ApiKeyResult>;

export class ApiKeyVerifier implements KeyVerifier {
  private readonly verified: LRUCache<string, { record: ApiKeyRecord; result: ApiKeyResult; expiresAtMs: number }>;
  private readonly unknownIds: LRUCache<string, true>;
  private readonly lookup: ApiKeyVerifierOptions['lookup'];
  private readonly pepper: string | null;
  private readonly now: () => number;
  private readonly cacheTtl: (() => number | undefined) | null;
  private readonly onVerified: ((id: string, nowMs: number) => void) | null;
  private readonly staleOnError: boolean;
  /**
   * id → presented keys cached under it, so forget(id) finds them: the key
   * itself while there is one (as a rule), a Set only from a second on (a Set
   * per id was ~150 bytes each, ~15 MB once 100,000 keys of a config are in use).
   */
  private readonly byId = new Map<string, string | Set<string>>();
  /** Cold lookups in flight, by id. */
  private readonly pending = new Map<string, Promise<ApiKeyRecord | undefined>>();
  /** Bumped by forget/clear: a lookup that started before a bump is not cached. */
  private epoch = 0;
  /** Bumped by expireAll: a lookup that started before it is kept as a stale verdict only. */
  private resets = 0;

  constructor(opts: ApiKeyVerifierOptions) {
    this.lookup = opts.lookup;
    this.pepper = opts.pepper ?? null;
    this.now = opts.now ?? Date.now;
    this.cacheTtl = opts.cacheTtl ?? null;
    this.onVerified = opts.onVerified ?? null;
    this.staleOnError = opts.staleOnError ?? false;
    const perf = { now: this.now };
    // ttlResolution 0: no cached "now", so an injected clock is read on every check.
    const clock = { perf, ttlResolution: 0 };
    this.verified = new LRUCache({
      max: opts.cacheMax ?? 100_000,
      ttl: opts.cacheTtlMs ?? 10_000,
      ...clock,
      // An expired entry is a miss, but stays (until evicted) as the last known verdict for staleOnError.
      noDeleteOnStaleGet: this.staleOnError,
      dispose: (value, presented) => {
        const id = value.record.id;
        const cached = this.byId.get(id);
        if (cached === presented) this.byId.delete(id);
        else if (cached instanceof Set) {
          cached.delete(presented);
          if (cached.size === 0) this.byId.delete(id);
        }
      },
    });
    this.unknownIds = new LRUCache({ max: 10_000, ttl: opts.negativeTtlMs ?? 10_000, ...clock });
  }

  verify(presented: string): ApiKeyResult | Promise<ApiKeyResult> {
    const hit = this.verified.get(presented);
    if (hit !== undefined) {
      const now = this.now();
      if (now >= hit.expiresAtMs) return FAILURES.expired;
      this.onVerified?.(hit.record.id, now);
      return hit.result;
    }

    const parsed = parseApiKey(presented);
    if (typeof parsed === 'string') return FAILURES[parsed];
    if (this.unknownIds.has(parsed.id)) return FAILURES.unknown_key;
    const epoch = this.epoch;
    const resets = this.resets;
    let record: ApiKeyRecord | undefined | Promise<ApiKeyRecord | undefined>;
    try {
      record = this.pending.get(parsed.id) ?? this.lookup(parsed.id);
    } catch {
      return this.stale(presented);
    }
    if (record instanceof Promise) {
      if (!this.pending.has(parsed.id)) {
        this.pending.set(parsed.id, record);
        const done = () => this.pending.delete(parsed.id);
        record.then(done, done);
      }
      return record.then(
        (r) => this.check(presented, parsed.id, parsed.env, r, epoch, resets),
        () => this.stale(presented),
      );
    }
    return this.check(presented, parsed.id, parsed.env, record, epoch, resets);
  }

  private check(presented: string, id: string, env: 'live' | 'test', record: ApiKeyRecord | undefined, epoch: number, resets: number): ApiKeyResult {
    const cacheable = epoch === this.epoch;
    // Read before a reset: not a verdict to trust, but the last known one if the store then fails.
    const fresh = resets === this.resets;
    if (record === undefined) {
      if (cacheable && fresh) this.unknownIds.set(id, true, this.ttlOption());
      return FAILURES.unknown_key;
    }
    if (!this.hashMatches(presented, record.hash)) return FAILURES.wrong_secret;
    if (record.revoked) return FAILURES.revoked;
    if (record.env !== env) return FAILURES.env_mismatch;
    // An expiry that does not parse (a store-backed record the schema never saw) fails closed.
    const expiresAtMs = record.expiresAt === undefined ? Infinity : Date.parse(record.expiresAt);
    const now = this.now();
    if (Number.isNaN(expiresAtMs) || now >= expiresAtMs) return FAILURES.expired;
    const result: ApiKeyResult = { ok: true, record };
    if (cacheable) {
      this.verified.set(presented, { record, result, expiresAtMs }, fresh ? this.ttlOption() : this.alreadyExpired());
      const cached = this.byId.get(record.id);
      if (cached === undefined) this.byId.set(record.id, presented);
      else if (cached instanceof Set) cached.add(presented);
      else if (cached !== presented) this.byId.set(record.id, new Set([cached, presented]));
    }
    this.onVerified?.(record.id, now);
    return result;
  }

  /** The store could not answer: the last verdict for this exact key if allowed and still unexpired, else store_unavailable. */
  private stale(presented: string): ApiKeyResult {
    if (!this.staleOnError) return FAILURES.store_unavailable;
    const old = this.verified.get(presented, { allowStale: true });
    if (old === undefined) return FAILURES.store_unavailable;
    const now = this.now();
    if (now >= old.expiresAtMs) return FAILURES.expired;
    this.onVerified?.(old.record.id, now);
    return old.result;
  }

  /**
   * Every cached verdict expires within `ms` (invalidations stopped arriving):
   * entries are kept as stale verdicts, unknown ids are dropped.
   */
  expireWithin(ms: number): void {
    this.unknownIds.clear();
    for (const [presented, value] of [...this.verified.entries()]) {
      if (this.verified.getRemainingTTL(presented) > ms) this.verified.set(presented, value, { ttl: ms, noDisposeOnSet: true });
    }
  }

  private ttlOption(): { ttl: number } | undefined {
    const ttl = this.cacheTtl?.();
    return ttl === undefined ? undefined : { ttl };
  }

  /** Drops every cached verdict about key `id` (verified or unknown). */
  forget(id: string): void {
    this.epoch++;
    this.unknownIds.delete(id);
    const cached = this.byId.get(id);
    if (cached === undefined) return;
    // A copy: each delete disposes, which edits byId.
    for (const presented of typeof cached === 'string' ? [cached] : [...cached]) this.verified.delete(presented);
    this.byId.delete(id);
  }

  /**
   * Every verdict must be looked up again (invalidations may have been
   * missed), yet stays the last known one for staleOnError: a reset is not a
   * revocation, so a store that fails right after it still has them.
   */
  expireAll(): void {
    this.resets++;
    this.unknownIds.clear();
    for (const [presented, value] of [...this.verified.entries()]) this.verified.set(presented, value, { ...this.alreadyExpired(), noDisposeOnSet: true });
  }

  /** Set options that make an entry stale at once: looked up again on next use, kept for staleOnError. */
  private alreadyExpired(): { ttl: number; start: number } {
    return { ttl: 1, start: this.now() - 2 };
  }

  clear(): void {
    this.epoch++;
    this.verified.clear();
    this.byId.clear();
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
