/**
 * Stage 7 — forward, for WebSocket upgrades: http-proxy-3's `ws()` pass, which
 * is where that library is strong. By the time we get here the upgrade request
 * has passed route, sanitize, authenticate (… limit) exactly like an HTTP
 * request; `req.headers` is replaced by the sanitized, identity-injected set
 * so the library forwards nothing else. The open socket counts as in flight
 * (drain waits for it, up to the grace period) until either side closes it;
 * then the other side is ended and, after a short grace, destroyed.
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

/**
 * How long one side of a closed tunnel may take to finish closing (flush, FIN)
 * before it is destroyed: http-proxy-3 only ends the upstream side, and an
 * upstream that never answers that FIN would hold the socket open for good.
 */
const TUNNEL_CLOSE_GRACE_MS = 1_000;

const kPeer = Symbol('tenantgate.tunnelPeer');
type TunnelSide = Duplex & { [kPeer]?: Duplex };

/** Either side of a tunnel closed: WebSocket has no half-close, so the other side goes too. */
function onTunnelSideClose(this: TunnelSide): void {
  const peer = this[kPeer]!;
  if (peer.destroyed) return;
  peer.end();
  setTimeout(destroySide, TUNNEL_CLOSE_GRACE_MS, peer).unref();
}

function destroySide(side: Duplex): void {
  side.destroy();
}

/** Joins the two sockets of an open tunnel so that each one's close ends the other. */
function linkTunnel(client: Duplex, upstream: Socket): void {
  (client as TunnelSide)[kPeer] = upstream;
  (upstream as TunnelSide)[kPeer] = client;
  // The upstream's FIN ends our side as well (no half-open tunnel), and then 'close' follows.
  upstream.allowHalfOpen = false;
  client.once('close', onTunnelSideClose);
  upstream.once('close', onTunnelSideClose);
  // A side that already went away before the 101 arrived.
  if (client.destroyed) onTunnelSideClose.call(client as TunnelSide);
}

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
    if (ctx.trace !== null) ctx.trace.endUpstream(ctx); // the client span covers the handshake, not the tunnel
    upstreamSocket.setTimeout(0);
    linkTunnel(ctx.socket!, upstreamSocket);
  });
});

export function forwardWebSocket(ctx: RequestContext, head: Buffer, state: ProxyState, done: () => void): void {
  const req = ctx.req as UpgradeRequest;
  const socket = ctx.socket!;
  const route = ctx.route!;
  const path = upstreamPath(route, ctx.path, ctx.search);
  if (ctx.trace !== null) ctx.trace.startUpstream(ctx, path);
  const headers: Record<string, string> = {};
  const h = ctx.upstreamHeaders;
  for (let i = 0; i < h.length; i += 2) {
    const name = h[i]!.toLowerCase();
    headers[name] = name in headers ? `${headers[name]}, ${h[i + 1]}` : h[i + 1]!;
  }
  headers.connection = 'Upgrade';
  headers.upgrade = 'websocket';
  req.headers = headers;
  req.url = path;
  req.tgContext = ctx;

  // WebSocket has no half-close: when the client's side ends, the whole tunnel ends
  // (http.Server sockets default to half-open, which would keep it in flight forever).
  (socket as Socket).allowHalfOpen = false;
  state.tunnels.add(socket);
  socket.once('close', () => {
    state.tunnels.delete(socket);
    done();
  });
  // A route with upstream TLS settings upgrades through an agent carrying them (src/upstream/pools.ts).
  const agent = route.tls === null ? undefined : state.pools.for(route).tlsAgent();
  proxy.ws(req, socket as Socket, head, { target: route.upstream.origin, agent }, (err: Error, _req: IncomingMessage, target: unknown) => {
    if (ctx.trace !== null) ctx.trace.endUpstream(ctx, err);
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
