/**
 * Local credit (`store.localCreditMs`), an optional layer of the Redis store:
 * capacity one replica reserves ahead from Redis for one shape of request
 * (one tenant, key and route cost) and then admits against without a round
 * trip. docs/limit-store.md explains when it applies and why it keeps the
 * limits. Its slots live in ./slots.ts (spare), so that a replica's unused
 * credit never refuses its own requests.
 */
import { firstKey, sameShape } from './shape.js';
import type { SlotBook } from './slots.js';
import type { LimitDecision, LimitRequest } from './types.js';

export const MIN_CREDIT = 8;
export const MAX_CREDIT = 1024;

export interface Credit {
  /** The limits this credit is for (a request of the shape; its lease id means nothing here). */
  readonly shape: LimitRequest;
  /** Requests this replica may still admit on its own. */
  left: number;
  granted: number;
  /** At the grant, per bucket: tokens left in Redis (the credit already taken out). */
  readonly tokens: number[];
  /** At the grant, per quota: units used in Redis (the credit included). */
  readonly used: number[];
  grantedAtMs: number;
  expiresAtMs: number;
  /** What the next ask is for. */
  want: number;
  /** An ask is in flight (one at a time per shape). */
  asking: boolean;
  /** The last ask got nothing (near a limit, or it failed): no top-ups until a run of requests is granted some. */
  dry: boolean;
  lastAskMs: number;
}

export class CreditBook {
  /** By the shape's first key (a `{tenant}` key: few shapes share one). */
  private readonly byKey = new Map<string, Credit[]>();
  private timer: NodeJS.Timeout | null = null;

  /** `refund(credit, n)`: n requests' worth of `credit`'s buckets and quotas were not used (its slots go back through `slots`). `count`: for the metric. */
  constructor(
    private readonly lifetimeMs: number,
    private readonly slots: SlotBook,
    private readonly refund: (credit: Credit, n: number) => void,
    private readonly topUp: (credit: Credit) => void,
    private readonly count: (event: 'granted' | 'returned', requests: number) => void = () => {},
  ) {}

  /** The shape's credit, if it has any left, and a spare slot if it needs one (the hot path: one map lookup, mostly identity checks). */
  usable(request: LimitRequest): Credit | null {
    const list = this.byKey.get(firstKey(request));
    if (list === undefined) return null;
    for (let i = 0; i < list.length; i++) {
      const c = list[i]!;
      if (c.left > 0 && sameShape(c.shape, request)) return this.hasSpare(request) ? c : null;
    }
    return null;
  }

  /** A spare slot for each of the request's concurrency limits. */
  private hasSpare(request: LimitRequest): boolean {
    for (let i = 0; i < request.concurrency.length; i++) if (this.slots.spare(request.concurrency[i]!.key) <= 0) return false;
    return true;
  }

  /** Admits one request on `c` (which `usable` returned). */
  spend(c: Credit): LimitDecision {
    const left = --c.left;
    for (const slot of c.shape.concurrency) this.slots.take(slot.key);
    const nowMs = Date.now();
    const shape = c.shape;
    const elapsedS = Math.max(0, nowMs - c.grantedAtMs) / 1000;
    // Arrays of their exact size: this runs per request, and `[]` grown by push over-allocates.
    const bucketTokens = new Array<number>(shape.buckets.length);
    for (let i = 0; i < shape.buckets.length; i++) {
      const b = shape.buckets[i]!;
      bucketTokens[i] = Math.min(b.burst, c.tokens[i]! + left + b.perSecond * elapsedS);
    }
    const quotaUsed = new Array<number>(shape.quotas.length);
    for (let i = 0; i < shape.quotas.length; i++) quotaUsed[i] = c.used[i]! - shape.quotas[i]!.cost * left;
    // A quarter left: ask for more now, so the shape's requests do not wait for Redis when it runs out.
    if (left <= c.granted >> 2 && !c.asking && !c.dry) {
      c.asking = true;
      c.lastAskMs = nowMs;
      this.topUp(c);
    }
    // Used up within its lifetime: demand outran it, ask for more next time.
    if (left === 0) c.want = Math.min(MAX_CREDIT, c.want * 2);
    return { allowed: true, rejectedBy: null, rejectedKind: null, retryAfterMs: 0, bucketTokens, quotaUsed, nowMs };
  }

