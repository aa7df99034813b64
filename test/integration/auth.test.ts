/**
 * Authenticate, resolve tenant, authorize and the identity the upstream sees,
 * end to end: real API keys, real JWTs signed with jose against a real JWKS
 * server that rotates keys. Every refusal asserts status, error code and that
 * the upstream received nothing.
 */
import { writeFileSync } from 'node:fs';
import { jwtVerify, SignJWT, type JWTPayload } from 'jose';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { generateApiKey } from '../../src/auth/api-key-format.js';
import { JwksServer, mint, newSigningKey as newKey, publicPem, type SigningKey } from '../helpers/jwks-server.js';
import { MAIN, rawJson, rawRequest, startProxy, startUpstream, writeConfig, type RunningProxy, type Upstream } from '../helpers/servers.js';

const ISSUER = 'https://login.test/';
const AUDIENCE = 'api://orders';
const HS_ISSUER = 'https://hs.test/';
const HS_SECRET = 'a-very-long-hs256-secret-of-at-least-32-chars';
const ASSERTION_SECRET = 'assertion-secret-0123456789abcdef-xyz';
const past = new Date(Date.now() - 86_400_000).toISOString();

const keys = {
  acme: generateApiKey({ env: 'live', id: 'ak_acme_1' }),
  revoked: generateApiKey({ env: 'live', id: 'ak_acme_revoked' }),
  expired: generateApiKey({ env: 'live', id: 'ak_acme_expired' }),
  globex: generateApiKey({ env: 'live', id: 'ak_globex' }),
  suspended: generateApiKey({ env: 'live', id: 'ak_sleepy' }),
  testEnv: generateApiKey({ env: 'test', id: 'ak_env' }),
  readOnly: generateApiKey({ env: 'live', id: 'ak_acme_ro' }),
};

/** Signs a real token (expiresIn: '5m' or epoch seconds; absent = no exp). */
function sign(key: SigningKey, claims: JWTPayload, o: { issuer: string; audience: string; expiresIn?: string | number; notBefore?: number }): Promise<string> {
  const exp = o.expiresIn === undefined ? null : typeof o.expiresIn === 'number' ? o.expiresIn : Math.floor(Date.now() / 1000) + 300;
  return mint(key, claims, { iss: o.issuer, aud: o.audience, exp, nbf: o.notBefore });
}

/** A token with `alg: none` (and no signature), built by hand. */
function unsignedToken(payload: JWTPayload): string {
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  return `${b64({ alg: 'none', typ: 'JWT' })}.${b64(payload)}.`;
}

let upstream: Upstream;
let proxy: RunningProxy;
let jwks: JwksServer;
let rsa: SigningKey;
let ec: SigningKey;

function yamlFor(revokeAcme = false): string {
  return `
plans:
  pro: { rate: null }
  free: { rate: null }
tenants:
  - { id: acme, plan: pro, hosts: [acme.example.com] }
  - { id: globex, plan: free, hosts: ["*.globex.test"] }
  - { id: sleepy, plan: free, status: suspended }
apiKeys:
  - { id: ak_acme_1, tenant: acme, project: web, hash: "${keys.acme.hash}", scopes: [orders:read, orders:write], revoked: ${revokeAcme} }
  - { id: ak_acme_ro, tenant: acme, hash: "${keys.readOnly.hash}", scopes: [orders:read] }
  - { id: ak_acme_revoked, tenant: acme, hash: "${keys.revoked.hash}", revoked: true, scopes: ["*"] }
  - { id: ak_acme_expired, tenant: acme, hash: "${keys.expired.hash}", expiresAt: "${past}", scopes: ["*"] }
  - { id: ak_globex, tenant: globex, hash: "${keys.globex.hash}", scopes: ["orders:*"] }
  - { id: ak_sleepy, tenant: sleepy, hash: "${keys.suspended.hash}", scopes: ["*"] }
  - { id: ak_env, tenant: acme, hash: "${keys.testEnv.hash}", env: live, scopes: ["*"] }
jwt:
  issuers:
    - { issuer: "${ISSUER}", audience: "${AUDIENCE}", jwksUri: "${jwks.url}", algorithms: [RS256, ES256], tenantClaim: org.id }
    - { issuer: "${HS_ISSUER}", audience: "${AUDIENCE}", secret: "${HS_SECRET}", algorithms: [HS256] }
roles:
  admin: ["orders:*"]
  viewer: [orders:read]
identity:
  assertion: { secret: "${ASSERTION_SECRET}", ttlSec: 60 }
routes:
  - name: orders
    match: { pathPrefix: /orders, methods: [GET, POST] }
    upstream: ${upstream.url}
    auth: [apiKey, jwt]
    permission: { GET: orders:read, POST: orders:write }
  - name: keys-only
    match: { pathPrefix: /keys-only }
    upstream: ${upstream.url}
    auth: [apiKey]
`;
}

