/**
 * Stage 7 — forward, for `protocol: grpc` routes (SPEC §12): each call is a
 * stream on the upstream's HTTP/2 session (src/upstream/h2.ts), after the
 * same connection gate as HTTP. Both bodies are piped with back-pressure
 * (HTTP/2 flow control on each side); the upstream's trailers (grpc-status,
 * grpc-message, custom metadata) go to the client as HTTP/2 trailers, and a
 * trailers-only answer stays trailers-only. The call's deadline is the
 * client's grpc-timeout, capped by the route's timeoutMs; the upstream gets
 * it as its own grpc-timeout. A request body past the route's maxBodyBytes
 * cancels the call (3 INVALID_ARGUMENT). Identity reaches the upstream as metadata: the
 * identity headers, lower-cased (HTTP/2 has no other spelling).
 */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { constants, type ClientHttp2Stream, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import type { RequestContext } from '../context.js';
import { encodeGrpcMessage, ERRORS, grpcStatusOf, reject, type Rejection } from '../errors.js';
import { GateState, QueuedRequest } from '../upstream/gate.js';
import type { Upstream, UpstreamPools } from '../upstream/pools.js';
import { upstreamRejection, type ForwardCallbacks } from './forward.js';
import { upstreamPath } from './route.js';

/** Request headers that are the connection's, not the call's (RFC 9113 §8.2.2), or that this stage sets itself. */
const REQUEST_SKIP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'host', 'http2-settings', 'content-length', 'grpc-timeout']);
/** Response headers and trailers never passed to the client as they came. */
const RESPONSE_SKIP = new Set([':status', 'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer']);

const GRPC_NEEDS_HTTP2 = reject('bad_request', 'grpc_needs_http2', 'gRPC needs HTTP/2.');
const BAD_TIMEOUT = reject('bad_request', 'bad_grpc_timeout', 'The grpc-timeout header is malformed.');
const DEADLINE = reject('upstream_timeout', 'grpc_deadline');
const GRPC_CANCELLED = 1;

const UNIT_MS: Readonly<Record<string, number>> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 1e-3, n: 1e-6 };

/** `grpc-timeout` (at most 8 digits and a unit: H M S m u n) in milliseconds; null when malformed. */
export function parseGrpcTimeout(value: string): number | null {
  const m = /^(\d{1,8})([HMSmun])$/.exec(value);
  return m === null ? null : Number(m[1]) * UNIT_MS[m[2]!]!;
}

/** The call's deadline in ms: the client's grpc-timeout when it is shorter than the route's timeoutMs. */
export function callDeadlineMs(header: string | undefined, timeoutMs: number): number | null {
  if (header === undefined) return timeoutMs;
  const ms = parseGrpcTimeout(header);
  return ms === null ? null : Math.min(ms, timeoutMs);
}

/** A refusal of the upstream side: TLS failures named by their OpenSSL/Node code, the rest as for HTTP. */
export function grpcUpstreamRejection(err: Error): Rejection {
  const code = (err as { code?: string }).code ?? '';
  if (code.startsWith('ERR_SSL') || code.startsWith('ERR_TLS') || /CERT|SELF_SIGNED|UNABLE_TO_(VERIFY|GET)/.test(code)) return reject('upstream_unavailable', `tls:${code}`);
  if (code === 'ERR_HTTP2_STREAM_ERROR' || code === 'ERR_HTTP2_SESSION_ERROR' || code === 'ERR_HTTP2_GOAWAY_SESSION') return reject('upstream_unavailable', 'upstream_reset');
  return upstreamRejection(err);
}

function toClientHeaders(from: IncomingHttpHeaders, into: OutgoingHttpHeaders, requestIdHeader: string): void {
  for (const name in from) {
    if (RESPONSE_SKIP.has(name) || name === requestIdHeader) continue;
    into[name] = from[name];
  }
}

/**
 * The call's request headers for the upstream: the pseudo-headers, `te:
 * trailers`, and ctx.upstreamHeaders (sanitized, identity and forwarding
 * headers injected, a trace's traceparent) lower-cased, as HTTP/2 spells
 * them, without the connection-specific ones.
 */
function upstreamCallHeaders(ctx: RequestContext, origin: string, path: string): OutgoingHttpHeaders {
  const headers: OutgoingHttpHeaders = {
    ':method': ctx.req.method,
    ':path': path,
    ':scheme': origin.startsWith('https:') ? 'https' : 'http',
    ':authority': ctx.route!.upstream.host,
    te: 'trailers',
  };
  const h = ctx.upstreamHeaders;
  for (let i = 0; i < h.length; i += 2) {
    const name = h[i]!.toLowerCase();
    if (name.charCodeAt(0) === 58 /* : */) continue;
    if (REQUEST_SKIP.has(name)) {
      // injectHeaders chose the Host (the client's or the upstream's, per preserveHost): HTTP/2 calls it :authority.
      if (name === 'host') headers[':authority'] = h[i + 1];
      continue;
    }
    const prior = headers[name];
    headers[name] = prior === undefined ? h[i + 1] : Array.isArray(prior) ? [...prior, h[i + 1]!] : [String(prior), h[i + 1]!];
  }
  return headers;
}

