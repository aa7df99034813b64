/**
 * Stage 2 — sanitize. Builds the header list the upstream will receive from
 * the client's raw headers, leaving out:
 *
 * - every identity header of SPEC §5 (and the assertion header), in any case,
 *   any number of times, and in the `_` spelling (`X_Tenant_ID`), which some
 *   upstream stacks (CGI, WSGI, some nginx setups) treat as the same header;
 * - hop-by-hop headers and every header the client's `Connection:` names: the
 *   client's Connection header is never forwarded, so it cannot make the next
 *   hop drop a header the proxy injects;
 * - the client's X-Forwarded-* / Forwarded / X-Real-IP unless `trustProxy`;
 * - the credential (Authorization, X-API-Key) unless the route forwards it;
 * - `Expect` (100-continue is answered by the proxy once the request is admitted).
 *
 * The `tenancy.header` (a client's request for a tenant, SPEC §10) is one of
 * the stripped headers: its value is kept on the context for the
 * resolve-tenant stage, never forwarded as sent.
 *
 * It works on the incoming request before any forwarding code runs, so every
 * request shape (plain, chunked, 100-continue, WebSocket upgrade) is covered.
 * The authenticate stage still reads the credential from `req.headers`.
 */
import type { RequestContext } from '../context.js';
import { HeaderRule } from '../domain.js';
import { reject, type Rejection } from '../errors.js';

/** Connection values that name no other header. */
const PLAIN_CONNECTION = /^\s*(?:keep-alive|close|upgrade)\s*$/i;

const DUPLICATE_HOST = reject('bad_request', 'duplicate_host', 'The request has more than one Host header.');


export function sanitize(ctx: RequestContext): Rejection | undefined {
  const raw = ctx.req.rawHeaders;
  const rules = ctx.config.headerRules;
  const keepCredentials = ctx.route!.forwardCredentials;
  const connection = ctx.req.headers.connection;
  const nominated = connection !== undefined && !PLAIN_CONNECTION.test(connection) ? connectionTokens(connection) : null;
  const tenantHeader = ctx.config.tenancy?.header ?? null;
  const out: string[] = [];
  let seenCredentials = 0; // bit 1: Authorization, bit 2: X-API-Key
  let duplicate = false;
  let hosts = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    let lower = name.toLowerCase();
    if (lower.includes('_')) lower = lower.replaceAll('_', '-');
    const rule = rules.get(lower);
    if (rule === HeaderRule.Credential) {
      const bit = lower === 'authorization' ? 1 : 2;
      if (seenCredentials & bit) duplicate = true;
      seenCredentials |= bit;
      if (!keepCredentials) continue;
    } else if (rule === HeaderRule.Drop) {
      if (lower === 'host') hosts++;
      else if (lower === tenantHeader) requestTenant(ctx, raw[i + 1]!);
      continue;
    }
    if (nominated !== null && nominated.has(lower)) continue;
    out.push(name, raw[i + 1]!);
  }
  ctx.upstreamHeaders = out;
  ctx.duplicateCredential = duplicate;
  return hosts > 1 ? DUPLICATE_HOST : undefined;
}

/** Keeps the client's request for a tenant (`tenancy.header`), in any spelling sanitize strips; two different values conflict. */
function requestTenant(ctx: RequestContext, value: string): void {
  if (value === '') return;
  if (ctx.tenantHeader === null) ctx.tenantHeader = value;
  else if (ctx.tenantHeader !== value) ctx.tenantHeaderConflict = true;
}

function connectionTokens(value: string): Set<string> {
  const tokens = new Set<string>();
  for (const t of value.split(',')) {
    const token = t.trim().toLowerCase().replaceAll('_', '-');
    if (token !== '') tokens.add(token);
  }
  return tokens;
}
