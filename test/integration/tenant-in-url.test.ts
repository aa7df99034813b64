/**
 * Tenant ids in the URL, end to end (SPEC §10 `tenantIn`): a real proxy in
 * front of a real upstream, an API key of acme. Every mismatched, duplicated,
 * percent-encoded, case-varied or spelt-differently tenant value in the path
 * or the query is refused before the upstream sees anything; a matching one
 * is forwarded byte for byte; a missing query parameter is appended.
 */
import { request } from 'node:http';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { generateApiKey } from '../../src/auth/api-key-format.js';
import { startProxy, startUpstream, type RunningProxy, type Upstream } from '../helpers/servers.js';

const acme = generateApiKey({ env: 'live', id: 'ak_acme' });
let upstream: Upstream;
let proxy: RunningProxy;

beforeAll(async () => {
  upstream = await startUpstream();
  proxy = await startProxy(`
plans: { pro: { rate: null } }
tenants: [{ id: acme, plan: pro }, { id: wayne, plan: pro }]
apiKeys: [{ id: ak_acme, tenant: acme, hash: "${acme.hash}", scopes: ["*"] }]
routes:
  - name: tenant-stats
    match: { pathPrefix: /api/tenants }
    upstream: "${upstream.url}"
    tenantIn: { path: "/api/tenants/{tenant}", query: tenant_id }
  - { name: plain, match: { pathPrefix: /plain }, upstream: "${upstream.url}" }
`);
});
afterAll(async () => {
  await proxy.close();
  await upstream.close();
});
beforeEach(() => {
  upstream.requests.length = 0;
});

/** A request with its target sent exactly as written (fetch would re-encode it). */
function send(target: string): Promise<{ status: number; code: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: proxy.port, path: target, headers: { 'x-api-key': acme.key } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = JSON.parse(Buffer.concat(chunks).toString() || '{}') as { error?: { code: string } };
        resolve({ status: res.statusCode!, code: body.error?.code });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

describe('admitted: the upstream receives the target, with the parameter appended when missing', () => {
  it.each([
    ['/api/tenants/acme', '/api/tenants/acme?tenant_id=acme'],
    ['/api/tenants/acme/orders?page=2', '/api/tenants/acme/orders?page=2&tenant_id=acme'],
    ['/api/tenants/acme?tenant_id=acme', '/api/tenants/acme?tenant_id=acme'],
    ['/api/tenants/acme?tenant_id=acme&tenant_id=acme', '/api/tenants/acme?tenant_id=acme&tenant_id=acme'],
    ['/api/tenants/%61cme?tenant_id=%61cme', '/api/tenants/acme?tenant_id=%61cme'],
    ['/api/tenants?tenant_id=acme', '/api/tenants?tenant_id=acme'],
    ['/api/tenants/acme?Tenant_ID=acme', '/api/tenants/acme?Tenant_ID=acme&tenant_id=acme'],
  ])('%s → %s', async (target, forwarded) => {
    expect(await send(target)).toEqual({ status: 200, code: undefined });
    expect(upstream.requests.map((r) => r.url)).toEqual([forwarded]);
    expect(upstream.requests[0]!.headers['x-tenant-id']).toBe('acme');
  });
});

describe('refused: 403 cross_tenant, the upstream received nothing', () => {
  it.each([
    ['another tenant in the path', '/api/tenants/wayne/orders'],
    ['another tenant in the query', '/api/tenants/acme?tenant_id=wayne'],
    ['the query alone', '/api/tenants?tenant_id=wayne'],
    ['a duplicated parameter, the second another tenant', '/api/tenants/acme?tenant_id=acme&tenant_id=wayne'],
    ['a duplicated parameter, the first another tenant', '/api/tenants/acme?tenant_id=wayne&tenant_id=acme'],
    ['a case-varied id in the path', '/api/tenants/ACME'],
    ['a case-varied id in the query', '/api/tenants/acme?tenant_id=Acme'],
    ['a double-encoded id in the path', '/api/tenants/%2561cme'],
    ['a double-encoded id in the query', '/api/tenants/acme?tenant_id=%2561cme'],
    ['path parameters on the tenant segment', '/api/tenants/acme;tenant=wayne'],
    ['path parameters before it', '/api/tenants;x=1/wayne'],
    ['a case-varied name', '/api/tenants/acme?TENANT_ID=wayne'],
    ['an array name', '/api/tenants/acme?tenant_id[]=wayne'],
    ['an encoded name', '/api/tenants/acme?tenant%5Fid=wayne'],
    ['a dotted name (PHP reads it as tenant_id)', '/api/tenants/acme?tenant.id=wayne'],
    ['a ; separator', '/api/tenants/acme?x=1;tenant_id=wayne'],
    ['an empty value', '/api/tenants/acme?tenant_id='],
  ])('%s: %s', async (_name, target) => {
    expect(await send(target)).toEqual({ status: 403, code: 'cross_tenant' });
    expect(upstream.requests).toHaveLength(0);
  });
});

describe('malformed: 400 bad_request, the upstream received nothing', () => {
  it.each([
    ['an escape that is not UTF-8 in the path', '/api/tenants/%FF'],
    ['an escape that is not UTF-8 in the query', '/api/tenants/acme?tenant_id=%C3'],
    ['an encoded slash in the path', '/api/tenants/acme%2Fwayne'],
  ])('%s: %s', async (_name, target) => {
    expect(await send(target)).toEqual({ status: 400, code: 'bad_request' });
    expect(upstream.requests).toHaveLength(0);
  });
});

it('a route without tenantIn forwards tenant-looking values untouched', async () => {
  expect(await send('/plain/tenants/wayne?tenant_id=wayne')).toEqual({ status: 200, code: undefined });
  expect(upstream.requests.map((r) => r.url)).toEqual(['/plain/tenants/wayne?tenant_id=wayne']);
});
