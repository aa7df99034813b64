/**
 * Issuers as real IdPs need them (SPEC §10): `{tid}` templates, `clientIds`
 * (azp / client_id), `requiredClaims`, Ed25519 and PS256, claim paths and
 * lists of paths through the verifier, the backoff after a failed JWKS fetch
 * and OpenID discovery — against real tokens and a real JWKS server.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { JwtVerifier, type IssuerConfig, type JwtResult } from '../../../src/auth/jwt.js';
import { issuerConfig } from '../../helpers/issuer-config.js';
import { JwksServer, mint, newSigningKey, publicPem, type SigningKey } from '../../helpers/jwks-server.js';
import { makeTlsFiles } from '../../helpers/redis-tls.js';

const NOW = 1_750_000_000;
const EXP = NOW + 300;
const clock = { now: () => NOW * 1000 };
const AZURE = 'https://login.microsoftonline.com/{tid}/v2.0';
const TID = '9188040d-6c67-4c5b-b112-36a304b66dad';

function issuer(extra: Partial<IssuerConfig> & { issuer: string }): IssuerConfig {
  return issuerConfig({ algorithms: ['RS256', 'PS256', 'ES256', 'EdDSA', 'Ed25519'], ...extra });
}

const result = (r: JwtResult) => (r.ok ? r.identity : r.reason);
/** Moves the real clock (JWKS pacing) forward without sleeping. */
function advanceRealClock(ms: number): void {
  vi.useFakeTimers({ toFake: ['Date'] });
  vi.setSystemTime(Date.now() + ms);
}

let rs: SigningKey, ps: SigningKey, es: SigningKey, ed: SigningKey;
let jwks: JwksServer;
beforeAll(async () => {
  [rs, ps, es, ed] = await Promise.all([newSigningKey('RS256', 'rs'), newSigningKey('PS256', 'ps'), newSigningKey('ES256', 'es'), newSigningKey('Ed25519', 'ed')]);
  jwks = await JwksServer.start([rs, ps, es, ed]);
});
afterAll(() => jwks.down());
afterEach(() => {
  vi.useRealTimers();
});

describe('{tid} issuers', () => {
  let v: JwtVerifier;
  beforeAll(async () => {
    v = await JwtVerifier.create([issuer({ issuer: AZURE, audience: 'api://orders', jwksUri: jwks.url, tenantClaim: 'tid' }), issuer({ issuer: 'https://exact.test/', audience: 'api://orders', jwksUri: jwks.url })], clock);
  });
  const tokenWithIss = (iss: string, c: Record<string, unknown> = { tid: TID }) => mint(rs, c, { iss, aud: 'api://orders', exp: EXP });

  it('one block serves every tenant: the segment may be any tenant id', async () => {
    expect(result(await v.verify(await tokenWithIss(`https://login.microsoftonline.com/${TID}/v2.0`)))).toMatchObject({ tenantId: TID, issuer: AZURE });
    expect(result(await v.verify(await tokenWithIss('https://login.microsoftonline.com/other-tenant/v2.0', { tid: 'other-tenant' })))).toMatchObject({ tenantId: 'other-tenant' });
    expect(result(await v.verify(await tokenWithIss('https://exact.test/')))).toMatchObject({ tenantId: TID });
  });

  it.each([
    ['no segment', 'https://login.microsoftonline.com//v2.0'],
    ['two segments', `https://login.microsoftonline.com/${TID}/x/v2.0`],
    ['the v1 shape', `https://sts.windows.net/${TID}/`],
    ['no suffix', `https://login.microsoftonline.com/${TID}`],
    ['the placeholder itself', AZURE],
    ['a dot segment', 'https://login.microsoftonline.com/../v2.0'],
    ['a percent-escape', 'https://login.microsoftonline.com/a%2Fb/v2.0'],
    ['a query', `https://login.microsoftonline.com/${TID}?x=/v2.0`],
    ['another host', `https://login.microsoftonline.com.evil.test/${TID}/v2.0`],
  ])('an iss of another shape (%s) → unknown_issuer', async (_n, iss) => {
    expect(result(await v.verify(await tokenWithIss(iss)))).toBe('unknown_issuer');
  });
});

