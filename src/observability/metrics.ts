/**
 * Prometheus metrics (SPEC §6) on one registry served by the admin port. Label
 * children used on the hot path are resolved once and cached, never built per
 * request.
 */
import { readFileSync } from 'node:fs';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { QuotaUsage } from './quota-usage.js';
import { HistogramSeries, SeriesCounter, SeriesHistogram, type CounterSeries } from './series-metrics.js';

/** Seconds. Proxy overhead is sub-millisecond, so the low end is finer than prom-client's defaults. */
const DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** Seconds. A Redis round trip on a LAN is ~0.1–0.5 ms; the first bucket holds the checks decided without one. */
const LIMIT_WAIT_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];

/** Methods outside this list (llhttp accepts ~35) share one label value, so the method label stays bounded. */
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'TRACE', 'OTHER'];
const METHOD_INDEX = new Map(METHODS.slice(0, -1).map((m, i) => [m, i]));
const STATUS_CLASS = ['0xx', '1xx', '2xx', '3xx', '4xx', '5xx', 'other'];

/**
 * prom-client's default gauges named `_total`, which `promtool check metrics`
 * refuses (a `_total` name promises a counter). Each is the sum of the
 * same-named gauge without the suffix, by `type`: `sum without (type) (nodejs_active_handles)`.
 */
const MISNAMED_DEFAULTS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

/** Distinct `plan` label values kept at most; plans come from the config, so this only guards against a runaway. */
const MAX_PLAN_LABELS = 100;

/** The package's version, read at start-up (dist/ and src/ both sit two levels below package.json). */
function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    return 'unknown';
  }
}

function statusClassIndex(status: number): number {
  const i = Math.floor(status / 100);
  return i >= 0 && i < 6 ? i : 6;
}

