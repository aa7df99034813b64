/**
 * Redis limit store: every replica shares one count, and each request costs
 * at most one round trip. Three pieces: ./batcher.ts groups one event-loop
 * turn's checks (per hash tag in a Cluster), ./wire.ts encodes a batch for
 * ./limit.lua and decodes its answer, and this file says what a batch holds
 * and what its answer means for each check, for this replica's concurrency
 * slots (./slots.ts) and, when on, for local credit (./credit.ts).
 * docs/limit-store.md explains the whole, failure modes included.
 *
 * `commandTimeout` bounds every call, and the script gets the matching
 * deadline in Redis time (./redis-clock.ts): a call that timed out here does
 * nothing when a stalled Redis runs it later. With `enableOfflineQueue:
 * false` a call made while disconnected fails at once. A failed batch fails
 * each of its checks with the same error (the failover wrapper decides for
 * each); a check the script could not decide fails alone (LimitCheckError).
 */
import { randomBytes } from 'node:crypto';
import type { Cluster, Redis, RedisOptions } from 'ioredis';
import { connectRedis, whenReady } from '../redis/connect.js';
import type { RedisTls } from '../redis/tls.js';
import { TurnBatcher } from './batcher.js';
import { CreditBook, type Credit } from './credit.js';
import { RedisClock } from './redis-clock.js';
import { firstKey, sameShape } from './shape.js';
import { SlotBook } from './slots.js';
import { bucketName, concurrencyName, LimitCheckError, quotaName, type LimitDecision, type LimitKind, type LimitPeek, type LimitRequest, type LimitStore } from './types.js';
import { decodeReply, encodeBatch, REJECTED, type WireBatch, type WireReply, type WireSlots } from './wire.js';
import { SCRIPT } from './wire-lua.js';

type Client = (Redis | Cluster) & {
  /** KEYS, the replica id and the batch's numbers (./wire.ts). */
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
  /** Refused for concurrency while this replica held spare slots, and sent again once (see settle). */
  retried: boolean;
}

/** What one turn sends for one group. */
interface Group {
  readonly checks: Pending[];
  /** Concurrency hashes with releases or a renewal to send. */
  slots: Set<string> | null;
  /** Unused local credit going back. */
  refunds: { readonly shape: LimitRequest; readonly n: number }[] | null;
  /** Credit running low that asks for more before it runs out (a run of no requests). */
  topUps: Credit[] | null;
}

/** Consecutive checks of one shape: the script decides them together. */
interface Run {
  /** Index of the run's shape in the batch. */
  readonly shape: number;
  /** Its first check in the batch (a top-up has none: count 0). */
  readonly start: number;
  count: number;
  readonly request: LimitRequest;
  /** The local credit asking for more with this run, or null. */
  credit: Credit | null;
}

const ERRORS = { [REJECTED.invalid_limits]: 'invalid_limits', [REJECTED.unreadable_key]: 'unreadable_key' } as const;

/** The script answered; the batch's deadline had passed when it ran. */
const EXPIRED_MESSAGE = 'Command timed out: the batch reached Redis after its deadline and did nothing';

export class RedisLimitStore implements LimitStore {
  /** Checks per script call at most (keeps one call, and its reply, short). */
  static readonly MAX_BATCH = 64;
  /** How long releases and refunds wait for checks to ride with. */
  static readonly RELEASE_HOLD_MS = 10;

