/**
 * `store.redis: rediss://…` with `store.tls` against a real redis-server that
 * serves TLS only and requires a client certificate: the limit store, the
 * admin registry and the redis-stream usage sink all connect through it.
 * The server's certificate is verified: trusting another CA, or checking the
 * wrong name, leaves the store down (503 with failureMode closed). Bad TLS
 * files refuse the config with the field's path and line.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { generateApiKey } from '../../src/auth/api-key-format.js';
import { runUsage } from '../../src/cli/usage.js';
import { ConfigError, loadConfig } from '../../src/config/load.js';
import { makeTlsFiles, TlsRedisServer } from '../helpers/redis-tls.js';
import { startProxy, startUpstream, writeConfig, withTestDefaults, type RunningProxy, type Upstream } from '../helpers/servers.js';

const key = generateApiKey({ env: 'live', id: 'ak_tls' });
const ADMIN_TOKEN = 'tls-test-admin-token-0123456789';

let redis: TlsRedisServer;
let upstream: Upstream;
let proxy: RunningProxy | null = null;

beforeAll(async () => {
  redis = new TlsRedisServer(await makeTlsFiles());
  await redis.start();
  upstream = await startUpstream();
}, 30_000);
afterEach(async () => {
  await proxy?.close();
  proxy = null;
});
afterAll(async () => {
  await upstream.close();
  await redis.stop();
});

function config(tls: string, stream = 'tg:tls-usage'): string {
  return `admin: { host: 127.0.0.1, port: 0, token: ${ADMIN_TOKEN} }
store:
  redis: ${redis.url}
  failureMode: closed
  keyPrefix: "tls${Math.random().toString(36).slice(2, 8)}:"
  tls: ${tls}
usage:
  spoolDir: ${join(redis.files.dir, `spool-${stream.replace(/\W/g, '')}`)}
  sinks: [{ type: redis-stream, stream: "${stream}", flushMs: 20 }]
plans:
  small: { rate: { perSecond: 0.01, burst: 3 } }
tenants: [{ id: acme, plan: small }]
apiKeys:
  - { id: ak_tls, tenant: acme, hash: "${key.hash}", scopes: ["*"] }
routes:
  - { name: api, match: { pathPrefix: / }, upstream: "${upstream.url}", auth: [apiKey] }
`;
}

const mutualTls = () => `{ ca: ${redis.files.ca}, cert: ${redis.files.clientCert}, key: ${redis.files.clientKey} }`;

/** A client of the test's own, over TLS with the client certificate. */
function testClient(): Redis {
  const f = redis.files;
  return new Redis(redis.url, { tls: { ca: readFileSync(f.ca), cert: readFileSync(f.clientCert), key: readFileSync(f.clientKey) } });
}

const call = (k = key.key) => fetch(`${proxy!.url}/x`, { headers: { 'x-api-key': k } });

