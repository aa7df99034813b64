/**
 * JWT verification for several issuers, with jose.
 *
 * verify(): size check (before any parsing) → verified-token cache → pick the
 * issuer by the token's UNVERIFIED `iss` (an exact issuer, else one of the few
 * `{tid}` templates) → jwtVerify against that issuer only (its keys, its
 * `algorithms` allowlist, `iss`, `aud`, required `exp`, clock tolerance, the
 * injected clock) → `clientIds` and `requiredClaims` → map claims to a safe
 * identity (./jwt-identity.ts) → cache.
 *
 * - Key sources and the JWKS-down behaviour: ./jwt-keys.ts.
 * - jose's error codes → a precise reason, once: ./jwt-errors.ts.
 * - Claims → identity and the header-safety rules: ./jwt-identity.ts.
 *
 * Build one at config load; on reload build a new one with `previous: old` so
 * fetched JWKS carry over (see {@link JwtVerifierOptions.previous}).
 */
import { createHash } from 'node:crypto';
import { decodeJwt, jwtVerify, type ExportedJWKSCache, type JWTPayload, type JWTVerifyOptions } from 'jose';
import { LRUCache } from 'lru-cache';
import type { Config } from '../config/schema.js';
import { jwtFailureReason, type JwtFailureReason } from './jwt-errors.js';
import { compileClaimMapping, identityFromClaims, type ClaimMapping, type JwtIdentity } from './jwt-identity.js';
import { createKeySource, type KeySource } from './jwt-keys.js';

export { JWT_FAILURE_REASONS, jwtFailureReason, type JwtFailureReason } from './jwt-errors.js';
export type { JwtIdentity } from './jwt-identity.js';

export type IssuerConfig = Config['jwt']['issuers'][number];
export type JwtResult = { ok: true; identity: JwtIdentity } | { ok: false; reason: JwtFailureReason };

export interface JwtVerifierOptions {
  /**
   * Clock in ms since the epoch (tests inject one), for exp/nbf and the token
   * cache. JWKS pacing (cooldown, cache age, retries) runs on the real clock, as jose's does.
   */
  now?: () => number;
  /** Most verified tokens kept. Default 10 000. */
  cacheMax?: number;
  /** How long a verified token skips signature checks (never past its `exp`). Default 30 s. */
  cacheTtlMs?: number;
  /** Min time between JWKS fetches caused by unknown kids (the longest wait between retries of a failed endpoint). Default: each issuer's jwksCooldownSec. */
  jwksCooldownMs?: number;
  /** JWKS fetch timeout. Default 5 s. */
  jwksTimeoutMs?: number;
  /** A fetched JWKS is refetched after this long (jose measures it with the real clock). Default 10 min. */
  jwksCacheMaxAgeMs?: number;
  /** Directory relative PEM paths resolve from: the config file's. Default: the working directory. */
  baseDir?: string;
  /** The verifier this one replaces (config reload): its fetched JWKS seed this one's, by URI. */
  previous?: JwtVerifier;
}

export const JWT_DEFAULTS = Object.freeze({
  cacheMax: 10_000,
  cacheTtlMs: 30_000,
  jwksTimeoutMs: 5_000,
  jwksCacheMaxAgeMs: 600_000,
  /** Size limit when no issuer is configured (the schema's default). */
  maxTokenBytes: 8192,
});

interface Issuer {
  readonly config: IssuerConfig;
  readonly source: KeySource;
  readonly options: Readonly<JWTVerifyOptions>;
  readonly claims: ClaimMapping;
  readonly clientIds: ReadonlySet<string> | null;
  readonly requiredClaims: readonly (readonly [string, unknown])[];
}

/** An issuer with `{tid}`: the text before and after the placeholder. */
interface IssuerTemplate {
  readonly prefix: string;
  readonly suffix: string;
  readonly issuer: Issuer;
}

/** What `{tid}` may stand for: one URL path segment of unreserved characters (not "." or ".."). */
const TID_SEGMENT = /^[A-Za-z0-9_~-][A-Za-z0-9._~-]{0,127}$/;

interface CacheEntry {
  /** The verified result, returned as is on a hit (no allocation). */
  readonly result: JwtResult;
  /** ms: min(exp, verified + cacheTtlMs). */
  readonly until: number;
}

/** Cache key: a hash, so the cache never holds bearer tokens. */
function cacheKeyOf(token: string): string {
  return createHash('sha256').update(token).digest('base64url');
}

/** Compact JWS: three base64url parts; the signature may be empty so `alg: none` is reported as such. */
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

const fail = (reason: JwtFailureReason): JwtResult => ({ ok: false, reason });

export class JwtVerifier {
  private readonly cache: LRUCache<string, CacheEntry>;
  private readonly maxTokenBytes: number;

  private readonly templates: readonly IssuerTemplate[];
  /** Role and scope items dropped as unsafe, by configured issuer; shared with the verifier that replaces this one. */
  private readonly dropped: Map<string, number>;

