/**
 * JwtVerifier against real tokens (jose: RS256, ES256, EdDSA, HS256) and a
 * real JWKS endpoint on loopback. Token time runs on an injected clock; JWKS
 * pacing runs on jose's real clock, so tests that need a cooldown to pass fake
 * `Date` only (no sleeping).
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { errors, exportJWK, generateKeyPair, importPKCS8, SignJWT } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { JwksRefusedError, JwksUnavailableError } from '../../../src/auth/jwt-errors.js';
import { JWT_FAILURE_REASONS, jwtFailureReason, JwtVerifier, type IssuerConfig, type JwtResult } from '../../../src/auth/jwt.js';
import { issuerConfig } from '../../helpers/issuer-config.js';
import { JwksServer, mint, newSigningKey, publicPem, type SigningKey } from '../../helpers/jwks-server.js';

const NOW = 1_750_000_000; // epoch s, the injected clock's start
const EXP = NOW + 300;
const ISS = 'https://login.test/';
const AUD = 'api://orders';
const SECRET = 'x'.repeat(32) + '-hs256-secret-for-tests';

let nowMs = NOW * 1000;
const clock = { now: () => nowMs };

function issuer(extra: Partial<IssuerConfig> = {}): IssuerConfig {
  return issuerConfig({ issuer: ISS, audience: AUD, algorithms: ['RS256', 'ES256', 'EdDSA'], ...extra });
}

const ok = (r: JwtResult) => {
  if (!r.ok) throw new Error(`expected ok, got ${r.reason}`);
  return r.identity;
};
const claims = (extra: Record<string, unknown> = {}) => ({ tid: 'acme', sub: 'user-1', ...extra });
const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
/** Moves jose's real clock (cooldown, cacheMaxAge) forward without sleeping. */
function advanceRealClock(ms: number): void {
  vi.useFakeTimers({ toFake: ['Date'] });
  vi.setSystemTime(Date.now() + ms);
}

let rs: SigningKey, es: SigningKey, ed: SigningKey;
let jwks: JwksServer;
const pemDir = mkdtempSync(join(tmpdir(), 'tg-jwt-'));

beforeAll(async () => {
  [rs, es, ed] = await Promise.all([newSigningKey('RS256', 'rs-1'), newSigningKey('ES256', 'es-1'), newSigningKey('EdDSA', 'ed-1')]);
  jwks = await JwksServer.start([rs, es, ed]);
  writeFileSync(join(pemDir, 'rs.pem'), await publicPem(rs));
});
afterAll(() => jwks.down());
afterEach(() => {
  vi.useRealTimers();
  nowMs = NOW * 1000;
});

describe('jwtFailureReason: jose codes mapped once', () => {
  const { JWTClaimValidationFailed: Claim } = errors;
  const cases: [string, unknown, string][] = [
    ['expired', new errors.JWTExpired('x', {}, 'exp', 'check_failed'), 'expired'],
    ['nbf in the future', new Claim('x', {}, 'nbf', 'check_failed'), 'not_yet_valid'],
    ['nbf not a number', new Claim('x', {}, 'nbf', 'invalid'), 'invalid_claims'],
    ['iss', new Claim('x', {}, 'iss', 'check_failed'), 'wrong_issuer'],
    ['aud', new Claim('x', {}, 'aud', 'check_failed'), 'wrong_audience'],
    ['exp missing', new Claim('x', {}, 'exp', 'missing'), 'missing_exp'],
    ['exp not a number', new Claim('x', {}, 'exp', 'invalid'), 'invalid_claims'],
    ['typ', new Claim('x', {}, 'typ', 'check_failed'), 'invalid_claims'],
    ['signature', new errors.JWSSignatureVerificationFailed(), 'bad_signature'],
    ['alg', new errors.JOSEAlgNotAllowed('x'), 'alg_not_allowed'],
    ['no key', new errors.JWKSNoMatchingKey(), 'unknown_kid'],
    ['several keys', new errors.JWKSMultipleMatchingKeys(), 'unknown_kid'],
    ['jwks timeout', new errors.JWKSTimeout(), 'jwks_unavailable'],
    ['jwks invalid', new errors.JWKSInvalid('x'), 'jwks_unavailable'],
    ['jwks non-200', new errors.JOSEError('Expected 200 OK'), 'jwks_unavailable'],
    ['fetch failed', new TypeError('fetch failed', { cause: new Error('ECONNREFUSED') }), 'jwks_unavailable'],
    ['abort', Object.assign(new Error('aborted'), { name: 'AbortError' }), 'jwks_unavailable'],
    ['ours: jwks down', new JwksUnavailableError(), 'jwks_unavailable'],
    ['ours: jwks down, fetch failed', new JwksUnavailableError(new TypeError('fetch failed')), 'jwks_unavailable'],
    ['ours: jwks too large', new JwksRefusedError('too_large', 1024), 'jwks_too_large'],
    ['ours: jwks too many keys', new JwksRefusedError('too_many_keys', 10), 'jwks_too_many_keys'],
    ['ours: no cached key, the JWKS too large', new JwksUnavailableError(new JwksRefusedError('too_large', 1024)), 'jwks_too_large'],
    ['ours: no cached key, too many keys', new JwksUnavailableError(new JwksRefusedError('too_many_keys', 10)), 'jwks_too_many_keys'],
    ['JWS invalid', new errors.JWSInvalid('x'), 'malformed'],
    ['JWT invalid', new errors.JWTInvalid('x'), 'malformed'],
    ['not supported', new errors.JOSENotSupported('x'), 'malformed'],
    ['JWK invalid', new errors.JWKInvalid('x'), 'key_unusable'],
    ['short RSA modulus', new TypeError('RS256 requires key modulusLength to be 2048 bits or larger'), 'key_unusable'],
    ['bug', new Error('boom'), 'internal_error'],
    ['not an error', 'str', 'internal_error'],
    ['undefined', undefined, 'internal_error'],
  ];
  it.each(cases)('%s', (_name, err, reason) => {
    expect(jwtFailureReason(err)).toBe(reason);
    expect(JWT_FAILURE_REASONS).toContain(reason);
  });
});

