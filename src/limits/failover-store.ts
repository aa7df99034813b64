/**
 * What happens when Redis fails (SPEC §3 `failureMode`). Every call is bounded
 * by `commandTimeoutMs` (the Redis client's own timeout); on an error:
 *
 * - `open`: admit using a per-replica in-memory limiter at the same limits.
 *   With N replicas behind a balancer a tenant can then get up to N times its
 *   limits while Redis is down; quotas counted during the outage are not
 *   added to Redis's counts afterwards.
 * - `closed`: refuse with 503 `store_unavailable`.
 *
 * The outage is logged once (and its end), and `onStatus` keeps
 * `tenantgate_store_up` and `/readyz` truthful. Redis is used again as soon as
 * it answers: no restart.
 */
import type { Logger } from '../observability/logger.js';
import { MemoryLimitStore } from './memory-store.js';
import type { RedisLimitStore } from './redis-store.js';
import { StoreUnavailableError, type LimitDecision, type LimitRequest, type LimitStore } from './types.js';

export class FailoverLimitStore implements LimitStore {
  private readonly fallback = new MemoryLimitStore();
  private failing = false;
  /** Leases taken from the fallback, so their release goes to the same place. */
  private readonly fallbackLeases = new Set<string>();

  constructor(
    private readonly primary: RedisLimitStore,
    private readonly mode: 'open' | 'closed',
    private readonly logger: Logger,
    private readonly onFailure: (reason: string) => void,
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
    const reason = /timed? ?out/i.test((err as Error).message) ? 'timeout' : 'down';
    this.onFailure(reason);
    if (!this.failing) {
      this.failing = true;
      this.logger.error({ reason, failureMode: this.mode, err: (err as Error).message }, 'limit store unavailable');
    }
    if (this.mode === 'closed') throw new StoreUnavailableError(reason);
    const decision = this.fallback.check(request);
    if (decision.allowed && request.concurrency !== null) this.fallbackLeases.add(request.concurrency.leaseId);
    return decision;
  }

  /** Per request: the fallback's set is looked at only when it holds something (hashing a fresh lease id is not free). */
  release(key: string, leaseId: string): void {
    if (this.fallbackLeases.size > 0 && this.fallbackLeases.delete(leaseId)) this.fallback.release(key, leaseId);
    else this.primary.release(key, leaseId);
  }

  renew(key: string, leaseId: string, leaseTtlMs: number): void {
    if (this.fallbackLeases.size > 0 && this.fallbackLeases.has(leaseId)) this.fallback.renew(key, leaseId, leaseTtlMs);
    else this.primary.renew(key, leaseId, leaseTtlMs);
  }

  ready(timeoutMs: number): Promise<void> {
    return this.primary.ready(timeoutMs);
  }

  async close(): Promise<void> {
    await this.primary.close();
  }
}
