/**
 * Stage 4 with `tenancy.select` and `membershipsClaim` (src/stages/tenant.ts,
 * src/stages/tenant-select.ts), after route, sanitize and authenticate, then
 * authorize, on an in-memory context: each selector selects; selectors that
 * disagree, a tenant the credential may not act for and a header sent twice
 * are 403 cross_tenant; several memberships and nothing selected is 400
 * tenant_required; the principal then acts for the active tenant with that
 * tenant's roles.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { generateApiKey } from '../../../src/auth/api-key-format.js';
import type { CompiledConfig } from '../../../src/config/compile.js';
import { authenticate } from '../../../src/stages/authenticate.js';
import { authorize } from '../../../src/stages/authorize.js';
import { route } from '../../../src/stages/route.js';
import { sanitize } from '../../../src/stages/sanitize.js';
import { resolveTenant } from '../../../src/stages/tenant.js';
import { compileConfig, hs256Token, JWT_AUDIENCE, JWT_ISSUER, JWT_SECRET, refusal, requestContext, runStages } from '../../helpers/stage-context.js';

const KEY = generateApiKey({ env: 'live', id: 'ak_acme' });

const BASE = `
plans: { basic: {} }
tenants:
  - { id: acme, plan: basic, hosts: [acme.example.com] }
  - { id: wayne, plan: basic, hosts: [wayne.example.com] }
  - { id: initech, plan: basic }
  - { id: "42", plan: basic }
  - { id: globex, plan: basic, status: suspended }
apiKeys:
  - { id: ak_acme, tenant: acme, hash: "${KEY.hash}", scopes: ["orders:*"] }
jwt:
  issuers:
    - { issuer: "${JWT_ISSUER}", audience: "${JWT_AUDIENCE}", algorithms: [HS256], secret: "${JWT_SECRET}", tenantClaim: tid, membershipsClaim: orgs }
roles:
  admin: ["orders:*"]
  readonly: [orders:read]
routes:
  - name: tenants
    match: { pathPrefix: /api/tenants, methods: [GET, POST] }
    upstream: "http://127.0.0.1:3000"
    tenantIn: { path: "/api/tenants/{tenant}" }
  - { name: orders, match: { pathPrefix: /orders, methods: [GET, POST] }, upstream: "http://127.0.0.1:3000", permission: { GET: orders:read, POST: orders:write } }
`;

let selecting: CompiledConfig;
let headerOnly: CompiledConfig;
let plain: CompiledConfig;

beforeAll(async () => {
  selecting = await compileConfig(`${BASE}tenancy: { select: [path, host, header], hostPattern: "{tenant}.app.example.com" }\n`);
  headerOnly = await compileConfig(`${BASE}tenancy: { select: [header] }\n`);
  plain = await compileConfig(BASE);
});

const CROSS = (reason: string) => ({ status: 403, code: 'cross_tenant', reason });

interface Call {
  config?: CompiledConfig;
  claims?: Record<string, unknown>;
  apiKey?: boolean;
  host?: string;
  url?: string;
  method?: string;
  headers?: [string, string][];
}

async function call(c: Call) {
  const credential = c.apiKey ? KEY.key : await hs256Token({ sub: 'user-1', ...(c.claims ?? {}) });
  const headers: [string, string][] = [['Authorization', `Bearer ${credential}`], ...(c.headers ?? [])];
  const ctx = requestContext(c.config ?? selecting, { method: c.method ?? 'GET', url: c.url ?? '/orders', host: c.host ?? 'api.test', headers });
  const rejection = await runStages(ctx, [route, sanitize, authenticate, resolveTenant, authorize]);
  return { ctx, refused: refusal(rejection) };
}

const member = { orgs: { acme: ['admin'], wayne: ['readonly'] } };

describe('each selector names the active tenant', () => {
  it.each([
    ['header', { headers: [['X-Tenant-ID', 'wayne']] as [string, string][] }],
    ['hostPattern', { host: 'wayne.app.example.com' }],
    ['a custom domain (tenants[].hosts)', { host: 'wayne.example.com:8443' }],
    ['the tenantIn path segment', { url: '/api/tenants/wayne/stats' }],
  ])('%s', async (_name, shape) => {
    const { ctx, refused } = await call({ claims: member, ...shape });
    expect(refused).toBeUndefined();
    expect(ctx.tenant!.id).toBe('wayne');
    expect(ctx.requestedTenant).toBe('wayne');
    expect(ctx.principal).toMatchObject({ tenantId: 'wayne', roles: ['readonly'] });
  });

  it('the header is stripped from what is forwarded, in every spelling', async () => {
    const { ctx, refused } = await call({ claims: member, headers: [['x_tenant_id', 'wayne'], ['X-TENANT-ID', 'wayne']] });
    expect(refused).toBeUndefined();
    expect(ctx.tenant!.id).toBe('wayne');
    expect(ctx.upstreamHeaders.filter((_h, i) => i % 2 === 0).map((h) => h.toLowerCase().replaceAll('_', '-'))).not.toContain('x-tenant-id');
  });

  it('selectors that agree are one request', async () => {
    const { ctx, refused } = await call({ claims: member, host: 'wayne.app.example.com', url: '/api/tenants/wayne', headers: [['X-Tenant-ID', 'wayne']] });
    expect(refused).toBeUndefined();
    expect(ctx.tenant!.id).toBe('wayne');
  });

  it('a numeric membership selects a tenant with a numeric id', async () => {
    const { ctx, refused } = await call({ claims: { orgs: [42, 'acme'], roles: ['readonly'] }, headers: [['X-Tenant-ID', '42']] });
    expect(refused).toBeUndefined();
    expect(ctx.tenant!.id).toBe('42');
  });
});

describe('refusals', () => {
  it.each([
    ['host says wayne, header says acme', { host: 'wayne.app.example.com', headers: [['X-Tenant-ID', 'acme']] as [string, string][] }, 'selectors_disagree', 'wayne'],
    ['path says acme, custom domain says wayne', { host: 'wayne.example.com', url: '/api/tenants/acme' }, 'selectors_disagree', 'acme'],
    ['the header twice with two tenants', { headers: [['X-Tenant-ID', 'acme'], ['X-Tenant-Id', 'wayne']] as [string, string][] }, 'tenant_header_conflict', null],
  ])('%s → 403 cross_tenant', async (_name, shape, reason, requested) => {
    const { ctx, refused } = await call({ claims: member, ...shape });
    expect(refused).toEqual(CROSS(reason));
    expect(ctx.tenant).toBeNull();
    expect(ctx.requestedTenant).toBe(requested);
  });

  it('a tenant the token is no member of → 403, the credential principal kept (the metric counts by it)', async () => {
    const { ctx, refused } = await call({ claims: { tid: 'acme', ...member }, headers: [['X-Tenant-ID', 'initech']] });
    expect(refused).toEqual(CROSS('not_a_member'));
    expect(ctx.principal).toMatchObject({ tenantId: 'acme' });
    expect(ctx.requestedTenant).toBe('initech');
  });

  it('a hostPattern label of a tenant the token is no member of → 403', async () => {
    const { refused } = await call({ claims: member, host: 'initech.app.example.com' });
    expect(refused).toEqual(CROSS('not_a_member'));
  });

  it('a header value that could be no tenant id → 403, recorded as no requested tenant', async () => {
    const { ctx, refused } = await call({ claims: member, headers: [['X-Tenant-ID', 'acme, wayne']] });
    expect(refused).toEqual(CROSS('not_a_member'));
    expect(ctx.requestedTenant).toBeNull();
  });

  it('an API key acts for its own tenant only: another tenant in the header → 403, its own → admitted', async () => {
    expect((await call({ apiKey: true, headers: [['X-Tenant-ID', 'wayne']] })).refused).toEqual(CROSS('not_a_member'));
    const own = await call({ apiKey: true, headers: [['X-Tenant-ID', 'acme']] });
    expect(own.refused).toBeUndefined();
    expect(own.ctx.principal).toMatchObject({ kind: 'apiKey', tenantId: 'acme' });
  });

  it('a suspended or unconfigured tenant the token is a member of → tenant_suspended / unknown_tenant', async () => {
    const claims = { orgs: ['globex', 'ghost', 'acme'] };
    expect((await call({ claims, headers: [['X-Tenant-ID', 'globex']] })).refused?.code).toBe('tenant_suspended');
    expect((await call({ claims, headers: [['X-Tenant-ID', 'ghost']] })).refused?.code).toBe('unknown_tenant');
  });
});

describe('nothing selected', () => {
  it('several memberships and no tenantClaim → 400 tenant_required', async () => {
    const { ctx, refused } = await call({ claims: member });
    expect(refused).toEqual({ status: 400, code: 'tenant_required', reason: 'tenant_required' });
    expect(ctx.tenant).toBeNull();
  });

  it('one membership → that one', async () => {
    const { ctx, refused } = await call({ claims: { orgs: { wayne: ['readonly'] } } });
    expect(refused).toBeUndefined();
    expect(ctx.tenant!.id).toBe('wayne');
  });

  it('a tenantClaim → that tenant, with the token roles unless its membership names its own', async () => {
    const a = await call({ claims: { tid: 'initech', roles: ['admin'], orgs: ['wayne'] } });
    expect(a.refused).toBeUndefined();
    expect(a.ctx.principal).toMatchObject({ tenantId: 'initech', roles: ['admin'] });
    const b = await call({ claims: { tid: 'acme', roles: ['admin'], orgs: { acme: ['readonly'] } } });
    expect(b.ctx.principal).toMatchObject({ tenantId: 'acme', roles: ['readonly'] });
  });

  it('a shared host and no tenancy: a member token acts for its tenantClaim', async () => {
    const { ctx, refused } = await call({ config: plain, claims: { tid: 'acme', ...member } });
    expect(refused).toBeUndefined();
    expect(ctx.tenant!.id).toBe('acme');
  });
});

describe('authorization uses the active tenant\'s roles', () => {
  it('admin in acme, readonly in wayne: a write in wayne → 403 forbidden, in acme admitted, a read in wayne admitted', async () => {
    expect((await call({ claims: member, method: 'POST', headers: [['X-Tenant-ID', 'wayne']] })).refused?.code).toBe('forbidden');
    expect((await call({ claims: member, method: 'POST', headers: [['X-Tenant-ID', 'acme']] })).refused).toBeUndefined();
    expect((await call({ claims: member, method: 'GET', headers: [['X-Tenant-ID', 'wayne']] })).refused).toBeUndefined();
  });

  it('one principal per (credential, tenant): a warm caller builds nothing', async () => {
    const token = await hs256Token({ sub: 'user-9', ...member });
    const run = async (tenant: string) => {
      const ctx = requestContext(selecting, { url: '/orders', headers: [['Authorization', `Bearer ${token}`], ['X-Tenant-ID', tenant]] });
      await runStages(ctx, [route, sanitize, authenticate, resolveTenant]);
      return ctx.principal;
    };
    const first = await run('wayne');
    expect(await run('wayne')).toBe(first);
    expect(await run('acme')).not.toBe(first);
  });
});

describe('without host among the selectors, today\'s host rule holds', () => {
  it("another tenant's custom domain → 403 host_owned_by_other_tenant, even for a member of it", async () => {
    const { refused } = await call({ config: headerOnly, claims: { tid: 'acme', ...member }, host: 'wayne.example.com' });
    expect(refused).toEqual(CROSS('host_owned_by_other_tenant'));
  });

  it('the header selects wayne on its own custom domain', async () => {
    const { ctx, refused } = await call({ config: headerOnly, claims: member, host: 'wayne.example.com', headers: [['X-Tenant-ID', 'wayne']] });
    expect(refused).toBeUndefined();
    expect(ctx.tenant!.id).toBe('wayne');
  });

  it('without tenancy or tenantIn, a single-tenant credential keeps its own principal object and the query as sent', async () => {
    const first = await call({ config: plain, apiKey: true, url: '/orders?tenant_id=wayne' });
    const again = await call({ config: plain, apiKey: true, url: '/orders?tenant_id=wayne' });
    expect(first.refused).toBeUndefined();
    expect(again.ctx.principal).toBe(first.ctx.principal);
    expect(again.ctx.search).toBe('?tenant_id=wayne');
    expect(again.ctx.requestedTenant).toBeNull();
  });

  it('without tenancy, X-Tenant-ID is stripped and ignored: never a switch', async () => {
    const { ctx, refused } = await call({ config: plain, claims: { tid: 'acme', ...member }, headers: [['X-Tenant-ID', 'wayne']] });
    expect(refused).toBeUndefined();
    expect(ctx.tenant!.id).toBe('acme');
    expect(ctx.tenantHeader).toBeNull();
    expect(ctx.requestedTenant).toBeNull();
  });
});
