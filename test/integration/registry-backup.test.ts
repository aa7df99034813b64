/**
 * `tenantgate registry export | import` (SPEC §14) against a real
 * redis-server: tenants and keys made through a running proxy's admin API
 * survive a Redis that restarts empty, by a backup taken with one command and
 * restored with another; the same keys then reach the upstream as the same
 * tenants. Also the file registry, and every way an import file can be wrong.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { admin, ADMIN_TOKEN, callWith, within } from '../helpers/admin-api.js';
import { RedisServer } from '../helpers/redis.js';
import { runCli } from '../helpers/run-cli.js';
import { startProxy, startUpstream, writeConfig, type RunningProxy, type Upstream } from '../helpers/servers.js';

const config = (store: string, upstream: string, adminExtra = '') => `admin: { host: 127.0.0.1, port: 0, token: ${ADMIN_TOKEN}${adminExtra} }
${store}
plans: { free: {} }
tenants: [{ id: cfg, plan: free }]
routes:
  - { name: x, match: { pathPrefix: /x }, upstream: "${upstream}", auth: [apiKey] }
`;

/** Creates two tenants and three keys (one for the config's tenant) through the admin API; the plaintext keys by tenant. */
async function populate(proxy: RunningProxy): Promise<Record<string, string>> {
  for (const id of ['globex', 'initech']) expect((await admin(proxy.adminUrl, 'POST', '/admin/tenants', { id, plan: 'free' })).status).toBe(201);
  const keys: Record<string, string> = {};
  for (const tenant of ['globex', 'initech', 'cfg']) {
    const r = await admin(proxy.adminUrl, 'POST', `/admin/tenants/${tenant}/keys`, { scopes: [] });
    expect(r.status).toBe(201);
    keys[tenant] = r.body.key;
  }
  return keys;
}

/** The tenant the upstream saw for a request with `key`, or the status when it was refused. */
async function tenantOf(proxy: RunningProxy, upstream: Upstream, key: string): Promise<string | number> {
  const before = upstream.requests.length;
  const status = await callWith(proxy.url, key);
  return status === 200 && upstream.requests.length === before + 1 ? String(upstream.requests.at(-1)!.headers['x-tenant-id']) : status;
}

const importJson = async (configFile: string, stdin: string) => {
  const r = await runCli(['registry', 'import', '-c', configFile, '--json'], { stdin });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  return JSON.parse(r.stdout) as Record<string, number>;
};

