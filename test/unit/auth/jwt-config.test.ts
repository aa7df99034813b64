/**
 * The issuer and `scopes:` config (SPEC §10): what validates, and the error,
 * with its YAML path, for what does not.
 */
import { describe, expect, it } from 'vitest';
import { configProblems } from '../../helpers/config-problems.js';

const yaml = (issuer: string, extra = '') => `
jwt:
  issuers:
    - ${issuer}
${extra}
routes: [{ name: a, match: {}, upstream: "http://127.0.0.1:1" }]
`;
const base = 'issuer: "https://idp.test/", jwksUri: "https://idp.test/jwks", algorithms: [RS256]';

describe('claim paths', () => {
  it.each([
    'tenantClaim: \'resource_access["api.example.com"].tenant\'',
    'tenantClaim: "https://example.com/tenant"',
    'tenantClaim: custom:tenant_id',
    "rolesClaim: [realm_access.roles, 'resource_access[\"orders.api\"].roles']",
    'scopesClaim: [scope, scp, permissions]',
    'subjectClaim: \'["https://example.com/app_metadata"].user\'',
  ])('%s is valid', (claim) => {
    expect(configProblems(yaml(`{ ${base}, audience: a, ${claim} }`))).toEqual([]);
  });

  it.each([
    ['tenantClaim: "org..id"', 'jwt.issuers[0].tenantClaim: not a valid claim path: position 5: expected a claim name (empty segment)'],
    ["tenantClaim: 'a[b]'", 'jwt.issuers[0].tenantClaim: not a valid claim path: position 2: expected a quote after "[" (write ["name.with.dots"])'],
    ['subjectClaim: "a."', 'jwt.issuers[0].subjectClaim: not a valid claim path: position 2: ends with "."'],
    ["rolesClaim: [roles, 'a[\"b']", 'jwt.issuers[0].rolesClaim[1]: not a valid claim path: position 2: unterminated quote'],
    ['scopesClaim: []', 'jwt.issuers[0].scopesClaim'],
  ])('%s → config error with its path', (claim, expected) => {
    const problems = configProblems(yaml(`{ ${base}, audience: a, ${claim} }`));
    expect(problems.some((p) => p.startsWith(expected))).toBe(true);
  });
});

describe('issuers', () => {
  it('{tid} as a whole path segment is valid; anywhere else it is not', () => {
    expect(configProblems(yaml('{ issuer: "https://login.microsoftonline.com/{tid}/v2.0", jwksUri: "https://login.microsoftonline.com/common/discovery/v2.0/keys", algorithms: [RS256], audience: a }'))).toEqual([]);
    expect(configProblems(yaml('{ issuer: "https://idp.test/t/{tid}", jwksUri: "https://idp.test/jwks", algorithms: [RS256], audience: a }'))).toEqual([]);
    for (const bad of ['https://{tid}.idp.test/', 'https://idp.test/x{tid}/', 'https://idp.test/{tid}/{tid}', 'https://idp.test/{tenant}/']) {
      expect(configProblems(yaml(`{ issuer: "${bad}", jwksUri: "https://idp.test/jwks", algorithms: [RS256], audience: a }`))).toEqual([
        expect.stringMatching(/^jwt\.issuers\[0\]\.issuer: may hold one \{tid\} placeholder/),
      ]);
    }
  });

  it('audience or clientIds is required; either alone suffices', () => {
    expect(configProblems(yaml(`{ ${base} }`))).toEqual(['jwt.issuers[0].audience: set audience, clientIds, or both (a token for another API must not be accepted)']);
    expect(configProblems(yaml(`{ ${base}, clientIds: [abc] }`))).toEqual([]);
    expect(configProblems(yaml(`{ ${base}, audience: a, clientIds: [abc] }`))).toEqual([]);
    expect(configProblems(yaml(`{ ${base}, clientIds: [] }`))[0]).toMatch(/^jwt\.issuers\[0\]\.clientIds/);
  });

  it('requiredClaims takes scalar values', () => {
    expect(configProblems(yaml(`{ ${base}, audience: a, requiredClaims: { token_use: access, ver: 2, mfa: true } }`))).toEqual([]);
    expect(configProblems(yaml(`{ ${base}, audience: a, requiredClaims: { token_use: [access] } }`))[0]).toMatch(/^jwt\.issuers\[0\]\.requiredClaims\.token_use/);
  });

  it('discovery: instead of a key source, never with one, never with {tid}, https outside loopback', () => {
    expect(configProblems(yaml('{ issuer: "https://idp.test/", discovery: true, algorithms: [RS256], audience: a }'))).toEqual([]);
    expect(configProblems(yaml('{ issuer: "http://127.0.0.1:9/", discovery: true, algorithms: [RS256], audience: a }'))).toEqual([]);
    expect(configProblems(yaml(`{ ${base}, discovery: true, audience: a }`))).toEqual(['jwt.issuers[0]: set exactly one of jwksUri, keys, secret or discovery: true']);
    expect(configProblems(yaml('{ issuer: "https://login.microsoftonline.com/{tid}/v2.0", discovery: true, algorithms: [RS256], audience: a }'))).toEqual([
      'jwt.issuers[0].discovery: a {tid} issuer names no one discovery document; set jwksUri (e.g. https://login.microsoftonline.com/common/discovery/v2.0/keys)',
    ]);
    expect(configProblems(yaml('{ issuer: my-idp, discovery: true, algorithms: [RS256], audience: a }'))).toEqual([expect.stringMatching(/^jwt\.issuers\[0\]\.issuer: discovery: true needs an http\(s\) URL issuer/)]);
    expect(configProblems(yaml('{ issuer: "http://idp.example.com/", discovery: true, algorithms: [RS256], audience: a }'))).toEqual([expect.stringMatching(/^jwt\.issuers\[0\]\.issuer: discovery over http:\/\/ outside loopback/)]);
  });

  it('Ed25519 and EdDSA are both accepted algorithm names', () => {
    expect(configProblems(yaml('{ issuer: "https://idp.test/", jwksUri: "https://idp.test/jwks", algorithms: [Ed25519, EdDSA], audience: a }'))).toEqual([]);
  });

  it('maxClaimItems and jwksCooldownSec are bounded', () => {
    expect(configProblems(yaml(`{ ${base}, audience: a, maxClaimItems: 10, jwksCooldownSec: 5 }`))).toEqual([]);
    expect(configProblems(yaml(`{ ${base}, audience: a, maxClaimItems: 0 }`))[0]).toMatch(/^jwt\.issuers\[0\]\.maxClaimItems/);
    expect(configProblems(yaml(`{ ${base}, audience: a, jwksCooldownSec: 0 }`))[0]).toMatch(/^jwt\.issuers\[0\]\.jwksCooldownSec/);
  });
});

describe('scopes:', () => {
  it('maps a scope to a list of permissions', () => {
    expect(configProblems(yaml(`{ ${base}, audience: a }`, 'scopes: { "orders.read": [orders:read], "api://x/orders.write": ["orders:*"] }'))).toEqual([]);
    expect(configProblems(yaml(`{ ${base}, audience: a }`, 'scopes: { "orders.read": orders:read }'))[0]).toMatch(/^scopes\.orders\.read/);
  });
});
