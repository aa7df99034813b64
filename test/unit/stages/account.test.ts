/**
 * Stage 8, account (src/stages/account.ts), on contexts that ran stages 1–6
 * in memory: the access log line (pino into an in-memory stream, parsed as
 * JSON), the usage event (the real recorder with a file sink in a temp dir)
 * and the metrics text, for an admitted request, refusals (before and after
 * a tenant is known, and a 5xx after admission), a client that went away,
 * and a public route. What the pipeline writes on the context before it
 * calls account (status, error code, reason, upstream times) is set here as
 * the pipeline and the forward stage would.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateApiKey } from '../../../src/auth/api-key-format.js';
import type { CompiledConfig } from '../../../src/config/compile.js';
import type { RequestContext } from '../../../src/context.js';
import { ERRORS, errorBody, type ErrorCode } from '../../../src/errors.js';
import { MemoryLimitStore } from '../../../src/limits/memory-store.js';
import { createLogger } from '../../../src/observability/logger.js';
import { Metrics } from '../../../src/observability/metrics.js';
import { account } from '../../../src/stages/account.js';
import { authenticate } from '../../../src/stages/authenticate.js';
import { authorize } from '../../../src/stages/authorize.js';
import { limit } from '../../../src/stages/limit.js';
import { route } from '../../../src/stages/route.js';
import { sanitize } from '../../../src/stages/sanitize.js';
import { resolveTenant } from '../../../src/stages/tenant.js';
import { ProxyState } from '../../../src/state.js';
import { createUsageRecorder, type UsageRecorder } from '../../../src/usage/index.js';
import { compileConfig, requestContext, runStages, type RequestShape } from '../../helpers/stage-context.js';

const acme = generateApiKey({ env: 'live', id: 'ak_acme' });
const tight = generateApiKey({ env: 'live', id: 'ak_tight' });
const dir = mkdtempSync(join(tmpdir(), 'tg-account-'));
const usagePath = join(dir, 'usage.ndjson');
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

const logLines: Record<string, unknown>[] = [];
const metrics = new Metrics();
let config: CompiledConfig;
let usage: UsageRecorder;
let state: ProxyState;

beforeAll(async () => {
  config = await compileConfig(`
plans: { basic: { quota: { daily: 1000 } }, trickle: { rate: { perSecond: 0.001, burst: 1 } } }
tenants: [{ id: acme, plan: basic }, { id: tight, plan: trickle }]
apiKeys:
  - { id: ak_acme, tenant: acme, project: web, hash: "${acme.hash}" }
  - { id: ak_tight, tenant: tight, hash: "${tight.hash}" }
routes:
  - { name: orders, match: { pathPrefix: /orders }, upstream: "http://127.0.0.1:3000", cost: 3 }
  - { name: public, match: { pathPrefix: /public }, upstream: "http://127.0.0.1:3000", auth: [none], cost: 5 }
usage:
  spoolDir: "${join(dir, 'spool')}"
  sinks: [{ type: file, path: "${usagePath}", fsync: false }]
`);
  const logger = createLogger('info', { write: (line: string) => void logLines.push(JSON.parse(line) as Record<string, unknown>) });
  usage = await createUsageRecorder(config.source.usage, { redis: null, logger, onDelivery: (sink, outcome, n) => metrics.usageEvents.labels(sink, outcome).inc(n) });
  state = new ProxyState(config, metrics, logger, new MemoryLimitStore(), usage);
});
afterAll(async () => {
  await usage.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Stages 1–6; a refusal is recorded on the context as the pipeline's `fail` does. */
async function admit(shape: RequestShape): Promise<RequestContext> {
  const ctx = requestContext(config, shape);
  const rejection = await runStages(ctx, [route, sanitize, authenticate, resolveTenant, authorize, (c) => limit(c, state.limits, metrics.limitWait)]);
  if (rejection === undefined) ctx.admitted = true;
  else fail(ctx, rejection.code, rejection.reason);
  return ctx;
}

function fail(ctx: RequestContext, code: ErrorCode, reason?: string): void {
  ctx.errorCode = code;
  ctx.reason = reason ?? null;
  ctx.status = ERRORS[code].status;
  ctx.bytesOut = Buffer.byteLength(errorBody(code, ctx.requestId));
}

