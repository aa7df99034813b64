/**
 * The route table, compiled once per config: each route's settings resolved,
 * and routes grouped by host tier and path prefix (longest first) for the
 * route stage (src/stages/route.ts).
 */
import type { CompiledRoute, PrefixGroup, RouteTable, Tenancy, TenantIn, UpstreamTlsOptions } from '../domain.js';
import type { Config, RouteConfig } from './schema.js';

/** A request waits this long for an upstream connection, unless the route's timeoutMs is shorter. */
const DEFAULT_QUEUE_TIMEOUT_MS = 5_000;

export function compileRoute(r: RouteConfig, maxBodyBytes: number | null): CompiledRoute {
  // A usage route answers itself (src/stages/usage-route.ts): no origin to reach.
  const upstream = r.upstream === undefined ? { origin: '', pathname: '', host: '' } : new URL(r.upstream);
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
    // A usage route charges nothing, so its usage events say so.
    cost: r.usage ? 0 : r.cost,
    timeoutMs: r.timeoutMs,
    idleTimeoutMs: r.idleTimeoutMs ?? r.timeoutMs,
    queueTimeoutMs: r.queueTimeoutMs ?? Math.min(DEFAULT_QUEUE_TIMEOUT_MS, r.timeoutMs),
    forwardCredentials: r.forwardCredentials,
    stripPrefix: r.stripPrefix,
    preserveHost: r.preserveHost,
    maxBodyBytes: r.maxBodyBytes === undefined ? maxBodyBytes : r.maxBodyBytes,
    websocket: r.websocket && !r.usage,
    usage: r.usage,
    tenantIn: r.tenantIn === undefined ? null : compileTenantIn(r.tenantIn),
    protocol: r.protocol,
    // Filled by withUpstreamTls once the files are read (config load).
    tls: null,
    upstreamKey: upstreamKey(upstream.origin, r.protocol, null),
  });
}

/** The pool a route uses: its origin alone for plain HTTP (as before TLS settings existed), else qualified. */
export function upstreamKey(origin: string, protocol: CompiledRoute['protocol'], tls: UpstreamTlsOptions | null): string {
  if (protocol === 'http' && tls === null) return origin;
  return `${protocol} ${origin}${tls === null ? '' : ` tls:${tls.fingerprint}`}`;
}

/** The route with its TLS files read: a new frozen route, keyed to a pool of its own TLS settings. */
export function withUpstreamTls(route: CompiledRoute, tls: UpstreamTlsOptions): CompiledRoute {
  return Object.freeze({ ...route, tls, upstreamKey: upstreamKey(route.upstream.origin, route.protocol, tls) });
}

/** `tenantIn: { path: "/api/tenants/{tenant}", query: tenant_id }` → segments and the `{tenant}` index. */
export function compileTenantIn(t: NonNullable<RouteConfig['tenantIn']>): TenantIn {
  let path: TenantIn['path'] = null;
  if (t.path !== undefined) {
    const segments = Object.freeze(t.path.slice(1).split('/'));
    path = Object.freeze({ segments, segment: segments.indexOf('{tenant}') });
  }
  return Object.freeze({ path, query: t.query ?? null });
}

/** `tenancy:` → selectors, the host pattern split around its `{tenant}` label, the header's sanitize spelling. */
export function compileTenancy(t: NonNullable<Config['tenancy']>): Tenancy {
  let hostPattern: Tenancy['hostPattern'] = null;
  if (t.hostPattern !== undefined) {
    const at = t.hostPattern.indexOf('{tenant}');
    hostPattern = Object.freeze({ prefix: t.hostPattern.slice(0, at), suffix: t.hostPattern.slice(at + '{tenant}'.length) });
  }
  const header = t.select.includes('header') ? t.header.toLowerCase().replaceAll('_', '-') : null;
  return Object.freeze({ select: Object.freeze([...t.select]), hostPattern, header });
}

export function buildRouteTable(routes: readonly CompiledRoute[], caseInsensitive = false): RouteTable {
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
    const groups = groupByPrefix(list, caseInsensitive);
    if (host === null) anyHost = groups;
    else if (host.startsWith('*.')) wildcards.push({ suffix: host.slice(1), groups });
    else exact.set(host, groups);
  }
  wildcards.sort((a, b) => b.suffix.length - a.suffix.length);
  return { exact, wildcards, anyHost, caseInsensitive };
}

function groupByPrefix(routes: readonly CompiledRoute[], caseInsensitive: boolean): PrefixGroup[] {
  const byPrefix = new Map<string, CompiledRoute[]>();
  for (const r of routes) {
    const prefix = caseInsensitive ? r.prefix.toLowerCase() : r.prefix;
    byPrefix.set(prefix, [...(byPrefix.get(prefix) ?? []), r]);
  }
  return [...byPrefix]
    .map(([prefix, rs]) => {
      const allow = rs.some((r) => r.methods === null)
        ? 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS'
        : [...new Set(rs.flatMap((r) => [...r.methods!]))].join(', ');
      return { prefix, routes: rs, allow };
    })
    .sort((a, b) => b.prefix.length - a.prefix.length);
}

