/** A `jwt.issuers[]` entry as the config loader returns it: the schema's defaults, plus what a test names. */
import type { IssuerConfig } from '../../src/auth/jwt.js';

export function issuerConfig(extra: Partial<IssuerConfig> & Pick<IssuerConfig, 'issuer' | 'algorithms'>): IssuerConfig {
  return {
    tenantClaim: 'tid',
    subjectClaim: 'sub',
    rolesClaim: 'roles',
    scopesClaim: 'scope',
    clockToleranceSec: 30,
    maxTokenBytes: 8192,
    maxClaimItems: 256,
    discovery: false,
    jwksCooldownSec: 30,
    jwksMaxBytes: 512 * 1024,
    jwksMaxKeys: 100,
    jwksAllowHttp: false,
    ...extra,
  };
}
