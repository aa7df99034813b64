/**
 * What the fuzzed proxy is configured with — routes, tenants, credentials —
 * written once, so the generator (what to send), the config (what the proxy
 * enforces) and the invariants (what must hold) cannot drift apart.
 *
 * Every route's upstream URL carries its name as a base path
 * (`/__r/<name>`), so the upstream can tell which route forwarded a request.
 */

export interface FuzzRoute {
  readonly name: string;
  readonly prefix: string;
  /** Permission every method needs; null: a public route (`auth: [none]`). */
  readonly permission: string | null;
  readonly stripPrefix: boolean;
  readonly websocket: boolean;
}

export const ROUTES: readonly FuzzRoute[] = [
  { name: 'orders', prefix: '/orders', permission: 'orders:read', stripPrefix: false, websocket: true },
  // More specific than `orders`, with a permission `orders` callers lack: a path that the proxy routes to
  // `orders` but an upstream dispatches to `/orders/secret` is an authorization bypass (#33.2).
  { name: 'secret', prefix: '/orders/secret', permission: 'secret:read', stripPrefix: false, websocket: true },
  { name: 'public', prefix: '/public', permission: null, stripPrefix: false, websocket: true },
  { name: 'nows', prefix: '/nows', permission: 'orders:read', stripPrefix: false, websocket: false },
  { name: 'strip', prefix: '/strip', permission: 'orders:read', stripPrefix: true, websocket: true },
  { name: 'hold', prefix: '/hold', permission: 'orders:read', stripPrefix: false, websocket: true },
];

export const ROUTE_BASE = '/__r/';
/** The tenant whose plan has `concurrency: CONCURRENCY` (checked after the run: nothing leaked). */
export const CONC_TENANT = 'conc';
export const CONCURRENCY = 3;
/** Host bound to tenant `globex` (`tenants[].hosts`): any other tenant's credential there is cross_tenant. */
export const GLOBEX_HOST = 'globex.test';

export interface FuzzCredential {
  readonly kind: 'apiKey' | 'jwt';
  /** The tenant it proves, or null when it must never authenticate (revoked, expired, forged, unknown). */
  readonly tenant: string | null;
  /** Permissions it grants (`*`: all). */
  readonly grants: readonly string[];
}

/** Placeholders `{{name}}` in generated requests; replaced by real keys and tokens only when sent. */
export const CREDENTIALS: Readonly<Record<string, FuzzCredential>> = {
  acme: { kind: 'apiKey', tenant: 'acme', grants: ['orders:read'] },
  acmeAll: { kind: 'apiKey', tenant: 'acme', grants: ['*'] },
  conc: { kind: 'apiKey', tenant: CONC_TENANT, grants: ['*'] },
  globex: { kind: 'apiKey', tenant: 'globex', grants: ['*'] },
  revoked: { kind: 'apiKey', tenant: null, grants: [] },
  unknownKey: { kind: 'apiKey', tenant: null, grants: [] },
  jwtReader: { kind: 'jwt', tenant: 'acme', grants: ['orders:read'] },
  jwtOwner: { kind: 'jwt', tenant: 'acme', grants: ['*'] },
  jwtExpired: { kind: 'jwt', tenant: null, grants: [] },
  jwtForged: { kind: 'jwt', tenant: null, grants: [] },
  jwtNone: { kind: 'jwt', tenant: null, grants: [] },
};

/** Identity headers of SPEC §5 (plus the assertion): a client's copy must never reach the upstream. */
export const IDENTITY_HEADERS = [
  'x-tenant-id',
  'x-tenant-plan',
  'x-project-id',
  'x-api-key-id',
  'x-subject',
  'x-scopes',
  'x-roles',
  'x-request-id',
  'x-tenant-assertion',
] as const;

export function routeByName(name: string): FuzzRoute | undefined {
  return ROUTES.find((r) => r.name === name);
}

/** The proxy's rule (the fuzzed config sets `routing.caseInsensitive`): `;` parameters dropped, ASCII case folded, then {@link routeForPath}. */
export function proxyRouteForPath(path: string): FuzzRoute | undefined {
  return routeForPath(path.replace(/;[^/]*/g, '').replace(/[A-Z]+/g, (c) => c.toLowerCase()));
}

/** The longest prefix that matches on a segment boundary. */
export function routeForPath(path: string): FuzzRoute | undefined {
  let best: FuzzRoute | undefined;
  for (const r of ROUTES) {
    const hit = path === r.prefix || path.startsWith(`${r.prefix}/`);
    if (hit && (best === undefined || r.prefix.length > best.prefix.length)) best = r;
  }
  return best;
}

export function grantsPermission(credential: FuzzCredential, permission: string): boolean {
  return credential.grants.includes('*') || credential.grants.includes(permission);
}
