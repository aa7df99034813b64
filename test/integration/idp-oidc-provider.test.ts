/**
 * A real OpenID provider (oidc-provider) in front of a real proxy process
 * (dist/main.js): access tokens fetched from the token endpoint with client
 * credentials, verified against the provider's real JWKS found through
 * discovery. RS256, PS256, ES256 and Ed25519; key rotation (one refetch for
 * the new kid); the provider stopped and restarted, and started after the
 * proxy (recovery within the backoff, not the 30 s cooldown).
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { idpKey, OidcIdp, RESOURCE, type IdpClient } from '../helpers/oidc-provider.js';
import { spawnProxy, startUpstream, type SpawnedProxy, type Upstream } from '../helpers/servers.js';

const CLIENTS: IdpClient[] = [
  { clientId: 'rs-client', secret: 'rs-client-secret-0123456789abcdef', alg: 'RS256', tenant: 'acme' },
  { clientId: 'ps-client', secret: 'ps-client-secret-0123456789abcdef', alg: 'PS256', tenant: 'acme' },
  { clientId: 'es-client', secret: 'es-client-secret-0123456789abcdef', alg: 'ES256', tenant: 'globex' },
  { clientId: 'ed-client', secret: 'ed-client-secret-0123456789abcdef', alg: 'Ed25519', tenant: 'globex' },
];
const [RS, , , ED] = CLIENTS as [IdpClient, IdpClient, IdpClient, IdpClient];

let idp: OidcIdp;
let upstream: Upstream;
let proxy: SpawnedProxy;
let initialKeys: Awaited<ReturnType<typeof idpKey>>[];

const config = (issuer: string, cooldownSec: number) => `
plans: { p: { rate: null } }
tenants: [{ id: acme, plan: p }, { id: globex, plan: p }]
jwt:
  issuers:
    - issuer: "${issuer}"
      audience: "${RESOURCE}"
      discovery: true
      algorithms: [RS256, PS256, ES256, Ed25519]
      tenantClaim: tenant_id
      scopesClaim: scope
      jwksCooldownSec: ${cooldownSec}
scopes:
  orders.read: [orders:read]
routes:
  - { name: orders, match: { pathPrefix: /orders }, upstream: "${upstream.url}", auth: [jwt], permission: orders:read }
`;

const get = (p: { url: string }, token: string) => fetch(`${p.url}/orders/1`, { headers: { authorization: `Bearer ${token}` } });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function failures(p: SpawnedProxy, reason: string): Promise<number> {
  const text = await (await fetch(`${p.adminUrl}/metrics`)).text();
  return Number(new RegExp(`tenantgate_auth_failures_total\\{route="orders",reason="${reason}"\\} (\\d+)`).exec(text)?.[1] ?? 0);
}

/** Polls until the token is admitted; the ms it took, or null past `withinMs`. */
async function admittedWithin(p: SpawnedProxy, token: string, withinMs: number): Promise<number | null> {
  const start = Date.now();
  while (Date.now() - start < withinMs) {
    const res = await get(p, token);
    await res.body?.cancel();
    if (res.status === 200) return Date.now() - start;
    expect(res.status).toBe(401);
    await sleep(200);
  }
  return null;
}

beforeAll(async () => {
  initialKeys = await Promise.all([idpKey('RS256', 'rs-1'), idpKey('PS256', 'ps-1'), idpKey('ES256', 'es-1'), idpKey('Ed25519', 'ed-1')]);
  idp = await OidcIdp.start(CLIENTS, initialKeys);
  upstream = await startUpstream();
  proxy = await spawnProxy(config(idp.issuer, 2));
});
afterAll(async () => {
  await proxy?.stop();
  await idp?.down();
  await upstream?.close();
});
beforeEach(() => {
  upstream.requests.length = 0;
});

