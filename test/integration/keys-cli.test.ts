import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { API_KEY_PATTERN } from '../../src/auth/api-key-format.js';
import { ApiKeyVerifier } from '../../src/auth/api-key-verifier.js';
import type { ApiKeyRecord } from '../../src/auth/types.js';
import { runKeys } from '../../src/cli/keys.js';
import { parseConfig } from '../../src/config/load.js';
import { configSchema } from '../../src/config/schema.js';
import { MAIN } from '../helpers/servers.js';

const NOW = Date.parse('2026-06-01T00:00:00Z');

/** Runs `keys` in-process with captured output (the spawned binary is covered at the end). */
async function keys(args: string[], env: NodeJS.ProcessEnv = {}) {
  let stdout = '';
  let stderr = '';
  const code = await runKeys(args, { stdout: (s) => (stdout += s), stderr: (s) => (stderr += s), env, now: () => NOW });
  return { code, stdout, stderr };
}

/** A whole config around the records, checked by the schema exactly as `serve` would. */
function configWith(records: unknown[]) {
  return configSchema.parse({
    plans: { free: { rate: { perSecond: 5, burst: 10 } } },
    tenants: [{ id: 'acme', plan: 'free' }],
    apiKeys: records,
    routes: [{ name: 'orders', match: { pathPrefix: '/orders' }, upstream: 'http://127.0.0.1:3000' }],
  });
}

function verifierFor(records: readonly ApiKeyRecord[], pepper: string | null = null) {
  return new ApiKeyVerifier({ lookup: (id) => records.find((k) => k.id === id), pepper, now: () => NOW });
}

