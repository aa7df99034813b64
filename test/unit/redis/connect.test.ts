/**
 * store.redis as a Cluster node list: TLS and credentials in the URLs must
 * reach every node connection (a Cluster is only given host/port pairs).
 */
import { Cluster, Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { connectRedis } from '../../../src/redis/connect.js';

describe('connectRedis', () => {
  it('a rediss:// node list becomes a Cluster whose nodes use TLS and the URL credentials', async () => {
    const c = connectRedis(['rediss://app:s%40cret@10.0.0.1:7000', 'rediss://app:s%40cret@10.0.0.2:7001'], { lazyConnect: true }, { lazyConnect: true });
    expect(c).toBeInstanceOf(Cluster);
    const options = (c as Cluster).options.redisOptions!;
    expect(options.tls).toEqual({});
    expect(options.username).toBe('app');
    expect(options.password).toBe('s@cret');
    expect((c as unknown as { startupNodes: unknown[] }).startupNodes).toEqual([
      { host: '10.0.0.1', port: 7000 },
      { host: '10.0.0.2', port: 7001 },
    ]);
    c.disconnect();
  });

  it('plain redis:// nodes get no TLS; a single URL is a plain client (ioredis reads rediss:// itself)', async () => {
    const c = connectRedis(['redis://10.0.0.1'], { lazyConnect: true }, { lazyConnect: true }) as Cluster;
    expect(c.options.redisOptions!.tls).toBeUndefined();
    c.disconnect();
    const single = connectRedis('rediss://10.0.0.1:6380', { lazyConnect: true });
    expect(single).toBeInstanceOf(Redis);
    expect((single as Redis).options.tls).toBeDefined();
    single.disconnect();
  });
});
