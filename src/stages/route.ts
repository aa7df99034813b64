/**
 * Stage 1 — route. Matches Host + normalised path (+ method) against a table
 * built once per config load:
 *
 * - Host: exact hosts first, then `*.suffix` wildcards (longest suffix first),
 *   then routes with no host — each tier only when the one before has no
 *   prefix matching the path. Case-insensitive, port ignored. An absolute-form
 *   target's authority replaces the Host header (and is what the upstream gets).
 *   A Host that is not `name[:port]` or `[v6][:port]` → 400.
 * - Within those, the longest path prefix that matches on a segment boundary.
 * - The longest matching prefix decides: if none of its routes allows the
 *   method, the answer is 405 — a request never falls through to a shorter,
 *   perhaps less protected, prefix. Routes may share host + prefix when their
 *   methods differ. A route listing GET also takes HEAD.
 * - Matching reads the path as a servlet container dispatches it: each
 *   segment without its `;` parameters (`/orders/secret;x` is `/orders/secret`),
 *   so a parameter never moves a request to a less protected route. The
 *   parameters are still forwarded. With `routing.caseInsensitive`, prefixes
 *   match in any ASCII case, for upstreams that fold case (IIS, ASP.NET).
 * - A WebSocket upgrade to a route with `websocket: false` is refused here,
 *   before any stage could take a concurrency slot for it.
 */
import type { IncomingMessage } from 'node:http';
import { reject, type Rejection } from '../errors.js';
import type { RequestContext } from '../context.js';
import type { CompiledRoute, PrefixGroup, RouteTable } from '../domain.js';
import { normalizeTarget } from './normalize-path.js';


/** Host header → bare lower-case host name (port and IPv6 brackets handled). */
export function hostOf(header: string | undefined): string {
  if (!header) return '';
  let end = header.length;
  if (header.charCodeAt(0) === 91 /* [ */) end = header.indexOf(']') + 1 || end;
  else {
    const colon = header.indexOf(':');
    if (colon !== -1) end = colon;
  }
  const host = header.slice(0, end).toLowerCase();
  // `example.com.` is the same host as `example.com` (a fully qualified name): one spelling for routing and tenant binding.
  return host.endsWith('.') ? host.slice(0, -1) : host;
}

function prefixMatches(prefix: string, path: string): boolean {
  return prefix === '' || (path.startsWith(prefix) && (path.length === prefix.length || path.charCodeAt(prefix.length) === 47));
}

function matchGroups(groups: readonly PrefixGroup[], path: string): PrefixGroup | undefined {
  for (const g of groups) if (prefixMatches(g.prefix, path)) return g;
  return undefined;
}

/** The longest matching prefix group, host tiers in order: exact, wildcards (longest suffix first), any host. */
function findGroup(table: RouteTable, host: string, path: string): PrefixGroup | undefined {
  const exact = table.exact.get(host);
  const hit = exact && matchGroups(exact, path);
  if (hit) return hit;
  for (const w of table.wildcards) {
    if (host.endsWith(w.suffix) && host.length > w.suffix.length) {
      const g = matchGroups(w.groups, path);
      if (g) return g;
    }
  }
  return matchGroups(table.anyHost, path);
}

