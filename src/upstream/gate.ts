/**
 * Admission to one upstream origin, what Envoy calls circuit breakers: at
 * most `maxConnections` requests hold a connection, at most `maxPending` wait
 * for one (each no longer than its route's queueTimeoutMs), and one route
 * (when several use the origin) or one tenant holds at most its share of
 * either. Past any of these the request gets 503 upstream_overloaded at once,
 * so a flood on one route cannot hold every socket the others need.
 *
 * A counter and an intrusive FIFO: waiters are linked through their own
 * fields, so queueing allocates nothing; one timer per gate serves every
 * deadline. Time comes in as an argument (performance.now() in production)
 * so tests can drive it.
 */
import { reject, type Rejection } from '../errors.js';

export interface UpstreamLimits {
  readonly maxConnections: number;
  readonly maxPending: number;
  readonly routeShare: number;
  readonly tenantShare: number;
}

/** What one route or one tenant holds of this upstream. */
export interface Share {
  readonly key: string;
  active: number;
  pending: number;
}

/** Where a request is in the gate: not yet in it, waiting, holding a connection, out. */
export const GateState = { Idle: 0, Queued: 1, Active: 2, Done: 3 } as const;
export type GateState = (typeof GateState)[keyof typeof GateState];

/** A request in the gate. The gate owns the `gate*` fields. */
export interface GateWaiter {
  gateState: GateState;
  gatePrev: GateWaiter | null;
  gateNext: GateWaiter | null;
  gateDeadline: number;
  gateRoute: Share | null;
  gateTenant: Share | null;
  /** A connection slot is this request's: dispatch it. May call {@link ConnectionGate.release} synchronously. */
  start(): void;
  /** It waited in the queue too long, or the gate closed. */
  refused(rejection: Rejection): void;
}

/** A {@link GateWaiter} with its gate bookkeeping initialised: what a request that waits for a connection extends. */
export abstract class QueuedRequest implements GateWaiter {
  gateState: GateState = GateState.Idle;
  gatePrev: GateWaiter | null = null;
  gateNext: GateWaiter | null = null;
  gateDeadline = 0;
  gateRoute: Share | null = null;
  gateTenant: Share | null = null;
  abstract start(): void;
  abstract refused(rejection: Rejection): void;
}

const RETRY = Object.freeze({ 'retry-after': '1' });
const overloaded = (reason: string): Rejection => Object.freeze({ code: 'upstream_overloaded', reason, headers: RETRY });
export const QUEUE_FULL = overloaded('queue_full');
export const QUEUE_TIMEOUT = overloaded('queue_timeout');
export const ROUTE_SHARE = overloaded('route_share');
export const TENANT_SHARE = overloaded('tenant_share');
const CLOSED = reject('shutting_down', 'upstream_closed');

export class ConnectionGate {
  /** Requests holding a connection. */
  active = 0;
  /** Requests waiting for one. */
  pending = 0;
  private maxConnections = 0;
  private maxPending = 0;
  private routeActiveCap = 0;
  private routePendingCap = 0;
  private tenantActiveCap = 0;
  private tenantPendingCap = 0;
  private readonly routes = new Map<string, Share>();
  private readonly tenants = new Map<string, Share>();
  private head: GateWaiter | null = null;
  private tail: GateWaiter | null = null;
  private timer: NodeJS.Timeout | null = null;
  private timerAt = Infinity;
  private pumping = false;
  private repump = false;
  /** Called once nothing is active or pending (set when the upstream is retired). */
  whenIdle: (() => void) | null = null;

  constructor(
    limits: UpstreamLimits,
    routeCount: number,
    private readonly clock: () => number = performance.now.bind(performance),
  ) {
    this.configure(limits, routeCount);
  }

  /** New limits (a reload): what is held stays held; what is queued may now start. */
  configure(limits: UpstreamLimits, routeCount: number): void {
    this.maxConnections = limits.maxConnections;
    this.maxPending = limits.maxPending;
    // A route's share only means something when another route shares the origin.
    const routeShare = routeCount > 1 ? limits.routeShare : 1;
    this.routeActiveCap = Math.ceil(routeShare * limits.maxConnections);
    this.routePendingCap = Math.ceil(routeShare * limits.maxPending);
    this.tenantActiveCap = Math.ceil(limits.tenantShare * limits.maxConnections);
    this.tenantPendingCap = Math.ceil(limits.tenantShare * limits.maxPending);
    this.pump();
  }

  /**
   * Starts `w` now (calls its start()), queues it until `now + queueTimeoutMs`,
   * or returns why neither is possible. `tenant` is null for a request without
   * one (a public route): only the route's share applies to it.
   */
  acquire(w: GateWaiter, route: string, tenant: string | null, queueTimeoutMs: number, now: number): Rejection | null {
    const r = share(this.routes, route);
    const t = tenant === null ? null : share(this.tenants, tenant);
    w.gateRoute = r;
    w.gateTenant = t;
    if (this.active < this.maxConnections && this.fits(r, t)) {
      this.take(w);
      w.start();
      return null;
    }
    let refusal: Rejection | null = null;
    if (this.pending >= this.maxPending) refusal = QUEUE_FULL;
    else if (r.pending >= this.routePendingCap) refusal = ROUTE_SHARE;
    else if (t !== null && t.pending >= this.tenantPendingCap) refusal = TENANT_SHARE;
    if (refusal !== null) {
      w.gateState = GateState.Done;
      this.drop(r, t);
      return refusal;
    }
    this.enqueue(w, now + queueTimeoutMs, now);
    return null;
  }

