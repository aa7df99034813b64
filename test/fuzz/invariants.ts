/**
 * What must hold for every fuzzed request, whatever the proxy answered:
 *
 * - response: an answer (no hang, no silent close); a refusal is the SPEC §4
 *   JSON with the status its code has, `X-Request-ID`, never a 500 or a stack
 *   trace; a 2xx/101 came from the upstream.
 * - leak: no client-supplied identity header (any case, duplicated,
 *   `_`-spelt), credential or Connection-nominated header reaches the
 *   upstream, nor an Upgrade header on a request that is not an upgrade.
 * - routing: an upstream request is one the proxy routed and authorized —
 *   exactly one per admitted request, none for a refused one, its route the
 *   one the path belongs to, a valid credential with that route's permission,
 *   its tenant (and the Host's tenant), its method; nothing smuggled.
 * - dispatch: an upstream that reads path parameters (`;`, `%3B`, servlet
 *   containers) or folds case would dispatch the path to the same route.
 */
import { ERRORS } from '../../src/errors.js';
import type { ClientAnswer, UpstreamRecord } from './harness.js';
import { HOP_VALUE, SPOOF_VALUE, type FuzzRequest } from './inputs.js';
import { CREDENTIALS, GLOBEX_HOST, grantsPermission, IDENTITY_HEADERS, ROUTE_BASE, proxyRouteForPath, routeByName, routeForPath, type FuzzRoute } from './world.js';

export type ViolationKind = 'response' | 'leak' | 'routing' | 'dispatch' | 'lease' | 'inflight' | 'logged';

export interface Violation {
  kind: ViolationKind;
  /** The request's index (-1: after the run). */
  index: number;
  detail: string;
}

