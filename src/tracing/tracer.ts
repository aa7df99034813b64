/**
 * OpenTelemetry tracing (SPEC §13, docs/observability.md#tracing). Imported
 * only when `tracing.otlp.url` is set (app.ts, by a dynamic import): with
 * tracing off no OpenTelemetry module is loaded at all.
 *
 * One SERVER span per request, from its arrival to the pipeline's finish;
 * CLIENT spans for the upstream call (its context is the upstream's
 * `traceparent`) and for a JWKS fetch; an INTERNAL span for a limit-store
 * call that waited. Sampling is parent-based over a trace-id ratio. Spans
 * leave through a bounded queue (./span-queue.ts) to the OTLP/HTTP exporter.
 */
import { readFileSync } from 'node:fs';
import { AsyncLocalStorage } from 'node:async_hooks';
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, defaultTextMapGetter, defaultTextMapSetter, trace, type Context, type Link, type Span, type Tracer as OtelTracer } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, ParentBasedSampler, TraceIdRatioBasedSampler } from '@opentelemetry/sdk-trace-base';
import {
  ATTR_CLIENT_ADDRESS,
  ATTR_ERROR_TYPE,
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_REQUEST_METHOD_ORIGINAL,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_HTTP_ROUTE,
  ATTR_NETWORK_PROTOCOL_VERSION,
  ATTR_SERVER_ADDRESS,
  ATTR_SERVER_PORT,
  ATTR_SERVICE_NAME,
  ATTR_SERVICE_VERSION,
  ATTR_URL_FULL,
  ATTR_URL_PATH,
  ATTR_URL_SCHEME,
  ATTR_USER_AGENT_ORIGINAL,
} from '@opentelemetry/semantic-conventions';
import type { Config } from '../config/schema.js';
import type { RequestContext } from '../context.js';
import type { Logger } from '../observability/logger.js';
import { outcomeOf } from '../stages/account.js';
import type { RequestTrace, Tracer } from './hooks.js';
import { traceHooks } from './jwks-hook.js';
import { SpanQueue, type SpanCounts } from './span-queue.js';

export type TracingConfig = NonNullable<Config['tracing']>;

const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
const propagator = new W3CTraceContextPropagator();

/** The request whose admission is running: how a JWKS fetch (called by jose, far from any request) finds its parent. */
const current = new AsyncLocalStorage<Trace>();

/**
 * Whether a config has an issuer with a remote JWKS: only then can admission
 * trigger a fetch, and only then is it run in an AsyncLocalStorage scope
 * (which turns on async hooks for the whole process).
 */
const remoteJwks = new WeakMap<RequestContext['config'], boolean>();
function fetchesJwks(config: RequestContext['config']): boolean {
  let known = remoteJwks.get(config);
  if (known === undefined) remoteJwks.set(config, (known = config.source.jwt.issuers.some((i) => i.jwksUri !== undefined)));
  return known;
}

/** The semantic conventions' known methods; any other is `_OTHER` (the span then named `HTTP`), keeping names bounded. */
const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH']);
const methodOf = (ctx: RequestContext): string => (METHODS.has(ctx.req.method ?? '') ? ctx.req.method! : '_OTHER');

/** Why a client span was still open when its request ended (the client left first): no Error, no stack, per request. */
const ENDED_FIRST = Object.freeze({ name: 'request_ended', message: 'the request ended before the upstream call' }) as Error;

/** Removes every `name` header (any case) from a flat [name, value, …] list. */
function removeHeader(headers: string[], name: string): void {
  for (let i = headers.length - 2; i >= 0; i -= 2) if (headers[i]!.length === name.length && headers[i]!.toLowerCase() === name) headers.splice(i, 2);
}

type UpstreamRef = NonNullable<RequestContext['route']>['upstream'];
const addresses = new WeakMap<UpstreamRef, { address: string; port: number }>();

/** server.address / server.port of an upstream origin, parsed once per compiled route. */
function addressOf(upstream: UpstreamRef): { address: string; port: number } {
  let a = addresses.get(upstream);
  if (a === undefined) {
    const url = new URL(upstream.origin);
    a = { address: url.hostname, port: Number(url.port || (url.protocol === 'https:' ? 443 : 80)) };
    addresses.set(upstream, a);
  }
  return a;
}

