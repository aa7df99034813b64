/**
 * A verified token's claims → the identity the proxy injects as headers
 * (SPEC §5, §10). The tenant and subject must be safe header values or the
 * token is refused with `unsafe_claim`: a claim can never smuggle CR/LF,
 * controls or non-ASCII into an upstream request. A role or scope item that
 * is not a safe token is dropped (and counted) instead: one Okta group with a
 * space must not lock its user out. A list longer than `maxClaimItems` is
 * refused, so no token can make the proxy walk an unbounded list.
 */
import type { JWTPayload } from 'jose';
import type { Config } from '../config/schema.js';
import type { Memberships } from '../domain.js';
import { claimAt, compileClaimPath, type ClaimPath } from './claim-path.js';
import type { JwtFailureReason } from './jwt-errors.js';
import { parseMemberships } from './memberships.js';

export { claimAt } from './claim-path.js';

type IssuerConfig = Config['jwt']['issuers'][number];

/** Who a verified JWT says the caller is. Frozen: cached identities are shared. */
export interface JwtIdentity {
  /** The configured issuer that verified the token (with `{tid}` as configured). */
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
});

/** Printable ASCII, no leading/trailing space (HTTP trims it: " acme" would reach the upstream as "acme"). */
const SAFE_VALUE = new RegExp(`^(?! )[\\x20-\\x7e]{1,${CLAIM_LIMITS.maxValueChars}}(?<! )$`);
/** One role or scope: printable ASCII without spaces (the header joins them with spaces). */
const SAFE_ITEM = new RegExp(`^[\\x21-\\x7e]{1,${CLAIM_LIMITS.maxValueChars}}$`);

/** An issuer's claim paths, parsed once when the verifier is built. */
export interface ClaimMapping {
  /** Null only with a membershipsClaim and no tenantClaim: a token may then carry only memberships. */
  readonly tenant: ClaimPath | null;
  readonly memberships: ClaimPath | null;
  readonly subject: ClaimPath;
  readonly roles: readonly ClaimPath[];
  readonly scopes: readonly ClaimPath[];
  readonly maxItems: number;
}

const pathsOf = (value: string | readonly string[]): readonly ClaimPath[] => Object.freeze((typeof value === 'string' ? [value] : value).map(compileClaimPath));

export function compileClaimMapping(config: IssuerConfig): ClaimMapping {
  return Object.freeze({
    // With a membershipsClaim, tenantClaim has no default.
    tenant: config.tenantClaim !== undefined ? compileClaimPath(config.tenantClaim) : config.membershipsClaim === undefined ? compileClaimPath('tid') : null,
    memberships: config.membershipsClaim === undefined ? null : compileClaimPath(config.membershipsClaim),
    subject: compileClaimPath(config.subjectClaim),
    roles: pathsOf(config.rolesClaim),
    scopes: pathsOf(config.scopesClaim),
    maxItems: config.maxClaimItems,
  });
}

type ListResult = { ok: true; items: readonly string[]; dropped: number } | { ok: false; reason: JwtFailureReason };

/**
 * Roles or scopes: the union of every path's value (an array of strings, or
 * one space-separated string such as OAuth `scope` or Azure `scp`), in order,
 * without duplicates. Absent or null = nothing.
 */
function listAt(payload: JWTPayload, paths: readonly ClaimPath[], maxItems: number): ListResult {
  const items = new Set<string>();
  let dropped = 0;
  for (const path of paths) {
    const value = claimAt(payload, path);
    if (value === undefined || value === null) continue;
    let raw: readonly unknown[];
    // Split on the space only: a tab or CR/LF stays inside an item, which is then dropped, never a separator.
    if (typeof value === 'string') raw = value.split(' ').filter((s) => s !== '');
    else if (Array.isArray(value)) raw = value;
    else return { ok: false, reason: 'invalid_claims' };
    if (raw.length > maxItems) return { ok: false, reason: 'unsafe_claim' };
    for (const item of raw) {
      if (typeof item !== 'string' || !SAFE_ITEM.test(item)) dropped++;
      else items.add(item);
    }
  }
  if (items.size > maxItems) return { ok: false, reason: 'unsafe_claim' };
  return { ok: true, items: Object.freeze([...items]), dropped };
}

/** The tenant as a string: a string claim as is, a safe integer as its decimal digits. */
function tenantOf(value: unknown): string | undefined {
  if (typeof value === 'string') return value === '' ? undefined : value;
  if (typeof value === 'number' && Number.isSafeInteger(value)) return String(value);
  return undefined;
}

export type IdentityResult = { ok: true; identity: JwtIdentity; droppedItems: number } | { ok: false; reason: JwtFailureReason };

/** Maps a payload jose has verified (so `exp` is a number) with the issuer's claim paths. */
export function identityFromClaims(payload: JWTPayload, issuer: string, mapping: ClaimMapping): IdentityResult {
  const members = mapping.memberships === null ? null : parseMemberships(claimAt(payload, mapping.memberships), mapping.maxItems);
  if (members !== null && !members.ok) return members;
  const memberships = members?.memberships ?? null;
  const tenant = mapping.tenant === null ? undefined : tenantOf(claimAt(payload, mapping.tenant));
  if (tenant === undefined) {
    // No tenant of its own is fine only with memberships: the resolve-tenant stage picks one of them.
    if (memberships === null) return { ok: false, reason: 'missing_tenant_claim' };
  } else if (!SAFE_VALUE.test(tenant)) return { ok: false, reason: 'unsafe_claim' };

  const subject = claimAt(payload, mapping.subject);
  if (subject !== undefined && subject !== null && typeof subject !== 'string') return { ok: false, reason: 'invalid_claims' };
  if (typeof subject === 'string' && subject !== '' && !SAFE_VALUE.test(subject)) return { ok: false, reason: 'unsafe_claim' };

  const roles = listAt(payload, mapping.roles, mapping.maxItems);
  if (!roles.ok) return roles;
  const scopes = listAt(payload, mapping.scopes, mapping.maxItems);
  if (!scopes.ok) return scopes;

  if (typeof payload.exp !== 'number') return { ok: false, reason: 'missing_exp' };
  return {
    ok: true,
    identity: Object.freeze({
      issuer,
      tenantId: tenant ?? null,
      ...(members === null ? {} : { memberships, droppedMemberships: members.dropped }),
      subject: typeof subject === 'string' && subject !== '' ? subject : null,
      roles: roles.items,
      scopes: scopes.items,
      expiresAt: payload.exp,
    }),
    droppedItems: roles.dropped + scopes.dropped + (members?.dropped ?? 0),
  };
}