describe('clientIds and requiredClaims', () => {
  let v: JwtVerifier;
  const COGNITO = 'https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123';
  beforeAll(async () => {
    v = await JwtVerifier.create(
      [
        issuer({ issuer: COGNITO, clientIds: ['app-client-1'], requiredClaims: { token_use: 'access' }, jwksUri: jwks.url, tenantClaim: 'custom:tenant_id', rolesClaim: 'cognito:groups' }),
        issuer({ issuer: 'https://both.test/', audience: 'api://orders', clientIds: ['spa'], jwksUri: jwks.url }),
      ],
      clock,
    );
  });
  const cognito = (c: Record<string, unknown>) => mint(rs, { 'custom:tenant_id': 'acme', ...c }, { iss: COGNITO, exp: EXP }).then((t) => v.verify(t));

  it('a Cognito access token (no aud, client_id, token_use: access) is accepted', async () => {
    expect(result(await cognito({ client_id: 'app-client-1', token_use: 'access', 'cognito:groups': ['admins'] }))).toMatchObject({ tenantId: 'acme', roles: ['admins'] });
  });

  it.each([
    ['an ID token (token_use: id, aud = the client)', { aud: 'app-client-1', token_use: 'id' }, 'required_claim_mismatch'],
    ['no token_use', { client_id: 'app-client-1' }, 'required_claim_mismatch'],
    ['token_use of another type', { client_id: 'app-client-1', token_use: ['access'] }, 'required_claim_mismatch'],
    ['another client', { client_id: 'app-client-2', token_use: 'access' }, 'wrong_client'],
    ['no client at all', { token_use: 'access' }, 'wrong_client'],
    ['azp wins over client_id', { azp: 'intruder', client_id: 'app-client-1', token_use: 'access' }, 'wrong_client'],
  ])('%s → %s', async (_n, c, reason) => {
    expect(result(await cognito(c))).toBe(reason);
  });

  it('azp is checked before client_id; with audience and clientIds both must match', async () => {
    expect(result(await cognito({ azp: 'app-client-1', client_id: 'other', token_use: 'access' }))).toMatchObject({ tenantId: 'acme' });
    const both = (aud: string, azp: string) => mint(rs, { tid: 'acme', azp }, { iss: 'https://both.test/', aud, exp: EXP }).then((t) => v.verify(t));
    expect(result(await both('api://orders', 'spa'))).toMatchObject({ tenantId: 'acme' });
    expect(result(await both('api://orders', 'other'))).toBe('wrong_client');
    expect(result(await both('api://other', 'spa'))).toBe('wrong_audience');
  });
});

describe('algorithms', () => {
  it('RS256, PS256, ES256 and Ed25519 (allowlisted as Ed25519 or EdDSA) verify from a JWKS', async () => {
    for (const algorithms of [['RS256', 'PS256', 'ES256', 'Ed25519'], ['RS256', 'PS256', 'ES256', 'EdDSA', 'Ed25519']] as IssuerConfig['algorithms'][]) {
      const v = await JwtVerifier.create([issuer({ issuer: 'https://alg.test/', audience: 'a', jwksUri: jwks.url, algorithms })], clock);
      for (const key of [rs, ps, es, ed]) expect(result(await v.verify(await mint(key, { tid: key.alg }, { iss: 'https://alg.test/', aud: 'a', exp: EXP })))).toMatchObject({ tenantId: key.alg });
    }
  });

  it('an Ed25519 public key as inline PEM or JWK verifies Ed25519 tokens', async () => {
    const token = await mint(ed, { tid: 'acme' }, { iss: 'https://alg.test/', aud: 'a', exp: EXP });
    for (const keys of [[await publicPem(ed)], [ed.publicJwk as Record<string, unknown>]]) {
      const v = await JwtVerifier.create([issuer({ issuer: 'https://alg.test/', audience: 'a', keys, algorithms: ['Ed25519'] })], clock);
      expect(result(await v.verify(token))).toMatchObject({ tenantId: 'acme' });
    }
  });

  it('an Ed25519 token against an issuer that allows only EdDSA, or only RS256 → alg_not_allowed', async () => {
    const token = await mint(ed, { tid: 'x' }, { iss: 'https://alg.test/', aud: 'a', exp: EXP });
    for (const algorithms of [['EdDSA'], ['RS256']] as IssuerConfig['algorithms'][]) {
      const v = await JwtVerifier.create([issuer({ issuer: 'https://alg.test/', audience: 'a', jwksUri: jwks.url, algorithms })], clock);
      expect(result(await v.verify(token))).toBe('alg_not_allowed');
    }
  });
});

