/**
 * Users in several tenants, end to end (SPEC §10): a real proxy, a real
 * upstream, tokens signed with jose against a real JWKS server. Each selector
 * (path, host pattern, custom domain, header) chooses the active tenant;
 * conflicts, non-members and API keys asking for another tenant are 403
 * cross_tenant with the upstream untouched; several memberships and nothing
 * named is 400 tenant_required; roles, limits, identity headers and the usage
 * event all follow the active tenant; the cross-tenant metric counts by the
 * credential's tenant.
 */
import { mkdtempSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { generateApiKey } from '../../src/auth/api-key-format.js';
import { JwksServer, mint, newSigningKey, type SigningKey } from '../helpers/jwks-server.js';
import { startProxy, startUpstream, type RunningProxy, type Upstream } from '../helpers/servers.js';
import { eventually } from '../helpers/usage-sinks.js';

const ISSUER = 'https://idp.test/';
const AUDIENCE = 'api://tenancy';
const acmeKey = generateApiKey({ env: 'live', id: 'ak_acme' });

let upstream: Upstream;
let proxy: RunningProxy;
let jwks: JwksServer;
let key: SigningKey;
let usageFile: string;

beforeAll(async () => {
  upstream = await startUpstream();
  key = await newSigningKey('RS256', 'k1');
  jwks = await JwksServer.start([key]);
  const dir = mkdtempSync(join(tmpdir(), 'tg-tenancy-'));
  usageFile = join(dir, 'usage.ndjson');
  proxy = await startProxy(`
plans:
  pro: { rate: null }
  tight: { quota: { daily: 2 } }
tenants:
  - { id: acme, plan: pro, hosts: [acme.example.com] }
  - { id: wayne, plan: pro, hosts: [wayne.example.com] }
  - { id: initech, plan: pro }
  - { id: stark, plan: tight }
apiKeys:
  - { id: ak_acme, tenant: acme, hash: "${acmeKey.hash}", scopes: ["orders:*"] }
jwt:
  issuers:
    - { issuer: "${ISSUER}", audience: "${AUDIENCE}", jwksUri: "${jwks.url}", algorithms: [RS256], tenantClaim: tid, membershipsClaim: orgs }
roles:
  admin: ["orders:*"]
  readonly: [orders:read]
tenancy: { select: [path, host, header], hostPattern: "{tenant}.app.example.com" }
routes:
  - { name: orders, match: { pathPrefix: /orders, methods: [GET, POST] }, upstream: "${upstream.url}", permission: { GET: orders:read, POST: orders:write } }
  - { name: tenant-api, match: { pathPrefix: /api/tenants }, upstream: "${upstream.url}", permission: orders:read, tenantIn: { path: "/api/tenants/{tenant}", query: tenant_id } }
usage:
  spoolDir: "${join(dir, 'spool')}"
  sinks: [{ type: file, path: "${usageFile}", batchSize: 1, flushMs: 10, fsync: false }]
`);
});
afterAll(async () => {
  await proxy.close();
  await upstream.close();
  await jwks.down();
});
beforeEach(() => {
  upstream.requests.length = 0;
});

const token = (claims: Record<string, unknown>) => mint(key, { sub: 'user-1', ...claims }, { iss: ISSUER, aud: AUDIENCE, exp: Math.floor(Date.now() / 1000) + 300 });
/** Admin in acme, read-only in wayne, no tenant of its own. */
const member = () => token({ orgs: { acme: ['admin'], wayne: ['readonly'] } });

interface Sent {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: { error?: { code: string; requestId: string } };
}

/** One request with the Host and headers given as is (fetch cannot set Host). */
function send(path: string, headers: [string, string][], opts: { method?: string; host?: string } = {}): Promise<Sent> {
  return new Promise((resolve, reject) => {
    const flat = [['Host', opts.host ?? 'api.example.com'], ...headers].flat();
    const req = request({ host: '127.0.0.1', port: proxy.port, path, method: opts.method ?? 'GET', headers: flat as unknown as Record<string, string> }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: JSON.parse(Buffer.concat(chunks).toString() || '{}') }));
    });
    req.on('error', reject);
    req.end();
  });
}

const bearer = async (t: Promise<string> | string): Promise<[string, string]> => ['Authorization', `Bearer ${await t}`];