describe('tenantgate keys generate', () => {
  it('--json prints exactly {key, record}; the record passes the config schema and verifies the key', async () => {
    const r = await keys(['generate', '--tenant', 'acme', '--project', 'web', '--scopes', 'orders:read, orders:write,,orders:read', '--env', 'test', '--expires', '2030-01-01T00:00:00Z', '--json']);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(r.stdout.endsWith('}\n')).toBe(true);
    const out = JSON.parse(r.stdout);
    expect(Object.keys(out)).toEqual(['key', 'record']);
    const { key, record } = out;
    expect(key).toMatch(/^tg_test_ak_[0-9A-Za-z]{12}_[0-9A-Za-z]{30}$/);
    expect(record).toEqual({
      id: expect.stringMatching(/^ak_/), tenant: 'acme', project: 'web', hash: expect.stringMatching(/^sha256:/),
      scopes: ['orders:read', 'orders:write'], env: 'test', expiresAt: '2030-01-01T00:00:00Z', revoked: false,
    });
    expect(key).toContain(`_${record.id}_`);
    expect(JSON.stringify(record)).not.toContain(key.slice(-30, -6));
    const config = configWith([record]);
    expect(verifierFor(config.apiKeys).verify(key)).toMatchObject({ ok: true, record: { id: record.id, tenant: 'acme' } });
  });

  it('--id sets the record id (ids with _ . : - round-trip through the key)', async () => {
    const r = await keys(['generate', '--tenant', 'acme', '--id', 'ak_ci.deploy:web-1', '--json']);
    expect(r.code).toBe(0);
    const { key, record } = JSON.parse(r.stdout);
    expect(record.id).toBe('ak_ci.deploy:web-1');
    expect(record.env).toBe('live');
    expect(verifierFor(configWith([record]).apiKeys).verify(key).ok).toBe(true);
  });

  it('prints the key once on its own line, a shown-once warning, and a YAML record that loads and verifies', async () => {
    const r = await keys(['generate', '--tenant', 'acme', '--scopes', 'orders:*,*', '--expires', '2030-01-01T00:00:00+02:00']);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(r.stdout).toMatch(/shown once/);
    const found = [...r.stdout.matchAll(API_KEY_PATTERN)].map((m) => m[0]);
    expect(found).toHaveLength(1);
    const key = found[0]!;
    expect(r.stdout.split('\n').map((l) => l.trim())).toContain(key);
    const snippet = r.stdout.slice(r.stdout.indexOf('  - id:'));
    const yaml = `plans: { free: {} }\ntenants: [{ id: acme, plan: free }]\nroutes: [{ name: a, match: {}, upstream: "http://127.0.0.1:1" }]\napiKeys:\n${snippet}`;
    const config = parseConfig(yaml, 'k.yaml', {});
    expect(config.source.apiKeys).toEqual([expect.objectContaining({ tenant: 'acme', scopes: ['orders:*', '*'], expiresAt: '2030-01-01T00:00:00+02:00' })]);
    expect(verifierFor(config.source.apiKeys).verify(key).ok).toBe(true);
  });

  it('hashes with HMAC-SHA256 when TENANTGATE_KEY_PEPPER is set; only a verifier with that pepper accepts it', async () => {
    const human = await keys(['generate', '--tenant', 'acme'], { TENANTGATE_KEY_PEPPER: 'pepper-123' });
    expect(human.stdout).toMatch(/hash: hmac-sha256:/);
    expect(human.stdout).toMatch(/same pepper/);
    const r = await keys(['generate', '--tenant', 'acme', '--json'], { TENANTGATE_KEY_PEPPER: 'pepper-123' });
    const { key, record } = JSON.parse(r.stdout);
    expect(record.hash).toMatch(/^hmac-sha256:/);
    const apiKeys = configWith([record]).apiKeys;
    expect(verifierFor(apiKeys, 'pepper-123').verify(key).ok).toBe(true);
    expect(verifierFor(apiKeys).verify(key)).toEqual({ ok: false, reason: 'wrong_secret' });
  });

  it('--help prints the usage and exits 0', async () => {
    for (const args of [['--help'], ['generate', '--help'], ['generate', '-h']]) {
      const r = await keys(args);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^usage: tenantgate keys generate --tenant <id>/);
    }
  });

  it.each([
    [[], /missing subcommand/],
    [['bogus'], /unknown subcommand "bogus"/],
    [['generate'], /--tenant <id> is required/],
    [['generate', '--tenant'], /--tenant/],
    [['generate', '--tenant', 'bad tenant'], /--tenant "bad tenant": must be 1-128 characters/],
    [['generate', '--tenant', '-acme'], /--tenant/],
    [['generate', '--tenant', 'acme', '--project', 'web/app'], /--project "web\/app"/],
    [['generate', '--tenant', 'acme', '--id', `ak_${'x'.repeat(126)}`], /--id "ak_x+"/],
    [['generate', '--tenant', 'acme', '--id', '_ak'], /--id "_ak"/],
    [['generate', '--tenant', 'acme', '--env', 'prod'], /--env "prod": must be live or test/],
    [['generate', '--tenant', 'acme', '--expires', 'tomorrow'], /--expires "tomorrow"/],
    [['generate', '--tenant', 'acme', '--expires', '2030-01-01'], /--expires "2030-01-01"/],
    [['generate', '--tenant', 'acme', '--expires', '2030-01-01T00:00:00'], /--expires/],
    [['generate', '--tenant', 'acme', '--expires', '2030-02-30T00:00:00Z'], /--expires "2030-02-30T00:00:00Z"/],
    [['generate', '--tenant', 'acme', '--expires', '2026-05-31T23:59:59Z'], /--expires "2026-05-31T23:59:59Z" is in the past/],
    [['generate', '--tenant', 'acme', '--scopes', 'orders read'], /--scopes "orders read": a scope cannot contain whitespace/],
    [['generate', '--tenant', 'acme', '--bogus'], /Unknown option '--bogus'/],
    [['generate', '--tenant', 'acme', 'extra'], /positional argument/],
    [['generate', '--tenant', 'acme', '--json=yes'], /--json/],
  ])('%j exits 2 with a clear message and prints no key', async (args, message) => {
    const r = await keys(args as string[]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^tenantgate keys: /);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).toMatch(/usage: tenantgate keys generate/);
    expect(r.stdout).toBe('');
  });

  describe('the built binary (dist/main.js)', () => {
    const bin = (args: string[]) => spawnSync(process.execPath, [MAIN, 'keys', ...args], { encoding: 'utf8', env: { ...process.env, TENANTGATE_KEY_PEPPER: '' } });

    it('exits 0 and prints a key its record verifies', () => {
      const r = bin(['generate', '--tenant', 'acme', '--scopes', 'orders:read', '--json']);
      expect(r.status).toBe(0);
      const { key, record } = JSON.parse(r.stdout);
      expect(verifierFor(configWith([record]).apiKeys).verify(key).ok).toBe(true);
    });

    it('exits 2 on bad arguments', () => {
      const r = bin(['generate', '--tenant', 'acme', '--env', 'prod']);
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(/^tenantgate keys: --env/);
      expect(r.stdout).toBe('');
    });
  });
});
