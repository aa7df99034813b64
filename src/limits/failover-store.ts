/**
 * What happens when the Redis store cannot decide a check (SPEC §3
 * `failureMode`). Failures come in two kinds:
 *
 * - The store is unreachable: a timeout, a dropped connection, or a server
 *   that cannot serve (loading, busy, out of memory, cluster down). This is
 *   an outage: logged once (and its end), `tenantgate_store_up` and
 *   `/readyz` follow it.
 * - Redis answered, but not with a decision: one check's limits or keys
 *   (LimitCheckError, the rest of its batch was decided) or a script error.
 *   The store is up; only these checks are affected.
 *
 * Either way, per check: `open` admits on a per-replica in-memory limiter at
 * the same limits (with N replicas a tenant may then get up to N times its
 * limits; what it counts is not added to Redis afterwards), `closed` refuses
 * with 503 `store_unavailable`. Redis is used again as soon as it answers.
 */
import { ReplyError } from 'ioredis';
import type { Logger } from '../observability/logger.js';
import { MemoryLimitStore } from './memory-store.js';
import type { RedisLimitStore } from './redis-store.js';
import { LimitCheckError, StoreUnavailableError, type LimitDecision, type LimitPeek, type LimitRequest, type LimitStore } from './types.js';

/** Redis error codes that mean the server cannot serve now, not that the script failed. */
const SERVER_STATES = /^(LOADING|BUSY|MASTERDOWN|CLUSTERDOWN|TRYAGAIN|READONLY|OOM|NOREPLICAS)\b/;

export type FailureKind = 'timeout' | 'down' | 'script' | LimitCheckError['reason'];

/** What a failed store call says about the store. */
export function failureKind(err: unknown): FailureKind {
  if (err instanceof LimitCheckError) return err.reason;
  const message = err instanceof Error ? err.message : String(err);
  if (err instanceof ReplyError) return SERVER_STATES.test(message) ? 'down' : 'script';
  return /timed? ?out/i.test(message) ? 'timeout' : 'down';
}

export class FailoverLimitStore implements LimitStore {
  private readonly fallback = new MemoryLimitStore();
  private failing = false;
  /** Leases taken from the fallback (lease id → its keys not released yet), so their release goes to the same place. */
  private readonly fallbackLeases = new Map<string, number>();
  /** Answer errors already logged (each is logged once; the metric counts them all). */
  private readonly logged = new Set<string>();

  constructor(
    private readonly primary: RedisLimitStore,
    private readonly mode: 'open' | 'closed',
    private readonly logger: Logger,
    private readonly onFailure: (reason: FailureKind) => void,
  ) {}

  get up(): boolean {
    return !this.failing && this.primary.up;
  }

  /** One `then` on the store's promise (no async frame and await hop per request); local credit answers at once. */
  check(request: LimitRequest): LimitDecision | Promise<LimitDecision> {
    const decision = this.primary.check(request);
    if (!(decision instanceof Promise)) return decision;
    return decision.then(this.answered, (err: unknown) => this.failed(err, request));
  }

  private readonly answered = (decision: LimitDecision): LimitDecision => {
    if (this.failing) {
      this.failing = false;
      this.logger.info('limit store answers again; shared limits are back');
    }
    return decision;
  };

  private failed(err: unknown, request: LimitRequest): LimitDecision {
    const kind = failureKind(err);
    const message = err instanceof Error ? err.message : String(err);
    this.onFailure(kind);
    if (kind === 'timeout' || kind === 'down') {
      if (!this.failing) {
        this.failing = true;
        this.logger.error({ reason: kind, failureMode: this.mode, err: message }, 'limit store unavailable');
      }
    } else if (!this.logged.has(message) && this.logged.size < 100) {
      this.logged.add(message);
      this.logger.error({ reason: kind, failureMode: this.mode, err: message }, 'limit check failed; the store is up');
    }
    if (this.mode === 'closed') throw new StoreUnavailableError(kind);
    const decision = this.fallback.check(request);
    if (decision.allowed && request.concurrency.length > 0) this.fallbackLeases.set(request.concurrency[0]!.leaseId, request.concurrency.length);
    return decision;
  }

  /** Per request: the fallback's set is looked at only when it holds something (hashing a fresh lease id is not free). */
  release(key: string, leaseId: string): void {
    const left = this.fallbackLeases.size > 0 ? this.fallbackLeases.get(leaseId) : undefined;
    if (left === undefined) return this.primary.release(key, leaseId);
    if (left > 1) this.fallbackLeases.set(leaseId, left - 1);
    else this.fallbackLeases.delete(leaseId);
    this.fallback.release(key, leaseId);
  }

  renew(key: string, leaseId: string, leaseTtlMs: number): void {
    if (this.fallbackLeases.size > 0 && this.fallbackLeases.has(leaseId)) this.fallback.renew(key, leaseId, leaseTtlMs);
    else this.primary.renew(key, leaseId, leaseTtlMs);
  }

  /** A usage view: the shared counts, or (Redis failing) this replica's fallback counts. */
  async peek(request: LimitRequest): Promise<LimitPeek> {
    try {
      return await this.primary.peek(request);
    } catch {
      return this.fallback.peek(request);
    }
  }

  ready(timeoutMs: number): Promise<void> {
    return this.primary.ready(timeoutMs);
  }

  async close(): Promise<void> {
    await this.primary.close();
  }
}
