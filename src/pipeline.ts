/**
 * The request pipeline — the one place that says what happens to a request,
 * in order (SPEC §1). {@link ADMISSION} lists stages 1–6 and the header
 * injection of 7; one runner runs them, then forward, and {@link finish}
 * ends every request exactly once:
 *
 *   1. route          stages/route.ts         host + path (+ method) → route, or 400/404/405
 *   2. sanitize       stages/sanitize.ts      drop client-supplied identity and hop-by-hop headers
 *   3. authenticate   stages/authenticate.ts  API key / JWT / none → principal, or 401
 *   4. resolve tenant stages/tenant.ts        principal (+ the tenant the request selects) → active tenant; 400 / 403
 *   5. authorize      stages/authorize.ts     the route's permission from scopes or roles, or 403
 *   6. limit          stages/limit.ts         token buckets, quotas, concurrency, or 429 / 503
 *   7. forward        stages/forward.ts       inject identity, stream to the upstream
 *                     stages/forward-websocket.ts for upgrades, after the same stages
 *                     stages/forward-grpc.ts for `protocol: grpc` routes (HTTP/2 to the upstream)
 *   8. account        stages/account.ts       once, from finish: when the response ends or the client aborts
 *
 * A stage returns `undefined` to go on or a Rejection to stop, or a Promise
 * of either when it waits on I/O. Only `fail` and `refuseRaw` write errors.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { constants as http2Constants, type Http2ServerRequest, type Http2ServerResponse, type Http2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { RequestContext } from './context.js';
import { ERRORS, grpcStatusOf, isGrpcRequest, reject, sendError, sendGrpcError, writeRawError, type ErrorCode, type Rejection } from './errors.js';
import type { ProxyState } from './state.js';
import { account } from './stages/account.js';
import { authenticate } from './stages/authenticate.js';
import { authorize } from './stages/authorize.js';
import { forward, injectHeaders, type ForwardCallbacks } from './stages/forward.js';
import { forwardGrpc } from './stages/forward-grpc.js';
import { forwardWebSocket } from './stages/forward-websocket.js';
import { limit } from './stages/limit.js';
import { answerUsage } from './stages/usage-route.js';
import { route } from './stages/route.js';
import { sanitize } from './stages/sanitize.js';
import { resolveTenant } from './stages/tenant.js';
import type { Tracer } from './tracing/hooks.js';

type Verdict = Rejection | undefined;
type Stage = (ctx: RequestContext, state: ProxyState) => Verdict | Promise<Verdict>;

/** Past every check: hold the concurrency slot (if any) and build the upstream's identity headers. */
function admitted(ctx: RequestContext, state: ProxyState): Verdict {
  ctx.admitted = true;
  if (ctx.lease !== null) for (const lease of ctx.lease) state.holdLease(lease);
  return injectHeaders(ctx);
}

function limitStage(ctx: RequestContext, state: ProxyState): Verdict | Promise<Verdict> {
  // A usage route reads the limits; it is not counted against them.
  if (ctx.route!.usage) return undefined;
  const metrics = state.metrics;
  return metrics.enabled ? limit(ctx, state.limits, metrics.limitWait, metrics.quotaUsage) : limit(ctx, state.limits, metrics.unreadLimitWait);
}

/** Everything that decides whether a request goes on, in order. */
const ADMISSION: readonly Stage[] = [route, sanitize, authenticate, resolveTenant, authorize, limitStage, admitted];

/** What an asynchronous stage's continuation returns when the request ended while it waited. */
const ENDED = reject('bad_request', 'client_aborted');

/**
 * Runs the admission stages from `from`: synchronously while they answer at
 * once, as a Promise from the first that waits. A request that ended while a
 * stage waited goes no further, and gives back any slot taken meanwhile.
 */
function admit(ctx: RequestContext, state: ProxyState, from = 0): Verdict | Promise<Verdict> {
  for (let i = from; i < ADMISSION.length; i++) {
    const verdict = ADMISSION[i]!(ctx, state);
    if (verdict === undefined) continue;
    if (!(verdict instanceof Promise)) return verdict;
    const next = i + 1;
    return verdict.then((v) => {
      if (ctx.ended) {
        releaseLease(ctx, state);
        return ENDED;
      }
      return v ?? admit(ctx, state, next);
    });
  }
  return undefined;
}

/** Frees the request's concurrency slot, once, whichever way it ended. */
function releaseLease(ctx: RequestContext, state: ProxyState): void {
  if (ctx.lease === null) return;
  for (const lease of ctx.lease) state.releaseLease(lease);
  ctx.lease = null;
}

