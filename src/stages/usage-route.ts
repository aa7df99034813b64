/**
 * A `usage: true` route (SPEC §11): after authentication, tenant and
 * authorization, it answers the caller's own active tenant's limits as JSON
 * — what a product's usage card shows — instead of forwarding. It charges
 * nothing (the limit stage skips it) and cannot name another tenant: the
 * tenant is the one the earlier stages resolved for the credential.
 */
import type { RequestContext } from '../context.js';
import { reject, type Rejection } from '../errors.js';
import { UNLIMITED } from '../limits/plans.js';
import { limitUsage } from '../limits/usage-view.js';
import type { LimitStore } from '../limits/types.js';

const METHOD_NOT_ALLOWED: Rejection = { code: 'method_not_allowed', reason: 'usage_route', headers: { allow: 'GET, HEAD' } };
const STORE_UNAVAILABLE = reject('store_unavailable', 'usage_read_failed');

/** Writes the answer; a refusal (wrong method, store unreadable) goes back to the pipeline to be written like any other. */
export async function answerUsage(ctx: RequestContext, store: LimitStore): Promise<Rejection | undefined> {
  const method = ctx.req.method;
  if (method !== 'GET' && method !== 'HEAD') return METHOD_NOT_ALLOWED;
  const tenant = ctx.tenant!;
  let limits;
  try {
    const effective = ctx.config.limits.get(tenant.id) ?? UNLIMITED;
    limits = await limitUsage(store, ctx.config.source.store.keyPrefix, tenant.id, effective, ctx.principal, Date.now());
  } catch {
    return STORE_UNAVAILABLE;
  }
  const res = ctx.res!;
  if (ctx.ended || res.destroyed) return undefined;
  const body = JSON.stringify({ tenant: tenant.id, plan: tenant.plan, limits: limits.map(({ name, kind, used, limit, remaining, resetAt }) => ({ name, kind, used, limit, remaining, resetAt })) });
  const length = Buffer.byteLength(body);
  res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': length, 'cache-control': 'no-store', 'x-request-id': ctx.requestId });
  ctx.status = 200;
  if (method === 'HEAD') res.end();
  else {
    res.end(body);
    ctx.bytesOut = length;
  }
  return undefined;
}
