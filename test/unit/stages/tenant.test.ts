/**
 * Stage 4, resolve tenant (src/stages/tenant.ts), after route, sanitize and
 * authenticate on an in-memory context: the tenant comes from the credential
 * (a JWT's `tid` here, since an API key's tenant is checked at load); an
 * unknown tenant, a suspended one, and a Host bound to another tenant
 * (`tenants[].hosts`, exact and `*.` wildcard) are 403 with their codes; a
 * public route has no principal and resolves no tenant.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { CompiledConfig } from '../../../src/config/compile.js';
import { authenticate } from '../../../src/stages/authenticate.js';
import { route } from '../../../src/stages/route.js';
import { sanitize } from '../../../src/stages/sanitize.js';
import { resolveTenant } from '../../../src/stages/tenant.js';
import { compileConfig, HS256_ISSUER_YAML, hs256Token, refusal, requestContext, runStages } from '../../helpers/stage-context.js';

let config: CompiledConfig;

beforeAll(async () => {
  config = await compileConfig(`
plans: { basic: {}, pro: {} }
tenants:
  - { id: acme, plan: pro, hosts: [acme.example.com, "*.acme.example.com"] }
  - { id: initech, plan: basic }
  - { id: globex, plan: basic, status: suspended, hosts: [globex.example.com] }
${HS256_ISSUER_YAML}
routes:
  - { name: api, match: { pathPrefix: /api }, upstream: "http://127.0.0.1:3000", auth: [jwt] }
  - { name: public, match: { pathPrefix: /public }, upstream: "http://127.0.0.1:3000", auth: [none] }
`);
});

/** Runs stages 1–4 for a caller of tenant `tid` (or none) on `host`. */
async function resolve(tid: string | null, host: string, url = '/api/orders') {
  const headers: [string, string][] = tid === null ? [] : [['Authorization', `Bearer ${await hs256Token({ tid, sub: 'user-1' })}`]];
  const ctx = requestContext(config, { url, host, headers });
  const rejection = await runStages(ctx, [route, sanitize, authenticate, resolveTenant]);
  return { ctx, refused: refusal(rejection) };
}

describe('tenant from the credential', () => {
  it('a known, active tenant is put on the context', async () => {
    const { ctx, refused } = await resolve('acme', 'shared.example.org');
    expect(refused).toBeUndefined();
    expect(ctx.principal!.tenantId).toBe('acme');
    expect(ctx.tenant).toEqual({ id: 'acme', plan: 'pro', status: 'active' });
  });

  it('a tenant the config does not know → 403 unknown_tenant', async () => {
    const { ctx, refused } = await resolve('nobody', 'shared.example.org');
    expect(refused).toEqual({ status: 403, code: 'unknown_tenant', reason: 'unknown_tenant' });
    expect(ctx.principal!.tenantId).toBe('nobody');
    expect(ctx.tenant).toBeNull();
  });

  it('a suspended tenant → 403 tenant_suspended, on a shared host and on its own', async () => {
    for (const host of ['shared.example.org', 'globex.example.com']) {
      const { ctx, refused } = await resolve('globex', host);
      expect(refused).toEqual({ status: 403, code: 'tenant_suspended', reason: 'tenant_suspended' });
      expect(ctx.tenant).toBeNull();
    }
  });
});

describe('hosts bound to a tenant', () => {
  it.each(['acme.example.com', 'eu.acme.example.com', 'a.b.acme.example.com', 'EU.Acme.Example.COM:8443', 'acme.example.com.'])(
    "%s admits the owner's credentials",
    async (host) => {
      const { ctx, refused } = await resolve('acme', host);
      expect(refused).toBeUndefined();
      expect(ctx.tenant!.id).toBe('acme');
    },
  );

  it.each(['acme.example.com', 'eu.acme.example.com', 'EU.Acme.Example.COM:8443', 'acme.example.com.'])(
    "%s refuses another tenant's credentials → 403 cross_tenant",
    async (host) => {
      const { ctx, refused } = await resolve('initech', host);
      expect(refused).toEqual({ status: 403, code: 'cross_tenant', reason: 'host_owned_by_other_tenant' });
      expect(ctx.principal!.tenantId).toBe('initech'); // kept: the account stage counts the attempt by it
      expect(ctx.tenant).toBeNull();
    },
  );

  it('the wildcard needs a label before its suffix: the bare suffix host is shared', async () => {
    const { ctx, refused } = await resolve('initech', 'example.com');
    expect(refused).toBeUndefined();
    expect(ctx.tenant!.id).toBe('initech');
  });

  it("a suspended tenant's credentials on another tenant's host are cross_tenant first", async () => {
    const { refused } = await resolve('globex', 'acme.example.com');
    expect(refused?.code).toBe('cross_tenant');
  });
});

describe('public routes', () => {
  it('no principal: nothing to resolve, on any host, bound or not', async () => {
    for (const host of ['acme.example.com', 'shared.example.org']) {
      const { ctx, refused } = await resolve(null, host, '/public/status');
      expect(refused).toBeUndefined();
      expect(ctx.route!.name).toBe('public');
      expect(ctx.principal).toBeNull();
      expect(ctx.tenant).toBeNull();
    }
  });

  it('the stage itself returns at once when no principal was set', () => {
    const ctx = requestContext(config, { url: '/public/status', host: 'acme.example.com' });
    expect(route(ctx)).toBeUndefined();
    expect(resolveTenant(ctx)).toBeUndefined();
    expect(ctx.tenant).toBeNull();
  });
});
