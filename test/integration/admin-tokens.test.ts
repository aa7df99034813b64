/**
 * Scoped admin tokens (SPEC §14) on a real proxy process with several tokens
 * at once: each scope opens its calls and is refused (403 `forbidden`, the
 * registry unchanged) on the others; `admin.token` still opens everything;
 * two tokens work side by side and a reload that removes one makes it 401
 * while the other keeps working; audit events name the token id, never the
 * token; a peppered hash; the API on with `admin.tokens` alone.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_ROUTES, type AdminRoute } from '../../src/admin/api.js';
import { ADMIN_SCOPES, type AdminScope } from '../../src/admin/tokens.js';
import { hashApiKey } from '../../src/auth/api-key-format.js';
import { admin, callWith, type AdminAnswer } from '../helpers/admin-api.js';
import { until } from '../helpers/life-process.js';
import { spawnProxy, startProxy, startUpstream, withTestDefaults, writeConfig, type SpawnedProxy, type Upstream } from '../helpers/servers.js';

const SHORTHAND = 'shorthand-admin-token-0123456789';
const PEPPER = 'admin-tokens-test-pepper';
/** One token per scope, named after it, plus two that share tenants:read (old and new during a rotation) and a peppered one. */
const scoped = ADMIN_SCOPES.map((scope) => ({ id: scope.replace(':', '-'), token: `token-for-${scope}-0123456789`, scopes: [scope] as AdminScope[] }));
const rotating = [
  { id: 'ci-old', token: 'ci-old-token-0123456789', scopes: ['tenants:read'] as AdminScope[] },
  { id: 'ci-new', token: 'ci-new-token-0123456789', scopes: ['tenants:read'] as AdminScope[] },
];
const peppered = { id: 'peppered', token: 'peppered-token-0123456789', scopes: ['keys:read'] as AdminScope[] };

function config(upstream: string, dir: string, tokens: { id: string; token: string; scopes: AdminScope[] }[]): string {
  const lines = tokens.map((t) => `    - { id: ${t.id}, hash: "${hashApiKey(t.token, t === peppered ? PEPPER : null)}", scopes: [${t.scopes.join(', ')}] }`);
  return withTestDefaults(`admin:
  host: 127.0.0.1
  port: 0
  token: ${SHORTHAND}
  stateFile: "${join(dir, 'state.json')}"
  tokens:
${lines.join('\n')}
plans:
  big: { rate: { perSecond: 100, burst: 100 } }
routes:
  - { name: api, match: { pathPrefix: / }, upstream: "${upstream}", auth: [apiKey], permission: "orders:read" }
usage: { sinks: [{ type: file, path: "${join(dir, 'usage.ndjson')}", flushMs: 20, fsync: false }], spoolDir: "${join(dir, 'spool')}" }
`);
}

/** A concrete call of a route: its path filled in, and a body where it takes one. */
function call(r: AdminRoute, tenant: string, keyId: string): [method: string, path: string, body: unknown] {
  const path = r.path.replace('{id}', tenant).replace('{keyId}', keyId);
  const bodies: Record<string, unknown> = {
    'POST /admin/tenants': { id: `made-by-${tenant}`, plan: 'big' },
    'PATCH /admin/tenants/{id}': { hosts: ['patched.example.com'] },
    'POST /admin/tenants/{id}/keys': { scopes: ['orders:read'] },
    'POST /admin/keys/{keyId}/rotate': { overlapSec: 0 },
  };
  return [r.method, path, bodies[`${r.method} ${r.path}`]];
}

const scopedRoutes = ADMIN_ROUTES.filter((r) => r.scope !== null);

let upstream: Upstream;
let proxy: SpawnedProxy;
let dir: string;
let keyId: string;
let key: string;
const as = (token: string, method: string, path: string, body?: unknown): Promise<AdminAnswer> => admin(proxy.adminUrl, method, path, body, token);

beforeAll(async () => {
  upstream = await startUpstream((req, res) => res.end(String(req.headers['x-tenant-id'])));
  dir = mkdtempSync(join(tmpdir(), 'tg-admin-tokens-'));
  proxy = await spawnProxy('', { TENANTGATE_KEY_PEPPER: PEPPER }, writeConfig(config(upstream.url, dir, [...scoped, ...rotating, peppered])));
  expect((await as(SHORTHAND, 'POST', '/admin/tenants', { id: 'globex', plan: 'big' })).status).toBe(201);
  const made = await as(SHORTHAND, 'POST', '/admin/tenants/globex/keys', { scopes: ['orders:read'] });
  expect(made.status).toBe(201);
  ({ key } = made.body);
  keyId = made.body.record.id;
});
afterAll(async () => {
  await proxy?.stop();
  await upstream?.close();
});

