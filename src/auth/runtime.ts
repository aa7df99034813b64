/**
 * Builds the credential verifiers for one config. A reload builds new ones,
 * so every cache (verified keys, verified tokens, unknown ids) starts empty
 * and a revoked key or removed issuer stops working the moment the new config
 * is in force. JWKS already fetched carry over (`previous`), so a reload during
 * an identity-provider outage still verifies tokens.
 *
 * The proxy replaces `apiKeys` with a verifier that also looks in the admin
 * API's registry (src/registry/directory.ts `attach`); this one, over the
 * config's keys only, is what `validate` and the unit tests use.
 */
import type { Config } from '../config/schema.js';
import { ApiKeyVerifier } from './api-key-verifier.js';
import { AssertionSigner } from './assertion.js';
import { JwtVerifier } from './jwt.js';
import type { ApiKeyRecord, AuthRuntime, KeyVerifier } from './types.js';

export async function buildAuthRuntime(source: Config, env: NodeJS.ProcessEnv, baseDir: string, previous?: AuthRuntime): Promise<AuthRuntime> {
  // Built on first use: the proxy never uses this one (see above), and it costs ~2 MB (its caches
  // preallocate) plus, indexed, 4 MB per 100,000 keys.
  let verifier: ApiKeyVerifier | null = null;
  const pepper = env.TENANTGATE_KEY_PEPPER || null;
  const apiKeys: KeyVerifier = {
    verify: (presented) => {
      if (verifier === null) {
        const keys = indexKeys(source.apiKeys);
        verifier = new ApiKeyVerifier({ lookup: (id) => keys.get(id), pepper });
      }
      return verifier.verify(presented);
    },
  };
  const previousJwt = previous?.jwt instanceof JwtVerifier ? previous.jwt : undefined;
  const jwt = source.jwt.issuers.length > 0 ? await JwtVerifier.create(source.jwt.issuers, { baseDir, previous: previousJwt }) : null;
  const { secret, privateKeyFile, ttlSec } = source.identity.assertion;
  const assertion =
    secret !== null
      ? AssertionSigner.hs256(secret, ttlSec)
      : privateKeyFile !== null
        ? await AssertionSigner.eddsa(privateKeyFile, baseDir, ttlSec)
        : null;
  return { apiKeys, jwt, assertion };
}

/** Key records by id (a loop: no [id, record] pair allocated per key). */
export function indexKeys(records: readonly ApiKeyRecord[]): Map<string, ApiKeyRecord> {
  const byId = new Map<string, ApiKeyRecord>();
  for (const k of records) byId.set(k.id, k);
  return byId;
}
