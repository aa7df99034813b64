/**
 * The admin API on one proxy without Redis (the local state file): auth,
 * tenants and keys end to end through the data port, validation and
 * conflicts with nothing half-written, rotation and revocation, plan changes,
 * audit events in the usage sink, the OpenAPI document against the real
 * routes, and a restart that keeps every change.
 */
import { mkdtempSync, readFileSync, existsSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { generateApiKey } from '../../src/auth/api-key-format.js';
import { ADMIN_ROUTES } from '../../src/admin/api.js';
import { OPENAPI, withScopes } from '../../src/admin/openapi.js';
import { ADMIN_TOKEN, admin, callWith } from '../helpers/admin-api.js';
import { RedisServer } from '../helpers/redis.js';
import { startProxy, startUpstream, type RunningProxy, type Upstream } from '../helpers/servers.js';

/** fetch cannot set Host: a plain http.request can. */
function statusWithHost(port: number, key: string, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ port, host: '127.0.0.1', path: '/x', headers: { host, 'x-api-key': key } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode!));
    });
    req.on('error', reject);
    req.end();
  });
}

const seedKey = generateApiKey({ env: 'live', id: 'ak_seed' });

function config(upstream: string, dir: string, opts: { token?: string | null; usageFile?: string } = {}): string {
  const token = opts.token === undefined ? ADMIN_TOKEN : opts.token;
  return `
admin: { host: 127.0.0.1, port: 0${token === null ? '' : `, token: "${token}"`}, stateFile: "${join(dir, 'state.json')}" }
plans:
  small: { rate: { perSecond: 0.01, burst: 2 } }
  big: { rate: { perSecond: 100, burst: 100 }, quota: { daily: 1000 } }
tenants:
  - { id: acme, plan: big, hosts: [acme.example.com] }
apiKeys:
  - { id: ak_seed, tenant: acme, hash: "${seedKey.hash}", scopes: ["*"] }
routes:
  - { name: api, match: { pathPrefix: / }, upstream: "${upstream}", auth: [apiKey], permission: "orders:read" }
${opts.usageFile === undefined ? '' : `usage: { sinks: [{ type: file, path: "${opts.usageFile}", flushMs: 20, fsync: false }], spoolDir: "${join(dir, 'spool')}" }`}
`;
}

let upstream: Upstream;
beforeAll(async () => {
  upstream = await startUpstream((req, res) => res.end(String(req.headers['x-tenant-id'])));
});
afterAll(async () => upstream.close());

