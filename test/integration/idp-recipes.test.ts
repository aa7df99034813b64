/**
 * The per-IdP recipes of docs/auth.md, read from the doc itself, each run
 * through a real proxy with that provider's token shape minted with jose:
 * Keycloak, Azure AD (multi-tenant, {tid}), Auth0, Cognito, Okta and a
 * generic OpenID provider with discovery. Only the key location is swapped
 * for a local JWKS server. Every refusal asserts status, code, reason and
 * that the upstream received nothing.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { JwksServer, mint, newSigningKey, type SigningKey } from '../helpers/jwks-server.js';
import { ROOT, startProxy, startUpstream, type RunningProxy, type Upstream } from '../helpers/servers.js';

const AZURE_TID = '9188040d-6c67-4c5b-b112-36a304b66dad';

interface Recipe {
  jwt: { issuers: Record<string, unknown>[] };
  roles?: Record<string, string[]>;
  scopes?: Record<string, string[]>;
}

/** The YAML block under `<!-- recipe: name -->` in docs/auth.md. */
function recipe(name: string): Recipe {
  const doc = readFileSync(join(ROOT, 'docs/auth.md'), 'utf8');
  const m = new RegExp(`<!-- recipe: ${name} -->\\s*\`\`\`yaml\\n([\\s\\S]*?)\`\`\``).exec(doc);
  if (m === null) throw new Error(`docs/auth.md has no recipe "${name}"`);
  return parse(m[1]!) as Recipe;
}

let upstream: Upstream;
let jwks: JwksServer;
let rs: SigningKey, es: SigningKey, ed: SigningKey;
const now = () => Math.floor(Date.now() / 1000);

beforeAll(async () => {
  upstream = await startUpstream();
  [rs, es, ed] = await Promise.all([newSigningKey('RS256', 'rs-1'), newSigningKey('ES256', 'es-1'), newSigningKey('Ed25519', 'ed-1')]);
  jwks = await JwksServer.start([rs, es, ed]);
});
afterAll(async () => {
  await upstream.close();
  await jwks.down();
});
beforeEach(() => {
  upstream.requests.length = 0;
});

/** A proxy with the recipe's jwt/roles/scopes, its key location pointed at the local JWKS server. */
async function proxyFor(name: string): Promise<RunningProxy> {
  const r = recipe(name);
  const issuer = r.jwt.issuers[0]!;
  if (issuer.discovery === true) {
    issuer.issuer = jwks.origin;
    jwks.discoveryIssuer = jwks.origin;
  } else {
    issuer.jwksUri = jwks.url;
  }
  return startProxy(
    stringify({
      plans: { p: { rate: null } },
      tenants: [{ id: 'acme', plan: 'p' }, { id: AZURE_TID, plan: 'p' }],
      ...r,
      routes: [{ name: 'orders', match: { pathPrefix: '/orders' }, upstream: upstream.url, auth: ['jwt'], permission: { GET: 'orders:read', POST: 'orders:write', DELETE: 'orders:delete' } }],
    }),
  );
}

const call = (p: RunningProxy, token: string, method = 'GET') => fetch(`${p.url}/orders/1`, { method, headers: { authorization: `Bearer ${token}` } });

async function metric(p: RunningProxy, pattern: string): Promise<number> {
  const text = await (await fetch(`${p.adminUrl}/metrics`)).text();
  const escaped = pattern.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return Number(new RegExp(`${escaped} (\\d+)`).exec(text)?.[1] ?? 0);
}
const failures = (p: RunningProxy, reason: string) => metric(p, `tenantgate_auth_failures_total{route="orders",reason="${reason}"}`);

async function expectAdmitted(res: Response): Promise<Record<string, string | string[] | undefined>> {
  expect(res.status).toBe(200);
  await res.body?.cancel();
  return upstream.requests.at(-1)!.headers;
}

