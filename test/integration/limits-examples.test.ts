/**
 * The worked examples of docs/limits.md, each read from the doc as written
 * (upstream URLs pointed at a real upstream, API keys and admin settings
 * added) and exercised through a real proxy: the named limit that refuses,
 * its 429 body and headers field by field, what the upstream received, the
 * usage route, entitlements in the admin API.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { generateApiKey } from '../../src/auth/api-key-format.js';
import { ADMIN_TOKEN, admin } from '../helpers/admin-api.js';
import { ROOT, startProxy, startUpstream, type RunningProxy, type Upstream } from '../helpers/servers.js';

const DOC = readFileSync(join(ROOT, 'docs/limits.md'), 'utf8');

/** The YAML block after `<!-- example: name -->`, its upstreams pointed at `upstream`. */
function example(name: string, upstream: string): string {
  const m = new RegExp(`<!-- example: ${name} -->\\n\`\`\`yaml\\n([\\s\\S]*?)\`\`\``).exec(DOC);
  if (m === null) throw new Error(`docs/limits.md has no example "${name}"`);
  return m[1]!.replace(/http:\/\/[a-z-]+\.internal:8080/g, upstream);
}

const keys = Object.fromEntries(['acme', 'scrapy', 'globex', 'initrode', 'umbrella', 'cyberdyne'].map((t) => [t, generateApiKey({ env: 'live', id: `ak_${t}` })]));
const keyYaml = (tenant: string, extra = '') => `  - { id: ak_${tenant}, tenant: ${tenant}, hash: "${keys[tenant]!.hash}", scopes: ["*"]${extra} }\n`;
const adminYaml = () => `admin: { host: 127.0.0.1, port: 0, token: "${ADMIN_TOKEN}", stateFile: "${join(mkdtempSync(join(tmpdir(), 'tg-lim-')), 'state.json')}" }\n`;

const call = (proxy: RunningProxy, tenant: string, path: string, method = 'GET', key = keys[tenant]!.key) => fetch(`${proxy.url}${path}`, { method, headers: { 'x-api-key': key } });
/** Seconds from now to `ms`, as Retry-After rounds them. */
const secondsTo = (ms: number) => Math.ceil((ms - Date.now()) / 1000);
const nextHour = () => Math.ceil((Date.now() + 1) / 3_600_000) * 3_600_000;

let upstream: Upstream;
/** POST /jobs answers only when released (a job in flight). */
const held: (() => void)[] = [];
let proxy: RunningProxy | null = null;

beforeAll(async () => {
  upstream = await startUpstream((req, res) => {
    if (req.method === 'POST' && req.url?.startsWith('/jobs')) held.push(() => res.end('done'));
    else res.end('ok');
  });
});
afterEach(async () => {
  for (const release of held.splice(0)) release();
  await proxy?.close();
  proxy = null;
});
afterAll(async () => upstream.close());