describe('Redis over TLS (rediss:// + store.tls)', () => {
  it('limits, the admin registry and usage events all go through a mutual-TLS Redis', async () => {
    proxy = await startProxy(config(mutualTls(), 'tg:tls-usage-1'));
    expect((await fetch(`${proxy.adminUrl}/readyz`)).status).toBe(200);
    expect(await (await fetch(`${proxy.adminUrl}/metrics`)).text()).toMatch(/^tenantgate_store_up 1$/m);

    const before = upstream.requests.length;
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) {
      const res = await call();
      statuses.push(res.status);
      if (res.status === 429) expect((await res.json()).error.code).toBe('rate_limited');
      else await res.text();
    }
    expect(statuses).toEqual([200, 200, 200, 429]);
    expect(upstream.requests.length - before).toBe(3);

    // A tenant and key made through the admin API live in the TLS Redis, and the key works at once.
    const admin = (path: string, body: unknown) =>
      fetch(`${proxy!.adminUrl}${path}`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    expect((await admin('/admin/tenants', { id: 'globex', plan: 'small' })).status).toBe(201);
    const created = await admin('/admin/tenants/globex/keys', { scopes: ['*'] });
    expect(created.status).toBe(201);
    const { key: dynamicKey } = (await created.json()) as { key: string };
    const res = await call(dynamicKey);
    expect(res.status).toBe(200);
    expect(upstream.requests.at(-1)!.headers['x-tenant-id']).toBe('globex');

    // One usage event per request (and an audit event per admin change), in the stream on the TLS server.
    const client = testClient();
    try {
      const deadline = Date.now() + 5000;
      while (Date.now() < deadline && (await client.xlen('tg:tls-usage-1')) < 7) await new Promise((r) => setTimeout(r, 50));
      type Event = { type: string; tenantId?: string; outcome?: string; action?: string };
      const events = (await client.xrange('tg:tls-usage-1', '-', '+')).map(([, fields]) => JSON.parse(fields[1]!) as Event);
      const seen = events.map((e) => (e.type === 'request' ? `${e.tenantId} ${e.outcome}` : `${e.type} ${e.action}`));
      expect(seen).toEqual(['acme forwarded', 'acme forwarded', 'acme forwarded', 'acme rate_limited', 'audit tenant.create', 'audit key.create', 'globex forwarded']);
    } finally {
      client.disconnect();
    }

    // The billing engineer's report, from the proxy's own config: its sink, its Redis URL, its store.tls.
    const today = new Date().toISOString().slice(0, 10);
    let out = '';
    let errors = '';
    const code = await runUsage(['report', '-c', proxy.configFile, '--from', today, '--to', today, '--json'], { stdout: (t) => void (out += t), stderr: (t) => void (errors += t) });
    expect(errors).toBe('');
    expect(code).toBe(0);
    const { tenants } = JSON.parse(out) as { tenants: { tenant: string; requests: number; rejections: number }[] };
    expect(tenants.map((t) => `${t.tenant} ${t.requests} ${t.rejections}`)).toEqual(['acme 4 1', 'globex 1 0']);
  });

  it.each([
    ['trusting another CA', () => `{ ca: ${redis.files.otherCa}, cert: ${redis.files.clientCert}, key: ${redis.files.clientKey} }`],
    ['checking another name', () => `{ ca: ${redis.files.ca}, cert: ${redis.files.clientCert}, key: ${redis.files.clientKey}, servername: redis.example.com }`],
    ['Node\'s bundled CAs only (no ca)', () => `{ cert: ${redis.files.clientCert}, key: ${redis.files.clientKey} }`],
    ['no client certificate', () => `{ ca: ${redis.files.ca} }`],
  ])('%s: the store stays down → 503 store_unavailable, nothing forwarded, not ready', async (_name, tls) => {
    proxy = await startProxy(config(tls()));
    const before = upstream.requests.length;
    const res = await call();
    expect(res.status).toBe(503);
    expect((await res.json()).error.code).toBe('store_unavailable');
    expect(upstream.requests.length).toBe(before);
    expect((await fetch(`${proxy.adminUrl}/readyz`)).status).toBe(503);
    expect(await (await fetch(`${proxy.adminUrl}/metrics`)).text()).toMatch(/^tenantgate_store_up 0$/m);
  }, 15_000);
});

describe('store.tls files are checked when the config loads', () => {
  async function problems(tls: string): Promise<{ path: string; line?: number; message: string }[]> {
    const file = writeConfig(withTestDefaults(config(tls)));
    try {
      await loadConfig(file, {});
    } catch (err) {
      if (err instanceof ConfigError) return err.problems;
      throw err;
    }
    throw new Error('unexpectedly valid');
  }

  it('a missing file: its field, its line, the error code — never the file content', async () => {
    expect(await problems(`{ ca: ${join(redis.files.dir, 'nope.crt')} }`)).toEqual([{ file: expect.any(String), path: 'store.tls.ca', line: 7, message: expect.stringMatching(/^cannot read .*nope\.crt: ENOENT$/) }]);
  });

  it('a CA file that is not a certificate (a private key)', async () => {
    const [p] = await problems(`{ ca: ${redis.files.clientKey} }`);
    expect(p).toMatchObject({ path: 'store.tls.ca', line: 7 });
    expect(p!.message).toMatch(/^is not a PEM certificate/);
    expect(p!.message).not.toContain('PRIVATE KEY');
  });

  it('a key that does not belong to the certificate', async () => {
    const [p] = await problems(`{ cert: ${redis.files.clientCert}, key: ${redis.files.serverKey} }`);
    expect(p).toMatchObject({ path: 'store.tls.key', line: 7 });
    expect(p!.message).toMatch(/^does not match cert/);
  });

  it('paths are relative to the config file', async () => {
    const file = writeConfig(withTestDefaults(config('{ ca: ca.crt }')));
    writeFileSync(join(file, '..', 'ca.crt'), readFileSync(redis.files.ca));
    const loaded = await loadConfig(file, {});
    expect(loaded.redisTls?.ca).toEqual([readFileSync(redis.files.ca, 'utf8')]);
  });
});
