/**
 * The YAML config's schema (SPEC §3), in zod. Every object is strict, so an
 * unknown (often misspelt) key is an error, not a silently ignored setting.
 * Defaults live here too, next to the field they belong to; values that came
 * from an empty `${VAR:-}` arrive as null and mean "not set".
 */
import { z } from 'zod';
import { ADMIN_SCOPES, SHORTHAND_TOKEN_ID } from '../admin/tokens.js';
import { BOUNDS } from '../limits/bounds.js';
import { normalizePath } from '../stages/normalize-path.js';
import { parseClaimPath } from '../auth/claim-path.js';
import { entitlements, limitOverrides, namedLimits } from '../limits/named-schema.js';

const port = z.number().int().min(0).max(65535);
const positiveInt = z.number().int().positive();
const nonNegativeInt = z.number().int().nonnegative();
const id = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/, 'must be 1-128 characters of letters, digits, . _ : - (starting with a letter or digit)');
const httpMethod = z
  .string()
  .transform((m) => m.toUpperCase())
  .pipe(z.enum(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'TRACE']));
const headerName = z.string().regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/, 'must be a valid HTTP header name');

/** TLS on the data port (SPEC §12): the cert and key files are watched and reloaded when they change. */
const listenTls = z.strictObject({
  certFile: z.string().min(1),
  keyFile: z.string().min(1),
  minVersion: z.enum(['TLSv1.2', 'TLSv1.3']).default('TLSv1.2'),
  /** CA bundle for client certificates: set, every client must present one it signed (mutual TLS). */
  caFile: z.string().min(1).nullable().default(null),
});

const listen = z.strictObject({
  host: z.string().min(1).default('0.0.0.0'),
  port: port.default(8080),
  /** Largest request head (request line + headers) in bytes; larger gets 431. */
  maxHeaderBytes: z.number().int().min(1024).max(1024 * 1024).default(16 * 1024),
  /** Time a client has to send the full request head (slowloris guard). */
  headersTimeoutMs: positiveInt.default(10_000),
  /** Time a client has to send the whole request, body included. */
  requestTimeoutMs: positiveInt.default(300_000),
  /** Idle keep-alive; above the 60 s idle timeout of common load balancers so they close first. */
  keepAliveTimeoutMs: positiveInt.default(65_000),
  /** Largest request body in bytes, or null for no limit (bodies are streamed, never buffered). */
  maxBodyBytes: positiveInt.nullable().default(null),
  /** Trust the client's X-Forwarded-* (only behind a proxy you control). */
  trustProxy: z.boolean().default(false),
  tls: listenTls.nullable().default(null),
  /** HTTP/2 inbound: h2 by ALPN on TLS, h2c with prior knowledge on plain text; HTTP/1.1 keeps working on the same port. */
  http2: z.boolean().default(false),
  /** SETTINGS_MAX_CONCURRENT_STREAMS: streams one HTTP/2 connection may have open at once. */
  http2MaxConcurrentStreams: positiveInt.max(10_000).default(100),
});

/** A scoped admin token (SPEC §14): its hash is an API key hash (src/auth/api-key-format.ts) of the token. */
const adminToken = z.strictObject({
  id,
  hash: z
    .string()
    .regex(/^(sha256|hmac-sha256):[A-Za-z0-9_-]{43}$/, 'must be "sha256:<digest>" or "hmac-sha256:<digest>", a base64url SHA-256 of 43 characters (docs/admin-api.md shows how to make one)'),
  scopes: z.array(z.enum(ADMIN_SCOPES)).min(1, 'give at least one scope'),
});
const adminTokens = z.array(adminToken).superRefine((list, ctx) => {
  const ids = new Set<string>([SHORTHAND_TOKEN_ID]);
  const hashes = new Set<string>();
  list.forEach((t, i) => {
    if (ids.has(t.id)) ctx.addIssue({ code: 'custom', path: [i, 'id'], message: t.id === SHORTHAND_TOKEN_ID ? `"${t.id}" is the id of admin.token` : `duplicate admin token id "${t.id}"` });
    if (hashes.has(t.hash)) ctx.addIssue({ code: 'custom', path: [i, 'hash'], message: 'the same hash as another admin token' });
    ids.add(t.id);
    hashes.add(t.hash);
  });
});

