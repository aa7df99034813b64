/**
 * Compile a validated config into what the stages use: the route table, the
 * header rules, lower-cased identity header names, tenants, limits; after the
 * checks a schema cannot make (./references.ts); then freeze it all. Stages
 * only ever see a CompiledConfig, so a reload swaps one object atomically.
 */
import type { CompiledRoute, HeaderRule, RouteTable, Tenancy, TenantDirectory } from '../domain.js';
import { compileHeaderRules } from './headers.js';
import { buildRouteTable, compileRoute, compileTenancy } from './routes.js';
import { compileGrants, type Grants, type ScopeTable } from '../auth/permissions.js';
import { compileTenants } from '../auth/tenants.js';
import type { AuthRuntime } from '../auth/types.js';
import type { RedisTls } from '../redis/tls.js';
import { compileLimits, namedLimitProblems, type EffectiveLimits } from '../limits/plans.js';
import { ApiKeyCompactor, own } from './compact.js';
import { referenceProblems } from './references.js';
import type { Config } from './schema.js';

/** What {@link compile} produces; loadConfig adds what needs files or the network: the credential verifiers (PEM files, JWKS sets) and store.tls. */
export type CompiledCore = Omit<CompiledConfig, 'auth' | 'redisTls'>;

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
  /** `tenancy:` compiled; null when absent (a request then acts for its credential's tenant only). */
  readonly tenancy: Tenancy | null;
  /** What each JWT role grants (`roles:`). */
  readonly roleGrants: ReadonlyMap<string, Grants>;
  /** What each scope grants besides its own name (`scopes:`). */
  readonly scopeGrants: ScopeTable;
  readonly auth: AuthRuntime;
  /** store.tls with its PEM files read (null: Node's defaults for rediss://). */
  readonly redisTls: RedisTls | null;
  /** Effective limits per tenant (plan + overrides). */
  readonly limits: ReadonlyMap<string, EffectiveLimits>;
}

export interface CompileProblem {
  path: (string | number)[];
  message: string;
}

/** `previousKeys`: the key records of the config in force, to share where unchanged (./compact.ts). */
export function compile(config: Config, file: string, contentHash: string, previousKeys?: Config['apiKeys']): { config?: CompiledCore; problems: CompileProblem[] } {
  const problems: CompileProblem[] = [...referenceProblems(config), ...namedLimitProblems(config)];
  if (problems.length > 0) return { problems };

  // First: what follows is built from the owned, frozen strings and records.
  const keys = new ApiKeyCompactor(config.tenants, previousKeys);
  config.apiKeys = config.apiKeys.map((k) => keys.compact(k));
  const source = freezeOwned(config);
  const routeList = source.routes.map((r) => compileRoute(r, source.listen.maxBodyBytes));
  const headers = source.identity.headers;
  const { secret, privateKeyFile } = source.identity.assertion;
  const assertion = secret === null && privateKeyFile === null ? null : source.identity.assertion.header;
  const tenancy = source.tenancy === undefined ? null : compileTenancy(source.tenancy);
  // The tenancy header is the client's request for a tenant: stripped like the identity headers.
  const identityNames = [...Object.values(headers), source.identity.assertion.header, ...(tenancy?.header ? [tenancy.header] : [])];
  const compiled: CompiledCore = {
    file,
    contentHash,
    source,
    routeList,
    routes: buildRouteTable(routeList, source.routing.caseInsensitive),
    headerRules: compileHeaderRules(identityNames, source.listen.trustProxy),
    identity: Object.freeze({ ...headers, assertion }),
    requestIdHeader: headers.requestId.toLowerCase(),
    tenants: compileTenants(source.tenants),
    tenancy,
    limits: compileLimits(source),
    roleGrants: new Map(Object.entries(source.roles).map(([role, perms]) => [role, compileGrants(perms)])),
    scopeGrants: new Map(Object.entries(source.scopes)),
  };
  return { config: compiled, problems };
}

/**
 * Deep-freezes the validated config in place, each string replaced by a flat
 * copy on the way (./compact.ts: a slice of the text would keep all of it
 * alive). Loops, not Object.values: no array allocated per object. Frozen
 * objects (compacted key records) are done already.
 */
function freezeOwned<T>(value: T): T {
  if (value === null || typeof value !== 'object' || Object.isFrozen(value)) return value;
  const o = value as Record<string, unknown>;
  if (Array.isArray(o)) {
    for (let i = 0; i < o.length; i++) o[i] = typeof o[i] === 'string' ? own(o[i] as string) : freezeOwned(o[i]);
  } else {
    for (const key in o) o[key] = typeof o[key] === 'string' ? own(o[key] as string) : freezeOwned(o[key]);
  }
  return Object.freeze(value);
}
