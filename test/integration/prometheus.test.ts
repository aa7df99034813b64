/**
 * Issue #31 against the real tools: a tenantgate process (dist/main.js) under
 * a short varied load — 200s, 401s, 404s, 5xx, 429s by rate and by quota, a
 * cross-tenant attempt, metrics.tenantHistograms on — then
 *
 * - `promtool check metrics` on its real scrape;
 * - a real Prometheus of the test's own scraping it every second (and asking
 *   for OpenMetrics first, as Prometheus does), with the shipped alert rules
 *   loaded: the target is up, every rule evaluates, and EVERY PromQL
 *   expression of the shipped Grafana dashboard returns data.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateApiKey } from '../../src/auth/api-key-format.js';
import { PROMETHEUS, PROMTOOL, startPrometheus, type RunningPrometheus } from '../helpers/prometheus.js';
import { ROOT, spawnProxy, startProxy, startUpstream, type SpawnedProxy, type Upstream } from '../helpers/servers.js';

const DASHBOARD = join(ROOT, 'helm/tenantgate/files/grafana-dashboard.json');
const RULES = join(ROOT, 'helm/tenantgate/files/prometheus-rules.yaml');

const acme = generateApiKey({ env: 'live', id: 'ak_acme' });
const globex = generateApiKey({ env: 'live', id: 'ak_globex' });
const initech = generateApiKey({ env: 'live', id: 'ak_initech' });

function config(upstream: string, spoolDir: string): string {
  return `
plans:
  pro: { rate: null, quota: { daily: 1000 }, concurrency: null }
  free: { rate: { perSecond: 0.001, burst: 2 } }
  metered: { quota: { daily: 3 } }
tenants:
  - { id: acme, plan: pro, hosts: [acme.example.com] }
  - { id: globex, plan: free }
  - { id: initech, plan: metered }
apiKeys:
  - { id: ak_acme, tenant: acme, hash: "${acme.hash}", scopes: ["*"] }
  - { id: ak_globex, tenant: globex, hash: "${globex.hash}", scopes: ["*"] }
  - { id: ak_initech, tenant: initech, hash: "${initech.hash}", scopes: ["*"] }
routes:
  - { name: api, match: { pathPrefix: /api }, upstream: "${upstream}", auth: [apiKey] }
  - { name: public, match: { pathPrefix: /public }, upstream: "${upstream}", auth: [none] }
usage:
  sinks: [{ type: file, path: ${join(spoolDir, 'usage.ndjson')} }]
  spoolDir: ${join(spoolDir, 'spool')}
metrics: { tenantHistograms: true }
`;
}

/** Status of a GET with these headers (the body read, so the request is accounted). */
async function get(base: string, path: string, headers: Record<string, string> = {}): Promise<number> {
  const res = await fetch(`${base}${path}`, { headers });
  await res.arrayBuffer();
  return res.status;
}

/** fetch() cannot set Host: a raw request with the client's Host header. */
function getWithHost(port: number, path: string, host: string, key: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers: { host, 'x-api-key': key } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode!));
    });
    req.on('error', reject);
    req.end();
  });
}

/** One round of the load; every status is checked, so the series the dashboard reads exist for the reason they claim. */
async function load(proxy: SpawnedProxy, round: 1 | 2): Promise<void> {
  const u = proxy.url;
  expect(await get(u, '/api/ok', { 'x-api-key': acme.key })).toBe(200);
  expect(await get(u, '/api/fail', { 'x-api-key': acme.key })).toBe(500);
  expect(await get(u, '/api/ok')).toBe(401);
  expect(await get(u, '/nowhere')).toBe(404);
  expect(await get(u, '/public/x')).toBe(200);
  // globex: burst 2, refilled once in ~17 minutes: two 200s, then 429 rate_limited.
  const globexExpected = round === 1 ? [200, 200, 429] : [429];
  for (const status of globexExpected) expect(await get(u, '/api/ok', { 'x-api-key': globex.key })).toBe(status);
  // initech: 3 a day: three 200s, then 429 quota_exceeded.
  const initechExpected = round === 1 ? [200, 200, 200, 429] : [429];
  for (const status of initechExpected) expect(await get(u, '/api/ok', { 'x-api-key': initech.key })).toBe(status);
  // initech's key on acme's host.
  expect(await getWithHost(proxy.port, '/api/ok', 'acme.example.com', initech.key)).toBe(403);
}