describe('valid tokens', () => {
  it.each(['rs', 'es', 'ed'] as const)('%s key from the JWKS', async (which) => {
    const key = { rs, es, ed }[which];
    const v = await JwtVerifier.create([issuer({ jwksUri: jwks.url })], clock);
    const id = ok(await v.verify(await mint(key, claims({ roles: ['admin'], scope: 'orders:read' }), { iss: ISS, aud: AUD, exp: EXP })));
    expect(id).toEqual({ issuer: ISS, tenantId: 'acme', subject: 'user-1', roles: ['admin'], scopes: ['orders:read'], expiresAt: EXP });
    expect(Object.isFrozen(id) && Object.isFrozen(id.roles)).toBe(true);
  });

  it('HS256 secret', async () => {
    const v = await JwtVerifier.create([issuer({ secret: SECRET, algorithms: ['HS256'] })], clock);
    ok(await v.verify(await mint({ hs256: new TextEncoder().encode(SECRET) }, claims(), { iss: ISS, aud: AUD, exp: EXP })));
    const wrong = await mint({ hs256: new TextEncoder().encode(SECRET + '!') }, claims(), { iss: ISS, aud: AUD, exp: EXP });
    expect(await v.verify(wrong)).toEqual({ ok: false, reason: 'bad_signature' });
  });

  it('inline JWK, and a PEM file by path relative to baseDir (a kid header does not matter for PEM)', async () => {
    const v = await JwtVerifier.create(
      [issuer({ keys: [es.publicJwk as Record<string, unknown>] }), issuer({ issuer: 'https://pem.test/', keys: ['rs.pem'], algorithms: ['RS256'] })],
      { ...clock, baseDir: pemDir },
    );
    ok(await v.verify(await mint(es, claims(), { iss: ISS, aud: AUD, exp: EXP })));
    ok(await v.verify(await mint(rs, claims(), { iss: 'https://pem.test/', aud: AUD, exp: EXP })));
    ok(await v.verify(await mint(rs, claims(), { iss: 'https://pem.test/', aud: AUD, exp: EXP, kid: null })));
  });

  it('inline PEM text (from an env var)', async () => {
    const v = await JwtVerifier.create([issuer({ keys: [await publicPem(rs)], algorithms: ['RS256'] })], clock);
    ok(await v.verify(await mint(rs, claims(), { iss: ISS, aud: AUD, exp: EXP })));
  });

  it.skipIf(!hasOpenssl())('X.509 certificate file', async () => {
    const [cert, key] = [join(pemDir, 'cert.pem'), join(pemDir, 'key.pem')];
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=tg-test'], { stdio: 'ignore' });
    const privateKey = await importPKCS8(readFileSync(key, 'utf8'), 'RS256');
    const v = await JwtVerifier.create([issuer({ keys: [cert], algorithms: ['RS256'] })], clock);
    const token = await new SignJWT(claims()).setProtectedHeader({ alg: 'RS256' }).setIssuer(ISS).setAudience(AUD).setExpirationTime(EXP).sign(privateKey);
    ok(await v.verify(token));
  });

  it('audience list: any one configured audience matches', async () => {
    const v = await JwtVerifier.create([issuer({ keys: [es.publicJwk as Record<string, unknown>], audience: ['api://a', AUD] })], clock);
    ok(await v.verify(await mint(es, claims(), { iss: ISS, aud: AUD, exp: EXP })));
  });
});

describe('several issuers', () => {
  const A = 'https://a.test/';
  const B = 'https://b.test/';
  const C = 'https://c.test/';
  let v: JwtVerifier;
  let other: SigningKey;
  beforeAll(async () => {
    other = await newSigningKey('ES256', 'es-1'); // same kid as A's key, different key
    v = await JwtVerifier.create(
      [issuer({ issuer: A, jwksUri: jwks.url }), issuer({ issuer: B, secret: SECRET, algorithms: ['HS256'], tenantClaim: 'org.id' }), issuer({ issuer: C, keys: [other.publicJwk as Record<string, unknown>], algorithms: ['ES256'] })],
      clock,
    );
  });

  it('each token is verified by the issuer its iss names', async () => {
    expect(ok(await v.verify(await mint(rs, claims(), { iss: A, aud: AUD, exp: EXP }))).issuer).toBe(A);
    expect(ok(await v.verify(await mint({ hs256: new TextEncoder().encode(SECRET) }, { org: { id: 'globex' } }, { iss: B, aud: AUD, exp: EXP })))).toMatchObject({ issuer: B, tenantId: 'globex' });
    expect(ok(await v.verify(await mint(other, claims(), { iss: C, aud: AUD, exp: EXP }))).issuer).toBe(C);
  });

  it("a key of one issuer does not verify another issuer's tokens", async () => {
    expect(await v.verify(await mint(other, claims(), { iss: A, aud: AUD, exp: EXP }))).toEqual({ ok: false, reason: 'bad_signature' });
    expect(await v.verify(await mint(es, claims(), { iss: C, aud: AUD, exp: EXP }))).toEqual({ ok: false, reason: 'bad_signature' });
    expect(await v.verify(await mint({ hs256: new TextEncoder().encode(SECRET) }, claims(), { iss: A, aud: AUD, exp: EXP }))).toEqual({ ok: false, reason: 'alg_not_allowed' });
  });

  it('unknown or missing iss → unknown_issuer (a wrong iss never reaches a key)', async () => {
    expect(await v.verify(await mint(rs, claims(), { iss: 'https://evil.test/', aud: AUD, exp: EXP }))).toEqual({ ok: false, reason: 'unknown_issuer' });
    expect(await v.verify(await mint(rs, claims(), { aud: AUD, exp: EXP }))).toEqual({ ok: false, reason: 'unknown_issuer' });
    expect(await v.verify(await mint(rs, claims({ iss: 42 }), { aud: AUD, exp: EXP }))).toEqual({ ok: false, reason: 'unknown_issuer' });
  });
});

