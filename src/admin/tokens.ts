/**
 * Admin tokens (SPEC §14): `admin.token`, the all-scopes shorthand (token id
 * `admin`), and `admin.tokens: [{ id, hash, scopes }]`, hashed like API keys
 * (`sha256:` / `hmac-sha256:` with TENANTGATE_KEY_PEPPER, base64url digests).
 * Read from the config of the moment on every call, so a reload adds or
 * removes tokens without a restart.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { hashApiKey } from '../auth/api-key-format.js';

/** What an admin token may be granted; each admin route names the one it needs. */
export const ADMIN_SCOPES = ['tenants:read', 'tenants:write', 'keys:read', 'keys:write', 'usage:read'] as const;
export type AdminScope = (typeof ADMIN_SCOPES)[number];

/** The id `admin.token` is known by in audit events and logs. */
export const SHORTHAND_TOKEN_ID = 'admin';

export interface AdminTokenSettings {
  readonly token: string | null;
  readonly tokens: readonly { readonly id: string; readonly hash: string; readonly scopes: readonly AdminScope[] }[];
}

export interface AdminIdentity {
  readonly id: string;
  readonly scopes: readonly AdminScope[];
}

/** Whether the config turns the admin API on: either form of token is set. */
export function adminApiEnabled(admin: AdminTokenSettings): boolean {
  return admin.token !== null || admin.tokens.length > 0;
}

const digestOf = (hash: string) => Buffer.from(hash.slice(hash.indexOf(':') + 1), 'base64url');

/**
 * The token an `Authorization: Bearer …` header presents, or null. Constant time
 * over the configured tokens: the presented token is hashed once per format and
 * compared with every configured digest (equal lengths, no early exit), so
 * neither the answer's timing nor its content tells which ids exist.
 */
export function identifyAdmin(header: string | undefined, admin: AdminTokenSettings, pepper: string | null): AdminIdentity | null {
  const m = header === undefined ? null : /^bearer +(.+)$/i.exec(header);
  if (m === null) return null;
  const presented = m[1]!.trim();
  const plain = digestOf(hashApiKey(presented));
  const peppered = pepper === null ? null : digestOf(hashApiKey(presented, pepper));
  let found: AdminIdentity | null = null;
  // The shorthand is compared as SHA-256 digests too: equal lengths, so its length leaks nothing either.
  if (admin.token !== null && timingSafeEqual(plain, createHash('sha256').update(admin.token).digest())) found = { id: SHORTHAND_TOKEN_ID, scopes: ADMIN_SCOPES };
  for (const t of admin.tokens) {
    const hmac = t.hash.startsWith('hmac-sha256:');
    const expected = digestOf(t.hash);
    const given = hmac ? (peppered ?? plain) : plain;
    const equal = expected.length === given.length && timingSafeEqual(given, expected);
    // A peppered hash without the pepper configured never matches (as for API keys).
    if (equal && (!hmac || peppered !== null) && found === null) found = { id: t.id, scopes: t.scopes };
  }
  return found;
}