describe('registry export / import on Redis', () => {
  const redis = new RedisServer();
  let upstream: Upstream;
  let proxy: RunningProxy | null = null;
  let direct: Redis;
  let yaml: string;
  let keys: Record<string, string>;
  let exported: string;

  beforeAll(async () => {
    await redis.start();
    upstream = await startUpstream();
    direct = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    yaml = config(`store: { redis: "${redis.url}", keyPrefix: "tgbk:" }`, upstream.url);
  });

  afterAll(async () => {
    await proxy?.close();
    direct.disconnect();
    await upstream.close();
    await redis.kill();
  });

  it('a backup, a Redis restarted empty, a restore: the same keys reach the upstream as the same tenants', async () => {
    proxy = await startProxy(yaml);
    keys = await populate(proxy);
    for (const [tenant, key] of Object.entries(keys)) expect(await tenantOf(proxy, upstream, key)).toBe(tenant);

    const out = await runCli(['registry', 'export', '-c', proxy.configFile]);
    expect(out.status, out.stderr).toBe(0);
    expect(out.stderr).toBe('tenantgate registry: exported 2 tenant(s) and 3 key(s) from the redis registry\n');
    exported = out.stdout;
    const lines = exported.trimEnd().split('\n').map((l) => JSON.parse(l));
    expect(lines[0]).toMatchObject({ type: 'header', format: 'tenantgate-registry', version: 1, registry: 'redis' });
    expect(lines.slice(1).map((l) => `${l.type}:${l.type === 'key' ? l.tenant : l.id}`)).toEqual(['tenant:globex', 'tenant:initech', 'key:cfg', 'key:globex', 'key:initech']);
    // Hashes only: neither a key, nor its secret part, nor the admin token.
    for (const key of Object.values(keys)) {
      expect(exported).not.toContain(key);
      expect(exported).not.toContain(key.split('_').at(-1));
    }
    expect(exported).not.toContain(ADMIN_TOKEN);
    for (const l of lines.filter((x) => x.type === 'key')) expect(l.hash).toMatch(/^sha256:/);

    await proxy.close();
    proxy = null;
    await redis.kill();
    await redis.start();
    await direct.connect();
    expect(await direct.dbsize()).toBe(0);

    proxy = await startProxy(yaml);
    const p = proxy;
    expect(await tenantOf(p, upstream, keys.globex!)).not.toBe('globex');

    expect(await importJson(p.configFile, exported)).toEqual({ created: 5, updated: 0, unchanged: 0, kept: 0 });
    // The import's invalidation reaches the running proxy: no restart.
    await within(2000, async () => (await tenantOf(p, upstream, keys.globex!)) === 'globex');
    expect(await tenantOf(p, upstream, keys.initech!)).toBe('initech');
    expect(await tenantOf(p, upstream, keys.cfg!)).toBe('cfg');
    expect((await admin(p.adminUrl, 'GET', '/admin/tenants/initech')).body).toMatchObject({ id: 'initech', plan: 'free', status: 'active', source: 'admin' });
  });

  it('importing again changes nothing; a key revoked since the backup stays revoked', async () => {
    const p = proxy!;
    expect(await importJson(p.configFile, exported)).toEqual({ created: 0, updated: 0, unchanged: 5, kept: 0 });
    const keyId = (await admin(p.adminUrl, 'GET', '/admin/tenants/globex/keys')).body.data[0].id as string;
    expect((await admin(p.adminUrl, 'DELETE', `/admin/keys/${keyId}`)).status).toBe(200);
    expect(await tenantOf(p, upstream, keys.globex!)).toBe(401);
    expect(await importJson(p.configFile, exported)).toEqual({ created: 0, updated: 0, unchanged: 4, kept: 1 });
    expect(await tenantOf(p, upstream, keys.globex!)).toBe(401);
    expect((await admin(p.adminUrl, 'GET', `/admin/keys/${keyId}`)).body.revoked).toBe(true);
  });

  describe('a bad file: exit 1 naming the line, and nothing written', () => {
    // An empty registry of its own (another key prefix), so "nothing written" is checked by counting its keys.
    const fresh = () => writeConfig(config(`store: { redis: "${redis.url}", keyPrefix: "tgempty:" }`, upstream.url));
    const written = async () => (await direct.keys('tgempty:*')).length;
    const withLine = (n: number, text: string) => {
      const lines = exported.trimEnd().split('\n');
      lines[n - 1] = text;
      return `${lines.join('\n')}\n`;
    };
    const refused = async (stdin: string, ...problems: string[]) => {
      const r = await runCli(['registry', 'import', '-c', fresh()], { stdin });
      expect(r.status).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr.split('\n').slice(0, -1)).toEqual(['tenantgate registry: nothing imported:', ...problems]);
      expect(await written()).toBe(0);
    };

    /** Each case replaces one line of the export (built when it runs: the export exists by then). */
    const line = (n: number) => exported.split('\n')[n - 1]!;
    it.each<[string, () => string, string | RegExp]>([
      ['not JSON', () => withLine(3, '{"type":"tenant","id":"initech"'), 'line 3: not JSON'],
      ['an unknown type', () => withLine(2, '{"type":"user","id":"u1"}'), 'line 2: "type" must be "tenant" or "key"'],
      ['a bad status', () => withLine(2, line(2).replace('"status":"active"', '"status":"zombie"')), /^line 2: tenant: status: /],
      ['an unknown field', () => withLine(4, line(4).replace('"hash":', '"plaintext":"x","hash":')), /^line 4: key: .*plaintext/],
      ['a bad hash', () => withLine(5, line(5).replace(/"hash":"[^"]+"/, '"hash":"md5:abc"')), /^line 5: key: hash: /],
      ['a duplicate', () => withLine(3, line(2)), 'line 3: tenant "globex" is already on line 2'],
      ['a line far too long', () => withLine(3, `{"type":"tenant","id":"${'x'.repeat(70_000)}"}`), 'line 3: longer than 65536 bytes; not a registry record'],
    ])('%s', async (_what, stdin, problem) => {
      const r = await runCli(['registry', 'import', '-c', fresh()], { stdin: stdin() });
      expect(r.status).toBe(1);
      const [head, first, ...rest] = r.stderr.split('\n').slice(0, -1);
      expect(head).toBe('tenantgate registry: nothing imported:');
      if (typeof problem === 'string') expect(first).toBe(problem);
      else expect(first).toMatch(problem);
      expect(rest).toEqual([]);
      expect(await written()).toBe(0);
    });

    it('a key whose tenant exists nowhere is refused', async () => {
      const key = exported.split('\n').find((l) => l.includes('"type":"key"') && l.includes('"tenant":"globex"'))!;
      await refused(`${exported.split('\n')[0]}\n${key.replace('"tenant":"globex"', '"tenant":"ghost"')}\n`, `line 2: key "${JSON.parse(key).id}": its tenant "ghost" is neither in this file, nor in the registry, nor in the config`);
    });

    it('a file that is not an export, or is empty, or of another version', async () => {
      await refused('{"type":"tenant","id":"a"}\n', 'line 1: not a tenantgate-registry export (the first line must be its header: {"type":"header","format":"tenantgate-registry","version":1,…})');
      await refused('', 'the input is empty: not a registry export');
      await refused('{"type":"header","format":"tenantgate-registry","version":2}\n', 'line 1: format version 2; this tenantgate reads version 1');
    });

    it('a missing --file, or a directory, exits 1 naming it', async () => {
      const r = await runCli(['registry', 'import', '-c', fresh(), '--file', '/nonexistent/registry.ndjson']);
      expect(r.status).toBe(1);
      expect(r.stderr).toBe('tenantgate registry: cannot read /nonexistent/registry.ndjson: ENOENT\n');
      const dir = mkdtempSync(join(tmpdir(), 'tg-backup-dir-'));
      const asDir = await runCli(['registry', 'import', '-c', fresh(), '--file', dir]);
      expect(asDir.status).toBe(1);
      expect(asDir.stderr).toBe(`tenantgate registry: cannot read ${dir}: EISDIR\n`);
      expect(await written()).toBe(0);
    });
  });

  it('an unreachable registry exits 1 with the reason, the URL without its password', async () => {
    const down = writeConfig(config('store: { redis: "redis://:s3cret@127.0.0.1:1" }', upstream.url));
    const r = await runCli(['registry', 'export', '-c', down]);
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^tenantgate registry: the redis registry failed: /);
    expect(r.stderr).not.toContain('s3cret');
  });
});