  /** The request no longer holds its connection (completed, failed, aborted), or left the queue. Idempotent. */
  release(w: GateWaiter): void {
    const state = w.gateState;
    w.gateState = GateState.Done;
    if (state === GateState.Active) {
      this.active--;
      w.gateRoute!.active--;
      if (w.gateTenant !== null) w.gateTenant.active--;
    } else if (state === GateState.Queued) {
      this.unlink(w);
    } else return;
    this.drop(w.gateRoute!, w.gateTenant);
    this.pump();
    if (this.whenIdle !== null && this.active === 0 && this.pending === 0) this.whenIdle();
  }

  /** Refuses every waiter whose deadline has passed and re-arms the timer for the next one. */
  expire(now: number): void {
    let next = Infinity;
    for (let w = this.head; w !== null; ) {
      const after = w.gateNext;
      if (w.gateDeadline <= now) {
        this.unlink(w);
        w.gateState = GateState.Done;
        this.drop(w.gateRoute!, w.gateTenant);
        w.refused(QUEUE_TIMEOUT);
      } else if (w.gateDeadline < next) next = w.gateDeadline;
      w = after;
    }
    this.arm(next, now);
    if (this.whenIdle !== null && this.active === 0 && this.pending === 0) this.whenIdle();
  }

  /** Refuses everything still queued (shutdown). */
  close(): void {
    for (let w = this.head; w !== null; ) {
      const after = w.gateNext;
      this.unlink(w);
      w.gateState = GateState.Done;
      this.drop(w.gateRoute!, w.gateTenant);
      w.refused(CLOSED);
      w = after;
    }
    this.arm(Infinity, 0);
  }

  /** What one route or tenant holds (tests, diagnostics); null when it holds nothing. */
  shareOf(kind: 'route' | 'tenant', key: string): { active: number; pending: number } | null {
    const s = (kind === 'route' ? this.routes : this.tenants).get(key);
    return s === undefined ? null : { active: s.active, pending: s.pending };
  }

  private fits(r: Share, t: Share | null): boolean {
    return r.active < this.routeActiveCap && (t === null || t.active < this.tenantActiveCap);
  }

  private take(w: GateWaiter): void {
    w.gateState = GateState.Active;
    this.active++;
    w.gateRoute!.active++;
    if (w.gateTenant !== null) w.gateTenant.active++;
  }

  private enqueue(w: GateWaiter, deadline: number, now: number): void {
    w.gateState = GateState.Queued;
    w.gateDeadline = deadline;
    w.gateNext = null;
    w.gatePrev = this.tail;
    if (this.tail === null) this.head = w;
    else this.tail.gateNext = w;
    this.tail = w;
    this.pending++;
    w.gateRoute!.pending++;
    if (w.gateTenant !== null) w.gateTenant.pending++;
    if (deadline < this.timerAt) this.arm(deadline, now);
  }

  private unlink(w: GateWaiter): void {
    if (w.gatePrev === null) this.head = w.gateNext;
    else w.gatePrev.gateNext = w.gateNext;
    if (w.gateNext === null) this.tail = w.gatePrev;
    else w.gateNext.gatePrev = w.gatePrev;
    w.gatePrev = w.gateNext = null;
    this.pending--;
    w.gateRoute!.pending--;
    if (w.gateTenant !== null) w.gateTenant.pending--;
  }

  /**
   * Starts queued requests while connections are free, oldest first, skipping
   * those whose route or tenant is at its share. Re-entrant calls (a start()
   * that fails at once releases) only ask for another pass.
   */
  private pump(): void {
    if (this.pumping) {
      this.repump = true;
      return;
    }
    this.pumping = true;
    try {
      do {
        this.repump = false;
        for (let w = this.head; w !== null && this.active < this.maxConnections; ) {
          const after = w.gateNext;
          if (this.fits(w.gateRoute!, w.gateTenant)) {
            this.unlink(w);
            this.take(w);
            w.start();
          }
          w = after;
        }
      } while (this.repump);
    } finally {
      this.pumping = false;
    }
  }

  /** Forgets a route's or tenant's share once it holds nothing (tenants come and go). */
  private drop(r: Share, t: Share | null): void {
    if (r.active === 0 && r.pending === 0) this.routes.delete(r.key);
    if (t !== null && t.active === 0 && t.pending === 0) this.tenants.delete(t.key);
  }

  private readonly onTimer = (): void => {
    this.timer = null;
    this.timerAt = Infinity;
    this.expire(this.clock());
  };

  private arm(at: number, now: number): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.timerAt = at;
    if (at === Infinity) return;
    this.timer = setTimeout(this.onTimer, Math.max(1, Math.ceil(at - now)));
    this.timer.unref();
  }
}

function share(map: Map<string, Share>, key: string): Share {
  let s = map.get(key);
  if (s === undefined) {
    s = { key, active: 0, pending: 0 };
    map.set(key, s);
  }
  return s;
}
