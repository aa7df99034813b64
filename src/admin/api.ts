/**
 * The admin API (SPEC §9) on the admin port, under `/admin/`. Off — every
 * `/admin/…` path answers 404 as if it did not exist — unless `admin.token`
 * or `admin.tokens` is set; then every call needs `Authorization: Bearer
 * <token>` (./tokens.ts, constant time), else 401 and nothing happens, and a
 * token without the route's scope gets 403 `forbidden`. JSON in and out,
 * SPEC §4 errors, bodies up to 64 KiB (413 above), strict schemas (an unknown
 * field is a 400 naming it). The route table below is the whole API, each
 * route with the scope it needs; the OpenAPI document (./openapi.ts) is
 * checked against it by a test.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { reject, sendError } from '../errors.js';
import { RegistryUnavailableError } from '../registry/types.js';
import type { ProxyState } from '../state.js';
import type { AdminContext, Reply } from './context.js';
import { actorOf, AdminError, readJson } from './http.js';
import { createKey, getKey, listKeys, revokeKey, rotateKey } from './keys.js';
import { OPENAPI, withScopes } from './openapi.js';
import { confirmRegistry } from './registry.js';
import { createTenant, getTenant, listTenants, setStatus, updateTenant } from './tenants.js';
import { adminApiEnabled, identifyAdmin, type AdminScope } from './tokens.js';
import { tenantUsage } from './usage.js';

type Handler = (ctx: AdminContext) => Promise<Reply>;

export interface AdminRoute {
  readonly method: 'GET' | 'POST' | 'PATCH' | 'DELETE';
  /** OpenAPI-style template, e.g. `/admin/tenants/{id}`. */
  readonly path: string;
  /** The scope a token needs here; null: any valid admin token (the API's own description). */
  readonly scope: AdminScope | null;
  readonly handler: Handler;
}

export const ADMIN_ROUTES: readonly AdminRoute[] = [
  { method: 'POST', path: '/admin/tenants', scope: 'tenants:write', handler: createTenant },
  { method: 'GET', path: '/admin/tenants', scope: 'tenants:read', handler: listTenants },
  { method: 'GET', path: '/admin/tenants/{id}', scope: 'tenants:read', handler: getTenant },
  { method: 'PATCH', path: '/admin/tenants/{id}', scope: 'tenants:write', handler: updateTenant },
  { method: 'DELETE', path: '/admin/tenants/{id}', scope: 'tenants:write', handler: setStatus('deleted') },
  { method: 'POST', path: '/admin/tenants/{id}/suspend', scope: 'tenants:write', handler: setStatus('suspended') },
  { method: 'POST', path: '/admin/tenants/{id}/activate', scope: 'tenants:write', handler: setStatus('active') },
  { method: 'POST', path: '/admin/tenants/{id}/keys', scope: 'keys:write', handler: createKey },
  { method: 'GET', path: '/admin/tenants/{id}/keys', scope: 'keys:read', handler: listKeys },
  { method: 'GET', path: '/admin/tenants/{id}/usage', scope: 'usage:read', handler: tenantUsage },
  { method: 'GET', path: '/admin/keys/{keyId}', scope: 'keys:read', handler: getKey },
  { method: 'POST', path: '/admin/keys/{keyId}/rotate', scope: 'keys:write', handler: rotateKey },
  { method: 'DELETE', path: '/admin/keys/{keyId}', scope: 'keys:write', handler: revokeKey },
  { method: 'POST', path: '/admin/registry/confirm', scope: 'tenants:write', handler: confirmRegistry },
  { method: 'GET', path: '/admin/openapi.json', scope: null, handler: async () => ({ status: 200, body: DOCUMENT }) },
];

/** The served OpenAPI document: ./openapi.ts plus each operation's scope, taken from the table above. */
const DOCUMENT = withScopes(OPENAPI, ADMIN_ROUTES);

interface Compiled {
  readonly template: string;
  readonly pattern: RegExp;
  readonly names: string[];
  readonly routes: Map<string, AdminRoute>;
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
  entry.routes.set(r.method, r);
}

/** For a call to a path the API does not have: every endpoint it has, from the table above. */
const ENDPOINTS = TABLE.map((e) => `${[...e.routes.keys()].join('|')} ${e.template}`).join(', ');

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

/** Handles `/admin/…`; answers every such request (404 when the API is off). */
export function handleAdminApi(state: ProxyState, req: IncomingMessage, res: ServerResponse, url: URL): void {
  const requestId = randomUUID();
  const fail = (err: AdminError) => sendError(res, { code: err.code, message: err.message, headers: err.headers }, requestId);
  // The config of this moment: a reload adds or removes tokens without a restart.
  const settings = state.config.source.admin;
  const directory = state.directory;
  if (!adminApiEnabled(settings) || directory === null) {
    sendError(res, reject('no_route', undefined, 'Unknown admin endpoint.'), requestId);
    return;
  }
  const caller = identifyAdmin(req.headers.authorization, settings, directory.pepper);
  if (caller === null) {
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
    fail(new AdminError('no_route', `Unknown admin endpoint. The endpoints are: ${ENDPOINTS}.`));
    return;
  }
  const route = entry.routes.get(req.method ?? '');
  if (route === undefined) {
    fail(new AdminError('method_not_allowed', `Use ${[...entry.routes.keys()].join(', ')} here.`, { allow: [...entry.routes.keys()].join(', ') }));
    return;
  }
  if (route.scope !== null && !caller.scopes.includes(route.scope)) {
    fail(new AdminError('forbidden', `Admin token "${caller.id}" lacks the scope ${route.scope}, which ${route.method} ${route.path} needs.`));
    return;
  }
  const actor = actorOf(req, caller.id);
  readJson(req)
    .then((body) => route.handler({ state, directory, req, params: params!, query: url.searchParams, body, actor }))
    .then(
      (reply) => json(res, reply.status, reply.body),
      (err: unknown) => {
        if (err instanceof AdminError) {
          fail(err);
          return;
        }
        // A store that cannot answer is 503; anything else is a bug (logged, never shown).
        const message = (err as Error)?.message ?? String(err);
        if (err instanceof RegistryUnavailableError || /timed? ?out|ECONNREFUSED|Connection is closed|Stream isn't writeable|enableOfflineQueue/i.test(message)) {
          fail(new AdminError('store_unavailable', 'The registry store is unavailable.'));
          return;
        }
        state.logger.error({ err, requestId }, 'admin API call failed');
        fail(new AdminError('internal_error', 'The admin API failed to handle the request.'));
      },
    );
}
