/**
 * What the request path knows of tracing: these types and one hook slot,
 * nothing from OpenTelemetry. The tracer itself (./tracer.ts) is imported
 * only when `tracing.otlp.url` is set; until then a request carries
 * `ctx.trace === null` and every hook is one null check.
 */
/**
 * One request's spans: the server span, and the upstream client span while it
 * is open. `Ctx` is the RequestContext (a parameter, so this file imports
 * nothing and context.ts can name these types).
 */
export interface RequestTrace<Ctx> {
  /** 32 lower-case hex digits: the access line's and the usage event's `traceId`. */
  readonly traceId: string;
  /** Runs admission with this trace as the current one, so a JWKS fetch it triggers finds its parent span. */
  within<A extends unknown[], R>(fn: (...args: A) => R, ...args: A): R;
  /** A limit-store call that waited: a child span from now until it settles. */
  storeCall<T>(pending: Promise<T>): Promise<T>;
  /** Opens the upstream client span (`path`: what the upstream is asked for) and puts its `traceparent` (and `tracestate`) into ctx.upstreamHeaders. */
  startUpstream(ctx: Ctx, path: string): void;
  /** Closes the upstream client span: the response ended, or `error` ended it. */
  endUpstream(ctx: Ctx, error?: Error): void;
  /** Closes the server span (the pipeline's finish, once). */
  end(ctx: Ctx): void;
}

/** The running tracer, as the pipeline and app.ts see it. */
export interface Tracer<Ctx> {
  /** The server span of a request that just arrived. */
  start(ctx: Ctx): RequestTrace<Ctx>;
  /** Exports what is queued, bounded by `tracing.flushTimeoutMs`, then stops. */
  shutdown(): Promise<void>;
}


const HEX = new Int8Array(128).fill(0);
for (const c of '0123456789abcdef') HEX[c.charCodeAt(0)] = 1;

/**
 * The trace id of a well-formed W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`),
 * else null: what the access line and usage event carry when tracing is off
 * (the upstream then gets that same traceparent). Fixed positions, no regex.
 */
export function incomingTraceId(traceparent: string | string[] | undefined): string | null {
  if (typeof traceparent !== 'string' || traceparent.length < 55) return null;
  if (traceparent.charCodeAt(2) !== 45 || traceparent.charCodeAt(35) !== 45 || traceparent.charCodeAt(52) !== 45) return null;
  // Version ff is invalid; version 00 is exactly 55 characters, later versions may append after a '-'.
  if (traceparent.startsWith('ff') || (traceparent.startsWith('00') ? traceparent.length !== 55 : traceparent.length > 55 && traceparent.charCodeAt(55) !== 45)) return null;
  // An all-zero trace id or parent id is invalid too.
  let traceNonZero = false;
  let parentNonZero = false;
  for (let i = 0; i < 55; i++) {
    if (i === 2 || i === 35 || i === 52) continue;
    const c = traceparent.charCodeAt(i);
    if (c >= 128 || HEX[c] === 0) return null;
    if (c === 48) continue;
    if (i > 2 && i < 35) traceNonZero = true;
    else if (i > 35 && i < 52) parentNonZero = true;
  }
  return traceNonZero && parentNonZero ? traceparent.slice(3, 35) : null;
}
