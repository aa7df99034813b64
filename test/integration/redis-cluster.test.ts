/**
 * The proxy with `store.redis` a Redis Cluster's node list, against a real
 * three-node Cluster: limits shared by two proxy processes, tenants and keys
 * made through one's admin API in force on the other, usage events in the
 * stream (a Cluster client: the stream's slot node), and the billing report
 * read back through the config.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateApiKey } from '../../src/auth/api-key-format.js';
import { runUsage } from '../../src/cli/usage.js';
import { RedisCluster } from '../helpers/redis-cluster.js';
import { spawnProxy, startUpstream, writeConfig, withTestDefaults, type SpawnedProxy, type Upstream } from '../helpers/servers.js';

const key = generateApiKey({ env: 'live', id: 'ak_cl' });
const ADMIN_TOKEN = 'cluster-test-admin-token-0123456789';
const STREAM = 'tg:cluster-usage';

const cluster = new RedisCluster();
let upstream: Upstream;
const proxies: SpawnedProxy[] = [];

beforeAll(async () => {
  await cluster.start();
  upstream = await startUpstream();
}, 60_000);
afterAll(async () => {
  await Promise.all(proxies.map((p) => p.stop()));
  await upstream.close();
  await cluster.stop();
});

function config(spoolDir: string): string {
  return `admin: { host: 127.0.0.1, port: 0, token: ${ADMIN_TOKEN} }
store:
  redis: [${cluster.urls.join(', ')}]
  failureMode: closed
  commandTimeoutMs: 500
usage:
  spoolDir: ${spoolDir}
  sinks: [{ type: redis-stream, stream: "${STREAM}", flushMs: 20 }]
plans:
  small: { rate: { perSecond: 0.01, burst: 4 }, quota: { daily: 100 } }
tenants: [{ id: acme, plan: small }]
apiKeys:
  - { id: ak_cl, tenant: acme, hash: "${key.hash}", scopes: ["*"] }
routes:
  - { name: api, match: { pathPrefix: / }, upstream: "${upstream.url}", auth: [apiKey] }
`;
}

const call = (p: SpawnedProxy, k = key.key) => fetch(`${p.url}/x`, { headers: { 'x-api-key': k } });

describe('store.redis as a Redis Cluster node list', () => {
  it('two proxies share the limits, the admin registry and the usage stream', async () => {
    const spool = () => join(mkdtempSync(join(tmpdir(), 'tg-cluster-spool-')), 'spool');
    const file = writeConfig(withTestDefaults(config(spool())));
    const [a, b] = [await spawnProxy('', {}, file), await spawnProxy('', {}, writeConfig(withTestDefaults(config(spool()))))];
    proxies.push(a, b);
    for (const p of [a, b]) expect((await fetch(`${p.adminUrl}/readyz`)).status).toBe(200);

    // One bucket of 4 across both: alternating, the fifth and sixth are refused.
    const before = upstream.requests.length;
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) {
      const res = await call(i % 2 === 0 ? a : b);
      statuses.push(res.status);
      if (res.status === 429) expect((await res.json()).error.code).toBe('rate_limited');
      else await res.text();
    }
    expect(statuses).toEqual([200, 200, 200, 200, 429, 429]);
    expect(upstream.requests.length - before).toBe(4);

    // A tenant and key made on one proxy work on the other within a second.
    const admin = (path: string, body: unknown) =>
      fetch(`${a.adminUrl}${path}`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    expect((await admin('/admin/tenants', { id: 'globex', plan: 'small' })).status).toBe(201);
    const created = await admin('/admin/tenants/globex/keys', { scopes: ['*'] });
    expect(created.status).toBe(201);
    const { key: dynamicKey } = (await created.json()) as { key: string };
    const deadline = Date.now() + 1000;
    let status = 0;
    while (Date.now() < deadline && (status = (await call(b, dynamicKey)).status) !== 200) await new Promise((r) => setTimeout(r, 50));
    expect(status).toBe(200);

    // Every request's usage event is in the stream, whichever proxy took it.
    const client = new Cluster(cluster.nodes.map((n) => ({ host: '127.0.0.1', port: n.port })));
    try {
      const until = Date.now() + 5000;
      while (Date.now() < until && (await client.xlen(STREAM)) < 9) await new Promise((r) => setTimeout(r, 50));
      const events = (await client.xrange(STREAM, '-', '+')).map(([, f]) => JSON.parse(f[1]!) as { type: string; tenantId?: string; outcome?: string });
      const requests = events.filter((e) => e.type === 'request').map((e) => `${e.tenantId} ${e.outcome}`);
      expect(requests.sort()).toEqual([...Array(4).fill('acme forwarded'), 'acme rate_limited', 'acme rate_limited', 'globex forwarded'].sort());
      expect(events.filter((e) => e.type === 'audit')).toHaveLength(2);
    } finally {
      client.disconnect();
    }

    // The report reads the same stream through the config's node list.
    const today = new Date().toISOString().slice(0, 10);
    let out = '';
    let errors = '';
    const code = await runUsage(['report', '-c', file, '--from', today, '--to', today, '--json'], { stdout: (t) => void (out += t), stderr: (t) => void (errors += t) });
    expect(errors).toBe('');
    expect(code).toBe(0);
    const { tenants } = JSON.parse(out) as { tenants: { tenant: string; requests: number; rejections: number }[] };
    expect(tenants.map((t) => `${t.tenant} ${t.requests} ${t.rejections}`)).toEqual(['acme 6 2', 'globex 1 0']);
  }, 30_000);
});
