/**
 * A verified token's claims → the identity the proxy injects as headers
 * (SPEC §5). Every value must be a safe header value or the token is refused
 * with `unsafe_claim`: a claim can never smuggle CR/LF, controls, non-ASCII or
 * an unbounded list into an upstream request.
 */
import type { JWTPayload } from 'jose';
import type { Config } from '../config/schema.js';
import type { Memberships } from '../domain.js';
import type { JwtFailureReason } from './jwt-errors.js';
import { parseMemberships } from './memberships.js';

type IssuerConfig = Config['jwt']['issuers'][number];

/** Who a verified JWT says the caller is. Frozen: cached identities are shared. */
export interface JwtIdentity {
  /** The configured issuer that verified the token. */
  readonly issuer: string;
  /** From `tenantClaim`; never empty. Null only for a token that carries memberships and no tenantClaim. */
  readonly tenantId: string | null;
  /** From `membershipsClaim` (absent when the issuer has none): the tenants the subject belongs to, null when the token names none. */
  readonly memberships?: Memberships | null;
  /** Membership ids and roles dropped as unusable (src/auth/memberships.ts); absent without a membershipsClaim. */
  readonly droppedMemberships?: number;
  /** From `subjectClaim`; null when absent or empty. */
  readonly subject: string | null;
  readonly roles: readonly string[];
  readonly scopes: readonly string[];
  /** `exp`, epoch seconds. */
  readonly expiresAt: number;
}

export const CLAIM_LIMITS = Object.freeze({
  /** Longest single value (tenant, subject, one role or scope). */
  maxValueChars: 256,
  /** Most roles, and most scopes, one token may carry. */
  maxItems: 64,
});

/** Printable ASCII, no leading/trailing space (HTTP trims it: " acme" would reach the upstream as "acme"). */
const SAFE_VALUE = new RegExp(`^(?! )[\\x20-\\x7e]{1,${CLAIM_LIMITS.maxValueChars}}(?<! )$`);
/** One role or scope: printable ASCII without spaces (the header joins them with spaces). */
const SAFE_ITEM = new RegExp(`^[\\x21-\\x7e]{1,${CLAIM_LIMITS.maxValueChars}}$`);

/**
 * The value at `path`: first the whole path as one claim name (namespaced
 * claims such as `https://example.com/tenant` contain dots), else a dotted
 * walk (`org.id`, `realm_access.roles`). Own properties only, so `constructor`
 * or `__proto__` never resolve to something inherited.
 */
export function claimAt(payload: JWTPayload, path: string): unknown {
  if (Object.hasOwn(payload, path)) return payload[path];
  let value: unknown = payload;
  for (const part of path.split('.')) {
    if (value === null || typeof value !== 'object' || !Object.hasOwn(value, part)) return undefined;
    value = (value as Record<string, unknown>)[part];
  }
  return value;
}

type ListResult = { ok: true; items: readonly string[] } | { ok: false; reason: JwtFailureReason };

/** Roles or scopes: an array of strings, or one space-separated string (OAuth `scope`). Absent = []. */
function list(value: unknown): ListResult {
  if (value === undefined || value === null) return { ok: true, items: Object.freeze([]) };
  let items: unknown[];
  if (typeof value === 'string') {
    // Split on the space only: a tab or CR/LF stays inside an item and is refused there, never a separator.
    items = value.split(' ').filter((s) => s !== '');
  } else if (Array.isArray(value)) {
    items = value;
  } else {
    return { ok: false, reason: 'invalid_claims' };
  }
  if (items.length > CLAIM_LIMITS.maxItems) return { ok: false, reason: 'unsafe_claim' };
  for (const item of items) {
    if (typeof item !== 'string') return { ok: false, reason: 'invalid_claims' };
    if (!SAFE_ITEM.test(item)) return { ok: false, reason: 'unsafe_claim' };
  }
  return { ok: true, items: Object.freeze(items as string[]) };
}

export type IdentityResult = { ok: true; identity: JwtIdentity } | { ok: false; reason: JwtFailureReason };

/** Maps a payload jose has verified (so `exp` is a number) with the issuer's claim names. */
export function identityFromClaims(payload: JWTPayload, issuer: IssuerConfig): IdentityResult {
  const members = issuer.membershipsClaim === undefined ? null : parseMemberships(claimAt(payload, issuer.membershipsClaim), CLAIM_LIMITS.maxItems);
  if (members !== null && !members.ok) return members;
  const memberships = members?.memberships ?? null;
  // With a membershipsClaim, tenantClaim has no default: a token may carry only memberships.
  const tenantClaim = issuer.tenantClaim ?? (issuer.membershipsClaim === undefined ? 'tid' : undefined);
  const tenant = tenantClaim === undefined ? undefined : claimAt(payload, tenantClaim);
  if (tenant === undefined && memberships !== null) {
    // No tenant of its own: the resolve-tenant stage picks one of the memberships.
  } else if (typeof tenant !== 'string' || tenant === '') return { ok: false, reason: 'missing_tenant_claim' };
  else if (!SAFE_VALUE.test(tenant)) return { ok: false, reason: 'unsafe_claim' };

  const subject = claimAt(payload, issuer.subjectClaim);
  if (subject !== undefined && subject !== null && typeof subject !== 'string') return { ok: false, reason: 'invalid_claims' };
  if (typeof subject === 'string' && subject !== '' && !SAFE_VALUE.test(subject)) return { ok: false, reason: 'unsafe_claim' };

  const roles = list(claimAt(payload, issuer.rolesClaim));
  if (!roles.ok) return roles;
  const scopes = list(claimAt(payload, issuer.scopesClaim));
  if (!scopes.ok) return scopes;

  if (typeof payload.exp !== 'number') return { ok: false, reason: 'missing_exp' };
  return {
    ok: true,
    identity: Object.freeze({
      issuer: issuer.issuer,
      tenantId: typeof tenant === 'string' ? tenant : null,
      ...(members === null ? {} : { memberships, droppedMemberships: members.dropped }),
      subject: typeof subject === 'string' && subject !== '' ? subject : null,
      roles: roles.items,
      scopes: scopes.items,
      expiresAt: payload.exp,
    }),
  };
}