describe('docs/limits.md worked examples', () => {
  it('deployment platform: the 101st deployment of the hour is refused by "deployments"; reads and workflows go on; the usage card', async () => {
    proxy = await startProxy(`${example('deployment-platform', upstream.url)}apiKeys:\n${keyYaml('acme')}`);
    const before = upstream.requests.length;
    for (let i = 0; i < 100; i += 20) {
      const batch = await Promise.all(Array.from({ length: 20 }, () => call(proxy!, 'acme', '/v1/deployments', 'POST').then(async (r) => (await r.text(), r.status))));
      expect(batch).toEqual(Array(20).fill(200));
    }
    const refused = await call(proxy, 'acme', '/v1/deployments', 'POST');
    expect(refused.status).toBe(429);
    const body = await refused.json();
    expect(body).toEqual({ error: { code: 'quota_exceeded', message: 'Quota exceeded.', requestId: refused.headers.get('x-request-id'), limit: 'deployments' } });
    const retry = Number(refused.headers.get('retry-after'));
    expect(Math.abs(retry - secondsTo(nextHour()))).toBeLessThanOrEqual(2);
    expect(refused.headers.get('ratelimit-policy')).toBe('"api-per-minute";q=1000;w=60, "deployments";q=100;w=3600');
    expect(refused.headers.get('ratelimit')).toMatch(/^"deployments";r=0;t=\d+$/);
    expect(refused.headers.get('ratelimit-limit')).toBe('100');
    expect(refused.headers.get('ratelimit-remaining')).toBe('0');
    expect(upstream.requests.slice(before).filter((r) => r.method === 'POST' && r.url.startsWith('/v1/deployments'))).toHaveLength(100);

    const list = await call(proxy, 'acme', '/v1/deployments');
    expect(list.status).toBe(200);
    expect(list.headers.get('ratelimit-policy')).toBe('"api-per-minute";q=1000;w=60');
    const run = await call(proxy, 'acme', '/v1/workflows', 'POST');
    expect(run.status).toBe(200);
    expect(run.headers.get('ratelimit-policy')).toBe('"api-per-minute";q=1000;w=60, "workflow-runs";q=50;w=3600');
    expect(run.headers.get('ratelimit')).toMatch(/^"api-per-minute";r=\d+;t=\d+$/);

    const card = await call(proxy, 'acme', '/v1/usage');
    expect(card.status).toBe(200);
    expect(card.headers.get('ratelimit')).toBeNull(); // not counted
    const usage = await card.json();
    expect(usage.tenant).toBe('acme');
    expect(usage.plan).toBe('team');
    expect(usage.limits.map((l: { name: string; kind: string }) => [l.name, l.kind])).toEqual([
      ['api-per-minute', 'rate'],
      ['deployments', 'quota'],
      ['workflow-runs', 'quota'],
    ]);
    expect(usage.limits[1]).toEqual({ name: 'deployments', kind: 'quota', used: 100, limit: 100, remaining: 0, resetAt: new Date(nextHour()).toISOString() });
    expect(usage.limits[2]).toMatchObject({ used: 1, limit: 50, remaining: 49 });
    const rate = usage.limits[0];
    expect(rate.limit).toBe(1000);
    expect(rate.used + rate.remaining).toBe(1000);
    expect(rate.used).toBeGreaterThan(90); // 103 taken, refilling 1000 a minute
    // Reading it again charges nothing: the bucket only refills.
    const again = await (await call(proxy, 'acme', '/v1/usage')).json();
    expect(again.limits[0].used).toBeLessThanOrEqual(rate.used);
    expect(upstream.requests.some((r) => r.url.startsWith('/v1/usage'))).toBe(false);
  });

  it('scraping SaaS: two jobs in flight per project; the plan caps keys and projects in the admin API (409 entitlement_exceeded)', async () => {
    proxy = await startProxy(`${adminYaml()}${example('scraping-saas', upstream.url)}apiKeys:\n${keyYaml('scrapy', ', project: crawl-1')}`);
    const jobs = [call(proxy, 'scrapy', '/jobs', 'POST'), call(proxy, 'scrapy', '/jobs', 'POST')];
    await expect.poll(() => held.length).toBe(2);
    const third = await call(proxy, 'scrapy', '/jobs', 'POST');
    expect(third.status).toBe(429);
    expect(await third.json()).toMatchObject({ error: { code: 'concurrency_limited', limit: 'concurrent-jobs' } });
    expect(third.headers.get('retry-after')).toBe('1');
    expect(held.length).toBe(2); // the upstream never saw the third
    // Reading jobs is not a job.
    expect((await call(proxy, 'scrapy', '/jobs')).status).toBe(200);

    const newProject = await admin(proxy.adminUrl, 'POST', '/admin/tenants/scrapy/keys', { project: 'crawl-2', scopes: ['*'] });
    expect(newProject.status).toBe(409);
    expect(newProject.body.error.code).toBe('entitlement_exceeded');
    const sameProject = await admin(proxy.adminUrl, 'POST', '/admin/tenants/scrapy/keys', { project: 'crawl-1', scopes: ['*'] });
    expect(sameProject.status).toBe(201);
    // The new key's job counts in the same project: still two in flight at most.
    const viaNewKey = await call(proxy, 'scrapy', '/jobs', 'POST', sameProject.body.key);
    expect(viaNewKey.status).toBe(429);
    const thirdKey = await admin(proxy.adminUrl, 'POST', '/admin/tenants/scrapy/keys', { project: 'crawl-1', scopes: ['*'] });
    expect(thirdKey.status).toBe(409);
    expect(thirdKey.body.error.code).toBe('entitlement_exceeded');

    for (const release of held.splice(0)) release();
    expect((await Promise.all(jobs)).map((r) => r.status)).toEqual([200, 200]);
    const after = call(proxy, 'scrapy', '/jobs', 'POST');
    await expect.poll(() => held.length).toBe(1);
    held.splice(0)[0]!();
    expect((await after).status).toBe(200);
  });

  it('enterprise platform: four limits at once; the trial override refuses the sixth call by "calls-per-hour" and charges none of the others', async () => {
    proxy = await startProxy(`${adminYaml()}${example('enterprise-platform', upstream.url)}apiKeys:\n${keyYaml('globex')}${keyYaml('initrode')}`);
    const statuses: number[] = [];
    let last: Response | null = null;
    for (let i = 0; i < 7; i++) {
      last = await call(proxy, 'initrode', '/api/x');
      statuses.push(last.status);
      if (i === 0) {
        expect(last.headers.get('ratelimit-policy')).toBe(
          `"calls-per-minute";q=600;w=60, "calls-per-hour";q=5;w=3600, "calls-per-day";q=200000;w=86400, "calls-per-month";q=3000000;w=${Number(/w=(\d+)$/.exec(last.headers.get('ratelimit-policy')!)![1])}`,
        );
        expect(last.headers.get('ratelimit')).toMatch(/^"calls-per-hour";r=4;t=\d+$/);
      }
      if (i < 6) await last.text();
    }
    expect(statuses).toEqual([200, 200, 200, 200, 200, 429, 429]);
    expect(await last!.json()).toMatchObject({ error: { code: 'quota_exceeded', limit: 'calls-per-hour' } });
    const shown = await admin(proxy.adminUrl, 'GET', '/admin/tenants/initrode');
    const used = Object.fromEntries(shown.body.limits.map((l: { name: string; used: number }) => [l.name, l.used]));
    expect(used['calls-per-hour']).toBe(5);
    expect(used['calls-per-day']).toBe(5);
    expect(used['calls-per-month']).toBe(5);
    // The enterprise tenant is far from its limits.
    const big = await call(proxy, 'globex', '/api/x');
    expect(big.status).toBe(200);
    expect(big.headers.get('ratelimit')).toMatch(/^"calls-per-minute";r=11999;t=\d+$/);
  });

  it('security product: calls per billing month; the usage card resets on the billing day', async () => {
    proxy = await startProxy(`${example('security-product', upstream.url)}apiKeys:\n${keyYaml('umbrella')}${keyYaml('cyberdyne')}`);
    const now = new Date();
    const y = now.getUTCFullYear();
    const m = now.getUTCMonth();
    const lastDay = (yy: number, mm: number) => new Date(Date.UTC(yy, mm + 1, 0)).getUTCDate();
    const day = (yy: number, mm: number, d: number) => Date.UTC(yy, mm, Math.min(d, lastDay(yy, mm)));
    const nextStart = (d: number) => (day(y, m, d) > now.getTime() ? day(y, m, d) : day(y, m + 1, d));

    for (let i = 0; i < 3; i++) expect((await call(proxy, 'cyberdyne', '/scans/1')).status).toBe(200);
    const refused = await call(proxy, 'cyberdyne', '/scans/1');
    expect(refused.status).toBe(429);
    expect(await refused.json()).toMatchObject({ error: { code: 'quota_exceeded', limit: 'api-calls' } });
    expect(Math.abs(Number(refused.headers.get('retry-after')) - secondsTo(nextStart(31)))).toBeLessThanOrEqual(2);

    expect((await call(proxy, 'umbrella', '/scans/1')).status).toBe(200);
    const card = await (await call(proxy, 'umbrella', '/usage')).json();
    expect(card).toEqual({ tenant: 'umbrella', plan: 'standard', limits: [{ name: 'api-calls', kind: 'quota', used: 1, limit: 10000, remaining: 9999, resetAt: new Date(nextStart(15)).toISOString() }] });
    // Each tenant sees its own: cyberdyne's card, with its override.
    const own = await (await call(proxy, 'cyberdyne', '/usage')).json();
    expect(own).toEqual({ tenant: 'cyberdyne', plan: 'standard', limits: [{ name: 'api-calls', kind: 'quota', used: 3, limit: 3, remaining: 0, resetAt: new Date(nextStart(31)).toISOString() }] });
  });
});