/** Ends a request exactly once, however it ended: release what admission took, account, leave the in-flight count. */
function finish(ctx: RequestContext, state: ProxyState): void {
  if (ctx.ended) return;
  ctx.ended = true;
  releaseLease(ctx, state);
  account(ctx, state);
  if (ctx.trace !== null) ctx.trace.end(ctx);
  state.requestEnded();
}

/** Node's parser error codes → our error code. Anything else the parser refuses is a 400. */
function clientErrorCode(code: string | undefined): ErrorCode {
  switch (code) {
    case 'HPE_HEADER_OVERFLOW':
      return 'headers_too_large';
    case 'ERR_HTTP_REQUEST_TIMEOUT':
    case 'HPE_HEADERS_TIMEOUT':
      return 'request_timeout';
    default:
      return 'bad_request';
  }
}

/**
 * What a request the parser refused is accounted as: no method, path or
 * headers could be read (the method label is then `OTHER`, the path empty).
 */
const UNPARSED_REQUEST = Object.freeze({ method: '', url: '', headers: Object.freeze({}), rawHeaders: Object.freeze([]) }) as unknown as IncomingMessage;

/** A client's request id is kept only when it is short and plain (hono's rule, roughly). */
const VALID_REQUEST_ID = /^[A-Za-z0-9._:+=/-]{1,200}$/;

/** The client's request id when well-formed, else a fresh one (then also the usage event's id: see RequestContext). */
function assignRequestId(ctx: RequestContext): void {
  const id = ctx.req.headers[ctx.config.requestIdHeader];
  if (typeof id === 'string' && VALID_REQUEST_ID.test(id)) ctx.requestId = id;
  else generateRequestId(ctx);
}

function generateRequestId(ctx: RequestContext): void {
  ctx.requestId = randomUUID();
  ctx.requestIdGenerated = true;
}

const INTERNAL = reject('internal_error', 'stage_threw');
const CONNECT_REFUSED = reject('method_not_allowed', 'connect_method', 'CONNECT is not supported.');
const SHUTTING_DOWN = reject('shutting_down');
const UNSUPPORTED_UPGRADE = reject('bad_request', 'unsupported_upgrade', 'Only WebSocket upgrades (GET) are supported.');

const kContext = Symbol('tenantgate.context');
const kState = Symbol('tenantgate.state');
const kSocket = Symbol('tenantgate.socket');
type TrackedResponse = ServerResponse & { [kContext]?: RequestContext; [kState]?: ProxyState; [kSocket]?: TrackedSocket };
const kOpenResponses = Symbol('tenantgate.openResponses');
const kLastRequest = Symbol('tenantgate.lastRequest');
const kParserError = Symbol('tenantgate.parserError');
/** A client connection: its responses not yet closed, its latest request, and a parser refusal that waits for them. */
type TrackedSocket = Duplex & { [kOpenResponses]?: number; [kLastRequest]?: IncomingMessage; [kParserError]?: () => void };

/** 'close' fires once, after the response finished or when the client went away. */
function onResponseClose(this: TrackedResponse): void {
  const ctx = this[kContext]!;
  if (ctx.status === 0) ctx.status = this.headersSent ? this.statusCode : 499;
  if (!this.writableFinished && ctx.errorCode === null && ctx.reason === null) ctx.reason = 'client_aborted';
  finish(ctx, this[kState]!);
  // Node detaches req.socket by now: the connection is the one kept at arrival.
  const socket = this[kSocket]!;
  if (--socket[kOpenResponses]! === 0 && socket[kParserError] !== undefined) socket[kParserError]();
}

/** An HTTP/2 stream closed (response ended, or the client reset the stream or dropped the connection). */
function onStreamClose(this: TrackedResponse): void {
  const ctx = this[kContext]!;
  // Node's HTTP/2 response reports 'finish' even for a reset stream: the stream's error code tells.
  const reset = (this as unknown as Http2ServerResponse).stream.rstCode !== 0;
  if (ctx.status === 0) ctx.status = this.headersSent && !reset ? this.statusCode : 499;
  if (reset && ctx.errorCode === null && ctx.reason === null) ctx.reason = 'client_aborted';
  finish(ctx, this[kState]!);
}

/**
 * The response is complete while the client is still sending its body (a
 * refusal before the body was read, an upstream that answered early): stop
 * the upload with RST_STREAM NO_ERROR once the response is out, as RFC 9113
 * §8.1 provides (HTTP/1.1 closes the connection instead). Without it the
 * stream, and the request's accounting, would wait for a body nobody reads.
 */
