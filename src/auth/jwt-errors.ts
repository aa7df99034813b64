/**
 * Why a JWT was refused, and the ONE place that knows jose's error codes
 * ({@link jwtFailureReason}). The client only ever sees 401 `unauthenticated`;
 * the reason goes to the `tenantgate_auth_failures_total` metric and the log.
 */

/** Every reason a token can be refused for (bounded: safe as a metric label). */
export const JWT_FAILURE_REASONS = [
  /** Not a compact JWS (wrong shape, bad base64url/JSON, unsupported `crit`, …). */
  'malformed',
  /** Larger than the issuer's `maxTokenBytes` (checked before any parsing). */
  'token_too_large',
  /** The unverified `iss` names no configured issuer (or there is no `iss`). */
  'unknown_issuer',
  /** Header `alg` not in the issuer's `algorithms` (covers `none` and HS256-with-a-public-key). */
  'alg_not_allowed',
  'bad_signature',
  /** No key of the issuer matches the token's `kid`/`alg` (the key set is current). */
  'unknown_kid',
  /** The JWKS endpoint failed (down, timeout, non-200, invalid JSON) and no cached key matches. */
  'jwks_unavailable',
  /** The JWKS response passed the issuer's `jwksMaxBytes` (refused unread past it) and no cached key matches. */
  'jwks_too_large',
  /** The JWKS held more keys than the issuer's `jwksMaxKeys` and no cached key matches. */
  'jwks_too_many_keys',
  /** `discovery: true` and the provider's metadata could not be read or used (down, not JSON, another issuer, no jwks_uri). */
  'discovery_failed',
  /** A matching key exists but cannot verify (invalid JWK, RSA modulus under 2048 bits, …). */
  'key_unusable',
  'expired',
  'not_yet_valid',
  'wrong_issuer',
  'wrong_audience',
  /** `clientIds` is set and the token's `azp` (else `client_id`) is none of them. */
  'wrong_client',
  /** A claim of `requiredClaims` is absent or has another value (a Cognito ID token where an access token is required). */
  'required_claim_mismatch',
  'missing_exp',
  'missing_tenant_claim',
  /** A mapped claim is not a safe header value (controls, non-ASCII, too long, too many). */
  'unsafe_claim',
  /** A claim has the wrong type (`exp` not a number, roles not strings, `typ` mismatch, …). */
  'invalid_claims',
  /** A bug: verify() caught something it did not expect. Never a client's fault. */
  'internal_error',
] as const;

export type JwtFailureReason = (typeof JWT_FAILURE_REASONS)[number];

/**
 * Thrown by the remote key source when the JWKS endpoint cannot be reached and
 * the keys fetched last do not contain the token's key. Its own code, outside
 * jose's `ERR_*` namespace.
 */
export class JwksUnavailableError extends Error {
  readonly code = 'TG_JWKS_UNAVAILABLE';
  constructor(cause?: unknown) {
    super('JWKS endpoint unavailable and no cached key matches', { cause });
    this.name = 'JwksUnavailableError';
  }
}

/** Why a fetched JWKS was refused before jose saw it; see {@link JwksRefusedError}. */
export type JwksRefusal = 'too_large' | 'too_many_keys';

/**
 * Thrown by the capped JWKS fetch when the response is larger than
 * `jwksMaxBytes` or holds more than `jwksMaxKeys` keys. It counts as a failed
 * fetch: the keys fetched last keep verifying, the endpoint is left alone for
 * the cooldown.
 */
export class JwksRefusedError extends Error {
  readonly code: 'TG_JWKS_TOO_LARGE' | 'TG_JWKS_TOO_MANY_KEYS';
  constructor(readonly refusal: JwksRefusal, limit: number) {
    super(refusal === 'too_large' ? `JWKS response larger than ${limit} bytes` : `JWKS holds more than ${limit} keys`);
    this.name = 'JwksRefusedError';
    this.code = refusal === 'too_large' ? 'TG_JWKS_TOO_LARGE' : 'TG_JWKS_TOO_MANY_KEYS';
  }
}

interface JoseLikeError {
  code?: unknown;
  cause?: unknown;
  claim?: unknown;
  reason?: unknown;
  name?: unknown;
  message?: unknown;
}

/**
 * True when `err` says the JWKS endpoint failed rather than "no such key":
 * fetch rejected (refused, DNS, TLS, abort), timed out, answered non-200
 * (jose's generic error) or sent something that is not a JWKS.
 */
export function isJwksEndpointFailure(err: unknown): boolean {
  const e = (err ?? {}) as JoseLikeError;
  switch (e.code) {
    case 'ERR_JWKS_TIMEOUT':
    case 'ERR_JWKS_INVALID':
    case 'ERR_JOSE_GENERIC':
    case 'TG_JWKS_TOO_LARGE':
    case 'TG_JWKS_TOO_MANY_KEYS':
      return true;
    case undefined:
      // Node's fetch rejects with TypeError('fetch failed', { cause }); aborts are DOMExceptions.
      return (err instanceof TypeError && e.message === 'fetch failed') || e.name === 'AbortError' || e.name === 'TimeoutError';
    default:
      return false;
  }
}

/** jose error (code, and claim for claim failures) → reason. The one mapping. */
export function jwtFailureReason(err: unknown): JwtFailureReason {
  const e = (err ?? {}) as JoseLikeError;
  switch (e.code) {
    case 'ERR_JWT_EXPIRED':
      return 'expired';
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      switch (e.claim) {
        case 'nbf':
          return e.reason === 'check_failed' ? 'not_yet_valid' : 'invalid_claims';
        case 'exp':
          return e.reason === 'missing' ? 'missing_exp' : 'invalid_claims';
        case 'iss':
          return 'wrong_issuer';
        case 'aud':
          return 'wrong_audience';
        default:
          return 'invalid_claims';
      }
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return 'bad_signature';
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
      return 'alg_not_allowed';
    case 'ERR_JWKS_NO_MATCHING_KEY':
    case 'ERR_JWKS_MULTIPLE_MATCHING_KEYS':
      return 'unknown_kid';
    case 'TG_JWKS_UNAVAILABLE':
      // The endpoint's failure, when it was one of ours (too large, too many keys), is the more precise reason.
      return e.cause === undefined ? 'jwks_unavailable' : jwksFailureReason(e.cause);
    case 'TG_JWKS_TOO_LARGE':
    case 'TG_JWKS_TOO_MANY_KEYS':
      return jwksFailureReason(err);
    case 'ERR_JWK_INVALID':
      return 'key_unusable';
    case 'ERR_JWS_INVALID':
    case 'ERR_JWT_INVALID':
    case 'ERR_JOSE_NOT_SUPPORTED':
      return 'malformed';
    default:
      if (isJwksEndpointFailure(err)) return 'jwks_unavailable';
      // What is left without a jose code comes from key import or WebCrypto
      // (modulus too short, key type mismatch, DataError): the key, not the token.
      return e.code === undefined && (err instanceof TypeError || e.name === 'DataError' || e.name === 'NotSupportedError') ? 'key_unusable' : 'internal_error';
  }
}

/** The reason for a failed JWKS fetch: a refused response by its refusal, anything else `jwks_unavailable`. */
function jwksFailureReason(cause: unknown): JwtFailureReason {
  switch ((cause as JoseLikeError | null)?.code) {
    case 'TG_JWKS_TOO_LARGE':
      return 'jwks_too_large';
    case 'TG_JWKS_TOO_MANY_KEYS':
      return 'jwks_too_many_keys';
    case 'TG_DISCOVERY_FAILED':
      return 'discovery_failed';
    default:
      return 'jwks_unavailable';
  }
}
