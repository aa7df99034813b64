/**
 * The shipped Grafana dashboard (helm/tenantgate/files/grafana-dashboard.json)
 * as a file: importable, one data source variable, every panel explained and
 * covering what issue #31 asks for. Its PromQL is evaluated against a real
 * Prometheus in test/integration/prometheus.test.ts.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../../helpers/servers.js';

interface Panel {
  id: number;
  type: string;
  title: string;
  description?: string;
  datasource?: { uid: string };
  targets?: { expr: string; datasource: { uid: string } }[];
}
const file = join(ROOT, 'helm/tenantgate/files/grafana-dashboard.json');
const dashboard = JSON.parse(readFileSync(file, 'utf8')) as { uid: string; panels: Panel[]; templating: { list: { name: string }[] } };
const panels = dashboard.panels.filter((p) => p.type !== 'row');
const exprs = panels.flatMap((p) => p.targets ?? []).map((t) => t.expr);

describe('Grafana dashboard', () => {
  it('has a stable uid, unique panel ids, and every panel on the ${datasource} variable with a description', () => {
    expect(dashboard.uid).toBe('tenantgate');
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(dashboard.templating.list.map((v) => v.name)).toEqual(['datasource', 'job', 'route', 'tenant', 'plan']);
    for (const p of panels) {
      expect(p.description, p.title).toBeTruthy();
      expect(p.datasource?.uid, p.title).toBe('${datasource}');
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
      for (const t of p.targets!) {
        expect(t.datasource.uid, p.title).toBe('${datasource}');
        expect(t.expr, p.title).toContain('job=~"$job"');
      }
    }
  });

  it('covers traffic, errors and latency per route, tenants, 429s by limit and route, store, usage sink, cross-tenant, plans', () => {
    const uses = (metric: string, by: string) => exprs.some((e) => e.includes(metric) && e.includes(by));
    expect(uses('tenantgate_requests_total', 'by (route)')).toBe(true);
    expect(uses('status_class="5xx"', 'by (route)')).toBe(true);
    expect(uses('histogram_quantile(0.99, sum by (route, le) (rate(tenantgate_request_duration_seconds_bucket', '')).toBe(true);
    expect(uses('histogram_quantile(0.5, sum by (route, le) (rate(tenantgate_request_duration_seconds_bucket', '')).toBe(true);
    expect(uses('topk(10, sum by (tenant)', 'tenantgate_requests_total')).toBe(true);
    expect(uses('tenantgate_tenant_request_duration_seconds_bucket', 'by (tenant, le)')).toBe(true);
    expect(uses('tenantgate_limited_total', 'by (route, limit)')).toBe(true);
    expect(uses('tenantgate_store_up', '')).toBe(true);
    expect(uses('tenantgate_usage_events_total', 'by (sink, outcome)')).toBe(true);
    expect(uses('tenantgate_cross_tenant_attempts_total', 'by (tenant)')).toBe(true);
    expect(uses('tenantgate_quota_used_ratio', 'by (tenant, limit)')).toBe(true);
    expect(uses('tenantgate_plan_request_duration_seconds_bucket', 'by (plan, le)')).toBe(true);
    expect(uses('tenantgate_plan_request_duration_seconds_count{job=~"$job",plan=~"$plan",status_class="5xx"}', 'by (plan)')).toBe(true);
  });

  it('the Helm templates read the shipped files, which exist', () => {
    for (const [template, shipped] of [
      ['grafana-dashboard.yaml', 'files/grafana-dashboard.json'],
      ['prometheusrule.yaml', 'files/prometheus-rules.yaml'],
    ]) {
      expect(readFileSync(join(ROOT, 'helm/tenantgate/templates', template!), 'utf8')).toContain(`.Files.Get "${shipped}"`);
      expect(existsSync(join(ROOT, 'helm/tenantgate', shipped!))).toBe(true);
    }
  });
});
