/**
 * `X-Tenant-Assertion`: a short-lived JWT signed by the proxy that carries
 * the identity it injected, so an upstream can verify the headers came from
 * tenantgate and not from anything else that can reach it.
 *
 * - HS256 with `identity.assertion.secret` (shared with the upstreams), or
 * - EdDSA with `identity.assertion.privateKeyFile` (Ed25519, PKCS#8 PEM): the
 *   upstreams need no secret, only the public key, served as a JWKS at
 *   `/.well-known/jwks.json` on the admin port (`kid` = its RFC 7638 thumbprint).
 *
 * Claims: iss "tenantgate", sub, tid (tenant), plan, pid (project), kid (API
 * key id), scope (space-separated), roles, iat, exp (iat + ttlSec). Signed
 * with node:crypto directly (synchronous, a few µs) and reused for the same
 * principal until half its lifetime has passed, so a warm caller signs nothing.
 */
import { createHash, createHmac, createPrivateKey, createPublicKey, sign, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import type { Principal, Tenant } from '../domain.js';

type Signer = (signingInput: string) => string;

export class AssertionSigner {
  private readonly cache = new WeakMap<Principal, { token: string; renewAt: number; plan: string }>();

  private constructor(
    private readonly header: string,
    private readonly signer: Signer,
    private readonly ttlSec: number,
    /** The public JWKS for EdDSA (null for HS256: nothing to publish). */
    readonly jwks: { keys: object[] } | null,
    private readonly now: () => number,
  ) {}

  static hs256(secret: string, ttlSec: number, now: () => number = Date.now): AssertionSigner {
    const header = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'JWT' })).toString('base64url');
    return new AssertionSigner(header, (input) => createHmac('sha256', secret).update(input).digest('base64url'), ttlSec, null, now);
  }

  static async eddsa(privateKeyFile: string, baseDir: string, ttlSec: number, now: () => number = Date.now): Promise<AssertionSigner> {
    const pem = await readFile(isAbsolute(privateKeyFile) ? privateKeyFile : resolve(baseDir, privateKeyFile), 'utf8');
    const privateKey: KeyObject = createPrivateKey(pem);
    if (privateKey.asymmetricKeyType !== 'ed25519') throw new Error('identity.assertion.privateKeyFile must be an Ed25519 private key');
    const jwk = createPublicKey(privateKey).export({ format: 'jwk' }) as { kty: string; crv: string; x: string };
    // RFC 7638 thumbprint: the members that define the key, in lexical order.
    const kid = createHash('sha256').update(JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x })).digest('base64url');
    const header = Buffer.from(JSON.stringify({ alg: 'EdDSA', typ: 'JWT', kid })).toString('base64url');
    const signer: Signer = (input) => sign(null, Buffer.from(input), privateKey).toString('base64url');
    return new AssertionSigner(header, signer, ttlSec, { keys: [{ ...jwk, kid, alg: 'EdDSA', use: 'sig' }] }, now);
  }

  sign(principal: Principal, tenant: Tenant): string {
    const nowMs = this.now();
    const cached = this.cache.get(principal);
    if (cached !== undefined && nowMs < cached.renewAt && cached.plan === tenant.plan) return cached.token;
    const iat = Math.floor(nowMs / 1000);
    const payload = {
      iss: 'tenantgate',
      sub: principal.subject ?? undefined,
      tid: tenant.id,
      plan: tenant.plan,
      pid: principal.projectId ?? undefined,
      kid: principal.apiKeyId ?? undefined,
      scope: principal.scopes.length > 0 ? principal.scopes.join(' ') : undefined,
      roles: principal.roles.length > 0 ? principal.roles : undefined,
      iat,
      exp: iat + this.ttlSec,
    };
    const signingInput = `${this.header}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}`;
    const token = `${signingInput}.${this.signer(signingInput)}`;
    this.cache.set(principal, { token, renewAt: nowMs + (this.ttlSec * 1000) / 2, plan: tenant.plan });
    return token;
  }
}
