/**
 * Verifies JWTs from several issuers with jose.
 *
 * - The issuer is chosen by the token's (unverified) `iss`, then the token is
 *   verified against that issuer only: its key source, its `algorithms`
 *   allowlist (so `alg: none` and HS256-signed-with-the-RSA-public-key fail),
 *   `iss`, `aud`, a required `exp` and the clock tolerance.
 * - Key sources: `jwksUri` (jose's remote set: cached, unknown `kid`s refetch
 *   at most once per 30 s cooldown; when the endpoint is down, the last keys
 *   fetched keep working), inline JWKs, PEM files (SPKI or X.509), or an HS secret.
 * - Verified tokens are cached by SHA-256 of the token (never the token
 *   itself) until min(exp, now + 30 s), so a repeated token skips the signature.
 * - jose's error codes are mapped once ({@link joseReason}) to a precise reason
 *   for metrics and logs; the client only ever sees 401 `unauthenticated`.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  importSPKI,
  importX509,
  jwtVerify,
  type JSONWebKeySet,
  type JWK,
  type JWTPayload,
  type JWTVerifyGetKey,
  type JWTVerifyOptions,
} from 'jose';
import { LRUCache } from 'lru-cache';
import type { Config } from '../config/schema.js';
import { claimsToIdentity, type JwtIdentity } from './jwt-claims.js';
import type { TokenVerifier } from './types.js';

export type IssuerConfig = Config['jwt']['issuers'][number];
export type JwtResult = { ok: true; identity: JwtIdentity } | { ok: false; reason: string };

type RemoteSet = ReturnType<typeof createRemoteJWKSet>;
interface Issuer {
  readonly config: IssuerConfig;
  /** A key set (remote or inline JWKs), an HS secret, or PEM keys (each tried for the token's alg). */
  readonly key: JWTVerifyGetKey | Uint8Array | readonly PemKey[];
  readonly remote: RemoteSet | null;
  readonly options: JWTVerifyOptions;
}
interface PemKey {
  readonly alg: string;
  readonly key: CryptoKey;
}

export interface JwtVerifierOptions {
  /** Milliseconds since the epoch (injectable for tests). */
  now?: () => number;
  cacheTtlMs?: number;
  cacheMax?: number;
  jwksCooldownMs?: number;
  jwksTimeoutMs?: number;
  /** Directory relative PEM paths are resolved from (the config file's). */
  baseDir?: string;
}

/** jose error code (and claim) → our reason. The one place that knows jose's codes. */
export function joseReason(err: unknown): string {
  const e = err as { code?: string; claim?: string };
  switch (e.code) {
    case 'ERR_JWT_EXPIRED':
      return 'expired';
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      return e.claim === 'nbf' ? 'not_yet_valid' : e.claim === 'iss' ? 'wrong_issuer' : e.claim === 'aud' ? 'wrong_audience' : e.claim === 'exp' ? 'missing_exp' : 'invalid_claims';
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return 'bad_signature';
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
      return 'alg_not_allowed';
    case 'ERR_JWKS_NO_MATCHING_KEY':
    case 'ERR_JWKS_MULTIPLE_MATCHING_KEYS':
      return 'unknown_kid';
    case 'ERR_JWKS_TIMEOUT':
    case 'ERR_JWKS_INVALID':
      return 'jwks_unavailable';
    case 'ERR_JWS_INVALID':
    case 'ERR_JWT_INVALID':
    case 'ERR_JOSE_NOT_SUPPORTED':
      return 'malformed';
    default:
      // fetch() failures (refused, DNS, TLS) carry no jose code.
      return err instanceof TypeError || e.code === undefined ? 'jwks_unavailable' : 'invalid_token';
  }
}

async function keySource(config: IssuerConfig, opts: JwtVerifierOptions): Promise<Pick<Issuer, 'key' | 'remote'>> {
  if (config.secret !== undefined) return { key: new TextEncoder().encode(config.secret), remote: null };
  if (config.jwksUri !== undefined) {
    const remote = createRemoteJWKSet(new URL(config.jwksUri), {
      cooldownDuration: opts.jwksCooldownMs ?? 30_000,
      timeoutDuration: opts.jwksTimeoutMs ?? 5_000,
      cacheMaxAge: 600_000,
    });
    return { key: remote, remote };
  }
  const jwks: JWK[] = [];
  const pems: PemKey[] = [];
  for (const entry of config.keys ?? []) {
    if (typeof entry !== 'string') {
      jwks.push(entry as JWK);
      continue;
    }
    const path = isAbsolute(entry) || !opts.baseDir ? entry : resolve(opts.baseDir, entry);
    const pem = await readFile(path, 'utf8');
    for (const alg of config.algorithms) {
      const imported = await (pem.includes('BEGIN CERTIFICATE') ? importX509(pem, alg) : importSPKI(pem, alg)).catch(() => null);
      if (imported !== null) pems.push({ alg, key: imported });
    }
  }
  if (pems.length === 0) return { key: createLocalJWKSet({ keys: jwks }), remote: null };
  if (jwks.length > 0) throw new Error(`issuer ${config.issuer}: mix inline JWKs and PEM files in separate issuers`);
  return { key: pems, remote: null };
}