const IDENTITY = new Set<string>(IDENTITY_HEADERS);
const ERROR_STATUS = new Set<number>(Object.values(ERRORS).map((e) => e.status));
const STACK = /\bat\s+\S+\s+\(|\bat\s+\/|node:internal|\n\s+at\s/;
const UNNORMALISED = /\/\/|\/\.\.?(?:\/|$|\?)|%2F|%5C|\\|[\x00-\x1f\x7f]/i;

export function checkAnswer(q: FuzzRequest, a: ClientAnswer, forwarded: readonly UpstreamRecord[]): Violation[] {
  const out: Violation[] = [];
  const v = (kind: ViolationKind, detail: string) => out.push({ kind, index: q.index, detail });
  if (a.hung) v('response', `no complete answer within the bound (status ${a.status})`);
  else if (a.status === null) v('response', 'connection closed without a response');
  if (a.status === null) return out;
  const fromUpstream = a.headers.get('x-fz-upstream') === '1';
  if (a.status === 500) v('response', 'status 500');
  // The upstream answers every request at once: a 502/504 means the proxy sent it something it could not finish.
  else if (a.status >= 500 && !fromUpstream) v('response', `${a.status} from an upstream that answers at once (the forwarded request was incomplete or unreadable)`);
  if (fromUpstream) {
    if (forwarded.length !== 1) v('routing', `answered ${a.status} from the upstream, which got ${forwarded.length} copies`);
    return out;
  }
  if (a.status < 400 || !ERROR_STATUS.has(a.status)) {
    v('response', `status ${a.status} not from the upstream and not a SPEC §4 error`);
    return out;
  }
  // A 502/504 comes after forwarding (and is a violation of its own, above); any other refusal must come before.
  if (forwarded.length > 0 && a.status < 500) v('routing', `refused with ${a.status} but ${forwarded.length} request(s) reached the upstream`);
  if (!a.headers.has('x-request-id')) v('response', `${a.status} without X-Request-ID`);
  if (!/^application\/json/.test(a.headers.get('content-type') ?? '')) v('response', `${a.status} with content-type ${a.headers.get('content-type')}`);
  if (q.method.toUpperCase() === 'HEAD' && a.body === '') return out;
  let error: { code?: unknown; message?: unknown; requestId?: unknown } | undefined;
  try {
    error = (JSON.parse(a.body) as { error?: typeof error }).error;
  } catch {
    v('response', `${a.status} body is not JSON: ${JSON.stringify(a.body.slice(0, 120))}`);
    return out;
  }
  const code = typeof error?.code === 'string' ? (error.code as keyof typeof ERRORS) : undefined;
  if (code === undefined || !(code in ERRORS) || typeof error!.message !== 'string' || typeof error!.requestId !== 'string') {
    v('response', `${a.status} body is not the SPEC §4 shape: ${a.body.slice(0, 160)}`);
  } else {
    if (ERRORS[code].status !== a.status) v('response', `code ${code} with status ${a.status} (its status is ${ERRORS[code].status})`);
    if (code === 'internal_error') v('response', 'internal_error');
    if (STACK.test(error!.message as string)) v('response', 'a stack trace in the message');
    if (code === 'unauthenticated' && !a.headers.has('www-authenticate')) v('response', '401 without WWW-Authenticate');
  }
  return out;
}

/** One upstream request, against the client request it carries the id of. */
export function checkForwarded(q: FuzzRequest, r: UpstreamRecord): Violation[] {
  const out: Violation[] = [];
  const v = (kind: ViolationKind, detail: string) => out.push({ kind, index: q.index, detail });
  const counts = new Map<string, number>();
  for (let i = 0; i < r.rawHeaders.length; i += 2) {
    const name = r.rawHeaders[i]!;
    const value = r.rawHeaders[i + 1]!;
    const norm = name.toLowerCase().replaceAll('_', '-');
    if (value.includes(SPOOF_VALUE)) v('leak', `client value reached the upstream in ${name}`);
    if (value.includes(HOP_VALUE)) v('leak', `Connection-nominated header ${name} reached the upstream`);
    if (norm === 'authorization' || norm === 'x-api-key') v('leak', `credential header ${name} reached the upstream`);
    if (IDENTITY.has(norm) && name.includes('_')) v('leak', `_-spelt identity header ${name} reached the upstream`);
    if (IDENTITY.has(norm) && !name.includes('_')) counts.set(norm, (counts.get(norm) ?? 0) + 1);
    if (norm === 'upgrade' && !r.upgrade) v('leak', `hop-by-hop ${name}: ${value} forwarded on a plain (not upgraded) request`);
  }
  for (const [name, n] of counts) if (n > 1) v('leak', `${name} ${n} times`);
  const tenantHeader = r.rawHeaders.findIndex((h, i) => i % 2 === 0 && h.toLowerCase() === 'x-tenant-id');
  const tenant = tenantHeader === -1 ? null : r.rawHeaders[tenantHeader + 1]!;

  const m = new RegExp(`^${ROUTE_BASE}([a-z]+)(.*)$`).exec(r.url);
  const route = m === null ? undefined : routeByName(m[1]!);
  if (m === null || route === undefined) {
    v('routing', `upstream URL ${r.url} names no route`);
    return out;
  }
  if (r.method !== q.method) v('routing', `method ${q.method} reached the upstream as ${r.method}`);
  const forwardedPath = (m[2] === '' ? '/' : m[2]!).split('?')[0]!;
  const full = route.stripPrefix ? route.prefix + (forwardedPath === '/' ? '' : forwardedPath) : forwardedPath;
  if (UNNORMALISED.test(forwardedPath)) v('routing', `unnormalised path forwarded: ${r.url}`);
  const own = proxyRouteForPath(full);
  if (own !== route) v('routing', `${full} forwarded by route ${route.name}, but it belongs to ${own?.name ?? 'no route'}`);
  if (r.upgrade && !route.websocket) v('routing', `WebSocket upgrade forwarded on ${route.name} (websocket: false)`);
  out.push(...checkAuthorized(q, route, tenant));
  if (!route.stripPrefix) out.push(...checkDispatch(q, route, full));
  return out;
}

function checkAuthorized(q: FuzzRequest, route: FuzzRoute, tenant: string | null): Violation[] {
  const v = (detail: string): Violation[] => [{ kind: 'routing', index: q.index, detail }];
  if (route.permission === null) return tenant === null ? [] : v(`public route ${route.name} forwarded with X-Tenant-ID ${tenant}`);
  if (q.credentials.length !== 1) return v(`admitted on ${route.name} with ${q.credentials.length} credential headers`);
  const name = q.credentials[0];
  const credential = name === null || name === undefined ? undefined : CREDENTIALS[name];
  if (credential === undefined || credential.tenant === null) return v(`admitted on ${route.name} with credential ${name ?? 'garbage'}`);
  if (!grantsPermission(credential, route.permission)) return v(`admitted on ${route.name} (${route.permission}) with ${name}, which lacks it`);
  if (tenant !== credential.tenant) return v(`X-Tenant-ID ${tenant} for a credential of ${credential.tenant}`);
  if (q.host === GLOBEX_HOST && credential.tenant !== 'globex') return v(`${credential.tenant} admitted on ${GLOBEX_HOST}, globex's host`);
  return [];
}

/** How upstreams that read path parameters and fold case (as the fuzzed config declares) would see the path; each must land on the same route. */
const DISPATCH: readonly [string, (path: string) => string][] = [
  ['";" path parameters', (p) => p.replace(/;[^/]*/g, '').toLowerCase()],
  ['";" and "%3B" path parameters', (p) => p.replace(/(?:;|%3B)[^/]*/gi, '').toLowerCase()],
];

function checkDispatch(q: FuzzRequest, route: FuzzRoute, path: string): Violation[] {
  const out: Violation[] = [];
  for (const [how, dispatch] of DISPATCH) {
    const seen = routeForPath(dispatch(path));
    if (seen !== undefined && seen !== route) out.push({ kind: 'dispatch', index: q.index, detail: `${path} authorized as ${route.name}, but an upstream reading ${how} serves it as ${seen.name}` });
  }
  return out;
}