async function expectRefused(p: RunningProxy, make: () => Promise<Response>, status: number, code: string, reason?: string) {
  const before = reason === undefined ? 0 : await failures(p, reason);
  const res = await make();
  expect(res.status).toBe(status);
  expect(((await res.json()) as { error: { code: string } }).error.code).toBe(code);
  expect(upstream.requests).toHaveLength(0);
  if (reason !== undefined) expect(await failures(p, reason)).toBe(before + 1);
}

describe('Keycloak', () => {
  let p: RunningProxy;
  beforeAll(async () => (p = await proxyFor('keycloak')));
  afterAll(() => p.close());
  const ISS = 'https://keycloak.example.com/realms/acme';
  const token = (clientRoles: string[], extra: Record<string, unknown> = {}) =>
    mint(
      rs,
      {
        jti: 'b5f4c1f0',
        typ: 'Bearer',
        azp: 'web-app',
        sub: 'f5d9e1d2-6a3b-4c55-9a0e-3c1f5b7c2d11',
        acr: '1',
        realm_access: { roles: ['offline_access', 'uma_authorization', 'default-roles-acme'] },
        resource_access: { 'api.example.com': { roles: clientRoles }, account: { roles: ['manage-account', 'orders-admin'] } },
        scope: 'openid profile email',
        email_verified: true,
        preferred_username: 'jdoe',
        tenant_id: 'acme',
        ...extra,
      },
      { iss: ISS, aud: ['api.example.com', 'account'], exp: now() + 300, iat: now() },
    );

  it('client roles under a client id with dots grant permissions; realm roles are kept', async () => {
    const h = await expectAdmitted(await call(p, await token(['orders-viewer'])));
    expect(h['x-tenant-id']).toBe('acme');
    expect(h['x-subject']).toBe('jdoe');
    expect(h['x-roles']).toBe('offline_access uma_authorization default-roles-acme orders-viewer');
    await expectAdmitted(await call(p, await token(['orders-admin']), 'POST'));
  });

  it("a role of another client (account's orders-admin) grants nothing here → 403", async () => {
    upstream.requests.length = 0;
    await expectRefused(p, async () => call(p, await token(['orders-viewer']), 'POST'), 403, 'forbidden');
  });

  it('a token for another audience → 401 wrong_audience', async () => {
    await expectRefused(p, async () => call(p, await mint(rs, { tenant_id: 'acme' }, { iss: ISS, aud: 'account', exp: now() + 300 })), 401, 'unauthenticated', 'wrong_audience');
  });
});

