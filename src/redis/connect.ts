/**
 * One way to open an ioredis client for everything that talks to Redis (the
 * limit store, the tenant/key registry): `store.redis` is a `redis://` or
 * `rediss://` URL (ioredis reads TLS, user and password from it), or a list
 * of Cluster node URLs — for which TLS and credentials must be passed as
 * options, since a Cluster is given bare host/port pairs. `tls` (store.tls,
 * ./tls.ts) is used by rediss:// connections only.
 */
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { RedisTls } from './tls.js';

export function connectRedis(target: string | readonly string[], options: RedisOptions, clusterOptions: ClusterOptions = {}, tls: RedisTls | null = null): Redis | Cluster {
  // A copy each time: Node's TLS code may add to the object it is given.
  if (typeof target === 'string') return new Redis(target, target.startsWith('rediss://') && tls !== null ? { ...options, tls: { ...tls } } : options);
  const urls = target.map((u) => new URL(u));
  const first = urls[0];
  const nodeOptions: RedisOptions = { ...options };
  if (first !== undefined) {
    if (first.protocol === 'rediss:') nodeOptions.tls ??= { ...tls };
    if (first.username !== '') nodeOptions.username ??= decodeURIComponent(first.username);
    if (first.password !== '') nodeOptions.password ??= decodeURIComponent(first.password);
  }
  return new Cluster(
    urls.map((url) => ({ host: url.hostname, port: Number(url.port || 6379) })),
    { ...clusterOptions, redisOptions: nodeOptions },
  );
}

/** Resolves once the client is ready, or after `timeoutMs` (it keeps trying in the background). */
export function whenReady(client: Redis | Cluster, timeoutMs: number): Promise<void> {
  if (client.status === 'ready') return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, timeoutMs);
    function done(): void {
      clearTimeout(timer);
      client.off('ready', done);
      resolve();
    }
    client.on('ready', done);
  });
}
