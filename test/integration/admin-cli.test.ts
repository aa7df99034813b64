/**
 * `tenantgate tenants …` and `tenantgate keys create|list|rotate|revoke`
 * against a running proxy's admin API: human and --json output, exit codes
 * (0 done, 1 refused or unreachable, 2 usage), the token only from the
 * environment, and the built binary end to end.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runKeys } from '../../src/cli/keys.js';
import { runTenants } from '../../src/cli/tenants.js';
import { ADMIN_ROUTES } from '../../src/admin/api.js';
import { admin, ADMIN_TOKEN, callWith } from '../helpers/admin-api.js';
import { MAIN, startProxy, startUpstream, type RunningProxy, type Upstream } from '../helpers/servers.js';

let upstream: Upstream;
let proxy: RunningProxy;
beforeAll(async () => {
  upstream = await startUpstream();
  const dir = mkdtempSync(join(tmpdir(), 'tg-admin-cli-'));
  proxy = await startProxy(`
admin: { host: 127.0.0.1, port: 0, token: "${ADMIN_TOKEN}", stateFile: "${join(dir, 'state.json')}" }
plans: { free: { rate: { perSecond: 100, burst: 100 }, quota: { daily: 10 } }, pro: {} }
routes:
  - { name: api, match: { pathPrefix: / }, upstream: "${upstream.url}", auth: [apiKey] }
`);
});
afterAll(async () => {
  await proxy.close();
  await upstream.close();
});

async function cli(run: typeof runTenants, args: string[], env: NodeJS.ProcessEnv = { TENANTGATE_ADMIN_TOKEN: ADMIN_TOKEN }) {
  let stdout = '';
  let stderr = '';
  const code = await run([...args, ...(args.includes('--help') ? [] : ['--admin-url', proxy.adminUrl])], { stdout: (s) => (stdout += s), stderr: (s) => (stderr += s), env });
  return { code, stdout, stderr };
}
const tenants = (args: string[], env?: NodeJS.ProcessEnv) => cli(runTenants, args, env);
const keys = (args: string[], env?: NodeJS.ProcessEnv) => cli(runKeys, args, env);

describe('tenants and keys commands', () => {
  it('create, list, get, update, suspend, activate a tenant; create, list, rotate, revoke its keys', async () => {
    let r = await tenants(['create', 'globex', '--plan', 'free', '--hosts', 'globex.example.com', '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ id: 'globex', plan: 'free', hosts: ['globex.example.com'] });
    r = await tenants(['create', 'initech', '--plan', 'pro', '--overrides', '{"concurrency": 3}']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^ID\s+PLAN\s+STATUS/);
    expect(r.stdout).toMatch(/initech\s+pro\s+active/);

    r = await tenants(['list', '--json']);
    expect(JSON.parse(r.stdout).map((t: { id: string }) => t.id)).toEqual(['globex', 'initech']);
    r = await tenants(['list', '--plan', 'pro']);
    expect(r.stdout).toContain('initech');
    expect(r.stdout).not.toContain('globex');

    r = await keys(['create', '--tenant', 'globex', '--project', 'web', '--scopes', 'a,b', '--rate', '5/10', '--json']);
    expect(r.code).toBe(0);
    const created = JSON.parse(r.stdout);
    expect(created.record).toMatchObject({ tenant: 'globex', project: 'web', scopes: ['a', 'b'], rate: { perSecond: 5, burst: 10 } });
    expect(await callWith(proxy.url, created.key)).toBe(200);

    r = await tenants(['get', 'globex']);
    expect(r.stdout).toMatch(/daily: 1 of 10/);
    r = await tenants(['update', 'globex', '--plan', 'pro', '--json']);
    expect(JSON.parse(r.stdout).plan).toBe('pro');
    r = await tenants(['suspend', 'globex', '--json']);
    expect(JSON.parse(r.stdout).status).toBe('suspended');
    expect(await callWith(proxy.url, created.key)).toBe(403);
    r = await tenants(['activate', 'globex']);
    expect(r.stdout).toMatch(/globex\s+pro\s+active/);
    expect(await callWith(proxy.url, created.key)).toBe(200);

    r = await keys(['list', '--tenant', 'globex']);
    expect(r.stdout).toContain(created.record.id);
    expect(r.stdout).not.toContain(created.key);
    r = await keys(['rotate', created.record.id, '--overlap', '60']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/shown once/);
    expect(r.stdout).toMatch(new RegExp(`old key ${created.record.id} keeps working until `));
    const newKey = /^\s+(tg_live_\S+)$/m.exec(r.stdout)![1]!;
    expect(await callWith(proxy.url, newKey)).toBe(200);
    expect(await callWith(proxy.url, created.key)).toBe(200);
    r = await keys(['revoke', created.record.id, '--json']);
    expect(JSON.parse(r.stdout).revoked).toBe(true);
    expect(await callWith(proxy.url, created.key)).toBe(401);
  });

  it('refusals exit 1 with the API message; usage mistakes exit 2; the token comes only from the environment', async () => {
    let r = await tenants(['get', 'nobody']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^tenantgate tenants: not_found: Tenant "nobody" does not exist/);
    r = await keys(['create', '--tenant', 'nobody']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/not_found/);
    r = await tenants(['create', 'x', '--plan', 'free'], { TENANTGATE_ADMIN_TOKEN: 'wrong-token-0123456789' });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/unauthenticated/);
    r = await tenants(['list'], {});
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/TENANTGATE_ADMIN_TOKEN/);
    for (const args of [['create', 'x'], ['frobnicate'], ['get'], ['list', '--hosts', 'a'], ['create', 'x', '--plan', 'free', '--overrides', '{']]) {
      r = await tenants(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(/usage: tenantgate tenants/);
    }
    for (const args of [['create'], ['rotate'], ['rotate', 'a', '--overlap', 'soon'], ['create', '--tenant', 'a', '--rate', 'fast'], ['list', '--tenant', 'a', '--overlap', '3']]) {
      r = await keys(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(/^tenantgate keys: /);
    }
    const unreachable = await runTenants(['list', '--admin-url', 'http://127.0.0.1:1'], { stdout: () => {}, stderr: (s) => (r.stderr = s), env: { TENANTGATE_ADMIN_TOKEN: ADMIN_TOKEN } });
    expect(unreachable).toBe(1);
    expect(r.stderr).toMatch(/cannot reach the admin API/);
  });

  it('the built binary: tenants list --json and the usage text', async () => {
    // Asynchronous: the proxy answering it runs in this process.
    const bin = (args: string[]) => promisify(execFile)(process.execPath, [MAIN, ...args], { encoding: 'utf8', env: { ...process.env, TENANTGATE_ADMIN_TOKEN: ADMIN_TOKEN, TENANTGATE_ADMIN_URL: proxy.adminUrl } });
    const listed = await bin(['tenants', 'list', '--json']);
    expect(JSON.parse(listed.stdout).map((t: { id: string }) => t.id)).toContain('globex');
    const help = await bin(['--help']);
    expect(help.stdout).toMatch(/tenantgate tenants create\|list\|get\|update\|suspend\|activate/);
    expect(help.stdout).toMatch(/tenantgate keys generate\|create\|list\|rotate\|revoke/);
  });

  it('an unknown admin endpoint answers 404 no_route listing every endpoint; the CLI says where it asked', async () => {
    const r = await admin(proxy.adminUrl, 'GET', '/admin/nope');
    expect(r.status).toBe(404);
    expect(r.body.error.code).toBe('no_route');
    for (const route of ADMIN_ROUTES) expect(r.body.error.message).toMatch(new RegExp(`(^|[ |])${route.method}[|A-Z]* ${route.path.replace(/[{}]/g, '\\$&')}[,.]`));
    // Without the token, nothing is listed.
    expect((await admin(proxy.adminUrl, 'GET', '/admin/nope', undefined, null)).status).toBe(401);

    // The CLI pointed at a path the admin port does not have, or at the data port (which wants an API key).
    const run = async (url: string) => {
      let stderr = '';
      const code = await runTenants(['list', '--admin-url', url], { stdout: () => {}, stderr: (s) => (stderr += s), env: { TENANTGATE_ADMIN_TOKEN: ADMIN_TOKEN } });
      return { code, stderr };
    };
    const prefixed = `${proxy.adminUrl}/prefix`;
    expect(await run(prefixed)).toEqual({
      code: 1,
      stderr: `tenantgate tenants: no_route: Unknown admin endpoint.\nthe admin API at ${prefixed} has no endpoint GET /admin/tenants: is it a tenantgate admin port, with admin.token set?\n`,
    });
    expect(await run(proxy.url)).toEqual({
      code: 1,
      stderr: `tenantgate tenants: unauthenticated: A valid credential is required.\n${proxy.url} refused the token: is it a tenantgate admin port, and $TENANTGATE_ADMIN_TOKEN its admin token?\n`,
    });
  });
});
