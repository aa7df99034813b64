/**
 * `createLimitStore(config)` — the one place that chooses the store kind:
 * memory when `store.redis` is empty (one replica), else Redis behind the
 * failure-mode wrapper.
 */
import type { Config } from '../config/schema.js';
import type { Logger } from '../observability/logger.js';
import type { RedisTls } from '../redis/tls.js';
import { FailoverLimitStore } from './failover-store.js';
import { MemoryLimitStore } from './memory-store.js';
import { RedisLimitStore } from './redis-store.js';
import type { LimitStore } from './types.js';

export interface StoreHooks {
  onStatus(up: boolean): void;
  onFailure(reason: string): void;
  /** Local credit reserved ahead (granted) or given back unused (returned), in requests. */
  onCredit(event: 'granted' | 'returned', requests: number): void;
}

export function createLimitStore(store: Config['store'], tls: RedisTls | null, logger: Logger, hooks: StoreHooks): LimitStore {
  if (store.redis === null) return new MemoryLimitStore();
  const redis = new RedisLimitStore({
    redis: store.redis,
    tls,
    commandTimeoutMs: store.commandTimeoutMs,
    autoPipelining: store.autoPipelining,
    localCreditMs: store.localCreditMs,
    onCredit: hooks.onCredit,
    onStatus: hooks.onStatus,
  });
  return new FailoverLimitStore(redis, store.failureMode, logger, hooks.onFailure);
}
