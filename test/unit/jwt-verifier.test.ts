import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { joseReason, JwtVerifier, type IssuerConfig } from '../../src/auth/jwt-verifier.js';
import { JwksServer, newKey, sign } from '../helpers/jwks.js';

const issuer = (extra: Partial<IssuerConfig>): IssuerConfig => ({
  issuer: 'https://iss.test/',
  audience: 'aud',
  algorithms: ['ES256'],
  tenantClaim: 'tid',
  subjectClaim: 'sub',
  rolesClaim: 'roles',
  scopesClaim: 'scope',
  clockToleranceSec: 0,
  maxTokenBytes: 8192,
  ...extra,
});

describe('JwtVerifier', () => {
  it('caches a verified token until min(exp, ttl) on the injected clock', async () => {
    const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
    const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256' };
    let now = Date.parse('2026-06-01T00:00:00Z');
    const verifier = await JwtVerifier.create([issuer({ keys: [jwk] })], { now: () => now, cacheTtlMs: 30_000 });
    const exp = Math.floor(now / 1000) + 10;
    const token = await new SignJWT({ tid: 'acme', scope: 'a b' }).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setIssuer('https://iss.test/').setAudience('aud').setExpirationTime(exp).sign(privateKey);

    const first = await verifier.verify(token);
    expect(first).toMatchObject({ ok: true, identity: { tenantId: 'acme', scopes: ['a', 'b'], expiresAt: exp } });
    now += 5_000;
    const second = await verifier.verify(token);
    expect(second.ok && first.ok && second.identity).toBe(first.ok && first.identity); // the very same cached object
    now += 6_000;
    expect(await verifier.verify(token)).toEqual({ ok: false, reason: 'expired' });
  });

  it('a JWKS issuer keeps verifying with fetched keys while the endpoint is down, and maps fetch failures', async () => {
    const jwks = new JwksServer();
    const key = await newKey('ES256', 'k1');
    jwks.keys = [key];
    await jwks.start();
    const verifier = await JwtVerifier.create([issuer({ jwksUri: jwks.url })], { cacheTtlMs: 1 });
    const token = () => sign(key, { tid: 'acme' }, { issuer: 'https://iss.test/', audience: 'aud', expiresIn: '5m' });
    expect((await verifier.verify(await token())).ok).toBe(true);
    await jwks.stop();
    expect((await verifier.verify(await token())).ok).toBe(true);
    const cold = await JwtVerifier.create([issuer({ jwksUri: jwks.url })]);
    expect(await cold.verify(await token())).toEqual({ ok: false, reason: 'jwks_unavailable' });
  });

  it('PEM files: every key for the token alg is tried, so old and new verify during a rotation', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tg-pem-'));
    const keys = await Promise.all([generateKeyPair('RS256', { extractable: true }), generateKeyPair('RS256', { extractable: true })]);
    for (const [i, k] of keys.entries()) writeFileSync(join(dir, `k${i}.pem`), await exportSPKI(k.publicKey));
    const verifier = await JwtVerifier.create([issuer({ keys: ['k0.pem', join(dir, 'k1.pem')], algorithms: ['RS256'] })], { baseDir: dir });
    for (const k of keys) {
      const token = await new SignJWT({ tid: 'acme' }).setProtectedHeader({ alg: 'RS256' }).setIssuer('https://iss.test/').setAudience('aud').setExpirationTime('5m').sign(k.privateKey);
      expect((await verifier.verify(token)).ok).toBe(true);
    }
    const stranger = await generateKeyPair('RS256');
    const forged = await new SignJWT({ tid: 'acme' }).setProtectedHeader({ alg: 'RS256' }).setIssuer('https://iss.test/').setAudience('aud').setExpirationTime('5m').sign(stranger.privateKey);
    expect(await verifier.verify(forged)).toEqual({ ok: false, reason: 'bad_signature' });
  });

  it('a JWKS key rotated in is fetched once the cooldown has passed, without a reload', async () => {
    const jwks = new JwksServer();
    const old = await newKey('ES256', 'old');
    jwks.keys = [old];
    await jwks.start();
    try {
      const verifier = await JwtVerifier.create([issuer({ jwksUri: jwks.url })], { jwksCooldownMs: 200 });
      const claims = { issuer: 'https://iss.test/', audience: 'aud', expiresIn: '5m' };
      expect((await verifier.verify(await sign(old, { tid: 'acme' }, claims))).ok).toBe(true);
      const rotated = await newKey('ES256', 'new');
      jwks.keys = [old, rotated];
      await new Promise((r) => setTimeout(r, 250));
      expect((await verifier.verify(await sign(rotated, { tid: 'acme' }, claims))).ok).toBe(true);
      expect(jwks.fetches).toBe(2);
    } finally {
      await jwks.stop();
    }
  });

  it('maps jose error codes once', () => {
    expect(joseReason({ code: 'ERR_JWT_EXPIRED' })).toBe('expired');
    expect(joseReason({ code: 'ERR_JWT_CLAIM_VALIDATION_FAILED', claim: 'aud' })).toBe('wrong_audience');
    expect(joseReason({ code: 'ERR_JWT_CLAIM_VALIDATION_FAILED', claim: 'nbf' })).toBe('not_yet_valid');
    expect(joseReason({ code: 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED' })).toBe('bad_signature');
    expect(joseReason({ code: 'ERR_JWKS_NO_MATCHING_KEY' })).toBe('unknown_kid');
    expect(joseReason(new TypeError('fetch failed'))).toBe('jwks_unavailable');
  });
});
