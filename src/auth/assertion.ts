/**
 * `X-Tenant-Assertion`: a short-lived JWT (HS256) signed by the proxy that
 * carries the identity it injected, so an upstream can verify the headers
 * came from tenantgate and not from anything else that can reach it.
 *
 * Claims: iss "tenantgate", sub, tid (tenant), plan, pid (project), kid (API
 * key id), scope (space-separated), roles, iat, exp (iat + ttlSec). Signed
 * with node:crypto directly (synchronous, a few µs) and reused for the same
 * principal until half its lifetime has passed, so a warm caller signs nothing.
 */
import { createHmac } from 'node:crypto';
import type { Principal } from '../context.js';
import type { Tenant } from './tenants.js';

const HEADER = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'JWT' })).toString('base64url');

export class AssertionSigner {
  private readonly cache = new WeakMap<Principal, { token: string; renewAt: number; plan: string }>();

  constructor(
    private readonly secret: string,
    private readonly ttlSec: number,
    private readonly now: () => number = Date.now,
  ) {}

  sign(principal: Principal, tenant: Tenant): string {
    const nowMs = this.now();
    const cached = this.cache.get(principal);
    if (cached !== undefined && nowMs < cached.renewAt && cached.plan === tenant.plan) return cached.token;
    const iat = Math.floor(nowMs / 1000);
    const payload = {
      iss: 'tenantgate',
      sub: principal.subject ?? undefined,
      tid: principal.tenantId,
      plan: tenant.plan,
      pid: principal.projectId ?? undefined,
      kid: principal.apiKeyId ?? undefined,
      scope: principal.scopes.length > 0 ? principal.scopes.join(' ') : undefined,
      roles: principal.roles.length > 0 ? principal.roles : undefined,
      iat,
      exp: iat + this.ttlSec,
    };
    const signingInput = `${HEADER}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}`;
    const token = `${signingInput}.${createHmac('sha256', this.secret).update(signingInput).digest('base64url')}`;
    this.cache.set(principal, { token, renewAt: nowMs + (this.ttlSec * 1000) / 2, plan: tenant.plan });
    return token;
  }
}
