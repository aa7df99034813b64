/**
 * One {@link Upstream} per upstream origin — an undici Pool and the
 * {@link ConnectionGate} in front of it — shared by every route that points
 * at the origin and kept across config reloads (a reload that keeps an
 * origin keeps its warm keep-alive connections and what its requests hold;
 * origins no longer used are closed once their requests are done).
 */
import { Pool } from 'undici';
import { DEFAULT_UPSTREAM_LIMITS, type UpstreamConfig } from '../config/schema.js';
import type { CompiledRoute } from '../domain.js';
import { ConnectionGate, type UpstreamLimits } from './gate.js';

const CONNECT_TIMEOUT_MS = 5_000;
/** Below the 5 s keep-alive of Node servers (the usual legacy upstream), so we never reuse a socket they are closing. */
const KEEP_ALIVE_MS = 4_000;

/** What the pools read from a compiled config. */
export interface UpstreamSource {
  readonly source: { readonly upstreams: readonly UpstreamConfig[] };
  readonly routeList: readonly CompiledRoute[];
}

interface OriginSettings {
  readonly limits: UpstreamLimits;
  /** Routes that use the origin: a route's share applies only when there are several. */
  readonly routes: number;
}

const UNLISTED: OriginSettings = { limits: DEFAULT_UPSTREAM_LIMITS, routes: 1 };

function newPool(origin: string, connections: number): Pool {
  return new Pool(origin, { connections, pipelining: 1, keepAliveTimeout: KEEP_ALIVE_MS, connectTimeout: CONNECT_TIMEOUT_MS });
}

function closePool(pool: Pool): void {
  void pool.close().catch(() => pool.destroy());
}

/** One origin: requests pass the gate, then go out on the pool. */
export class Upstream {
  pool: Pool;
  private poolConnections: number;
  readonly gate: ConnectionGate;

  constructor(
    readonly origin: string,
    settings: OriginSettings,
  ) {
    this.poolConnections = settings.limits.maxConnections;
    this.pool = newPool(origin, this.poolConnections);
    this.gate = new ConnectionGate(settings.limits, settings.routes);
  }

  configure(settings: OriginSettings): void {
    const { maxConnections } = settings.limits;
    // A Pool's size is fixed: a larger limit needs a new one (the old one finishes what it carries).
    if (maxConnections > this.poolConnections) {
      closePool(this.pool);
      this.poolConnections = maxConnections;
      this.pool = newPool(this.origin, maxConnections);
    }
    this.gate.configure(settings.limits, settings.routes);
  }

  /** No route uses the origin any more: close the pool once nothing is in flight or queued. */
  retire(): void {
    this.closeWhenIdle();
    if (this.gate.active === 0 && this.gate.pending === 0) this.gate.whenIdle!();
  }

  /** Closes the pool the next time its last request ends. */
  closeWhenIdle(): void {
    const gate = this.gate;
    gate.whenIdle = () => {
      gate.whenIdle = null;
      closePool(this.pool);
    };
  }

  async close(): Promise<void> {
    this.gate.close();
    await this.pool.close().catch(() => this.pool.destroy());
  }
}

export class UpstreamPools {
  private readonly upstreams = new Map<string, Upstream>();
  private settings = new Map<string, OriginSettings>();
  /** The origins the config in force uses (null until the first config). */
  private retained: ReadonlySet<string> | null = null;

  /** The upstream a route forwards to. */
  for(route: CompiledRoute): Upstream {
    const origin = route.upstream.origin;
    let upstream = this.upstreams.get(origin);
    if (upstream === undefined) {
      upstream = new Upstream(origin, this.settings.get(origin) ?? UNLISTED);
      // A request of an older config, to an origin a reload dropped: served, then closed.
      if (this.retained !== null && !this.retained.has(origin)) upstream.closeWhenIdle();
      else this.upstreams.set(origin, upstream);
    }
    return upstream;
  }

  /**
   * Applies a config's limits (at start and on every reload): kept origins get
   * the new limits, origins no longer used are retired (their pools close
   * once their requests are done).
   */
  configure(config: UpstreamSource): void {
    const listed = new Map(config.source.upstreams.map((u) => [u.origin, u]));
    const routes = new Map<string, number>();
    for (const r of config.routeList) routes.set(r.upstream.origin, (routes.get(r.upstream.origin) ?? 0) + 1);
    const settings = new Map<string, OriginSettings>();
    for (const [origin, count] of routes) settings.set(origin, { limits: listed.get(origin) ?? DEFAULT_UPSTREAM_LIMITS, routes: count });
    this.settings = settings;
    this.retained = new Set(routes.keys());
    for (const [origin, upstream] of this.upstreams) {
      const s = settings.get(origin);
      if (s !== undefined) upstream.configure(s);
      else {
        this.upstreams.delete(origin);
        upstream.retire();
      }
    }
  }

  async close(): Promise<void> {
    const all = [...this.upstreams.values()];
    this.upstreams.clear();
    await Promise.all(all.map((u) => u.close()));
  }
}
