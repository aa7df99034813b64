/**
 * The registry in Redis, shared by every replica.
 *
 * Keys (`<p>` = store.keyPrefix):
 *   <p>{<tenant>}:tenant   hash, one field per record field (values JSON-encoded)
 *   <p>{<tenant>}:keys     set of the tenant's key ids (for listing)
 *   <p>tenants             set of tenant ids (tenants are loaded whole at start)
 *   <p>key:<id>            hash, one per API key, looked up by the id the key carries
 *   <p>invalidate          pub/sub channel: `tenant:<id>`, `key:<id>`, `all`
 *   <p>registry:epoch      the epoch marker (./redis-epoch.ts): a registry Redis that lost it was emptied
 *
 * The tenant hash tag keeps a tenant's record, key index and quota counters
 * in one Cluster slot. Creates are atomic per record (a script that writes
 * only if the hash does not exist); a key's index set is written after the
 * record and is idempotent; a tenant's id goes into `<p>tenants` first, by a
 * script that refuses an id differing only in case from one already there.
 * The subscriber is a separate connection (a subscribed connection can do
 * nothing else); ioredis re-subscribes after a reconnect, and since messages
 * may have been lost meanwhile, a reconnect resets every cache.
 *
 * Durability (SPEC §14): at start and on every reconnect the Redis's
 * maxmemory-policy and persistence are read (./redis-durability.ts); an
 * evicting policy refuses the start, and on a reconnect makes the registry
 * untrusted. So does a registry found emptied (the epoch marker is gone).
 * While untrusted, a miss is never an answer: lookups answer from the records
 * this process last read (lastKnown) or fail (503 `store_unavailable`), lists
 * fail (the Directory keeps its tenants), and writes are refused.
 */
import type { Cluster, Redis, RedisOptions } from 'ioredis';
import { LRUCache } from 'lru-cache';
import type { Logger } from '../observability/logger.js';
import { connectRedis, whenReady } from '../redis/connect.js';
import type { RedisTls } from '../redis/tls.js';
import { redactTarget } from './redis-durability.js';
import { RegistryGuard } from './redis-guard.js';
import type { Invalidation, InvalidationHandlers, KeyRecord, Registry, TenantRecord } from './types.js';

const CREATE = `if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1`;

/**
 * Reserves a tenant id in the id set unless an id that differs only in case
 * is there (returned then). One key, so atomic in Cluster too; O(tenants),
 * which are few, on a create only. Ids are ASCII (the schema), which Lua's
 * string.lower folds.
 */
const RESERVE_TENANT_ID = `local want = string.lower(ARGV[1])
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if id ~= ARGV[1] and string.lower(id) == want then return id end
end
redis.call('SADD', KEYS[1], ARGV[1])
return false`;

type Client = (Redis | Cluster) & {
  tgCreate(key: string, ...fields: string[]): Promise<number>;
  tgReserveTenantId(key: string, id: string): Promise<string | null>;
};

export interface RedisRegistryOptions {
  redis: string | readonly string[];
  /** store.tls, for rediss:// URLs. */
  tls?: RedisTls | null;
  keyPrefix: string;
  commandTimeoutMs: number;
  /** The limit store's Redis when it is not this one (registry.redis apart from store.redis): readCounters reads there. */
  counters?: { redis: string | readonly string[]; tls?: RedisTls | null } | null;
  logger?: Logger | null;
  /** How often the epoch marker is re-read (default 1 s). */
  markerCheckMs?: number;
}

/** Key records remembered for an untrusted registry: the most recently read ones. */
const LAST_KNOWN_MAX = 100_000;

function encode(record: object): string[] {
  const out: string[] = [];
  for (const [k, v] of Object.entries(record)) if (v !== undefined) out.push(k, JSON.stringify(v));
  return out;
}

function decode<T>(hash: Record<string, string>): T | null {
  if (Object.keys(hash).length === 0) return null;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(hash)) out[k] = JSON.parse(v);
  return Object.freeze(out) as T;
}

export class RedisRegistry implements Registry {
  readonly kind = 'redis';
  private readonly client: Client;
  private readonly subscriber: Redis | Cluster;
  /** The limit store's Redis, when apart from this one (opened on the first readCounters). */
  private readonly countersTarget: RedisRegistryOptions['counters'];
  private countersClient: Redis | Cluster | null = null;
  private readonly common: RedisOptions;
  private readonly p: string;
  private readonly channel: string;
  private readonly guard: RegistryGuard;
  /** Key records as last read, answered while the registry is untrusted (a miss then is no answer). */
  private readonly lastKnown = new LRUCache<string, KeyRecord>({ max: LAST_KNOWN_MAX });
  private handlers: InvalidationHandlers | null = null;

