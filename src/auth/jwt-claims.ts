/**
 * Maps a verified JWT's claims to the identity the proxy injects: tenant
 * (`tenantClaim`, a dotted path like `org.id`), subject, roles and scopes
 * (space-separated string or array). Every value must be a safe header value
 * — printable ASCII, bounded length and count — or the token is refused
 * (`unsafe_claim`): a claim can never smuggle CR/LF into an upstream request.
 */
import type { JWTPayload } from 'jose';
import type { Config } from '../config/schema.js';

export interface JwtIdentity {
  readonly issuer: string;
  readonly tenantId: string;
  readonly subject: string | null;
  readonly roles: string[];
  readonly scopes: string[];
  /** `exp`, epoch seconds. */
  readonly expiresAt: number;
}

const SAFE_VALUE = /^[\x20-\x7e]{1,256}$/;
const SAFE_TOKEN = /^[\x21-\x7e]{1,128}$/;
const MAX_ITEMS = 64;

function at(payload: JWTPayload, path: string): unknown {
  let value: unknown = payload;
  for (const part of path.split('.')) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<string, unknown>)[part];
  }
  return value;
}

/** A list claim: array of strings or a space-separated string. Null when malformed or unsafe. */
function list(value: unknown): string[] | null {
  if (value === undefined || value === null) return [];
  const items = typeof value === 'string' ? value.split(' ').filter((s) => s !== '') : value;
  if (!Array.isArray(items) || items.length > MAX_ITEMS) return null;
  for (const item of items) if (typeof item !== 'string' || !SAFE_TOKEN.test(item)) return null;
  return items as string[];
}

export function claimsToIdentity(
  payload: JWTPayload,
  issuer: Config['jwt']['issuers'][number],
): { ok: true; identity: JwtIdentity } | { ok: false; reason: string } {
  const tenant = at(payload, issuer.tenantClaim);
  if (tenant === undefined || tenant === null || tenant === '') return { ok: false, reason: 'missing_tenant_claim' };
  if (typeof tenant !== 'string' || !SAFE_TOKEN.test(tenant)) return { ok: false, reason: 'unsafe_claim' };
  const subject = at(payload, issuer.subjectClaim);
  if (subject !== undefined && (typeof subject !== 'string' || !SAFE_VALUE.test(subject))) return { ok: false, reason: 'unsafe_claim' };
  const roles = list(at(payload, issuer.rolesClaim));
  const scopes = list(at(payload, issuer.scopesClaim));
  if (roles === null || scopes === null) return { ok: false, reason: 'unsafe_claim' };
  return {
    ok: true,
    identity: Object.freeze({ issuer: issuer.issuer, tenantId: tenant, subject: (subject as string | undefined) ?? null, roles, scopes, expiresAt: payload.exp! }),
  };
}