function expectRefused(res: Sent, status: number, code: string): void {
  expect(res.status).toBe(status);
  expect(res.body.error?.code).toBe(code);
  expect(upstream.requests).toHaveLength(0);
}

/** The one X-Tenant-ID the upstream received (any spelling of the name counted). */
function upstreamTenant(): string {
  expect(upstream.requests).toHaveLength(1);
  const raw = upstream.requests[0]!.rawHeaders;
  const values = raw.filter((_v, i) => i % 2 === 1 && raw[i - 1]!.toLowerCase().replaceAll('_', '-') === 'x-tenant-id');
  expect(values).toHaveLength(1);
  return values[0]!;
}

async function metric(name: string, labels: string): Promise<number> {
  const text = await (await fetch(`${proxy.adminUrl}/metrics`)).text();
  return Number(text.match(new RegExp(`^${name}\\{${labels}\\} (\\d+)$`, 'm'))?.[1] ?? 0);
}

async function usageEvent(requestId: string): Promise<Record<string, unknown>> {
  let found: Record<string, unknown> | undefined;
  await eventually(async () => {
    const lines = (await readFile(usageFile, 'utf8').catch(() => '')).split('\n').filter(Boolean);
    found = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((e) => e.requestId === requestId);
    return found !== undefined;
  }, `usage event of ${requestId}`);
  return found!;
}

describe('each selector chooses the active tenant', () => {
  it('the header: the upstream sees the active tenant, set by the proxy, and that tenant\'s roles', async () => {
    const res = await send('/orders/1', [await bearer(member()), ['X-Tenant-ID', 'wayne'], ['x_tenant_id', 'wayne']]);
    expect(res.status).toBe(200);
    expect(upstreamTenant()).toBe('wayne');
    expect(upstream.requests[0]!.headers['x-roles']).toBe('readonly');
    expect(upstream.requests[0]!.rawHeaders.map((h) => h.toLowerCase())).not.toContain('x_tenant_id');
  });

  it.each([
    ['the host pattern', 'wayne.app.example.com'],
    ['a custom domain', 'wayne.example.com'],
  ])('%s', async (_name, host) => {
    const res = await send('/orders/1', [await bearer(member())], { host });
    expect(res.status).toBe(200);
    expect(upstreamTenant()).toBe('wayne');
  });

  it('the tenantIn path segment; the missing query parameter is appended', async () => {
    const res = await send('/api/tenants/wayne/stats', [await bearer(member())]);
    expect(res.status).toBe(200);
    expect(upstreamTenant()).toBe('wayne');
    expect(upstream.requests[0]!.url).toBe('/api/tenants/wayne/stats?tenant_id=wayne');
  });

  it('one membership and nothing named: that tenant', async () => {
    const res = await send('/orders/1', [await bearer(token({ orgs: ['wayne'], roles: ['readonly'] }))]);
    expect(res.status).toBe(200);
    expect(upstreamTenant()).toBe('wayne');
  });

  it('a tenantClaim and nothing named: that tenant, the header of the same tenant changes nothing', async () => {
    const t = token({ tid: 'acme', roles: ['readonly'], orgs: ['wayne'] });
    expect((await send('/orders/1', [await bearer(t)])).status).toBe(200);
    expect(upstreamTenant()).toBe('acme');
    upstream.requests.length = 0;
    expect((await send('/orders/1', [await bearer(t), ['X-Tenant-ID', 'acme']])).status).toBe(200);
    expect(upstreamTenant()).toBe('acme');
  });
});