function onStreamResponseWritten(this: Http2Stream): void {
  const state = this.state.state;
  if (state === http2Constants.NGHTTP2_STREAM_STATE_OPEN || state === http2Constants.NGHTTP2_STREAM_STATE_HALF_CLOSED_LOCAL) this.close(http2Constants.NGHTTP2_NO_ERROR);
}

/** What nghttp2 counts for SETTINGS_MAX_HEADER_LIST_SIZE: each field's name and value plus 32 octets. */
function headerListSize(raw: readonly string[]): number {
  let size = 0;
  for (let i = 0; i < raw.length; i++) size += raw[i]!.length + 16;
  return size;
}

const HEADERS_TOO_LARGE = reject('headers_too_large', 'header_list_size');

/** An upgrade's client socket closed: a tunnel's bytes are the socket's, both ways (the handshake included). */
function tunnelClosed(ctx: RequestContext, state: ProxyState): void {
  if (ctx.ended) return;
  const socket = ctx.socket as Socket;
  ctx.bytesIn = socket.bytesRead ?? 0;
  ctx.bytesOut = socket.bytesWritten ?? 0;
  if (ctx.status === 0) {
    ctx.status = 499;
    if (ctx.errorCode === null && ctx.reason === null) ctx.reason = 'client_aborted';
  }
  finish(ctx, state);
}

export class Pipeline implements ForwardCallbacks {
  constructor(
    private readonly state: ProxyState,
    /** Null when tracing is off: then no request carries a trace. */
    private readonly tracer: Tracer<RequestContext> | null = null,
  ) {}

  /** `request` and `checkContinue` handler of the data server. */
  readonly handleRequest = (req: IncomingMessage, res: ServerResponse, expectContinue = false): void => {
    const state = this.state;
    const ctx = this.start(req, res, null);
    ctx.expectContinue = expectContinue;
    const tracked = res as TrackedResponse;
    tracked[kContext] = ctx;
    tracked[kState] = state;
    res.on('close', onResponseClose);
    const socket = req.socket as TrackedSocket;
    socket[kOpenResponses] = (socket[kOpenResponses] ?? 0) + 1;
    socket[kLastRequest] = req;
    tracked[kSocket] = socket;
    if (state.draining) res.shouldKeepAlive = false;
    this.admitAndProceed(ctx);
  };

  readonly handleContinue = (req: IncomingMessage, res: ServerResponse): void => {
    this.handleRequest(req, res, true);
  };

  /**
   * `request` handler of the HTTP/2 side: one stream, through the same
   * stages. No per-connection tracking (that is for HTTP/1.1's pipelining):
   * each stream ends on its own response's 'close'.
   */
  readonly handleStream = (req: Http2ServerRequest, res: Http2ServerResponse, expectContinue = false): void => {
    const ctx = this.start(req as unknown as IncomingMessage, res as unknown as ServerResponse, null);
    ctx.expectContinue = expectContinue;
    const tracked = res as unknown as TrackedResponse;
    tracked[kContext] = ctx;
    tracked[kState] = this.state;
    res.on('close', onStreamClose);
    res.stream.once('finish', onStreamResponseWritten);
    // nghttp2 applies maxHeaderBytes only once the client acknowledged our SETTINGS; before that, its 64 KiB default.
    if (headerListSize(req.rawHeaders) > this.state.config.source.listen.maxHeaderBytes) this.proceed(ctx, HEADERS_TOO_LARGE);
    else this.admitAndProceed(ctx);
  };

  readonly handleStreamContinue = (req: Http2ServerRequest, res: Http2ServerResponse): void => {
    this.handleStream(req, res, true);
  };

