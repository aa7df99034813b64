/**
 * The registry in Redis, shared by every replica.
 *
 * Keys (`<p>` = store.keyPrefix):
 *   <p>{<tenant>}:tenant   hash, one field per record field (values JSON-encoded)
 *   <p>{<tenant>}:keys     set of the tenant's key ids (for listing)
 *   <p>tenants             set of tenant ids (tenants are loaded whole at start)
 *   <p>key:<id>            hash, one per API key, looked up by the id the key carries
 *   <p>invalidate          pub/sub channel: `tenant:<id>`, `key:<id>`, `all`
 *
 * The tenant hash tag keeps a tenant's record, key index and quota counters
 * in one Cluster slot. Creates are atomic per record (a script that writes
 * only if the hash does not exist); a key's index set is written after the
 * record and is idempotent; a tenant's id goes into `<p>tenants` first, by a
 * script that refuses an id differing only in case from one already there.
 * The subscriber is a separate connection (a subscribed connection can do
 * nothing else); ioredis re-subscribes after a reconnect, and since messages
 * may have been lost meanwhile, a reconnect resets every cache.
 */
import type { Cluster, Redis, RedisOptions } from 'ioredis';
import { connectRedis, whenReady } from '../redis/connect.js';
import type { RedisTls } from '../redis/tls.js';
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
}

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
  private readonly p: string;
  private readonly channel: string;

  constructor(opts: RedisRegistryOptions) {
    this.p = opts.keyPrefix;
    this.channel = `${opts.keyPrefix}invalidate`;
    const common: RedisOptions = {
      commandTimeout: opts.commandTimeoutMs,
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
      retryStrategy: (attempt) => Math.min(attempt * 100, 1000),
    };
    this.client = connectRedis(opts.redis, common, {}, opts.tls ?? null) as Client;
    this.client.defineCommand('tgCreate', { lua: CREATE, numberOfKeys: 1 });
    this.client.defineCommand('tgReserveTenantId', { lua: RESERVE_TENANT_ID, numberOfKeys: 1 });
    this.client.on('error', () => {});
    // The subscriber queues its SUBSCRIBE until connected and re-subscribes after each reconnect.
    this.subscriber = connectRedis(opts.redis, { ...common, commandTimeout: undefined, enableOfflineQueue: true }, {}, opts.tls ?? null);
    this.subscriber.on('error', () => {});
  }

  /** Resolves once the command connection answers, or after `timeoutMs`. */
  ready(timeoutMs: number): Promise<void> {
    return whenReady(this.client, timeoutMs);
  }

  private tenantKey = (id: string) => `${this.p}{${id}}:tenant`;
  private tenantKeysKey = (id: string) => `${this.p}{${id}}:keys`;
  private keyKey = (id: string) => `${this.p}key:${id}`;

  async listTenants(): Promise<TenantRecord[]> {
    const ids = await this.client.smembers(`${this.p}tenants`);
    return this.records<TenantRecord>(ids.map(this.tenantKey));
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
    return decode<TenantRecord>(await this.client.hgetall(this.tenantKey(id)));
  }

  /**
   * The id is reserved in the id set first (refused if it differs only in case
   * from one there), then the record is created if absent. A crash between the
   * two leaves a reserved id without a record: listing skips it, a create of
   * the same id completes it, and only its case variants stay refused.
   */
  async createTenant(t: TenantRecord): Promise<boolean> {
    if ((await this.client.tgReserveTenantId(`${this.p}tenants`, t.id)) !== null) return false;
    return (await this.client.tgCreate(this.tenantKey(t.id), ...encode(t))) === 1;
  }

  async putTenant(t: TenantRecord): Promise<void> {
    await this.replace(this.tenantKey(t.id), t);
  }

  async getKey(id: string): Promise<KeyRecord | null> {
    return decode<KeyRecord>(await this.client.hgetall(this.keyKey(id)));
  }

  async createKey(k: KeyRecord): Promise<boolean> {
    const created = (await this.client.tgCreate(this.keyKey(k.id), ...encode(k))) === 1;
    if (created) await this.client.sadd(this.tenantKeysKey(k.tenant), k.id);
    return created;
  }

  async putKey(k: KeyRecord): Promise<void> {
    await this.replace(this.keyKey(k.id), k);
  }

  async listKeys(tenant: string): Promise<KeyRecord[]> {
    const ids = await this.client.smembers(this.tenantKeysKey(tenant));
    return this.records<KeyRecord>(ids.map(this.keyKey));
  }

  /** HSET lastUsedAt only where the record exists (a config key has no hash here); a key is never deleted, so the check cannot go stale. */
  async touchKeys(times: ReadonlyMap<string, string>): Promise<void> {
    const ids = [...times.keys()];
    const exists = await Promise.all(ids.map((id) => this.client.exists(this.keyKey(id))));
    await Promise.all(ids.filter((_id, i) => exists[i] === 1).map((id) => this.client.hset(this.keyKey(id), 'lastUsedAt', JSON.stringify(times.get(id)))));
  }

  async publish(m: Invalidation): Promise<void> {
    await this.client.publish(this.channel, m);
  }

  subscribe(handlers: InvalidationHandlers): void {
    const sub = this.subscriber;
    let wasReady = false;
    sub.on('message', (channel: string, message: string) => {
      if (channel === this.channel) handlers.message(message);
    });
    sub.on('ready', () => {
      // `ready` comes before the re-subscription completes; the SUBSCRIBE reply says when messages flow.
      if (wasReady) handlers.reset();
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

  async readCounters(keys: readonly string[]): Promise<number[]> {
    if (keys.length === 0) return [];
    const values = await this.client.mget(...keys);
    return values.map((v) => Number(v ?? 0));
  }

  async close(): Promise<void> {
    await Promise.all([this.client.quit().catch(() => this.client.disconnect()), this.subscriber.quit().catch(() => this.subscriber.disconnect())]);
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
