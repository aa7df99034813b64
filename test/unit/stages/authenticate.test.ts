/**
 * Stage 3, authenticate (src/stages/authenticate.ts), after route and
 * sanitize on an in-memory context: API keys by `Authorization: Bearer` and
 * `X-API-Key`; every refusal is 401 unauthenticated with its precise reason
 * (missing, malformed, unknown, wrong secret, revoked, expired, two
 * credentials, a repeated credential header, a kind the route does not
 * accept); `auth: [none]`; an ES256 JWT verified against an inline JWK, and
 * the principal each credential makes.
 */
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWTPayload } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { generateApiKey } from '../../../src/auth/api-key-format.js';
import type { CompiledConfig } from '../../../src/config/compile.js';
import { authenticate } from '../../../src/stages/authenticate.js';
import { route } from '../../../src/stages/route.js';
import { sanitize } from '../../../src/stages/sanitize.js';
import { compileConfig, refusal, requestContext, runStages } from '../../helpers/stage-context.js';

const live = generateApiKey({ env: 'live', id: 'ak_live' });
const revoked = generateApiKey({ env: 'live', id: 'ak_revoked' });
const expired = generateApiKey({ env: 'live', id: 'ak_expired' });
const ISS = 'https://idp.test/';
const AUD = 'api://orders';

let config: CompiledConfig;
let signingKey: CryptoKey;
let otherKey: CryptoKey;

beforeAll(async () => {
  const pair = await generateKeyPair('ES256');
  signingKey = pair.privateKey;
  otherKey = (await generateKeyPair('ES256')).privateKey;
  const jwk = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256' };
  config = await compileConfig(`
plans: { basic: {} }
tenants: [{ id: acme, plan: basic }]
apiKeys:
  - { id: ak_live, tenant: acme, project: web, hash: "${live.hash}", scopes: [orders:read, orders:write] }
  - { id: ak_revoked, tenant: acme, hash: "${revoked.hash}", revoked: true }
  - { id: ak_expired, tenant: acme, hash: "${expired.hash}", expiresAt: "2020-01-01T00:00:00Z" }
jwt:
  issuers:
    - { issuer: "${ISS}", audience: "${AUD}", algorithms: [ES256], keys: [${JSON.stringify(jwk)}] }
routes:
  - { name: orders, match: { pathPrefix: /orders }, upstream: "http://127.0.0.1:3000" }
  - { name: keys-only, match: { pathPrefix: /keys }, upstream: "http://127.0.0.1:3000", auth: [apiKey] }
  - { name: public, match: { pathPrefix: /public }, upstream: "http://127.0.0.1:3000", auth: [none] }
`);
});

function token(claims: JWTPayload, key: CryptoKey = signingKey, exp: number | string = '5m'): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setIssuer(ISS).setAudience(AUD).setExpirationTime(exp).sign(key);
}

async function authenticateOn(url: string, headers: [string, string][] = []) {
  const ctx = requestContext(config, { url, headers });
  const rejection = await runStages(ctx, [route, sanitize, authenticate]);
  return { ctx, refused: refusal(rejection) };
}

const unauthenticated = (reason: string) => ({ status: 401, code: 'unauthenticated', reason });

describe('API keys', () => {
  it('a key in Authorization: Bearer makes an apiKey principal of its tenant', async () => {
    const { ctx, refused } = await authenticateOn('/orders/1', [['Authorization', `Bearer ${live.key}`]]);
    expect(refused).toBeUndefined();
    expect(ctx.principal).toEqual({
      kind: 'apiKey',
      tenantId: 'acme',
      memberships: null,
      subject: null,
      projectId: 'web',
      apiKeyId: 'ak_live',
      scopes: ['orders:read', 'orders:write'],
      roles: [],
      rate: null,
    });
    // The credential is read from req.headers; sanitize kept it away from the upstream.
    expect(ctx.upstreamHeaders.map((h) => h.toLowerCase())).not.toContain('authorization');
  });

  it('a key in X-API-Key is the same principal; the scheme is case-insensitive', async () => {
    const viaHeader = await authenticateOn('/orders', [['X-API-Key', live.key]]);
    const lowerScheme = await authenticateOn('/orders', [['authorization', `bearer ${live.key}`]]);
    expect(viaHeader.refused).toBeUndefined();
    expect(lowerScheme.refused).toBeUndefined();
    expect(viaHeader.ctx.principal).toMatchObject({ kind: 'apiKey', tenantId: 'acme', apiKeyId: 'ak_live' });
    expect(lowerScheme.ctx.principal).toBe(viaHeader.ctx.principal); // memoised per key record
  });

  it.each([
    ['no credential', [], 'missing_credential'],
    ['an empty X-API-Key', [['X-API-Key', '']], 'missing_credential'],
    ['another scheme', [['Authorization', 'Basic dXNlcjpwYXNz']], 'unsupported_scheme'],
    ['a malformed key', [['X-API-Key', 'tg_live_nope']], 'malformed'],
    ['a key with a typo', [['X-API-Key', `${live.key.slice(0, -1)}x`]], 'bad_checksum'],
    ['an unknown key id', [['X-API-Key', generateApiKey({ env: 'live', id: 'ak_ghost' }).key]], 'unknown_key'],
    ['a wrong secret', [['X-API-Key', generateApiKey({ env: 'live', id: 'ak_live' }).key]], 'wrong_secret'],
    ['a revoked key', [['Authorization', `Bearer ${revoked.key}`]], 'revoked'],
    ['an expired key', [['X-API-Key', expired.key]], 'expired'],
  ] as [string, [string, string][], string][])('%s → 401 %s', async (_name, headers, reason) => {
    const { ctx, refused } = await authenticateOn('/orders', headers);
    expect(refused).toEqual(unauthenticated(reason));
    expect(ctx.principal).toBeNull();
  });
});

