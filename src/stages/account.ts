/**
 * Stage 8 — account (SPEC §1, §6, §7). Runs exactly once per request, when the
 * response has ended or the client went away:
 *
 * - metrics (unless metrics.enabled is false): tenantgate_requests_total and the duration histograms
 *   (through cached label children), auth failures by precise reason,
 *   cross-tenant attempts, limit refusals;
 * - one access log line (pino JSON): 5xx at error, everything else at info,
 *   forwarded 2xx sampled by `logging.sample2xx`; never a credential — the
 *   line is built from the context, never from the client's headers;
 * - one usage event (and any quota warnings it triggered) onto the usage
 *   recorder's queue, which never blocks: delivery happens off this path.
 */
import { randomUUID } from 'node:crypto';
import type { RequestContext } from '../context.js';
import { isoNow } from '../observability/iso-time.js';
import { quotaWarningId } from '../limits/quota-warnings.js';
import type { ProxyState } from '../state.js';
import { incomingTraceId } from '../tracing/hooks.js';
import type { UsageRecorder } from '../usage/types.js';

/** `outcome` of a request that no stage refused: forwarded once the upstream answered, else the client left first. */
export function outcomeOf(ctx: RequestContext): string {
  if (ctx.errorCode !== null) return ctx.errorCode;
  return ctx.upstreamHeadersAt > 0 ? 'forwarded' : 'client_aborted';
}

/** Milliseconds to three decimals (the µs): finer digits are noise that lengthens every line. */
const roundMs = (ms: number): number => Math.round(ms * 1000) / 1000;

export function account(ctx: RequestContext, state: ProxyState): void {
  const endedAt = performance.now();
  const metrics = state.metrics;
  const routeName = ctx.route?.name ?? '';
  const method = ctx.req.method ?? '';
  const principal = ctx.principal;
  const tenantId = ctx.tenant?.id ?? principal?.tenantId ?? null;
  const durationMs = endedAt - ctx.startedAt;
  const upstreamMs = ctx.upstreamHeadersAt > 0 ? ctx.upstreamHeadersAt - ctx.upstreamStartedAt : null;

  if (metrics.enabled) {
    metrics.observeRequest(routeName, method, ctx.status, tenantId, durationMs / 1000, upstreamMs === null ? null : upstreamMs / 1000, ctx.tenant?.plan ?? null);
    if (ctx.errorCode === 'unauthenticated') metrics.authFailures.labels(routeName, ctx.reason ?? 'unknown').inc();
    // By the credential's tenant (a refusal leaves the credential's principal); '' for a token of memberships only.
    else if (ctx.errorCode === 'cross_tenant') metrics.crossTenantAttempts.labels(principal!.tenantId === null ? '' : metrics.tenantLabel(principal!.tenantId)).inc();
    else if (ctx.limitedBy !== null) metrics.limited.labels(metrics.tenantLabel(ctx.tenant!.id), routeName, ctx.limitedBy).inc();
  }

  const logLevel = accessLogLevel(ctx, state);
  const usage = state.usage;
  if (logLevel === null && usage === null) return;

  const outcome = outcomeOf(ctx);
  const route = routeName === '' ? null : routeName;
  const apiKeyId = principal?.apiKeyId ?? null;
  const ms = roundMs(durationMs);
  // Tracing off: the client's trace id, which the upstream receives unchanged in its traceparent.
  const traceId = ctx.trace !== null ? ctx.trace.traceId : incomingTraceId(ctx.req.headers.traceparent);
  if (logLevel !== null) {
    // The path is the normalised one, never the query string (it may carry secrets); no header is ever logged here.
    const line: { grpcStatus?: number } & Record<string, unknown> = {
      requestId: ctx.requestId,
      tenant: tenantId,
      apiKeyId,
      route,
      method,
      path: ctx.path,
      status: ctx.status,
      outcome,
      reason: ctx.reason,
      durationMs: ms,
      upstreamMs: upstreamMs === null ? null : roundMs(upstreamMs),
      bytesIn: ctx.bytesIn,
      bytesOut: ctx.bytesOut,
      traceId,
    };
    // A gRPC call's outcome is its grpc-status (its HTTP status is 200 either way).
    if (ctx.grpcStatus !== null) line.grpcStatus = ctx.grpcStatus;
    state.logger[logLevel](line, 'request');
  }
  if (usage !== null) recordUsage(ctx, usage, tenantId, apiKeyId, route, method, outcome, ms, traceId);
}

/** The access line's level, or null when it is not written: 5xx at error, the rest at info, forwarded 2xx sampled. */
function accessLogLevel(ctx: RequestContext, state: ProxyState): 'info' | 'error' | null {
  const status = ctx.status;
  const level = status >= 500 ? 'error' : 'info';
  if (!state.logger.isLevelEnabled(level)) return null;
  // Sampling applies to forwarded successes only: every refusal and failure is logged.
  if (status < 400 && ctx.errorCode === null) {
    const rate = ctx.config.source.logging.sample2xx;
    // A gRPC call that failed (grpc-status other than 0) is a failure, never sampled away.
    if (rate < 1 && (ctx.grpcStatus === null || ctx.grpcStatus === 0) && Math.random() >= rate) return null;
  }
  return level;
}

function recordUsage(ctx: RequestContext, usage: UsageRecorder, tenantId: string | null, apiKeyId: string | null, route: string | null, method: string, outcome: string, durationMs: number, traceId: string | null): void {
  const ts = isoNow();
  const principal = ctx.principal;
  const plan = ctx.tenant?.plan ?? null;
  // SPEC §7's fields in SPEC §7's order (`type` after `ts`), then `traceId` (SPEC §13), `requestedTenant` (SPEC §10), `limit` (SPEC §11) and `grpcStatus` (SPEC §12), the line as JSON.stringify writes it.
  usage.record({
    // A request id tenantgate made is a fresh UUID, unique to this request: the event's id too (RequestContext).
    id: ctx.requestIdGenerated ? ctx.requestId : randomUUID(),
    ts,
    type: 'request',
    tenantId,
    projectId: principal?.projectId ?? null,
    apiKeyId,
    subject: principal?.subject ?? null,
    route,
    method,
    status: ctx.status,
    outcome,
    durationMs,
    bytesIn: ctx.bytesIn,
    bytesOut: ctx.bytesOut,
    // Units charged to the quotas: only a request the limit stage admitted was charged.
    // What the limit stage charged: an admitted request of a tenant (a public route's anonymous caller is charged nothing).
    cost: ctx.admitted && ctx.tenant !== null ? ctx.route!.cost : 0,
    requestId: ctx.requestId,
    plan,
    traceId,
    requestedTenant: ctx.requestedTenant,
    limit: ctx.limitedBy,
    grpcStatus: ctx.grpcStatus,
  });
  const crossings = ctx.quotaCrossings;
  if (crossings === null || tenantId === null) return;
  for (const c of crossings) {
    usage.record({ id: quotaWarningId(tenantId, c), ts, type: 'quota_warning', tenantId, plan, ...c });
  }
}