  private constructor(
    private readonly issuers: ReadonlyMap<string, Issuer>,
    private readonly now: () => number,
    private readonly cacheTtlMs: number,
    cacheMax: number,
    dropped: Map<string, number>,
  ) {
    this.cache = new LRUCache({ max: cacheMax });
    this.maxTokenBytes = issuers.size === 0 ? JWT_DEFAULTS.maxTokenBytes : Math.max(...[...issuers.values()].map((i) => i.config.maxTokenBytes));
    this.templates = [...issuers.values()]
      .filter((i) => i.config.issuer.includes('{tid}'))
      .map((issuer) => {
        const [prefix, suffix] = issuer.config.issuer.split('{tid}') as [string, string];
        return { prefix, suffix, issuer };
      });
    this.dropped = dropped;
  }

  /**
   * Reads PEM files and checks every issuer's keys; throws one Error naming
   * the issuer (`jwt.issuers[i] (iss): …`) if any is unusable. No network:
   * JWKS are fetched on first use.
   */
  static async create(configs: readonly IssuerConfig[], opts: JwtVerifierOptions = {}): Promise<JwtVerifier> {
    const now = opts.now ?? Date.now;
    const seed = opts.previous?.jwksSnapshots() ?? new Map<string, ExportedJWKSCache>();
    const discovered = opts.previous?.discoveredJwksUris() ?? new Map<string, string>();
    const issuers = new Map<string, Issuer>();
    for (const [index, config] of configs.entries()) {
      if (issuers.has(config.issuer)) throw new Error(`jwt.issuers[${index}] (${config.issuer}): issuer listed twice`);
      if (config.audience === undefined && config.clientIds === undefined) throw new Error(`jwt.issuers[${index}] (${config.issuer}): set audience, clientIds, or both`);
      const source = await createKeySource(config, index, {
        cooldownMs: opts.jwksCooldownMs ?? config.jwksCooldownSec * 1000,
        cacheMaxAgeMs: opts.jwksCacheMaxAgeMs ?? JWT_DEFAULTS.jwksCacheMaxAgeMs,
        timeoutMs: opts.jwksTimeoutMs ?? JWT_DEFAULTS.jwksTimeoutMs,
        baseDir: opts.baseDir ?? process.cwd(),
        seed,
        discovered,
      });
      const options: JWTVerifyOptions = {
        issuer: config.issuer,
        ...(config.audience === undefined ? {} : { audience: config.audience }),
        algorithms: config.algorithms,
        clockTolerance: config.clockToleranceSec,
        requiredClaims: ['exp'],
      };
      issuers.set(config.issuer, {
        config,
        source,
        options: Object.freeze(options),
        claims: compileClaimMapping(config),
        clientIds: config.clientIds === undefined ? null : new Set(config.clientIds),
        requiredClaims: Object.freeze(Object.entries(config.requiredClaims ?? {})),
      });
    }
    return new JwtVerifier(issuers, now, opts.cacheTtlMs ?? JWT_DEFAULTS.cacheTtlMs, opts.cacheMax ?? JWT_DEFAULTS.cacheMax, opts.previous?.dropped ?? new Map());
  }

  /** Verifies a compact JWT (without "Bearer "). Never throws, never rejects. */
  async verify(token: string): Promise<JwtResult> {
    try {
      return await this.verifyUnsafe(token);
    } catch {
      return fail('internal_error');
    }
  }

  /** Forgets every verified token (the next use of each is verified in full). Fetched JWKS are kept. */
  clear(): void {
    this.cache.clear();
  }

  /** The JWKS fetched so far, by URI (what {@link JwtVerifierOptions.previous} carries over). */
  jwksSnapshots(): Map<string, ExportedJWKSCache> {
    const out = new Map<string, ExportedJWKSCache>();
    for (const { source } of this.issuers.values()) {
      if (source.kind !== 'resolver' || source.remote === null || source.remote.uri === null) continue;
      const snap = source.remote.snapshot();
      if (snap !== null) out.set(source.remote.uri, snap);
    }
    return out;
  }

  /** The jwks_uri each `discovery: true` issuer found so far, by issuer (carried over on reload too). */
  discoveredJwksUris(): Map<string, string> {
    const out = new Map<string, string>();
    for (const { config, source } of this.issuers.values()) {
      if (config.discovery && source.kind === 'resolver' && source.remote?.uri != null) out.set(config.issuer, source.remote.uri);
    }
    return out;
  }

  /** Role and scope items dropped as unsafe since start (across reloads), by configured issuer. */
  droppedClaimItems(): ReadonlyMap<string, number> {
    return this.dropped;
  }

