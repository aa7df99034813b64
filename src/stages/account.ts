/**
 * Stage 8 — account (SPEC §1, §6, §7). Runs exactly once per request, when the
 * response has ended or the client went away:
 *
 * - metrics (unless metrics.enabled is false): tenantgate_requests_total and the two duration histograms
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
import { isoAt, wallMsAt } from '../observability/clock.js';
import { lineShape, type LineShape } from '../observability/line-shape.js';
import { uuidV4 } from '../observability/uuid.js';
import type { ProxyState } from '../state.js';
import { RequestEventParts } from '../usage/event-json.js';
import type { UsageRecorder } from '../usage/types.js';

/** `outcome` of a request that no stage refused: forwarded, or the client left before it could be. */
function outcomeOf(ctx: RequestContext): string {
  if (ctx.errorCode !== null) return ctx.errorCode;
  return ctx.upstreamStartedAt > 0 ? 'forwarded' : 'client_aborted';
}

/** The line-shape cache key of a request no route matched (./line-shape.ts keys by principal, else route). */
const NO_ROUTE = {};

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
    metrics.observeRequest(routeName, method, ctx.status, tenantId, durationMs / 1000, upstreamMs === null ? null : upstreamMs / 1000);
    if (ctx.errorCode === 'unauthenticated') metrics.authFailures.labels(routeName, ctx.reason ?? 'unknown').inc();
    else if (ctx.errorCode === 'cross_tenant') metrics.crossTenantAttempts.labels(metrics.tenantLabel(principal!.tenantId)).inc();
    else if (ctx.limitedBy !== null) metrics.limited.labels(metrics.tenantLabel(ctx.tenant!.id), ctx.limitedBy).inc();
  }

  const logLevel = accessLogLevel(ctx, state);
  const usage = state.usage;
  if (logLevel === null && usage === null) return;

  // The two lines share the shape's segments (who called what, the status), the time, and the numbers.
  const outcome = outcomeOf(ctx);
  const route = routeName === '' ? null : routeName;
  const shape = lineShape(principal ?? ctx.route ?? NO_ROUTE, tenantId, principal?.projectId ?? null, principal?.apiKeyId ?? null, principal?.subject ?? null, route, method, ctx.tenant?.plan ?? null);
  shape.setStatus(ctx.status, outcome, ctx.reason);
  const iso = isoAt(wallMsAt(endedAt));
  if (logLevel !== null) {
    // The normalised path, never the query string (it may carry secrets).
    state.accessLog.write(logLevel, iso, ctx.requestId, shape, ctx.path, durationMs, upstreamMs, ctx.bytesIn, ctx.bytesOut);
  }
  if (usage !== null) recordUsage(ctx, usage, iso, shape, tenantId, durationMs);
}

/** The access line's level, or null when it is not written: 5xx at error, the rest at info, forwarded 2xx sampled. */
function accessLogLevel(ctx: RequestContext, state: ProxyState): 'info' | 'error' | null {
  const status = ctx.status;
  const level = status >= 500 ? 'error' : 'info';
  if (!state.accessLog.enabled(level)) return null;
  // Sampling applies to forwarded successes only: every refusal and failure is logged.
  if (status < 400 && ctx.errorCode === null) {
    const rate = ctx.config.source.logging.sample2xx;
    if (rate < 1 && Math.random() >= rate) return null;
  }
  return level;
}

/** The request's event, filled here and written by the recorder at once (one object for every request: ../usage/event-json.ts). */
const event = new RequestEventParts();

function recordUsage(ctx: RequestContext, usage: UsageRecorder, ts: string, shape: LineShape, tenantId: string | null, durationMs: number): void {
  // A request id tenantgate made is a fresh UUID, unique to this request: the event's id too (RequestContext).
  event.id = ctx.requestIdGenerated ? ctx.requestId : uuidV4();
  event.ts = ts;
  event.shape = shape;
  event.durationMs = durationMs;
  event.bytesIn = ctx.bytesIn;
  event.bytesOut = ctx.bytesOut;
  // Units charged to the quotas: only a request the limit stage admitted was charged.
  event.cost = ctx.admitted && ctx.route !== null ? ctx.route.cost : 0;
  event.requestId = ctx.requestId;
  usage.recordRequest(event);
  const crossings = ctx.quotaCrossings;
  if (crossings === null || tenantId === null) return;
  const plan = shape.plan;
  for (const c of crossings) {
    usage.record({ id: quotaWarningId(tenantId, c), ts, type: 'quota_warning', tenantId, plan, ...c });
  }
}