  constructor(opts: RedisRegistryOptions) {
    this.p = opts.keyPrefix;
    this.channel = `${opts.keyPrefix}invalidate`;
    this.countersTarget = opts.counters ?? null;
    const common: RedisOptions = {
      commandTimeout: opts.commandTimeoutMs,
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
      retryStrategy: (attempt) => Math.min(attempt * 100, 1000),
    };
    this.common = common;
    this.client = connectRedis(opts.redis, common, {}, opts.tls ?? null) as Client;
    this.client.defineCommand('tgCreate', { lua: CREATE, numberOfKeys: 1 });
    this.client.defineCommand('tgReserveTenantId', { lua: RESERVE_TENANT_ID, numberOfKeys: 1 });
    this.client.on('error', () => {});
    // The subscriber queues its SUBSCRIBE until connected and re-subscribes after each reconnect.
    this.subscriber = connectRedis(opts.redis, { ...common, commandTimeout: undefined, enableOfflineQueue: true }, {}, opts.tls ?? null);
    this.subscriber.on('error', () => {});
    this.guard = new RegistryGuard({
      client: this.client,
      markerKey: `${this.p}registry:epoch`,
      tenantsKey: `${this.p}tenants`,
      target: redactTarget(opts.redis),
      logger: opts.logger ?? null,
      markerCheckMs: opts.markerCheckMs ?? 1000,
      onTrusted: () => {
        this.lastKnown.clear();
        this.handlers?.reset();
      },
    });
  }

  /**
   * Resolves once the command connection answers and its durability is
   * checked, or after `timeoutMs` (then the check runs when it connects).
   * Rejects when the Redis evicts (an evicting maxmemory-policy).
   */
  async ready(timeoutMs: number): Promise<void> {
    await whenReady(this.client, timeoutMs);
    if (this.client.status === 'ready') await this.guard.connected(true);
    // Every later connect (the first one too, if it came after timeoutMs): checked again, never refused.
    this.client.on('ready', () => void this.guard.connected(false));
    this.guard.startPolling();
  }

  problem(): string | null {
    return this.guard.problem();
  }

  /** See RegistryGuard.confirm: the registry as it stands is right; every replica reloads it. */
  async confirmContents(): Promise<void> {
    await this.guard.confirm();
    await this.publish('all');
  }

  private tenantKey = (id: string) => `${this.p}{${id}}:tenant`;
  private tenantKeysKey = (id: string) => `${this.p}{${id}}:keys`;
  private keyKey = (id: string) => `${this.p}key:${id}`;

  /** The marker, read after a command that could miss (same connection, so in order after it). */
  private marker(): Promise<string | null> {
    return this.client.get(this.guard.markerKey);
  }

  async listTenants(): Promise<TenantRecord[]> {
    if (!this.guard.trusted) throw this.guard.error();
    const [ids, marker] = await Promise.all([this.client.smembers(`${this.p}tenants`), this.marker()]);
    this.trust(marker);
    return this.records<TenantRecord>(ids.map(this.tenantKey));
  }

  /** Takes in a marker read beside a lookup; throws when the lookup's answer cannot be believed. */
  private trust(marker: string | null): void {
    this.guard.observe(marker);
    if (!this.guard.trusted) throw this.guard.error();
  }

  /**
   * HGETALL of many records. Separate commands rather than one pipeline: in
   * Redis Cluster a pipeline must stay in one slot, and these keys do not.
   * Written back to back, they still share round trips.
   */
  private async records<T>(keys: string[]): Promise<T[]> {
    const out: T[] = [];
    for (let i = 0; i < keys.length; i += 1000) {
      const hashes = await Promise.all(keys.slice(i, i + 1000).map((k) => this.client.hgetall(k)));
      for (const h of hashes) {
        const r = decode<T>(h);
        if (r !== null) out.push(r);
      }
    }
    return out;
  }

  async getTenant(id: string): Promise<TenantRecord | null> {
    if (!this.guard.trusted) throw this.guard.error();
    const [hash, marker] = await Promise.all([this.client.hgetall(this.tenantKey(id)), this.marker()]);
    const t = decode<TenantRecord>(hash);
    if (t === null) this.trust(marker);
    else this.guard.observe(marker);
    return t;
  }

  /**
   * The id is reserved in the id set first (refused if it differs only in case
   * from one there), then the record is created if absent. A crash between the
   * two leaves a reserved id without a record: listing skips it, a create of
   * the same id completes it, and only its case variants stay refused.
   */
  async createTenant(t: TenantRecord): Promise<boolean> {
    await this.guard.beforeWrite();
    if ((await this.client.tgReserveTenantId(`${this.p}tenants`, t.id)) !== null) return false;
    return (await this.client.tgCreate(this.tenantKey(t.id), ...encode(t))) === 1;
  }

  async putTenant(t: TenantRecord): Promise<void> {
    await this.guard.beforeWrite();
    await this.replace(this.tenantKey(t.id), t);
  }

  /**
   * A hit is remembered (lastKnown); a miss is believed only while the
   * marker says the registry is the one this process knew. Untrusted: the
   * last known record, else a 503.
   */
  async getKey(id: string): Promise<KeyRecord | null> {
    if (!this.guard.trusted) {
      const known = this.lastKnown.get(id);
      if (known !== undefined) return known;
      throw this.guard.error();
    }
    const [hash, marker] = await Promise.all([this.client.hgetall(this.keyKey(id)), this.marker()]);
    const k = decode<KeyRecord>(hash);
    if (k === null) {
      this.trust(marker);
      this.lastKnown.delete(id);
    } else {
      this.guard.observe(marker);
      this.lastKnown.set(id, k);
    }
    return k;
  }