describe('Azure AD multi-tenant', () => {
  let p: RunningProxy;
  beforeAll(async () => (p = await proxyFor('azure')));
  afterAll(() => p.close());
  const token = (claims: Record<string, unknown>, tid = AZURE_TID, iss = `https://login.microsoftonline.com/${tid}/v2.0`) =>
    mint(
      rs,
      {
        aio: 'AWQAm/8TAAAA',
        azp: '6e74172b-be56-4843-9ff4-e66a39bb12e3',
        azpacr: '0',
        name: 'Jane Doe',
        oid: '690222be-ff1a-4d56-abd1-7e4f7d38e474',
        preferred_username: 'jane@contoso.example',
        rh: '0.AAAA',
        sub: 'MF4f-ggWMEji12KynJUNQZphaUTvLcQug5jdF2nl01Q',
        tid,
        uti: 'fqiBqXLPj0eQa82S-IYFAA',
        ver: '2.0',
        ...claims,
      },
      { iss, aud: 'api://orders-api', exp: now() + 300, iat: now(), nbf: now() - 5 },
    );

  it('scp "orders.read" grants orders:read through scopes:; app role Orders.Admin grants writes', async () => {
    const h = await expectAdmitted(await call(p, await token({ scp: 'orders.read' })));
    expect(h['x-tenant-id']).toBe(AZURE_TID);
    expect(h['x-subject']).toBe('690222be-ff1a-4d56-abd1-7e4f7d38e474');
    expect(h['x-scopes']).toBe('orders.read');
    upstream.requests.length = 0;
    await expectRefused(p, async () => call(p, await token({ scp: 'orders.read' }), 'POST'), 403, 'forbidden');
    await expectAdmitted(await call(p, await token({ scp: 'orders.read', roles: ['Orders.Admin'] }), 'POST'));
  });

  it.each([65, 200])('a user in %i groups (200: the most Azure puts in a token) is admitted, the groups forwarded as roles', async (n) => {
    const groups = Array.from({ length: n }, (_, i) => `00000000-0000-0000-0000-${String(i).padStart(12, '0')}`);
    const h = await expectAdmitted(await call(p, await token({ scp: 'orders.read', groups })));
    expect((h['x-roles'] as string).split(' ')).toHaveLength(n);
  });

  it('another directory of the same app: the same block verifies it; not a configured tenant → 403 unknown_tenant', async () => {
    await expectRefused(p, async () => call(p, await token({ scp: 'orders.read' }, '72f988bf-86f1-41af-91ab-2d7cd011db47')), 403, 'unknown_tenant');
  });

  it.each([
    ['a v1 token (sts.windows.net issuer)', () => token({ scp: 'orders.read' }, AZURE_TID, `https://sts.windows.net/${AZURE_TID}/`), 'unknown_issuer'],
    ['an issuer with two segments where {tid} is', () => token({ scp: 'orders.read' }, AZURE_TID, `https://login.microsoftonline.com/${AZURE_TID}/x/v2.0`), 'unknown_issuer'],
    ['the literal template as iss', () => token({ scp: 'orders.read' }, AZURE_TID, 'https://login.microsoftonline.com/{tid}/v2.0'), 'unknown_issuer'],
    ['ver 1.0 under the v2 issuer', () => token({ scp: 'orders.read', ver: '1.0' }), 'required_claim_mismatch'],
  ])('%s → 401 (%s)', async (_n, make, reason) => {
    await expectRefused(p, async () => call(p, await make()), 401, 'unauthenticated', reason);
  });
});

describe('Auth0', () => {
  let p: RunningProxy;
  beforeAll(async () => (p = await proxyFor('auth0')));
  afterAll(() => p.close());
  const token = (claims: Record<string, unknown>) =>
    mint(
      rs,
      {
        sub: 'auth0|64b7f0c2e1a2b3c4d5e6f7a8',
        azp: 'AbCdEfGhIjKlMnOpQrStUvWxYz012345',
        scope: 'openid profile email',
        'https://example.com/app_metadata': { tenant: 'acme', plan: 'pro' },
        ...claims,
      },
      { iss: 'https://acme.eu.auth0.com/', aud: ['https://api.example.com', 'https://acme.eu.auth0.com/userinfo'], exp: now() + 300, iat: now() },
    );

  it('the tenant from inside a namespaced object; permissions grant, namespaced roles map', async () => {
    const h = await expectAdmitted(await call(p, await token({ permissions: ['orders:read', 'orders:write'] }), 'POST'));
    expect(h['x-tenant-id']).toBe('acme');
    expect(h['x-scopes']).toBe('openid profile email orders:read orders:write');
    await expectAdmitted(await call(p, await token({ 'https://example.com/roles': ['admin'] }), 'DELETE'));
  });

  it('without the permission or role → 403; without the namespaced tenant → 401 missing_tenant_claim', async () => {
    await expectRefused(p, async () => call(p, await token({ permissions: ['orders:read'] }), 'DELETE'), 403, 'forbidden');
    await expectRefused(p, async () => call(p, await token({ 'https://example.com/app_metadata': { plan: 'pro' } })), 401, 'unauthenticated', 'missing_tenant_claim');
  });
});

