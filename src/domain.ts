/**
 * The domain types every part of the proxy speaks: who is calling, which
 * tenant, which route, what admission took. This module imports nothing, so
 * any module may import it without forming a cycle.
 */

/** Who is calling, as proven by a credential (filled by the authenticate stage). */
export interface Principal {
  readonly kind: 'apiKey' | 'jwt';
  /**
   * The credential's tenant (API key's, token's `tenantClaim`); null for a
   * token that carries only memberships. Once the resolve-tenant stage has
   * run, the principal on the context acts for the active tenant: this is it.
   */
  readonly tenantId: string | null;
  /** The other tenants a token's `membershipsClaim` lets it act for; null when none (always, for an API key). */
  readonly memberships: Memberships | null;
  readonly subject: string | null;
  readonly projectId: string | null;
  readonly apiKeyId: string | null;
  readonly scopes: readonly string[];
  readonly roles: readonly string[];
  /** The API key's own token bucket, checked as well as the tenant's (limits stage). */
  readonly rate: { readonly perSecond: number; readonly burst: number } | null;
}

/**
 * Tenant id → that tenant's roles, from a token's `membershipsClaim`; null
 * roles: the membership names none of its own (the token's roles apply).
 */
export type Memberships = ReadonlyMap<string, readonly string[] | null>;

/** A quota's usage passed a warning threshold with this request's charge. */
export interface QuotaCrossing {
  readonly quota: 'daily' | 'monthly';
  readonly threshold: number;
  readonly used: number;
  readonly limit: number;
  readonly period: string;
}

/** A concurrency slot held by an admitted request, released once when it ends. */
export interface Lease {
  readonly key: string;
  readonly leaseId: string;
}

export interface Tenant {
  readonly id: string;
  readonly plan: string;
  readonly status: 'active' | 'suspended';
}

export interface TenantDirectory {
  readonly byId: ReadonlyMap<string, Tenant>;
  readonly hostOwner: ReadonlyMap<string, string>;
  readonly wildcardOwners: readonly { readonly suffix: string; readonly tenantId: string }[];
}

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
  /** Answers the caller's own tenant's limits (SPEC §11) instead of forwarding. */
  readonly usage: boolean;
  readonly timeoutMs: number;
  /** A request or response body that moves no byte for this long is cut (408 / 504); docs/robustness.md. */
  readonly idleTimeoutMs: number;
  /** Longest wait for a connection to the upstream before 503 upstream_overloaded. */
  readonly queueTimeoutMs: number;
  readonly forwardCredentials: boolean;
  readonly stripPrefix: boolean;
  readonly preserveHost: boolean;
  readonly maxBodyBytes: number | null;
  readonly websocket: boolean;
  /** Where the request carries a tenant id that must be the active tenant (`tenantIn`); null when it carries none. */
  readonly tenantIn: TenantIn | null;
  /** `http`: HTTP/1.1 through an undici Pool; `grpc`: HTTP/2 sessions, trailers passed through (SPEC §12). */
  readonly protocol: 'http' | 'grpc';
  /** The route's upstream TLS with its files read (config load); null: Node's defaults for https://. */
  readonly tls: UpstreamTlsOptions | null;
  /**
   * Which connections the route shares: the origin for a plain HTTP route, else the origin
   * with the protocol and the TLS files' fingerprint (two TLS settings never share a pool).
   */
  readonly upstreamKey: string;
}

/** A route's `tls`, read: PEM contents (never logged) and a fingerprint of them that names the pool. */
export interface UpstreamTlsOptions {
  readonly ca?: string;
  readonly cert?: string;
  readonly key?: string;
  readonly servername?: string;
  /** SHA-256 over every setting, to key pools; reveals nothing of the key. */
  readonly fingerprint: string;
}

/** A route's `tenantIn`, compiled: `path` as segments (`{tenant}` at `segment`), the query parameter's name. */
export interface TenantIn {
  /** Segments of the path template after its leading `/`, and the index of `{tenant}`; null without `path`. */
  readonly path: { readonly segments: readonly string[]; readonly segment: number } | null;
  readonly query: string | null;
}

/** `tenancy:`, compiled: how a request names the tenant it acts for (SPEC §10). */
export interface Tenancy {
  /** Selectors in the order they are tried. */
  readonly select: readonly ('path' | 'host' | 'header')[];
  /** `{tenant}.app.example.com` → prefix '' and suffix `.app.example.com` (lower-case); null without hostPattern. */
  readonly hostPattern: { readonly prefix: string; readonly suffix: string } | null;
  /** Lower-case, dash-spelt header name when `header` is selected, else null. */
  readonly header: string | null;
}

export interface PrefixGroup {
  readonly prefix: string;
  readonly routes: readonly CompiledRoute[];
  /** Value of the Allow header for a 405. */
  readonly allow: string;
}

export interface RouteTable {
  readonly exact: ReadonlyMap<string, readonly PrefixGroup[]>;
  readonly wildcards: readonly { readonly suffix: string; readonly groups: readonly PrefixGroup[] }[];
  readonly anyHost: readonly PrefixGroup[];
  /** Prefixes match in any ASCII case (`routing.caseInsensitive`); they are stored lower-case then. */
  readonly caseInsensitive: boolean;
}

/** What sanitize does with a header, by lower-case, dash-spelt name (compiled per config). */
export const HeaderRule = { Drop: 1, Credential: 2 } as const;
export type HeaderRule = (typeof HeaderRule)[keyof typeof HeaderRule];

