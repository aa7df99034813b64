/**
 * Redis limit store: every replica shares one count. The checks one replica
 * makes in one event-loop turn go out as ONE EVALSHA of ./limit.lua (a batch:
 * each request still checked and charged atomically, in arrival order; ioredis
 * `defineCommand` loads the script once and falls back to EVAL if the server
 * lost its script cache). Keys carry a `{tenant}` hash tag, so Redis Cluster
 * keeps a request's keys in one slot; in Cluster mode a batch holds one tag.
 *
 * Why batch: measured under the proxy's own load (bench/), one EVALSHA per
 * request spent ~13% of the proxy's CPU in socket writes (one write syscall
 * per call) plus Command construction, and Redis's per-call overhead sat on
 * the CPU the load generator and the upstream share. ioredis auto-pipelining
 * (`store.autoPipelining`, off by default) only saves the syscalls; a batch
 * also saves the Commands, the script calls and, for one tenant's burst, the
 * repeated reads and writes of the same keys (see ./limit.lua).
 *
 * `commandTimeout` bounds every call; with `enableOfflineQueue: false` a call
 * made while disconnected fails at once instead of waiting for a reconnect.
 * A failed batch fails each of its requests with the same error (the failover
 * wrapper then decides for each, as for a single call).
 */
import { readFileSync } from 'node:fs';
import type { Cluster, Redis, RedisOptions } from 'ioredis';
import { connectRedis, whenReady } from '../redis/connect.js';
import type { LimitDecision, LimitKind, LimitRequest, LimitStore } from './types.js';

const SCRIPT = readFileSync(new URL('./limit.lua', import.meta.url), 'utf8');
const REJECTED: (LimitKind | null)[] = [null, 'rate', 'quota_daily', 'concurrency'];