describe('refusals leave the upstream untouched', () => {
  it('the host says wayne, the header says acme → 403 cross_tenant', async () => {
    expectRefused(await send('/orders/1', [await bearer(member()), ['X-Tenant-ID', 'acme']], { host: 'wayne.app.example.com' }), 403, 'cross_tenant');
  });

  it('the path says acme, the custom domain says wayne → 403 cross_tenant', async () => {
    expectRefused(await send('/api/tenants/acme', [await bearer(member())], { host: 'wayne.example.com' }), 403, 'cross_tenant');
  });

  it('a tenant the token is no member of → 403 cross_tenant, counted by the credential\'s tenant, recorded in the usage event', async () => {
    const before = await metric('tenantgate_cross_tenant_attempts_total', 'tenant="acme"');
    const t = await token({ tid: 'acme', orgs: ['wayne'], roles: ['admin'] });
    const res = await send('/orders/1', [['Authorization', `Bearer ${t}`], ['X-Tenant-ID', 'initech']]);
    expectRefused(res, 403, 'cross_tenant');
    expect(await metric('tenantgate_cross_tenant_attempts_total', 'tenant="acme"')).toBe(before + 1);
    const event = await usageEvent(res.body.error!.requestId);
    expect(event).toMatchObject({ tenantId: 'acme', status: 403, outcome: 'cross_tenant', requestedTenant: 'initech' });
    expect(JSON.stringify(event)).not.toContain(t);
  });

  it('a token of memberships only: its refusal counts under tenant=""', async () => {
    const before = await metric('tenantgate_cross_tenant_attempts_total', 'tenant=""');
    expectRefused(await send('/orders/1', [await bearer(member())], { host: 'initech.app.example.com' }), 403, 'cross_tenant');
    expect(await metric('tenantgate_cross_tenant_attempts_total', 'tenant=""')).toBe(before + 1);
  });

  it('several memberships, no tenantClaim, nothing named → 400 tenant_required', async () => {
    expectRefused(await send('/orders/1', [await bearer(member())]), 400, 'tenant_required');
  });

  it('an API key acts for its own tenant only: X-Tenant-ID of another → 403, of its own → 200', async () => {
    expectRefused(await send('/orders/1', [['X-API-Key', acmeKey.key], ['X-Tenant-ID', 'wayne']]), 403, 'cross_tenant');
    expectRefused(await send('/orders/1', [['X-API-Key', acmeKey.key]], { host: 'wayne.app.example.com' }), 403, 'cross_tenant');
    const own = await send('/orders/1', [['X-API-Key', acmeKey.key], ['X-Tenant-ID', 'acme']]);
    expect(own.status).toBe(200);
    expect(upstreamTenant()).toBe('acme');
  });
});

describe("authorization uses the active tenant's roles", () => {
  it('admin in acme, readonly in wayne: a write to wayne → 403 forbidden; to acme → 200', async () => {
    expectRefused(await send('/orders/1', [await bearer(member()), ['X-Tenant-ID', 'wayne']], { method: 'POST' }), 403, 'forbidden');
    const res = await send('/orders/1', [await bearer(member()), ['X-Tenant-ID', 'acme']], { method: 'POST' });
    expect(res.status).toBe(200);
    expect(upstreamTenant()).toBe('acme');
    expect(upstream.requests[0]!.headers['x-roles']).toBe('admin');
  });
});

describe('limits, headers and usage follow the active tenant', () => {
  it("a member of acme acting for stark is limited by stark's quota, headed and billed as stark", async () => {
    const t = await token({ tid: 'acme', roles: ['readonly'], orgs: ['stark'] });
    const asStark: [string, string][] = [['Authorization', `Bearer ${t}`], ['X-Tenant-ID', 'stark']];
    const first = await send('/orders/1', asStark);
    expect(first.status).toBe(200);
    expect(first.headers['ratelimit-limit']).toBe('2');
    expect(upstreamTenant()).toBe('stark');
    expect(upstream.requests[0]!.headers['x-tenant-plan']).toBe('tight');
    expect((await send('/orders/1', asStark)).status).toBe(200);
    upstream.requests.length = 0;
    expectRefused(await send('/orders/1', asStark), 429, 'quota_exceeded');
    expect(await metric('tenantgate_limited_total', 'tenant="stark",route="orders",limit="quota_daily"')).toBe(1);
    // Its own tenant is not charged.
    const own = await send('/orders/1', [['Authorization', `Bearer ${t}`]]);
    expect(own.status).toBe(200);
    expect(upstreamTenant()).toBe('acme');

    const event = await usageEvent(String(first.headers['x-request-id']));
    expect(event).toMatchObject({ tenantId: 'stark', plan: 'tight', cost: 1, outcome: 'forwarded', requestedTenant: 'stark', subject: 'user-1' });
  });

  it('an event of a request that named no tenant has requestedTenant null', async () => {
    const res = await send('/orders/1', [['X-API-Key', acmeKey.key]]);
    expect(res.status).toBe(200);
    const event = await usageEvent(String(res.headers['x-request-id']));
    expect(event).toMatchObject({ tenantId: 'acme', requestedTenant: null });
    expect(JSON.stringify(event)).not.toContain(acmeKey.key);
  });
});