describe('attacks and malformed input', () => {
  let v: JwtVerifier;
  beforeAll(async () => {
    v = await JwtVerifier.create(
      [issuer({ jwksUri: jwks.url, algorithms: ['RS256'] }), issuer({ issuer: 'https://pem.test/', keys: ['rs.pem'], algorithms: ['RS256'] }), issuer({ issuer: 'https://hs.test/', secret: SECRET, algorithms: ['HS256'] })],
      { ...clock, baseDir: pemDir },
    );
  });

  it.each([ISS, 'https://pem.test/', 'https://hs.test/'])('alg none (built by hand) → alg_not_allowed for %s', async (iss) => {
    const token = `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ ...claims(), iss, aud: AUD, exp: EXP })}.`;
    expect(await v.verify(token)).toEqual({ ok: false, reason: 'alg_not_allowed' });
  });

  it.each([ISS, 'https://pem.test/'])('HS256 signed with the RSA public key PEM as secret → alg_not_allowed for %s', async (iss) => {
    const secret = new TextEncoder().encode(await publicPem(rs));
    const token = await new SignJWT(claims()).setProtectedHeader({ alg: 'HS256', kid: rs.kid }).setIssuer(iss).setAudience(AUD).setExpirationTime(EXP).sign(secret);
    expect(await v.verify(token)).toEqual({ ok: false, reason: 'alg_not_allowed' });
  });

  it('a valid ES256 token against an RS256-only issuer → alg_not_allowed', async () => {
    expect(await v.verify(await mint(es, claims(), { iss: ISS, aud: AUD, exp: EXP }))).toEqual({ ok: false, reason: 'alg_not_allowed' });
  });

  it('tampered payload or signature → bad_signature', async () => {
    const [h, , s] = (await mint(rs, claims(), { iss: ISS, aud: AUD, exp: EXP })).split('.');
    expect(await v.verify(`${h}.${b64({ ...claims({ tid: 'globex' }), iss: ISS, aud: AUD, exp: EXP })}.${s}`)).toEqual({ ok: false, reason: 'bad_signature' });
    const good = await mint(rs, claims(), { iss: ISS, aud: AUD, exp: EXP });
    const flipped = good.slice(0, -2) + (good.at(-2) === 'A' ? 'B' : 'A') + good.at(-1);
    expect(await v.verify(flipped)).toEqual({ ok: false, reason: 'bad_signature' });
  });

  it('a 64 KB token → token_too_large, before any parsing', async () => {
    const big = await mint(rs, claims({ pad: 'p'.repeat(64 * 1024) }), { iss: ISS, aud: AUD, exp: EXP });
    expect(await v.verify(big)).toEqual({ ok: false, reason: 'token_too_large' });
    expect(await v.verify('!'.repeat(64 * 1024))).toEqual({ ok: false, reason: 'token_too_large' });
    // Counted in bytes: 3000 chars of 3 UTF-8 bytes each exceed 8192.
    expect(await v.verify('€'.repeat(3000))).toEqual({ ok: false, reason: 'token_too_large' });
  });

  it("the chosen issuer's own maxTokenBytes applies", async () => {
    const small = await JwtVerifier.create([issuer({ keys: [rs.publicJwk as Record<string, unknown>], maxTokenBytes: 1024 }), issuer({ issuer: 'https://big.test/', secret: SECRET, algorithms: ['HS256'] })], clock);
    const token = await mint(rs, claims({ pad: 'p'.repeat(1500) }), { iss: ISS, aud: AUD, exp: EXP });
    expect(await small.verify(token)).toEqual({ ok: false, reason: 'token_too_large' });
  });

  it.each([
    ['empty', ''],
    ['one part', 'abc'],
    ['two parts', 'abc.def'],
    ['JWE shape', 'a.b.c.d.e'],
    ['payload not JSON', `${b64({ alg: 'RS256' })}.${Buffer.from('nope').toString('base64url')}.sig`],
    ['payload an array', `${b64({ alg: 'RS256' })}.${b64([1])}.sig`],
    ['spaces', 'ab c.def.ghi'],
    ['not a string', 42 as unknown as string],
    ['undefined', undefined as unknown as string],
  ])('%s → malformed', async (_name, token) => {
    expect(await v.verify(token)).toEqual({ ok: false, reason: 'malformed' });
  });

  it('a crit header jose does not understand → malformed', async () => {
    // jose will not sign this either, so sign by hand: a genuine signature, only the header is unusable.
    const input = `${b64({ alg: 'RS256', kid: rs.kid, crit: ['x-tg'], 'x-tg': 1 })}.${b64({ ...claims(), iss: ISS, aud: AUD, exp: EXP })}`;
    const sig = await crypto.subtle.sign('RSASSA-PKCS1-v1_5', rs.privateKey, new TextEncoder().encode(input));
    const token = `${input}.${Buffer.from(sig).toString('base64url')}`;
    expect(await v.verify(token)).toEqual({ ok: false, reason: 'malformed' });
  });
});