/** The upstream's grpc-status (a trailer, or a header of a trailers-only answer); null when absent or not a number. */
function grpcStatusIn(headers: IncomingHttpHeaders): number | null {
  const value = Number(headers['grpc-status']);
  return headers['grpc-status'] === undefined || !Number.isInteger(value) ? null : value;
}

class GrpcCall extends QueuedRequest {

  finished = false;
  private stream: ClientHttp2Stream | null = null;
  private timer: NodeJS.Timeout | null = null;
  private clientGone = false;
  /** The upstream answered trailers-only, passed on as such: the response is complete. */
  private trailersOnly = false;
  /** The upstream's response head went to the client: its body and trailers follow. */
  private responded = false;
  private upstreamError: Error | null = null;

  constructor(
    private readonly ctx: RequestContext,
    private readonly res: ServerResponse,
    private readonly callbacks: ForwardCallbacks,
    private readonly upstream: Upstream,
    /** What the upstream is asked for. */
    private readonly path: string,
    /** performance.now() past which the call is cut: counted from the request's arrival, so a wait at the gate counts. */
    private readonly deadlineAt: number,
    /** The route's body limit: past it the call is cancelled (413 → INVALID_ARGUMENT). */
    private readonly maxBodyBytes: number | null,
  ) {
    super();
  }

  start(): void {
    const ctx = this.ctx;
    const now = (ctx.upstreamStartedAt = performance.now());
    // Before the headers are built: the client span puts its traceparent into ctx.upstreamHeaders.
    if (ctx.trace !== null) ctx.trace.startUpstream(ctx, this.path);
    const headers = upstreamCallHeaders(ctx, this.upstream.origin, this.path);
    // The upstream learns what is left of the deadline, in whole milliseconds (at least 1).
    const leftMs = Math.max(1, Math.ceil(this.deadlineAt - now));
    headers['grpc-timeout'] = `${leftMs}m`;
    let stream: ClientHttp2Stream;
    try {
      stream = this.upstream.h2.get().request(headers, { endStream: false });
    } catch (err) {
      this.end(err as Error);
      return;
    }
    this.stream = stream;
    this.timer = setTimeout(this.onDeadline, leftMs);
    stream.on('response', this.onResponse);
    stream.on('data', this.onData);
    stream.on('trailers', this.onTrailers);
    stream.on('end', this.onEnd);
    stream.on('error', this.onError);
    stream.on('close', this.onClose);
    const req = ctx.req;
    req.on('data', this.countIn);
    req.pipe(stream);
  }

  refused(rejection: Rejection): void {
    this.finished = true;
    this.callbacks.fail(this.ctx, rejection);
  }

  /** The client cancelled (RST_STREAM) or went away: the upstream sees the cancel. */
  clientClosed(): void {
    if (this.finished) return;
    this.clientGone = true;
    this.ctx.reason = 'client_aborted';
    // What the client's own library reports for a call it cancelled.
    this.ctx.grpcStatus ??= GRPC_CANCELLED;
    if (this.gateState === GateState.Queued) {
      this.finished = true;
      this.upstream.gate.release(this);
    } else this.stream?.close(constants.NGHTTP2_CANCEL);
  }

  private readonly countIn = (chunk: Buffer): void => {
    const seen = (this.ctx.bytesIn += chunk.length);
    if (this.maxBodyBytes !== null && seen > this.maxBodyBytes && !this.finished && this.upstreamError === null) this.cancel('TG_BODY_TOO_LARGE', 'request body over the limit');
  };

  /** Our side gives up on the call (deadline, body limit): the upstream sees a cancel, the client the reason. */
  private cancel(code: string, message: string): void {
    this.upstreamError = Object.assign(new Error(message), { code });
    this.ctx.req.unpipe(this.stream!);
    this.stream!.close(constants.NGHTTP2_CANCEL);
  }

  private readonly onResponse = (headers: IncomingHttpHeaders, flags: number): void => {
    // The client reset its stream before our 'close' listener ran: nobody to answer (clientClosed cancels upstream).
    const client = (this.res as { stream?: ServerHttp2Stream }).stream!;
    if (this.clientGone || client.closed || client.destroyed) return;
    const ctx = this.ctx;
    ctx.upstreamHeadersAt = performance.now();
    const status = Number(headers[':status']);
    ctx.status = status;
    const out: OutgoingHttpHeaders = {};
    toClientHeaders(headers, out, ctx.config.requestIdHeader);
    out[ctx.config.identity.requestId.toLowerCase()] = ctx.requestId;
    const limitHeaders = ctx.limitHeaders;
    if (limitHeaders !== null) for (let i = 0; i < limitHeaders.length; i += 2) out[limitHeaders[i]!.toLowerCase()] = limitHeaders[i + 1]!;
    if (flags & constants.NGHTTP2_FLAG_END_STREAM) {
      // Trailers-only (typically an error status): one HEADERS frame that ends the stream, as it came.
      ctx.grpcStatus = grpcStatusIn(headers);
      this.trailersOnly = true;
      client.respond({ ...out, ':status': status }, { endStream: true });
      return;
    }
    this.responded = true;
    this.res.writeHead(status, out);
  };