beforeAll(async () => {
  upstream = await startUpstream();
  rsa = await newKey('RS256', 'rsa-1');
  ec = await newKey('ES256', 'ec-1');
  jwks = await JwksServer.start([rsa, ec]);
  proxy = await startProxy(yamlFor());
});
afterAll(async () => {
  await proxy.close();
  await upstream.close();
  await jwks.down();
});
beforeEach(() => {
  upstream.requests.length = 0;
});

const call = (headers: Record<string, string>, path = '/orders/1', init: RequestInit = {}) => fetch(`${proxy.url}${path}`, { ...init, headers });
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const jwtFor = (key: SigningKey, claims: Record<string, unknown> = { org: { id: 'acme' }, sub: 'user-1', roles: ['viewer'] }, extra = {}) =>
  sign(key, claims, { issuer: ISSUER, audience: AUDIENCE, expiresIn: '5m', ...extra });

async function expectRefused(res: Response, status: number, code: string) {
  expect(res.status).toBe(status);
  expect((await res.json()).error.code).toBe(code);
  if (status === 401) expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
  expect(upstream.requests).toHaveLength(0);
}

async function authFailures(reason: string): Promise<number> {
  const text = await (await fetch(`${proxy.adminUrl}/metrics`)).text();
  return Number(new RegExp(`tenantgate_auth_failures_total\\{route="orders",reason="${reason}"\\} (\\d+)`).exec(text)?.[1] ?? 0);
}

