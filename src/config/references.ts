/**
 * The checks a schema cannot make: duplicates, references between sections
 * (tenant → plan, key → tenant), ambiguous routes, issuer key sources. They
 * read the config loosely, so they also run on a file whose shape is invalid
 * elsewhere: fixing the reported problems never reveals a second batch.
 */
import { INSECURE_JWKS, isInsecureJwksUri } from '../auth/jwt-jwks-fetch.js';

export interface ReferenceProblem {
  path: (string | number)[];
  message: string;
}

type Loose = Record<string, unknown>;
const list = (v: unknown): Loose[] => (Array.isArray(v) ? v.map((x) => (x !== null && typeof x === 'object' ? (x as Loose) : {})) : []);
const map = (v: unknown): Loose => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Loose) : {});
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const strings = (v: unknown): string[] | null => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : null);
const HS = /^HS/;

export function referenceProblems(input: unknown): ReferenceProblem[] {
  const config = map(input);
  const problems: ReferenceProblem[] = [];
  const problem = (path: (string | number)[], message: string) => problems.push({ path, message });

  const routeNames = new Set<string>();
  const routeKeys = new Map<string, { index: number; methods: Set<string> | null }[]>();
  list(config.routes).forEach((r, i) => {
    const name = str(r.name);
    if (name !== undefined && routeNames.has(name)) problem(['routes', i, 'name'], `duplicate route name "${name}"`);
    if (name !== undefined) routeNames.add(name);
    const match = map(r.match);
    const key = `${str(match.host)?.toLowerCase() ?? ''} ${(str(match.pathPrefix) ?? '/').replace(/\/+$/, '')}`;
    const methodList = strings(match.methods);
    const methods = methodList === null ? null : new Set(methodList.map((m) => m.toUpperCase()));
    for (const other of routeKeys.get(key) ?? []) {
      const overlap = methods === null || other.methods === null || [...methods].some((m) => other.methods!.has(m));
      if (overlap) problem(['routes', i, 'match'], `same host and pathPrefix as routes[${other.index}] with overlapping methods: the match would be ambiguous`);
    }
    routeKeys.set(key, [...(routeKeys.get(key) ?? []), { index: i, methods }]);
    const permission = r.permission;
    if (permission !== null && typeof permission === 'object' && methods !== null) {
      for (const m of Object.keys(permission)) {
        if (!methods.has(m.toUpperCase())) problem(['routes', i, 'permission', m], `method ${m} is not in match.methods`);
      }
    }
    const auth = strings(r.auth);
    if (auth !== null && auth.includes('none') && auth.length > 1) problem(['routes', i, 'auth'], '"none" cannot be combined with other methods');
    // A public route has no tenant to compare the URL's with: its tenantIn would check nothing.
    if (auth !== null && auth.includes('none') && r.tenantIn !== undefined) problem(['routes', i, 'tenantIn'], 'needs an authenticated route (auth: [none] acts for no tenant)');
    // gRPC clients speak HTTP/2 only: without it on the data port every call would be refused.
    if (r.protocol === 'grpc' && map(config.listen).http2 !== true) problem(['routes', i, 'protocol'], 'grpc needs listen.http2: true (gRPC clients speak HTTP/2)');
  });

  const plans = Object.keys(map(config.plans));
  const tenantIds = new Set<string>();
  /** Lower-cased id → the first spelling: ids that differ only in case would merge in a case-insensitive upstream. */
  const foldedIds = new Map<string, string>();
  const hostOwner = new Map<string, string>();
  list(config.tenants).forEach((t, i) => {
    const id = str(t.id);
    const first = id === undefined ? undefined : foldedIds.get(id.toLowerCase());
    if (id !== undefined && tenantIds.has(id)) problem(['tenants', i, 'id'], `duplicate tenant id "${id}"`);
    else if (id !== undefined && first !== undefined) problem(['tenants', i, 'id'], `tenant id "${id}" differs from "${first}" only in case (an upstream that compares ids case-insensitively would merge them)`);
    if (id !== undefined) tenantIds.add(id);
    if (id !== undefined && first === undefined) foldedIds.set(id.toLowerCase(), id);
    const plan = str(t.plan);
    if (plan !== undefined && !plans.includes(plan)) problem(['tenants', i, 'plan'], `unknown plan "${plan}" (plans: ${plans.join(', ') || 'none defined'})`);
    (strings(t.hosts) ?? []).forEach((h, j) => {
      const host = h.toLowerCase();
      const owner = hostOwner.get(host);
      if (owner !== undefined && owner !== id) problem(['tenants', i, 'hosts', j], `host "${h}" already belongs to tenant "${owner}"`);
      if (id !== undefined) hostOwner.set(host, id);
    });
  });

  const keyIds = new Set<string>();
  list(config.apiKeys).forEach((k, i) => {
    const id = str(k.id);
    if (id !== undefined && keyIds.has(id)) problem(['apiKeys', i, 'id'], `duplicate API key id "${id}"`);
    if (id !== undefined) keyIds.add(id);
    const tenant = str(k.tenant);
    if (tenant !== undefined && !tenantIds.has(tenant)) problem(['apiKeys', i, 'tenant'], `unknown tenant "${tenant}"`);
  });

  list(map(config.jwt).issuers).forEach((iss, i) => {
    const sources = [iss.jwksUri, iss.keys, iss.secret, iss.discovery === true ? true : undefined].filter((s) => s !== undefined).length;
    if (sources !== 1) problem(['jwt', 'issuers', i], 'set exactly one of jwksUri, keys, secret or discovery: true');
    const algorithms = strings(iss.algorithms) ?? [];
    const hs = algorithms.filter((a) => HS.test(a));
    if (iss.secret !== undefined && hs.length !== algorithms.length) problem(['jwt', 'issuers', i, 'algorithms'], 'a secret issuer allows only HS256/HS384/HS512');
    if (iss.secret === undefined && hs.length > 0) problem(['jwt', 'issuers', i, 'algorithms'], 'HS* algorithms need `secret` (never a public key as an HMAC secret)');
    const jwksUri = str(iss.jwksUri);
    if (jwksUri !== undefined && iss.jwksAllowHttp !== true && isInsecureJwksUri(jwksUri)) problem(['jwt', 'issuers', i, 'jwksUri'], INSECURE_JWKS);
    const issuerUrl = str(iss.issuer);
    if (iss.discovery === true && issuerUrl !== undefined && iss.jwksAllowHttp !== true && isInsecureJwksUri(issuerUrl)) problem(['jwt', 'issuers', i, 'issuer'], `discovery over ${INSECURE_JWKS}`);
  });
  const store = map(config.store);
  if (store.tls !== null && store.tls !== undefined) {
    const tls = map(store.tls);
    if ((tls.cert === undefined) !== (tls.key === undefined)) problem(['store', 'tls', tls.cert === undefined ? 'key' : 'cert'], 'cert and key go together (a client certificate needs its key)');
    // A TLS setting that nothing uses is almost always a redis:// that was meant to be rediss://.
    const urls = [...(strings(store.redis) ?? [str(store.redis)]), ...list(map(config.usage).sinks).map((s) => str(s.url))];
    if (!urls.some((u) => u?.startsWith('rediss://'))) problem(['store', 'tls'], 'is set, but no rediss:// URL uses it (store.redis and the redis-stream sinks are not TLS)');
  }

  const assertion = map(map(config.identity).assertion);
  if (str(assertion.secret) !== undefined && str(assertion.privateKeyFile) !== undefined) {
    problem(['identity', 'assertion'], 'set either secret (HS256) or privateKeyFile (EdDSA), not both');
  }
  return problems;
}