/** Forwards Prometheus' scrapes to tenantgate, remembering the Accept header each one sent and the content type it got. */
async function recordingForwarder(adminPort: number): Promise<{ server: Server; target: string; seen: { accept: string; contentType: string }[] }> {
  const seen: { accept: string; contentType: string }[] = [];
  const server = createServer((req, res) => {
    const accept = req.headers.accept ?? '';
    const upstream = request({ host: '127.0.0.1', port: adminPort, path: req.url, headers: { accept } }, (up) => {
      seen.push({ accept, contentType: String(up.headers['content-type']) });
      res.writeHead(up.statusCode!, { 'content-type': String(up.headers['content-type']) });
      up.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    upstream.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, target: `127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

/** A dashboard expression with its variables given values: every route, tenant, plan and job; a 1m rate window. */
function concrete(expr: string): string {
  return expr.replaceAll('$__rate_interval', '1m').replace(/\$(job|route|tenant|plan)\b/g, '.*');
}

interface Panel {
  title: string;
  targets?: { expr: string }[];
  panels?: Panel[];
}
const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { panels: Panel[]; templating: { list: { name: string; query?: { query?: string } | string }[] } };
const targets = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]).flatMap((p) => (p.targets ?? []).map((t) => ({ title: p.title, expr: t.expr })));

describe.skipIf(PROMTOOL === null || PROMETHEUS === null)('a real Prometheus scraping a real tenantgate', () => {
  let upstream: Upstream;
  let proxy: SpawnedProxy;
  let prometheus: RunningPrometheus;
  let forwarder: Awaited<ReturnType<typeof recordingForwarder>>;

  beforeAll(async () => {
    upstream = await startUpstream((req, res) => {
      res.statusCode = req.url?.startsWith('/api/fail') ? 500 : 200;
      res.end('{}');
    });
    proxy = await spawnProxy(config(upstream.url, mkdtempSync(join(tmpdir(), 'tg-prom-'))));
    forwarder = await recordingForwarder(proxy.adminPort);
    prometheus = await startPrometheus(forwarder.target, [RULES]);
    // Two rounds more than a scrape apart: the first creates the series, the second moves them, so rates are above 0.
    await waitForScrapes(prometheus, 2);
    await load(proxy, 1);
    await waitForScrapes(prometheus, 2);
    await load(proxy, 2);
    await waitForScrapes(prometheus, 3);
  }, 60_000);

  afterAll(async () => {
    await prometheus?.stop();
    forwarder?.server.closeAllConnections();
    await new Promise((resolve) => forwarder?.server.close(resolve));
    await proxy?.stop();
    await upstream?.close();
  });

  it('promtool check metrics accepts the text scrape', async () => {
    const res = await fetch(`${proxy.adminUrl}/metrics`);
    expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    const text = await res.text();
    // The load's series are all in it (what promtool checks is the real thing).
    for (const name of ['tenantgate_build_info', 'tenantgate_limited_total', 'tenantgate_tenant_request_duration_seconds_bucket', 'tenantgate_plan_request_duration_seconds_bucket', 'tenantgate_quota_used_ratio', 'tenantgate_cross_tenant_attempts_total']) {
      expect(text).toMatch(new RegExp(`^${name}\\{`, 'm'));
    }
    const run = spawnSync(PROMTOOL!, ['check', 'metrics'], { input: text, encoding: 'utf8' });
    expect(run.status, run.stdout + run.stderr).toBe(0);
  });

  it('Prometheus asked for OpenMetrics, got it, and parsed it: the target is up', async () => {
    expect(forwarder.seen.length).toBeGreaterThan(3);
    for (const s of forwarder.seen) {
      expect(s.accept).toMatch(/^application\/openmetrics-text/);
      expect(s.contentType).toBe('application/openmetrics-text; version=1.0.0; charset=utf-8');
    }
    const { activeTargets } = await prometheus.api<{ activeTargets: { health: string; lastError: string }[] }>('targets');
    expect(activeTargets).toHaveLength(1);
    expect(activeTargets[0]).toMatchObject({ health: 'up', lastError: '' });
  });

  it('every PromQL expression of the dashboard returns data', async () => {
    expect(targets.length).toBeGreaterThan(20);
    const failures: string[] = [];
    for (const { title, expr } of targets) {
      const q = concrete(expr);
      expect(q, `${title}: a variable the test does not know`).not.toContain('$');
      const data = await prometheus.api<{ resultType: string; result: Sample[] }>(`query?query=${encodeURIComponent(q)}`);
      // A finite value: a ratio of nothing (NaN) or a quantile of no observations would not show the panel works.
      if (!data.result.some((s) => Number.isFinite(Number(s.value[1])))) failures.push(`${title}: ${q} → ${JSON.stringify(data.result)}`);
    }
    expect(failures).toEqual([]);
  });

  it("every dashboard variable's label_values() query has values", async () => {
    for (const v of dashboard.templating.list) {
      const query = typeof v.query === 'string' ? v.query : v.query?.query;
      const m = /^label_values\((.+), *(\w+)\)$/.exec(query ?? '');
      if (v.name === 'datasource') continue;
      expect(m, `${v.name}: ${query}`).not.toBeNull();
      const values = await prometheus.api<string[]>(`label/${m![2]}/values?match[]=${encodeURIComponent(concrete(m![1]!))}`);
      expect(values.length, v.name).toBeGreaterThan(0);
    }
  });

  it('the load shows where the issue asked: route on 429s, per-tenant p99, plans, quota use, cross-tenant', async () => {
    const q = async (expr: string) => (await prometheus.api<{ result: Sample[] }>(`query?query=${encodeURIComponent(expr)}`)).result;
    const limited = await q('sum by (tenant, route, limit) (tenantgate_limited_total)');
    expect(limited.map((s) => [s.metric.tenant, s.metric.route, s.metric.limit, s.value[1]]).sort()).toEqual([
      ['globex', 'api', 'rate', '2'],
      ['initech', 'api', 'quota_daily', '2'],
    ]);
    const quota = await q('tenantgate_quota_used_ratio{tenant="initech"}');
    expect(quota.map((s) => [s.metric.limit, s.value[1]])).toEqual([['quota_daily', '1']]);
    const plans = (await q('sum by (plan) (tenantgate_plan_request_duration_seconds_count)')).map((s) => s.metric.plan).sort();
    expect(plans).toEqual(['free', 'metered', 'none', 'pro']);
    const tenants = (await q('sum by (tenant) (tenantgate_tenant_request_duration_seconds_count)')).map((s) => s.metric.tenant).sort();
    expect(tenants).toEqual(['acme', 'globex', 'initech']);
    expect((await q('tenantgate_cross_tenant_attempts_total'))[0]).toMatchObject({ metric: { tenant: 'initech' }, value: [expect.any(Number), '2'] });
    expect((await q('tenantgate_build_info'))[0]!.metric.version).toBe((JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version);
  });

  it('the shipped alert rules load and evaluate without error', async () => {
    const { groups } = await prometheus.api<{ groups: { rules: { name: string; health: string; lastError?: string }[] }[] }>('rules');
    const rules = groups.flatMap((g) => g.rules);
    expect(rules).toHaveLength(6);
    for (const r of rules) expect(r, r.name).toMatchObject({ health: 'ok' });
  });
});

describe('/metrics content negotiation (over HTTP)', () => {
  const scrape = async (adminUrl: string, headers: Record<string, string>) => {
    const res = await fetch(`${adminUrl}/metrics`, { headers });
    return { status: res.status, type: res.headers.get('content-type'), vary: res.headers.get('vary'), body: await res.text() };
  };

  it('Accept: application/openmetrics-text → OpenMetrics 1.0.0 ending in # EOF; no or another Accept → text 0.0.4', async () => {
    const proxy = await startProxy('routes:\n  - { name: public, match: { pathPrefix: / }, upstream: "http://127.0.0.1:9", auth: [none] }\n');
    try {
      const om = await scrape(proxy.adminUrl, { accept: 'application/openmetrics-text; version=1.0.0' });
      expect(om).toMatchObject({ status: 200, type: 'application/openmetrics-text; version=1.0.0; charset=utf-8', vary: 'accept' });
      expect(om.body.endsWith('\n# EOF\n')).toBe(true);
      expect(om.body).toContain('# TYPE tenantgate_config_reloads counter\ntenantgate_config_reloads_total{result="success"} 0\n');
      for (const accept of [undefined, 'text/plain', '*/*', 'application/openmetrics-text;q=0.1, text/plain', '\u00ff;;;q=',  'application/json']) {
        const text = await scrape(proxy.adminUrl, accept === undefined ? {} : { accept });
        expect(text, String(accept)).toMatchObject({ status: 200, type: 'text/plain; version=0.0.4; charset=utf-8' });
        expect(text.body, String(accept)).toContain('# TYPE tenantgate_config_reloads_total counter\n');
        expect(text.body).not.toContain('# EOF');
      }
    } finally {
      await proxy.close();
    }
  });
});

/** Waits until Prometheus has scraped the target `n` more times (its `up` series gains n samples). */
async function waitForScrapes(p: RunningPrometheus, n: number): Promise<void> {
  const count = async () => {
    const data = await p.api<{ result: Sample[] }>(`query?query=${encodeURIComponent('count_over_time(up[5m])')}`);
    return Number(data.result[0]?.value[1] ?? 0);
  };
  const target = (await count()) + n;
  const deadline = Date.now() + 30_000;
  while ((await count()) < target) {
    if (Date.now() > deadline) throw new Error(`Prometheus did not scrape ${n} times in 30 s`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