describe('time and registered claims (injected clock)', () => {
  let v: JwtVerifier;
  beforeAll(async () => {
    v = await JwtVerifier.create([issuer({ keys: [es.publicJwk as Record<string, unknown>], clockToleranceSec: 30 })], { ...clock, cacheTtlMs: 0 });
  });
  const token = (opts: Parameters<typeof mint>[2], extra: Record<string, unknown> = {}) => mint(es, claims(extra), { iss: ISS, aud: AUD, ...opts });

  it('expired beyond the tolerance → expired; within it → ok', async () => {
    expect(await v.verify(await token({ exp: NOW - 31 }))).toEqual({ ok: false, reason: 'expired' });
    ok(await v.verify(await token({ exp: NOW - 29 })));
  });

  it('nbf in the future beyond the tolerance → not_yet_valid', async () => {
    expect(await v.verify(await token({ exp: EXP, nbf: NOW + 60 }))).toEqual({ ok: false, reason: 'not_yet_valid' });
    ok(await v.verify(await token({ exp: EXP, nbf: NOW + 20 })));
  });

  it('missing exp → missing_exp; exp not a number → invalid_claims', async () => {
    expect(await v.verify(await token({ exp: null }))).toEqual({ ok: false, reason: 'missing_exp' });
    expect(await v.verify(await token({ exp: null }, { exp: 'tomorrow' }))).toEqual({ ok: false, reason: 'invalid_claims' });
  });

  it('wrong audience → wrong_audience', async () => {
    expect(await v.verify(await mint(es, claims(), { iss: ISS, aud: 'api://billing', exp: EXP }))).toEqual({ ok: false, reason: 'wrong_audience' });
    expect(await v.verify(await mint(es, claims(), { iss: ISS, exp: EXP }))).toEqual({ ok: false, reason: 'wrong_audience' });
  });

  it('the clock is the injected one', async () => {
    const t = await token({ exp: NOW + 100 });
    ok(await v.verify(t));
    nowMs = (NOW + 131) * 1000;
    expect(await v.verify(t)).toEqual({ ok: false, reason: 'expired' });
  });
});

describe('claims → identity', () => {
  let v: JwtVerifier;
  beforeAll(async () => {
    v = await JwtVerifier.create(
      [
        issuer({ keys: [es.publicJwk as Record<string, unknown>] }),
        issuer({ issuer: 'https://kc.test/', keys: [es.publicJwk as Record<string, unknown>], tenantClaim: 'org.id', rolesClaim: 'realm_access.roles', scopesClaim: 'scp', subjectClaim: 'preferred_username' }),
        issuer({ issuer: 'https://auth0.test/', keys: [es.publicJwk as Record<string, unknown>], tenantClaim: 'https://tg.test/tenant' }),
        issuer({ issuer: 'https://proto.test/', keys: [es.publicJwk as Record<string, unknown>], tenantClaim: 'constructor', rolesClaim: 'toString', scopesClaim: 'scope.constructor' }),
      ],
      clock,
    );
  });
  const verify = (c: Record<string, unknown>, iss = ISS) => mint(es, c, { iss, aud: AUD, exp: EXP }).then((t) => v.verify(t));
  const reason = async (c: Record<string, unknown>, iss = ISS) => {
    const r = await verify(c, iss);
    return r.ok ? 'ok' : r.reason;
  };

  it('dotted paths (org.id, realm_access.roles) and namespaced claim names with dots', async () => {
    expect(ok(await verify({ org: { id: 'globex' }, realm_access: { roles: ['member'] }, scp: ['a:read'], preferred_username: 'ann' }, 'https://kc.test/'))).toMatchObject({
      tenantId: 'globex',
      subject: 'ann',
      roles: ['member'],
      scopes: ['a:read'],
    });
    expect(ok(await verify({ 'https://tg.test/tenant': 'initech' }, 'https://auth0.test/')).tenantId).toBe('initech');
    expect(await reason({ org: 'globex' }, 'https://kc.test/')).toBe('missing_tenant_claim');
  });

  it('inherited properties never resolve a claim (constructor, toString)', async () => {
    expect(await reason({}, 'https://proto.test/')).toBe('missing_tenant_claim');
    expect(ok(await verify({ constructor: 'acme', scope: 'a' }, 'https://proto.test/'))).toMatchObject({ tenantId: 'acme', roles: [], scopes: [] });
  });

  it.each([
    ['absent', {}],
    ['empty', { tid: '' }],
    ['null', { tid: null }],
    ['a fraction', { tid: 7.5 }],
    ['an unsafe integer', { tid: 2 ** 53 }],
    ['an object', { tid: { id: 'acme' } }],
    ['an array', { tid: ['acme'] }],
  ])('tenant claim %s → missing_tenant_claim', async (_n, c) => {
    expect(await reason(c)).toBe('missing_tenant_claim');
  });

  it.each([
    ['CR/LF', { tid: 'acme\r\nX-Admin: 1' }],
    ['LF', { tid: 'acme\n' }],
    ['NUL', { tid: 'acme\u0000' }],
    ['300 chars', { tid: 'a'.repeat(300) }],
    ['non-ASCII', { tid: 'acmé' }],
    ['leading space', { tid: ' acme' }],
    ['subject with CR/LF', { sub: 'u\r\nx: y' }],
    ['257 roles (maxClaimItems 256)', { roles: Array.from({ length: 257 }, (_, i) => `r${i}`) }],
    ['257 scopes in one string', { scope: Array.from({ length: 257 }, (_, i) => `s${i}`).join(' ') }],
    ['257 roles that would all be dropped', { roles: Array.from({ length: 257 }, () => 'bad item') }],
  ])('%s → unsafe_claim', async (_n, c) => {
    expect(await reason({ ...claims(), ...c })).toBe('unsafe_claim');
  });

  it.each([
    ['roles a number', { roles: 3 }],
    ['roles an object', { roles: { admin: true } }],
    ['subject a number', { sub: 12 }],
  ])('%s → invalid_claims', async (_n, c) => {
    expect(await reason({ ...claims(), ...c })).toBe('invalid_claims');
  });

  it('roles and scopes as a space-separated string or an array; absent → []', async () => {
    expect(ok(await verify(claims({ roles: 'admin  member', scope: 'orders:read orders:write' })))).toMatchObject({ roles: ['admin', 'member'], scopes: ['orders:read', 'orders:write'] });
    expect(ok(await verify(claims({ roles: ['admin'], scope: ['orders:read'] })))).toMatchObject({ roles: ['admin'], scopes: ['orders:read'] });
    expect(ok(await verify({ tid: 'acme' }))).toMatchObject({ subject: null, roles: [], scopes: [] });
  });

  it('limits are inclusive: 256 chars, 256 items', async () => {
    ok(await verify(claims({ tid: 't'.repeat(256), roles: Array.from({ length: 256 }, (_, i) => `r${i}`) })));
  });

  it('a safe integer tenant is used as its decimal string', async () => {
    expect(ok(await verify({ tid: 7 })).tenantId).toBe('7');
    expect(ok(await verify({ tid: 9_007_199_254_740_991 })).tenantId).toBe('9007199254740991');
  });

  it.each([
    ['a role with a space (an Okta group)', { roles: ['admin', 'Sales Team'] }, ['admin']],
    ['a roles string with a tab', { roles: 'admin\towner member' }, ['member']],
    ['a roles string with LF', { roles: 'admin\nowner' }, []],
    ['a 257-char role', { roles: ['admin', 'r'.repeat(257)] }, ['admin']],
    ['an empty role, a number, an object, non-ASCII', { roles: ['', 1, { a: 1 }, 'rôle', 'admin'] }, ['admin']],
  ])('%s: the unusable items are dropped and counted, the token is accepted', async (_n, c, kept) => {
    const before = v.droppedClaimItems().get(ISS) ?? 0;
    const id = ok(await verify(claims(c)));
    expect(id.roles).toEqual(kept);
    const given = typeof c.roles === 'string' ? c.roles.split(' ').length : (c.roles as unknown[]).length;
    expect((v.droppedClaimItems().get(ISS) ?? 0) - before).toBe(given - kept.length);
  });
});