describe('API keys', () => {
  it('a valid key reaches the upstream with the verified identity, and no credential', async () => {
    const res = await call({ 'x-api-key': keys.acme.key, 'x-request-id': 'req-1' });
    expect(res.status).toBe(200);
    const h = upstream.requests[0]!.headers;
    expect(h['x-tenant-id']).toBe('acme');
    expect(h['x-tenant-plan']).toBe('pro');
    expect(h['x-project-id']).toBe('web');
    expect(h['x-api-key-id']).toBe('ak_acme_1');
    expect(h['x-scopes']).toBe('orders:read orders:write');
    expect(h['x-api-key']).toBeUndefined();
    expect(h.authorization).toBeUndefined();
  });

  it('works as a Bearer token too', async () => {
    expect((await call(bearer(keys.acme.key))).status).toBe(200);
  });

  const refusals: [string, () => Record<string, string>, string][] = [
    ['no credential', () => ({}), 'missing_credential'],
    ['empty Authorization', () => ({ authorization: '' }), 'unsupported_scheme'],
    ['Basic scheme', () => ({ authorization: 'Basic dXNlcjpwYXNz' }), 'unsupported_scheme'],
    ['garbage bearer', () => bearer('tg_garbage'), 'malformed'],
    ['bad checksum', () => bearer(`${keys.acme.key.slice(0, -1)}${keys.acme.key.endsWith('A') ? 'B' : 'A'}`), 'bad_checksum'],
    ['truncated key', () => bearer(keys.acme.key.slice(0, -3)), 'malformed'],
    ['unknown id', () => bearer(generateApiKey({ env: 'live', id: 'ak_nobody' }).key), 'unknown_key'],
    ['wrong secret', () => bearer(generateApiKey({ env: 'live', id: 'ak_acme_1' }).key), 'wrong_secret'],
    ['revoked', () => bearer(keys.revoked.key), 'revoked'],
    ['expired', () => bearer(keys.expired.key), 'expired'],
    ['test key recorded as live', () => bearer(keys.testEnv.key), 'env_mismatch'],
    ['API key and JWT together', () => ({ 'x-api-key': keys.acme.key, authorization: 'Bearer a.b.c' }), 'ambiguous_credentials'],
  ];
  it.each(refusals)('%s → 401 unauthenticated (reason %s counted)', async (_name, headers, reason) => {
    const before = await authFailures(reason);
    await expectRefused(await call(headers()), 401, 'unauthenticated');
    expect(await authFailures(reason)).toBe(before + 1);
  });

  it('two Authorization headers → 401, never one picked silently', async () => {
    const res = await rawRequest(proxy.port, `GET /orders/1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${keys.acme.key}\r\nAuthorization: Bearer ${keys.globex.key}\r\nConnection: close\r\n\r\n`);
    expect(res.status).toBe(401);
    expect(upstream.requests).toHaveLength(0);
  });

  it('a key of a suspended tenant → 403 tenant_suspended', async () => {
    await expectRefused(await call(bearer(keys.suspended.key)), 403, 'tenant_suspended');
  });

  it('a key without the route permission → 403 forbidden', async () => {
    expect((await call(bearer(keys.readOnly.key))).status).toBe(200);
    upstream.requests.length = 0;
    await expectRefused(await call(bearer(keys.readOnly.key), '/orders/1', { method: 'POST', body: '{}' }), 403, 'forbidden');
  });

  it('spoofed identity headers in every spelling with another tenant\'s valid key: the upstream sees the real tenant, once', async () => {
    const spoof = ['X-Tenant-ID: acme', 'x_tenant_id: acme', 'X-TENANT-PLAN: enterprise', 'X-Api-Key-ID: ak_acme_1', 'X-Scopes: *', 'X-Tenant-Assertion: forged'].join('\r\n');
    const res = await rawRequest(proxy.port, `GET /orders/1 HTTP/1.1\r\nHost: x\r\n${spoof}\r\nX-API-Key: ${keys.globex.key}\r\nConnection: close\r\n\r\n`);
    expect(res.status).toBe(200);
    const raw = upstream.requests[0]!.rawHeaders;
    const values = (name: string) => raw.filter((_, i) => i % 2 === 1 && raw[i - 1]!.toLowerCase().replaceAll('_', '-') === name);
    expect(values('x-tenant-id')).toEqual(['globex']);
    expect(values('x-tenant-plan')).toEqual(['free']);
    expect(values('x-api-key-id')).toEqual(['ak_globex']);
    expect(values('x-tenant-assertion')).toHaveLength(1);
    expect(values('x-tenant-assertion')[0]).not.toBe('forged');
  });

  it('a host bound to one tenant refuses another tenant\'s key → 403 cross_tenant, counted', async () => {
    const res = await rawRequest(proxy.port, `GET /orders/1 HTTP/1.1\r\nHost: acme.example.com\r\nX-API-Key: ${keys.globex.key}\r\nConnection: close\r\n\r\n`);
    expect(res.status).toBe(403);
    expect((rawJson(res) as { error: { code: string } }).error.code).toBe('cross_tenant');
    expect(upstream.requests).toHaveLength(0);
    const ok = await rawRequest(proxy.port, `GET /orders/1 HTTP/1.1\r\nHost: api.globex.test\r\nX-API-Key: ${keys.globex.key}\r\nConnection: close\r\n\r\n`);
    expect(ok.status).toBe(200);
    const text = await (await fetch(`${proxy.adminUrl}/metrics`)).text();
    expect(text).toMatch(/tenantgate_cross_tenant_attempts_total\{tenant="globex"\} 1/);
  });

  it('the X-Tenant-Assertion verifies with the shared secret and carries the identity', async () => {
    await call(bearer(keys.acme.key));
    const token = upstream.requests[0]!.headers['x-tenant-assertion'] as string;
    const { payload } = await jwtVerify(token, new TextEncoder().encode(ASSERTION_SECRET), { issuer: 'tenantgate', algorithms: ['HS256'] });
    expect(payload).toMatchObject({ tid: 'acme', plan: 'pro', pid: 'web', kid: 'ak_acme_1', scope: 'orders:read orders:write' });
    expect(payload.exp! - payload.iat!).toBe(60);
  });

  it('a key revoked in the config stops working at the reload, whatever the cache holds', async () => {
    expect((await call(bearer(keys.acme.key))).status).toBe(200);
    writeFileSync(proxy.configFile, `listen: { host: 127.0.0.1, port: 0 }\nadmin: { host: 127.0.0.1, port: 0 }\n${yamlFor(true)}`);
    expect(await proxy.gate.reload()).toBe(true);
    upstream.requests.length = 0;
    await expectRefused(await call(bearer(keys.acme.key)), 401, 'unauthenticated');
    writeFileSync(proxy.configFile, `listen: { host: 127.0.0.1, port: 0 }\nadmin: { host: 127.0.0.1, port: 0 }\n${yamlFor(false)}`);
    expect(await proxy.gate.reload()).toBe(true);
  });
});