class Trace implements RequestTrace<RequestContext> {
  readonly traceId: string;
  /** The server span as a parent. */
  readonly context: Context;
  private client: Span | null = null;

  constructor(
    private readonly tracer: OtelTracer,
    readonly server: Span,
    private readonly scoped: boolean,
  ) {
    this.traceId = server.spanContext().traceId;
    this.context = trace.setSpan(ROOT_CONTEXT, server);
  }

  within<A extends unknown[], R>(fn: (...args: A) => R, ...args: A): R {
    return this.scoped ? current.run(this, fn, ...args) : fn(...args);
  }

  storeCall<T>(pending: Promise<T>): Promise<T> {
    // An unsampled trace records no child either (parent-based): no span, no extra promise.
    if (!this.server.isRecording()) return pending;
    const span = this.tracer.startSpan('limit store', { kind: SpanKind.INTERNAL }, this.context);
    return pending.then(
      (value) => {
        span.end();
        return value;
      },
      (err: unknown) => {
        span.setStatus({ code: SpanStatusCode.ERROR });
        span.setAttribute(ATTR_ERROR_TYPE, (err as Error)?.name ?? 'Error');
        span.end();
        throw err;
      },
    );
  }

  startUpstream(ctx: RequestContext, path: string): void {
    // Unsampled: the upstream's parent is the server span; a client span nobody records would only cost ids.
    let propagated = this.server;
    if (this.server.isRecording()) {
      const upstream = ctx.route!.upstream;
      const method = methodOf(ctx);
      const span = this.tracer.startSpan(method === '_OTHER' ? 'HTTP' : method, { kind: SpanKind.CLIENT }, this.context);
      this.client = span;
      propagated = span;
      const { address, port } = addressOf(upstream);
      const query = path.indexOf('?');
      span.setAttributes({
        [ATTR_HTTP_REQUEST_METHOD]: method,
        [ATTR_SERVER_ADDRESS]: address,
        [ATTR_SERVER_PORT]: port,
        // The query string is left out: it may carry secrets.
        [ATTR_URL_FULL]: `${upstream.origin}${query === -1 ? path : path.slice(0, query)}`,
      });
    }
    // Whatever traceparent / tracestate the client sent is replaced by this span's.
    const headers = ctx.upstreamHeaders;
    removeHeader(headers, 'traceparent');
    removeHeader(headers, 'tracestate');
    const carrier: Record<string, string> = {};
    propagator.inject(trace.setSpan(ROOT_CONTEXT, propagated), carrier, defaultTextMapSetter);
    for (const name in carrier) headers.push(name, carrier[name]!);
  }

  endUpstream(ctx: RequestContext, error?: Error): void {
    const span = this.client;
    if (span === null) return;
    this.client = null;
    if (ctx.upstreamHeadersAt > 0) span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, ctx.status);
    if (error !== undefined || ctx.status >= 500) {
      span.setStatus({ code: SpanStatusCode.ERROR });
      span.setAttribute(ATTR_ERROR_TYPE, error === undefined ? String(ctx.status) : ((error as { code?: string }).code ?? error.name));
    }
    span.end();
  }

  end(ctx: RequestContext): void {
    if (this.client !== null) this.endUpstream(ctx, ENDED_FIRST);
    const span = this.server;
    if (span.isRecording()) {
      const method = methodOf(ctx);
      const name = method === '_OTHER' ? 'HTTP' : method;
      const routeName = ctx.route?.name ?? null;
      const outcome = outcomeOf(ctx);
      const req = ctx.req;
      const socket = req.socket ?? ctx.socket;
      span.updateName(routeName === null ? name : `${name} ${routeName}`);
      span.setAttributes({
        [ATTR_HTTP_REQUEST_METHOD]: method,
        [ATTR_URL_PATH]: ctx.path,
        [ATTR_URL_SCHEME]: (socket as { encrypted?: boolean } | undefined)?.encrypted ? 'https' : 'http',
        [ATTR_HTTP_RESPONSE_STATUS_CODE]: ctx.status,
        'tenantgate.outcome': outcome,
      });
      if (method === '_OTHER' && req.method) span.setAttribute(ATTR_HTTP_REQUEST_METHOD_ORIGINAL, req.method);
      if (req.httpVersion) span.setAttribute(ATTR_NETWORK_PROTOCOL_VERSION, req.httpVersion);
      if (ctx.host !== '') span.setAttribute(ATTR_SERVER_ADDRESS, ctx.host);
      const clientAddress = (socket as { remoteAddress?: string } | undefined)?.remoteAddress;
      if (clientAddress !== undefined) span.setAttribute(ATTR_CLIENT_ADDRESS, clientAddress);
      const ua = req.headers?.['user-agent'];
      if (ua !== undefined) span.setAttribute(ATTR_USER_AGENT_ORIGINAL, ua);
      if (routeName !== null) {
        span.setAttribute(ATTR_HTTP_ROUTE, ctx.route!.prefix);
        span.setAttribute('tenantgate.route', routeName);
      }
      const tenantId = ctx.tenant?.id ?? ctx.principal?.tenantId ?? null;
      if (tenantId !== null) span.setAttribute('tenant.id', tenantId);
      if (ctx.status >= 500) {
        span.setStatus({ code: SpanStatusCode.ERROR });
        span.setAttribute(ATTR_ERROR_TYPE, ctx.errorCode ?? String(ctx.status));
      }
    }
    span.end();
  }
}