/** The upstream answered: what the forward stage records (times on the performance.now() scale). */
function forwarded(ctx: RequestContext, status: number, bytesIn: number, bytesOut: number): void {
  ctx.upstreamStartedAt = ctx.startedAt + 1;
  ctx.upstreamHeadersAt = ctx.startedAt + 13.5;
  ctx.status = status;
  ctx.bytesIn = bytesIn;
  ctx.bytesOut = bytesOut;
}

/** Runs account; returns the access line and the usage event it wrote, and the metrics text after it. */
async function accounted(ctx: RequestContext) {
  const before = logLines.length;
  account(ctx, state);
  expect(logLines.length).toBe(before + 1);
  await usage.flush();
  const events = readFileSync(usagePath, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  const mine = events.filter((e) => e.requestId === ctx.requestId);
  expect(mine).toHaveLength(1);
  return { log: logLines.at(-1)!, event: mine[0]!, metrics: await metrics.registry.metrics() };
}

const key = (k: { key: string }): [string, string][] => [['X-API-Key', k.key]];
const EVENT_FIELDS = ['id', 'ts', 'type', 'tenantId', 'projectId', 'apiKeyId', 'subject', 'route', 'method', 'status', 'outcome', 'durationMs', 'bytesIn', 'bytesOut', 'cost', 'requestId', 'plan', 'traceId', 'requestedTenant', 'limit', 'grpcStatus'];

describe('an admitted, forwarded request', () => {
  it('one access line, one usage event charged the route cost, requests_total by route/method/class/tenant', async () => {
    const ctx = await admit({ method: 'POST', url: '/orders/7?token=s3cret', headers: key(acme) });
    forwarded(ctx, 201, 42, 1234);
    const { log, event, metrics: text } = await accounted(ctx);

    expect(log).toMatchObject({ level: 30, msg: 'request', service: 'tenantgate', requestId: ctx.requestId, tenant: 'acme', apiKeyId: 'ak_acme', route: 'orders', method: 'POST' });
    expect(log).toMatchObject({ path: '/orders/7', status: 201, outcome: 'forwarded', reason: null, upstreamMs: 12.5, bytesIn: 42, bytesOut: 1234 });
    expect(log.durationMs).toEqual(expect.any(Number));
    expect(JSON.stringify(log)).not.toContain('s3cret'); // no query string
    expect(JSON.stringify(log)).not.toContain(acme.key);

    expect(Object.keys(event)).toEqual(EVENT_FIELDS); // SPEC §7's order
    expect(event).toMatchObject({ type: 'request', tenantId: 'acme', projectId: 'web', apiKeyId: 'ak_acme', subject: null, route: 'orders' });
    expect(event).toMatchObject({ method: 'POST', status: 201, outcome: 'forwarded', bytesIn: 42, bytesOut: 1234, cost: 3, plan: 'basic' });
    expect(event.limit).toBeNull(); // no limit refused it
    expect(event.id).toMatch(UUID); // the client's request id is not the event id
    expect(new Date(event.ts as string).toISOString()).toBe(event.ts);

    expect(text).toContain('tenantgate_requests_total{route="orders",method="POST",status_class="2xx",tenant="acme"} 1');
    expect(text).toContain('tenantgate_upstream_duration_seconds_count{route="orders"} 1');
    expect(text).toContain('tenantgate_request_duration_seconds_count{route="orders",status_class="2xx"} 1');
  });
});

describe('refused requests: outcome is the error code, cost 0', () => {
  it('no credential → 401 unauthenticated, no tenant, auth_failures_total by route and reason', async () => {
    const ctx = await admit({ url: '/orders' });
    const { log, event, metrics: text } = await accounted(ctx);
    expect(log).toMatchObject({ level: 30, tenant: null, apiKeyId: null, route: 'orders', status: 401, outcome: 'unauthenticated', reason: 'missing_credential', upstreamMs: null });
    expect(event).toMatchObject({ tenantId: null, apiKeyId: null, route: 'orders', method: 'GET', status: 401, outcome: 'unauthenticated', cost: 0, plan: null });
    expect(event.bytesOut).toBe(ctx.bytesOut);
    expect(text).toContain('tenantgate_auth_failures_total{route="orders",reason="missing_credential"} 1');
    expect(text).toContain('tenantgate_requests_total{route="orders",method="GET",status_class="4xx",tenant=""} 1');
  });

  it("the tenant's bucket is empty → 429 rate_limited, tenant known, nothing charged, limited_total", async () => {
    await accounted(await admit({ url: '/orders', headers: key(tight) }));
    const ctx = await admit({ url: '/orders', headers: key(tight) });
    expect(ctx.errorCode).toBe('rate_limited');
    const { log, event, metrics: text } = await accounted(ctx);
    expect(log).toMatchObject({ tenant: 'tight', apiKeyId: 'ak_tight', status: 429, outcome: 'rate_limited', reason: 'rate' });
    expect(event).toMatchObject({ tenantId: 'tight', apiKeyId: 'ak_tight', status: 429, outcome: 'rate_limited', cost: 0, plan: 'trickle', limit: 'rate' });
    expect(text).toContain('tenantgate_limited_total{tenant="tight",route="orders",limit="rate"} 1');
  });

  it('no route → 404: route null in the line and the event, logged at info', async () => {
    const { log, event } = await accounted(await admit({ url: '/nowhere', headers: key(acme) }));
    expect(log).toMatchObject({ level: 30, route: null, path: '/nowhere', status: 404, outcome: 'no_route' });
    expect(event).toMatchObject({ route: null, tenantId: null, outcome: 'no_route', cost: 0 });
  });

  it('a 5xx after admission is logged at error; the admitted request was charged', async () => {
    const ctx = await admit({ url: '/orders', headers: key(acme) });
    ctx.upstreamStartedAt = ctx.startedAt + 1; // dispatched, no answer
    fail(ctx, 'upstream_unavailable', 'connect_refused');
    const { log, event } = await accounted(ctx);
    expect(log).toMatchObject({ level: 50, status: 502, outcome: 'upstream_unavailable', reason: 'connect_refused', upstreamMs: null });
    expect(event).toMatchObject({ tenantId: 'acme', status: 502, outcome: 'upstream_unavailable', cost: 3 });
  });
});

describe('a client that went away', () => {
  it('before the upstream answered: status 499, outcome client_aborted, still charged', async () => {
    const ctx = await admit({ method: 'PUT', url: '/orders/9', headers: key(acme) });
    ctx.upstreamStartedAt = ctx.startedAt + 1;
    ctx.status = 499; // what the pipeline records when the response closes unfinished
    ctx.reason = 'client_aborted';
    const { log, event, metrics: text } = await accounted(ctx);
    expect(log).toMatchObject({ level: 30, status: 499, outcome: 'client_aborted', reason: 'client_aborted', upstreamMs: null });
    expect(event).toMatchObject({ tenantId: 'acme', method: 'PUT', status: 499, outcome: 'client_aborted', cost: 3 });
    expect(text).toContain('tenantgate_requests_total{route="orders",method="PUT",status_class="4xx",tenant="acme"} 1');
  });
});

describe('a public route', () => {
  it('anonymous caller: tenantId null, cost 0 although the route costs 5, empty tenant label', async () => {
    const ctx = await admit({ url: '/public/docs' });
    forwarded(ctx, 200, 0, 512);
    const { log, event, metrics: text } = await accounted(ctx);
    expect(log).toMatchObject({ tenant: null, apiKeyId: null, route: 'public', status: 200, outcome: 'forwarded' });
    expect(event).toMatchObject({ tenantId: null, projectId: null, apiKeyId: null, subject: null, route: 'public', outcome: 'forwarded', cost: 0, plan: null });
    expect(text).toContain('tenantgate_requests_total{route="public",method="GET",status_class="2xx",tenant=""} 1');
  });
});

describe('usage delivery', () => {
  it('each event reached the file sink: usage_events_total{outcome="sent"} counts its lines', async () => {
    const { metrics: text } = await accounted(await admit({ url: '/public/status' }));
    const lines = readFileSync(usagePath, 'utf8').trimEnd().split('\n');
    expect(text).toContain(`tenantgate_usage_events_total{sink="file-0",outcome="sent"} ${lines.length}`);
  });
});