  private readonly onData = (chunk: Buffer): void => {
    this.ctx.bytesOut += chunk.length;
    if (!this.res.write(chunk)) {
      this.stream!.pause();
      this.res.once('drain', this.onDrain);
    }
  };

  private readonly onDrain = (): void => {
    this.stream?.resume();
  };

  private readonly onTrailers = (trailers: IncomingHttpHeaders): void => {
    this.ctx.grpcStatus = grpcStatusIn(trailers);
    const out: OutgoingHttpHeaders = {};
    toClientHeaders(trailers, out, this.ctx.config.requestIdHeader);
    this.res.addTrailers(out);
  };

  /** Also emitted after our own cancel (deadline, client gone): only a response the upstream completed ends here. */
  private readonly onEnd = (): void => {
    if (this.responded && this.upstreamError === null && !this.clientGone && !this.res.writableEnded) this.res.end();
  };

  /** The first cause is the one answered (our own cancel's, before what the stream reports of it). */
  private readonly onError = (err: Error): void => {
    this.upstreamError ??= err;
  };

  private readonly onClose = (): void => {
    const stream = this.stream!;
    this.ctx.req.unpipe(stream);
    const ended = stream.readableEnded && stream.rstCode === constants.NGHTTP2_NO_ERROR;
    this.end(ended ? null : (this.upstreamError ?? Object.assign(new Error('upstream reset the stream'), { code: 'ERR_HTTP2_STREAM_ERROR' })));
  };

  private readonly onDeadline = (): void => {
    this.timer = null;
    if (!this.finished) this.cancel('TG_GRPC_DEADLINE', 'deadline exceeded');
  };

  /** The upstream stream is over, completely (err null) or not: release, and answer what is left to answer. */
  private end(err: Error | null): void {
    if (this.finished) return;
    this.finished = true;
    if (this.timer !== null) clearTimeout(this.timer);
    const ctx = this.ctx;
    if (ctx.trace !== null) ctx.trace.endUpstream(ctx, err ?? undefined);
    this.upstream.gate.release(this);
    if (err === null || this.clientGone) return;
    const rejection = (err as { code?: string }).code === 'TG_GRPC_DEADLINE' ? DEADLINE : grpcUpstreamRejection(err);
    const res = this.res;
    if (!res.headersSent) {
      this.callbacks.fail(ctx, rejection);
      return;
    }
    // Mid-call: the status goes out as trailers, so the client sees why rather than a reset.
    if (this.trailersOnly || res.writableEnded) return;
    ctx.reason = rejection.reason ?? null;
    ctx.grpcStatus = grpcStatusOf(rejection.code);
    res.addTrailers({ 'grpc-status': String(ctx.grpcStatus), 'grpc-message': encodeGrpcMessage(rejection.message ?? ERRORS[rejection.code].message) });
    res.end();
  }
}

const kCall = Symbol('tenantgate.grpcCall');
type TrackedResponse = ServerResponse & { [kCall]?: GrpcCall };

function onResponseClose(this: TrackedResponse): void {
  this[kCall]?.clientClosed();
}

/** The forward stage for gRPC: the deadline, the upstream's headers, the gate, then the call. */
export function forwardGrpc(ctx: RequestContext, pools: UpstreamPools, callbacks: ForwardCallbacks): void {
  const req = ctx.req as IncomingMessage;
  const route = ctx.route!;
  if (req.httpVersionMajor !== 2) {
    callbacks.fail(ctx, GRPC_NEEDS_HTTP2);
    return;
  }
  const deadlineMs = callDeadlineMs(req.headers['grpc-timeout'] as string | undefined, route.timeoutMs);
  if (deadlineMs === null) {
    callbacks.fail(ctx, BAD_TIMEOUT);
    return;
  }
  const upstream = pools.for(route);
  const res = ctx.res as TrackedResponse;
  const call = new GrpcCall(ctx, res, callbacks, upstream, upstreamPath(route, ctx.path, ctx.search), ctx.startedAt + deadlineMs, route.maxBodyBytes);
  res[kCall] = call;
  // Before the pipeline's own 'close' listener, which accounts the call: the cancel's status must be known by then.
  res.prependListener('close', onResponseClose);
  const tenant = ctx.tenant?.id ?? ctx.principal?.tenantId ?? null;
  const refused = upstream.gate.acquire(call, route.name, tenant, route.queueTimeoutMs, performance.now());
  if (refused !== null) {
    call.finished = true;
    callbacks.fail(ctx, refused);
  }
}
