/**
 * A route's `tenantIn` (SPEC §10): tenant ids a legacy upstream reads from
 * the URL must be the active tenant, else 403 `cross_tenant` and nothing is
 * forwarded (docs/routing.md).
 *
 * - Path: the `{tenant}` segment of a path that follows the template up to it
 *   (fixed segments compared as routing compares them: without `;`
 *   parameters, in any case with `routing.caseInsensitive`). The segment
 *   itself is decoded once and compared exactly, `;` parameters included:
 *   upstreams disagree on whether they belong to the value.
 * - Query: every parameter an upstream framework could read as the tenant
 *   parameter — the name in any case, `[…]` suffixes (`tenant_id[]`), `.` or
 *   space for `_` (PHP), `;` as a separator too — decoded once (`+` is a
 *   space) and compared exactly. Without the exact name, `name=<tenant>` is
 *   appended, so the upstream always finds it.
 * - Tenant ids compare case-sensitively: no two tenants differ only in case
 *   (the config and the registries refuse that), so `ACME` is never another
 *   tenant, and it is refused rather than passed to an upstream that may
 *   compare ids case-sensitively.
 *
 * A value that is not valid percent-encoding → 400 `bad_request`.
 */
import type { RequestContext } from '../context.js';
import type { TenantIn } from '../domain.js';
import { reject, type Rejection } from '../errors.js';

const BAD_ESCAPE = reject('bad_request', 'bad_tenant_escape', 'A tenant id in the URL is not valid percent-encoding.');
const IN_PATH = reject('cross_tenant', 'tenant_in_path', 'The tenant in the URL is not the tenant this request acts for.');
const IN_QUERY = reject('cross_tenant', 'tenant_in_query', 'The tenant in the URL is not the tenant this request acts for.');
const PLUS = /\+/g;
/** The config's tenant id rule: a requested "tenant" outside it is recorded as none (it cannot be one). */
const TENANT_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

/** Keeps what the request asked for (the usage event's `requestedTenant`) when it could be a tenant id: never unbounded client text. */
export function recordRequested(ctx: RequestContext, value: string): void {
  ctx.requestedTenant = TENANT_ID.test(value) ? value : null;
}

/** One percent-decoding; undefined when the escapes are not valid UTF-8. */
function decodeOnce(s: string): string | undefined {
  if (!s.includes('%')) return s;
  try {
    return decodeURIComponent(s);
  } catch {
    return undefined;
  }
}

/**
 * The `{tenant}` segment of `path` (normalised, as routed) when the path
 * follows the template up to it; null when it does not, or the segment is
 * empty; a refusal when it does not decode.
 */
export function pathTenant(path: string, template: NonNullable<TenantIn['path']>, caseInsensitive: boolean): string | null | Rejection {
  const segments = template.segments;
  let start = 1;
  for (let i = 0; i <= template.segment; i++) {
    if (start > path.length) return null;
    let end = path.indexOf('/', start);
    if (end === -1) end = path.length;
    const segment = path.slice(start, end);
    if (i === template.segment) return segment === '' ? null : (decodeOnce(segment) ?? BAD_ESCAPE);
    const semicolon = segment.indexOf(';');
    const bare = semicolon === -1 ? segment : segment.slice(0, semicolon);
    const fixed = segments[i]!;
    if (caseInsensitive ? bare.toLowerCase() !== fixed.toLowerCase() : bare !== fixed) return null;
    start = end + 1;
  }
  return null;
}

/** A parameter name as lenient frameworks read it: lower-case, up to any `[`, `.` and space as `_`. */
function parameterKey(name: string): string {
  const bracket = name.indexOf('[');
  return (bracket === -1 ? name : name.slice(0, bracket)).toLowerCase().replace(/[. ]/g, '_');
}

/** Every tenant id in the route's URL must be `active`; appends the query parameter when its exact name is absent. */
export function checkTenantIn(ctx: RequestContext, tenantIn: TenantIn, active: string): Rejection | undefined {
  if (tenantIn.path !== null) {
    const t = pathTenant(ctx.path, tenantIn.path, ctx.config.routes.caseInsensitive);
    if (typeof t === 'object' && t !== null) return t;
    if (t !== null && t !== active) {
      recordRequested(ctx, t);
      return IN_PATH;
    }
  }
  const name = tenantIn.query;
  if (name === null) return undefined;
  const search = ctx.search;
  const wanted = parameterKey(name);
  let exact = false;
  if (search.length > 1) {
    for (const part of search.slice(1).split(/[&;]/)) {
      const eq = part.indexOf('=');
      const rawName = decodeOnce((eq === -1 ? part : part.slice(0, eq)).replace(PLUS, ' '));
      if (rawName === undefined) return BAD_ESCAPE;
      if (parameterKey(rawName) !== wanted) continue;
      const value = decodeOnce(eq === -1 ? '' : part.slice(eq + 1).replace(PLUS, ' '));
      if (value === undefined) return BAD_ESCAPE;
      if (value !== active) {
        recordRequested(ctx, value);
        return IN_QUERY;
      }
      if (rawName === name) exact = true;
    }
  }
  if (!exact) {
    const sep = search.length <= 1 ? '?' : search.endsWith('&') ? '' : '&';
    ctx.search = `${search.length <= 1 ? '' : search}${sep}${encodeURIComponent(name)}=${encodeURIComponent(active)}`;
  }
  return undefined;
}