describe('admin API (state file, no Redis)', () => {
  let proxy: RunningProxy;
  let dir: string;
  const start = async (opts: { token?: string | null; usageFile?: string } = {}) => {
    proxy = await startProxy(config(upstream.url, dir, opts));
    return proxy;
  };
  afterEach(async () => proxy?.close());
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'tg-admin-'));
  });
  const fresh = () => {
    dir = mkdtempSync(join(tmpdir(), 'tg-admin-'));
  };

  it('without admin.token the management endpoints do not exist; health, readiness and metrics still answer', async () => {
    fresh();
    const p = await start({ token: null });
    for (const path of ['/admin/tenants', '/admin/openapi.json', '/admin/keys/ak_seed']) {
      const r = await admin(p.adminUrl, 'GET', path);
      expect(r.status).toBe(404);
      expect(r.body.error.code).toBe('no_route');
    }
    expect((await admin(p.adminUrl, 'POST', '/admin/tenants', { id: 'x', plan: 'small' })).status).toBe(404);
    for (const path of ['/healthz', '/readyz', '/metrics']) expect((await fetch(`${p.adminUrl}${path}`)).status).toBe(200);
    expect(existsSync(join(dir, 'state.json'))).toBe(false);
  });

  it('a missing or wrong token is 401 and changes nothing', async () => {
    fresh();
    const p = await start();
    for (const token of [null, 'wrong-token-0123456789', `${ADMIN_TOKEN}x`, ADMIN_TOKEN.slice(0, -1)]) {
      const r = await admin(p.adminUrl, 'POST', '/admin/tenants', { id: 'sneaky', plan: 'small' }, token);
      expect(r.status).toBe(401);
      expect(r.body.error.code).toBe('unauthenticated');
      expect(r.headers.get('www-authenticate')).toMatch(/^Bearer/);
    }
    const basic = await fetch(`${p.adminUrl}/admin/tenants`, { headers: { authorization: `Basic ${Buffer.from(`x:${ADMIN_TOKEN}`).toString('base64')}` } });
    expect(basic.status).toBe(401);
    const list = await admin(p.adminUrl, 'GET', '/admin/tenants');
    expect(list.body.data.map((t: { id: string }) => t.id)).toEqual(['acme']);
    expect(existsSync(join(dir, 'state.json'))).toBe(false);
  });

  it('create a tenant and a key: the key works at once, its plaintext is shown once and no hash is ever listed', async () => {
    fresh();
    const p = await start();
    const t = await admin(p.adminUrl, 'POST', '/admin/tenants', { id: 'globex', plan: 'big', hosts: ['globex.example.com'] });
    expect(t.status).toBe(201);
    expect(t.body).toMatchObject({ id: 'globex', plan: 'big', status: 'active', source: 'admin' });
    const k = await admin(p.adminUrl, 'POST', '/admin/tenants/globex/keys', { project: 'web', scopes: ['orders:read'], env: 'live' });
    expect(k.status).toBe(201);
    expect(k.body.key).toMatch(/^tg_live_ak_/);
    expect(k.body.record).toMatchObject({ tenant: 'globex', project: 'web', scopes: ['orders:read'], revoked: false });
    expect(k.body.record.hash).toBeUndefined();
    const res = await fetch(`${p.url}/x`, { headers: { 'x-api-key': k.body.key } });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('globex');
    // Host binding applies to dynamic tenants too.
    expect(await statusWithHost(p.port, seedKey.key, 'globex.example.com')).toBe(403);
    expect(await statusWithHost(p.port, k.body.key, 'globex.example.com')).toBe(200);

    const listed = await admin(p.adminUrl, 'GET', '/admin/tenants/globex/keys');
    expect(listed.status).toBe(200);
    expect(listed.body.data).toHaveLength(1);
    const one = await admin(p.adminUrl, 'GET', `/admin/keys/${k.body.record.id}`);
    for (const r of [listed, one]) {
      const text = JSON.stringify(r.body);
      expect(text).not.toContain(k.body.key);
      expect(text).not.toMatch(/sha256:/);
    }
    // Seed keys are listed (read-only), without their hash either.
    const seed = await admin(p.adminUrl, 'GET', '/admin/tenants/acme/keys');
    expect(seed.body.data).toMatchObject([{ id: 'ak_seed', source: 'config' }]);
    expect(JSON.stringify(seed.body)).not.toContain('sha256:');
  });

  it('malformed bodies, unknown fields, duplicates, config ids and unknown tenants: 400/404/409 with clear messages, nothing written', async () => {
    fresh();
    const p = await start();
    expect((await admin(p.adminUrl, 'POST', '/admin/tenants', { id: 'globex', plan: 'big' })).status).toBe(201);
    const cases: [string, string, unknown, number, RegExp][] = [
      ['POST', '/admin/tenants', '{"id": "a",', 400, /not valid JSON/],
      ['POST', '/admin/tenants', { id: 'a', plan: 'big', color: 'red' }, 400, /unknown field "color"/],
      ['POST', '/admin/tenants', { id: 'a', plan: 'big', overrides: { rate: { perSecond: 1, burst: 1, extra: 1 } } }, 400, /unknown field "overrides.rate.extra"/],
      ['POST', '/admin/tenants', { plan: 'big' }, 400, /id: is required/],
      ['POST', '/admin/tenants', { id: 'bad id!', plan: 'big' }, 400, /id: must be/],
      ['POST', '/admin/tenants', { id: 'a', plan: 'gold' }, 400, /unknown plan "gold"/],
      ['POST', '/admin/tenants', { id: 'a', plan: 'big', hosts: ['acme.example.com'] }, 409, /belongs to tenant "acme"/],
      ['POST', '/admin/tenants', { id: 'globex', plan: 'big' }, 409, /already exists/],
      ['POST', '/admin/tenants', { id: 'acme', plan: 'big' }, 409, /config file/],
      ['PATCH', '/admin/tenants/acme', { plan: 'small' }, 409, /config file/],
      ['POST', '/admin/tenants/acme/suspend', undefined, 409, /config file/],
      ['PATCH', '/admin/tenants/globex', {}, 400, /at least one/],
      ['PATCH', '/admin/tenants/nobody', { plan: 'small' }, 404, /Tenant "nobody" does not exist/],
      ['POST', '/admin/tenants/nobody/keys', {}, 404, /Tenant "nobody" does not exist/],
      ['POST', '/admin/tenants/globex/keys', { scopes: 'orders:read' }, 400, /scopes/],
      ['POST', '/admin/tenants/globex/keys', { scopes: ['a b'] }, 400, /whitespace/],
      ['POST', '/admin/tenants/globex/keys', { expiresAt: '2001-01-01T00:00:00Z' }, 400, /in the past/],
      ['POST', '/admin/tenants/globex/keys', { id: 'ak_seed' }, 409, /config file/],
      ['POST', '/admin/keys/ak_seed/rotate', { overlapSec: 10 }, 409, /config file/],
      ['DELETE', '/admin/keys/ak_seed', undefined, 409, /config file/],
      ['DELETE', '/admin/keys/ak_none', undefined, 404, /does not exist/],
      ['POST', '/admin/keys/ak_none/rotate', { overlapSec: -1 }, 400, /overlapSec/],
      ['PUT', '/admin/tenants/globex', { plan: 'small' }, 405, /Use GET, PATCH, DELETE/],
      ['GET', '/admin/nothing', undefined, 404, /Unknown admin endpoint/],
      ['GET', '/admin/tenants?limit=0', undefined, 400, /limit/],
      ['GET', '/admin/tenants?cursor=%25%25', undefined, 400, /cursor/],
    ];
    for (const [method, path, body, status, message] of cases) {
      const r = await admin(p.adminUrl, method, path, body);
      expect({ method, path, status: r.status }).toEqual({ method, path, status });
      expect(r.body.error.message, `${method} ${path}`).toMatch(message);
    }
    const big = await admin(p.adminUrl, 'POST', '/admin/tenants', { id: 'x', plan: 'big', hosts: Array(5000).fill('a-long-host-name.example.com') });
    expect(big.status).toBe(413);
    expect(big.body.error.code).toBe('payload_too_large');
    const tenants = await admin(p.adminUrl, 'GET', '/admin/tenants');
    expect(tenants.body.data.map((t: { id: string }) => t.id)).toEqual(['acme', 'globex']);
    expect((await admin(p.adminUrl, 'GET', '/admin/tenants/globex/keys')).body.data).toEqual([]);
    expect((await admin(p.adminUrl, 'GET', '/admin/tenants/acme')).body).toMatchObject({ plan: 'big', status: 'active', source: 'config' });
  });

  it('suspend → 403 tenant_suspended, activate → back; delete → unknown tenant, hidden from the list, id kept', async () => {
    fresh();
    const p = await start();
    await admin(p.adminUrl, 'POST', '/admin/tenants', { id: 'globex', plan: 'big' });
    const { key } = (await admin(p.adminUrl, 'POST', '/admin/tenants/globex/keys', { scopes: ['orders:read'] })).body;
    expect(await callWith(p.url, key)).toBe(200);
    expect((await admin(p.adminUrl, 'POST', '/admin/tenants/globex/suspend')).body.status).toBe('suspended');
    const refused = await fetch(`${p.url}/x`, { headers: { 'x-api-key': key } });
    expect(refused.status).toBe(403);
    expect((await refused.json()).error.code).toBe('tenant_suspended');
    expect((await admin(p.adminUrl, 'POST', '/admin/tenants/globex/activate')).body.status).toBe('active');
    expect(await callWith(p.url, key)).toBe(200);
    expect((await admin(p.adminUrl, 'GET', '/admin/tenants?status=suspended')).body.data).toEqual([]);

    expect((await admin(p.adminUrl, 'DELETE', '/admin/tenants/globex')).body.status).toBe('deleted');
    const gone = await fetch(`${p.url}/x`, { headers: { 'x-api-key': key } });
    expect(gone.status).toBe(403);
    expect((await gone.json()).error.code).toBe('unknown_tenant');
    expect((await admin(p.adminUrl, 'GET', '/admin/tenants')).body.data.map((t: { id: string }) => t.id)).toEqual(['acme']);
    expect((await admin(p.adminUrl, 'GET', '/admin/tenants?status=deleted')).body.data.map((t: { id: string }) => t.id)).toEqual(['globex']);
    expect((await admin(p.adminUrl, 'POST', '/admin/tenants', { id: 'globex', plan: 'big' })).status).toBe(409);
    expect((await admin(p.adminUrl, 'POST', '/admin/tenants/globex/activate')).status).toBe(409);
  });

  it('a plan change applies to the limits at once; get shows quota used and remaining', async () => {
    fresh();
    const p = await start();
    await admin(p.adminUrl, 'POST', '/admin/tenants', { id: 'globex', plan: 'small' });
    const { key } = (await admin(p.adminUrl, 'POST', '/admin/tenants/globex/keys', { scopes: ['orders:read'] })).body;
    expect([await callWith(p.url, key), await callWith(p.url, key), await callWith(p.url, key)]).toEqual([200, 200, 429]);
    const patched = await admin(p.adminUrl, 'PATCH', '/admin/tenants/globex', { plan: 'big', overrides: { quota: { daily: 50 } } });
    expect(patched.status).toBe(200);
    // The next request already sees the new plan (the bucket keeps its tokens and refills at the new rate).
    const next = await fetch(`${p.url}/x`, { headers: { 'x-api-key': key } });
    await next.arrayBuffer();
    expect(next.headers.get('ratelimit-limit')).toBe('100');
    await new Promise((r) => setTimeout(r, 50));
    expect(await callWith(p.url, key)).toBe(200);
    expect(await callWith(p.url, key)).toBe(200);
    // Charged to the new daily quota: the two above, and `next` if the refill had already admitted it.
    const used = 2 + (next.status === 200 ? 1 : 0);
    const got = await admin(p.adminUrl, 'GET', '/admin/tenants/globex');
    expect(got.body.usage.daily).toMatchObject({ used, limit: 50, remaining: 50 - used });
    expect(got.body.usage.monthly).toMatchObject({ limit: null });
    const usage = await admin(p.adminUrl, 'GET', '/admin/tenants/globex/usage');
    expect(usage.status).toBe(200);
    expect(usage.body.quota.daily.used).toBe(used);
  });

  it('rotate with an overlap: both keys work during it, only the new one after; revoke stops a key at once', async () => {
    fresh();
    const p = await start();
    await admin(p.adminUrl, 'POST', '/admin/tenants', { id: 'globex', plan: 'big' });
    const first = (await admin(p.adminUrl, 'POST', '/admin/tenants/globex/keys', { scopes: ['orders:read'], project: 'web' })).body;
    expect(await callWith(p.url, first.key)).toBe(200);
    const rotated = await admin(p.adminUrl, 'POST', `/admin/keys/${first.record.id}/rotate`, { overlapSec: 1 });
    expect(rotated.status).toBe(201);
    expect(rotated.body.record).toMatchObject({ tenant: 'globex', project: 'web', scopes: ['orders:read'] });
    expect(rotated.body.previous.rotatedTo).toBe(rotated.body.record.id);
    expect(await callWith(p.url, first.key)).toBe(200);
    expect(await callWith(p.url, rotated.body.key)).toBe(200);
    expect((await admin(p.adminUrl, 'POST', `/admin/keys/${first.record.id}/rotate`, { overlapSec: 1 })).status).toBe(409);
    await new Promise((r) => setTimeout(r, 1100));
    expect(await callWith(p.url, first.key)).toBe(401);
    expect(await callWith(p.url, rotated.body.key)).toBe(200);

    const revoked = await admin(p.adminUrl, 'DELETE', `/admin/keys/${rotated.body.record.id}`);
    expect(revoked.status).toBe(200);
    expect(revoked.body.revoked).toBe(true);
    expect(await callWith(p.url, rotated.body.key)).toBe(401);
  });

  it('every mutation emits an audit event to the usage sinks, secrets removed', async () => {
    fresh();
    const usageFile = join(dir, 'usage.ndjson');
    const p = await start({ usageFile });
    await admin(p.adminUrl, 'POST', '/admin/tenants', { id: 'globex', plan: 'big' });
    const created = (await admin(p.adminUrl, 'POST', '/admin/tenants/globex/keys', { scopes: ['orders:read'] })).body;
    // Usage totals over a range come back from the file sink.
    expect(await callWith(p.url, created.key)).toBe(200);
    expect(await callWith(p.url, created.key)).toBe(200);
    await new Promise((r) => setTimeout(r, 300));
    const usage = await admin(p.adminUrl, 'GET', '/admin/tenants/globex/usage?from=2000-01-01');
    expect(usage.status).toBe(200);
    expect(usage.body.totals).toMatchObject({ sink: 'file-0', requests: 2, cost: 2, rejections: 0 });
    expect((await admin(p.adminUrl, 'GET', '/admin/tenants/globex/usage?from=yesterday')).status).toBe(400);
    await admin(p.adminUrl, 'PATCH', '/admin/tenants/globex', { plan: 'small' });
    await admin(p.adminUrl, 'POST', '/admin/tenants/globex/suspend');
    const rotated = (await admin(p.adminUrl, 'POST', `/admin/keys/${created.record.id}/rotate`, { overlapSec: 0 })).body;
    await admin(p.adminUrl, 'DELETE', `/admin/keys/${rotated.record.id}`);
    await admin(p.adminUrl, 'POST', '/admin/tenants', { id: 'globex', plan: 'big' }); // 409: no event
    await p.close();
    const events = readFileSync(usageFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((e) => e.type === 'audit');
    expect(events.map((e) => e.action)).toEqual(['tenant.create', 'key.create', 'tenant.update', 'tenant.suspend', 'key.rotate', 'key.revoke']);
    for (const e of events) {
      expect(e.actor).toMatch(/^admin-token@/);
      expect(typeof e.id).toBe('string');
      expect(Date.parse(e.ts)).toBeGreaterThan(0);
    }
    expect(events[2]).toMatchObject({ target: { type: 'tenant', id: 'globex' }, before: { plan: 'big' }, after: { plan: 'small' } });
    const text = JSON.stringify(events);
    expect(text).not.toContain(created.key);
    expect(text).not.toContain(rotated.key);
    expect(text).not.toMatch(/sha256:/);
  });

  it('pagination: a cursor walks every tenant once', async () => {
    fresh();
    const p = await start();
    for (const id of ['t3', 't1', 't2', 't4', 't5']) await admin(p.adminUrl, 'POST', '/admin/tenants', { id, plan: id === 't5' ? 'small' : 'big' });
    const seen: string[] = [];
    let cursor = '';
    for (let i = 0; i < 10; i++) {
      const page = await admin(p.adminUrl, 'GET', `/admin/tenants?limit=2&cursor=${cursor}`);
      seen.push(...page.body.data.map((t: { id: string }) => t.id));
      if (page.body.nextCursor === null) break;
      cursor = page.body.nextCursor;
    }
    expect(seen).toEqual(['acme', 't1', 't2', 't3', 't4', 't5']);
    expect((await admin(p.adminUrl, 'GET', '/admin/tenants?plan=small')).body.data.map((t: { id: string }) => t.id)).toEqual(['t5']);
  });

  it('a restart without Redis keeps every change (state file)', async () => {
    fresh();
    let p = await start();
    await admin(p.adminUrl, 'POST', '/admin/tenants', { id: 'globex', plan: 'big' });
    const kept = (await admin(p.adminUrl, 'POST', '/admin/tenants/globex/keys', { scopes: ['orders:read'] })).body;
    const revoked = (await admin(p.adminUrl, 'POST', '/admin/tenants/globex/keys', { scopes: ['orders:read'] })).body;
    await admin(p.adminUrl, 'DELETE', `/admin/keys/${revoked.record.id}`);
    await admin(p.adminUrl, 'POST', '/admin/tenants', { id: 'initech', plan: 'big', status: 'suspended' });
    await p.close();
    p = await start();
    expect(await callWith(p.url, kept.key)).toBe(200);
    expect(await callWith(p.url, revoked.key)).toBe(401);
    expect((await admin(p.adminUrl, 'GET', '/admin/tenants/initech')).body.status).toBe('suspended');
    expect(JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')).tenants).toHaveLength(2);
  });

  it('a config reload keeps dynamic tenants and keys; one whose plan left the config is refused, not unlimited', async () => {
    fresh();
    const p = await start();
    await admin(p.adminUrl, 'POST', '/admin/tenants', { id: 'globex', plan: 'small' });
    await admin(p.adminUrl, 'POST', '/admin/tenants', { id: 'initech', plan: 'big' });
    const g = (await admin(p.adminUrl, 'POST', '/admin/tenants/globex/keys', { scopes: ['orders:read'] })).body.key;
    const i = (await admin(p.adminUrl, 'POST', '/admin/tenants/initech/keys', { scopes: ['orders:read'] })).body.key;
    expect([await callWith(p.url, g), await callWith(p.url, i)]).toEqual([200, 200]);
    const { writeFileSync } = await import('node:fs');
    // Same file without the "small" plan.
    writeFileSync(p.configFile, readFileSync(p.configFile, 'utf8').replace(/^\s*small: .*$/m, ''));
    expect(await p.gate.reload()).toBe(true);
    expect(await callWith(p.url, i)).toBe(200);
    const refused = await fetch(`${p.url}/x`, { headers: { 'x-api-key': g } });
    expect(refused.status).toBe(403);
    expect((await refused.json()).error.code).toBe('unknown_tenant');
  });

  it('tenant ids that differ only in case (#33.10): 409 conflict against config, registry and deleted tenants, nothing written', async () => {
    fresh();
    const p = await start();
    expect((await admin(p.adminUrl, 'POST', '/admin/tenants', { id: 'Globex', plan: 'big' })).status).toBe(201);
    expect((await admin(p.adminUrl, 'POST', '/admin/tenants', { id: 'initech', plan: 'big' })).status).toBe(201);
    expect((await admin(p.adminUrl, 'DELETE', '/admin/tenants/initech')).status).toBe(200);
    const cases: [string, RegExp][] = [
      ['ACME', /differs only in case from "acme", which the config file defines/],
      ['Acme', /differs only in case from "acme"/],
      ['globex', /differs only in case from existing tenant "Globex"/],
      ['GLOBEX', /differs only in case from existing tenant "Globex"/],
      ['INITECH', /differs only in case from existing tenant "initech"/], // deleted ids stay reserved, in every case
    ];
    for (const [id, message] of cases) {
      const r = await admin(p.adminUrl, 'POST', '/admin/tenants', { id, plan: 'big' });
      expect({ id, status: r.status, code: r.body.error?.code }).toEqual({ id, status: 409, code: 'conflict' });
      expect(r.body.error.message).toMatch(message);
      expect(r.body.error.requestId).toEqual(expect.any(String));
    }
    const ids = async (q = '') => (await admin(p.adminUrl, 'GET', `/admin/tenants${q}`)).body.data.map((t: { id: string }) => t.id);
    expect(await ids()).toEqual(['Globex', 'acme']); // listed in code-point order
    expect(await ids('?status=deleted')).toEqual(['initech']);
    expect(JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')).tenants.map((t: { id: string }) => t.id).sort()).toEqual(['Globex', 'initech']);
  });

  it('case variants created at once: exactly one is created (the registry refuses the rest atomically)', async () => {
    fresh();
    const p = await start();
    const variants = ['umbrella', 'UMBRELLA', 'Umbrella', 'uMBRELLA', 'UmBrElLa'];
    const answers = await Promise.all(variants.map((id) => admin(p.adminUrl, 'POST', '/admin/tenants', { id, plan: 'big' })));
    expect(answers.map((a) => a.status).sort()).toEqual([201, 409, 409, 409, 409]);
    expect(answers.filter((a) => a.status === 409).every((a) => a.body.error.code === 'conflict')).toBe(true);
    expect((await admin(p.adminUrl, 'GET', '/admin/tenants')).body.data).toHaveLength(2);
  });

  it('a reload that adds a config tenant differing only in case from a registry tenant: the file wins, the registry twin is refused', async () => {
    fresh();
    const p = await start();
    await admin(p.adminUrl, 'POST', '/admin/tenants', { id: 'globex', plan: 'big' });
    const g = (await admin(p.adminUrl, 'POST', '/admin/tenants/globex/keys', { scopes: ['orders:read'] })).body.key;
    expect(await callWith(p.url, g)).toBe(200);
    const { writeFileSync } = await import('node:fs');
    writeFileSync(p.configFile, readFileSync(p.configFile, 'utf8').replace('tenants:\n', 'tenants:\n  - { id: GLOBEX, plan: big }\n'));
    expect(await p.gate.reload()).toBe(true);
    const refused = await fetch(`${p.url}/x`, { headers: { 'x-api-key': g } });
    expect(refused.status).toBe(403);
    expect((await refused.json()).error.code).toBe('unknown_tenant');
    expect(await callWith(p.url, seedKey.key)).toBe(200);
  });

  it('YAML tenants that differ only in case are a config error naming both (the proxy does not start)', async () => {
    fresh();
    const yaml = config(upstream.url, dir).replace('tenants:\n', 'tenants:\n  - { id: ACME, plan: small }\n');
    await expect(startProxy(yaml)).rejects.toThrow(/tenants\[1\]\.id: tenant id "acme" differs from "ACME" only in case/);
  });

  it('the OpenAPI document matches the real routes', async () => {
    fresh();
    const p = await start();
    const served = await admin(p.adminUrl, 'GET', '/admin/openapi.json');
    expect(served.status).toBe(200);
    expect(served.body).toEqual(JSON.parse(JSON.stringify(withScopes(OPENAPI, ADMIN_ROUTES))));
    const documented = new Set<string>();
    for (const [path, item] of Object.entries(OPENAPI.paths)) {
      for (const method of Object.keys(item).filter((m) => ['get', 'post', 'patch', 'delete', 'put'].includes(m))) {
        documented.add(`${method.toUpperCase()} ${path}`);
        const concrete = path.replace('{id}', 'acme').replace('{keyId}', 'ak_seed');
        const r = await admin(p.adminUrl, method.toUpperCase(), concrete, method === 'get' || method === 'delete' ? undefined : {});
        // Routed: whatever the answer, it is not "no such endpoint" nor "wrong method".
        expect(r.body?.error?.code === 'no_route' || r.status === 405, `${method} ${path} → ${r.status}`).toBe(false);
      }
    }
    expect([...documented].sort()).toEqual(ADMIN_ROUTES.map((r) => `${r.method} ${r.path}`).sort());
  });
});

describe('admin API with the Redis registry: case variants (#33.10)', () => {
  const redis = new RedisServer();
  let proxy: RunningProxy;
  beforeAll(async () => {
    await redis.start();
    proxy = await startProxy(`
admin: { host: 127.0.0.1, port: 0, token: "${ADMIN_TOKEN}" }
store: { redis: "${redis.url}", keyPrefix: "tgcase:" }
plans: { big: { rate: null } }
tenants: [{ id: acme, plan: big }]
routes: [{ name: api, match: { pathPrefix: / }, upstream: "${upstream.url}", auth: [apiKey] }]
`);
  });
  afterAll(async () => {
    await proxy?.close();
    await redis.kill();
  });

  it('409 against the config and the registry; variants created at once: exactly one, refused atomically by the registry', async () => {
    expect((await admin(proxy.adminUrl, 'POST', '/admin/tenants', { id: 'ACME', plan: 'big' })).status).toBe(409);
    const variants = ['hooli', 'HOOLI', 'Hooli', 'hOOLI', 'HoOlI', 'hoolI'];
    const answers = await Promise.all(variants.map((id) => admin(proxy.adminUrl, 'POST', '/admin/tenants', { id, plan: 'big' })));
    expect(answers.map((a) => a.status).sort()).toEqual([201, 409, 409, 409, 409, 409]);
    const created = variants[answers.findIndex((a) => a.status === 201)]!;
    const later = await admin(proxy.adminUrl, 'POST', '/admin/tenants', { id: created.toUpperCase() === created ? 'hooli' : 'HOOLI', plan: 'big' });
    expect(later.status).toBe(409);
    expect(later.body.error.message).toMatch(new RegExp(`differs only in case from existing tenant "${created}"`));
    const { Redis } = await import('ioredis');
    const control = new Redis(redis.url);
    try {
      expect(await control.smembers('tgcase:tenants')).toEqual([created]);
    } finally {
      control.disconnect();
    }
  });
});
