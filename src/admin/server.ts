/**
 * The admin port (SPEC §8): `/healthz`, `/readyz`, `/metrics`, and the admin
 * API under `/admin/` (SPEC §9, ./api.ts; off unless `admin.token` or `admin.tokens` is set).
 * Bound to 127.0.0.1 by default; it never shares a port with client traffic.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { reject, sendError } from '../errors.js';
import type { ProxyState } from '../state.js';
import { randomUUID } from 'node:crypto';
import { handleAdminApi } from './api.js';
import { OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE, openMetrics, prefersOpenMetrics } from '../observability/exposition.js';

export interface Readiness {
  /** Null when ready, else why not (shown in the /readyz body). */
  notReadyReason(): string | null;
  /** Problems the proxy serves through (from last known state), listed in /readyz's body without failing it. */
  degraded?(): string[];
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

/** `/metrics`: OpenMetrics when the scrape prefers it (Prometheus asks for it first), else the text format. */
function serveMetrics(state: ProxyState, req: IncomingMessage, res: ServerResponse): void {
  if (!state.metrics.enabled) {
    sendError(res, reject('no_route', undefined, 'Metrics are off (metrics.enabled: false).'), randomUUID());
    return;
  }
  const om = prefersOpenMetrics(req.headers.accept);
  const registry = state.metrics.registry;
  (om ? openMetrics(registry) : registry.metrics()).then(
    (text) => {
      res.writeHead(200, { 'content-type': om ? OPENMETRICS_CONTENT_TYPE : TEXT_CONTENT_TYPE, vary: 'accept' });
      res.end(text);
    },
    () => sendError(res, reject('bad_request', 'metrics_failed', 'Metrics could not be collected.'), randomUUID()),
  );
}

export function createAdminServer(state: ProxyState, readiness: Readiness): Server {
  return createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0]!;
    if (path === '/admin' || path.startsWith('/admin/')) {
      let url: URL;
      try {
        url = new URL(req.url ?? '/', 'http://admin');
      } catch {
        sendError(res, reject('bad_request', undefined, 'The request target is not valid.'), randomUUID());
        return;
      }
      handleAdminApi(state, req, res, url);
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      sendError(res, { code: 'method_not_allowed', headers: { allow: 'GET, HEAD' } }, randomUUID());
      return;
    }
    switch (path) {
      case '/healthz':
        json(res, 200, { status: 'ok' });
        return;
      case '/readyz': {
        const reason = readiness.notReadyReason();
        const degraded = readiness.degraded?.() ?? [];
        const detail = degraded.length > 0 ? { degraded } : {};
        json(res, reason === null ? 200 : 503, reason === null ? { status: 'ready', ...detail } : { status: 'not_ready', reason, ...detail });
        return;
      }
      case '/.well-known/jwks.json': {
        // The public key upstreams verify X-Tenant-Assertion with (EdDSA only; HS256 has nothing to publish).
        const jwks = state.config.auth.assertion?.jwks;
        if (jwks) json(res, 200, jwks);
        else sendError(res, reject('no_route', undefined, 'No assertion key is published (identity.assertion.privateKeyFile is not set).'), randomUUID());
        return;
      }
      case '/metrics':
        serveMetrics(state, req, res);
        return;
      default:
        sendError(res, reject('no_route', undefined, 'Unknown admin endpoint.'), randomUUID());
    }
  });
}
