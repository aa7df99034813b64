/**
 * What the running proxy holds: the current compiled config (swapped
 * atomically on reload; a request keeps the config it started with), the
 * upstream pools, metrics, logger, and the in-flight count that draining
 * waits on.
 */
import type { Duplex } from 'node:stream';
import type { CompiledConfig } from './config/compile.js';
import type { LimitStore } from './limits/types.js';
import type { Lease } from './domain.js';
import type { Logger } from './observability/logger.js';
import type { Metrics } from './observability/metrics.js';
import { UpstreamPools } from './upstream/pools.js';
import type { UsageRecorder } from './usage/types.js';
import type { Directory } from './registry/directory.js';

export class ProxyState {
  readonly pools = new UpstreamPools();
  draining = false;
  /** HTTP requests being processed plus open WebSockets. */
  inflight = 0;
  private idleWaiters: (() => void)[] = [];
  /** Open WebSocket tunnels (client side), closed when the drain's grace period ends. */
  readonly tunnels = new Set<Duplex>();

  /** Dynamic tenants and keys (admin API, issue #8); set by app.ts at start. */
  directory: Directory | null = null;

  /** Concurrency leases held by requests in flight, renewed together by {@link renewLeases}. */
  private readonly leases = new Set<Lease>();

  constructor(
    public config: CompiledConfig,
    readonly metrics: Metrics,
    readonly logger: Logger,
    readonly limits: LimitStore,
    /** Where the account stage puts usage events; null when no sink is configured. */
    readonly usage: UsageRecorder | null = null,
  ) {
    metrics.inflightSource = () => this.inflight;
    this.pools.configure(config);
  }

  requestStarted(): void {
    this.inflight++;
  }

  requestEnded(): void {
    this.inflight--;
    if (this.inflight === 0 && this.idleWaiters.length > 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  /** Resolves when nothing is in flight. */
  whenIdle(): Promise<void> {
    if (this.inflight === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  holdLease(lease: Lease): void {
    this.leases.add(lease);
  }

  releaseLease(lease: Lease): void {
    this.leases.delete(lease);
    this.limits.release(lease.key, lease.leaseId);
  }

  /** Keeps the slots of long requests and open WebSockets alive (a crashed replica's just expire). */
  renewLeases(ttlMs: number): void {
    for (const lease of this.leases) this.limits.renew(lease.key, lease.leaseId, ttlMs);
  }

  closeTunnels(): void {
    for (const socket of this.tunnels) socket.destroy();
    this.tunnels.clear();
  }

  /** Swaps in a new config; pools of origins it no longer uses are closed once idle. */
  applyConfig(next: CompiledConfig): void {
    this.config = next;
    this.pools.configure(next);
  }
}
