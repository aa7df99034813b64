/**
 * What the authenticate stage needs from the credential verifiers, as small
 * interfaces: API keys (./api-keys.ts) and JWTs (./jwt.ts) implement them,
 * and a later key store (Redis, admin API) can too.
 */
import type { Config } from '../config/schema.js';
import type { Memberships } from '../domain.js';
import type { AssertionSigner } from './assertion.js';

export type ApiKeyRecord = Config['apiKeys'][number];

export type VerifyFailure = { ok: false; reason: string };

export interface KeyVerifier {
  /** Synchronous for warm keys and config keys; a Promise when a cold key needs a store lookup. */
  verify(presented: string): { ok: true; record: ApiKeyRecord } | VerifyFailure | Promise<{ ok: true; record: ApiKeyRecord } | VerifyFailure>;
}

export interface VerifiedJwt {
  /** Null for a token that carries only memberships. */
  readonly tenantId: string | null;
  /** Absent or null: the token names no memberships. */
  readonly memberships?: Memberships | null;
  readonly subject: string | null;
  readonly roles: readonly string[];
  readonly scopes: readonly string[];
}

export interface TokenVerifier {
  /** Answers from the verified-token cache (or the size check) synchronously; undefined means "call verify". */
  verifyCached(token: string): { ok: true; identity: VerifiedJwt } | VerifyFailure | undefined;
  verify(token: string): Promise<{ ok: true; identity: VerifiedJwt } | VerifyFailure>;
  /** Role and scope items dropped as unsafe so far, by configured issuer (a metric). */
  droppedClaimItems?(): ReadonlyMap<string, number>;
}

/** Built with each config (so a reload starts with empty caches). */
export interface AuthRuntime {
  readonly apiKeys: KeyVerifier;
  /** Null when no JWT issuer is configured. */
  readonly jwt: TokenVerifier | null;
  /** Null unless identity.assertion.secret is set. */
  readonly assertion: AssertionSigner | null;
}