describe('WebSocket upgrades pass the same stages', () => {
  it('a valid key upgrades with the verified identity; an invalid one gets 401 before any 101', async () => {
    const seen: Record<string, unknown>[] = [];
    upstream.server.on('upgrade', (req, socket) => {
      seen.push(req.headers);
      socket.end('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
    });
    const upgrade = (key: string) =>
      `GET /orders/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nX-Tenant-ID: evil\r\nX-API-Key: ${key}\r\n\r\n`;
    const ok = await rawRequest(proxy.port, upgrade(keys.acme.key));
    expect(ok.status).toBe(101);
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ 'x-tenant-id': 'acme', 'x-api-key-id': 'ak_acme_1' });
    expect(seen[0]!['x-api-key']).toBeUndefined();
    const refused = await rawRequest(proxy.port, upgrade(keys.revoked.key));
    expect(refused.status).toBe(401);
    expect((rawJson(refused) as { error: { code: string } }).error.code).toBe('unauthenticated');
    expect(seen).toHaveLength(1);
  });
});

describe('JWTs', () => {
  it('RS256 and ES256 tokens from the JWKS reach the upstream with subject, roles and tenant', async () => {
    for (const key of [rsa, ec]) {
      const res = await call(bearer(await jwtFor(key)));
      expect(res.status).toBe(200);
    }
    const h = upstream.requests[1]!.headers;
    expect(h['x-tenant-id']).toBe('acme');
    expect(h['x-subject']).toBe('user-1');
    expect(h['x-roles']).toBe('viewer');
    expect(h.authorization).toBeUndefined();
  });

  it('roles grant permissions: viewer cannot POST, admin (orders:*) can', async () => {
    await expectRefused(await call(bearer(await jwtFor(rsa)), '/orders/1', { method: 'POST', body: '{}' }), 403, 'forbidden');
    const admin = await jwtFor(rsa, { org: { id: 'acme' }, sub: 'boss', roles: 'admin' });
    expect((await call(bearer(admin), '/orders/1', { method: 'POST', body: '{}' })).status).toBe(200);
  });

  it('an HS256 issuer verifies with its secret', async () => {
    const token = await new SignJWT({ tid: 'globex', scope: 'orders:read' }).setProtectedHeader({ alg: 'HS256' }).setIssuer(HS_ISSUER).setAudience(AUDIENCE).setExpirationTime('5m').sign(new TextEncoder().encode(HS_SECRET));
    const res = await call(bearer(token));
    expect(res.status).toBe(200);
    expect(upstream.requests[0]!.headers['x-tenant-id']).toBe('globex');
  });

  const bad: [string, () => Promise<string>, string][] = [
    ['alg: none', async () => unsignedToken({ iss: ISSUER, aud: AUDIENCE, org: { id: 'acme' }, exp: Math.floor(Date.now() / 1000) + 300 }), 'alg_not_allowed'],
    [
      'HS256 signed with the RSA public key',
      async () => {
        const pem = await publicPem(rsa);
        return new SignJWT({ org: { id: 'acme' } }).setProtectedHeader({ alg: 'HS256', kid: 'rsa-1' }).setIssuer(ISSUER).setAudience(AUDIENCE).setExpirationTime('5m').sign(new TextEncoder().encode(pem));
      },
      'alg_not_allowed',
    ],
    ['expired', () => jwtFor(rsa, undefined, { expiresIn: Math.floor(Date.now() / 1000) - 120 }), 'expired'],
    ['nbf in the future', () => jwtFor(rsa, undefined, { notBefore: Math.floor(Date.now() / 1000) + 600 }), 'not_yet_valid'],
    ['wrong issuer', () => sign(rsa, { org: { id: 'acme' } }, { issuer: 'https://evil.test/', audience: AUDIENCE, expiresIn: '5m' }), 'unknown_issuer'],
    ['wrong audience', () => sign(rsa, { org: { id: 'acme' } }, { issuer: ISSUER, audience: 'api://other', expiresIn: '5m' }), 'wrong_audience'],
    ['no exp', () => sign(rsa, { org: { id: 'acme' } }, { issuer: ISSUER, audience: AUDIENCE }), 'missing_exp'],
    [
      'tampered payload',
      async () => {
        const [h, p, s] = (await jwtFor(rsa)).split('.');
        const payload = JSON.parse(Buffer.from(p!, 'base64url').toString());
        payload.org.id = 'globex';
        return `${h}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.${s}`;
      },
      'bad_signature',
    ],
    ['no tenant claim', () => jwtFor(rsa, { sub: 'x' }), 'missing_tenant_claim'],
    ['tenant claim with CR/LF', () => jwtFor(rsa, { org: { id: 'acme\r\nX-Admin: yes' } }), 'unsafe_claim'],
    ['over maxTokenBytes (10 KB)', () => jwtFor(rsa, { org: { id: 'acme' }, pad: 'x'.repeat(10_000) }), 'token_too_large'],
    ['garbage', async () => 'not.a.jwt', 'malformed'],
  ];
  it.each(bad)('%s → 401 (reason %s)', async (_name, make, reason) => {
    const before = await authFailures(reason);
    await expectRefused(await call(bearer(await make())), 401, 'unauthenticated');
    expect(await authFailures(reason)).toBe(before + 1);
  });

  it('a role with a newline is dropped (never reaches a header); the token is accepted without it', async () => {
    const res = await call(bearer(await jwtFor(rsa, { org: { id: 'acme' }, sub: 'u', roles: ['viewer\nX-Admin: yes', 'viewer'] })));
    expect(res.status).toBe(200);
    expect(upstream.requests[0]!.headers['x-roles']).toBe('viewer');
    expect(upstream.requests[0]!.headers['x-admin']).toBeUndefined();
    const text = await (await fetch(`${proxy.adminUrl}/metrics`)).text();
    expect(text).toMatch(/tenantgate_jwt_claim_items_dropped_total\{issuer="https:\/\/login\.test\/"\} [1-9]/);
  });

  it('a 64 KB token is refused at the parser with 431 and never forwarded', async () => {
    const token = await jwtFor(rsa, { org: { id: 'acme' }, pad: 'x'.repeat(64 * 1024) });
    const res = await rawRequest(proxy.port, `GET /orders/1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\n\r\n`);
    expect(res.status).toBe(431);
    expect((rawJson(res) as { error: { code: string } }).error.code).toBe('headers_too_large');
    expect(upstream.requests).toHaveLength(0);
  });

  it('a tenant claim naming an unknown tenant → 403 unknown_tenant', async () => {
    await expectRefused(await call(bearer(await jwtFor(rsa, { org: { id: 'initech' } }))), 403, 'unknown_tenant');
  });

  it('a JWT on an API-key-only route → 401', async () => {
    await expectRefused(await call(bearer(await jwtFor(rsa)), '/keys-only/x'), 401, 'unauthenticated');
  });

  // Rotation (a new kid fetched once the cooldown has passed) is covered with a faked clock in test/unit/jwt.test.ts.
  it('unknown kids do not cause a JWKS refetch storm', async () => {
    const before = jwks.fetches;
    const stranger = await newKey('RS256', 'stranger');
    for (let i = 0; i < 20; i++) await expectRefused(await call(bearer(await jwtFor({ ...stranger, kid: `random-${i}` }))), 401, 'unauthenticated');
    expect(jwks.fetches - before).toBeLessThanOrEqual(1);
  });

  it('already-fetched keys keep working while the JWKS endpoint is down', async () => {
    const token = await jwtFor(rsa, { org: { id: 'acme' }, sub: 'down-test', roles: ['viewer'] });
    expect((await call(bearer(await jwtFor(rsa)))).status).toBe(200);
    await jwks.down();
    try {
      upstream.requests.length = 0;
      expect((await call(bearer(token))).status).toBe(200);
      upstream.requests.length = 0;
      const unknown = await newKey('RS256', 'never-seen');
      await expectRefused(await call(bearer(await jwtFor(unknown))), 401, 'unauthenticated');
    } finally {
      await jwks.up();
    }
  });
});

