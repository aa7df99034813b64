/**
 * Compile a validated config into what the stages use: the route table, the
 * header rules, lower-cased identity header names; check what a schema cannot
 * (cross references, duplicates, ambiguous routes); then freeze it all. Stages
 * only ever see a CompiledConfig, so a reload swaps one object atomically.
 */
import { buildRouteTable, compileRoute, type CompiledRoute, type RouteTable } from '../stages/route.js';
import { compileHeaderRules, type HeaderRule } from '../stages/sanitize.js';
import { compileGrants, type Grants } from '../auth/permissions.js';
import { compileTenants, type TenantDirectory } from '../auth/tenants.js';
import type { AuthRuntime } from '../auth/types.js';
import { compileLimits, type EffectiveLimits } from '../limits/plans.js';
import type { Config } from './schema.js';

/** What {@link compile} produces; loadConfig adds the credential verifiers (async: PEM files, JWKS sets). */
export type CompiledCore = Omit<CompiledConfig, 'auth'>;

export interface CompiledConfig {
  readonly file: string;
  /** SHA-256 of the file's text, to tell a real change from a rewrite of the same content. */
  readonly contentHash: string;
  /** The validated config with defaults applied (deep-frozen). */
  readonly source: Config;
  readonly routeList: readonly CompiledRoute[];
  readonly routes: RouteTable;
  readonly headerRules: ReadonlyMap<string, HeaderRule>;
  /** Identity header names as they are sent upstream (SPEC §5, configurable). */
  readonly identity: Readonly<Config['identity']['headers']> & { readonly assertion: string | null };
  /** Lower-case name of the request-id header, to read the client's. */
  readonly requestIdHeader: string;
  readonly tenants: TenantDirectory;
  /** What each JWT role grants (`roles:`). */
  readonly roleGrants: ReadonlyMap<string, Grants>;
  readonly auth: AuthRuntime;
  /** Effective limits per tenant (plan + overrides). */
  readonly limits: ReadonlyMap<string, EffectiveLimits>;
}

export interface CompileProblem {
  path: (string | number)[];
  message: string;
}

const HS = /^HS/;

export function compile(config: Config, file: string, contentHash: string): { config?: CompiledCore; problems: CompileProblem[] } {
  const problems: CompileProblem[] = [];
  const problem = (path: (string | number)[], message: string) => problems.push({ path, message });

  const routeNames = new Set<string>();
  const routeKeys = new Map<string, { index: number; methods: Set<string> | null }[]>();
  config.routes.forEach((r, i) => {
    if (routeNames.has(r.name)) problem(['routes', i, 'name'], `duplicate route name "${r.name}"`);
    routeNames.add(r.name);
    const prefix = r.match.pathPrefix;
    const key = `${r.match.host?.toLowerCase() ?? ''} ${prefix.replace(/\/+$/, '')}`;
    const methods = r.match.methods ? new Set<string>(r.match.methods) : null;
    for (const other of routeKeys.get(key) ?? []) {
      const overlap = methods === null || other.methods === null || [...methods].some((m) => other.methods!.has(m));
      if (overlap) problem(['routes', i, 'match'], `same host and pathPrefix as routes[${other.index}] with overlapping methods: the match would be ambiguous`);
    }
    routeKeys.set(key, [...(routeKeys.get(key) ?? []), { index: i, methods }]);
    if (r.permission !== undefined && typeof r.permission === 'object' && methods !== null) {
      for (const m of Object.keys(r.permission)) {
        if (!methods.has(m)) problem(['routes', i, 'permission', m], `method ${m} is not in match.methods`);
      }
    }
    if (r.auth.includes('none') && r.auth.length > 1) problem(['routes', i, 'auth'], '"none" cannot be combined with other methods');
  });

  const tenantIds = new Set<string>();
  const hostOwner = new Map<string, string>();
  config.tenants.forEach((t, i) => {
    if (tenantIds.has(t.id)) problem(['tenants', i, 'id'], `duplicate tenant id "${t.id}"`);
    tenantIds.add(t.id);
    if (!(t.plan in config.plans)) problem(['tenants', i, 'plan'], `unknown plan "${t.plan}" (plans: ${Object.keys(config.plans).join(', ') || 'none defined'})`);
    t.hosts.forEach((h, j) => {
      const host = h.toLowerCase();
      const owner = hostOwner.get(host);
      if (owner !== undefined && owner !== t.id) problem(['tenants', i, 'hosts', j], `host "${h}" already belongs to tenant "${owner}"`);
      hostOwner.set(host, t.id);
    });
  });

  const keyIds = new Set<string>();
  config.apiKeys.forEach((k, i) => {
    if (keyIds.has(k.id)) problem(['apiKeys', i, 'id'], `duplicate API key id "${k.id}"`);
    keyIds.add(k.id);
    if (!tenantIds.has(k.tenant)) problem(['apiKeys', i, 'tenant'], `unknown tenant "${k.tenant}"`);
  });

  config.jwt.issuers.forEach((iss, i) => {
    const sources = [iss.jwksUri, iss.keys, iss.secret].filter((s) => s !== undefined).length;
    if (sources !== 1) problem(['jwt', 'issuers', i], 'set exactly one of jwksUri, keys or secret');
    const hs = iss.algorithms.filter((a) => HS.test(a));
    if (iss.secret !== undefined && hs.length !== iss.algorithms.length) problem(['jwt', 'issuers', i, 'algorithms'], 'a secret issuer allows only HS256/HS384/HS512');
    if (iss.secret === undefined && hs.length > 0) problem(['jwt', 'issuers', i, 'algorithms'], 'HS* algorithms need `secret` (never a public key as an HMAC secret)');
  });

  if (problems.length > 0) return { problems };

  const routeList = config.routes.map((r) => compileRoute(r, config.listen.maxBodyBytes));
  const headers = config.identity.headers;
  const assertion = config.identity.assertion.secret === null ? null : config.identity.assertion.header;
  const identityNames = [...Object.values(headers), config.identity.assertion.header];
  const compiled: CompiledCore = {
    file,
    contentHash,
    source: deepFreeze(config),
    routeList,
    routes: buildRouteTable(routeList),
    headerRules: compileHeaderRules(identityNames, config.listen.trustProxy),
    identity: Object.freeze({ ...headers, assertion }),
    requestIdHeader: headers.requestId.toLowerCase(),
    tenants: compileTenants(config.tenants),
    limits: compileLimits(config),
    roleGrants: new Map(Object.entries(config.roles).map(([role, perms]) => [role, compileGrants(perms)])),
  };
  return { config: compiled, problems };
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