describe('tokens from a real provider', () => {
  it.each(CLIENTS.map((c) => [c.alg, c] as const))('%s: admitted with the tenant from the custom claim and the scopes', async (alg, client) => {
    const token = await idp.token(client);
    const header = JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString()) as { alg: string; kid: string };
    expect(header.alg).toBe(alg);
    const res = await get(proxy, token);
    expect(res.status).toBe(200);
    const h = upstream.requests[0]!.headers;
    expect(h['x-tenant-id']).toBe(client.tenant);
    expect(h['x-subject']).toBe(client.clientId);
    expect(h['x-scopes']).toBe('orders.read orders.write');
    expect(h.authorization).toBeUndefined();
  });

  it('discovery was read once; the JWKS fetched once for all four algorithms', () => {
    expect(idp.discoveryFetches).toBe(1);
    expect(idp.jwksFetches).toBe(1);
  });

  it('a token without the mapped scope → 403 forbidden, upstream untouched', async () => {
    const res = await get(proxy, await idp.token(RS, 'orders.write'));
    expect(res.status).toBe(403);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('forbidden');
    expect(upstream.requests).toHaveLength(0);
  });

  it('a token for another client of the same provider with a tampered tenant → 401, upstream untouched', async () => {
    const [h, p, s] = (await idp.token(ED)).split('.');
    const payload = JSON.parse(Buffer.from(p!, 'base64url').toString()) as Record<string, unknown>;
    payload.tenant_id = 'acme';
    const before = await failures(proxy, 'bad_signature');
    const res = await get(proxy, `${h}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.${s}`);
    expect(res.status).toBe(401);
    expect(upstream.requests).toHaveLength(0);
    expect(await failures(proxy, 'bad_signature')).toBe(before + 1);
  });
});

describe('key rotation', () => {
  it('old tokens verify until they expire; the new kid costs one JWKS refetch', async () => {
    const oldToken = await idp.token(RS);
    const rotated = await idpKey('RS256', 'rs-2');
    await idp.down();
    // The new key first (it signs), the old one still published.
    await idp.up([rotated, ...initialKeys]);
    const newToken = await idp.token(RS);
    expect(JSON.parse(Buffer.from(newToken.split('.')[0]!, 'base64url').toString()).kid).toBe('rs-2');
    expect((await get(proxy, oldToken)).status).toBe(200);
    const fetchesBefore = idp.jwksFetches;
    // jwksCooldownSec: 2 here: the refetch for the unknown kid happens within it.
    expect(await admittedWithin(proxy, newToken, 5000)).not.toBeNull();
    expect(idp.jwksFetches - fetchesBefore).toBe(1);
    // Many unknown kids afterwards: no refetch storm.
    const [, p, s] = newToken.split('.');
    for (let i = 0; i < 10; i++) {
      const header = Buffer.from(JSON.stringify({ alg: 'RS256', typ: 'at+jwt', kid: `nope-${i}` })).toString('base64url');
      const res = await get(proxy, `${header}.${p}.${s}`);
      expect(res.status).toBe(401);
    }
    expect(idp.jwksFetches - fetchesBefore).toBeLessThanOrEqual(2);
  });
});

describe('provider outages', () => {
  it('provider stopped: tokens of known keys keep working; restarted: new tokens work', async () => {
    const token = await idp.token(RS);
    expect((await get(proxy, token)).status).toBe(200);
    await idp.down();
    try {
      upstream.requests.length = 0;
      expect((await get(proxy, token)).status).toBe(200);
      expect(upstream.requests).toHaveLength(1);
    } finally {
      await idp.up();
    }
    expect((await get(proxy, await idp.token(ED))).status).toBe(200);
  });

  it('a proxy started while the provider is down recovers within the backoff once it is up, not after the 30 s cooldown', async () => {
    const token = await idp.token(RS);
    await idp.down();
    const late = await spawnProxy(config(idp.issuer, 30));
    try {
      const before = await failures(late, 'discovery_failed');
      const res = await get(late, token);
      expect(res.status).toBe(401);
      expect(upstream.requests).toHaveLength(0);
      expect(await failures(late, 'discovery_failed')).toBe(before + 1);
      await sleep(1500); // a second failed attempt: the backoff is now 2 s
      expect((await get(late, token)).status).toBe(401);
      await idp.up();
      // Next attempt at most 2 s after the last failure: well inside 5 s, far from 30 s.
      const took = await admittedWithin(late, token, 5000);
      expect(took).not.toBeNull();
      expect(upstream.requests.at(-1)!.headers['x-tenant-id']).toBe('acme');
    } finally {
      await late.stop();
      await idp.up();
    }
  });
});