describe('Cognito', () => {
  let p: RunningProxy;
  beforeAll(async () => (p = await proxyFor('cognito')));
  afterAll(() => p.close());
  const ISS = 'https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123';
  const CLIENT = '4k2example0clientid0abc';
  const common = { sub: 'a1b2c3d4-5678-90ab-cdef-111122223333', 'cognito:groups': ['orders-team'], 'custom:tenant_id': 'acme', auth_time: now(), jti: 'e1', origin_jti: 'o1', event_id: 'ev1' };
  const accessToken = (extra: Record<string, unknown> = {}) =>
    mint(rs, { ...common, version: 2, client_id: CLIENT, token_use: 'access', scope: 'orders-api/read aws.cognito.signin.user.admin', username: 'jdoe', ...extra }, { iss: ISS, exp: now() + 300, iat: now() });

  it('an access token (no aud, client_id) is admitted; its resource-server scope maps to orders:read', async () => {
    const h = await expectAdmitted(await call(p, await accessToken()));
    expect(h['x-tenant-id']).toBe('acme');
    expect(h['x-subject']).toBe('jdoe');
    expect(h['x-roles']).toBe('orders-team');
    expect(h['x-scopes']).toBe('orders-api/read aws.cognito.signin.user.admin');
  });

  it('an ID token of the same pool and client → 401 required_claim_mismatch', async () => {
    const idToken = await mint(rs, { ...common, 'cognito:username': 'jdoe', email: 'jdoe@example.com', token_use: 'id' }, { iss: ISS, aud: CLIENT, exp: now() + 300, iat: now() });
    await expectRefused(p, () => call(p, idToken), 401, 'unauthenticated', 'required_claim_mismatch');
  });

  it('an access token of another app client → 401 wrong_client', async () => {
    await expectRefused(p, async () => call(p, await accessToken({ client_id: 'someotherclient' })), 401, 'unauthenticated', 'wrong_client');
  });
});

describe('Okta', () => {
  let p: RunningProxy;
  beforeAll(async () => (p = await proxyFor('okta')));
  afterAll(() => p.close());
  const token = (groups: unknown[]) =>
    mint(
      rs,
      { ver: 1, jti: 'AT.x', cid: '0oa1example', uid: '00u1example', scp: ['orders.read', 'openid'], auth_time: now(), sub: 'jdoe@example.com', groups, tenant: 'acme' },
      { iss: 'https://acme.okta.com/oauth2/default', aud: 'api://default', exp: now() + 300, iat: now() },
    );

  it('a group with a space is dropped and counted; the other groups still grant', async () => {
    const dropped = 'tenantgate_jwt_claim_items_dropped_total{issuer="https://acme.okta.com/oauth2/default"}';
    const before = await metric(p, dropped);
    const h = await expectAdmitted(await call(p, await token(['Everyone', 'Sales Team', 'orders-admins']), 'POST'));
    expect(h['x-roles']).toBe('Everyone orders-admins');
    expect(h['x-scopes']).toBe('orders.read openid');
    expect(await metric(p, dropped)).toBe(before + 1);
  });

  it('more groups than maxClaimItems (256) → 401 unsafe_claim', async () => {
    await expectRefused(p, async () => call(p, await token(Array.from({ length: 257 }, (_, i) => `g${i}`))), 401, 'unauthenticated', 'unsafe_claim');
  });
});

describe('generic OpenID provider with discovery', () => {
  let p: RunningProxy;
  beforeAll(async () => (p = await proxyFor('oidc')));
  afterAll(() => p.close());

  it('ES256 and Ed25519 tokens verify with keys found through discovery (one document fetch)', async () => {
    const before = jwks.discoveryFetches;
    for (const key of [es, ed]) {
      const h = await expectAdmitted(await call(p, await mint(key, { tenant_id: 'acme', sub: 'svc', scope: 'orders.read' }, { iss: jwks.origin, aud: 'https://api.example.com', exp: now() + 300 })));
      expect(h['x-tenant-id']).toBe('acme');
    }
    expect(jwks.discoveryFetches - before).toBe(1);
  });

  it('a token naming another issuer → 401 unknown_issuer', async () => {
    await expectRefused(p, async () => call(p, await mint(es, { tenant_id: 'acme' }, { iss: `${jwks.origin}/other`, aud: 'https://api.example.com', exp: now() + 300 })), 401, 'unauthenticated', 'unknown_issuer');
  });
});