  /**
   * A run of `count` requests of this shape is going to Redis: the credit
   * that should ask for more with it, or null (no demand yet, credit left,
   * or an ask already in flight).
   */
  ask(request: LimitRequest, count: number, nowMs: number): Credit | null {
    const key = firstKey(request);
    let list = this.byKey.get(key);
    let c: Credit | undefined;
    if (list !== undefined) for (const x of list) if (sameShape(x.shape, request)) c = x;
    if (c === undefined) {
      if (count < 2) return null;
      c = { shape: request, left: 0, granted: 0, tokens: [], used: [], grantedAtMs: 0, expiresAtMs: 0, want: MIN_CREDIT * 2, asking: false, dry: false, lastAskMs: 0 };
      if (list === undefined) this.byKey.set(key, (list = []));
      list.push(c);
      this.schedule();
    }
    if (c.asking || c.left > 0) return null;
    c.asking = true;
    c.lastAskMs = nowMs;
    return c;
  }

  /**
   * Redis answered an ask: `n` requests' worth granted (0: none), after the
   * run's `admitted`; `tokens` and `used`: the state before the run.
   */
  granted(c: Credit, n: number, admitted: number, tokens: readonly number[], used: readonly number[]): void {
    c.asking = false;
    c.dry = n === 0;
    if (n === 0) return;
    const shape = c.shape;
    const taken = admitted + n;
    c.tokens.length = 0;
    c.used.length = 0;
    for (let i = 0; i < shape.buckets.length; i++) c.tokens.push(tokens[i]! - taken);
    for (let i = 0; i < shape.quotas.length; i++) c.used.push(used[i]! + shape.quotas[i]!.cost * taken);
    for (const slot of shape.concurrency) this.slots.reserve(slot.key, n);
    // A top-up adds to what is left (Redis's state above already has the rest taken out).
    c.left += n;
    c.granted = c.left;
    c.grantedAtMs = Date.now();
    c.expiresAtMs = c.grantedAtMs + this.lifetimeMs;
    this.count('granted', n);
  }

  /** An ask failed (the batch did): the next run may ask again. */
  failed(c: Credit): void {
    c.asking = false;
    c.dry = true;
  }

  /** Gives back every credit's unused part now (the connection dropped, or the store closes). */
  returnAll(): void {
    for (const list of this.byKey.values()) for (const c of list) this.giveUp(c, c.left);
  }

  /**
   * A lifetime has passed since the grant (or the last expiry). A credit not
   * spent on in that time goes back whole. One in use keeps what it served in
   * that lifetime (its demand for the next one) and gives back the rest:
   * expiring it whole would send its next requests to wait for Redis, every
   * lifetime, however busy the shape is.
   */
  private expire(c: Credit, now: number): void {
    const served = c.granted - c.left;
    // Next time ask for about twice what this one served.
    c.want = Math.max(MIN_CREDIT, Math.min(MAX_CREDIT, served * 2));
    this.giveUp(c, c.left - Math.min(c.left, served));
    c.granted = c.left;
    c.expiresAtMs = now + this.lifetimeMs;
  }

  /** Gives `n` of what is left back to Redis; the local figures move with it, so the estimates do not change. */
  private giveUp(c: Credit, n: number): void {
    if (n === 0) return;
    c.left -= n;
    for (let i = 0; i < c.tokens.length; i++) c.tokens[i]! += n;
    const quotas = c.shape.quotas;
    for (let i = 0; i < c.used.length; i++) c.used[i]! -= quotas[i]!.cost * n;
    if (c.shape.buckets.length > 0 || quotas.length > 0) this.refund(c, n);
    for (const slot of c.shape.concurrency) this.slots.unreserve(slot.key, n);
    this.count('returned', n);
  }

  private schedule(): void {
    if (this.timer !== null) return;
    this.timer = setTimeout(this.sweep, this.lifetimeMs);
    this.timer.unref();
  }

  /** Every lifetime: expired credit goes back; shapes idle for 100 lifetimes are forgotten. */
  private readonly sweep = (): void => {
    this.timer = null;
    const now = Date.now();
    const idleBefore = now - 100 * this.lifetimeMs;
    for (const [key, list] of this.byKey) {
      for (let i = list.length - 1; i >= 0; i--) {
        const c = list[i]!;
        if (c.left > 0 && now >= c.expiresAtMs) this.expire(c, now);
        else if (c.left === 0 && !c.asking && c.lastAskMs < idleBefore) list.splice(i, 1);
      }
      if (list.length === 0) this.byKey.delete(key);
    }
    if (this.byKey.size > 0) this.schedule();
  };
}