describe('remote JWKS', () => {
  const randomKid = () => `kid-${randomUUID()}`;

  it('unknown kid → unknown_kid; 50 random kids (sequential, then concurrent) cause no refetch within the cooldown', async () => {
    const server = await JwksServer.start([rs]);
    try {
      const v = await JwtVerifier.create([issuer({ jwksUri: server.url })], clock);
      ok(await v.verify(await mint(rs, claims(), { iss: ISS, aud: AUD, exp: EXP })));
      expect(server.fetches).toBe(1);
      for (let i = 0; i < 50; i++) {
        expect(await v.verify(await mint(rs, claims(), { iss: ISS, aud: AUD, exp: EXP, kid: randomKid() }))).toEqual({ ok: false, reason: 'unknown_kid' });
      }
      const burst = await Promise.all(Array.from({ length: 50 }, async () => v.verify(await mint(rs, claims(), { iss: ISS, aud: AUD, exp: EXP, kid: randomKid() }))));
      expect(new Set(burst.map((r) => (r.ok ? 'ok' : r.reason)))).toEqual(new Set(['unknown_kid']));
      expect(server.fetches).toBe(1);

      // After the cooldown: one refetch, however many unknown kids arrive.
      advanceRealClock(30_001);
      await Promise.all(Array.from({ length: 50 }, async () => v.verify(await mint(rs, claims(), { iss: ISS, aud: AUD, exp: EXP, kid: randomKid() }))));
      expect(server.fetches).toBe(2);
    } finally {
      await server.down();
    }
  });

  it('a cold verifier hit by 50 concurrent tokens fetches once', async () => {
    const server = await JwksServer.start([rs]);
    try {
      const v = await JwtVerifier.create([issuer({ jwksUri: server.url })], clock);
      const tokens = await Promise.all(Array.from({ length: 50 }, (_, i) => mint(rs, claims({ n: i }), { iss: ISS, aud: AUD, exp: EXP })));
      const results = await Promise.all(tokens.map((t) => v.verify(t)));
      expect(results.every((r) => r.ok)).toBe(true);
      expect(server.fetches).toBe(1);
    } finally {
      await server.down();
    }
  });

  it('key rotation: a new kid is accepted once it is published and the cooldown has passed', async () => {
    const server = await JwksServer.start([rs]);
    try {
      const v = await JwtVerifier.create([issuer({ jwksUri: server.url })], clock);
      ok(await v.verify(await mint(rs, claims(), { iss: ISS, aud: AUD, exp: EXP })));
      const next = await newSigningKey('RS256', 'rs-2');
      const nextToken = await mint(next, claims(), { iss: ISS, aud: AUD, exp: EXP });
      expect(await v.verify(nextToken)).toEqual({ ok: false, reason: 'unknown_kid' }); // not published yet
      server.rotate(next);
      expect(await v.verify(nextToken)).toEqual({ ok: false, reason: 'unknown_kid' }); // published, cooldown running
      expect(server.fetches).toBe(1);
      advanceRealClock(30_001);
      ok(await v.verify(nextToken));
      expect(server.fetches).toBe(2);
      // The withdrawn key is gone from the refetched set.
      expect(await v.verify(await mint(rs, claims({ n: 2 }), { iss: ISS, aud: AUD, exp: EXP }))).toEqual({ ok: false, reason: 'unknown_kid' });
    } finally {
      await server.down();
    }
  });

  it('tokens without kid: every key of the alg is tried (two RSA keys in the set)', async () => {
    const a = await newSigningKey('RS256', 'a');
    const b = await newSigningKey('RS256', 'b');
    const stranger = await newSigningKey('RS256', 'c');
    const server = await JwksServer.start([a, b]);
    try {
      const v = await JwtVerifier.create([issuer({ jwksUri: server.url, algorithms: ['RS256'] })], clock);
      ok(await v.verify(await mint(a, claims(), { iss: ISS, aud: AUD, exp: EXP, kid: null })));
      ok(await v.verify(await mint(b, claims(), { iss: ISS, aud: AUD, exp: EXP, kid: null })));
      expect(await v.verify(await mint(stranger, claims(), { iss: ISS, aud: AUD, exp: EXP, kid: null }))).toEqual({ ok: false, reason: 'bad_signature' });
      // Claims are checked on the key that verified: expired, not bad_signature.
      expect(await v.verify(await mint(b, claims(), { iss: ISS, aud: AUD, exp: NOW - 60, kid: null }))).toEqual({ ok: false, reason: 'expired' });
    } finally {
      await server.down();
    }
  });

  it('endpoint down: fetched keys keep working; an unknown kid is unknown_kid within the cooldown, jwks_unavailable after', async () => {
    const server = await JwksServer.start([rs, es]);
    const v = await JwtVerifier.create([issuer({ jwksUri: server.url })], { ...clock, cacheTtlMs: 0 });
    ok(await v.verify(await mint(rs, claims(), { iss: ISS, aud: AUD, exp: EXP })));
    await server.down();
    ok(await v.verify(await mint(rs, claims({ n: 1 }), { iss: ISS, aud: AUD, exp: EXP })));
    ok(await v.verify(await mint(es, claims({ n: 1 }), { iss: ISS, aud: AUD, exp: EXP })));
    expect(await v.verify(await mint(rs, claims(), { iss: ISS, aud: AUD, exp: EXP, kid: randomKid() }))).toEqual({ ok: false, reason: 'unknown_kid' });
    advanceRealClock(30_001);
    expect(await v.verify(await mint(rs, claims(), { iss: ISS, aud: AUD, exp: EXP, kid: randomKid() }))).toEqual({ ok: false, reason: 'jwks_unavailable' });
    ok(await v.verify(await mint(rs, claims({ n: 2 }), { iss: ISS, aud: AUD, exp: EXP })));
  });

  it('endpoint failing past cacheMaxAge: known keys still verify, and the endpoint is retried with backoff (1 s, doubling)', async () => {
    const server = await JwksServer.start([rs]);
    try {
      // cacheMaxAge 0: jose wants to refetch on every lookup, the worst case for an outage.
      const v = await JwtVerifier.create([issuer({ jwksUri: server.url })], { ...clock, cacheTtlMs: 0, jwksCacheMaxAgeMs: 0 });
      ok(await v.verify(await mint(rs, claims(), { iss: ISS, aud: AUD, exp: EXP })));
      expect(server.fetches).toBe(1);
      server.mode = 'error';
      advanceRealClock(0); // Date stands still from here, moved only by hand
      for (let i = 0; i < 20; i++) ok(await v.verify(await mint(rs, claims({ n: i }), { iss: ISS, aud: AUD, exp: EXP })));
      for (let i = 0; i < 20; i++) {
        expect(await v.verify(await mint(rs, claims(), { iss: ISS, aud: AUD, exp: EXP, kid: randomKid() }))).toEqual({ ok: false, reason: 'jwks_unavailable' });
      }
      expect(server.fetches).toBe(2); // one failed attempt, then left alone for 1 s
      advanceRealClock(1001);
      ok(await v.verify(await mint(rs, claims({ n: 'x' }), { iss: ISS, aud: AUD, exp: EXP })));
      expect(server.fetches).toBe(3); // the second failure: left alone for 2 s
      advanceRealClock(1500);
      ok(await v.verify(await mint(rs, claims({ n: 'y' }), { iss: ISS, aud: AUD, exp: EXP })));
      expect(server.fetches).toBe(3);

      // Recovery: the next retry succeeds and picks up a rotated-in key.
      server.mode = 'ok';
      const next = await newSigningKey('ES256', 'es-new');
      server.publish(next);
      advanceRealClock(30_001);
      ok(await v.verify(await mint(next, claims(), { iss: ISS, aud: AUD, exp: EXP })));
    } finally {
      await server.down();
    }
  });

  it.each([
    ['refused', 'down'],
    ['500', 'error'],
    ['not JSON', 'garbage'],
    ['hanging (timeout)', 'hang'],
  ] as const)('cold start with the endpoint %s → jwks_unavailable', async (_n, mode) => {
    const server = await JwksServer.start([rs]);
    try {
      if (mode === 'down') await server.down();
      else server.mode = mode;
      const v = await JwtVerifier.create([issuer({ jwksUri: server.url })], { ...clock, jwksTimeoutMs: 100 });
      expect(await v.verify(await mint(rs, claims(), { iss: ISS, aud: AUD, exp: EXP }))).toEqual({ ok: false, reason: 'jwks_unavailable' });
    } finally {
      await server.down();
    }
  });

  it('reload: a verifier built with `previous` starts with its JWKS (works while the endpoint is down)', async () => {
    const server = await JwksServer.start([rs]);
    const old = await JwtVerifier.create([issuer({ jwksUri: server.url })], clock);
    ok(await old.verify(await mint(rs, claims(), { iss: ISS, aud: AUD, exp: EXP })));
    await server.down();
    const next = await JwtVerifier.create([issuer({ jwksUri: server.url, clockToleranceSec: 5 })], { ...clock, previous: old });
    ok(await next.verify(await mint(rs, claims({ n: 1 }), { iss: ISS, aud: AUD, exp: EXP })));
    expect(server.fetches).toBe(1);
    const cold = await JwtVerifier.create([issuer({ jwksUri: server.url })], clock);
    expect(await cold.verify(await mint(rs, claims({ n: 1 }), { iss: ISS, aud: AUD, exp: EXP }))).toEqual({ ok: false, reason: 'jwks_unavailable' });
  });
});

