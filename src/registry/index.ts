/**
 * `createDirectory(config)` — the one place that chooses where dynamic tenants
 * and keys live: PostgreSQL when `registry.postgres` is set, else Redis when
 * `registry.redis` or `store.redis` is set (all shared by every replica;
 * registry.redis first, so the registry can have a Redis of its own), else
 * the local state file `admin.stateFile`.
 */
import { resolve } from 'node:path';
import type { Config } from '../config/schema.js';
import type { Logger } from '../observability/logger.js';
import type { RedisTls } from '../redis/tls.js';
import { Directory } from './directory.js';
import { FileRegistry } from './file-registry.js';
import { RedisRegistry } from './redis-registry.js';
import type { Registry } from './types.js';

/** Bound on a registry call (a cold key lookup is on the request path): the store's, but never under 200 ms. */
const MIN_TIMEOUT_MS = 200;
/** Opening a PostgreSQL connection (startup and authentication, maybe TLS) takes more than one query; the pool keeps them open. */
const PG_CONNECT_TIMEOUT_MS = 1000;
export const DEFAULT_STATE_FILE = './tenantgate-state.json';

/** The registry `source` names (see the header), opened; `registry export|import` use it too. */
export async function openRegistry(source: Config, tls: RedisTls | null, baseDir: string, waitMs: number, logger?: Logger): Promise<Registry> {
  if (source.registry.postgres !== null) {
    // Imported only when configured: a proxy on Redis or a file does not carry the pg client.
    const { PostgresRegistry } = await import('./postgres-registry.js');
    const registry = new PostgresRegistry({
      url: source.registry.postgres,
      queryTimeoutMs: Math.max(MIN_TIMEOUT_MS, source.store.commandTimeoutMs),
      connectTimeoutMs: PG_CONNECT_TIMEOUT_MS,
      ...(logger ? { logger } : {}),
    });
    await registry.ready(waitMs);
    return registry;
  }
  const registryRedis = source.registry.redis ?? source.store.redis;
  if (registryRedis !== null) {
    const apart = source.registry.redis !== null && source.store.redis !== null && JSON.stringify(source.registry.redis) !== JSON.stringify(source.store.redis);
    const registry = new RedisRegistry({
      redis: registryRedis,
      tls,
      keyPrefix: source.store.keyPrefix,
      commandTimeoutMs: Math.max(MIN_TIMEOUT_MS, source.store.commandTimeoutMs),
      // The quota counters stay in the limit store's Redis.
      counters: apart ? { redis: source.store.redis!, tls } : null,
      ...(logger ? { logger } : {}),
    });
    // An evicting registry Redis refuses the start (the error names maxmemory-policy).
    await registry.ready(waitMs).catch(async (err: unknown) => {
      await registry.close();
      throw err;
    });
    return registry;
  }
  return FileRegistry.open(resolve(baseDir, source.admin.stateFile ?? DEFAULT_STATE_FILE));
}

export async function createDirectory(
  source: Config,
  tls: RedisTls | null,
  logger: Logger,
  env: NodeJS.ProcessEnv,
  baseDir: string,
  waitMs: number,
): Promise<Directory> {
  const pepper = env.TENANTGATE_KEY_PEPPER || null;
  const registry = await openRegistry(source, tls, baseDir, waitMs, logger);
  // The file registry rewrites its whole file on each lastUsedAt batch: less often there.
  const directory = new Directory({ registry, logger, pepper, ...(registry.kind === 'file' ? { touchIntervalMs: 30_000 } : {}) });
  await directory.start();
  return directory;
}

export { Directory } from './directory.js';
export type * from './types.js';
