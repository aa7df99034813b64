/**
 * Stage 3 — authenticate. Finds the credential and proves it:
 *
 * - `Authorization: Bearer <credential>` or `X-API-Key: <key>`. A credential
 *   that starts with `tg_` is an API key, anything else in a Bearer header is
 *   a JWT. The route's `auth:` list says which kinds it accepts; `none` admits
 *   anonymous callers (still sanitized: the upstream sees no identity).
 * - An API key AND a JWT on one request, or the same credential header twice,
 *   is refused (401): identities are never merged and never chosen silently.
 * - Every failure is 401 `unauthenticated` for the client; the precise reason
 *   (`expired`, `bad_signature`, …) goes to the metric and the log only.
 *
 * API keys verify synchronously (warm keys hit a cache); so do warm JWTs (the
 * verified-token cache). A cold JWT needs an asynchronous verification (a JWKS
 * fetch may be needed), and so does a cold API key kept in Redis by the admin
 * API (one lookup), so this stage may return a Promise. A key lookup the store
 * cannot answer is 503 `store_unavailable`, never a 401 the client would
 * take for a revoked key.
 */
import type { ApiKeyRecord, VerifiedJwt } from '../auth/types.js';
import type { RequestContext } from '../context.js';
import type { Principal } from '../domain.js';
import { reject, type Rejection } from '../errors.js';

const rejections = new Map<string, Rejection>();
/** One frozen Rejection per reason, so failures under attack allocate nothing. */
function unauthenticated(reason: string): Rejection {
  let r = rejections.get(reason);
  if (r === undefined) rejections.set(reason, (r = reject('unauthenticated', reason)));
  return r;
}

/** Principals are memoised per key record / verified token, so downstream memos (grants, assertion) stay warm. */
const principals = new WeakMap<ApiKeyRecord | VerifiedJwt, Principal>();

function memoised<K extends ApiKeyRecord | VerifiedJwt>(source: K, make: (source: K) => Principal): Principal {
  let p = principals.get(source);
  if (p === undefined) principals.set(source, (p = Object.freeze(make(source))));
  return p;
}

const keyPrincipal = (record: ApiKeyRecord): Principal =>
  memoised(record, (r) => ({
    kind: 'apiKey',
    tenantId: r.tenant,
    memberships: null,
    subject: null,
    projectId: r.project ?? null,
    apiKeyId: r.id,
    scopes: Object.freeze([...r.scopes]),
    roles: Object.freeze([]),
    rate: r.rate ?? null,
  }));

const jwtPrincipal = (identity: VerifiedJwt): Principal =>
  memoised(identity, (i) => ({
    kind: 'jwt',
    tenantId: i.tenantId,
    memberships: i.memberships ?? null,
    subject: i.subject,
    projectId: null,
    apiKeyId: null,
    scopes: Object.freeze([...i.scopes]),
    roles: Object.freeze([...i.roles]),
    rate: null,
  }));

const BEARER = /^bearer +/i;
const KEY_STORE_UNAVAILABLE = reject('store_unavailable', 'key_store_unavailable', 'The key store is unavailable.');

type KeyResult = { ok: true; record: ApiKeyRecord } | { ok: false; reason: string };

function keyOutcome(ctx: RequestContext, result: KeyResult): Rejection | undefined {
  if (!result.ok) return result.reason === 'store_unavailable' ? KEY_STORE_UNAVAILABLE : unauthenticated(result.reason);
  ctx.principal = keyPrincipal(result.record);
  return undefined;
}

export function authenticate(ctx: RequestContext): Rejection | undefined | Promise<Rejection | undefined> {
  const allowed = ctx.route!.auth;
  if (allowed.none) return undefined;
  if (ctx.duplicateCredential) return unauthenticated('duplicate_credentials');
  const headers = ctx.req.headers;
  const authorization = headers.authorization;
  // Node joins repeated unknown headers into one string; repeats were already refused above.
  const apiKeyHeader = headers['x-api-key'] as string | undefined;
  let bearer: string | undefined;
  if (authorization !== undefined) {
    const m = BEARER.exec(authorization);
    if (m === null) return unauthenticated('unsupported_scheme');
    bearer = authorization.slice(m[0].length).trim();
  }
  if (bearer !== undefined && apiKeyHeader !== undefined) return unauthenticated('ambiguous_credentials');
  const presented = bearer ?? apiKeyHeader;
  if (presented === undefined || presented === '') return unauthenticated('missing_credential');

  const auth = ctx.config.auth;
  if (presented.startsWith('tg_') || apiKeyHeader !== undefined) {
    if (!allowed.apiKey) return unauthenticated('api_key_not_accepted');
    const result = auth.apiKeys.verify(presented);
    if (result instanceof Promise) return result.then((r) => keyOutcome(ctx, r));
    return keyOutcome(ctx, result);
  }
  if (!allowed.jwt) return unauthenticated('jwt_not_accepted');
  if (auth.jwt === null) return unauthenticated('no_jwt_issuers');
  const warm = auth.jwt.verifyCached(presented);
  if (warm !== undefined) return jwtOutcome(ctx, warm);
  return auth.jwt.verify(presented).then((result) => jwtOutcome(ctx, result));
}

function jwtOutcome(ctx: RequestContext, result: { ok: true; identity: VerifiedJwt } | { ok: false; reason: string }): Rejection | undefined {
  if (!result.ok) return unauthenticated(result.reason);
  ctx.principal = jwtPrincipal(result.identity);
  return undefined;
}