describe('JWKS limits (#33.6): bytes and keys capped, http:// only on loopback unless opted in', () => {
  const MB = 1024 * 1024;
  const token = (n = 0) => mint(rs, claims({ n }), { iss: ISS, aud: AUD, exp: EXP });

  it.each([
    ['streamed (no Content-Length): cut off past the cap', false],
    ['with a Content-Length over the cap: refused unread', true],
  ])('a 64 MB JWKS, %s → jwks_too_large', async (_n, declareLength) => {
    const server = await JwksServer.start([rs]);
    try {
      server.mode = 'huge';
      server.huge = { bytes: 64 * MB, declareLength };
      const v = await JwtVerifier.create([issuer({ jwksUri: server.url, jwksMaxBytes: 256 * 1024 })], clock);
      expect(await v.verify(await token())).toEqual({ ok: false, reason: 'jwks_too_large' });
      expect(server.fetches).toBe(1);
      // The connection was cut: the server got a fraction of the 64 MB onto the wire (socket buffers, not the body).
      await new Promise((r) => setTimeout(r, 50));
      expect(server.hugeBytesSent).toBeLessThan(16 * MB);
      // Within the cooldown the endpoint is left alone, and the reason stays the precise one.
      expect(await v.verify(await token(1))).toEqual({ ok: false, reason: 'jwks_too_large' });
      expect(server.fetches).toBe(1);
    } finally {
      await server.down();
    }
  });

  it('a JWKS just under the byte cap is used', async () => {
    const server = await JwksServer.start([rs]);
    try {
      server.mode = 'huge';
      server.huge = { bytes: 200 * 1024, declareLength: false };
      const v = await JwtVerifier.create([issuer({ jwksUri: server.url, jwksMaxBytes: 256 * 1024 })], clock);
      ok(await v.verify(await token()));
    } finally {
      await server.down();
    }
  });

  it('more keys than jwksMaxKeys → jwks_too_many_keys; exactly the cap is used', async () => {
    const server = await JwksServer.start([rs]);
    try {
      server.extraKeys = 10; // 11 keys
      const over = await JwtVerifier.create([issuer({ jwksUri: server.url, jwksMaxKeys: 10 })], clock);
      expect(await over.verify(await token())).toEqual({ ok: false, reason: 'jwks_too_many_keys' });
      const at = await JwtVerifier.create([issuer({ jwksUri: server.url, jwksMaxKeys: 11 })], clock);
      ok(await at.verify(await token()));
      // The default cap (100) holds against 500 keys (~200 KB: under the default byte cap).
      server.extraKeys = 500;
      const dflt = await JwtVerifier.create([issuer({ jwksUri: server.url })], clock);
      expect(await dflt.verify(await token())).toEqual({ ok: false, reason: 'jwks_too_many_keys' });
    } finally {
      await server.down();
    }
  });

  it('an endpoint that turns huge is a failed fetch: the keys fetched last keep verifying, a new kid is jwks_too_large', async () => {
    const server = await JwksServer.start([rs]);
    try {
      const v = await JwtVerifier.create([issuer({ jwksUri: server.url, jwksMaxBytes: 64 * 1024 })], { ...clock, cacheTtlMs: 0, jwksCacheMaxAgeMs: 0 });
      ok(await v.verify(await token()));
      server.mode = 'huge';
      server.huge = { bytes: 8 * MB, declareLength: false };
      ok(await v.verify(await token(1)));
      expect(await v.verify(await mint(rs, claims(), { iss: ISS, aud: AUD, exp: EXP, kid: 'rotated-in' }))).toEqual({ ok: false, reason: 'jwks_too_large' });
      expect(server.fetches).toBe(2);
    } finally {
      await server.down();
    }
  });

  it('http:// outside loopback is refused at create, naming jwksUri and the opt-in; loopback and the opt-in are accepted', async () => {
    await expect(JwtVerifier.create([issuer({ jwksUri: 'http://idp.example.com/jwks.json' })])).rejects.toThrow(
      /jwt\.issuers\[0\] \(https:\/\/login\.test\/\)\.jwksUri: http:\/\/ outside loopback .*jwksAllowHttp: true/,
    );
    for (const uri of ['http://127.0.0.1:1/j', 'http://127.8.9.10/j', 'http://localhost/j', 'http://[::1]:8/j', 'https://idp.example.com/j']) {
      await expect(JwtVerifier.create([issuer({ jwksUri: uri })])).resolves.toBeInstanceOf(JwtVerifier);
    }
    await expect(JwtVerifier.create([issuer({ jwksUri: 'http://idp.example.com/jwks.json', jwksAllowHttp: true })])).resolves.toBeInstanceOf(JwtVerifier);
    // Hosts that only look like loopback are not.
    for (const uri of ['http://127.0.0.1.example.com/j', 'http://localhost.example.com/j', 'http://[::ffff:7f00:1]/j']) {
      await expect(JwtVerifier.create([issuer({ jwksUri: uri })]), uri).rejects.toThrow(/jwksAllowHttp/);
    }
  });
});