describe('scoped admin tokens (a spawned proxy)', () => {
  it('a token without the route’s scope gets 403 forbidden naming the scope, and the registry is unchanged', async () => {
    const snapshot = async () => [
      (await as(SHORTHAND, 'GET', '/admin/tenants?status=deleted')).body,
      (await as(SHORTHAND, 'GET', '/admin/tenants')).body,
      (await as(SHORTHAND, 'GET', '/admin/tenants/globex')).body.hosts,
      (await as(SHORTHAND, 'GET', '/admin/tenants/globex/keys')).body.data.map((k: { id: string; revoked: boolean; rotatedTo?: string }) => [k.id, k.revoked, k.rotatedTo ?? null]),
    ];
    const before = await snapshot();
    let refused = 0;
    for (const t of scoped) {
      for (const r of scopedRoutes.filter((x) => !t.scopes.includes(x.scope!))) {
        const res = await as(t.token, ...call(r, 'globex', keyId));
        expect(res.status, `${t.id}: ${r.method} ${r.path}`).toBe(403);
        expect(res.body.error.code).toBe('forbidden');
        expect(res.body.error.message).toContain(r.scope);
        expect(res.body.error.message).toContain(`"${t.id}"`);
        refused++;
      }
    }
    expect(refused).toBe(scoped.length * scopedRoutes.length - scopedRoutes.length);
    expect(await snapshot()).toEqual(before);
    expect((await as(SHORTHAND, 'GET', '/admin/tenants/made-by-globex')).status).toBe(404);
    // The key a refused revoke or rotate aimed at still works.
    expect(await callWith(proxy.url, key)).toBe(200);
  });

  it('each read scope opens its GET calls', async () => {
    for (const t of scoped) {
      for (const r of scopedRoutes.filter((x) => x.method === 'GET' && t.scopes.includes(x.scope!))) {
        const res = await as(t.token, ...call(r, 'globex', keyId));
        expect(res.status, `${t.id}: ${r.method} ${r.path}`).toBe(200);
      }
    }
    const byId = Object.fromEntries(scoped.map((t) => [t.scopes[0], t.token]));
    expect((await as(byId['tenants:read']!, 'GET', '/admin/tenants/globex')).body.id).toBe('globex');
    expect((await as(byId['keys:read']!, 'GET', `/admin/keys/${keyId}`)).body.tenant).toBe('globex');
    expect((await as(byId['usage:read']!, 'GET', '/admin/tenants/globex/usage')).body.tenant).toBe('globex');
  });

  it('tenants:write creates, changes, suspends, activates and deletes tenants', async () => {
    const w = scoped.find((t) => t.scopes[0] === 'tenants:write')!.token;
    expect((await as(w, 'POST', '/admin/tenants', { id: 'initech', plan: 'big' })).status).toBe(201);
    expect((await as(w, 'PATCH', '/admin/tenants/initech', { hosts: ['initech.example.com'] })).status).toBe(200);
    expect((await as(w, 'POST', '/admin/tenants/initech/suspend')).body.status).toBe('suspended');
    expect((await as(w, 'POST', '/admin/tenants/initech/activate')).body.status).toBe('active');
    expect((await as(w, 'DELETE', '/admin/tenants/initech')).body.status).toBe('deleted');
  });

  it('keys:write creates a key that works on the data port, rotates it and revokes it', async () => {
    const w = scoped.find((t) => t.scopes[0] === 'keys:write')!.token;
    const made = await as(w, 'POST', '/admin/tenants/globex/keys', { scopes: ['orders:read'] });
    expect(made.status).toBe(201);
    const seen = upstream.requests.length;
    expect(await callWith(proxy.url, made.body.key)).toBe(200);
    expect(upstream.requests.slice(seen).map((r) => r.headers['x-tenant-id'])).toEqual(['globex']);
    const rotated = await as(w, 'POST', `/admin/keys/${made.body.record.id}/rotate`, { overlapSec: 0 });
    expect(rotated.status).toBe(201);
    expect((await as(w, 'DELETE', `/admin/keys/${rotated.body.record.id}`)).body.revoked).toBe(true);
    expect(await callWith(proxy.url, rotated.body.key)).toBe(401);
  });

  it('admin.token opens every call', async () => {
    expect((await as(SHORTHAND, 'POST', '/admin/tenants', { id: 'hooli', plan: 'big' })).status).toBe(201);
    const made = await as(SHORTHAND, 'POST', '/admin/tenants/hooli/keys', {});
    for (const r of ADMIN_ROUTES) {
      const res = await as(SHORTHAND, ...call(r, 'hooli', made.body.record.id));
      expect(res.status, `${r.method} ${r.path}: ${JSON.stringify(res.body)}`).toBeLessThan(500);
      expect([401, 403], `${r.method} ${r.path}`).not.toContain(res.status);
    }
  });

  it('an unknown token is 401 whichever call it tries, and creates nothing', async () => {
    for (const token of ['token-for-nothing-0123456789', hashApiKey(scoped[0]!.token), scoped[0]!.token.slice(0, -1)]) {
      const res = await as(token, 'POST', '/admin/tenants', { id: 'sneaky', plan: 'big' });
      expect(res.status).toBe(401);
      expect(res.body.error.code).toBe('unauthenticated');
    }
    expect((await as(SHORTHAND, 'GET', '/admin/tenants/sneaky')).status).toBe(404);
  });

  it('a peppered hash works on a proxy with that pepper', async () => {
    expect((await as(peppered.token, 'GET', `/admin/keys/${keyId}`)).status).toBe(200);
    expect((await as(peppered.token, 'GET', '/admin/tenants')).status).toBe(403);
  });

  it('audit events and log lines name the token id, never the token or its hash', async () => {
    const w = scoped.find((t) => t.scopes[0] === 'tenants:write')!;
    expect((await as(w.token, 'POST', '/admin/tenants', { id: 'audited', plan: 'big' })).status).toBe(201);
    const events = await until(() => {
      const lines = readFileSync(join(dir, 'usage.ndjson'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
      const audits = lines.filter((e) => e.type === 'audit');
      return audits.some((e) => e.target.id === 'audited') ? audits : undefined;
    }, 'the audit event');
    expect(events.find((e) => e.target.id === 'audited')).toMatchObject({ action: 'tenant.create', tokenId: w.id, actor: 'admin-token@127.0.0.1' });
    expect(events.find((e) => e.target.id === 'globex' && e.action === 'tenant.create')).toMatchObject({ tokenId: 'admin' });
    for (const e of events) expect(typeof e.tokenId).toBe('string');
    const logLine = proxy.logs.find((l) => (l as { msg?: string; target?: { id: string } }).msg === 'admin change' && (l as { target: { id: string } }).target.id === 'audited');
    expect(logLine).toMatchObject({ tokenId: w.id });
    const everything = readFileSync(join(dir, 'usage.ndjson'), 'utf8') + JSON.stringify(proxy.logs);
    for (const t of [...scoped, ...rotating, peppered]) {
      expect(everything).not.toContain(t.token);
      expect(everything).not.toContain(hashApiKey(t.token).slice('sha256:'.length));
    }
    expect(everything).not.toContain(SHORTHAND);
  });

  it('two tokens work at once; a reload that removes one makes it 401 while the other keeps working', async () => {
    for (const t of rotating) expect((await as(t.token, 'GET', '/admin/tenants')).status).toBe(200);
    writeFileSync(proxy.configFile, config(upstream.url, dir, [...scoped, rotating[1]!, peppered]));
    proxy.child.kill('SIGHUP');
    await until(async () => ((await as(rotating[0]!.token, 'GET', '/admin/tenants')).status === 401 ? true : undefined), 'the removed token to be refused');
    expect((await as(rotating[1]!.token, 'GET', '/admin/tenants')).status).toBe(200);
    expect((await as(SHORTHAND, 'GET', '/admin/tenants')).status).toBe(200);
    // Tokens apply at once: no "restart needed" warning about the admin section.
    const warnings = proxy.logs.filter((l) => (l as { msg?: string }).msg === 'config reload: these sections apply only after a restart');
    expect(warnings).toEqual([]);
  });
});

describe('admin.tokens alone', () => {
  it('turns the admin API on without admin.token; an invalid token list keeps it as it was', async () => {
    const up = await startUpstream();
    const d = mkdtempSync(join(tmpdir(), 'tg-admin-tokens-'));
    const reader = { id: 'reader', token: 'reader-token-0123456789', hash: hashApiKey('reader-token-0123456789') };
    const yaml = (tokens: string) => `admin: { host: 127.0.0.1, port: 0, stateFile: "${join(d, 'state.json')}", tokens: [${tokens}] }
plans: { big: {} }
routes: [{ name: api, match: { pathPrefix: / }, upstream: "${up.url}", auth: [none] }]
`;
    const p = await startProxy(yaml(`{ id: reader, hash: "${reader.hash}", scopes: [tenants:read] }`));
    try {
      expect((await admin(p.adminUrl, 'GET', '/admin/tenants', undefined, reader.token)).status).toBe(200);
      expect((await admin(p.adminUrl, 'GET', '/admin/tenants', undefined, null)).status).toBe(401);
      const refused = await admin(p.adminUrl, 'POST', '/admin/tenants', { id: 'x', plan: 'big' }, reader.token);
      expect([refused.status, refused.body.error.code]).toEqual([403, 'forbidden']);
      // An unknown scope makes the new config invalid: the old tokens keep working.
      writeFileSync(p.configFile, withTestDefaults(yaml(`{ id: reader, hash: "${reader.hash}", scopes: [tenants:everything] }`)));
      expect(await p.gate.reload()).toBe(false);
      expect((await admin(p.adminUrl, 'GET', '/admin/tenants', undefined, reader.token)).status).toBe(200);
      // No token of either kind: the API is off again (404), as if it did not exist.
      writeFileSync(p.configFile, withTestDefaults(yaml('')));
      expect(await p.gate.reload()).toBe(true);
      const off = await admin(p.adminUrl, 'GET', '/admin/tenants', undefined, reader.token);
      expect([off.status, off.body.error.code]).toEqual([404, 'no_route']);
    } finally {
      await p.close();
      await up.close();
    }
  });
});
