/**
 * The admin API (SPEC §9) on the admin port, under `/admin/`. Off — every
 * `/admin/…` path answers 404 as if it did not exist — unless `admin.token`
 * is set; then every call needs `Authorization: Bearer <token>` (compared in
 * constant time), else 401 and nothing happens. JSON in and out, SPEC §4
 * errors, bodies up to 64 KiB (413 above), strict schemas (an unknown field
 * is a 400 naming it). The route table below is the whole API; the OpenAPI
 * document (./openapi.ts) is checked against it by a test.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { reject, sendError } from '../errors.js';
import type { ProxyState } from '../state.js';
import type { AdminContext, Reply } from './context.js';
import { actorOf, AdminError, readJson, tokenMatches } from './http.js';
import { createKey, getKey, listKeys, revokeKey, rotateKey } from './keys.js';
import { OPENAPI } from './openapi.js';
import { confirmRegistry } from './registry.js';
import { createTenant, getTenant, listTenants, setStatus, updateTenant } from './tenants.js';
import { tenantUsage } from './usage.js';

type Handler = (ctx: AdminContext) => Promise<Reply>;

export interface AdminRoute {
  readonly method: 'GET' | 'POST' | 'PATCH' | 'DELETE';
  /** OpenAPI-style template, e.g. `/admin/tenants/{id}`. */
  readonly path: string;
  readonly handler: Handler;
}

export const ADMIN_ROUTES: readonly AdminRoute[] = [
  { method: 'POST', path: '/admin/tenants', handler: createTenant },
  { method: 'GET', path: '/admin/tenants', handler: listTenants },
  { method: 'GET', path: '/admin/tenants/{id}', handler: getTenant },
  { method: 'PATCH', path: '/admin/tenants/{id}', handler: updateTenant },
  { method: 'DELETE', path: '/admin/tenants/{id}', handler: setStatus('deleted') },
  { method: 'POST', path: '/admin/tenants/{id}/suspend', handler: setStatus('suspended') },
  { method: 'POST', path: '/admin/tenants/{id}/activate', handler: setStatus('active') },
  { method: 'POST', path: '/admin/tenants/{id}/keys', handler: createKey },
  { method: 'GET', path: '/admin/tenants/{id}/keys', handler: listKeys },
  { method: 'GET', path: '/admin/tenants/{id}/usage', handler: tenantUsage },
  { method: 'GET', path: '/admin/keys/{keyId}', handler: getKey },
  { method: 'POST', path: '/admin/keys/{keyId}/rotate', handler: rotateKey },
  { method: 'DELETE', path: '/admin/keys/{keyId}', handler: revokeKey },
  { method: 'POST', path: '/admin/registry/confirm', handler: confirmRegistry },
  { method: 'GET', path: '/admin/openapi.json', handler: async () => ({ status: 200, body: OPENAPI }) },
];

interface Compiled {
  readonly template: string;
  readonly pattern: RegExp;
  readonly names: string[];
  readonly routes: Map<string, Handler>;
}

/** One entry per path template, with its methods. */
const TABLE: Compiled[] = [];
for (const r of ADMIN_ROUTES) {
  const names: string[] = [];
  const source = r.path.replace(/\{(\w+)\}/g, (_m, name: string) => {
    names.push(name);
    return '([^/]+)';
  });
  let entry = TABLE.find((e) => e.template === r.path);
  if (entry === undefined) TABLE.push((entry = { template: r.path, pattern: new RegExp(`^${source}$`), names, routes: new Map() }));
  entry.routes.set(r.method, r.handler);
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

/** Handles `/admin/…`; answers every such request (404 when the API is off). */
export function handleAdminApi(state: ProxyState, req: IncomingMessage, res: ServerResponse, url: URL): void {
  const requestId = randomUUID();
  const fail = (err: AdminError) => sendError(res, { code: err.code, message: err.message, headers: err.headers }, requestId);
  const token = state.config.source.admin.token;
  const directory = state.directory;
  if (token === null || directory === null) {
    sendError(res, reject('no_route', undefined, 'Unknown admin endpoint.'), requestId);
    return;
  }
  if (!tokenMatches(req.headers.authorization, token)) {
    fail(new AdminError('unauthenticated', 'A valid admin token is required (Authorization: Bearer <token>).'));
    return;
  }
  let params: Record<string, string> | null = null;
  let entry: Compiled | undefined;
  for (const e of TABLE) {
    const m = e.pattern.exec(url.pathname);
    if (m === null) continue;
    try {
      params = Object.fromEntries(e.names.map((n, i) => [n, decodeURIComponent(m[i + 1]!)]));
    } catch {
      fail(new AdminError('bad_request', 'The path is not valid.'));
      return;
    }
    entry = e;
    break;
  }
  if (entry === undefined || params === null) {
    fail(new AdminError('no_route', 'Unknown admin endpoint.'));
    return;
  }
  const handler = entry.routes.get(req.method ?? '');
  if (handler === undefined) {
    fail(new AdminError('method_not_allowed', `Use ${[...entry.routes.keys()].join(', ')} here.`, { allow: [...entry.routes.keys()].join(', ') }));
    return;
  }
  const actor = actorOf(req);
  readJson(req)
    .then((body) => handler({ state, directory, req, params: params!, query: url.searchParams, body, actor }))
    .then(
      (reply) => json(res, reply.status, reply.body),
      (err: unknown) => {
        if (err instanceof AdminError) {
          fail(err);
          return;
        }
        // A store that cannot answer is 503; anything else is a bug (logged, never shown).
        const message = (err as Error)?.message ?? String(err);
        if (/timed? ?out|ECONNREFUSED|Connection is closed|Stream isn't writeable|enableOfflineQueue/i.test(message)) {
          fail(new AdminError('store_unavailable', 'The registry store is unavailable.'));
          return;
        }
        state.logger.error({ err, requestId }, 'admin API call failed');
        fail(new AdminError('internal_error', 'The admin API failed to handle the request.'));
      },
    );
}