  /** `upgrade` handler: WebSocket upgrades pass the same stages before any 101 is sent. */
  readonly handleUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const state = this.state;
    const ctx = this.start(req, null, socket);
    ctx.upgrade = true;
    socket.on('error', () => socket.destroy());
    // Also ends a request whose client left while a stage waited: its slot, if any, is released there, once.
    socket.once('close', () => tunnelClosed(ctx, state));
    if (state.draining) this.proceed(ctx, SHUTTING_DOWN);
    else if (req.headers.upgrade?.toLowerCase() !== 'websocket' || req.method !== 'GET') this.proceed(ctx, UNSUPPORTED_UPGRADE);
    else this.admitAndProceed(ctx, head);
  };

  private start(req: IncomingMessage, res: ServerResponse | null, socket: Duplex | null): RequestContext {
    const ctx = new RequestContext(req, res, socket, this.state.config, performance.now());
    assignRequestId(ctx);
    if (this.tracer !== null) ctx.trace = this.tracer.start(ctx);
    this.state.requestStarted();
    return ctx;
  }

  private admitAndProceed(ctx: RequestContext, head?: Buffer): void {
    let verdict: Verdict | Promise<Verdict>;
    try {
      verdict = ctx.trace === null ? admit(ctx, this.state) : ctx.trace.within(admit, ctx, this.state);
    } catch (err) {
      this.crashed(ctx, err);
      return;
    }
    this.proceed(ctx, verdict, head);
  }

  /** After admission (at once or when its Promise settles): forward, or answer the refusal. */
  private proceed(ctx: RequestContext, verdict: Verdict | Promise<Verdict>, head?: Buffer): void {
    if (verdict instanceof Promise) {
      verdict.then(
        (v) => this.proceed(ctx, v, head),
        (err: unknown) => this.crashed(ctx, err),
      );
      return;
    }
    if (ctx.ended) return;
    if (verdict !== undefined) this.fail(ctx, verdict);
    else if (ctx.upgrade) this.tunnel(ctx, head!);
    else if (ctx.route!.usage) this.usage(ctx);
    else if (ctx.route!.protocol === 'grpc') forwardGrpc(ctx, this.state.pools, this);
    else forward(ctx, this.state.pools, this);
  }

  /** A `usage: true` route answers the caller's own limits (src/stages/usage-route.ts). */
  private usage(ctx: RequestContext): void {
    answerUsage(ctx, this.state.limits).then(
      (refusal) => {
        if (refusal !== undefined && !ctx.ended) this.fail(ctx, refusal);
      },
      (err: unknown) => this.crashed(ctx, err),
    );
  }

  private tunnel(ctx: RequestContext, head: Buffer): void {
    forwardWebSocket(ctx, head, this.state, () => tunnelClosed(ctx, this.state));
  }

  /** A stage threw: a bug, never the client's fault. Answer cleanly and log it. */
  private crashed(ctx: RequestContext, err: unknown): void {
    this.state.logger.error({ err, requestId: ctx.requestId }, 'pipeline stage failed');
    if (!ctx.ended) this.fail(ctx, INTERNAL);
  }

  /** `connect` handler: this is not a forward proxy. Answered and accounted like any refusal. */
  readonly handleConnect = (req: IncomingMessage, socket: Duplex): void => {
    socket.on('error', () => socket.destroy());
    const ctx = this.start(req, null, socket);
    ctx.path = '';
    this.refuseRaw(ctx, CONNECT_REFUSED);
  };

  /**
   * `clientError`: a request Node's parser refused (malformed, headers too
   * large, too slow). It gets the SPEC's JSON answer and is accounted — a
   * metric, an access line and a usage event with no tenant — so a flood of
   * them is visible. A client that reset the connection is just dropped.
   */
  readonly handleClientError = (err: NodeJS.ErrnoException, socket: Duplex): void => {
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const ctx = new RequestContext(UNPARSED_REQUEST, null, socket, this.state.config, performance.now());
    generateRequestId(ctx);
    if (this.tracer !== null) ctx.trace = this.tracer.start(ctx);
    this.state.requestStarted();
    ctx.path = '';
    const refuse = () => this.refuseRaw(ctx, reject(clientErrorCode(err.code), err.code ?? 'parse_error'));
    // Bytes pipelined after a complete request still being answered: its response goes first, then this refusal.
    // A malformed body of the request being answered is that request's own refusal, at once.
    const tracked = socket as TrackedSocket;
    if ((tracked[kOpenResponses] ?? 0) > 0 && tracked[kLastRequest]!.complete) tracked[kParserError] = refuse;
    else refuse();
  };

  /** Writes a refusal: on the response, or on the raw socket (upgrades, CONNECT, parser errors), which ends the request at once. */
  fail(ctx: RequestContext, rejection: Rejection): void {
    if (ctx.res !== null) {
      recordRejection(ctx, rejection);
      if (ctx.route?.protocol === 'grpc' || isGrpcRequest(ctx.req)) {
        ctx.grpcStatus = grpcStatusOf(rejection.code);
        ctx.bytesOut = sendGrpcError(ctx.res, rejection, ctx.requestId);
      } else ctx.bytesOut = sendError(ctx.res, rejection, ctx.requestId);
    } else this.refuseRaw(ctx, rejection);
  }

  private refuseRaw(ctx: RequestContext, rejection: Rejection): void {
    recordRejection(ctx, rejection);
    ctx.bytesIn = 0;
    ctx.bytesOut = writeRawError(ctx.socket!, rejection, ctx.requestId);
    finish(ctx, this.state);
  }
}

function recordRejection(ctx: RequestContext, rejection: Rejection): void {
  ctx.errorCode = rejection.code;
  ctx.reason = rejection.reason ?? null;
  ctx.status = ERRORS[rejection.code].status;
}