describe('credentials that are never chosen between', () => {
  it('a Bearer credential and an X-API-Key at once → 401 ambiguous_credentials', async () => {
    const { ctx, refused } = await authenticateOn('/orders', [
      ['Authorization', `Bearer ${live.key}`],
      ['X-API-Key', live.key],
    ]);
    expect(refused).toEqual(unauthenticated('ambiguous_credentials'));
    expect(ctx.principal).toBeNull();
  });

  it.each(['X-API-Key', 'Authorization'])('%s sent twice → 401 duplicate_credentials (seen by sanitize)', async (name) => {
    const value = name === 'X-API-Key' ? live.key : `Bearer ${live.key}`;
    const { ctx, refused } = await authenticateOn('/orders', [
      [name, value],
      [name.toUpperCase(), value],
    ]);
    expect(ctx.duplicateCredential).toBe(true);
    expect(refused).toEqual(unauthenticated('duplicate_credentials'));
    expect(ctx.principal).toBeNull();
  });
});

describe('what the route accepts', () => {
  it('auth: [none] admits without a credential and ignores one that is sent', async () => {
    const anonymous = await authenticateOn('/public/docs');
    const withKey = await authenticateOn('/public/docs', [['X-API-Key', revoked.key]]);
    for (const { ctx, refused } of [anonymous, withKey]) {
      expect(refused).toBeUndefined();
      expect(ctx.route!.name).toBe('public');
      expect(ctx.principal).toBeNull();
    }
  });

  it('a JWT on an apiKey-only route → 401 jwt_not_accepted', async () => {
    const jwt = await token({ tid: 'acme' });
    const { refused } = await authenticateOn('/keys', [['Authorization', `Bearer ${jwt}`]]);
    expect(refused).toEqual(unauthenticated('jwt_not_accepted'));
  });
});

describe('JWTs (inline JWK)', () => {
  it("a valid token makes a jwt principal: tenant, subject, roles and scopes from its claims", async () => {
    const jwt = await token({ tid: 'acme', sub: 'user-7', roles: ['ops', 'viewer'], scope: 'orders:read reports:read' });
    const { ctx, refused } = await authenticateOn('/orders', [['Authorization', `Bearer ${jwt}`]]);
    expect(refused).toBeUndefined();
    expect(ctx.principal).toEqual({
      kind: 'jwt',
      tenantId: 'acme',
      memberships: null,
      subject: 'user-7',
      projectId: null,
      apiKeyId: null,
      scopes: ['orders:read', 'reports:read'],
      roles: ['ops', 'viewer'],
      rate: null,
    });
  });

  it('the same token again is answered from the verified-token cache, same principal', async () => {
    const jwt = await token({ tid: 'acme', sub: 'user-8' });
    const first = await authenticateOn('/orders', [['Authorization', `Bearer ${jwt}`]]);
    const ctx = requestContext(config, { url: '/orders', headers: [['Authorization', `Bearer ${jwt}`]] });
    route(ctx);
    sanitize(ctx);
    expect(authenticate(ctx)).toBeUndefined(); // synchronous: no Promise for a warm token
    expect(ctx.principal).toBe(first.ctx.principal);
  });

  it.each([
    ['signed by another key', () => token({ tid: 'acme' }, otherKey), 'bad_signature'],
    ['expired', () => token({ tid: 'acme' }, signingKey, Math.floor(Date.now() / 1000) - 3600), 'expired'],
    ['not a JWT at all', async () => 'not-a-jwt', 'malformed'],
  ] as [string, () => Promise<string>, string][])('a token %s → 401 %s', async (_name, make, reason) => {
    const { ctx, refused } = await authenticateOn('/orders', [['Authorization', `Bearer ${await make()}`]]);
    expect(refused).toEqual(unauthenticated(reason));
    expect(ctx.principal).toBeNull();
  });
});