describe('verified-token cache', () => {
  // jwksCacheMaxAgeMs 0 makes every key lookup a JWKS fetch: `fetches` counts full verifications, no spy needed.
  async function setup(extra: Partial<IssuerConfig> = {}, cacheTtlMs = 30_000) {
    const server = await JwksServer.start([rs]);
    const v = await JwtVerifier.create([issuer({ jwksUri: server.url, ...extra })], { ...clock, cacheTtlMs, jwksCacheMaxAgeMs: 0 });
    return { server, v };
  }

  it('a repeated token skips verification, until the TTL', async () => {
    const { server, v } = await setup();
    try {
      const t = await mint(rs, claims(), { iss: ISS, aud: AUD, exp: EXP });
      const first = ok(await v.verify(t));
      expect(ok(await v.verify(t))).toBe(first);
      expect(server.fetches).toBe(1);
      nowMs += 29_999;
      ok(await v.verify(t));
      expect(server.fetches).toBe(1);
      nowMs += 1;
      ok(await v.verify(t));
      expect(server.fetches).toBe(2);
    } finally {
      await server.down();
    }
  });

  it('a cached token stops at its exp, then meets the full rules (expired, with the tolerance)', async () => {
    const { server, v } = await setup({ clockToleranceSec: 10 }, 600_000);
    try {
      const t = await mint(rs, claims(), { iss: ISS, aud: AUD, exp: NOW + 60 });
      ok(await v.verify(t));
      nowMs = (NOW + 65) * 1000; // past exp, within the tolerance: re-verified, accepted
      ok(await v.verify(t));
      expect(server.fetches).toBe(2);
      nowMs = (NOW + 71) * 1000;
      expect(await v.verify(t)).toEqual({ ok: false, reason: 'expired' });
      expect(await v.verify(t)).toEqual({ ok: false, reason: 'expired' });
    } finally {
      await server.down();
    }
  });

  it('a cached identity survives its key being withdrawn (within the TTL), and clear() forgets it', async () => {
    const { server, v } = await setup();
    try {
      const t = await mint(rs, claims(), { iss: ISS, aud: AUD, exp: EXP });
      ok(await v.verify(t));
      server.rotate(await newSigningKey('RS256', 'other'));
      ok(await v.verify(t));
      v.clear();
      advanceRealClock(30_001); // let the JWKS cooldown pass so the withdrawal is seen
      expect(await v.verify(t)).toEqual({ ok: false, reason: 'unknown_kid' });
    } finally {
      await server.down();
    }
  });

  it('failures are not cached, and the cache is keyed by a hash, never the token', async () => {
    const { server, v } = await setup();
    try {
      const t = await mint(rs, claims(), { iss: ISS, aud: AUD, exp: EXP });
      const [h, p] = t.split('.');
      expect(await v.verify(`${h}.${p}.AAAA`)).toEqual({ ok: false, reason: 'bad_signature' });
      ok(await v.verify(t));
      const keys = [...(v as unknown as { cache: Map<string, unknown> }).cache.keys()];
      expect(keys).toEqual([createHash('sha256').update(t).digest('base64url')]);
    } finally {
      await server.down();
    }
  });

  it('cacheMax bounds the entries', async () => {
    const v = await JwtVerifier.create([issuer({ keys: [es.publicJwk as Record<string, unknown>] })], { ...clock, cacheMax: 3 });
    for (let i = 0; i < 10; i++) ok(await v.verify(await mint(es, claims({ n: i }), { iss: ISS, aud: AUD, exp: EXP })));
    expect((v as unknown as { cache: { size: number } }).cache.size).toBe(3);
  });
});