  async createKey(k: KeyRecord): Promise<boolean> {
    await this.guard.beforeWrite();
    const created = (await this.client.tgCreate(this.keyKey(k.id), ...encode(k))) === 1;
    if (created) await this.client.sadd(this.tenantKeysKey(k.tenant), k.id);
    if (created) this.lastKnown.set(k.id, k);
    return created;
  }

  async putKey(k: KeyRecord): Promise<void> {
    await this.guard.beforeWrite();
    await this.replace(this.keyKey(k.id), k);
    this.lastKnown.set(k.id, k);
  }

  async listKeys(tenant: string): Promise<KeyRecord[]> {
    if (!this.guard.trusted) throw this.guard.error();
    const [ids, marker] = await Promise.all([this.client.smembers(this.tenantKeysKey(tenant)), this.marker()]);
    this.trust(marker);
    return this.records<KeyRecord>(ids.map(this.keyKey));
  }

  /** HSET lastUsedAt only where the record exists (a config key has no hash here); a key is never deleted, so the check cannot go stale. */
  async touchKeys(times: ReadonlyMap<string, string>): Promise<void> {
    if (!this.guard.trusted) return;
    const ids = [...times.keys()];
    const exists = await Promise.all(ids.map((id) => this.client.exists(this.keyKey(id))));
    await Promise.all(ids.filter((_id, i) => exists[i] === 1).map((id) => this.client.hset(this.keyKey(id), 'lastUsedAt', JSON.stringify(times.get(id)))));
  }

  async publish(m: Invalidation): Promise<void> {
    await this.client.publish(this.channel, m);
  }

  subscribe(handlers: InvalidationHandlers): void {
    this.handlers = handlers;
    const sub = this.subscriber;
    let wasReady = false;
    sub.on('message', (channel: string, message: string) => {
      if (channel !== this.channel) return;
      if (message.startsWith('key:')) this.refreshKnown(message.slice(4));
      handlers.message(message);
    });
    sub.on('ready', () => {
      // `ready` comes before the re-subscription completes; the SUBSCRIBE reply says when messages flow.
      if (wasReady) void this.resubscribed(handlers);
      wasReady = true;
    });
    sub.on('close', () => handlers.status(false));
    const subscribe = () =>
      sub.subscribe(this.channel).then(
        () => handlers.status(true),
        () => {},
      );
    sub.on('ready', () => void subscribe());
    if (sub.status === 'ready') void subscribe();
  }

  /** A key changed (here or elsewhere): a remembered record is re-read, or forgotten if that fails. */
  private refreshKnown(id: string): void {
    if (!this.lastKnown.has(id) || !this.guard.trusted) return;
    this.client.hgetall(this.keyKey(id)).then(
      (hash) => {
        const k = decode<KeyRecord>(hash);
        if (k === null || !this.guard.trusted) this.lastKnown.delete(id);
        else this.lastKnown.set(id, k);
      },
      () => this.lastKnown.delete(id),
    );
  }

  /**
   * Messages may have been missed: remembered key records may be stale, but
   * they are dropped only once the marker shows the registry still holds
   * them (not when the reconnect is to an emptied Redis).
   */
  private async resubscribed(handlers: InvalidationHandlers): Promise<void> {
    try {
      await this.guard.check();
      if (this.guard.trusted) this.lastKnown.clear();
    } catch {
      // The command connection is not back yet: keep them.
    }
    handlers.reset();
  }

  async readCounters(keys: readonly string[]): Promise<number[]> {
    if (keys.length === 0) return [];
    const values = await this.counters().mget(...keys);
    return values.map((v) => Number(v ?? 0));
  }

  private counters(): Redis | Cluster {
    if (this.countersTarget === null || this.countersTarget === undefined) return this.client;
    if (this.countersClient === null) {
      this.countersClient = connectRedis(this.countersTarget.redis, { ...this.common, enableOfflineQueue: true }, {}, this.countersTarget.tls ?? null);
      this.countersClient.on('error', () => {});
    }
    return this.countersClient;
  }

  async close(): Promise<void> {
    this.guard.stopPolling();
    const quit = (c: Redis | Cluster) => c.quit().catch(() => c.disconnect());
    await Promise.all([quit(this.client), quit(this.subscriber), ...(this.countersClient === null ? [] : [quit(this.countersClient)])]);
  }

  /** Whole-record write: fields the new record no longer has are removed, in one transaction. */
  private async replace(key: string, record: object): Promise<void> {
    const fields = encode(record);
    const multi = this.client.multi();
    multi.del(key);
    multi.hset(key, ...fields);
    const out = await multi.exec();
    const failed = out?.find(([err]) => err !== null);
    if (failed) throw failed[0];
  }
}