describe('claim paths and lists of paths', () => {
  let v: JwtVerifier;
  const ISS = 'https://kc.test/realms/acme';
  beforeAll(async () => {
    v = await JwtVerifier.create(
      [
        issuer({
          issuer: ISS,
          audience: 'account',
          jwksUri: jwks.url,
          tenantClaim: '["https://example.com/app_metadata"].tenant',
          rolesClaim: ['realm_access.roles', 'resource_access["api.example.com"].roles'],
          scopesClaim: ['scope', 'scp', 'permissions'],
          maxClaimItems: 4,
        }),
      ],
      clock,
    );
  });
  const verify = (c: Record<string, unknown>) => mint(es, { 'https://example.com/app_metadata': { tenant: 'acme' }, ...c }, { iss: ISS, aud: 'account', exp: EXP }).then((t) => v.verify(t));

  it('roles and scopes are the union of every path, de-duplicated, in order', async () => {
    const id = await verify({
      realm_access: { roles: ['member', 'offline_access'] },
      resource_access: { 'api.example.com': { roles: ['admin', 'member'] }, account: { roles: ['manage-account'] } },
      scope: 'openid orders.read',
      permissions: ['orders:write', 'orders.read'],
    });
    expect(result(id)).toMatchObject({ tenantId: 'acme', roles: ['member', 'offline_access', 'admin'], scopes: ['openid', 'orders.read', 'orders:write'] });
  });

  it('maxClaimItems bounds each list (raw items, before dropping) and the union', async () => {
    expect(result(await verify({ realm_access: { roles: ['a', 'b', 'c', 'd'] } }))).toMatchObject({ roles: ['a', 'b', 'c', 'd'] });
    expect(result(await verify({ realm_access: { roles: ['a', 'b', 'c', 'd', 'bad item'] } }))).toBe('unsafe_claim');
    expect(result(await verify({ realm_access: { roles: ['a', 'b', 'c'] }, resource_access: { 'api.example.com': { roles: ['d', 'e'] } } }))).toBe('unsafe_claim');
  });

  it('dropped items are counted by configured issuer, and the count carries over a reload', async () => {
    const before = v.droppedClaimItems().get(ISS) ?? 0;
    expect(result(await verify({ realm_access: { roles: ['ok', 'not ok', 'r\u00f4le'] } }))).toMatchObject({ roles: ['ok'] });
    expect(v.droppedClaimItems().get(ISS)).toBe(before + 2);
    const next = await JwtVerifier.create([issuer({ issuer: ISS, audience: 'account', jwksUri: jwks.url, rolesClaim: 'realm_access.roles' })], { ...clock, previous: v });
    expect(result(await next.verify(await mint(es, { 'https://example.com/app_metadata': { tenant: 'acme' }, tid: 'acme', realm_access: { roles: ['x y'] } }, { iss: ISS, aud: 'account', exp: EXP })))).toMatchObject({ roles: [] });
    expect(next.droppedClaimItems().get(ISS)).toBe(before + 3);
  });

  it('a roles path holding an object (not a list or string) → invalid_claims', async () => {
    expect(result(await verify({ realm_access: { roles: { admin: true } } }))).toBe('invalid_claims');
  });
});

describe('JWKS fetch backoff (real clock moved by hand)', () => {
  it('a failed fetch is retried after 1 s, then 2 s, 4 s … up to jwksCooldownSec; a success resets it', async () => {
    const server = await JwksServer.start([rs]);
    await server.down();
    try {
      const v = await JwtVerifier.create([issuer({ issuer: 'https://late.test/', audience: 'a', jwksUri: server.url, jwksCooldownSec: 5 })], clock);
      advanceRealClock(0); // Date stands still from here, moved only by hand: a slow machine cannot pass a backoff by itself
      let n = 0;
      const attempt = async () => result(await v.verify(await mint(rs, { tid: 'acme', n: n++ }, { iss: 'https://late.test/', aud: 'a', exp: EXP })));
      expect(await attempt()).toBe('jwks_unavailable'); // failure 1: next try after 1 s
      await server.up();
      expect(await attempt()).toBe('jwks_unavailable'); // within 1 s: not asked
      expect(server.fetches).toBe(0);
      await server.down();
      advanceRealClock(1001);
      expect(await attempt()).toBe('jwks_unavailable'); // failure 2: next after 2 s
      advanceRealClock(1500);
      expect(await attempt()).toBe('jwks_unavailable'); // within 2 s
      advanceRealClock(600);
      expect(await attempt()).toBe('jwks_unavailable'); // failure 3: next after 4 s
      advanceRealClock(4001);
      expect(await attempt()).toBe('jwks_unavailable'); // failure 4: next after min(8 s, 5 s)
      advanceRealClock(4900);
      await server.up();
      expect(await attempt()).toBe('jwks_unavailable'); // capped at the 5 s cooldown: not yet
      expect(server.fetches).toBe(0);
      advanceRealClock(200);
      expect(await attempt()).toMatchObject({ tenantId: 'acme' }); // the provider is back: recovered
      expect(server.fetches).toBe(1);
    } finally {
      await server.down();
    }
  });
});

