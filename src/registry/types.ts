/**
 * Dynamic tenants and API keys (issue #8): the records the admin API writes
 * and the {@link Registry} seam they are kept behind — Redis (shared by every
 * replica) or a local state file (one replica, no Redis). The YAML file's
 * `tenants:` and `apiKeys:` stay a read-only seed; see ./directory.ts for the
 * precedence and the caches.
 */
import type { ApiKeyRecord } from '../auth/types.js';
import type { Config } from '../config/schema.js';

export type Overrides = Config['tenants'][number]['overrides'];

/** A tenant created through the admin API. `deleted` is a soft delete: unknown to the proxy, id kept reserved. */
export interface TenantRecord {
  readonly id: string;
  readonly plan: string;
  readonly status: 'active' | 'suspended' | 'deleted';
  readonly hosts: readonly string[];
  readonly overrides: Overrides;
  /** The day each `1mo` limit window starts (SPEC §11); absent: 1. */
  readonly billingDay?: number;
  readonly createdAt: string;
  readonly updatedAt: string;
}

/** An API key created through the admin API: the config's record plus bookkeeping. Never the plaintext. */
export type KeyRecord = ApiKeyRecord & {
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly lastUsedAt?: string;
  /** Set on the old key by a rotation: the id of the key that replaces it. */
  readonly rotatedTo?: string;
};

/** One message on the invalidation channel: `tenant:<id>`, `key:<id>`, or `all`. */
export type Invalidation = `tenant:${string}` | `key:${string}` | 'all';

export interface InvalidationHandlers {
  message(m: string): void;
  /** Messages may have been missed (the subscriber reconnected): drop every cache. */
  reset(): void;
  /** The subscriber is connected (true) or not (false): caches use the short TTL while it is not. */
  status(live: boolean): void;
}

/**
 * Where dynamic records live. Every write is whole-record; `create*` fails
 * (false) when the id exists, atomically — for tenants, also when an id that
 * differs only in case exists (deleted ones included), since an upstream that
 * looks ids up case-insensitively would merge the two. `getKey` may answer synchronously
 * (the file registry holds everything in memory) so a cold key stays
 * synchronous there.
 */
export interface Registry {
  readonly kind: 'redis' | 'file' | 'postgres';
  /**
   * Null while the registry answers and can be trusted; else a short reason
   * (`registry_unavailable`, `registry_emptied`, …) for /readyz's detail, the
   * registry metric and the log. Records already known keep serving meanwhile.
   */
  problem?(): string | null;
  /**
   * An operator's word that the registry as it now stands is right (restored
   * after it was emptied, or accepted as it is): clears `registry_emptied` and
   * every replica reloads from it. Only registries that can detect being emptied have it.
   */
  confirmContents?(): Promise<void>;
  listTenants(): Promise<TenantRecord[]>;
  getTenant(id: string): Promise<TenantRecord | null>;
  createTenant(t: TenantRecord): Promise<boolean>;
  putTenant(t: TenantRecord): Promise<void>;
  getKey(id: string): KeyRecord | null | Promise<KeyRecord | null>;
  createKey(k: KeyRecord): Promise<boolean>;
  putKey(k: KeyRecord): Promise<void>;
  listKeys(tenant: string): Promise<KeyRecord[]>;
  /** Batched `lastUsedAt` writes (id → ISO time), off the request path. */
  touchKeys(times: ReadonlyMap<string, string>): Promise<void>;
  /** Tells every replica (this one included) to drop its cached copy. */
  publish(m: Invalidation): Promise<void>;
  subscribe(handlers: InvalidationHandlers): void;
  /** Current values of quota counters (Redis mode; the memory store answers for itself). */
  readCounters?(keys: readonly string[]): Promise<number[]>;
  close(): Promise<void>;
}

/** The registry's store did not answer (down, unreachable, timed out): the caller answers 503, never treats it as a bug. */
export class RegistryUnavailableError extends Error {
  constructor(detail: string) {
    super(`registry_unavailable: ${detail}`);
    this.name = 'RegistryUnavailableError';
  }
}
