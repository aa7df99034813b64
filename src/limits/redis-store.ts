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
 *
 * With `localCreditMs` set, a busy shape far from its limits is answered from
 * local credit that a batch reserved for it (./credit.ts): no round trip.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Cluster, Redis, RedisOptions } from 'ioredis';
import { connectRedis, whenReady } from '../redis/connect.js';
import type { RedisTls } from '../redis/tls.js';
import { CreditBook, type Credit } from './credit.js';
import { firstKey, sameShape } from './shape.js';
import { LEASE_TTL_MS, type LimitDecision, type LimitKind, type LimitRequest, type LimitStore } from './types.js';

const SCRIPT = readFileSync(new URL('./limit.lua', import.meta.url), 'utf8');
const REJECTED: (LimitKind | null)[] = [null, 'rate', 'quota_daily', 'concurrency'];

type Client = (Redis | Cluster) & {
  /** KEYS, then the replica id and every other argument as one JSON array of numbers (see ./limit.lua). */
  tgLimit(numKeys: number, keys: string[], replicaId: string, numbers: string): Promise<number[]>;
};

export interface RedisStoreOptions {
  /** redis:// or rediss:// URL, or a list of cluster node URLs. */
  redis: string | readonly string[];
  /** store.tls, for rediss:// URLs. */
  tls?: RedisTls | null;
  commandTimeoutMs: number;
  autoPipelining?: boolean;
  /** Lifetime of local credit (./credit.ts); 0 (the default here): every check goes to Redis. */
  localCreditMs?: number;
  onStatus?: (up: boolean) => void;
  onCredit?: (event: 'granted' | 'returned', requests: number) => void;
}

interface Pending {
  readonly request: LimitRequest;
  readonly resolve: (decision: LimitDecision) => void;
  readonly reject: (err: unknown) => void;
}

interface Group {
  readonly checks: Pending[];
  /** Concurrency hashes with releases or a renewal to send. */
  slots: Set<string> | null;
  /** Unused local credit to give back (its slots go back as releases). */
  refunds: Refund[] | null;
  /** Credit running low that asks for more before it runs out (a run of no requests). */
  topUps: Credit[] | null;
}

interface Refund {
  readonly shape: LimitRequest;
  readonly n: number;
}

/** The `{…}` part Redis Cluster hashes (the whole key when there is none). */
export function hashTag(key: string): string {
  const open = key.indexOf('{');
  if (open === -1) return key;
  const close = key.indexOf('}', open + 1);
  return close <= open + 1 ? key : key.slice(open + 1, close);
}

/** Consecutive requests of one shape: the script decides them together (see ./limit.lua). */
interface Run {
  /** Index of the run's shape in the batch's shapes. */
  readonly shape: number;
  /** Its first request in the batch (a top-up has none: count 0). */
  readonly start: number;
  count: number;
  readonly request: LimitRequest;
  /** The local credit asking for more with this run, or null. */
  credit: Credit | null;
}

/** This replica's concurrency slots in one tenant's hash (see ./limit.lua). */
interface Slots {
  /** Slots Redis granted this replica that are not released yet. */
  held: number;
  /** Releases not sent yet. */
  released: number;
  /** Batches sent with this hash and not answered yet. */
  inFlight: number;
  /** Send `held` as the exact count once no batch is in flight (renewal, or after a failed batch). */
  sync: boolean;
  ttlMs: number;
}

/**
 * Hands each request of a batch its decision from the script's reply: per
 * run, how many were admitted (a prefix) and the state before the run, from
 * which each request's tokens and quota use follow.
 */
