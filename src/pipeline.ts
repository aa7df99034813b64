/**
 * The request pipeline — the one place that says what happens to a request,
 * in order (SPEC §1):
 *
 *   1. route         stages/route.ts         host + path (+ method) → route, or 404/405
 *   2. sanitize      stages/sanitize.ts      drop client-supplied identity and hop-by-hop headers
 *   3. authenticate  stages/authenticate.ts  API key / JWT / none → principal, or 401
 *   4. resolve tenant stages/tenant.ts       principal → tenant; 403 unknown / suspended / cross-tenant
 *   5. authorize     stages/authorize.ts     the route's permission from scopes or roles, or 403
 *   6. limit         (limits issue)          token buckets, quotas, concurrency
 *   7. forward       stages/forward.ts       inject identity, stream to the upstream
 *                    stages/forward-websocket.ts for upgrades, after the same stages
 *   8. account       stages/account.ts       once, when the response ends or the client aborts
 *
 * Every stage returns `undefined` to go on or a Rejection to stop (or a
 * Promise of either, for stages that may wait on I/O); only `fail` writes an
 * error response.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { RequestContext } from './context.js';
import { ERRORS, reject, sendError, writeRawError, type ErrorCode, type Rejection } from './errors.js';
import type { ProxyState } from './state.js';
import { account } from './stages/account.js';
import { authenticate } from './stages/authenticate.js';
import { authorize } from './stages/authorize.js';
import { forward, injectHeaders, type ForwardCallbacks } from './stages/forward.js';
import { forwardWebSocket } from './stages/forward-websocket.js';
import { limit } from './stages/limit.js';
import { route } from './stages/route.js';
import { sanitize } from './stages/sanitize.js';
import { resolveTenant } from './stages/tenant.js';

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

type Verdict = Rejection | undefined;

/** Stages 1–6 and the header injection of 7: everything that decides whether the request goes on. */
function admit(ctx: RequestContext, state: ProxyState): Verdict | Promise<Verdict> {
  const early = route(ctx) ?? sanitize(ctx);
  if (early !== undefined) return early;
  const auth = authenticate(ctx);
  if (auth instanceof Promise) return auth.then((r) => r ?? afterAuthentication(ctx, state));
  return auth ?? afterAuthentication(ctx, state);
}

function afterAuthentication(ctx: RequestContext, state: ProxyState): Verdict | Promise<Verdict> {
  const refused = resolveTenant(ctx) ?? authorize(ctx);
  if (refused !== undefined) return refused;
  const metrics = state.metrics;
  const limited = limit(ctx, state.limits, metrics.enabled ? metrics.limitWait : metrics.unreadLimitWait);
  if (limited instanceof Promise) return limited.then((r) => r ?? admitted(ctx, state));
  return limited ?? admitted(ctx, state);
}

/** Past every check: hold the concurrency slot (if any) and build the upstream's identity headers. */
function admitted(ctx: RequestContext, state: ProxyState): Verdict {
  ctx.admitted = true;
  if (ctx.lease !== null) state.holdLease(ctx.lease);
  return injectHeaders(ctx);
}

const INTERNAL = reject('internal_error', 'stage_threw');
const CONNECT_REFUSED = reject('method_not_allowed', 'connect_method', 'CONNECT is not supported.');

/** Frees the request's concurrency slot, once, whichever way it ended. */
function releaseLease(ctx: RequestContext, state: ProxyState): void {
  if (ctx.lease === null) return;
  state.releaseLease(ctx.lease);
  ctx.lease = null;
}

const kContext = Symbol('tenantgate.context');
const kState = Symbol('tenantgate.state');
type TrackedResponse = ServerResponse & { [kContext]?: RequestContext; [kState]?: ProxyState };

/** Runs once per request: 'close' fires after the response finished or when the client went away. */
function onResponseClose(this: TrackedResponse): void {
  const ctx = this[kContext]!;
  const state = this[kState]!;
  if (ctx.status === 0) ctx.status = this.headersSent ? this.statusCode : 499;
  if (!this.writableFinished && ctx.errorCode === null && ctx.reason === null) ctx.reason = 'client_aborted';
  releaseLease(ctx, state);
  account(ctx, state);
  state.requestEnded();
}

export class Pipeline implements ForwardCallbacks {
  constructor(private readonly state: ProxyState) {}

