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
 */
import type { RouteConfig } from '../config/schema.js';
import { reject, type Rejection } from '../errors.js';
import type { RequestContext } from '../context.js';
import { normalizeTarget } from './normalize-path.js';

export interface CompiledRoute {
  readonly name: string;
  readonly host: string | null;
  /** Prefix without a trailing slash; '' for the root. */
  readonly prefix: string;
  readonly methods: ReadonlySet<string> | null;
  readonly upstream: { readonly origin: string; readonly basePath: string; readonly host: string };
  readonly auth: { readonly none: boolean; readonly apiKey: boolean; readonly jwt: boolean };
  /** Permission required per method (`*` key: any method); empty when the route requires none. */
  readonly permission: ReadonlyMap<string, string>;
  readonly cost: number;
  readonly timeoutMs: number;
  readonly forwardCredentials: boolean;
  readonly stripPrefix: boolean;
  readonly preserveHost: boolean;
  readonly maxBodyBytes: number | null;
  readonly websocket: boolean;
}

interface PrefixGroup {
  readonly prefix: string;
  readonly routes: readonly CompiledRoute[];
  /** Value of the Allow header for a 405. */
  readonly allow: string;
}

export interface RouteTable {
  readonly exact: ReadonlyMap<string, readonly PrefixGroup[]>;
  readonly wildcards: readonly { readonly suffix: string; readonly groups: readonly PrefixGroup[] }[];
  readonly anyHost: readonly PrefixGroup[];
}

export function compileRoute(r: RouteConfig, maxBodyBytes: number | null): CompiledRoute {
  const upstream = new URL(r.upstream);
  const methods = r.match.methods ? new Set(r.match.methods) : null;
  if (methods?.has('GET')) methods.add('HEAD');
  const permission = new Map<string, string>();
  if (typeof r.permission === 'string') permission.set('*', r.permission);
  else if (r.permission) {
    for (const [method, perm] of Object.entries(r.permission)) permission.set(method, perm);
    if (permission.has('GET') && !permission.has('HEAD')) permission.set('HEAD', permission.get('GET')!);
  }
  return Object.freeze({
    name: r.name,
    host: r.match.host?.toLowerCase() ?? null,
    prefix: r.match.pathPrefix.replace(/\/+$/, ''),
    methods,
    upstream: { origin: upstream.origin, basePath: upstream.pathname.replace(/\/+$/, ''), host: upstream.host },
    auth: { none: r.auth.includes('none'), apiKey: r.auth.includes('apiKey'), jwt: r.auth.includes('jwt') },
    permission,
    cost: r.cost,
    timeoutMs: r.timeoutMs,
    forwardCredentials: r.forwardCredentials,
    stripPrefix: r.stripPrefix,
    preserveHost: r.preserveHost,
    maxBodyBytes: r.maxBodyBytes === undefined ? maxBodyBytes : r.maxBodyBytes,
    websocket: r.websocket,
  });
}

export function buildRouteTable(routes: readonly CompiledRoute[]): RouteTable {
  const byHost = new Map<string | null, CompiledRoute[]>();
  for (const r of routes) {
    const list = byHost.get(r.host) ?? [];
    list.push(r);
    byHost.set(r.host, list);
  }
  const exact = new Map<string, PrefixGroup[]>();
  const wildcards: { suffix: string; groups: PrefixGroup[] }[] = [];
  let anyHost: PrefixGroup[] = [];
  for (const [host, list] of byHost) {
    const groups = groupByPrefix(list);
    if (host === null) anyHost = groups;
    else if (host.startsWith('*.')) wildcards.push({ suffix: host.slice(1), groups });
    else exact.set(host, groups);
  }
  wildcards.sort((a, b) => b.suffix.length - a.suffix.length);
  return { exact, wildcards, anyHost };
}

function groupByPrefix(routes: readonly CompiledRoute[]): PrefixGroup[] {
  const byPrefix = new Map<string, CompiledRoute[]>();
  for (const r of routes) byPrefix.set(r.prefix, [...(byPrefix.get(r.prefix) ?? []), r]);
  return [...byPrefix]
    .map(([prefix, rs]) => {
      const allow = rs.some((r) => r.methods === null)
        ? 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS'
        : [...new Set(rs.flatMap((r) => [...r.methods!]))].join(', ');
      return { prefix, routes: rs, allow };
    })
    .sort((a, b) => b.prefix.length - a.prefix.length);
}

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

/** The route stage: fills ctx.route, ctx.host, ctx.path and ctx.search, or rejects. */
export function route(ctx: RequestContext): Rejection | undefined {
  const target = normalizeTarget(ctx.req.url ?? '');
  if (target === null) return BAD_TARGET;
  const req = ctx.req;
  const hostHeader = target.authority ?? req.headers.host;
  if (hostHeader === undefined) {
    if (req.httpVersionMinor === 1) return NO_HOST;
  } else if (!HOST_VALUE.test(hostHeader)) return BAD_HOST;
  ctx.hostHeader = hostHeader ?? null;
  ctx.host = hostOf(hostHeader);
  ctx.path = target.path;
  ctx.search = target.search;

  const group = findGroup(ctx.config.routes, ctx.host, target.path);
  if (group === undefined) return NO_ROUTE;
  const method = req.method!;
  for (const r of group.routes) {
    if (r.methods === null || r.methods.has(method)) {
      ctx.route = r;
      return undefined;
    }
  }
  return { code: 'method_not_allowed', headers: { allow: group.allow } };
}

/** The path to send upstream: base path of the upstream URL + (prefix-stripped) normalised path + query. */
export function upstreamPath(r: CompiledRoute, path: string, search: string): string {
  let p = r.stripPrefix ? path.slice(r.prefix.length) : path;
  if (p === '' || p.charCodeAt(0) !== 47) p = `/${p}`;
  return `${r.upstream.basePath}${p}${search}`;
}