describe('OpenID discovery', () => {
  it('reads jwks_uri from <issuer>/.well-known/openid-configuration on first use, once', async () => {
    const server = await JwksServer.start([rs, ed]);
    try {
      server.discoveryIssuer = server.origin;
      const v = await JwtVerifier.create([issuer({ issuer: server.origin, audience: 'a', discovery: true })], clock);
      expect(server.fetches).toBe(0); // nothing at create
      for (const key of [rs, ed]) expect(result(await v.verify(await mint(key, { tid: 'acme' }, { iss: server.origin, aud: 'a', exp: EXP })))).toMatchObject({ tenantId: 'acme' });
      expect(server.discoveryFetches).toBe(1);
      expect(server.fetches).toBe(2); // the document, then the JWKS
      expect(v.discoveredJwksUris().get(server.origin)).toBe(server.url);
      // A reload carries the discovered jwks_uri and keys: works while the provider is down.
      await server.down();
      const next = await JwtVerifier.create([issuer({ issuer: server.origin, audience: 'a', discovery: true })], { ...clock, previous: v });
      expect(result(await next.verify(await mint(rs, { tid: 'acme', n: 2 }, { iss: server.origin, aud: 'a', exp: EXP })))).toMatchObject({ tenantId: 'acme' });
    } finally {
      await server.down();
    }
  });

  it.each([
    ['the document names another issuer', (s: JwksServer) => (s.discoveryIssuer = 'https://evil.test/')],
    ['no document (404)', (s: JwksServer) => (s.discoveryIssuer = null)],
    ['the provider answers 500', (s: JwksServer) => (s.mode = 'error')],
  ])('%s → discovery_failed, retried with backoff', async (_n, breakIt) => {
    const server = await JwksServer.start([rs]);
    try {
      server.discoveryIssuer = server.origin;
      breakIt(server);
      const v = await JwtVerifier.create([issuer({ issuer: server.origin, audience: 'a', discovery: true })], clock);
      advanceRealClock(0);
      const token = await mint(rs, { tid: 'acme' }, { iss: server.origin, aud: 'a', exp: EXP });
      expect(result(await v.verify(token))).toBe('discovery_failed');
      const fetches = server.fetches;
      expect(result(await v.verify(await mint(rs, { tid: 'acme', n: 1 }, { iss: server.origin, aud: 'a', exp: EXP })))).toBe('discovery_failed');
      expect(server.fetches).toBe(fetches); // within the 1 s backoff: not asked again
      server.mode = 'ok';
      server.discoveryIssuer = server.origin;
      advanceRealClock(1001);
      expect(result(await v.verify(token))).toMatchObject({ tenantId: 'acme' });
    } finally {
      await server.down();
    }
  });

  it('the provider down at first use → discovery_failed (never jwks_unavailable without a cause)', async () => {
    const server = await JwksServer.start([rs]);
    await server.down();
    const v = await JwtVerifier.create([issuer({ issuer: server.origin, audience: 'a', discovery: true })], clock);
    expect(result(await v.verify(await mint(rs, { tid: 'acme', jti: randomUUID() }, { iss: server.origin, aud: 'a', exp: EXP })))).toBe('discovery_failed');
  });
});

describe('https: certificates are verified', () => {
  it('a JWKS or discovery endpoint whose certificate no trusted CA signed → jwks_unavailable / discovery_failed, never a key', async () => {
    const tls = await makeTlsFiles();
    let requests = 0;
    const server = createServer({ cert: readFileSync(tls.serverCert), key: readFileSync(tls.serverKey) }, (req, res) => {
      requests++;
      const origin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const body = req.url === '/.well-known/openid-configuration' ? { issuer: origin, jwks_uri: `${origin}/jwks` } : { keys: [rs.publicJwk] };
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const origin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const v = await JwtVerifier.create(
        [issuer({ issuer: 'https://jwks.test/', audience: 'a', jwksUri: `${origin}/jwks` }), issuer({ issuer: origin, audience: 'a', discovery: true })],
        clock,
      );
      expect(result(await v.verify(await mint(rs, { tid: 'acme' }, { iss: 'https://jwks.test/', aud: 'a', exp: EXP })))).toBe('jwks_unavailable');
      expect(result(await v.verify(await mint(rs, { tid: 'acme' }, { iss: origin, aud: 'a', exp: EXP })))).toBe('discovery_failed');
      expect(requests).toBe(0); // the TLS handshake failed: no request was ever sent
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
