/**
 * Whether the Redis registry can be believed right now (SPEC §14), for
 * ./redis-registry.ts: the durability check at start and on every reconnect
 * (./redis-durability.ts), and the epoch marker (./redis-epoch.ts) read on
 * every reconnect, every second, and beside every lookup that could miss.
 *
 * Untrusted (emptied, or an evicting policy found on a reconnect): misses
 * are not answers, writes are refused, `problem()` says why, an error is
 * logged once per incident. Trusted again (marker restored or confirmed,
 * policy fixed): `onTrusted` drops what was kept meanwhile and every cache.
 */
import { randomUUID } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';
import { AdminError } from '../admin/http.js';
import type { Logger } from '../observability/logger.js';
import { checkDurability, evictingMessage } from './redis-durability.js';
import { CONFIRMED_PREFIX, EpochMarker, type EpochChange } from './redis-epoch.js';

export const REGISTRY_EMPTIED = 'registry_emptied';
export const REGISTRY_EVICTING = 'registry_evicting_policy';
export const REGISTRY_UNAVAILABLE = 'registry_unavailable';

export interface GuardOptions {
  client: Redis | Cluster;
  /** `<p>registry:epoch`. */
  markerKey: string;
  /** `<p>tenants`: records from before the marker existed. */
  tenantsKey: string;
  /** The Redis, without credentials, for messages. */
  target: string;
  logger: Logger | null;
  markerCheckMs: number;
  /** Trusted again: drop what was kept while untrusted, and every cache. */
  onTrusted(): void;
}

export class RegistryGuard {
  readonly marker = new EpochMarker();
  /** The evicting policy a reconnect found, while it stays. */
  evictingPolicy: string | null = null;
  private readonly o: GuardOptions;
  private timer: NodeJS.Timeout | null = null;

  constructor(o: GuardOptions) {
    this.o = o;
  }

  get markerKey(): string {
    return this.o.markerKey;
  }

  get trusted(): boolean {
    return !this.marker.emptied && this.evictingPolicy === null;
  }

  problem(): string | null {
    if (this.marker.emptied) return REGISTRY_EMPTIED;
    if (this.evictingPolicy !== null) return REGISTRY_EVICTING;
    return this.o.client.status === 'ready' ? null : REGISTRY_UNAVAILABLE;
  }

  /** Why a lookup or write is not answered now (503, the admin API's and the verifier's store failure). */
  error(): AdminError {
    if (this.marker.emptied) {
      return new AdminError(
        'store_unavailable',
        'The registry Redis was emptied; this replica serves the records it last knew. Restore the registry (tenantgate registry import) and confirm it (POST /admin/registry/confirm).',
      );
    }
    return new AdminError('store_unavailable', `The registry Redis has maxmemory-policy ${this.evictingPolicy}; set it to noeviction.`);
  }

  /**
   * At start (`atStart`: an evicting policy throws, refusing the start) and on
   * every reconnect (it makes the registry untrusted instead). Durability
   * that cannot be read is a warning, never a refusal.
   */
  async connected(atStart: boolean): Promise<void> {
    const log = this.o.logger;
    const report = await checkDurability(this.o.client).catch((err: Error) => {
      log?.warn({ redis: this.o.target, err: err.message }, 'could not check the registry Redis for eviction and persistence');
      return null;
    });
    if (report !== null) {
      if (report.verdict === 'evicting') {
        const message = evictingMessage(this.o.target, report.policy!);
        if (atStart) throw new Error(message);
        if (this.evictingPolicy === null) log?.error({ redis: this.o.target, maxmemoryPolicy: report.policy }, `registry untrusted: ${message}`);
        this.evictingPolicy = report.policy;
      } else {
        if (report.verdict === 'unknown') {
          log?.warn({ redis: this.o.target, maxmemoryPolicy: report.policy }, 'could not check the registry Redis maxmemory-policy (CONFIG and INFO refused or unknown policy); it must be noeviction');
        }
        if (this.evictingPolicy !== null) {
          this.evictingPolicy = null;
          log?.info({ redis: this.o.target, maxmemoryPolicy: report.policy }, 'registry Redis no longer evicts; registry trusted again');
          if (this.trusted) this.o.onTrusted();
        }
      }
      if (report.persistence === 'none') {
        log?.warn({ redis: this.o.target }, 'registry Redis persists nothing (appendonly no, save ""): a restart empties it; enable AOF or RDB snapshots');
      } else if (report.persistence === 'unknown') {
        log?.warn({ redis: this.o.target }, 'could not check whether the registry Redis persists (CONFIG refused); a restart without persistence empties it');
      }
    }
    try {
      await this.check();
      // Records written before the marker existed: they get one now, so their loss is noticed later.
      if (this.marker.epoch === null && (await this.o.client.exists(this.o.tenantsKey)) === 1) await this.establish();
    } catch (err) {
      log?.warn({ redis: this.o.target, err: (err as Error).message }, 'could not read the registry epoch marker; retried every second');
    }
  }

  /** Re-reads the marker every `markerCheckMs` (a FLUSHALL needs no reconnect). */
  startPolling(): void {
    this.timer ??= setInterval(() => {
      if (this.o.client.status === 'ready') this.check().catch(() => {});
    }, this.o.markerCheckMs);
    this.timer.unref();
  }

  stopPolling(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /** One reading of the marker. */
  async check(): Promise<void> {
    this.observe(await this.o.client.get(this.o.markerKey));
  }

  /** A marker value read beside a lookup (or by check()). */
  observe(value: string | null): void {
    this.report(this.marker.observe(value));
  }

  /** Before a write: refused while untrusted; the first write to a registry sets its marker. */
  async beforeWrite(): Promise<void> {
    await this.check();
    if (!this.trusted) throw this.error();
    if (this.marker.epoch === null) await this.establish();
  }

  /** An operator's word that the registry as it stands is right (restored, or accepted as empty). */
  async confirm(): Promise<void> {
    const value = `${CONFIRMED_PREFIX}${randomUUID()}`;
    await this.o.client.set(this.o.markerKey, value);
    const was = this.marker.emptied;
    this.marker.confirmed(value);
    this.o.logger?.warn({ redis: this.o.target, wasEmptied: was }, 'registry confirmed by an operator; every replica reloads it');
    this.o.onTrusted();
  }

  private async establish(): Promise<void> {
    await this.o.client.set(this.o.markerKey, randomUUID(), 'NX');
    await this.check();
  }

  private report(change: EpochChange): void {
    const log = this.o.logger;
    const redis = this.o.target;
    if (change === 'emptied') {
      log?.error(
        { redis, problem: REGISTRY_EMPTIED },
        'registry Redis was emptied (restarted without persistence or flushed): serving the last known tenants and keys, refusing writes; restore it (tenantgate registry import), then POST /admin/registry/confirm',
      );
    } else if (change === 'reinitialised') {
      log?.error({ redis, problem: REGISTRY_EMPTIED }, 'the emptied registry Redis was written to by a process that did not know; still serving the last known records until confirmed');
    } else if (change === 'restored' || change === 'replaced') {
      log?.warn({ redis, change }, 'registry Redis restored or confirmed; reloading every record from it');
      if (this.trusted) this.o.onTrusted();
    }
  }
}
