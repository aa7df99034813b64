/**
 * Stage 7 — forward (HTTP). Injects the verified identity and forwarding
 * headers, passes the upstream's {@link ConnectionGate} (a bounded wait for
 * a connection, per-route and per-tenant shares: 503 upstream_overloaded),
 * then streams the request through the origin's undici Pool with a small
 * dispatch handler of our own (no header parsing, AsyncResource or
 * `finished()` work that `Pool.stream` adds). Bodies stream both ways with
 * back-pressure; nothing is buffered. A body that stops moving for the
 * route's idleTimeoutMs is cut: 408 for the client's, 504 (or a cut
 * connection) for the upstream's. WebSocket upgrades go through
 * ./forward-websocket.ts.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { RequestContext } from '../context.js';
import { reject, type Rejection } from '../errors.js';
import { GateState, QueuedRequest } from '../upstream/gate.js';
import type { Upstream, UpstreamPools } from '../upstream/pools.js';
import { upstreamPath } from './route.js';

/** How forward reports a failure: the pipeline's error writer (the account stage runs on the response's 'close'). */
export interface ForwardCallbacks {
  fail(ctx: RequestContext, rejection: Rejection): void;
}

/** Never passed back to the client; HTTP/2 also refuses every one of them in a response. */
const RESPONSE_HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'http2-settings']);
/** Identity values are plain visible ASCII (and spaces): anything else never reaches a header. */
const SAFE_HEADER_VALUE = /^[\x20-\x7e]*$/;
/** Room for an Azure user's 200 group ids in X-Roles (past 200 Azure sends an overage claim instead); 8 KiB is also nginx's default header buffer. */
const MAX_IDENTITY_VALUE = 8192;

export function isSafeHeaderValue(value: string): boolean {
  return value.length <= MAX_IDENTITY_VALUE && SAFE_HEADER_VALUE.test(value);
}

const UNSAFE_IDENTITY = reject('unauthenticated', 'unsafe_identity_value');

/** Pushes one identity header unless the value is absent; false when it is not header-safe. */
function pushIdentity(headers: string[], name: string, value: string | null): boolean {
  if (value === null) return true;
  if (!isSafeHeaderValue(value)) return false;
  headers.push(name, value);
  return true;
}

/** Appends identity and forwarding headers to ctx.upstreamHeaders; a rejection if a value is not header-safe. */
export function injectHeaders(ctx: RequestContext): Rejection | undefined {
  const h = ctx.upstreamHeaders;
  const req = ctx.req;
  const route = ctx.route!;
  const names = ctx.config.identity;
  h.push('host', route.preserveHost ? (ctx.hostHeader ?? route.upstream.host) : route.upstream.host);
  h.push(names.requestId, ctx.requestId);
  const clientIp = req.socket.remoteAddress ?? '';
  // trustProxy: extend the client's chain and keep its proto/host (sanitize let them through).
  const listen = ctx.config.source.listen;
  const trust = listen.trustProxy;
  const priorXff = trust ? req.headers['x-forwarded-for'] : undefined;
  h.push('x-forwarded-for', priorXff ? `${priorXff}, ${clientIp}` : clientIp);
  if (!trust || req.headers['x-forwarded-proto'] === undefined) h.push('x-forwarded-proto', listen.tls === null ? 'http' : 'https');
  if ((!trust || req.headers['x-forwarded-host'] === undefined) && ctx.hostHeader !== null) h.push('x-forwarded-host', ctx.hostHeader);
  const p = ctx.principal;
  if (p === null) return undefined;
  const ok =
    pushIdentity(h, names.tenantId, ctx.tenant?.id ?? p.tenantId) &&
    pushIdentity(h, names.plan, ctx.tenant?.plan ?? null) &&
    pushIdentity(h, names.projectId, p.projectId) &&
    pushIdentity(h, names.apiKeyId, p.apiKeyId) &&
    pushIdentity(h, names.subject, p.subject) &&
    pushIdentity(h, names.scopes, p.scopes.length > 0 ? p.scopes.join(' ') : null) &&
    pushIdentity(h, names.roles, p.roles.length > 0 ? p.roles.join(' ') : null);
  if (!ok) return UNSAFE_IDENTITY;
  const signer = ctx.config.auth.assertion;
  if (signer !== null && ctx.tenant !== null) h.push(names.assertion!, signer.sign(p, ctx.tenant));
  return undefined;
}

const kHandler = Symbol('tenantgate.forwardHandler');
type TrackedResponse = ServerResponse & { [kHandler]?: ForwardHandler };