describe('registry export / import on the file registry', () => {
  it('round trip: a new state file, imported from a backup, serves the same keys', async () => {
    const upstream = await startUpstream();
    const dir = mkdtempSync(join(tmpdir(), 'tg-backup-'));
    const fileYaml = (name: string) => config('', upstream.url, `, stateFile: "${join(dir, name)}"`);
    let proxy = await startProxy(fileYaml('a.json'));
    try {
      const keys = await populate(proxy);
      const out = await runCli(['registry', 'export', '-c', proxy.configFile]);
      expect(out.status, out.stderr).toBe(0);
      expect(out.stderr).toBe(`tenantgate registry: exported 2 tenant(s) and 3 key(s) from the file registry ${join(dir, 'a.json')}\n`);
      await proxy.close();

      const backup = join(dir, 'backup.ndjson');
      writeFileSync(backup, out.stdout);
      const restored = writeConfig(fileYaml('b.json'));
      const r = await runCli(['registry', 'import', '-c', restored, '--file', backup]);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toBe('created 5, updated 0, unchanged 0, kept 0 (the registry\'s was newer)\n');
      expect(r.stderr).toBe('tenantgate registry: a proxy reads the file registry only at start: start it (or restart it) to serve these records\n');

      proxy = await startProxy(fileYaml('b.json'));
      for (const [tenant, key] of Object.entries(keys)) expect(await tenantOf(proxy, upstream, key)).toBe(tenant);
      expect((await runCli(['registry', 'import', '-c', restored, '--json'], { stdin: out.stdout })).stdout).toBe('{"created":0,"updated":0,"unchanged":5,"kept":0}\n');
    } finally {
      await proxy.close();
      await upstream.close();
    }
  });
});