/** Renews a lease on Redis's clock (like limit.lua), only if it still exists. */
const RENEW = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
end
return 1`;

type Client = (Redis | Cluster) & {
  tgLimit(numKeys: number, keys: string[], ...args: (string | number)[][]): Promise<number[]>;
  tgRenew(key: string, leaseId: string, ttlMs: number): Promise<number>;
};

export interface RedisStoreOptions {
  /** redis:// or rediss:// URL, or a list of cluster node URLs. */
  redis: string | readonly string[];
  commandTimeoutMs: number;
  autoPipelining?: boolean;
  onStatus?: (up: boolean) => void;
}

interface Pending {
  readonly request: LimitRequest;
  readonly resolve: (decision: LimitDecision) => void;
  readonly reject: (err: unknown) => void;
}

interface Group {
  readonly checks: Pending[];
  /** Concurrency set key → lease ids to free. */
  releases: Map<string, string[]> | null;
}

/**
 * Same limits (all but the lease id)? Requests of one tenant, key and route
 * usually share their spec arrays (the limit stage caches them), so this is
 * mostly identity checks.
 */
function sameShape(a: LimitRequest, b: LimitRequest): boolean {
  if (a.buckets !== b.buckets) {
    if (a.buckets.length !== b.buckets.length) return false;
    for (let i = 0; i < a.buckets.length; i++) {
      const x = a.buckets[i]!;
      const y = b.buckets[i]!;
      if (x !== y && (x.key !== y.key || x.perSecond !== y.perSecond || x.burst !== y.burst)) return false;
    }
  }
  if (a.quotas !== b.quotas) {
    if (a.quotas.length !== b.quotas.length) return false;
    for (let i = 0; i < a.quotas.length; i++) {
      const x = a.quotas[i]!;
      const y = b.quotas[i]!;
      if (x !== y && (x.key !== y.key || x.limit !== y.limit || x.cost !== y.cost || x.resetAtMs !== y.resetAtMs)) return false;
    }
  }
  const x = a.concurrency;
  const y = b.concurrency;
  if (x === null || y === null) return x === y;
  return x.key === y.key && x.limit === y.limit && x.leaseTtlMs === y.leaseTtlMs;
}

const firstKey = (r: LimitRequest): string => r.buckets[0]?.key ?? r.quotas[0]?.key ?? r.concurrency?.key ?? '';

/** The `{…}` part Redis Cluster hashes (the whole key when there is none). */
export function hashTag(key: string): string {
  const open = key.indexOf('{');
  if (open === -1) return key;
  const close = key.indexOf('}', open + 1);
  return close <= open + 1 ? key : key.slice(open + 1, close);
}

/** Hands each request of a batch its decision from the script's flat reply (see ./limit.lua). */
function settle(batch: readonly Pending[], out: number[]): void {
  const nowMs = out[0]!;
  let o = 1;
  for (const { request, resolve } of batch) {
    const nb = request.buckets.length;
    const nq = request.quotas.length;
    const rejected = out[o]!;
    let rejectedBy = REJECTED[rejected] ?? null;
    if (rejectedBy === 'quota_daily') rejectedBy = request.quotas[out[o + 1]! - 1]!.kind;
    const bucketTokens: number[] = [];
    for (let i = 0; i < nb; i++) bucketTokens.push(out[o + 3 + i]! / 1000);
    const quotaUsed: number[] = [];
    for (let i = 0; i < nq; i++) quotaUsed.push(out[o + 3 + nb + i]!);
    resolve({ allowed: rejected === 0, rejectedBy, retryAfterMs: out[o + 2]!, bucketTokens, quotaUsed, nowMs });
    o += 3 + nb + nq;
  }
}

export class RedisLimitStore implements LimitStore {
  readonly client: Client;

  get up(): boolean {
    return this.client.status === 'ready';
  }

  constructor(opts: RedisStoreOptions) {
    const common: RedisOptions = {
      commandTimeout: opts.commandTimeoutMs,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      enableAutoPipelining: opts.autoPipelining ?? false,
      // Keep trying to come back, at most every second.
      retryStrategy: (attempt) => Math.min(attempt * 100, 1000),
    };
    this.cluster = typeof opts.redis !== 'string';
    const client = connectRedis(opts.redis, { ...common, lazyConnect: false }, { enableOfflineQueue: false });
    client.defineCommand('tgLimit', { lua: SCRIPT });
    client.defineCommand('tgRenew', { lua: RENEW, numberOfKeys: 1 });
    client.on('ready', () => opts.onStatus?.(true));
    client.on('close', () => opts.onStatus?.(false));
    // Errors surface on the calls that hit them; the connection retries by itself.
    client.on('error', () => {});
    this.client = client as Client;
  }

  /**
   * Checks are batched: every check of one event-loop turn waits in a group
   * (in Cluster mode one group per `{tenant}` hash tag, since a script's keys
   * must share a slot) and goes out as ONE EVALSHA of ./limit.lua when the
   * turn ends (setImmediate). Under load that is one write, one Command and
   * one script call for many requests; alone, a check waits for nothing but
   * the end of the current turn. `commandTimeout` runs from the send.
   */
  check(request: LimitRequest): Promise<LimitDecision> {
    return new Promise((resolve, reject) => {
      this.group(this.cluster ? hashTag(firstKey(request)) : '').checks.push({ request, resolve, reject });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(this.flush);
      }
    });
  }

  /**
   * Releases ride with the next batch of checks (the script frees those
   * slots first), so even a client that sends one request at a time costs
   * ONE round trip per request, not two. Releases with no check to ride
   * with go alone after at most RELEASE_HOLD_MS. This replica's own checks
   * always see its releases (they go first in the same script); other
   * replicas may see a slot freed up to RELEASE_HOLD_MS late. A lost release
   * is harmless: the lease expires by itself.
   */
  release(key: string, leaseId: string): void {
    const group = this.group(this.cluster ? hashTag(key) : '');
    if (group.releases === null) group.releases = new Map();
    const ids = group.releases.get(key);
    if (ids === undefined) group.releases.set(key, [leaseId]);
    else ids.push(leaseId);
    if (this.releaseTimer === null) {
      this.releaseTimer = setTimeout(this.flushAll, RedisLimitStore.RELEASE_HOLD_MS);
      this.releaseTimer.unref();
    }
  }

  /** Requests per EVALSHA at most (keeps one script call, and its reply, short). */
  static readonly MAX_BATCH = 64;
  /** How long releases wait for checks to ride with. */
  static readonly RELEASE_HOLD_MS = 10;
  private readonly cluster: boolean;
  private readonly groups = new Map<string, Group>();
  private flushScheduled = false;
  private releaseTimer: NodeJS.Timeout | null = null;

  private group(tag: string): Group {
    let group = this.groups.get(tag);
    if (group === undefined) this.groups.set(tag, (group = { checks: [], releases: null }));
    return group;
  }

  /** End of a turn: every group with checks goes (with its releases); release-only groups wait. */
  private readonly flush = (): void => {
    this.flushScheduled = false;
    for (const [tag, group] of this.groups) {
      if (group.checks.length === 0) continue;
      this.sendGroup(group);
      this.groups.delete(tag);
    }
  };

  private readonly flushAll = (): void => {
    this.releaseTimer = null;
    for (const group of this.groups.values()) this.sendGroup(group);
    this.groups.clear();
  };

  private sendGroup({ checks, releases }: Group): void {
    const max = RedisLimitStore.MAX_BATCH;
    if (checks.length <= max) this.send(checks, releases);
    else for (let i = 0; i < checks.length; i += max) this.send(checks.slice(i, i + max), i === 0 ? releases : null);
  }

  private send(batch: Pending[], releases: Map<string, string[]> | null): void {
    const keys: string[] = [];
    const keyIndex = new Map<string, number>();
    const indexOf = (key: string): number => {
      let i = keyIndex.get(key);
      if (i === undefined) {
        keys.push(key);
        keyIndex.set(key, (i = keys.length));
      }
      return i;
    };
    // Three sections (see ./limit.lua), each led by its count.
    const shapeArgs: (string | number)[] = [0];
    const shapes: LimitRequest[] = [];
    const releaseArgs: (string | number)[] = [releases === null ? 0 : releases.size];
    const requestArgs: (string | number)[] = [batch.length];
    for (const { request } of batch) {
      let shape = 0;
      while (shape < shapes.length && !sameShape(shapes[shape]!, request)) shape++;
      if (shape === shapes.length) {
        shapes.push(request);
        shapeArgs.push(request.buckets.length, request.quotas.length, request.concurrency === null ? 0 : 1);
        for (const b of request.buckets) shapeArgs.push(indexOf(b.key), b.perSecond, b.burst);
        for (const q of request.quotas) shapeArgs.push(indexOf(q.key), q.limit, q.cost, Math.ceil(q.resetAtMs / 1000));
        const c = request.concurrency;
        if (c !== null) shapeArgs.push(indexOf(c.key), c.limit, c.leaseTtlMs);
      }
      requestArgs.push(shape + 1);
      if (request.concurrency !== null) requestArgs.push(request.concurrency.leaseId);
    }
    shapeArgs[0] = shapes.length;
    if (releases !== null) {
      for (const [key, ids] of releases) {
        releaseArgs.push(indexOf(key), ids.length);
        for (const id of ids) releaseArgs.push(id);
      }
    }
    // ioredis flattens array arguments (one level): no spread of long arrays.
    const sent = this.client.tgLimit(keys.length, keys, shapeArgs, releaseArgs, requestArgs);
    if (batch.length === 0) sent.catch(() => {});
    else
      sent.then(
        (out) => settle(batch, out),
        (err: unknown) => {
          for (const p of batch) p.reject(err);
        },
      );
  }

  renew(key: string, leaseId: string, leaseTtlMs: number): void {
    this.client.tgRenew(key, leaseId, leaseTtlMs).catch(() => {});
  }

  ready(timeoutMs: number): Promise<void> {
    return this.up ? Promise.resolve() : whenReady(this.client, timeoutMs);
  }

  async close(): Promise<void> {
    if (this.releaseTimer !== null) {
      clearTimeout(this.releaseTimer);
      this.flushAll();
    }
    await this.client.quit().catch(() => this.client.disconnect());
  }
}
