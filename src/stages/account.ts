/**
 * Stage 8 — account. Runs exactly once per request, when the response has
 * ended or the client went away. Today it counts auth failures (by precise
 * reason) and cross-tenant attempts, and logs 5xx failures (never a
 * credential); the request metrics, access log and usage event of SPEC §6–7
 * land here with the observability issue.
 */
import type { RequestContext } from '../context.js';
import type { ProxyState } from '../state.js';

export function account(ctx: RequestContext, state: ProxyState): void {
  const metrics = state.metrics;
  if (ctx.errorCode === 'unauthenticated') metrics.authFailures.labels(ctx.route?.name ?? '', ctx.reason ?? 'unknown').inc();
  else if (ctx.errorCode === 'cross_tenant') metrics.crossTenantAttempts.labels(metrics.tenantLabel(ctx.principal!.tenantId)).inc();
  else if (ctx.limitedBy !== null) metrics.limited.labels(metrics.tenantLabel(ctx.tenant!.id), ctx.limitedBy).inc();
  if (ctx.status < 500) return;
  state.logger.warn(
    {
      requestId: ctx.requestId,
      route: ctx.route?.name ?? null,
      method: ctx.req.method,
      status: ctx.status,
      outcome: ctx.errorCode ?? 'forwarded',
      reason: ctx.reason,
      durationMs: Math.round((performance.now() - ctx.startedAt) * 1000) / 1000,
    },
    'request failed',
  );
}
