/**
 * Issue #31's metrics on a Metrics registry: build info, the plan histogram,
 * the opt-in per-tenant histogram, the quota used ratio, names promtool
 * accepts, and the OpenMetrics rendering beside the text format.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { QuotaSpec } from '../../../src/limits/types.js';
import { openMetrics } from '../../../src/observability/exposition.js';
import { Metrics } from '../../../src/observability/metrics.js';
import { PROMTOOL } from '../../helpers/prometheus.js';
import { ROOT } from '../../helpers/servers.js';

const text = (m: Metrics) => m.registry.metrics();
const lines = (t: string, name: string) => t.split('\n').filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));

function metrics(section: { maxTenantLabels?: number; tenantHistograms?: boolean } = {}): Metrics {
  const m = new Metrics();
  m.configure({ enabled: true, maxTenantLabels: section.maxTenantLabels ?? 1000, tenantHistograms: section.tenantHistograms ?? false });
  return m;
}

describe('tenantgate_build_info', () => {
  it("is 1, labelled with package.json's version and the Node.js version", async () => {
    const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    expect(lines(await text(metrics()), 'tenantgate_build_info')).toEqual([`tenantgate_build_info{version="${version}",node_version="${process.version}"} 1`]);
  });
});

describe('tenantgate_plan_request_duration_seconds{plan, status_class}', () => {
  it('counts by the tenant plan; a request without a tenant is plan "none"', async () => {
    const m = metrics();
    m.observeRequest('orders', 'GET', 200, 'acme', 0.002, 0.001, 'pro');
    m.observeRequest('orders', 'GET', 503, 'acme', 0.004, null, 'pro');
    m.observeRequest('orders', 'GET', 401, null, 0.0001, null, null);
    expect(lines(await text(m), 'tenantgate_plan_request_duration_seconds_count')).toEqual([
      'tenantgate_plan_request_duration_seconds_count{plan="pro",status_class="2xx"} 1',
      'tenantgate_plan_request_duration_seconds_count{plan="pro",status_class="5xx"} 1',
      'tenantgate_plan_request_duration_seconds_count{plan="none",status_class="4xx"} 1',
    ]);
  });

  it("follows a tenant whose plan changed (the cached series is not the old plan's)", async () => {
    const m = metrics();
    m.observeRequest('orders', 'GET', 200, 'acme', 0.002, 0.001, 'free');
    m.observeRequest('orders', 'GET', 200, 'acme', 0.002, 0.001, 'pro');
    m.observeRequest('orders', 'GET', 200, 'acme', 0.002, 0.001, 'pro');
    expect(lines(await text(m), 'tenantgate_plan_request_duration_seconds_count')).toEqual([
      'tenantgate_plan_request_duration_seconds_count{plan="free",status_class="2xx"} 1',
      'tenantgate_plan_request_duration_seconds_count{plan="pro",status_class="2xx"} 2',
    ]);
  });

  it('holds at most 100 plan values; more count as "other"', () => {
    const m = metrics();
    for (let i = 0; i < 100; i++) expect(m.planLabel(`plan${i}`)).toBe(`plan${i}`);
    expect(m.planLabel('plan100')).toBe('other');
    expect(m.planLabel('plan7')).toBe('plan7');
  });
});

describe('metrics.tenantHistograms', () => {
  it('off (the default): no per-tenant histogram, not even its HELP line', async () => {
    const m = metrics();
    m.observeRequest('orders', 'GET', 200, 'acme', 0.002, 0.001, 'pro');
    expect(await text(m)).not.toContain('tenantgate_tenant_request_duration_seconds');
  });

  it('on: one histogram per tenant and status class, bounded by maxTenantLabels; no series for requests without a tenant', async () => {
    const m = metrics({ tenantHistograms: true, maxTenantLabels: 2 });
    for (const t of ['acme', 'globex', 'initech', 'hooli']) m.observeRequest('orders', 'GET', 200, t, 0.002, 0.001, 'pro');
    m.observeRequest('orders', 'GET', 429, 'acme', 0.0003, null, 'pro');
    m.observeRequest('orders', 'GET', 401, null, 0.0001, null, null);
    const t = await text(m);
    expect(lines(t, 'tenantgate_tenant_request_duration_seconds_count')).toEqual([
      'tenantgate_tenant_request_duration_seconds_count{tenant="acme",status_class="2xx"} 1',
      'tenantgate_tenant_request_duration_seconds_count{tenant="globex",status_class="2xx"} 1',
      'tenantgate_tenant_request_duration_seconds_count{tenant="other",status_class="2xx"} 2',
      'tenantgate_tenant_request_duration_seconds_count{tenant="acme",status_class="4xx"} 1',
    ]);
    expect(t).toContain('tenantgate_tenant_request_duration_seconds_bucket{le="0.0005",tenant="acme",status_class="4xx"} 1');
  });

  it('a reload turning it off removes the series; turning it on again starts from zero', async () => {
    const m = metrics({ tenantHistograms: true });
    m.observeRequest('orders', 'GET', 200, 'acme', 0.002, 0.001, 'pro');
    m.configure({ enabled: true, maxTenantLabels: 1000, tenantHistograms: false });
    m.observeRequest('orders', 'GET', 200, 'acme', 0.002, 0.001, 'pro');
    expect(await text(m)).not.toContain('tenantgate_tenant_request_duration_seconds');
    m.configure({ enabled: true, maxTenantLabels: 1000, tenantHistograms: true });
    m.observeRequest('orders', 'GET', 200, 'acme', 0.002, 0.001, 'pro');
    const t = await text(m);
    expect(lines(t, 'tenantgate_tenant_request_duration_seconds_count')).toEqual(['tenantgate_tenant_request_duration_seconds_count{tenant="acme",status_class="2xx"} 1']);
    // The other series went on counting through both reloads.
    expect(lines(t, 'tenantgate_requests_total')).toEqual(['tenantgate_requests_total{route="orders",method="GET",status_class="2xx",tenant="acme"} 3']);
  });
});

describe('tenantgate_quota_used_ratio{tenant, limit}', () => {
  const quota = (kind: QuotaSpec['kind'], limit: number, resetAtMs: number): QuotaSpec => ({ key: `k:${kind}`, kind, limit, cost: 1, resetAtMs });

  it("is the last answer's used / limit per quota; a period that ended leaves the scrape", async () => {
    const m = metrics();
    const later = Date.now() + 3_600_000;
    m.quotaUsage.record('acme', [quota('quota_daily', 200, later), quota('quota_monthly', 1000, later)], [150, 900]);
    m.quotaUsage.record('acme', [quota('quota_daily', 200, later), quota('quota_monthly', 1000, later)], [190, 940]);
    m.quotaUsage.record('globex', [quota('quota_daily', 10, Date.now() - 1)], [10]);
    expect(lines(await text(m), 'tenantgate_quota_used_ratio')).toEqual([
      'tenantgate_quota_used_ratio{tenant="acme",limit="quota_daily"} 0.95',
      'tenantgate_quota_used_ratio{tenant="acme",limit="quota_monthly"} 0.94',
    ]);
  });

  it('tracks no tenant past maxTenantLabels (a ratio of "other" would mean nothing)', async () => {
    const m = metrics({ maxTenantLabels: 1 });
    const later = Date.now() + 60_000;
    m.quotaUsage.record('acme', [quota('quota_daily', 10, later)], [5]);
    m.quotaUsage.record('globex', [quota('quota_daily', 10, later)], [9]);
    expect(lines(await text(m), 'tenantgate_quota_used_ratio')).toEqual(['tenantgate_quota_used_ratio{tenant="acme",limit="quota_daily"} 0.5']);
  });
});

describe('names and formats', () => {
  async function busy(): Promise<Metrics> {
    const m = metrics({ tenantHistograms: true });
    m.observeRequest('orders', 'GET', 200, 'acme', 0.002, 0.001, 'pro');
    m.limited.labels('acme', 'orders', 'rate').inc();
    m.quotaUsage.record('acme', [{ key: 'k', kind: 'quota_daily', limit: 10, cost: 1, resetAtMs: Date.now() + 60_000 }], [3]);
    return m;
  }

  it('counters end in _total and nothing else does (the default nodejs_active_*_total gauges are gone, their per-type gauges kept)', async () => {
    const t = await text(await busy());
    const types = [...t.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((x) => [x[1]!, x[2]!] as const);
    expect(types.length).toBeGreaterThan(30);
    for (const [name, type] of types) expect(name.endsWith('_total'), `${name} (${type})`).toBe(type === 'counter');
    for (const name of ['nodejs_active_handles', 'nodejs_active_requests', 'nodejs_active_resources']) expect(t).toContain(`# TYPE ${name} gauge`);
  });

  it.skipIf(PROMTOOL === null)('promtool check metrics accepts the text', async () => {
    const run = spawnSync(PROMTOOL!, ['check', 'metrics'], { input: await text(await busy()), encoding: 'utf8' });
    expect(run.status, run.stdout + run.stderr).toBe(0);
  });

  it('OpenMetrics: counter families without _total, samples with it, # EOF last; the text format is unchanged afterwards', async () => {
    const m = await busy();
    const before = await text(m);
    const om = await openMetrics(m.registry);
    expect(om.endsWith('\n# EOF\n')).toBe(true);
    expect(om).toContain('# TYPE tenantgate_limited counter\n');
    expect(om).toContain('tenantgate_limited_total{tenant="acme",route="orders",limit="rate"} 1\n');
    expect(om).toContain('# TYPE tenantgate_requests counter\n');
    expect(om).toContain('tenantgate_requests_total{route="orders",method="GET",status_class="2xx",tenant="acme"} 1\n');
    expect(om).toContain('# TYPE tenantgate_request_duration_seconds histogram\n');
    expect(om).not.toContain('\n\n');
    // prom-client renames counters in place when its own registry prints OpenMetrics; the views keep that away.
    const after = await text(m);
    expect(after.replace(/^process_.*$|^nodejs_.*$/gm, '')).toBe(before.replace(/^process_.*$|^nodejs_.*$/gm, ''));
    expect(after).toContain('# TYPE tenantgate_limited_total counter');
  });
});
