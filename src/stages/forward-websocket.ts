/**
 * Stage 7 — forward, for WebSocket upgrades: http-proxy-3's `ws()` pass, which
 * is where that library is strong. By the time we get here the upgrade request
 * has passed route, sanitize, authenticate (… limit) exactly like an HTTP
 * request; `req.headers` is replaced by the sanitized, identity-injected set
 * so the library forwards nothing else. The open socket counts as in flight
 * (drain waits for it, up to the grace period) until either side closes it.
 */
import type { ClientRequest, IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { createProxyServer } from 'http-proxy-3';
import type { RequestContext } from '../context.js';
import { ERRORS, writeRawError } from '../errors.js';
import type { ProxyState } from '../state.js';
import { upstreamRejection } from './forward.js';
import { upstreamPath } from './route.js';

type UpgradeRequest = IncomingMessage & { tgContext?: RequestContext };

const proxy = createProxyServer({ ws: true, xfwd: false, changeOrigin: false, prependPath: false });

// Bound the wait for the upstream's 101; once upgraded, the tunnel has no idle timeout.
proxy.on('proxyReqWs', (proxyReq: ClientRequest, req: UpgradeRequest) => {
  const ctx = req.tgContext!;
  proxyReq.setTimeout(ctx.route!.timeoutMs, () => {
    proxyReq.destroy(Object.assign(new Error('upstream did not answer the upgrade in time'), { code: 'UND_ERR_HEADERS_TIMEOUT' }));
  });
  // Registered before http-proxy-3's own listener, so the 101 it writes carries our request id.
  proxyReq.on('upgrade', (res: IncomingMessage, upstreamSocket: Socket) => {
    res.headers[ctx.config.requestIdHeader] = ctx.requestId;
    ctx.status = 101;
    ctx.upstreamHeadersAt = performance.now();
    upstreamSocket.setTimeout(0);
  });
});

export function forwardWebSocket(ctx: RequestContext, head: Buffer, state: ProxyState, done: () => void): void {
  const req = ctx.req as UpgradeRequest;
  const socket = ctx.socket!;
  const route = ctx.route!;
  const headers: Record<string, string> = {};
  const h = ctx.upstreamHeaders;
  for (let i = 0; i < h.length; i += 2) {
    const name = h[i]!.toLowerCase();
    headers[name] = name in headers ? `${headers[name]}, ${h[i + 1]}` : h[i + 1]!;
  }
  headers.connection = 'Upgrade';
  headers.upgrade = 'websocket';
  req.headers = headers;
  req.url = upstreamPath(route, ctx.path, ctx.search);
  req.tgContext = ctx;

  // WebSocket has no half-close: when the client's side ends, the whole tunnel ends
  // (http.Server sockets default to half-open, which would keep it in flight forever).
  (socket as Socket).allowHalfOpen = false;
  state.tunnels.add(socket);
  socket.once('close', () => {
    state.tunnels.delete(socket);
    done();
  });
  proxy.ws(req, socket as Socket, head, { target: route.upstream.origin }, (err: Error, _req: IncomingMessage, target: unknown) => {
    const rejection = upstreamRejection(err);
    ctx.reason = rejection.reason ?? null;
    if (ctx.status === 101) {
      (target as Duplex).destroy();
      return;
    }
    ctx.errorCode = rejection.code;
    ctx.status = ERRORS[rejection.code].status;
    writeRawError(target as Duplex, rejection, ctx.requestId);
    state.logger.debug({ requestId: ctx.requestId, reason: ctx.reason }, 'websocket upstream failed');
  });
}
