/**
 * Prometheus metrics (SPEC §6) on one registry served by the admin port. Label
 * children used on the hot path are resolved once and cached, never built per
 * request.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';

export class Metrics {
  readonly registry = new Registry();
  /** Where the in-flight gauge reads its value at scrape time, so the hot path only touches a number. */
  inflightSource: () => number = () => 0;
  readonly inflight: Gauge = new Gauge({
    name: 'tenantgate_inflight_requests',
    help: 'Requests being processed (HTTP and open WebSockets)',
    registers: [this.registry],
    collect: (): void => this.inflight.set(this.inflightSource()),
  });
  readonly configReloads = new Counter({
    name: 'tenantgate_config_reloads_total',
    help: 'Config reloads by result',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly storeUp = new Gauge({ name: 'tenantgate_store_up', help: '1 when the limit store answers (always 1 for the in-memory store)', registers: [this.registry] });

  readonly authFailures = new Counter({
    name: 'tenantgate_auth_failures_total',
    help: 'Requests refused by authentication, by route and precise reason',
    labelNames: ['route', 'reason'] as const,
    registers: [this.registry],
  });
  readonly crossTenantAttempts = new Counter({
    name: 'tenantgate_cross_tenant_attempts_total',
    help: "Credentials of one tenant used on a host bound to another (label: the credential's tenant)",
    labelNames: ['tenant'] as const,
    registers: [this.registry],
  });
  readonly limited = new Counter({
    name: 'tenantgate_limited_total',
    help: 'Requests refused by a limit',
    labelNames: ['tenant', 'limit'] as const,
    registers: [this.registry],
  });
  readonly storeFailures = new Counter({
    name: 'tenantgate_store_failures_total',
    help: 'Limit store calls that failed, by kind (timeout, down)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  /** Bounds the `tenant` label (metrics.maxTenantLabels); tenants past the bound count as `other`. */
  private readonly tenantLabels = new Set<string>();
  maxTenantLabels = 1000;

  tenantLabel(tenantId: string): string {
    if (this.tenantLabels.has(tenantId)) return tenantId;
    if (this.tenantLabels.size >= this.maxTenantLabels) return 'other';
    this.tenantLabels.add(tenantId);
    return tenantId;
  }

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    this.storeUp.set(1);
    // Zero-initialise so dashboards see the series before the first reload.
    this.configReloads.labels('success').inc(0);
    this.configReloads.labels('failure').inc(0);
  }
}