function settle(batch: readonly Pending[], runs: readonly Run[], out: number[], credits: CreditBook | null, admitted: (key: string, n: number) => void): void {
  const nowMs = out[0]!;
  let o = 1;
  for (const { start, count, credit, request: shape } of runs) {
    const nb = shape.buckets.length;
    const nq = shape.quotas.length;
    const admit = out[o]!;
    let rejectedBy = REJECTED[out[o + 1]!] ?? null;
    if (rejectedBy === 'quota_daily') rejectedBy = shape.quotas[out[o + 2]! - 1]!.kind;
    const retryAfterMs = out[o + 3]!;
    const granted = out[o + 4]!;
    o += 5;
    if (credit !== null) credits!.granted(credit, granted, admit, out, o);
    for (let j = 0; j < count; j++) {
      const allowed = j < admit;
      const charged = allowed ? j + 1 : admit;
      const bucketTokens: number[] = [];
      for (let i = 0; i < nb; i++) bucketTokens.push(out[o + i]! / 1000 - charged);
      const quotaUsed: number[] = [];
      for (let i = 0; i < nq; i++) quotaUsed.push(out[o + nb + i]! + shape.quotas[i]!.cost * charged);
      batch[start + j]!.resolve(
        allowed ? { allowed, rejectedBy: null, retryAfterMs: 0, bucketTokens, quotaUsed, nowMs } : { allowed, rejectedBy, retryAfterMs, bucketTokens, quotaUsed, nowMs },
      );
    }
    // Credit holds its slots in Redis as well, until used (then released with its request) or given back.
    if (admit + granted > 0 && shape.concurrency !== null) admitted(shape.concurrency.key, admit + granted);
    o += nb + nq;
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
    const client = connectRedis(opts.redis, { ...common, lazyConnect: false }, { enableOfflineQueue: false }, opts.tls ?? null);
    client.defineCommand('tgLimit', { lua: SCRIPT });
    client.on('ready', () => opts.onStatus?.(true));
    client.on('close', () => {
      // Credit is only as good as the connection it came from: what is unused goes back (if Redis is gone, it is lost).
      this.credits?.returnAll();
      opts.onStatus?.(false);
    });
    // Errors surface on the calls that hit them; the connection retries by itself.
    client.on('error', () => {});
    this.client = client as Client;
    const creditMs = opts.localCreditMs ?? 0;
    this.credits = creditMs > 0 ? new CreditBook(creditMs, this.giveBack, this.topUp, opts.onCredit) : null;
  }

  /**
   * Checks are batched: every check of one event-loop turn waits in a group
   * (in Cluster mode one group per `{tenant}` hash tag, since a script's keys
   * must share a slot) and goes out as ONE EVALSHA of ./limit.lua when the
   * turn ends (setImmediate). Under load that is one write, one Command and
   * one script call for many requests; alone, a check waits for nothing but
   * the end of the current turn. `commandTimeout` runs from the send.
   */
  check(request: LimitRequest): LimitDecision | Promise<LimitDecision> {
    if (this.credits !== null) {
      const credit = this.credits.usable(request);
      if (credit !== null) return this.credits.spend(credit);
    }
    return new Promise((resolve, reject) => {
      this.group(this.cluster ? hashTag(firstKey(request)) : '').checks.push({ request, resolve, reject });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(this.flush);
      }
    });
  }

  /**
   * Concurrency is counted per replica (see ./limit.lua): a release only
   * lowers this replica's count, and rides with the next batch of checks (the
   * script applies it first), so even a client that sends one request at a
   * time costs ONE round trip per request, not two. Releases with no check to
   * ride with go alone after at most RELEASE_HOLD_MS. This replica's own
   * checks always see its releases; other replicas may see a slot freed up to
   * RELEASE_HOLD_MS late. Lease ids matter only to the memory store.
   */
  release(key: string, _leaseId: string): void {
    const slots = this.slotsOf(key);
    slots.held = Math.max(0, slots.held - 1);
    slots.released++;
    this.queueSlots(key);
  }

  /**
   * Keeps this replica's field in the tenant's hash alive (it expires
   * `leaseTtlMs` after its last write, which is how a crashed replica's slots
   * come free). The renewal writes the exact count this replica holds, which
   * also repairs a count a failed batch left wrong (Redis ran it, the reply
   * was lost); it waits until no batch of that hash is in flight.
   */
  renew(key: string, _leaseId: string, leaseTtlMs: number): void {
    const slots = this.slotsOf(key);
    slots.ttlMs = leaseTtlMs;
    slots.sync = true;
    if (slots.inFlight === 0) this.queueSlots(key);
  }

  /** Requests per EVALSHA at most (keeps one script call, and its reply, short). */
  static readonly MAX_BATCH = 64;
  /** How long releases wait for checks to ride with. */
  static readonly RELEASE_HOLD_MS = 10;
  /** This replica's field in every concurrency hash. */
  private readonly replicaId = randomBytes(9).toString('base64url');
  private readonly cluster: boolean;
  private readonly groups = new Map<string, Group>();
  private readonly slots = new Map<string, Slots>();
  private readonly credits: CreditBook | null;
  private flushScheduled = false;
  private releaseTimer: NodeJS.Timeout | null = null;

  private group(tag: string): Group {
    let group = this.groups.get(tag);
    if (group === undefined) this.groups.set(tag, (group = { checks: [], slots: null, refunds: null, topUps: null }));
    return group;
  }

  /** `ttlMs` 0: not known yet (set by the first check or renewal naming it; LEASE_TTL_MS until then). */
  private slotsOf(key: string): Slots {
    let slots = this.slots.get(key);
    if (slots === undefined) this.slots.set(key, (slots = { held: 0, released: 0, inFlight: 0, sync: false, ttlMs: 0 }));
    return slots;
  }

  /** Sends `key`'s releases or renewal with the next batch, or alone after RELEASE_HOLD_MS. */
  private queueSlots(key: string): void {
    const group = this.group(this.cluster ? hashTag(key) : '');
    (group.slots ??= new Set()).add(key);
    this.holdForBatch();
  }

  /** Unused credit goes back like a release: with the next batch, or alone after RELEASE_HOLD_MS; its slots are a release. */
  private readonly giveBack = (credit: Credit, n: number): void => {
    const shape = credit.shape;
    if (shape.buckets.length > 0 || shape.quotas.length > 0) {
      const group = this.group(this.cluster ? hashTag(firstKey(shape)) : '');
      (group.refunds ??= []).push({ shape, n });
      this.holdForBatch();
    }
    const c = shape.concurrency;
    if (c !== null) {
      const slots = this.slotsOf(c.key);
      slots.held = Math.max(0, slots.held - n);
      slots.released += n;
      this.queueSlots(c.key);
    }
  };

  /** Credit running low asks for more with this turn's batch, so that a busy shape's requests never wait for Redis. */
  private readonly topUp = (credit: Credit): void => {
    const group = this.group(this.cluster ? hashTag(firstKey(credit.shape)) : '');
    (group.topUps ??= []).push(credit);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flush);
    }
  };

  private holdForBatch(): void {
    if (this.releaseTimer === null) {
      this.releaseTimer = setTimeout(this.flushAll, RedisLimitStore.RELEASE_HOLD_MS);
      this.releaseTimer.unref();
    }
  }

  /** End of a turn: every group with checks goes (with its releases); release-only groups wait. */
  private readonly flush = (): void => {
    this.flushScheduled = false;
    for (const [tag, group] of this.groups) {
      if (group.checks.length === 0 && group.topUps === null) continue;
      this.sendGroup(group);
      this.groups.delete(tag);
    }
  };

  private readonly flushAll = (): void => {
    this.releaseTimer = null;
    for (const group of this.groups.values()) this.sendGroup(group);
    this.groups.clear();
  };

  private sendGroup({ checks, slots, refunds, topUps }: Group): void {
    const max = RedisLimitStore.MAX_BATCH;
    if (checks.length <= max) this.send(checks, slots, refunds, topUps);
    else for (let i = 0; i < checks.length; i += max) this.send(checks.slice(i, i + max), i === 0 ? slots : null, i === 0 ? refunds : null, i === 0 ? topUps : null);
  }

  private send(batch: Pending[], queued: Set<string> | null, refunds: Refund[] | null, topUps: Credit[] | null): void {
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
    // Four sections (see ./limit.lua), each led by its count, in one array of numbers.
    const nums: number[] = [0];
    const shapes: LimitRequest[] = [];
    const shapeOf = (request: LimitRequest): number => {
      let shape = 0;
      while (shape < shapes.length && !sameShape(shapes[shape]!, request)) shape++;
      if (shape === shapes.length) {
        shapes.push(request);
        nums.push(request.buckets.length, request.quotas.length, request.concurrency === null ? 0 : 1);
        for (const b of request.buckets) nums.push(indexOf(b.key), b.perSecond, b.burst);
        for (const q of request.quotas) nums.push(indexOf(q.key), q.limit, q.cost, Math.ceil(q.resetAtMs / 1000));
        const c = request.concurrency;
        if (c !== null) nums.push(indexOf(c.key), c.limit, c.leaseTtlMs);
      }
      return shape;
    };
    const runs: Run[] = [];
    for (let r = 0; r < batch.length; r++) {
      const request = batch[r]!.request;
      const last = runs.length === 0 ? -1 : runs[runs.length - 1]!.shape;
      if (last !== -1 && sameShape(shapes[last]!, request)) runs[runs.length - 1]!.count++;
      else runs.push({ shape: shapeOf(request), start: r, count: 1, request, credit: null });
    }
    const asking = runs.length;
    if (topUps !== null) for (const credit of topUps) runs.push({ shape: shapeOf(credit.shape), start: -1, count: 0, request: credit.shape, credit });
    const refunded = refunds === null ? [] : refunds.map(({ shape, n }) => [shapeOf(shape) + 1, n]);
    nums[0] = shapes.length;

    // The concurrency hashes this batch touches: queued releases and renewals, and the checks' own.
    const touched = new Set(queued);
    for (const { concurrency: c } of shapes) {
      if (c === null) continue;
      touched.add(c.key);
      const slots = this.slotsOf(c.key);
      slots.ttlMs = Math.max(slots.ttlMs, c.leaseTtlMs);
    }
    nums.push(touched.size);
    for (const key of touched) {
      const slots = this.slotsOf(key);
      // The exact count is safe to send only when no earlier batch's grants are still unknown here.
      const exact = slots.sync && slots.inFlight === 0;
      nums.push(indexOf(key), slots.released, exact ? slots.held : -1, slots.ttlMs || LEASE_TTL_MS);
      slots.released = 0;
      if (exact) slots.sync = false;
      slots.inFlight++;
    }
    nums.push(refunded.length);
    for (const [shape, n] of refunded) nums.push(shape!, n!);
    nums.push(runs.length);
    const credits = this.credits;
    const nowMs = credits === null ? 0 : Date.now();
    for (let i = 0; i < runs.length; i++) {
      const run = runs[i]!;
      // A run of requests asks for local credit when its shape has demand and none left (./credit.ts); a top-up already asks.
      if (i < asking) run.credit = credits === null ? null : credits.ask(run.request, run.count, nowMs);
      nums.push(run.shape + 1, run.count, run.credit === null ? 0 : run.credit.want);
    }

    // ioredis flattens the keys array (one level): no spread of a long array.
    this.client.tgLimit(keys.length, keys, this.replicaId, JSON.stringify(nums)).then(
      (out) => {
        settle(batch, runs, out, credits, this.granted);
        this.answered(touched, false);
      },
      (err: unknown) => {
        for (const p of batch) p.reject(err);
        for (const run of runs) if (run.credit !== null) credits!.failed(run.credit);
        this.answered(touched, true);
      },
    );
  }

  private readonly granted = (key: string, n: number): void => {
    this.slotsOf(key).held += n;
  };

  /**
   * A batch came back. A renewal that waited for it goes now. After a failure
   * Redis may or may not have run the batch, so the exact count rides with
   * the next batch or renewal (not sooner: Redis may still be down); if none
   * comes, this replica's field expires by itself. Idle hashes are forgotten
   * (their field is gone from Redis too).
   */
  private answered(touched: Set<string>, failed: boolean): void {
    for (const key of touched) {
      const slots = this.slots.get(key);
      if (slots === undefined) continue;
      slots.inFlight--;
      if (failed) slots.sync = true;
      else if (slots.inFlight === 0) {
        if (slots.sync) this.queueSlots(key);
        else if (slots.held === 0 && slots.released === 0) this.slots.delete(key);
      }
    }
  }

  ready(timeoutMs: number): Promise<void> {
    return this.up ? Promise.resolve() : whenReady(this.client, timeoutMs);
  }

  async close(): Promise<void> {
    // Unused credit goes back with the last batch, and no top-up goes with it.
    this.credits?.returnAll();
    for (const group of this.groups.values()) group.topUps = null;
    if (this.releaseTimer !== null) {
      clearTimeout(this.releaseTimer);
      this.flushAll();
    }
    await this.client.quit().catch(() => this.client.disconnect());
  }
}