const BAD_TARGET = reject('bad_request', 'bad_path', 'The request path is malformed or ambiguous.');
const NO_HOST = reject('bad_request', 'missing_host', 'HTTP/1.1 requests need a Host header.');
const BAD_HOST = reject('bad_request', 'bad_host', 'The Host header is malformed.');
/** `name[:port]` or `[ipv6][:port]`: nothing that could smuggle a path, userinfo or query into X-Forwarded-Host. */
const HOST_VALUE = /^(?:[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*\.?|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;
const NO_ROUTE = reject('no_route');
const BAD_VERSION = reject('bad_request', 'http_version', 'Only HTTP/1.0 and HTTP/1.1 requests are supported.');
const WEBSOCKET_DISABLED = reject('bad_request', 'websocket_disabled', 'This route does not accept WebSocket upgrades.');

/** The route stage: fills ctx.route, ctx.host, ctx.path and ctx.search, or rejects. */
export function route(ctx: RequestContext): Rejection | undefined {
  const req = ctx.req;
  // HTTP/1.x and HTTP/2 streams only: a version-less (0.9) line has no headers and expects no response head, and an
  // `HTTP/2.0` request line on HTTP/1.1 is no HTTP/2 (that arrives as h2 frames), so its Upgrade would never be honoured.
  let authority: string | undefined;
  if (req.httpVersionMajor !== 1) {
    if (req.httpVersionMajor !== 2 || !isHttp2(req)) return BAD_VERSION;
    const h2 = http2Authority(req);
    if (typeof h2 !== 'string' && h2 !== undefined) return h2;
    authority = h2;
  }
  const target = normalizeTarget(req.url ?? '');
  if (target === null) return BAD_TARGET;
  const hostHeader = target.authority ?? authority ?? req.headers.host;
  if (hostHeader === undefined) {
    if (req.httpVersionMinor === 1) return NO_HOST;
  } else if (!HOST_VALUE.test(hostHeader)) return BAD_HOST;
  ctx.hostHeader = hostHeader ?? null;
  ctx.host = hostOf(hostHeader);
  ctx.path = target.path;
  ctx.search = target.search;

  const table = ctx.config.routes;
  const group = findGroup(table, ctx.host, dispatchPath(target.path, table.caseInsensitive));
  if (group === undefined) return NO_ROUTE;
  const method = req.method!;
  for (const r of group.routes) {
    if (r.methods === null || r.methods.has(method)) {
      if (ctx.upgrade && !r.websocket) return WEBSOCKET_DISABLED;
      ctx.route = r;
      return undefined;
    }
  }
  return { code: 'method_not_allowed', headers: { allow: group.allow } };
}

const AUTHORITY_MISMATCH = reject('bad_request', 'authority_mismatch', 'The Host header names another host than :authority.');

/** A request that arrived as an HTTP/2 stream (an `HTTP/2.0` request line on HTTP/1.1 has no stream). */
function isHttp2(req: IncomingMessage): boolean {
  return (req as IncomingMessage & { stream?: unknown }).stream !== undefined;
}

/**
 * The host of an HTTP/2 request: `:authority`, else a Host header. Both, and
 * different: refused (RFC 9113 §8.3.1 calls it malformed), since routing and
 * the upstream could otherwise each believe another host.
 */
function http2Authority(req: IncomingMessage): string | undefined | Rejection {
  const authority = req.headers[':authority'] as string | undefined;
  const host = req.headers.host;
  if (authority === undefined) return host;
  if (host !== undefined && host.toLowerCase() !== authority.toLowerCase()) return AUTHORITY_MISMATCH;
  return authority;
}

const PATH_PARAMETERS = /;[^/]*/g;
const ASCII_UPPER = /[A-Z]+/g;

/** The path as the upstream will dispatch it: `;` parameters dropped, ASCII case folded when the table says so. */
export function dispatchPath(path: string, caseInsensitive: boolean): string {
  const p = path.includes(';') ? path.replace(PATH_PARAMETERS, '') : path;
  return caseInsensitive ? p.replace(ASCII_UPPER, (s) => s.toLowerCase()) : p;
}

/** The path to send upstream: base path of the upstream URL + (prefix-stripped) normalised path + query. */
export function upstreamPath(r: CompiledRoute, path: string, search: string): string {
  let p = r.stripPrefix ? stripPrefix(path, r.prefix) : path;
  if (p === '' || p.charCodeAt(0) !== 47) p = `/${p}`;
  return `${r.upstream.basePath}${p}${search}`;
}

/** Drops the matched prefix: by length when the path spells it as written, else by its number of segments (parameters, case). */
function stripPrefix(path: string, prefix: string): string {
  if (path.startsWith(prefix) && (path.length === prefix.length || path.charCodeAt(prefix.length) === 47)) return path.slice(prefix.length);
  let at = 0;
  for (let segments = prefix.split('/').length - 1; segments > 0 && at !== -1; segments--) at = path.indexOf('/', at + 1);
  return at === -1 ? '' : path.slice(at);
}
