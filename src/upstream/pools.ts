/**
 * One {@link Upstream} per upstream origin and connection settings (a route's
 * `upstreamKey`: the origin alone for plain HTTP, else with the protocol and
 * the TLS files' fingerprint) — an undici Pool, or HTTP/2 sessions for gRPC,
 * and the {@link ConnectionGate} in front of it — shared by every route with
 * the same key and kept across config reloads (a reload that keeps a key
 * keeps its warm keep-alive connections and what its requests hold; keys no
 * longer used are closed once their requests are done). A reload that
 * rotates a route's TLS files changes its key: new connections, new pool.
 */
import { Agent as HttpsAgent } from 'node:https';
import { isIP } from 'node:net';
import { Pool } from 'undici';
import { DEFAULT_UPSTREAM_LIMITS, type UpstreamConfig } from '../config/schema.js';
import type { CompiledRoute, UpstreamTlsOptions } from '../domain.js';
import { ConnectionGate, type UpstreamLimits } from './gate.js';
import { H2Session } from './h2.js';

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

function newPool(origin: string, connections: number, tls: UpstreamTlsOptions | null): Pool {
  const options: Pool.Options = { connections, pipelining: 1, keepAliveTimeout: KEEP_ALIVE_MS, connectTimeout: CONNECT_TIMEOUT_MS };
  // undici passes these to tls.connect for this pool's sockets only; verification stays on.
  if (tls !== null) options.connect = { ca: tls.ca, cert: tls.cert, key: tls.key, servername: tls.servername };
  return new Pool(origin, options);
}

function closePool(pool: Pool): void {
  void pool.close().catch(() => pool.destroy());
}

/** One origin and its connection settings: requests pass the gate, then go out on the pool (HTTP) or the session (gRPC). */
export class Upstream {
  pool: Pool;
  private poolConnections: number;
  readonly gate: ConnectionGate;
  /** HTTP/2 to the origin, for `protocol: grpc` routes (connected at the first request). */
  readonly h2: H2Session;
  private wsAgent: HttpsAgent | null = null;

  constructor(
    readonly origin: string,
    settings: OriginSettings,
    private readonly tls: UpstreamTlsOptions | null = null,
  ) {
    this.poolConnections = settings.limits.maxConnections;
    this.pool = newPool(origin, this.poolConnections, tls);
    this.gate = new ConnectionGate(settings.limits, settings.routes);
    this.h2 = new H2Session(origin, tls);
  }

  /**
   * For WebSocket upgrades to an https:// origin with a route `tls`: an agent
   * carrying its TLS options (a Node agent's options take precedence over the
   * request's), so the upgrade trusts and presents what the route says.
   */
  tlsAgent(): HttpsAgent | undefined {
    const tls = this.tls;
    if (tls === null) return undefined;
    // Node would take the SNI name from the Host header (the client's): name the upstream instead, or none for an IP.
    const host = new URL(this.origin).hostname.replace(/^\[|\]$/g, '');
    const servername = tls.servername ?? (isIP(host) === 0 ? host : '');
    this.wsAgent ??= new HttpsAgent({ ca: tls.ca, cert: tls.cert, key: tls.key, servername, keepAlive: false });
    return this.wsAgent;
  }

  configure(settings: OriginSettings): void {
    const { maxConnections } = settings.limits;
    // A Pool's size is fixed: a larger limit needs a new one (the old one finishes what it carries).
    if (maxConnections > this.poolConnections) {
      closePool(this.pool);
      this.poolConnections = maxConnections;
      this.pool = newPool(this.origin, maxConnections, this.tls);
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
      this.h2.close();
      this.wsAgent?.destroy();
    };
  }

  async close(): Promise<void> {
    this.gate.close();
    this.h2.close();
    this.wsAgent?.destroy();
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
    const key = route.upstreamKey;
    let upstream = this.upstreams.get(key);
    if (upstream === undefined) {
      upstream = new Upstream(route.upstream.origin, this.settings.get(key) ?? UNLISTED, route.tls);
      // A request of an older config, to an origin a reload dropped: served, then closed.
      if (this.retained !== null && !this.retained.has(key)) upstream.closeWhenIdle();
      else this.upstreams.set(key, upstream);
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
    // By key: the origin's limits apply to each of its keys (one per protocol and TLS settings).
    const routes = new Map<string, number>();
    const origins = new Map<string, string>();
    for (const r of config.routeList) {
      routes.set(r.upstreamKey, (routes.get(r.upstreamKey) ?? 0) + 1);
      origins.set(r.upstreamKey, r.upstream.origin);
    }
    const settings = new Map<string, OriginSettings>();
    for (const [key, count] of routes) settings.set(key, { limits: listed.get(origins.get(key)!) ?? DEFAULT_UPSTREAM_LIMITS, routes: count });
    this.settings = settings;
    this.retained = new Set(routes.keys());
    for (const [key, upstream] of this.upstreams) {
      const s = settings.get(key);
      if (s !== undefined) upstream.configure(s);
      else {
        this.upstreams.delete(key);
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
