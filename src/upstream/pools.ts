/**
 * One undici Pool per upstream origin, shared by every route that points at
 * it and kept across config reloads (a reload that keeps an origin keeps its
 * warm keep-alive connections; origins no longer used are closed gracefully).
 */
import { Pool } from 'undici';

/** Upper bound on connections per upstream origin: beyond it requests queue rather than open sockets without end. */
const MAX_CONNECTIONS_PER_ORIGIN = 512;
const CONNECT_TIMEOUT_MS = 5_000;
/** Below the 5 s keep-alive of Node servers (the usual legacy upstream), so we never reuse a socket they are closing. */
const KEEP_ALIVE_MS = 4_000;

export class UpstreamPools {
  private readonly pools = new Map<string, Pool>();

  get(origin: string): Pool {
    let pool = this.pools.get(origin);
    if (pool === undefined) {
      pool = new Pool(origin, {
        connections: MAX_CONNECTIONS_PER_ORIGIN,
        pipelining: 1,
        keepAliveTimeout: KEEP_ALIVE_MS,
        connectTimeout: CONNECT_TIMEOUT_MS,
      });
      this.pools.set(origin, pool);
    }
    return pool;
  }

  /** Closes pools for origins no longer in use (after their in-flight requests finish). */
  retainOnly(origins: ReadonlySet<string>): void {
    for (const [origin, pool] of this.pools) {
      if (!origins.has(origin)) {
        this.pools.delete(origin);
        void pool.close().catch(() => pool.destroy());
      }
    }
  }

  async close(): Promise<void> {
    const all = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(all.map((p) => p.close().catch(() => p.destroy())));
  }
}