  readonly client: Client;
  /** This replica's field in every concurrency hash. */
  private readonly replicaId = randomBytes(9).toString('base64url');
  private readonly commandTimeoutMs: number;
  private readonly batcher: TurnBatcher<Group>;
  private readonly slots: SlotBook;
  private readonly credits: CreditBook | null;
  private readonly clock = new RedisClock();
  private closing = false;

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
    this.commandTimeoutMs = opts.commandTimeoutMs;
    const cluster = typeof opts.redis !== 'string';
    this.batcher = new TurnBatcher<Group>(() => ({ checks: [], slots: null, refunds: null, topUps: null }), this.send, cluster, RedisLimitStore.RELEASE_HOLD_MS);
    this.slots = new SlotBook((key) => (this.batcher.join(key, false).slots ??= new Set()).add(key));
    const creditMs = opts.localCreditMs ?? 0;
    this.credits = creditMs > 0 ? new CreditBook(creditMs, this.slots, this.refund, this.topUp, opts.onCredit) : null;
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
  }

  check(request: LimitRequest): LimitDecision | Promise<LimitDecision> {
    if (this.credits !== null) {
      const credit = this.credits.usable(request);
      if (credit !== null) return this.credits.spend(credit);
    }
    return new Promise((resolve, reject) => {
      this.batcher.join(firstKey(request), true).checks.push({ request, resolve, reject, retried: false });
    });
  }

  /**
   * A release lowers this replica's count, riding with the next batch (the
   * script applies it first), so a client sending one request at a time
   * costs one round trip per request, not two. Other replicas may see the
   * slot free up to RELEASE_HOLD_MS late. Lease ids matter only to the
   * memory store.
   */
  release(key: string, _leaseId: string): void {
    this.slots.release(key);
  }

  /** Rewrites this replica's exact count with the next batch, which keeps its field alive and repairs it. */
  renew(key: string, _leaseId: string, leaseTtlMs: number): void {
    this.slots.renew(key, leaseTtlMs);
  }

  /**
   * The state of `request`'s limits, charging nothing: one read (MGET and
   * each concurrency hash) outside the script, so a usage view never delays
   * or changes a decision. Redis's clock refills the buckets.
   */
  async peek(request: LimitRequest): Promise<LimitPeek> {
    const keys = [...request.buckets.map((b) => b.key), ...request.quotas.map((q) => q.key)];
    const pipeline = this.client.pipeline();
    pipeline.time();
    if (keys.length > 0) pipeline.mget(keys);
    for (const c of request.concurrency) pipeline.hgetall(c.key);
    const results = (await pipeline.exec()) ?? [];
    const value = (i: number): unknown => {
      const [err, v] = results[i] ?? [new Error('no reply'), null];
      if (err) throw err;
      return v;
    };
    const [secs, micros] = value(0) as [string, string];
    const nowMs = Number(secs) * 1000 + Math.floor(Number(micros) / 1000);
    const values = keys.length > 0 ? (value(1) as (string | null)[]) : [];
    const bucketTokens = request.buckets.map((b, i) => {
      const [tk, ts] = (values[i] ?? '').split(' ').map(Number);
      return values[i] == null || !Number.isFinite(tk) || !Number.isFinite(ts) ? b.burst : Math.min(b.burst, tk! + (Math.max(0, nowMs - ts!) * b.perSecond) / 1000);
    });
    const quotaUsed = request.quotas.map((_q, i) => {
      const v = Number(values[request.buckets.length + i] ?? 0);
      return Number.isSafeInteger(v) && v >= 0 ? v : 0;
    });
    const first = keys.length > 0 ? 2 : 1;
    const slotsHeld = request.concurrency.map((_c, i) => {
      let held = 0;
      for (const field of Object.values((value(first + i) as Record<string, string>) ?? {})) {
        const [n, exp] = field.split(' ').map(Number);
        if (Number.isFinite(n) && Number.isFinite(exp) && exp! > nowMs) held += n!;
      }
      return held;
    });
    return { bucketTokens, quotaUsed, slotsHeld, nowMs };
  }

  ready(timeoutMs: number): Promise<void> {
    return this.up ? Promise.resolve() : whenReady(this.client, timeoutMs);
  }

  async close(): Promise<void> {
    // Unused credit goes back with the last batch, and no top-up goes with it.
    this.closing = true;
    this.credits?.returnAll();
    this.batcher.flushAll();
    await this.client.quit().catch(() => this.client.disconnect());
  }

  private readonly refund = (credit: Credit, n: number): void => {
    (this.batcher.join(firstKey(credit.shape), false).refunds ??= []).push({ shape: credit.shape, n });
  };

  private readonly topUp = (credit: Credit): void => {
    (this.batcher.join(firstKey(credit.shape), true).topUps ??= []).push(credit);
  };

  private readonly send = ({ checks, slots, refunds, topUps }: Group, tag: string): void => {
    const max = RedisLimitStore.MAX_BATCH;
    if (this.closing) topUps = null;
    if (checks.length <= max) this.sendBatch(tag, checks, slots, refunds, topUps);
    else for (let i = 0; i < checks.length; i += max) this.sendBatch(tag, checks.slice(i, i + max), i === 0 ? slots : null, i === 0 ? refunds : null, i === 0 ? topUps : null);
  };

  private sendBatch(tag: string, checks: Pending[], queued: Set<string> | null, refunds: Group['refunds'], topUps: Credit[] | null): void {
    const shapes: LimitRequest[] = [];
    const shapeOf = (request: LimitRequest): number => {
      let i = 0;
      while (i < shapes.length && !sameShape(shapes[i]!, request)) i++;
      if (i === shapes.length) shapes.push(request);
      return i;
    };
    const runs: Run[] = [];
    for (let i = 0; i < checks.length; i++) {
      const request = checks[i]!.request;
      const last = runs[runs.length - 1];
      if (last !== undefined && sameShape(shapes[last.shape]!, request)) last.count++;
      else runs.push({ shape: shapeOf(request), start: i, count: 1, request, credit: null });
    }
    if (this.credits !== null) {
      const nowMs = Date.now();
      // A run asks for local credit when its shape has demand and none left; a top-up already asks.
      for (const run of runs) run.credit = this.credits.ask(run.request, run.count, nowMs);
    }
    if (topUps !== null) for (const credit of topUps) runs.push({ shape: shapeOf(credit.shape), start: -1, count: 0, request: credit.shape, credit });
    const refunded = refunds === null ? [] : refunds.map(({ shape, n }) => ({ shape: shapeOf(shape), n }));

    // The concurrency hashes this batch touches (queued releases and renewals, the runs' own), and the slots its runs need.
    const need = new Map<string, { demand: number; ttlMs: number }>();
    if (queued !== null) for (const key of queued) need.set(key, { demand: 0, ttlMs: 0 });
    for (const run of runs) {
      for (const c of shapes[run.shape]!.concurrency) {
      const n = need.get(c.key);
      if (n === undefined) need.set(c.key, { demand: run.count, ttlMs: c.leaseTtlMs });
      else {
        n.demand += run.count;
        n.ttlMs = Math.max(n.ttlMs, c.leaseTtlMs);
      }
      }
    }
    const slots: WireSlots[] = [];
    for (const [key, { demand, ttlMs }] of need) slots.push(this.slots.outgoing(key, demand, ttlMs));

    const redisNow = this.clock.now(tag);
    const batch: WireBatch = {
      deadlineMs: redisNow === 0 ? 0 : redisNow + this.commandTimeoutMs,
      shapes,
      slots,
      refunds: refunded,
      runs: runs.map((r) => ({ shape: r.shape, count: r.count, want: r.credit === null ? 0 : r.credit.want })),
    };
    const { keys, numbers } = encodeBatch(batch);
    // ioredis flattens the keys array (one level): no spread of a long array.
    this.client.tgLimit(keys.length, keys, this.replicaId, numbers).then(
      (out) => {
        let reply: WireReply;
        try {
          reply = decodeReply(out, batch);
        } catch (err) {
          return this.failed(checks, runs, batch, err);
        }
        this.clock.seen(tag, reply.nowMs);
        if (reply.expired) this.failed(checks, runs, batch, new Error(EXPIRED_MESSAGE));
        else this.settle(checks, runs, batch, reply);
      },
      (err: unknown) => this.failed(checks, runs, batch, err),
    );
  }

  /**
   * Hands each check its decision from the script's answer: per run, how
   * many were admitted (a prefix) and the state before the run, from which
   * each check's tokens and quota use follow.
   */
  private settle(checks: Pending[], runs: readonly Run[], batch: WireBatch, reply: WireReply): void {
    const nowMs = reply.nowMs;
    const admittedOn = new Map<string, number>();
    const refused: [Pending, LimitDecision][] = [];
    for (let r = 0; r < runs.length; r++) {
      const { start, count, credit, request: shape } = runs[r]!;
      const res = reply.runs[r]!;
      if (credit !== null) this.credits!.granted(credit, res.granted, res.admitted, res.tokens, res.used);
      const failure = ERRORS[res.rejected as keyof typeof ERRORS];
      if (failure !== undefined) {
        const err = new LimitCheckError(failure, `limits of ${firstKey(shape)}`);
        for (let j = 0; j < count; j++) checks[start + j]!.reject(err);
        continue;
      }
      const admit = res.admitted;
      if (admit > 0) for (const c of shape.concurrency) admittedOn.set(c.key, (admittedOn.get(c.key) ?? 0) + admit);
      let rejectedBy: string | null = null;
      let rejectedKind: LimitKind | null = null;
      if (res.rejected === REJECTED.rate) {
        rejectedBy = bucketName(shape.buckets[res.index - 1]!);
        rejectedKind = 'rate';
      } else if (res.rejected === REJECTED.quota) {
        const q = shape.quotas[res.index - 1]!;
        rejectedBy = quotaName(q);
        rejectedKind = q.kind;
      } else if (res.rejected === REJECTED.concurrency) {
        rejectedBy = concurrencyName(shape.concurrency[res.index - 1]!);
        rejectedKind = 'concurrency';
      }
      const { tokens, used } = res;
      for (let j = 0; j < count; j++) {
        const allowed = j < admit;
        const charged = allowed ? j + 1 : admit;
        const bucketTokens = new Array<number>(tokens.length);
        for (let i = 0; i < tokens.length; i++) bucketTokens[i] = tokens[i]! - charged;
        const quotaUsed = new Array<number>(used.length);
        for (let i = 0; i < used.length; i++) quotaUsed[i] = used[i]! + shape.quotas[i]!.cost * charged;
        if (allowed) checks[start + j]!.resolve({ allowed, rejectedBy: null, rejectedKind: null, retryAfterMs: 0, bucketTokens, quotaUsed, nowMs });
        else refused.push([checks[start + j]!, { allowed, rejectedBy, rejectedKind, retryAfterMs: res.retryAfterMs, bucketTokens, quotaUsed, nowMs }]);
      }
    }
    for (let i = 0; i < batch.slots.length; i++) {
      const s = batch.slots[i]!;
      this.slots.answered(s.key, s.lent, reply.lentBack[i]!, admittedOn.get(s.key) ?? 0);
    }
    for (const [p, decision] of refused) this.refusedNow(p, decision);
  }

  /**
   * A refusal, unless what refused it is this replica's own unused credit,
   * which may have arrived while the check was on its way (an earlier
   * batch's grant, answered first): then it is admitted on that credit, or
   * (its shape has none, but the hash has spare slots) sent once more, when
   * the spare slots are lent to it.
   */
  private refusedNow(p: Pending, decision: LimitDecision): void {
    const credit = this.credits?.usable(p.request) ?? null;
    if (credit !== null) return p.resolve(this.credits!.spend(credit));
    if (decision.rejectedKind === 'concurrency' && !p.retried && p.request.concurrency.some((c) => this.slots.spare(c.key) > 0)) {
      p.retried = true;
      this.batcher.join(firstKey(p.request), true).checks.push(p);
      return;
    }
    p.resolve(decision);
  }

  private failed(checks: readonly Pending[], runs: readonly Run[], batch: WireBatch, err: unknown): void {
    for (const p of checks) p.reject(err);
    for (const run of runs) if (run.credit !== null) this.credits!.failed(run.credit);
    for (const s of batch.slots) this.slots.failed(s.key, s.lent);
  }
}