describe('EdDSA assertions with the public key on the admin port', () => {
  it('the upstream verifies X-Tenant-Assertion against the JWKS the admin port serves', async () => {
    const { generateKeyPairSync } = await import('node:crypto');
    const { createRemoteJWKSet } = await import('jose');
    const { privateKey } = generateKeyPairSync('ed25519');
    const dir = (await import('node:fs')).mkdtempSync(`${(await import('node:os')).tmpdir()}/tg-ed-`);
    writeFileSync(`${dir}/assertion.pem`, privateKey.export({ type: 'pkcs8', format: 'pem' }));
    const up = await startUpstream();
    const gate = await startProxy(`
plans: { p: {} }
tenants: [{ id: acme, plan: p }]
apiKeys: [{ id: ak_acme_1, tenant: acme, hash: "${keys.acme.hash}", scopes: [orders:read] }]
identity: { assertion: { privateKeyFile: "${dir}/assertion.pem", ttlSec: 30 } }
routes: [{ name: o, match: { pathPrefix: / }, upstream: "${up.url}", auth: [apiKey] }]
`);
    try {
      expect((await fetch(`${gate.url}/x`, { headers: { 'x-api-key': keys.acme.key } })).status).toBe(200);
      const token = up.requests[0]!.headers['x-tenant-assertion'] as string;
      const jwks = createRemoteJWKSet(new URL(`${gate.adminUrl}/.well-known/jwks.json`));
      const { payload, protectedHeader } = await jwtVerify(token, jwks, { issuer: 'tenantgate', algorithms: ['EdDSA'] });
      expect(protectedHeader.alg).toBe('EdDSA');
      expect(payload).toMatchObject({ tid: 'acme', kid: 'ak_acme_1', scope: 'orders:read' });
      expect(payload.exp! - payload.iat!).toBe(30);
      // A forged assertion (signed by another key) does not verify.
      const forged = `${token.split('.').slice(0, 2).join('.')}.${Buffer.alloc(64).toString('base64url')}`;
      await expect(jwtVerify(forged, jwks, { issuer: 'tenantgate', algorithms: ['EdDSA'] })).rejects.toThrow();
    } finally {
      await gate.close();
      await up.close();
    }
  });

  it('without an EdDSA key the admin JWKS endpoint answers 404 JSON', async () => {
    const res = await fetch(`${proxy.adminUrl}/.well-known/jwks.json`);
    expect(res.status).toBe(404);
    expect((await res.json()).error.code).toBe('no_route');
  });
});