/** Shared listeners (no per-request closures): they find the handler on the response. */
function onResponseDrain(this: TrackedResponse): void {
  this[kHandler]?.resume?.();
}
function onResponseClose(this: TrackedResponse): void {
  const handler = this[kHandler];
  if (handler !== undefined && !handler.finished) handler.clientAborted();
}
/** The client's socket saw no traffic for the route's idleTimeoutMs (armed only while that can matter). */
function onClientIdle(this: TrackedResponse): void {
  const handler = this[kHandler];
  if (handler !== undefined && !handler.finished) handler.clientIdle();
}

class BodyTooLarge extends Error {
  readonly code = 'TG_BODY_TOO_LARGE';
}

class RequestBodyIdle extends Error {
  readonly code = 'TG_REQUEST_BODY_IDLE';
}

/**
 * A chunked body on a route with a body limit: counted as it streams to the
 * upstream (usage event `bytesIn`: exact even for aborted uploads) and failed
 * once it passes the limit, before the chunk that passes it is forwarded.
 *
 * Fed by `source.pipe(this)` plus the two error paths stream.pipeline would
 * add: a client that aborts mid-body fails the upstream body, and a body
 * that fails (over the limit) stops reading the client's. Not pipeline()
 * itself: in Node 20 it builds an AbortController per call and aborts it on
 * completion, a DOMException with a stack trace per request.
 */
class MeteredBody extends Transform {
  constructor(
    readonly ctx: RequestContext,
    private readonly limit: number,
    /** The client's request (stopped by {@link onBodyError}). */
    readonly source: IncomingMessage,
  ) {
    super();
    (source as BodySource)[kBody] = this;
    source.on('error', onSourceError);
    source.on('close', onSourceClose);
    this.on('error', onBodyError);
    source.pipe(this);
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    const seen = (this.ctx.bytesIn += chunk.length);
    if (seen > this.limit) cb(new BodyTooLarge('request body over the limit'));
    else cb(null, chunk);
  }
}

const kBody = Symbol('tenantgate.body');
const kContext = Symbol('tenantgate.bodyContext');
type BodySource = IncomingMessage & { [kBody]?: MeteredBody; [kContext]?: RequestContext };

/**
 * Any other body — a Content-Length the route allows (Node's parser stops at
 * that length) or no limit at all — goes to undici as the client's own
 * stream, with a passive 'data' listener counting it: a Transform per body
 * costs far more CPU than a listener. Paused first, so adding the listener
 * does not start the flow before undici is ready to write (undici resumes
 * it, and pauses it for backpressure, for both listeners).
 */
function countedBody(req: IncomingMessage, ctx: RequestContext): IncomingMessage {
  (req as BodySource)[kContext] = ctx;
  req.pause();
  req.on('data', countChunk);
  return req;
}

function countChunk(this: BodySource, chunk: Buffer): void {
  this[kContext]!.bytesIn += chunk.length;
}

class PrematureClose extends Error {
  readonly code = 'ERR_STREAM_PREMATURE_CLOSE';
}

function onSourceError(this: BodySource, err: Error): void {
  this[kBody]!.destroy(err);
}

/** The client's request closed before its end (aborted upload): the upstream body must not look complete. */
function onSourceClose(this: BodySource): void {
  const body = this[kBody]!;
  if (!this.complete && !body.destroyed) body.destroy(new PrematureClose('client request closed before its body ended'));
}

/**
 * The upstream body failed (over the limit, upstream gone): stop reading the
 * client. The error answer then goes out with `Connection: close`, which
 * ends the connection; if the response is already over, nothing else will.
 */
function onBodyError(this: MeteredBody): void {
  const source = this.source;
  source.unpipe(this);
  if (this.ctx.res!.writableEnded) source.destroy();
  else source.pause();
}

/**
 * The client still owes request body bytes and nothing on our side holds
 * them back (a paused stream or unread buffered bytes mean the upstream is
 * the slow one).
 */
function clientOwesBody(req: IncomingMessage): boolean {
  return !req.complete && req.readableFlowing !== false && req.readableLength === 0;
}

const REQUEST_BODY_IDLE = reject('request_timeout', 'request_body_idle');

class ForwardHandler extends QueuedRequest implements Dispatcher.DispatchHandler {
  abort: ((err?: Error) => void) | null = null;
  resume: (() => void) | null = null;
  finished = false;
  private abortedByClient = false;
  /** The client stopped reading the response for idleTimeoutMs: cut, and logged as such. */
  private clientStalled = false;
  /** The 'timeout' listener is on the response. */
  private idleListening = false;
  /** The client's socket is timed for idleness. */
  private idleArmed = false;


  constructor(
    private readonly ctx: RequestContext,
    private readonly res: TrackedResponse,
    private readonly callbacks: ForwardCallbacks,
    private readonly upstream: Upstream,
    private readonly options: Dispatcher.DispatchOptions,
    /** What times the client's silence: its connection (kept: undici detaches it from the request when it aborts the body), or its HTTP/2 stream. */
    private readonly socket: { setTimeout(ms: number): unknown },
    private readonly idleMs: number,
    private readonly http2: boolean,
  ) {
    super();
  }

