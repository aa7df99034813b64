/**
 * Stage 3 — authenticate. Reads the credential the route accepts (`auth:`):
 * `none` admits anonymous callers (the request is still sanitized, so the
 * upstream sees no identity at all). API-key and JWT verification arrive with
 * the auth issue; until then a route that asks for them fails closed with 401,
 * because an unverified request must never reach an upstream that trusts us.
 */
import type { RequestContext } from '../context.js';
import { reject, type Rejection } from '../errors.js';

const NOT_VERIFIABLE = reject('unauthenticated', 'auth_method_unavailable');

export function authenticate(ctx: RequestContext): Rejection | undefined {
  if (ctx.route!.auth.none) return undefined;
  return NOT_VERIFIABLE;
}
