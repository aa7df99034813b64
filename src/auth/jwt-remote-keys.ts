/**
 * A remote JWKS endpoint's keys (used by ./jwt-keys.ts for `jwksUri` and by
 * ./jwt-discovery.ts once discovery found the endpoint), and the options
 * every key source is built with.
 */
import { createLocalJWKSet, createRemoteJWKSet, customFetch, jwksCache, type ExportedJWKSCache, type FlattenedJWSInput, type JWSHeaderParameters } from 'jose';
import { isJwksEndpointFailure, JwksUnavailableError } from './jwt-errors.js';
import { cappedJwksFetch, retryDelayMs, type JwksLimits } from './jwt-jwks-fetch.js';

type LocalSet = ReturnType<typeof createLocalJWKSet>;
type Key = CryptoKey;

export interface KeySourceOptions {
  /** Min time between JWKS fetches for unknown kids, and between retries of a failed endpoint. */
  cooldownMs: number;
  /** A fetched JWKS is refetched after this long (jose's real clock). */
  cacheMaxAgeMs: number;
  timeoutMs: number;
  /** Directory relative PEM paths resolve from (the config file's). */
  baseDir: string;
  /** JWKS fetched by a previous verifier, by URI: a reload starts with keys even if the endpoint is down. */
  seed: ReadonlyMap<string, ExportedJWKSCache>;
  /** jwks_uri values a previous verifier discovered, by issuer: a reload needs no discovery round trip. */
  discovered: ReadonlyMap<string, string>;
}
/**
 * jose's remote JWKS set (cache, cooldown for unknown kids, single-flight
 * fetch, timeout) plus what it lacks when the endpoint is down: jose keeps no
 * pacing after a FAILED fetch (every unknown kid would hit the dead endpoint
 * again) and, once `cacheMaxAge` has passed, refuses even known keys.
 * Here, after a failure, the endpoint is retried after 1 s, then 2 s, 4 s …
 * up to `cooldownMs` (so a provider that comes back, or starts after the
 * proxy, is found within seconds), and the keys fetched last keep verifying;
 * a kid they lack is `jwks_unavailable`. Pacing uses the real clock, as
 * jose's cooldown and cacheMaxAge do, so all JWKS timing runs on one clock.
 * Every fetch is capped in bytes and keys (./jwt-jwks-fetch.ts); a refused
 * response is a failed fetch.
 */
export class RemoteKeySet {
  /** Shared with jose (its `jwksCache`): jose writes `uat` and `jwks` on every successful fetch. */
  readonly state: Partial<ExportedJWKSCache>;
  private readonly remote: ReturnType<typeof createRemoteJWKSet>;
  /** Consecutive failed fetches, and when the next attempt may go out (real clock, ms). */
  private failures = 0;
  private retryAt = Number.NEGATIVE_INFINITY;
  /** Why the last fetch failed: the cause of `jwks_*` refusals until the next attempt (too large stays too large). */
  private failure: unknown = undefined;
  private fallback: { uat: number; set: LocalSet } | null = null;

  constructor(
    readonly uri: string,
    private readonly opts: KeySourceOptions,
    limits: JwksLimits,
  ) {
    const seed = opts.seed.get(uri);
    this.state = seed === undefined ? {} : { uat: seed.uat, jwks: seed.jwks };
    this.remote = createRemoteJWKSet(new URL(uri), {
      cooldownDuration: opts.cooldownMs,
      cacheMaxAge: opts.cacheMaxAgeMs,
      timeoutDuration: opts.timeoutMs,
      [customFetch]: cappedJwksFetch(limits),
      [jwksCache]: this.state as ExportedJWKSCache,
    });
  }

  /** The JWKS last fetched, to seed the next verifier on reload. */
  snapshot(): ExportedJWKSCache | null {
    const { uat, jwks } = this.state;
    return uat === undefined || jwks === undefined ? null : { uat, jwks };
  }

  readonly getKey = async (header: JWSHeaderParameters, token: FlattenedJWSInput): Promise<Key> => {
    if (Date.now() < this.retryAt) return this.fromLastFetched(header, token, this.failure);
    try {
      const key = await this.remote(header, token);
      this.failures = 0;
      return key;
    } catch (err) {
      if (!isJwksEndpointFailure(err)) {
        this.failures = 0;
        throw err;
      }
      this.failures++;
      this.retryAt = Date.now() + retryDelayMs(this.failures, this.opts.cooldownMs);
      this.failure = err;
      return this.fromLastFetched(header, token, err);
    }
  };

  private async fromLastFetched(header: JWSHeaderParameters, token: FlattenedJWSInput, cause: unknown): Promise<Key> {
    const { uat, jwks } = this.state;
    if (uat === undefined || jwks === undefined) throw new JwksUnavailableError(cause);
    if (this.fallback?.uat !== uat) this.fallback = { uat, set: createLocalJWKSet(jwks) };
    try {
      return await this.fallback.set(header, token);
    } catch (err) {
      if ((err as { code?: unknown }).code === 'ERR_JWKS_NO_MATCHING_KEY') throw new JwksUnavailableError(cause);
      throw err;
    }
  }
}