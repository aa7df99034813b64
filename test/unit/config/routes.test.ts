/**
 * `tenantIn` on routes and the `tenancy` section, as the config loader checks
 * and compiles them (src/config/schema.ts, src/config/routes.ts): the
 * compiled shapes, and each malformed value reported with its path.
 */
import { describe, expect, it } from 'vitest';
import { compileTenancy, compileTenantIn } from '../../../src/config/routes.js';
import { parseConfig } from '../../../src/config/load.js';
import { configProblems } from '../../helpers/config-problems.js';

const config = (route: string, extra = '') => `
plans: { basic: {} }
tenants: [{ id: acme, plan: basic }]
${extra}
routes:
  - { name: r, match: { pathPrefix: /api }, upstream: "http://127.0.0.1:3000"${route} }
`;

describe('compiled', () => {
  it('tenantIn: the template as segments with the {tenant} index, and the query name', () => {
    expect(compileTenantIn({ path: '/api/tenants/{tenant}/stats', query: 'tenant_id' })).toEqual({
      path: { segments: ['api', 'tenants', '{tenant}', 'stats'], segment: 2 },
      query: 'tenant_id',
    });
    expect(compileTenantIn({ query: 'org' })).toEqual({ path: null, query: 'org' });
  });

  it('tenancy: selectors in order, the host pattern around its label, the header as sanitize spells it', () => {
    expect(compileTenancy({ select: ['host', 'header'], hostPattern: '{tenant}.app.example.com', header: 'X_Org_ID' })).toEqual({
      select: ['host', 'header'],
      hostPattern: { prefix: '', suffix: '.app.example.com' },
      header: 'x-org-id',
    });
    expect(compileTenancy({ select: ['path'], hostPattern: 'api.{tenant}.example.com', header: 'X-Tenant-ID' })).toMatchObject({
      hostPattern: { prefix: 'api.', suffix: '.example.com' },
      header: null, // not selected: nothing to capture
    });
  });

  it('a loaded config: routes carry tenantIn (null without), tenancy is null when absent', () => {
    const withIt = parseConfig(config(', tenantIn: { path: "/api/{tenant}" }', 'tenancy: { select: [header], header: X-Org }'), 't.yaml', {});
    expect(withIt.routeList[0]!.tenantIn).toEqual({ path: { segments: ['api', '{tenant}'], segment: 1 }, query: null });
    expect(withIt.tenancy).toEqual({ select: ['header'], hostPattern: null, header: 'x-org' });
    // The tenancy header is stripped like an identity header.
    expect(withIt.headerRules.get('x-org')).toBeDefined();
    const without = parseConfig(config(''), 't.yaml', {});
    expect(without.routeList[0]!.tenantIn).toBeNull();
    expect(without.tenancy).toBeNull();
  });
});

describe('reported problems', () => {
  it.each([
    ['{}', 'routes[0].tenantIn: set path, query or both'],
    ['{ path: "/api/tenants" }', 'routes[0].tenantIn.path: must hold "{tenant}" exactly once'],
    ['{ path: "/api/{tenant}/{tenant}" }', 'routes[0].tenantIn.path: must hold "{tenant}" exactly once'],
    ['{ path: "/api/t-{tenant}" }', 'routes[0].tenantIn.path: must be a path of plain segments with one whole "{tenant}" segment, e.g. "/api/tenants/{tenant}"'],
    ['{ path: "api/{tenant}" }', 'routes[0].tenantIn.path: must be a path of plain segments with one whole "{tenant}" segment, e.g. "/api/tenants/{tenant}"'],
    ['{ query: "tenant id" }', 'routes[0].tenantIn.query: must be a query parameter name (letters, digits, . _ ~ -)'],
    ['{ query: t, extra: 1 }', 'routes[0].tenantIn.extra: unknown key "extra"'],
  ])('tenantIn %s', (value, problem) => {
    expect(configProblems(config(`, tenantIn: ${value}`))).toContainEqual(expect.stringContaining(problem));
  });

  it.each([
    ['{ select: [] }', 'tenancy.select'],
    ['{ select: [header, header] }', 'tenancy.select: lists a selector twice'],
    ['{ select: [cookie] }', 'tenancy.select[0]'],
    ['{ select: [host], hostPattern: "{tenant}" }', 'tenancy.hostPattern: must be a lower-case host name with one whole "{tenant}" label'],
    ['{ select: [host], hostPattern: "{tenant}.{tenant}.example.com" }', 'tenancy.hostPattern'],
    ['{ select: [host], hostPattern: "t-{tenant}.example.com" }', 'tenancy.hostPattern'],
    ['{ select: [header], header: "X Tenant" }', 'tenancy.header: must be a valid HTTP header name'],
    ['{ select: [header], header: Authorization }', 'tenancy.header: must not be a credential, Host, Connection or Cookie header'],
    ['{ select: [header], header: X_API_Key }', 'tenancy.header: must not be a credential'],
  ])('tenancy %s', (value, problem) => {
    expect(configProblems(config('', `tenancy: ${value}`))).toContainEqual(expect.stringContaining(problem));
  });

  it('tenantIn on a public route: nothing to compare with', () => {
    expect(configProblems(config(', auth: [none], tenantIn: { query: tenant_id }'))).toEqual(['routes[0].tenantIn: needs an authenticated route (auth: [none] acts for no tenant)']);
  });

  it('a valid tenancy and tenantIn load without problems', () => {
    expect(configProblems(config(', tenantIn: { path: "/api/tenants/{tenant}", query: tenant_id }', 'tenancy: { select: [path, host, header], hostPattern: "{tenant}.app.example.com" }'))).toEqual([]);
  });

  it('membershipsClaim makes tenantClaim optional (no default)', () => {
    const issuer = (claims: string) => `jwt: { issuers: [{ issuer: "https://i.test/", audience: a, algorithms: [HS256], secret: "0123456789abcdef0123456789abcdef"${claims} }] }`;
    const loaded = parseConfig(config('', issuer(', membershipsClaim: organization')), 't.yaml', {});
    expect(loaded.source.jwt.issuers[0]).toMatchObject({ membershipsClaim: 'organization' });
    expect(loaded.source.jwt.issuers[0]!.tenantClaim).toBeUndefined();
  });
});