const admin = z.strictObject({
  host: z.string().min(1).default('127.0.0.1'),
  port: port.default(9901),
  /** The all-scopes token (id `admin`); the admin API is on when this or `tokens` is set. */
  token: z.string().min(16, 'must be at least 16 characters').nullable().default(null),
  /** Scoped tokens, several at once so a rotation needs no restart. */
  tokens: adminTokens.default([]),
  /** Without store.redis: where admin API changes persist (relative to the working directory); default ./tenantgate-state.json. */
  stateFile: z.string().min(1).optional(),
});

const redisUrl = z.string().regex(/^rediss?:\/\/[^/?#]/, 'must be a redis:// or rediss:// URL');

/** Where admin-API tenants and keys live (SPEC §14): PostgreSQL, a Redis of its own, or (neither) store.redis / the state file. */
const registry = z.strictObject({
  postgres: z
    .string()
    .regex(/^postgres(ql)?:\/\/\S+$/, 'must be a postgres:// or postgresql:// URL')
    .nullable()
    .default(null),
  redis: redisUrl.nullable().default(null),
});

/**
 * TLS for every rediss:// connection (limit store, registry, usage sinks): PEM
 * files, relative to the config file's folder, read at load. Without `ca`,
 * Node's bundled CAs (and NODE_EXTRA_CA_CERTS) are trusted; the server's
 * certificate is always verified.
 */
const redisTls = z.strictObject({
  /** CA certificate(s) to trust instead of Node's bundled ones (a private CA). */
  ca: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).optional(),
  /** Client certificate and its key, for servers that require one (mutual TLS). */
  cert: z.string().min(1).optional(),
  key: z.string().min(1).optional(),
  /** The name the server's certificate must carry (and SNI); default: the URL's host. */
  servername: z.string().min(1).optional(),
});

const store = z.strictObject({
  redis: z
    .union([redisUrl, z.array(redisUrl).min(1)])
    .nullable()
    .default(null),
  keyPrefix: z.string().default('tg:'),
  commandTimeoutMs: positiveInt.default(50),
  failureMode: z.enum(['open', 'closed']).default('open'),
  /** ioredis auto-pipelining: off by default (see bench/ for the measured trade-off). */
  autoPipelining: z.boolean().default(false),
  /**
   * Far from its limits, a busy tenant's capacity is reserved ahead from Redis and admitted locally for up to this
   * long (src/limits/credit.ts); 0: every request goes to Redis.
   */
  localCreditMs: nonNegativeInt.max(1000).default(50),
  tls: redisTls.nullable().default(null),
});

// Limit values within what the limit store's arithmetic handles (src/limits/bounds.ts).
const rate = z
  .strictObject({ perSecond: z.number().min(BOUNDS.rateMin).max(BOUNDS.rateMax), burst: positiveInt.max(BOUNDS.burstMax) })
  .refine((r) => r.burst / r.perSecond <= BOUNDS.refillMaxS, { message: `burst / perSecond (seconds to refill an empty bucket) must be at most ${BOUNDS.refillMaxS}; use a quota for longer periods` });
const quotaLimit = nonNegativeInt.max(BOUNDS.quotaMax);
const quota = z.strictObject({ daily: quotaLimit.nullable().optional(), monthly: quotaLimit.nullable().optional() });
const limits = {
  rate: rate.nullable().optional(),
  quota: quota.nullable().optional(),
  concurrency: positiveInt.max(BOUNDS.concurrencyMax).nullable().optional(),
};
/** Named limits and entitlements (SPEC §11): src/limits/named-schema.ts. */
const plan = z.strictObject({ ...limits, limits: namedLimits.default([]), entitlements: entitlements.optional() });

const tenant = z.strictObject({
  id,
  plan: z.string().min(1),
  status: z.enum(['active', 'suspended']).default('active'),
  hosts: z.array(z.string().min(1)).default([]),
  /** The day (1-31) each `1mo` window starts; in a shorter month, its last day. */
  billingDay: z.number().int().min(1).max(31).default(1),
  overrides: z.strictObject({ ...limits, limits: limitOverrides.optional() }).default({}),
});

const apiKey = z.strictObject({
  id,
  tenant: id,
  project: id.optional(),
  hash: z.string().regex(/^(sha256|hmac-sha256):[A-Za-z0-9+/=_-]+$/, 'must be "sha256:<digest>" or "hmac-sha256:<digest>"'),
  scopes: z.array(z.string().min(1)).default([]),
  env: z.enum(['live', 'test']).default('live'),
  expiresAt: z.iso.datetime({ offset: true }).optional(),
  revoked: z.boolean().default(false),
  rate: rate.optional(),
});

/** A claim path (src/auth/claim-path.ts): a claim name, a dotted path, `["segment.with.dots"]` in brackets. */
const claimPath = z
  .string()
  .min(1)
  .superRefine((path, ctx) => {
    const parsed = parseClaimPath(path);
    if (!parsed.ok) ctx.addIssue({ code: 'custom', message: `not a valid claim path: ${parsed.error}` });
  });
/** One path, or a list whose values are merged (roles and scopes). */
const claimPaths = z.union([claimPath, z.array(claimPath).min(1).max(32)]);

/** `{tid}` may stand for one whole URL path segment of the issuer, once: https://login.microsoftonline.com/{tid}/v2.0 */
const ISSUER_TEMPLATE = /^https?:\/\/[^/{}]+\/(?:[^{}]*\/)?\{tid\}(?:\/[^{}]*)?$/;

const issuer = z
  .strictObject({
    issuer: z
      .string()
      .min(1)
      .refine((iss) => !iss.includes('{') || ISSUER_TEMPLATE.test(iss), 'may hold one {tid} placeholder, standing for a whole URL path segment (e.g. https://login.microsoftonline.com/{tid}/v2.0)'),
    /** The `aud` to accept; optional when clientIds is set. */
    audience: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).optional(),
    /** Accepted client ids, checked against `azp`, else `client_id` (Cognito access tokens carry no `aud`). */
    clientIds: z.array(z.string().min(1)).min(1).optional(),
    /** Claims that must have exactly this value, e.g. `{ token_use: access }`. */
    requiredClaims: z.record(z.string().min(1), z.union([z.string(), z.number(), z.boolean()])).optional(),
    jwksUri: z.url({ protocol: /^https?$/ }).optional(),
    keys: z.array(z.union([z.string().min(1), z.record(z.string(), z.unknown())])).min(1).optional(),
    secret: z.string().min(32, 'must be at least 32 characters (256 bits) for HS256').optional(),
    /** Read `jwks_uri` from `<issuer>/.well-known/openid-configuration` (on first use) instead of jwksUri/keys/secret. */
    discovery: z.boolean().default(false),
    algorithms: z.array(z.enum(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519', 'HS256', 'HS384', 'HS512'])).min(1),
    /** Default `tid`; with membershipsClaim, no default: a token may then carry only memberships (src/auth/jwt-identity.ts). */
    tenantClaim: claimPath.optional(),
    /** The tenants the subject belongs to: a list of ids, or a map id → roles (src/auth/memberships.ts). */
    membershipsClaim: claimPath.optional(),
    subjectClaim: claimPath.default('sub'),
    rolesClaim: claimPaths.default('roles'),
    scopesClaim: claimPaths.default('scope'),
    /** Most items one roles or scopes list may hold; past it the token is refused (`unsafe_claim`). */
    maxClaimItems: positiveInt.max(10_000).default(256),
    clockToleranceSec: nonNegativeInt.max(300).default(30),
    maxTokenBytes: positiveInt.max(65_536).default(8192),
    /** Least time between JWKS fetches for unknown kids; a failed fetch is retried after 1 s, doubling up to this. */
    jwksCooldownSec: positiveInt.max(3600).default(30),
    /** Largest JWKS response; a larger one is cut off and refused (`jwks_too_large`), the keys fetched last kept. */
    jwksMaxBytes: positiveInt.min(1024).max(16 * 1024 * 1024).default(512 * 1024),
    /** Most keys a JWKS may hold; more is refused (`jwks_too_many_keys`), the keys fetched last kept. */
    jwksMaxKeys: positiveInt.max(10_000).default(100),
    /** Allow an http:// jwksUri outside loopback (the keys then travel unauthenticated). */
    jwksAllowHttp: z.boolean().default(false),
  })
  .superRefine((iss, ctx) => {
    if (iss.audience === undefined && iss.clientIds === undefined) ctx.addIssue({ code: 'custom', path: ['audience'], message: 'set audience, clientIds, or both (a token for another API must not be accepted)' });
    if (iss.discovery && !/^https?:\/\/[^/?#]+/.test(iss.issuer)) ctx.addIssue({ code: 'custom', path: ['issuer'], message: 'discovery: true needs an http(s) URL issuer (its metadata is read from <issuer>/.well-known/openid-configuration)' });
    else if (iss.discovery && iss.issuer.includes('{tid}')) ctx.addIssue({ code: 'custom', path: ['discovery'], message: 'a {tid} issuer names no one discovery document; set jwksUri (e.g. https://login.microsoftonline.com/common/discovery/v2.0/keys)' });
  });

/** How the route stage reads a path (src/stages/route.ts). */
const routing = z.strictObject({
  /** Match prefixes in any ASCII case: set it when an upstream folds case (IIS, ASP.NET), so `/ORDERS` cannot reach a less protected route. */
  caseInsensitive: z.boolean().default(false),
});

/** A route's upstream TLS: a private CA (instead of Node's bundled roots), a client certificate (mTLS), the name to verify. Verification is never off. */
const upstreamTls = z
  .strictObject({
    caFile: z.string().min(1).optional(),
    certFile: z.string().min(1).optional(),
    keyFile: z.string().min(1).optional(),
    /** SNI and the name the certificate must carry (default: the upstream URL's host). */
    servername: z
      .string()
      .regex(/^[A-Za-z0-9.-]+$/, 'must be a host name')
      .optional(),
  })
  .refine((t) => (t.certFile === undefined) === (t.keyFile === undefined), { message: 'set certFile and keyFile together', path: ['keyFile'] });

const route = z.strictObject({
  name: id,
  match: z.strictObject({
    host: z
      .string()
      .regex(/^(\*\.)?[A-Za-z0-9.-]+$/, 'must be a host name (no port or scheme), optionally starting with "*."')
      .optional(),
    pathPrefix: z
      .string()
      .startsWith('/', 'must start with "/"')
      .refine((p) => !p.startsWith('/') || [p, `${p}/`].includes(normalizePath(p) ?? ''), {
        error: (issue) => `must be a normalised path (no "//", ".", "..", "\\" or %-escapes of /, \\ or unreserved characters), e.g. "${normalizePath(String(issue.input)) ?? '/'}"`,
      })
      .default('/'),
    methods: z.array(httpMethod).min(1).optional(),
  }),
  /** Absent only on a `usage: true` route (it answers itself). */
  upstream: z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' }).optional(),
  /** Answer the caller's own tenant's limits as JSON (SPEC §11) instead of forwarding. */
  usage: z.boolean().default(false),
  auth: z.array(z.enum(['apiKey', 'jwt', 'none'])).min(1).default(['apiKey', 'jwt']),
  permission: z.union([z.string().min(1), z.record(httpMethod, z.string().min(1))]).optional(),
  cost: nonNegativeInt.default(1),
  timeoutMs: positiveInt.default(30_000),
  /** A request or response body idle this long is cut: 408 request_timeout / 504 upstream_timeout (default: timeoutMs). */
  idleTimeoutMs: positiveInt.optional(),
  /** Longest wait for an upstream connection, then 503 upstream_overloaded (default: 5000, or timeoutMs if shorter). */
  queueTimeoutMs: positiveInt.optional(),
  forwardCredentials: z.boolean().default(false),
  stripPrefix: z.boolean().default(false),
  /** Keep the client's Host header (true) or send the upstream's host (false). */
  preserveHost: z.boolean().default(true),
  /** Overrides listen.maxBodyBytes for this route. */
  maxBodyBytes: positiveInt.nullable().optional(),
  /** Accept WebSocket upgrades on this route (after the same auth stages). */
  websocket: z.boolean().default(true),
  /** http (default): HTTP/1.1 to the upstream; grpc: HTTP/2 (h2 on https://, h2c prior knowledge on http://), trailers passed through (SPEC §12). */
  protocol: z.enum(['http', 'grpc']).default('http'),
  /** How an https:// upstream is trusted and who we are to it (docs/routing.md); files read at load and on every reload. */
  tls: upstreamTls.optional(),
  /** Where the request carries a tenant id that must be the active tenant (docs/routing.md). */
  tenantIn: z
    .strictObject({
      path: z
        .string()
        .regex(/^(\/[^/{}?#;%]+|\/\{tenant\})+$/, 'must be a path of plain segments with one whole "{tenant}" segment, e.g. "/api/tenants/{tenant}"')
        .refine((p) => p.split('{tenant}').length === 2, 'must hold "{tenant}" exactly once')
        .optional(),
      query: z.string().regex(/^[A-Za-z0-9._~-]{1,64}$/, 'must be a query parameter name (letters, digits, . _ ~ -)').optional(),
    })
    .refine((t) => t.path !== undefined || t.query !== undefined, 'set path, query or both')
    .optional(),
}).superRefine((r, ctx) => {
  if (r.upstream === undefined && !r.usage) ctx.addIssue({ code: 'custom', path: ['upstream'], message: 'is required (only a usage: true route has none)' });
  if (r.tls !== undefined && !(r.upstream ?? '').startsWith('https:')) ctx.addIssue({ code: 'custom', path: ['tls'], message: 'applies only to an https:// upstream' });
});

/** How a request names the tenant it acts for (SPEC §10, docs/tenancy.md). Absent: the credential's tenant only. */
const tenancy = z
  .strictObject({
    select: z
      .array(z.enum(['path', 'host', 'header']))
      .min(1)
      .refine((s) => new Set(s).size === s.length, 'lists a selector twice'),
    hostPattern: z
      .string()
      .regex(/^([a-z0-9-]+\.)*\{tenant\}(\.[a-z0-9-]+)+$/, 'must be a lower-case host name with one whole "{tenant}" label, e.g. "{tenant}.app.example.com"')
      .optional(),
    header: headerName
      .refine((h) => !['authorization', 'x-api-key', 'host', 'connection', 'cookie'].includes(h.toLowerCase().replaceAll('_', '-')), 'must not be a credential, Host, Connection or Cookie header')
      .default('X-Tenant-ID'),
  })
  .optional();

/**
 * Circuit breakers for one upstream origin (docs/robustness.md). A share
 * caps what one route (when several use the origin) or one tenant may hold:
 * that fraction of the connections, and of the pending queue.
 */
const upstreamLimits = z.strictObject({
  /** Sockets open to the origin at most (one request each). */
  maxConnections: positiveInt.max(65_536).default(512),
  /** Requests waiting for a socket at most; past it, 503 upstream_overloaded at once. */
  maxPending: nonNegativeInt.max(1_000_000).default(1024),
  routeShare: z.number().gt(0).max(1).default(0.5),
  tenantShare: z.number().gt(0).max(1).default(0.5),
});
/** The limits of an origin the `upstreams` list does not name. */
export const DEFAULT_UPSTREAM_LIMITS = Object.freeze(upstreamLimits.parse({}));
const upstream = upstreamLimits.extend({
  origin: z
    .url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' })
    .refine((u) => new URL(u).origin === u.replace(/\/$/, ''), 'must be an origin: scheme://host[:port], no path')
    .transform((u) => new URL(u).origin),
});
const upstreams = z.array(upstream).superRefine((list, ctx) => {
  const seen = new Set<string>();
  list.forEach((u, i) => {
    if (seen.has(u.origin)) ctx.addIssue({ code: 'custom', path: [i, 'origin'], message: `duplicate upstream origin "${u.origin}"` });
    seen.add(u.origin);
  });
});

/** Options every sink has: a batch leaves when it holds `batchSize` events or `flushMs` after its first. */
const sinkCommon = {
  /** Names the sink's spool directory and its metrics label; default `<type>-<n>` (n counts sinks of that type). */
  name: id.optional(),
  batchSize: positiveInt.max(10_000).default(500),
  flushMs: positiveInt.default(1000),
};
/**
 * CloudEvents options (SPEC §16), for any sink with `format: cloudevents`;
 * checked and defaulted in the usage transform below, where the format is known.
 */
const cloudEventKeys = {
  /** CloudEvents `type` of request events; default `tenantgate.request`. */
  eventType: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/, 'must be 1-128 characters of letters, digits, . _ : -').optional(),
  /** What `subject` carries: the tenant id, `<tenant>/<project>`, or the API key id (each falls back to the tenant). */
  subject: z.enum(['tenant', 'project', 'key']).optional(),
  /** URI-reference naming this instance (`source` is it + `/routes/<route>`); default `//tenantgate`, the same on every replica so that de-duplication by source and id holds across them. */
  source: z.string().regex(/^[^\s]+$/, 'must be a URI-reference without spaces').optional(),
};
const natsUrl = z.string().regex(/^(nats|tls):\/\/[^/?#\s]+$/, 'must be a nats:// or tls:// URL (host:port, no path)');
const natsToken = z.string().regex(/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/, 'must be NATS subject tokens (letters, digits, _ -) separated by dots');

const sink = z.discriminatedUnion('type', [
  z.strictObject({
    type: z.literal('redis-stream'),
    ...sinkCommon,
    /** Used as given (no keyPrefix); each entry is `event <JSON line>`. */
    stream: z.string().min(1).default('tg:usage'),
    maxLen: positiveInt.default(1_000_000),
    /** Overrides store.redis for this sink. */
    url: redisUrl.nullable().default(null),
    timeoutMs: positiveInt.default(2000),
    /** `json`: the §7 line; `cloudevents`: its CloudEvent. */
    format: z.enum(['json', 'cloudevents']).default('json'),
    ...cloudEventKeys,
  }),
  z.strictObject({
    type: z.literal('file'),
    ...sinkCommon,
    path: z.string().min(1),
    /** Rotate before a write would pass this size: path → path.1 → path.2 …; null = never. */
    maxBytes: positiveInt.nullable().default(100 * 1024 * 1024),
    /** Rotated files kept (older ones are deleted); null = keep all. */
    maxFiles: positiveInt.nullable().default(null),
    /** fdatasync after each batch, so a machine crash loses nothing already counted as sent. */
    fsync: z.boolean().default(true),
    /** `ndjson`: the §7 lines; `cloudevents`: one CloudEvent per line. */
    format: z.enum(['ndjson', 'cloudevents']).default('ndjson'),
    ...cloudEventKeys,
  }),
  z.strictObject({
    type: z.literal('http'),
    ...sinkCommon,
    url: z.url({ protocol: /^https?$/ }),
    /** `json`: one JSON array per POST; `ndjson`: one event per line. */
    format: z.enum(['json', 'ndjson', 'cloudevents']).default('json'),
    ...cloudEventKeys,
    headers: z.record(headerName, z.string()).default({}),
    timeoutMs: positiveInt.default(5000),
    /** Attempts after the first before the batch is spooled; waits backoffMs, then doubles. */
    retries: nonNegativeInt.max(10).default(3),
    backoffMs: positiveInt.default(200),
  }),
  z.strictObject({
    type: z.literal('nats'),
    ...sinkCommon,
    url: natsUrl,
    /** The JetStream stream that captures `<subjectPrefix>.>`; a publish another stream takes is a failure. */
    stream: z.string().regex(/^[^\s.*>/\\]{1,255}$/, 'must be a JetStream stream name (no spaces, . * > / \\)'),
    subjectPrefix: natsToken.default('tenantgate.usage'),
    /** Bound on connecting and on each publish's acknowledgement. */
    timeoutMs: positiveInt.default(5000),
    format: z.enum(['json', 'cloudevents']).default('json'),
    ...cloudEventKeys,
  }),
]);

/**
 * OpenTelemetry tracing (SPEC §13, docs/observability.md#tracing). Absent, or
 * without `otlp.url`: off, and no OpenTelemetry code is loaded. Applied at
 * start-up only (a reload that changes it logs a warning).
 */
const tracing = z
  .strictObject({
    otlp: z
      .strictObject({
        /** OTLP/HTTP traces endpoint, e.g. http://otel-collector:4318/v1/traces; null (an empty ${VAR:-}): tracing off. */
        url: z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' }).nullable(),
        /** Sent with every export (e.g. an API key for a hosted collector); never logged. */
        headers: z.record(headerName, z.string()).default({}),
        /** Bound on one export, its retries included. */
        timeoutMs: positiveInt.max(120_000).default(10_000),
      })
      .nullable()
      .default(null),
    /** Share of new traces recorded; a continued trace follows its parent's sampled flag. */
    sampleRatio: z.number().min(0).max(1).default(1),
    /** Continue a client's traceparent (only behind clients you trust: else anyone can force sampling and pick trace ids). */
    trustIncoming: z.boolean().default(false),
    serviceName: z.string().min(1).max(256).default('tenantgate'),
    /** Ended spans waiting for export at most; past it they are dropped (and counted). */
    maxQueueSize: positiveInt.max(1_000_000).default(2048),
    maxExportBatchSize: positiveInt.max(100_000).default(512),
    /** A batch smaller than maxExportBatchSize leaves this long after its first span. */
    exportIntervalMs: positiveInt.max(60_000).default(1000),
    /** On SIGTERM: time given to exporting what is queued. */
    flushTimeoutMs: nonNegativeInt.max(60_000).default(2000),
  })
  .refine((t) => t.maxExportBatchSize <= t.maxQueueSize, { message: 'maxExportBatchSize must be at most maxQueueSize', path: ['maxExportBatchSize'] });

const identityHeaders = z.strictObject({
  tenantId: headerName.default('X-Tenant-ID'),
  plan: headerName.default('X-Tenant-Plan'),
  projectId: headerName.default('X-Project-ID'),
  apiKeyId: headerName.default('X-Api-Key-ID'),
  subject: headerName.default('X-Subject'),
  scopes: headerName.default('X-Scopes'),
  roles: headerName.default('X-Roles'),
  requestId: headerName.default('X-Request-ID'),
});

export const configSchema = z.strictObject({
  listen: listen.prefault({}),
  admin: admin.prefault({}),
  store: store.prefault({}),
  registry: registry.prefault({}),
  plans: z.record(id, plan).default({}),
  tenants: z.array(tenant).default([]),
  apiKeys: z.array(apiKey).default([]),
  jwt: z.strictObject({ issuers: z.array(issuer).default([]) }).prefault({}),
  roles: z.record(z.string().min(1), z.array(z.string().min(1))).default({}),
  /** What a scope grants besides the permission of its own name (Azure `scp: orders.read` → `orders:read`). */
  scopes: z.record(z.string().min(1), z.array(z.string().min(1))).default({}),
  routing: routing.default({ caseInsensitive: false }),
  routes: z.array(route).min(1, 'at least one route is required'),
  tenancy,
  /** Per-origin connection limits; an origin not listed gets DEFAULT_UPSTREAM_LIMITS. */
  upstreams: upstreams.default([]),
  usage: z
    .strictObject({
      sinks: z.array(sink).default([]),
      spoolDir: z.string().min(1).default('./spool'),
      /** Events held in memory per sink; past this, new events go to the spool (never dropped). */
      queueSize: positiveInt.default(10_000),
      /** flush() on SIGTERM: time spent delivering before whatever is left is spooled. */
      flushTimeoutMs: positiveInt.default(5000),
      spool: z
        .strictObject({
          /** A spool segment is closed (and may be replayed, then deleted) past this size. */
          segmentBytes: positiveInt.default(4 * 1024 * 1024),
          /** Spooled events are written and fsync'd together at most this often. */
          fsyncMs: positiveInt.default(200),
        })
        .prefault({}),
      /** While a sink is down, the replay probes it with this backoff (doubling from min to max). */
      replay: z.strictObject({ minBackoffMs: positiveInt.default(500), maxBackoffMs: positiveInt.default(30_000) }).prefault({}),
    })
    .transform((usage, ctx) => {
      // Names are resolved here so the spool directory and metrics label are settled once, and checked unique.
      const perType = new Map<string, number>();
      const seen = new Set<string>();
      const sinks = usage.sinks.map((s, i) => {
        const n = perType.get(s.type) ?? 0;
        perType.set(s.type, n + 1);
        const name = s.name ?? `${s.type}-${n}`;
        if (seen.has(name)) ctx.issues.push({ code: 'custom', input: s, path: ['sinks', i, 'name'], message: `duplicate sink name "${name}" (names pick the spool directory)` });
        seen.add(name);
        const ce = s.format === 'cloudevents';
        for (const key of ['eventType', 'subject', 'source'] as const) {
          if (!ce && s[key] !== undefined) ctx.issues.push({ code: 'custom', input: s, path: ['sinks', i, key], message: `${key} applies only with format: cloudevents` });
        }
        const cloudevents = ce ? { eventType: s.eventType ?? 'tenantgate.request', subject: s.subject ?? 'tenant', source: s.source ?? null } : null;
        return { ...s, name, cloudevents };
      });
      return { ...usage, sinks };
    })
    .prefault({}),
  identity: z
    .strictObject({
      headers: identityHeaders.prefault({}),
      assertion: z
        .strictObject({
          /** HS256 with this shared secret… */
          secret: z.string().min(32, 'must be at least 32 characters').nullable().default(null),
          /** …or EdDSA with this Ed25519 private key (PKCS#8 PEM file); the public key is served as a JWKS on the admin port. */
          privateKeyFile: z.string().min(1).nullable().default(null),
          header: headerName.default('X-Tenant-Assertion'),
          ttlSec: positiveInt.max(3600).default(60),
        })
        .prefault({}),
    })
    .prefault({}),
  metrics: z
    .strictObject({
      /** false: the request path records no metrics and /metrics answers 404 (reloadable). */
      enabled: z.boolean().default(true),
      maxTenantLabels: positiveInt.default(1000),
      /** true: a per-tenant request duration histogram (tenantgate_tenant_request_duration_seconds), bounded by maxTenantLabels (reloadable). */
      tenantHistograms: z.boolean().default(false),
    })
    .prefault({}),
  logging: z
    .strictObject({
      level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
      sample2xx: z.number().min(0).max(1).default(1),
    })
    .prefault({}),
  shutdownGraceMs: nonNegativeInt.default(10_000),
  tracing: tracing.nullable().default(null),
});

/** The config as validated, with every default applied (not yet compiled). */
export type Config = z.output<typeof configSchema>;
export type RouteConfig = Config['routes'][number];
export type UpstreamConfig = Config['upstreams'][number];