export interface TracerDeps {
  logger: Logger;
  counts: SpanCounts;
}

/** Starts the tracer provider and its exporter; `shutdown()` flushes within `flushTimeoutMs`. */
export function startTracer(config: TracingConfig, deps: TracerDeps): Tracer<RequestContext> {
  const otlp = config.otlp!;
  const exporter = new OTLPTraceExporter({ url: otlp.url!, headers: { ...otlp.headers }, timeoutMillis: otlp.timeoutMs });
  const queue = new SpanQueue(exporter, config, {
    ...deps.counts,
    // The error's name and code only: a message may quote the collector's answer.
    failing: (err) => deps.logger.warn({ error: (err as { code?: string } | undefined)?.code ?? err?.name ?? 'unknown' }, 'trace export failed; spans are dropped until the collector answers'),
  });
  const provider = new BasicTracerProvider({
    sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(config.sampleRatio) }),
    resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: config.serviceName, [ATTR_SERVICE_VERSION]: VERSION }),
    spanProcessors: [queue],
  });
  const tracer = provider.getTracer('tenantgate', VERSION);
  const trustIncoming = config.trustIncoming;

  traceHooks.jwksFetch = async (url, fetch) => {
    const parent = current.getStore();
    // Not fetched for a request (none is running), or for one whose trace is not recorded.
    if (parent === undefined || !parent.server.isRecording()) return fetch();
    const span = tracer.startSpan('GET', { kind: SpanKind.CLIENT, attributes: { [ATTR_HTTP_REQUEST_METHOD]: 'GET', [ATTR_URL_FULL]: url, 'tenantgate.fetch': 'jwks' } }, parent.context);
    try {
      const res = await fetch();
      span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, res.status);
      if (res.status !== 200) span.setStatus({ code: SpanStatusCode.ERROR });
      return res;
    } catch (err) {
      span.setStatus({ code: SpanStatusCode.ERROR });
      span.setAttribute(ATTR_ERROR_TYPE, (err as { code?: string }).code ?? (err as Error).name ?? 'Error');
      throw err;
    } finally {
      span.end();
    }
  };

  return {
    start(ctx: RequestContext): RequestTrace<RequestContext> {
      const headers = ctx.req.headers;
      let parent = ROOT_CONTEXT;
      let links: Link[] | undefined;
      if (headers.traceparent !== undefined) {
        const incoming = propagator.extract(ROOT_CONTEXT, headers, defaultTextMapGetter);
        if (trustIncoming) parent = incoming;
        else {
          // A new trace that still points at the client's, for whoever can see both.
          const client = trace.getSpanContext(incoming);
          if (client !== undefined) links = [{ context: client }];
        }
      }
      // Named by its method for now; end() adds the route once routing has run.
      const server = tracer.startSpan(ctx.req.method || 'HTTP', { kind: SpanKind.SERVER, links }, parent);
      return new Trace(tracer, server, fetchesJwks(ctx.config));
    },
    async shutdown(): Promise<void> {
      traceHooks.jwksFetch = null;
      await queue.close(config.flushTimeoutMs);
    },
  };
}