describe('create(): unusable key config fails at load, naming the issuer', () => {
  const jwk = () => es.publicJwk as Record<string, unknown>;
  it.each<[string, () => Promise<Partial<IssuerConfig>>, RegExp]>([
    ['no key source', async () => ({}), /exactly one of jwksUri, keys, secret or discovery: true/],
    ['two key sources', async () => ({ jwksUri: 'https://x.test/jwks', keys: [jwk()] }), /exactly one/],
    ['HS256 with public keys', async () => ({ keys: [jwk()], algorithms: ['ES256', 'HS256'] }), /HS\* algorithms need `secret`/],
    ['a secret with RS256', async () => ({ secret: SECRET, algorithms: ['RS256'] }), /only HS256/],
    ['a private JWK', async () => ({ keys: [{ ...(await exportJWK((await generateKeyPair('ES256', { extractable: true })).privateKey)) }] }), /private key material \("d"\)/],
    ['an oct JWK', async () => ({ keys: [{ kty: 'oct', k: 'c2VjcmV0' }] }), /symmetric/],
    ['a JWK without kty', async () => ({ keys: [{ n: 'x' }] }), /needs "kty"/],
    ['a missing PEM file', async () => ({ keys: ['nope.pem'], algorithms: ['RS256'] }), /cannot read .*nope\.pem: ENOENT/],
    ['a private PEM', async () => ({ keys: ['-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----'], algorithms: ['RS256'] }), /PRIVATE key/],
    ['a PEM fitting no allowed alg', async () => ({ keys: ['rs.pem'], algorithms: ['ES256'] }), /fits none of the allowed algorithms ES256/],
  ])('%s', async (_n, extra, message) => {
    await expect(JwtVerifier.create([issuer({ issuer: 'https://ok.test/', secret: SECRET, algorithms: ['HS256'] }), issuer(await extra())], { baseDir: pemDir })).rejects.toThrow(
      new RegExp(`jwt\\.issuers\\[1\\] \\(${ISS.replace(/[./]/g, '\\$&')}\\).*${message.source}`),
    );
  });

  it('the same issuer twice', async () => {
    await expect(JwtVerifier.create([issuer({ keys: [jwk()] }), issuer({ keys: [jwk()] })])).rejects.toThrow(/issuers\[1\].*listed twice/);
  });

  it('no issuers: every token is unknown_issuer', async () => {
    const v = await JwtVerifier.create([]);
    expect(await v.verify(await mint(es, claims(), { iss: ISS, aud: AUD, exp: EXP }))).toEqual({ ok: false, reason: 'unknown_issuer' });
  });
});

function hasOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe('verifyCached: the synchronous warm path', () => {
  it('answers undefined for an unseen token, the cached result once verified, and token_too_large at once', async () => {
    const { generateKeyPair: gen, exportJWK: exp, SignJWT: Sign } = await import('jose');
    const { privateKey, publicKey } = await gen('ES256', { extractable: true });
    const jwk = { ...(await exp(publicKey)), kid: 'k', alg: 'ES256' };
    const verifier = await JwtVerifier.create([
      { issuer: 'https://iss.test/', audience: 'aud', keys: [jwk], algorithms: ['ES256'], tenantClaim: 'tid', subjectClaim: 'sub', rolesClaim: 'roles', scopesClaim: 'scope', clockToleranceSec: 0, maxTokenBytes: 4096 },
    ]);
    const token = await new Sign({ tid: 'acme' }).setProtectedHeader({ alg: 'ES256', kid: 'k' }).setIssuer('https://iss.test/').setAudience('aud').setExpirationTime('5m').sign(privateKey);
    expect(verifier.verifyCached(token)).toBeUndefined();
    const full = await verifier.verify(token);
    expect(full.ok).toBe(true);
    expect(verifier.verifyCached(token)).toBe(full);
    expect(verifier.verifyCached('x'.repeat(5000))).toEqual({ ok: false, reason: 'token_too_large' });
  });
});