describe('JWKS limits (#33.6)', () => {
  const HUGE = 'https://huge.test/';
  const MANY = 'https://many.test/';
  let hugeJwks: JwksServer;
  let manyJwks: JwksServer;
  let gate: RunningProxy;

  beforeAll(async () => {
    hugeJwks = await JwksServer.start([rsa]);
    hugeJwks.mode = 'huge';
    hugeJwks.huge = { bytes: 64 * 1024 * 1024, declareLength: false };
    manyJwks = await JwksServer.start([rsa]);
    manyJwks.extraKeys = 150; // the default cap is 100
    gate = await startProxy(`
plans: { p: { rate: null } }
tenants: [{ id: acme, plan: p }]
apiKeys: [{ id: ak_acme_1, tenant: acme, hash: "${keys.acme.hash}", scopes: [orders:read] }]
jwt:
  issuers:
    - { issuer: "${HUGE}", audience: "${AUDIENCE}", jwksUri: "${hugeJwks.url}", algorithms: [RS256] }
    - { issuer: "${MANY}", audience: "${AUDIENCE}", jwksUri: "${manyJwks.url}", algorithms: [RS256] }
roles: { viewer: [orders:read] }
routes: [{ name: orders, match: { pathPrefix: /orders }, upstream: "${upstream.url}", auth: [apiKey, jwt], permission: orders:read }]
`);
  });
  afterAll(async () => {
    await gate.close();
    await hugeJwks.down();
    await manyJwks.down();
  });

  const failures = async (reason: string) => {
    const text = await (await fetch(`${gate.adminUrl}/metrics`)).text();
    return Number(new RegExp(`tenantgate_auth_failures_total\\{route="orders",reason="${reason}"\\} (\\d+)`).exec(text)?.[1] ?? 0);
  };
  const tokenOf = (issuer: string) => sign(rsa, { tid: 'acme', sub: 'u', roles: ['viewer'] }, { issuer, audience: AUDIENCE, expiresIn: '5m' });
  const get = (headers: Record<string, string>) => fetch(`${gate.url}/orders/1`, { headers });

  it('a 64 MB JWKS: its tokens are 401 (reason jwks_too_large, counted), the fetch is cut off, and the proxy keeps serving', async () => {
    const before = await failures('jwks_too_large');
    const token = await tokenOf(HUGE);
    // The JWT and an API key request at once: the key's answer does not wait on the JWKS.
    const [jwtRes, keyRes] = await Promise.all([get(bearer(token)), get({ 'x-api-key': keys.acme.key })]);
    expect(keyRes.status).toBe(200);
    await expectRefusedHere(jwtRes);
    expect(await failures('jwks_too_large')).toBe(before + 1);
    await new Promise((r) => setTimeout(r, 50));
    expect(hugeJwks.hugeBytesSent).toBeLessThan(16 * 1024 * 1024);
    // Within the cooldown: refused again with the same reason, no second fetch.
    await expectRefusedHere(await get(bearer(await tokenOf(HUGE))));
    expect(await failures('jwks_too_large')).toBe(before + 2);
    expect(hugeJwks.fetches).toBe(1);
    expect((await get({ 'x-api-key': keys.acme.key })).status).toBe(200);
  });

  it('a JWKS with 151 keys (default cap 100): 401, reason jwks_too_many_keys', async () => {
    const before = await failures('jwks_too_many_keys');
    await expectRefusedHere(await get(bearer(await tokenOf(MANY))));
    expect(await failures('jwks_too_many_keys')).toBe(before + 1);
  });

  async function expectRefusedHere(res: Response) {
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect((await res.json()).error.code).toBe('unauthenticated');
  }

  it('an http:// jwksUri outside loopback is a config error naming the key; jwksAllowHttp: true opts in', async () => {
    const yaml = (optIn: string) => `
plans: { p: {} }
jwt:
  issuers:
    - { issuer: "${HUGE}", audience: a, jwksUri: "http://idp.example.com/jwks.json", algorithms: [RS256]${optIn} }
routes: [{ name: a, match: {}, upstream: "${upstream.url}" }]
`;
    const { execFile } = await import('node:child_process');
    const validate = (file: string) =>
      new Promise<{ code: number; out: string }>((resolve) => {
        execFile(process.execPath, [MAIN, 'validate', '-c', file], (err, stdout, stderr) => resolve({ code: err === null ? 0 : Number(err.code), out: stdout + stderr }));
      });
    const refused = await validate(writeConfig(yaml('')));
    expect(refused.code).toBe(1);
    expect(refused.out).toMatch(/:5 jwt\.issuers\[0\]\.jwksUri: http:\/\/ outside loopback .*set jwksAllowHttp: true/);
    await expect(startProxy(yaml(''))).rejects.toThrow(/jwt\.issuers\[0\]\.jwksUri/);
    const optedIn = await validate(writeConfig(yaml(', jwksAllowHttp: true')));
    expect(optedIn).toMatchObject({ code: 0 });
  });
});