  /**
   * The synchronous part of {@link verify}: the size check and the
   * verified-token cache. Returns undefined when the token needs a full
   * (asynchronous) verification — so a warm token costs no promise at all.
   */
  verifyCached(token: string): JwtResult | undefined {
    if (typeof token !== 'string') return fail('malformed');
    // Length first (cheap, and bounds the byte count's cost): every char is at least one UTF-8 byte.
    if (token.length > this.maxTokenBytes || Buffer.byteLength(token) > this.maxTokenBytes) return fail('token_too_large');
    const hit = this.cache.get(cacheKeyOf(token));
    if (hit === undefined) return undefined;
    if (this.now() < hit.until) return hit.result;
    // Past its TTL or exp: verify in full, so an expired token meets the same rules (and tolerance) as any other.
    this.cache.delete(cacheKeyOf(token));
    return undefined;
  }

  private async verifyUnsafe(token: string): Promise<JwtResult> {
    const quick = this.verifyCached(token);
    if (quick !== undefined) return quick;
    const cacheKey = cacheKeyOf(token);

    if (!COMPACT_JWS.test(token)) return fail('malformed');
    let iss: unknown;
    try {
      // Unverified: only chooses which issuer's keys and rules apply; jwtVerify re-checks `iss`.
      iss = decodeJwt(token).iss;
    } catch {
      return fail('malformed');
    }
    const issuer = typeof iss === 'string' ? this.issuerOf(iss) : undefined;
    if (issuer === undefined) return fail('unknown_issuer');
    // COMPACT_JWS admitted ASCII only, so length is the byte count here.
    if (token.length > issuer.config.maxTokenBytes) return fail('token_too_large');

    let payload: JWTPayload;
    try {
      // A {tid} issuer checks the concrete `iss` it matched (jwtVerify compares it exactly).
      payload = await verifyWithCandidates(token, issuer, { ...issuer.options, issuer: iss as string, currentDate: new Date(this.now()) });
    } catch (err) {
      return fail(jwtFailureReason(err));
    }
    const refused = checkClientAndClaims(payload, issuer);
    if (refused !== null) return fail(refused);
    const mapped = identityFromClaims(payload, issuer.config.issuer, issuer.claims);
    if (!mapped.ok) return mapped;
    if (mapped.droppedItems > 0) this.dropped.set(issuer.config.issuer, (this.dropped.get(issuer.config.issuer) ?? 0) + mapped.droppedItems);

    const result: JwtResult = { ok: true, identity: mapped.identity };
    const until = Math.min(mapped.identity.expiresAt * 1000, this.now() + this.cacheTtlMs);
    if (until > this.now()) this.cache.set(cacheKey, { result, until });
    return result;
  }

  /** The issuer `iss` names: an exact match, else the first `{tid}` template it fits (never the template text itself). */
  private issuerOf(iss: string): Issuer | undefined {
    const exact = this.issuers.get(iss);
    // A key with {tid} is a template: its literal text is no issuer.
    if (exact !== undefined && !iss.includes('{tid}')) return exact;
    for (const t of this.templates) {
      if (iss.length <= t.prefix.length + t.suffix.length || !iss.startsWith(t.prefix) || !iss.endsWith(t.suffix)) continue;
      if (TID_SEGMENT.test(iss.slice(t.prefix.length, iss.length - t.suffix.length))) return t.issuer;
    }
    return undefined;
  }
}

/** `requiredClaims` (exact values), then `clientIds` (against `azp`, else `client_id`); null when both pass. */
function checkClientAndClaims(payload: JWTPayload, issuer: Issuer): JwtFailureReason | null {
  for (const [name, value] of issuer.requiredClaims) {
    if (!Object.hasOwn(payload, name) || payload[name] !== value) return 'required_claim_mismatch';
  }
  if (issuer.clientIds !== null) {
    const client = typeof payload.azp === 'string' ? payload.azp : payload.client_id;
    if (typeof client !== 'string' || !issuer.clientIds.has(client)) return 'wrong_client';
  }
  return null;
}

/**
 * jwtVerify, and when several keys fit the header (no kid; PEM files during a
 * rotation) try each: the first whose signature verifies decides (its claim
 * errors included); if none does, `bad_signature`.
 */
async function verifyWithCandidates(token: string, issuer: Issuer, options: JWTVerifyOptions): Promise<JWTPayload> {
  const { source } = issuer;
  if (source.kind === 'secret') return (await jwtVerify(token, source.key, options)).payload;
  try {
    return (await jwtVerify(token, source.key, options)).payload;
  } catch (err) {
    if ((err as { code?: unknown }).code !== 'ERR_JWKS_MULTIPLE_MATCHING_KEYS') throw err;
    let last: unknown = err;
    for await (const key of err as AsyncIterable<CryptoKey>) {
      try {
        return (await jwtVerify(token, key, options)).payload;
      } catch (attempt) {
        if ((attempt as { code?: unknown }).code !== 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED') throw attempt;
        last = attempt;
      }
    }
    throw last;
  }
}
