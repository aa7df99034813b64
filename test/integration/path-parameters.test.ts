/**
 * A path is matched the way a servlet container dispatches it: `;` parameters
 * never move a request to a less protected route, `%3B` is refused, and with
 * `routing.caseInsensitive` no spelling of a prefix escapes its route.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateApiKey } from '../../src/auth/api-key-format.js';
import { errorCodeOf, send } from '../helpers/fwd-net.js';
import { startProxy, startUpstream, type RunningProxy, type Upstream } from '../helpers/servers.js';

const reader = generateApiKey({ env: 'live', id: 'ak_reader' });
const secret = generateApiKey({ env: 'live', id: 'ak_secret' });

function config(upstream: string, extra = ''): string {
  return `${extra}
tenants: [{ id: acme, plan: free }]
plans: { free: {} }
apiKeys:
  - { id: ak_reader, tenant: acme, hash: "${reader.hash}", scopes: [orders:read] }
  - { id: ak_secret, tenant: acme, hash: "${secret.hash}", scopes: [orders:read, secret:read] }
routes:
  - { name: secret, match: { pathPrefix: /orders/secret }, upstream: "${upstream}", auth: [apiKey], permission: secret:read }
  - { name: orders, match: { pathPrefix: /orders }, upstream: "${upstream}", auth: [apiKey], permission: orders:read }
  - { name: api, match: { pathPrefix: /api }, upstream: "${upstream}/v1", auth: [apiKey], stripPrefix: true }
  - { name: public, match: { pathPrefix: / }, upstream: "${upstream}", auth: [none] }
`;
}

let upstream: Upstream;
beforeAll(async () => {
  upstream = await startUpstream();
});
afterAll(async () => upstream.close());

const get = (proxy: RunningProxy, path: string, key = reader.key) => send(proxy.port, { path, headers: { 'x-api-key': key } });

describe('`;` path parameters and %3B', () => {
  let proxy: RunningProxy;
  beforeAll(async () => {
    proxy = await startProxy(config(upstream.url));
  });
  afterAll(async () => proxy.close());

  it.each(['/orders/secret;x', '/orders/secret;jsessionid=0/x', '/orders;x/secret', '/orders;a=1/secret;b=2/y', '/orders/secret;'])(
    '%s is the secret route: 403 forbidden without secret:read, nothing forwarded',
    async (path) => {
      const before = upstream.requests.length;
      const res = await get(proxy, path);
      expect(res.status).toBe(403);
      expect(errorCodeOf(res)).toBe('forbidden');
      expect(upstream.requests.length).toBe(before);
    },
  );

  it('with secret:read the same path is forwarded as sent, parameters included', async () => {
    const res = await get(proxy, '/orders/secret;jsessionid=0/x?q=1', secret.key);
    expect(res.status).toBe(200);
    expect(upstream.requests.at(-1)!.url).toBe('/orders/secret;jsessionid=0/x?q=1');
  });

  it('a parameter on a route the key may use is forwarded as sent', async () => {
    expect((await get(proxy, '/orders/7;v=2')).status).toBe(200);
    expect(upstream.requests.at(-1)!.url).toBe('/orders/7;v=2');
  });

  it('stripPrefix drops the matched segments, parameters and all', async () => {
    expect((await get(proxy, '/api;v=1/items;x/3')).status).toBe(200);
    expect(upstream.requests.at(-1)!.url).toBe('/v1/items;x/3');
  });

  it.each(['/orders/secret%3Bx', '/orders/secret%3bjsessionid=0', '/orders%3B/secret', '/public/a%3Bb'])('%s: 400 bad_request, nothing forwarded', async (path) => {
    const before = upstream.requests.length;
    const res = await get(proxy, path);
    expect(res.status).toBe(400);
    expect(errorCodeOf(res)).toBe('bad_request');
    expect(upstream.requests.length).toBe(before);
  });
});

describe('routing.caseInsensitive (upstreams that fold case)', () => {
  let proxy: RunningProxy;
  beforeAll(async () => {
    proxy = await startProxy(config(upstream.url, 'routing: { caseInsensitive: true }'));
  });
  afterAll(async () => proxy.close());

  it.each(['/ORDERS/SECRET', '/Orders/Secret;x/1', '/orders/SECRET'])('%s is the secret route: 403 forbidden, nothing forwarded', async (path) => {
    const before = upstream.requests.length;
    const res = await get(proxy, path);
    expect(res.status).toBe(403);
    expect(errorCodeOf(res)).toBe('forbidden');
    expect(upstream.requests.length).toBe(before);
  });

  it('is forwarded in the case it was sent, prefix stripped by segments', async () => {
    expect((await get(proxy, '/ORDERS/7', secret.key)).status).toBe(200);
    expect(upstream.requests.at(-1)!.url).toBe('/ORDERS/7');
    expect((await get(proxy, '/API/Items')).status).toBe(200);
    expect(upstream.requests.at(-1)!.url).toBe('/v1/Items');
  });
});
