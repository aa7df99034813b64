/**
 * Stage 8 — account (SPEC §1, §6, §7). Runs exactly once per request, when the
 * response has ended or the client went away:
 *
 * - metrics: tenantgate_requests_total and the two duration histograms
 *   (through cached label children), auth failures by precise reason,
 *   cross-tenant attempts, limit refusals;
 * - one access log line (pino JSON): 5xx at error, everything else at info,
 *   forwarded 2xx sampled by `logging.sample2xx`; never a credential — the
 *   line is built from the context, never from the client's headers;
 * - one usage event (and any quota warnings it triggered) onto the usage
 *   recorder's queue, which never blocks: delivery happens off this path.
 */
import type { RequestContext } from '../context.js';
import { quotaWarningId } from '../limits/quota-warnings.js';
import { writeAccessLine } from '../observability/access-log.js';
import { isoNow } from '../observability/clock.js';
import { uuidV4 } from '../observability/uuid.js';
import type { ProxyState } from '../state.js';
import type { RequestUsageEvent, UsageRecorder } from '../usage/types.js';

/** `outcome` of a request that no stage refused: forwarded, or the client left before it could be. */
function outcomeOf(ctx: RequestContext): string {
  if (ctx.errorCode !== null) return ctx.errorCode;
  return ctx.upstreamStartedAt > 0 ? 'forwarded' : 'client_aborted';
}

const round3 = (ms: number): number => Math.round(ms * 1000) / 1000;

export function account(ctx: RequestContext, state: ProxyState): void {
  const endedAt = performance.now();
  const metrics = state.metrics;
  const routeName = ctx.route?.name ?? '';
  const method = ctx.req.method ?? '';
  const tenantId = ctx.tenant?.id ?? ctx.principal?.tenantId ?? null;
  const durationMs = endedAt - ctx.startedAt;
  const upstreamMs = ctx.upstreamHeadersAt > 0 ? ctx.upstreamHeadersAt - ctx.upstreamStartedAt : null;

  metrics.observeRequest(routeName, method, ctx.status, tenantId, durationMs / 1000, upstreamMs === null ? null : upstreamMs / 1000);
  if (ctx.errorCode === 'unauthenticated') metrics.authFailures.labels(routeName, ctx.reason ?? 'unknown').inc();
  else if (ctx.errorCode === 'cross_tenant') metrics.crossTenantAttempts.labels(metrics.tenantLabel(ctx.principal!.tenantId)).inc();
  else if (ctx.limitedBy !== null) metrics.limited.labels(metrics.tenantLabel(ctx.tenant!.id), ctx.limitedBy).inc();

  const outcome = outcomeOf(ctx);
  accessLog(ctx, state, routeName, method, tenantId, outcome, durationMs, upstreamMs);
  const usage = state.usage;
  if (usage !== null) recordUsage(ctx, usage, routeName, method, tenantId, outcome, durationMs);
}

function accessLog(
  ctx: RequestContext,
  state: ProxyState,
  route: string,
  method: string,
  tenant: string | null,
  outcome: string,
  durationMs: number,
  upstreamMs: number | null,
): void {
  const logger = state.logger;
  const status = ctx.status;
  const level = status >= 500 ? 'error' : 'info';
  if (!logger.isLevelEnabled(level)) return;
  // Sampling applies to forwarded successes only: every refusal and failure is logged.
  if (status < 400 && ctx.errorCode === null) {
    const rate = ctx.config.source.logging.sample2xx;
    if (rate < 1 && Math.random() >= rate) return;
  }
  writeAccessLine(logger, level, {
    requestId: ctx.requestId,
    tenant,
    apiKeyId: ctx.principal?.apiKeyId ?? null,
    route: route === '' ? null : route,
    method,
    // The normalised path, never the query string (it may carry secrets).
    path: ctx.path,
    status,
    outcome,
    reason: ctx.reason,
    durationMs: round3(durationMs),
    upstreamMs: upstreamMs === null ? null : round3(upstreamMs),
    bytesIn: ctx.bytesIn,
    bytesOut: ctx.bytesOut,
  });
}

function recordUsage(ctx: RequestContext, usage: UsageRecorder, route: string, method: string, tenantId: string | null, outcome: string, durationMs: number): void {
  const ts = isoNow();
  const plan = ctx.tenant?.plan ?? null;
  const event: RequestUsageEvent = {
    id: uuidV4(),
    ts,
    type: 'request',
    tenantId,
    projectId: ctx.principal?.projectId ?? null,
    apiKeyId: ctx.principal?.apiKeyId ?? null,
    subject: ctx.principal?.subject ?? null,
    route: route === '' ? null : route,
    method,
    status: ctx.status,
    outcome,
    durationMs: round3(durationMs),
    bytesIn: ctx.bytesIn,
    bytesOut: ctx.bytesOut,
    // Units charged to the quotas: only a request the limit stage admitted was charged.
    cost: ctx.admitted && ctx.route !== null ? ctx.route.cost : 0,
    requestId: ctx.requestId,
    plan,
  };
  usage.record(event);
  const crossings = ctx.quotaCrossings;
  if (crossings === null || tenantId === null) return;
  for (const c of crossings) {
    usage.record({ id: quotaWarningId(tenantId, c), ts, type: 'quota_warning', tenantId, plan, ...c });
  }
}
