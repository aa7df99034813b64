/**
 * A route's `tenantIn` (src/stages/tenant-in-url.ts) through stages 1–4 with
 * an API key of acme: the `{tenant}` segment and every tenant query value
 * must be acme (403 cross_tenant otherwise), decoded once and compared
 * exactly; a value that does not decode is 400; a missing parameter is
 * appended to what is forwarded.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { generateApiKey } from '../../../src/auth/api-key-format.js';
import type { CompiledConfig } from '../../../src/config/compile.js';
import { authenticate } from '../../../src/stages/authenticate.js';
import { route } from '../../../src/stages/route.js';
import { sanitize } from '../../../src/stages/sanitize.js';
import { resolveTenant } from '../../../src/stages/tenant.js';
import { compileConfig, refusal, requestContext, runStages } from '../../helpers/stage-context.js';

const KEY = generateApiKey({ env: 'live', id: 'ak_acme' });
let config: CompiledConfig;
let folding: CompiledConfig;

const yaml = (extra: string) => `
plans: { basic: {} }
tenants: [{ id: acme, plan: basic }, { id: wayne, plan: basic }]
apiKeys: [{ id: ak_acme, tenant: acme, hash: "${KEY.hash}" }]
${extra}
routes:
  - name: stats
    match: { pathPrefix: /api/tenants }
    upstream: "http://127.0.0.1:3000"
    tenantIn: { path: "/api/tenants/{tenant}", query: tenant_id }
  - { name: other, match: { pathPrefix: /other }, upstream: "http://127.0.0.1:3000" }
`;

beforeAll(async () => {
  config = await compileConfig(yaml(''));
  folding = await compileConfig(yaml('routing: { caseInsensitive: true }'));
});

async function send(url: string, c = config) {
  const ctx = requestContext(c, { url, headers: [['X-API-Key', KEY.key]] });
  const rejection = await runStages(ctx, [route, sanitize, authenticate, resolveTenant]);
  return { ctx, refused: refusal(rejection) };
}

const IN_PATH = { status: 403, code: 'cross_tenant', reason: 'tenant_in_path' };
const IN_QUERY = { status: 403, code: 'cross_tenant', reason: 'tenant_in_query' };
const BAD = { status: 400, code: 'bad_request', reason: 'bad_tenant_escape' };

describe('the {tenant} path segment', () => {
  it.each([
    ['/api/tenants/acme', '?tenant_id=acme'],
    ['/api/tenants/acme/stats/7', '?tenant_id=acme'],
    ['/api/tenants/%61cme', '?tenant_id=acme'], // an unreserved escape is decoded by path normalisation
    ['/api/tenants', '?tenant_id=acme'], // the path does not reach the segment: nothing to compare
    ['/api/tenants/', '?tenant_id=acme'],
  ])('%s is admitted', async (url, search) => {
    const { ctx, refused } = await send(url);
    expect(refused).toBeUndefined();
    expect(ctx.search).toBe(search);
    expect(ctx.tenant!.id).toBe('acme');
  });

  it.each([
    '/api/tenants/wayne',
    '/api/tenants/ACME', // ids compare case-sensitively
    '/api/tenants/%2561cme', // decoded once: "%61cme"
    '/api/tenants/acme;v=1', // the value with its parameters: upstreams disagree on them
    '/api/tenants;v=2/wayne', // a parameter on a fixed segment does not hide the tenant
    '/api/tenants/%C3%A9',
  ])('%s → 403 tenant_in_path', async (url) => {
    const { ctx, refused } = await send(url);
    expect(refused).toEqual(IN_PATH);
    expect(ctx.tenant).toBeNull();
  });

  it('the refused value is recorded when it could be a tenant id', async () => {
    expect((await send('/api/tenants/wayne')).ctx.requestedTenant).toBe('wayne');
    expect((await send('/api/tenants/%C3%A9')).ctx.requestedTenant).toBeNull();
  });

  it('an escape that is not UTF-8 → 400 bad_request', async () => {
    expect((await send('/api/tenants/%FF')).refused).toEqual(BAD);
  });

  it('an encoded slash never reaches the check: path normalisation refuses it (400)', async () => {
    expect((await send('/api/tenants/acme%2Fwayne')).refused).toMatchObject({ status: 400, code: 'bad_request', reason: 'bad_path' });
  });

  it('with routing.caseInsensitive, fixed segments match in any case', async () => {
    expect((await send('/API/Tenants/wayne', folding)).refused).toEqual(IN_PATH);
    expect((await send('/API/Tenants/acme', folding)).refused).toBeUndefined();
  });
});

describe('the tenant query parameter', () => {
  it.each([
    ['?tenant_id=acme', '?tenant_id=acme'],
    ['?tenant_id=acme&tenant_id=acme', '?tenant_id=acme&tenant_id=acme'],
    ['?tenant_id=%61cme', '?tenant_id=%61cme'],
    ['?x=1', '?x=1&tenant_id=acme'],
    ['?x=1&', '?x=1&tenant_id=acme'],
    ['?', '?tenant_id=acme'],
    ['', '?tenant_id=acme'],
    ['?Tenant_ID=acme', '?Tenant_ID=acme&tenant_id=acme'], // a variant is checked; the exact name is still added
  ])('%s is admitted and forwarded as %s', async (query, forwarded) => {
    const { ctx, refused } = await send(`/api/tenants/acme${query}`);
    expect(refused).toBeUndefined();
    expect(ctx.search).toBe(forwarded);
  });

  it.each([
    '?tenant_id=wayne',
    '?tenant_id=acme&tenant_id=wayne',
    '?tenant_id=wayne&tenant_id=acme',
    '?tenant_id=ACME',
    '?tenant_id=',
    '?tenant_id',
    '?tenant_id=ac+me',
    '?tenant_id=%2561cme',
    '?Tenant_ID=wayne',
    '?TENANT_ID=wayne',
    '?tenant_id[]=wayne',
    '?tenant_id%5B%5D=wayne',
    '?tenant_id[0]=wayne',
    '?tenant.id=wayne',
    '?tenant%5Fid=wayne',
    '?tenant+id=wayne',
    '?a=1;tenant_id=wayne',
  ])('%s → 403 tenant_in_query', async (query) => {
    const { ctx, refused } = await send(`/api/tenants/acme${query}`);
    expect(refused).toEqual(IN_QUERY);
    expect(ctx.tenant).toBeNull();
  });

  it.each(['?tenant_id=%FF', '?tenant_id=%E0%A4', '?tenant%ZZid=acme'])('%s → 400 bad_request', async (query) => {
    expect((await send(`/api/tenants/acme${query}`)).refused).toEqual(BAD);
  });

  it('the appended value is URL-encoded', async () => {
    const c = await compileConfig(yaml('').replace('tenants: [{ id: acme,', 'tenants: [{ id: "acme:eu",').replace('tenant: acme,', 'tenant: "acme:eu",'));
    const { ctx, refused } = await send('/api/tenants/acme:eu', c);
    expect(refused).toBeUndefined();
    expect(ctx.search).toBe('?tenant_id=acme%3Aeu');
  });
});

describe('routes without tenantIn', () => {
  it('are not touched: no query is added, no value compared', async () => {
    const { ctx, refused } = await send('/other/tenants/wayne?tenant_id=wayne');
    expect(refused).toBeUndefined();
    expect(ctx.search).toBe('?tenant_id=wayne');
    expect(ctx.route!.tenantIn).toBeNull();
  });
});
