/**
 * Stage 5, authorize (src/stages/authorize.ts), after stages 1–4 on an
 * in-memory context: the route's permission per method (HEAD takes GET's),
 * an any-method permission, no permission; API key scopes (exact, `orders:*`,
 * `*`); JWT scopes and JWT roles mapped by `roles:` (wildcard grants
 * included); a missing permission is 403 forbidden / missing_permission.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { generateApiKey } from '../../../src/auth/api-key-format.js';
import type { CompiledConfig } from '../../../src/config/compile.js';
import { authenticate } from '../../../src/stages/authenticate.js';
import { authorize } from '../../../src/stages/authorize.js';
import { route } from '../../../src/stages/route.js';
import { sanitize } from '../../../src/stages/sanitize.js';
import { resolveTenant } from '../../../src/stages/tenant.js';
import { compileConfig, HS256_ISSUER_YAML, hs256Token, refusal, requestContext, runStages } from '../../helpers/stage-context.js';

const KEYS = {
  reader: generateApiKey({ env: 'live', id: 'ak_reader' }),
  ordersAll: generateApiKey({ env: 'live', id: 'ak_orders_all' }),
  root: generateApiKey({ env: 'live', id: 'ak_root' }),
  none: generateApiKey({ env: 'live', id: 'ak_none' }),
};
const FORBIDDEN = { status: 403, code: 'forbidden', reason: 'missing_permission' };

let config: CompiledConfig;

beforeAll(async () => {
  config = await compileConfig(`
plans: { basic: {} }
tenants: [{ id: acme, plan: basic }]
apiKeys:
  - { id: ak_reader, tenant: acme, hash: "${KEYS.reader.hash}", scopes: [orders:read] }
  - { id: ak_orders_all, tenant: acme, hash: "${KEYS.ordersAll.hash}", scopes: ["orders:*"] }
  - { id: ak_root, tenant: acme, hash: "${KEYS.root.hash}", scopes: ["*"] }
  - { id: ak_none, tenant: acme, hash: "${KEYS.none.hash}" }
${HS256_ISSUER_YAML}
roles:
  ops: ["orders:*"]
  viewer: [orders:read]
routes:
  - name: orders
    match: { pathPrefix: /orders, methods: [GET, POST, DELETE] }
    upstream: "http://127.0.0.1:3000"
    permission: { GET: orders:read, POST: orders:write, DELETE: orders:admin:delete }
  - { name: reports, match: { pathPrefix: /reports }, upstream: "http://127.0.0.1:3000", permission: reports:read }
  - { name: open, match: { pathPrefix: /open }, upstream: "http://127.0.0.1:3000" }
`);
});

async function authorizeAs(credential: string, method: string, url: string) {
  const ctx = requestContext(config, { method, url, headers: [['Authorization', `Bearer ${credential}`]] });
  const rejection = await runStages(ctx, [route, sanitize, authenticate, resolveTenant, authorize]);
  return { ctx, refused: refusal(rejection) };
}

const jwt = (claims: { roles?: string[]; scope?: string }) => hs256Token({ tid: 'acme', sub: 'user-1', ...claims });

describe('permission by method', () => {
  it.each([
    ['GET', '/orders', undefined],
    ['HEAD', '/orders', undefined], // HEAD needs what GET needs
    ['POST', '/orders', FORBIDDEN],
    ['DELETE', '/orders/7', FORBIDDEN],
    ['GET', '/reports', FORBIDDEN], // any-method permission reports:read
  ])('a key scoped orders:read: %s %s', async (method, url, expected) => {
    const { ctx, refused } = await authorizeAs(KEYS.reader.key, method, url);
    expect(refused).toEqual(expected);
    expect(ctx.principal!.scopes).toEqual(['orders:read']);
    expect(ctx.tenant!.id).toBe('acme'); // earlier stages ran; authorize changes nothing on the context
  });

  it('a route with no permission admits any authenticated caller, even one with no scopes', async () => {
    for (const method of ['GET', 'POST', 'DELETE']) {
      const { ctx, refused } = await authorizeAs(KEYS.none.key, method, '/open/x');
      expect(refused).toBeUndefined();
      expect(ctx.principal!.scopes).toEqual([]);
    }
  });

  it('a key with no scopes is refused wherever a permission is needed', async () => {
    expect((await authorizeAs(KEYS.none.key, 'GET', '/orders')).refused).toEqual(FORBIDDEN);
    expect((await authorizeAs(KEYS.none.key, 'GET', '/reports')).refused).toEqual(FORBIDDEN);
  });
});

describe('wildcard scopes', () => {
  it('orders:* grants every orders permission, nested ones too, and nothing else', async () => {
    for (const [method, url] of [['GET', '/orders'], ['POST', '/orders'], ['DELETE', '/orders/7']]) {
      expect((await authorizeAs(KEYS.ordersAll.key, method!, url!)).refused).toBeUndefined();
    }
    expect((await authorizeAs(KEYS.ordersAll.key, 'GET', '/reports')).refused).toEqual(FORBIDDEN);
  });

  it('* grants everything', async () => {
    for (const [method, url] of [['GET', '/orders'], ['POST', '/orders'], ['DELETE', '/orders/7'], ['GET', '/reports']]) {
      expect((await authorizeAs(KEYS.root.key, method!, url!)).refused).toBeUndefined();
    }
  });
});

describe('JWT roles and scopes', () => {
  it('role ops (orders:*) grants writes and nested deletes, not reports', async () => {
    const token = await jwt({ roles: ['ops'] });
    expect((await authorizeAs(token, 'POST', '/orders')).refused).toBeUndefined();
    const del = await authorizeAs(token, 'DELETE', '/orders/7');
    expect(del.refused).toBeUndefined();
    expect(del.ctx.principal).toMatchObject({ kind: 'jwt', roles: ['ops'], scopes: [] });
    expect((await authorizeAs(token, 'GET', '/reports')).refused).toEqual(FORBIDDEN);
  });

  it('role viewer reads only; its scopes claim can add what the role lacks', async () => {
    const viewer = await jwt({ roles: ['viewer'] });
    expect((await authorizeAs(viewer, 'GET', '/orders')).refused).toBeUndefined();
    expect((await authorizeAs(viewer, 'POST', '/orders')).refused).toEqual(FORBIDDEN);
    const viewerWithScope = await jwt({ roles: ['viewer'], scope: 'orders:write reports:read' });
    expect((await authorizeAs(viewerWithScope, 'POST', '/orders')).refused).toBeUndefined();
    expect((await authorizeAs(viewerWithScope, 'GET', '/reports')).refused).toBeUndefined();
  });

  it('roles are merged: viewer + ops grants what either grants', async () => {
    const token = await jwt({ roles: ['viewer', 'ops'] });
    expect((await authorizeAs(token, 'DELETE', '/orders/7')).refused).toBeUndefined();
  });

  it('a role the config does not map, or no roles at all → 403 forbidden', async () => {
    expect((await authorizeAs(await jwt({ roles: ['ghost'] }), 'GET', '/orders')).refused).toEqual(FORBIDDEN);
    const bare = await authorizeAs(await jwt({}), 'GET', '/orders');
    expect(bare.refused).toEqual(FORBIDDEN);
    expect(bare.ctx.principal).toMatchObject({ roles: [], scopes: [] });
  });
});