/** The series one kind of request touches, resolved once per label set (./series-metrics.ts says why they are not prom-client's). */
interface RequestSeries {
  readonly requests: CounterSeries;
  readonly duration: HistogramSeries;
  readonly upstream: HistogramSeries;
  /** The plan label this slot's plan histogram series was resolved for (a tenant's plan can change). */
  plan: string;
  planDuration: HistogramSeries;
  /** Resolved on first use while metrics.tenantHistograms is on (null: off, or no tenant). */
  tenantDuration: HistogramSeries | null;
}

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
  /** Where the dropped-claim-items counter reads its totals at scrape time (the JWT verifier keeps them, across reloads). */
  claimItemsDroppedSource: () => ReadonlyMap<string, number> = () => new Map();
  readonly claimItemsDropped: Counter = new Counter({
    name: 'tenantgate_jwt_claim_items_dropped_total',
    help: 'Role and scope items dropped from verified JWTs because they are not safe header tokens, by configured issuer',
    labelNames: ['issuer'] as const,
    registers: [this.registry],
    collect: (): void => {
      this.claimItemsDropped.reset();
      for (const [issuer, n] of this.claimItemsDroppedSource()) this.claimItemsDropped.labels(issuer).inc(n);
    },
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
    labelNames: ['tenant', 'route', 'limit'] as const,
    registers: [this.registry],
  });
  readonly limitCredit = new Counter({
    name: 'tenantgate_limit_credit_total',
    help: 'Local credit, in requests: reserved ahead from the Redis limit store (granted), and given back unused (returned)',
    labelNames: ['event'] as const,
    registers: [this.registry],
  });
  /**
   * Every limit check, by how long its request waited for the limit store's
   * answer: 0 when the proxy decided it at once (local credit, the in-memory
   * store, the fallback while Redis is down), so the low buckets tell how
   * many requests waited for Redis at all and the p99 what the limits add.
   */
  readonly limitWait = new SeriesHistogram(
    'tenantgate_limit_wait_seconds',
    "Time a request's limit check waited for the limit store (0: decided in the proxy, without a round trip)",
    [],
    LIMIT_WAIT_BUCKETS,
    this.registry,
  ).labels();
  /** What the limit stage records into when metrics are off: a series no registry reads. */
  readonly unreadLimitWait = new HistogramSeries(new Float64Array(LIMIT_WAIT_BUCKETS));
  readonly storeFailures = new Counter({
    name: 'tenantgate_store_failures_total',
    help: 'Limit store calls that failed, by kind (timeout, down)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly requests = new SeriesCounter(
    'tenantgate_requests_total',
    'Requests answered (admitted or rejected), by route, method, status class and tenant',
    ['route', 'method', 'status_class', 'tenant'],
    this.registry,
  );
  readonly requestDuration = new SeriesHistogram(
    'tenantgate_request_duration_seconds',
    "Time from the request's arrival until its response ended (or the client went away)",
    ['route', 'status_class'],
    DURATION_BUCKETS,
    this.registry,
  );
  readonly upstreamDuration = new SeriesHistogram(
    'tenantgate_upstream_duration_seconds',
    "Time from dispatching to the upstream until its response head arrived (the upstream's time to first byte)",
    ['route'],
    DURATION_BUCKETS,
    this.registry,
  );
  readonly usageEvents = new Counter({
    name: 'tenantgate_usage_events_total',
    help: 'Usage events by sink and outcome: sent, spooled (sink unavailable, kept on disk), replayed (sent from the spool)',
    labelNames: ['sink', 'outcome'] as const,
    registers: [this.registry],
  });
  /** Where the registry gauges read the registry's problem at scrape time (null: none). */
  registryProblemSource: () => string | null = () => null;
  /** Reasons seen so far: their series stay, at 0, once the problem clears. */
  private readonly registryReasons = new Set<string>();
  readonly registryUp = new Gauge({
    name: 'tenantgate_registry_up',
    help: '1 while the tenant/key registry answers and can be believed; 0 while it has a problem (tenantgate_registry_problem says which)',
    registers: [this.registry],
    collect: (): void => this.registryUp.set(this.registryProblemSource() === null ? 1 : 0),
  });
  readonly registryProblem: Gauge<'reason'> = new Gauge({
    name: 'tenantgate_registry_problem',
    help: "1 for the registry's current problem (registry_emptied, registry_evicting_policy, registry_unavailable, …); records known before keep serving",
    labelNames: ['reason'] as const,
    registers: [this.registry],
    collect: (): void => {
      const now = this.registryProblemSource();
      if (now !== null) this.registryReasons.add(now);
      for (const r of this.registryReasons) this.registryProblem.labels(r).set(r === now ? 1 : 0);
    },
  });

  // Issue #31: build info, performance by plan and per tenant, quota use.
  readonly buildInfo = new Gauge({
    name: 'tenantgate_build_info',
    help: 'Always 1; the labels say which tenantgate and Node.js versions run',
    labelNames: ['version', 'node_version'] as const,
    registers: [this.registry],
  });
  /** By plan and status class only (no route): the fewest series that give a p99 and an error ratio per plan. */
  readonly planDuration = new SeriesHistogram(
    'tenantgate_plan_request_duration_seconds',
    "Time from the request's arrival until its response ended, by the tenant's plan (none: no tenant)",
    ['plan', 'status_class'],
    DURATION_BUCKETS,
    this.registry,
  );
  /** Only fed while metrics.tenantHistograms is on: routes are left out, so it costs tenants × classes series. */
  readonly tenantDuration = new SeriesHistogram(
    'tenantgate_tenant_request_duration_seconds',
    "Time from the request's arrival until its response ended, by tenant (metrics.tenantHistograms)",
    ['tenant', 'status_class'],
    DURATION_BUCKETS,
    this.registry,
  );
  readonly quotaUsage = new QuotaUsage(
    'tenantgate_quota_used_ratio',
    "Share of a tenant's quota used in the current period, as of the limit store's last answer on this replica",
    this.registry,
    (tenantId) => this.tenantLabel(tenantId),
  );

  /**
   * metrics.enabled. When false the request path records nothing (the
   * account stage and the limit-wait histogram skip their work) and the admin
   * port's /metrics answers 404, so no one scrapes numbers that stopped
   * moving. Counters outside the request path (reloads, usage deliveries,
   * store failures) still count: they are cheap, and right when it comes back on.
   */
  enabled = true;
  /** Bounds the `tenant` label (metrics.maxTenantLabels); tenants past the bound count as `other`. */
  private readonly tenantLabels = new Set<string>();
  maxTenantLabels = 1000;
  /** metrics.tenantHistograms: feed tenantgate_tenant_request_duration_seconds (off: one boolean test per request). */
  tenantHistograms = false;
  private readonly planLabels = new Set<string>();

  /**
   * Cached series: route → tenant label → one slot per (method, status
   * class). Looked up with the request's own route and tenant strings (the
   * same objects request after request, so their hashes are cached) and two
   * small numbers: no key string is built per request. Bounded: routes ×
   * (maxTenantLabels + 2) × 9 methods × 7 classes.
   */
  private readonly series = new Map<string, Map<string, (RequestSeries | undefined)[]>>();

  /** Counts one finished request: tenantgate_requests_total, the route, upstream and plan histograms, and the tenant one when on. */
  observeRequest(route: string, method: string, status: number, tenantId: string | null, durationS: number, upstreamS: number | null, plan: string | null = null): void {
    const mi = METHOD_INDEX.get(method) ?? METHODS.length - 1;
    const ci = statusClassIndex(status);
    const tenant = tenantId === null ? '' : this.tenantLabel(tenantId);
    let byTenant = this.series.get(route);
    if (byTenant === undefined) this.series.set(route, (byTenant = new Map()));
    let slots = byTenant.get(tenant);
    if (slots === undefined) byTenant.set(tenant, (slots = new Array<RequestSeries | undefined>(METHODS.length * STATUS_CLASS.length).fill(undefined)));
    const slot = mi * STATUS_CLASS.length + ci;
    let s = slots[slot];
    if (s === undefined) {
      const cls = STATUS_CLASS[ci]!;
      const planLabel = this.planLabel(plan);
      s = slots[slot] = {
        requests: this.requests.labels(route, METHODS[mi]!, cls, tenant),
        duration: this.requestDuration.labels(route, cls),
        upstream: this.upstreamDuration.labels(route),
        plan: planLabel,
        planDuration: this.planDuration.labels(planLabel, cls),
        tenantDuration: null,
      };
    }
    s.requests.value++;
    // The plan and tenant histograms have the route histogram's buckets: one scan finds the bucket for all three.
    const bucket = s.duration.observe(durationS);
    if (upstreamS !== null) s.upstream.observe(upstreamS);
    // The same string object request after request: this compare is a pointer check until the plan changes.
    if (s.plan !== (plan ?? 'none')) {
      s.plan = this.planLabel(plan);
      s.planDuration = this.planDuration.labels(s.plan, STATUS_CLASS[ci]!);
    }
    s.planDuration.observeIn(bucket, durationS);
    if (this.tenantHistograms && tenant !== '') (s.tenantDuration ??= this.tenantDuration.labels(tenant, STATUS_CLASS[ci]!)).observeIn(bucket, durationS);
  }

  /** The `metrics` config section, at start-up and on every reload. */
  configure(section: { readonly enabled: boolean; readonly maxTenantLabels: number; readonly tenantHistograms?: boolean }): void {
    this.enabled = section.enabled;
    this.maxTenantLabels = section.maxTenantLabels;
    const perTenant = section.tenantHistograms ?? false;
    if (perTenant !== this.tenantHistograms) {
      // Turned off: its series leave /metrics. The cached slots hold series of it, so they are resolved afresh.
      this.tenantHistograms = perTenant;
      this.exposeTenantHistograms(perTenant);
      this.series.clear();
    }
  }

  /** Off: not even the metric's HELP line is served, and what it counted is dropped. */
  private exposeTenantHistograms(on: boolean): void {
    if (on) this.registry.registerMetric(this.tenantDuration as never);
    else {
      this.registry.removeSingleMetric(this.tenantDuration.name);
      this.tenantDuration.reset();
    }
  }

  /** `none` for a request without a tenant; a plan name otherwise (bounded, see MAX_PLAN_LABELS). */
  planLabel(plan: string | null): string {
    if (plan === null) return 'none';
    if (this.planLabels.has(plan)) return plan;
    if (this.planLabels.size >= MAX_PLAN_LABELS) return 'other';
    this.planLabels.add(plan);
    return plan;
  }

  tenantLabel(tenantId: string): string {
    if (this.tenantLabels.has(tenantId)) return tenantId;
    if (this.tenantLabels.size >= this.maxTenantLabels) return 'other';
    this.tenantLabels.add(tenantId);
    return tenantId;
  }

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    for (const name of MISNAMED_DEFAULTS) this.registry.removeSingleMetric(name);
    this.exposeTenantHistograms(false);
    this.buildInfo.labels(packageVersion(), process.version).set(1);
    this.storeUp.set(1);
    this.storeFailures.labels('timeout').inc(0);
    this.storeFailures.labels('down').inc(0);
    // Zero-initialise so dashboards see the series before the first reload.
    this.configReloads.labels('success').inc(0);
    this.configReloads.labels('failure').inc(0);
  }
}

/**
 * The tracer's counters (docs/observability.md#tracing), registered only when
 * tracing is on, so a scrape without it shows no series that can never move.
 */
export function traceSpanCounters(registry: Registry): { exported: Counter; dropped: Counter<'reason'> } {
  const exported = new Counter({ name: 'tenantgate_trace_spans_exported_total', help: 'Spans the OTLP collector accepted', registers: [registry] });
  const dropped = new Counter({
    name: 'tenantgate_trace_spans_dropped_total',
    help: 'Spans never delivered, by reason: queue_full (export queue full), export_failed (collector refused or unreachable), shutdown (flush ran out of time)',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  for (const reason of ['queue_full', 'export_failed', 'shutdown']) dropped.labels(reason).inc(0);
  return { exported, dropped };
}