/** PEM files have no `kid`: try each key imported for the token's algorithm (old and new during a rotation). */
async function verifyWithPems(token: string, keys: readonly PemKey[], options: JWTVerifyOptions): Promise<JWTPayload> {
  const alg = decodeProtectedHeader(token).alg;
  let lastError: unknown = Object.assign(new Error('algorithm not allowed'), { code: 'ERR_JOSE_ALG_NOT_ALLOWED' });
  for (const candidate of keys) {
    if (candidate.alg !== alg) continue;
    try {
      return (await jwtVerify(token, candidate.key, options)).payload;
    } catch (err) {
      lastError = err;
      if ((err as { code?: string }).code !== 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED') break;
    }
  }
  throw lastError;
}

export class JwtVerifier implements TokenVerifier {
  private readonly cache: LRUCache<string, JwtIdentity>;
  private readonly maxTokenBytes: number;

  private constructor(
    private readonly issuers: ReadonlyMap<string, Issuer>,
    private readonly now: () => number,
    private readonly cacheTtlMs: number,
    cacheMax: number,
  ) {
    this.cache = new LRUCache({ max: cacheMax, ttl: cacheTtlMs, ttlResolution: 0, perf: { now } });
    this.maxTokenBytes = Math.max(0, ...[...issuers.values()].map((i) => i.config.maxTokenBytes));
  }

  static async create(configs: readonly IssuerConfig[], opts: JwtVerifierOptions = {}): Promise<JwtVerifier> {
    const issuers = new Map<string, Issuer>();
    for (const config of configs) {
      const source = await keySource(config, opts);
      issuers.set(config.issuer, {
        config,
        ...source,
        options: {
          issuer: config.issuer,
          audience: config.audience,
          algorithms: config.algorithms,
          clockTolerance: config.clockToleranceSec,
          requiredClaims: ['exp'],
        },
      });
    }
    return new JwtVerifier(issuers, opts.now ?? Date.now, opts.cacheTtlMs ?? 30_000, opts.cacheMax ?? 10_000);
  }

  async verify(token: string): Promise<JwtResult> {
    if (token.length > this.maxTokenBytes) return { ok: false, reason: 'token_too_large' };
    const cacheKey = createHash('sha256').update(token).digest('base64url');
    const cached = this.cache.get(cacheKey);
    if (cached !== undefined) {
      return this.now() < cached.expiresAt * 1000 ? { ok: true, identity: cached } : { ok: false, reason: 'expired' };
    }
    let iss: string | undefined;
    try {
      iss = decodeJwt(token).iss;
    } catch {
      return { ok: false, reason: 'malformed' };
    }
    const issuer = iss === undefined ? undefined : this.issuers.get(iss);
    if (issuer === undefined) return { ok: false, reason: 'unknown_issuer' };
    if (Buffer.byteLength(token) > issuer.config.maxTokenBytes) return { ok: false, reason: 'token_too_large' };

    let payload: JWTPayload;
    try {
      payload = await this.verifyWith(issuer, token);
    } catch (err) {
      return { ok: false, reason: joseReason(err) };
    }
    const mapped = claimsToIdentity(payload, issuer.config);
    if (!mapped.ok) return mapped;
    const ttl = Math.min(this.cacheTtlMs, mapped.identity.expiresAt * 1000 - this.now());
    if (ttl > 0) this.cache.set(cacheKey, mapped.identity, { ttl });
    return mapped;
  }

  private async verifyWith(issuer: Issuer, token: string): Promise<JWTPayload> {
    const options = { ...issuer.options, currentDate: new Date(this.now()) };
    if (Array.isArray(issuer.key)) return verifyWithPems(token, issuer.key as readonly PemKey[], options);
    try {
      return (await jwtVerify(token, issuer.key as JWTVerifyGetKey, options)).payload;
    } catch (err) {
      // JWKS endpoint down: the keys fetched last keep working.
      const last: JSONWebKeySet | undefined = issuer.remote?.jwks();
      if (issuer.remote === null || last === undefined || joseReason(err) !== 'jwks_unavailable') throw err;
      return (await jwtVerify(token, createLocalJWKSet(last), options)).payload;
    }
  }
}