  /** `request` and `checkContinue` handler of the data server. */
  readonly handleRequest = (req: IncomingMessage, res: ServerResponse, expectContinue = false): void => {
    const state = this.state;
    const ctx = new RequestContext(req, res, null, state.config, performance.now());
    assignRequestId(ctx);
    ctx.expectContinue = expectContinue;
    const tracked = res as TrackedResponse;
    tracked[kContext] = ctx;
    tracked[kState] = state;
    state.requestStarted();
    res.on('close', onResponseClose);
    if (state.draining) res.shouldKeepAlive = false;

    const verdict = admit(ctx, state);
    if (verdict === undefined) forward(ctx, state.pools, this);
    else if (verdict instanceof Promise) verdict.then((v) => this.proceed(ctx, v), (err: unknown) => this.crashed(ctx, err));
    else this.fail(ctx, verdict);
  };

  /** After an asynchronous stage: the client may have gone away meanwhile. */
  private proceed(ctx: RequestContext, verdict: Verdict): void {
    if (ctx.res!.destroyed) {
      // The response already closed (and was accounted) while a stage waited: free any slot taken since.
      releaseLease(ctx, this.state);
      return;
    }
    if (verdict === undefined) forward(ctx, this.state.pools, this);
    else this.fail(ctx, verdict);
  }

  /** A stage threw: a bug, never the client's fault. Answer cleanly and log it. */
  private crashed(ctx: RequestContext, err: unknown): void {
    this.state.logger.error({ err, requestId: ctx.requestId }, 'pipeline stage failed');
    if (ctx.res !== null && !ctx.res.destroyed) this.fail(ctx, INTERNAL);
    else if (ctx.socket !== null) writeRawError(ctx.socket, INTERNAL, ctx.requestId);
  }

  readonly handleContinue = (req: IncomingMessage, res: ServerResponse): void => {
    this.handleRequest(req, res, true);
  };

  /** `upgrade` handler: WebSocket upgrades pass the same stages before any 101 is sent. */
  readonly handleUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const state = this.state;
    const ctx = new RequestContext(req, null, socket, state.config, performance.now());
    assignRequestId(ctx);
    socket.on('error', () => socket.destroy());
    let rejection: Rejection | undefined;
    if (state.draining) rejection = reject('shutting_down');
    else if (req.headers.upgrade?.toLowerCase() !== 'websocket' || req.method !== 'GET') {
      rejection = reject('bad_request', 'unsupported_upgrade', 'Only WebSocket upgrades (GET) are supported.');
    } else {
      const verdict = admit(ctx, state);
      if (verdict instanceof Promise) {
        verdict.then((v) => this.proceedUpgrade(ctx, head, v), (err: unknown) => this.crashed(ctx, err));
        return;
      }
      rejection = verdict;
    }
    this.proceedUpgrade(ctx, head, rejection);
  };

  private proceedUpgrade(ctx: RequestContext, head: Buffer, verdict: Verdict): void {
    const state = this.state;
    const socket = ctx.socket!;
    if (socket.destroyed) {
      releaseLease(ctx, state);
      return;
    }
    if (verdict === undefined && !ctx.route!.websocket) verdict = reject('bad_request', 'websocket_disabled', 'This route does not accept WebSocket upgrades.');
    if (verdict !== undefined) {
      this.recordRejection(ctx, verdict);
      writeRawError(socket, verdict, ctx.requestId);
      account(ctx, state);
      return;
    }
    state.requestStarted();
    forwardWebSocket(ctx, head, state, () => {
      // A tunnel's bytes are the client socket's, both ways (the upgrade handshake included).
      const tunnel = ctx.socket as Socket;
      ctx.bytesIn = tunnel.bytesRead ?? 0;
      ctx.bytesOut = tunnel.bytesWritten ?? 0;
      releaseLease(ctx, state);
      account(ctx, state);
      state.requestEnded();
    });
  }

  /** `connect` handler: this is not a forward proxy. Answered and accounted like any refusal. */
  readonly handleConnect = (req: IncomingMessage, socket: Duplex): void => {
    socket.on('error', () => socket.destroy());
    const ctx = new RequestContext(req, null, socket, this.state.config, performance.now());
    assignRequestId(ctx);
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
    ctx.path = '';
    this.refuseRaw(ctx, reject(clientErrorCode(err.code), err.code ?? 'parse_error'));
  };

  /** Answers on the raw socket and accounts the request at once (there is no response object to wait on). */
  private refuseRaw(ctx: RequestContext, rejection: Rejection): void {
    this.recordRejection(ctx, rejection);
    ctx.bytesIn = 0;
    ctx.bytesOut = writeRawError(ctx.socket!, rejection, ctx.requestId);
    account(ctx, this.state);
  }

  fail(ctx: RequestContext, rejection: Rejection): void {
    this.recordRejection(ctx, rejection);
    ctx.bytesOut = sendError(ctx.res!, rejection, ctx.requestId);
  }

  private recordRejection(ctx: RequestContext, rejection: Rejection): void {
    ctx.errorCode = rejection.code;
    ctx.reason = rejection.reason ?? null;
    ctx.status = ERRORS[rejection.code].status;
  }
}