  /** The gate gave this request a connection slot. */
  start(): void {
    const ctx = this.ctx;
    // Only now is the client invited to send a body we are ready to carry.
    if (ctx.expectContinue) this.res.writeContinue();
    ctx.upstreamStartedAt = performance.now();
    if (ctx.trace !== null) ctx.trace.startUpstream(ctx, this.options.path);
    this.upstream.pool.dispatch(this.options, this);
  }

  /** The gate turned it away after a wait (queue timeout, shutdown). */
  refused(rejection: Rejection): void {
    this.finished = true;
    this.callbacks.fail(this.ctx, rejection);
  }

  clientAborted(): void {
    this.abortedByClient = true;
    this.ctx.reason = this.clientStalled ? 'client_stalled' : 'client_aborted';
    if (this.gateState === GateState.Queued) {
      this.finished = true;
      this.upstream.gate.release(this);
    } else this.abort?.();
  }

  /** Whose silence it was decides the answer: the client's is cut here, the upstream's is left to undici's timeouts. */
  clientIdle(): void {
    const res = this.res;
    const req = this.ctx.req;
    if (!res.headersSent) {
      if (clientOwesBody(req)) this.abort!(new RequestBodyIdle('request body idle'));
      else if (!req.complete) this.armIdle(); // held back by a slow upstream: keep watching
      else this.disarmIdle();
    } else if (res.writableNeedDrain || http2Stalled(res)) {
      this.clientStalled = true;
      res.destroy();
    } else this.disarmIdle();
  }

  private armIdle(): void {
    if (!this.idleListening) {
      this.idleListening = true;
      this.res.on('timeout', onClientIdle);
    }
    this.idleArmed = true;
    this.socket.setTimeout(this.idleMs);
  }

  private disarmIdle(): void {
    if (!this.idleArmed) return;
    this.idleArmed = false;
    this.socket.setTimeout(0);
  }

  onConnect(abort: (err?: Error) => void): void {
    this.abort = abort;
    if (this.abortedByClient) abort();
    else if (!this.ctx.req.complete) this.armIdle();
  }

  onHeaders(statusCode: number, raw: Buffer[], resume: () => void, statusText: string): boolean {
    if (statusCode < 200) return true; // 1xx from the upstream: ours were already sent
    const ctx = this.ctx;
    ctx.upstreamHeadersAt = performance.now();
    ctx.status = statusCode;
    this.resume = resume;
    const out: string[] = [];
    let nominated: string | null = null;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!.toString('latin1');
      const lower = name.toLowerCase();
      if (RESPONSE_HOP_BY_HOP.has(lower)) {
        if (lower === 'connection') {
          const value = raw[i + 1]!.toString('latin1').toLowerCase();
          nominated = nominated === null ? value : `${nominated},${value}`;
        }
        continue;
      }
      if (lower === ctx.config.requestIdHeader) continue;
      out.push(name, raw[i + 1]!.toString('latin1'));
    }
    // Most upstreams send only `Connection: keep-alive` (or close): nothing to remove, no split.
    if (nominated !== null && nominated !== 'keep-alive' && nominated !== 'close') removeNominated(out, nominated);
    out.push(ctx.config.identity.requestId, ctx.requestId);
    const limitHeaders = ctx.limitHeaders;
    if (limitHeaders !== null) for (let i = 0; i < limitHeaders.length; i++) out.push(limitHeaders[i]!);
    const res = this.res;
    // HTTP/2 has no reason phrase (Node warns when given one).
    res.writeHead(statusCode, this.http2 ? undefined : statusText || undefined, out);
    return true;
  }

  onData(chunk: Buffer): boolean {
    this.ctx.bytesOut += chunk.length;
    const flowing = this.res.write(chunk);
    // The client is not keeping up: from here its silence is timed.
    if (!flowing && !this.idleArmed) this.armIdle();
    return flowing;
  }

  onComplete(): void {
    this.finished = true;
    if (this.ctx.trace !== null) this.ctx.trace.endUpstream(this.ctx);
    this.upstream.gate.release(this);
    this.disarmIdle();
    this.res.end();
  }

  onError(err: Error): void {
    this.finished = true;
    if (this.ctx.trace !== null) this.ctx.trace.endUpstream(this.ctx, err);
    this.upstream.gate.release(this);
    this.disarmIdle();
    if (this.abortedByClient) return; // nobody left to answer
    this.callbacks.fail(this.ctx, upstreamRejection(err));
  }
}

function removeNominated(headers: string[], connectionValue: string): void {
  for (const token of connectionValue.split(',')) {
    const t = token.trim();
    if (t === '' || t === 'close' || t === 'keep-alive') continue;
    for (let i = headers.length - 2; i >= 0; i -= 2) if (headers[i]!.toLowerCase() === t) headers.splice(i, 2);
  }
}

