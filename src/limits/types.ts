/**
 * The limit store interface (SPEC §1 stage 6). Two implementations — memory
 * (one replica) and Redis (shared by replicas) — pass one contract suite.
 * One `check` is at most one atomic round trip: every bucket and quota of a
 * request is checked and, only if all admit it, charged; a rejected request
 * charges nothing. (The Redis store may answer from local credit it reserved
 * in an earlier round trip: ./credit.ts; how it all works: docs/limit-store.md.)
 */

/**
 * A concurrency lease not renewed for this long frees its slot (a crashed
 * replica's slots expire); live ones are renewed every third of it.
 */
export const LEASE_TTL_MS = 30_000;

/**
 * Every spec may carry the limit's name (SPEC §11); without one it is its
 * shorthand's: `rate`, the quota's kind, `concurrency`.
 */
export interface BucketSpec {
  /** Store key (with the `{tenant}` hash tag). */
  readonly key: string;
  readonly name?: string;
  readonly perSecond: number;
  readonly burst: number;
  /** The window its policy names (RateLimit-Policy `w`; the store ignores it): a shorthand's is burst / perSecond. */
  readonly windowS?: number;
}

export interface QuotaSpec {
  readonly key: string;
  readonly name?: string;
  /** `quota` for a named limit's fixed window; the shorthands' kinds drive quota warnings. */
  readonly kind: 'quota_daily' | 'quota_monthly' | 'quota';
  readonly limit: number;
  readonly cost: number;
  /** End of the window, epoch ms (the counter expires then): any instant, not only a UTC day or month. */
  readonly resetAtMs: number;
  /** The window's length (RateLimit-Policy `w`; the store ignores it). */
  readonly windowS?: number;
}

export interface ConcurrencySpec {
  readonly key: string;
  readonly name?: string;
  readonly limit: number;
  readonly leaseId: string;
  /** A lease not renewed within this time frees its slot (a crashed replica's slots expire). */
  readonly leaseTtlMs: number;
}

export interface LimitRequest {
  readonly buckets: readonly BucketSpec[];
  readonly quotas: readonly QuotaSpec[];
  /** Every concurrency limit the request holds a slot of (one lease id for all, each under its own key). */
  readonly concurrency: readonly ConcurrencySpec[];
}

export type LimitKind = 'rate' | 'quota_daily' | 'quota_monthly' | 'quota' | 'concurrency';

/** A spec's limit name (a shorthand's is its kind). */
export const bucketName = (b: BucketSpec): string => b.name ?? 'rate';
export const quotaName = (q: QuotaSpec): string => q.name ?? q.kind;
export const concurrencyName = (c: ConcurrencySpec): string => c.name ?? 'concurrency';

export interface LimitDecision {
  readonly allowed: boolean;
  /** The name of the limit that refused the request (null when admitted): a shorthand's is its kind. */
  readonly rejectedBy: string | null;
  /** The kind of that limit (null when admitted). */
  readonly rejectedKind: LimitKind | null;
  /** When a refused request may succeed, ms from now. */
  readonly retryAfterMs: number;
  /** Tokens left in each bucket after this request (same order as the request's buckets). */
  readonly bucketTokens: readonly number[];
  /** Units used in each quota after this request (same order). */
  readonly quotaUsed: readonly number[];
  /** Store clock at the decision, epoch ms. */
  readonly nowMs: number;
}

/** The state of a request's limits, read without charging (the usage route, the admin API). */
export interface LimitPeek {
  readonly bucketTokens: readonly number[];
  readonly quotaUsed: readonly number[];
  /** Slots held per concurrency spec (in Redis: by every replica). */
  readonly slotsHeld: readonly number[];
  readonly nowMs: number;
}

export interface LimitStore {
  /** Memory answers synchronously (no promise on the hot path); Redis asynchronously. */
  check(request: LimitRequest): LimitDecision | Promise<LimitDecision>;
  /** Reads the state of `request`'s limits, charging nothing. */
  peek(request: LimitRequest): LimitPeek | Promise<LimitPeek>;
  /** False while the store cannot answer (always true for memory). */
  readonly up: boolean;
  /** Frees a concurrency slot (fire and forget). */
  release(key: string, leaseId: string): void;
  /** Keeps a long request's (or WebSocket's) slot alive. */
  renew(key: string, leaseId: string, leaseTtlMs: number): void;
  /** Resolves once the store answers, or after `timeoutMs` (it keeps trying in the background). */
  ready(timeoutMs: number): Promise<void>;
  close(): Promise<void>;
}

/** Thrown by a store that cannot answer (Redis down or too slow) when failureMode is closed. */
export class StoreUnavailableError extends Error {
  readonly code = 'TG_STORE_UNAVAILABLE';
}

/**
 * One check the store could not decide, while it decided the others of its
 * batch: its limits are outside ./bounds.ts (`invalid_limits`), or one of its
 * keys in Redis holds something else than a limit's state (`unreadable_key`).
 * Not a sign that the store is down.
 */
export class LimitCheckError extends Error {
  readonly code = 'TG_LIMIT_CHECK_FAILED';
  constructor(
    readonly reason: 'invalid_limits' | 'unreadable_key',
    detail: string,
  ) {
    super(`limit check failed (${reason}): ${detail}`);
  }
}
