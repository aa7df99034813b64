/**
 * The upstream admission gate (src/upstream/gate.ts) on its own: connection
 * and queue limits, per-route and per-tenant shares, queue deadlines, FIFO
 * order and re-entrant releases. Time is passed in: no test sleeps.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Rejection } from '../../../src/errors.js';
import { ConnectionGate, QueuedRequest, type UpstreamLimits } from '../../../src/upstream/gate.js';
import { DEFAULT_UPSTREAM_LIMITS } from '../../../src/config/schema.js';

class Waiter extends QueuedRequest {
  started = 0;
  refusal: Rejection | null = null;
  constructor(
    readonly name: string,
    private readonly onStart?: (w: Waiter) => void,
  ) {
    super();
  }
  start(): void {
    this.started++;
    this.onStart?.(this);
  }
  refused(rejection: Rejection): void {
    this.refusal = rejection;
  }
}

const LIMITS: UpstreamLimits = { maxConnections: 4, maxPending: 4, routeShare: 0.5, tenantShare: 0.25 };
let now = 0;
const gates: ConnectionGate[] = [];

function gate(limits: UpstreamLimits = LIMITS, routes = 2): ConnectionGate {
  const g = new ConnectionGate(limits, routes, () => now);
  gates.push(g);
  return g;
}

afterEach(() => {
  for (const g of gates.splice(0)) g.close();
});

function reasonOf(r: Rejection | null): string | null {
  return r === null ? null : `${r.code}/${r.reason}`;
}

describe('ConnectionGate', () => {
  it('the defaults protect a default config: 512 connections, 1024 pending, half for a route or a tenant', () => {
    expect(DEFAULT_UPSTREAM_LIMITS).toEqual({ maxConnections: 512, maxPending: 1024, routeShare: 0.5, tenantShare: 0.5 });
  });

  it('starts up to maxConnections at once, queues up to maxPending, then refuses with queue_full', () => {
    const g = gate({ maxConnections: 2, maxPending: 2, routeShare: 1, tenantShare: 1 });
    const ws = Array.from({ length: 5 }, (_, i) => new Waiter(`w${i}`));
    const results = ws.map((w) => reasonOf(g.acquire(w, 'r', null, 1000, now)));
    expect(results).toEqual([null, null, null, null, 'upstream_overloaded/queue_full']);
    expect(ws.map((w) => w.started)).toEqual([1, 1, 0, 0, 0]);
    expect([g.active, g.pending]).toEqual([2, 2]);
  });

  it('a released connection goes to the oldest waiter', () => {
    const g = gate({ maxConnections: 1, maxPending: 3, routeShare: 1, tenantShare: 1 });
    const [a, b, c] = [new Waiter('a'), new Waiter('b'), new Waiter('c')];
    for (const w of [a, b, c]) g.acquire(w, 'r', null, 1000, now);
    g.release(a);
    expect([b.started, c.started]).toEqual([1, 0]);
    g.release(b);
    expect(c.started).toBe(1);
    g.release(b); // twice: no effect
    expect([g.active, g.pending]).toEqual([1, 0]);
  });

  it('a waiter past its deadline is refused with queue_timeout; one still in time stays queued', () => {
    const g = gate({ maxConnections: 1, maxPending: 4, routeShare: 1, tenantShare: 1 });
    now = 10_000;
    const [held, early, late] = [new Waiter('held'), new Waiter('early'), new Waiter('late')];
    g.acquire(held, 'r', null, 500, now);
    g.acquire(early, 'r', null, 500, now);
    g.acquire(late, 'r', null, 5000, now);
    g.expire(now + 499);
    expect(early.refusal).toBeNull();
    g.expire(now + 500);
    expect(reasonOf(early.refusal)).toBe('upstream_overloaded/queue_timeout');
    expect(early.refusal!.headers).toEqual({ 'retry-after': '1' });
    expect(late.refusal).toBeNull();
    expect(g.pending).toBe(1);
    g.release(held);
    expect(late.started).toBe(1);
    expect(early.started).toBe(0);
  });

  it('a waiter that leaves the queue (client gone) frees its place and is never started', () => {
    const g = gate({ maxConnections: 1, maxPending: 1, routeShare: 1, tenantShare: 1 });
    const [held, gone, next] = [new Waiter('held'), new Waiter('gone'), new Waiter('next')];
    g.acquire(held, 'r', null, 1000, now);
    g.acquire(gone, 'r', null, 1000, now);
    g.release(gone);
    expect(g.acquire(next, 'r', null, 1000, now)).toBeNull();
    g.release(held);
    expect([gone.started, next.started]).toEqual([0, 1]);
  });

  it('route share: one route of several holds at most half the connections and half the queue; another route still gets in', () => {
    const g = gate(); // 4 connections, 4 pending, routeShare 0.5
    const flood = Array.from({ length: 5 }, (_, i) => new Waiter(`flood${i}`));
    const results = flood.map((w) => reasonOf(g.acquire(w, 'public', null, 1000, now)));
    expect(results).toEqual([null, null, null, null, 'upstream_overloaded/route_share']);
    expect(flood.map((w) => w.started)).toEqual([1, 1, 0, 0, 0]);
    const other = new Waiter('other');
    expect(g.acquire(other, 'api', null, 1000, now)).toBeNull();
    expect(other.started).toBe(1);
    expect(g.shareOf('route', 'public')).toEqual({ active: 2, pending: 2 });
  });

  it('a route alone on its upstream is not held to a share', () => {
    const g = gate(LIMITS, 1);
    const ws = Array.from({ length: 4 }, (_, i) => new Waiter(`w${i}`));
    for (const w of ws) expect(g.acquire(w, 'only', null, 1000, now)).toBeNull();
    expect(ws.every((w) => w.started === 1)).toBe(true);
  });

  it('tenant share: one tenant holds at most its share; other tenants and tenant-less requests still get in', () => {
    const g = gate(); // tenantShare 0.25 of 4 → 1 connection, 1 pending
    const [a1, a2, a3] = [new Waiter('a1'), new Waiter('a2'), new Waiter('a3')];
    expect(reasonOf(g.acquire(a1, 'api', 'acme', 1000, now))).toBeNull();
    expect(reasonOf(g.acquire(a2, 'api', 'acme', 1000, now))).toBeNull();
    expect(reasonOf(g.acquire(a3, 'api', 'acme', 1000, now))).toBe('upstream_overloaded/tenant_share');
    expect([a1.started, a2.started]).toEqual([1, 0]);
    const globex = new Waiter('globex');
    const anonymous = new Waiter('anonymous');
    g.acquire(globex, 'api', 'globex', 1000, now);
    g.acquire(anonymous, 'web', null, 1000, now);
    expect([globex.started, anonymous.started]).toEqual([1, 1]);
  });

  it('a freed connection skips a waiter whose route is at its share and starts the next one', () => {
    const g = gate({ maxConnections: 2, maxPending: 4, routeShare: 0.5, tenantShare: 1 });
    const [p1, o1, p2, o2] = [new Waiter('p1'), new Waiter('o1'), new Waiter('p2'), new Waiter('o2')];
    g.acquire(p1, 'public', null, 1000, now); // public: 1 of its 1
    g.acquire(o1, 'other', null, 1000, now); // other: 1 of its 1; upstream full
    g.acquire(p2, 'public', null, 1000, now); // queued
    g.acquire(o2, 'other', null, 1000, now); // queued behind p2
    g.release(o1);
    expect([p2.started, o2.started]).toEqual([0, 1]);
    g.release(p1);
    expect(p2.started).toBe(1);
  });

  it('a start() that fails at once (and releases) hands the connection on without starting anyone twice', () => {
    const g = gate({ maxConnections: 1, maxPending: 4, routeShare: 1, tenantShare: 1 });
    const held = new Waiter('held');
    g.acquire(held, 'r', null, 1000, now);
    const failing = [new Waiter('f1', (w) => g.release(w)), new Waiter('f2', (w) => g.release(w))];
    const last = new Waiter('last');
    for (const w of [...failing, last]) g.acquire(w, 'r', null, 1000, now);
    g.release(held);
    expect([...failing, last].map((w) => w.started)).toEqual([1, 1, 1]);
    expect([g.active, g.pending]).toEqual([1, 0]);
  });

  it('larger limits on reload start what was queued', () => {
    const g = gate({ maxConnections: 1, maxPending: 4, routeShare: 1, tenantShare: 1 });
    const ws = Array.from({ length: 3 }, (_, i) => new Waiter(`w${i}`));
    for (const w of ws) g.acquire(w, 'r', null, 1000, now);
    g.configure({ maxConnections: 3, maxPending: 4, routeShare: 1, tenantShare: 1 }, 1);
    expect(ws.map((w) => w.started)).toEqual([1, 1, 1]);
  });

  it('whenIdle fires once nothing is held or queued; close() refuses what is queued', () => {
    const g = gate({ maxConnections: 1, maxPending: 4, routeShare: 1, tenantShare: 1 });
    const [a, b] = [new Waiter('a'), new Waiter('b')];
    g.acquire(a, 'r', null, 1000, now);
    g.acquire(b, 'r', null, 1000, now);
    let idle = 0;
    g.whenIdle = () => idle++;
    g.release(a);
    expect(idle).toBe(0);
    g.release(b);
    expect(idle).toBe(1);
    const [c, d] = [new Waiter('c'), new Waiter('d')];
    g.acquire(c, 'r', null, 1000, now);
    g.acquire(d, 'r', null, 1000, now);
    g.close();
    expect(reasonOf(d.refusal)).toBe('shutting_down/upstream_closed');
  });

  it('forgets the shares of tenants that hold nothing', () => {
    const g = gate();
    const ws = Array.from({ length: 50 }, (_, i) => new Waiter(`t${i}`));
    for (const w of ws) {
      g.acquire(w, 'api', w.name, 1000, now);
      g.release(w);
    }
    expect(g.shareOf('tenant', 't0')).toBeNull();
    expect(g.shareOf('route', 'api')).toBeNull();
    expect([g.active, g.pending]).toEqual([0, 0]);
  });
});