/** undici's error codes → the client's answer, with a precise reason for logs and metrics. */
export function upstreamRejection(err: Error): Rejection {
  const code = (err as { code?: string }).code;
  switch (code) {
    case 'UND_ERR_HEADERS_TIMEOUT':
      return reject('upstream_timeout', 'headers_timeout');
    case 'UND_ERR_BODY_TIMEOUT':
      return reject('upstream_timeout', 'body_timeout');
    case 'TG_REQUEST_BODY_IDLE':
      return REQUEST_BODY_IDLE;
    case 'TG_BODY_TOO_LARGE':
      return reject('payload_too_large', 'body_too_large');
    case 'UND_ERR_CONNECT_TIMEOUT':
      return reject('upstream_unavailable', 'connect_timeout');
    case 'ECONNREFUSED':
      return reject('upstream_unavailable', 'connect_refused');
    case 'ECONNRESET':
    case 'EPIPE':
    case 'UND_ERR_SOCKET':
      return reject('upstream_unavailable', 'upstream_reset');
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return reject('upstream_unavailable', 'dns');
    case 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH':
      return reject('bad_request', 'content_length_mismatch');
    case 'ECONNABORTED':
    case 'ERR_STREAM_PREMATURE_CLOSE':
    case 'UND_ERR_ABORTED':
      return reject('bad_request', 'request_body_aborted');
    default:
      return reject('upstream_unavailable', code ? `upstream_error:${code}` : 'upstream_error');
  }
}

function requestHasBody(req: IncomingMessage): boolean {
  const te = req.headers['transfer-encoding'];
  if (te !== undefined) return true;
  const cl = req.headers['content-length'];
  return cl !== undefined && cl !== '0';
}

/** An HTTP/2 request: the stream behind Node's compatibility request. */
type Http2Request = IncomingMessage & { stream: Http2Stream };

function http2Stream(req: IncomingMessage): Http2Stream {
  return (req as Http2Request).stream;
}

/** HTTP/2 carries a body unless the request's HEADERS frame ended the stream (Content-Length is optional there). */
function http2HasBody(req: IncomingMessage): boolean {
  return !http2Stream(req).endAfterHeaders;
}

/** Node's HTTP/2 response has no writableNeedDrain: its stream's says whether the client stopped reading. */
function http2Stalled(res: ServerResponse): boolean {
  const stream = (res as ServerResponse & { stream?: Http2Stream }).stream;
  return stream !== undefined && stream.writableNeedDrain;
}

/**
 * The forward stage for HTTP: takes a connection slot from the upstream's
 * gate (now, after a bounded wait, or a 503), then dispatches; the response
 * is streamed by the handler.
 */
export function forward(ctx: RequestContext, pools: UpstreamPools, callbacks: ForwardCallbacks): void {
  const req = ctx.req;
  const res = ctx.res as TrackedResponse;
  const route = ctx.route!;
  let body: Readable | null = null;
  const http2 = req.httpVersionMajor === 2;
  if (http2 ? http2HasBody(req) : requestHasBody(req)) {
    const max = route.maxBodyBytes;
    const declared = req.headers['content-length'];
    if (max !== null && Number(declared) > max) {
      callbacks.fail(ctx, reject('payload_too_large', 'content_length_over_limit'));
      return;
    }
    // Transfer-Encoding and Content-Length together never get here (Node's strict parser refuses them).
    body = max !== null && declared === undefined ? new MeteredBody(ctx, max, req) : countedBody(req, ctx);
  }
  const upstream = pools.for(route);
  const options: Dispatcher.DispatchOptions = {
    origin: route.upstream.origin,
    method: req.method!,
    path: upstreamPath(route, ctx.path, ctx.search),
    headers: ctx.upstreamHeaders,
    body,
    headersTimeout: route.timeoutMs,
    // undici's body timer is an idle timer: it restarts with every chunk and stops while we pause the upstream.
    bodyTimeout: route.idleTimeoutMs,
    // Upstream connections are keep-alive regardless of what the client asked for.
    reset: false,
  };
  const handler = new ForwardHandler(ctx, res, callbacks, upstream, options, http2 ? http2Stream(req) : req.socket, route.idleTimeoutMs, http2);
  res[kHandler] = handler;
  res.on('drain', onResponseDrain);
  res.on('close', onResponseClose);
  const tenant = ctx.tenant?.id ?? ctx.principal?.tenantId ?? null;
  const refused = upstream.gate.acquire(handler, route.name, tenant, route.queueTimeoutMs, performance.now());
  if (refused !== null) {
    handler.finished = true;
    callbacks.fail(ctx, refused);
  }
}
